package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Stack is which addresses a lab's floatip group floats: the IPv4 VIP, the
// IPv6 VIP, or both in one group (dual stack: they move together).
type Stack string

// The stacks.
const (
	StackIPv4 Stack = "ipv4"
	StackIPv6 Stack = "ipv6"
	StackDual Stack = "dual"
)

// Stacks are the stacks, in the order the benchmark and the help list them.
var Stacks = []Stack{StackIPv4, StackIPv6, StackDual}

// ParseStack reads a stack name: ipv4, ipv6 or dual.
func ParseStack(s string) (Stack, error) {
	st := Stack(s)
	if st == "" {
		return StackIPv4, nil
	}
	if !slices.Contains(Stacks, st) {
		return "", fmt.Errorf("stack %q: want ipv4, ipv6 or dual", s)
	}
	return st, nil
}

// NeedsIPv6 reports whether the lab must carry IPv6 for the stack.
func (s Stack) NeedsIPv6() bool { return s == StackIPv6 || s == StackDual }

// Label is how tables and the demo name the stack: "IPv4", "IPv6", "dual".
func (s Stack) Label() string {
	switch s {
	case StackIPv6:
		return "IPv6"
	case StackDual:
		return "dual"
	}
	return "IPv4"
}

// StackOptions returns o set up for the stack: IPv6 in the lab when it
// needs it, and Options.VIPs the stack's group (IPv4 first).
func StackOptions(o Options, s Stack) (Options, error) {
	switch s {
	case "", StackIPv4:
		return o, nil
	case StackIPv6:
		o.IPv6 = true
		o.VIPs = nil // the default with IPv6: [VIP6]
	case StackDual:
		o.IPv6 = true
		v4, v6 := o.VIP, o.VIP6
		if !v4.IsValid() {
			v4 = DefaultVIP
		}
		if !v6.IsValid() {
			v6 = DefaultVIP6
		}
		o.VIPs = []netip.Addr{v4, v6}
	default:
		return o, fmt.Errorf("stack %q: want ipv4, ipv6 or dual", s)
	}
	return o, nil
}

// clientTarget is where the demo's and lab up's client goes: the IPv6 VIP
// of the group when it has one, else its (IPv4) VIP. (StartClient's default
// is the lab's first VIP.)
func clientTarget(l *Lab) netip.AddrPort {
	vip := l.VIP
	if len(l.VIPs) > 0 {
		vip = l.VIPs[0]
	}
	for _, v := range l.VIPs {
		if v.Is6() {
			vip = v
		}
	}
	return netip.AddrPortFrom(vip, ServicePort)
}

// vipList is "198.18.0.100 and 2001:db8:18::100".
func vipList(vips []netip.Addr) string {
	s := make([]string, len(vips))
	for i, v := range vips {
		s[i] = v.String()
	}
	return strings.Join(s, " and ")
}

// StackVIPs are the VIPs of the stack's group in this lab, IPv4 first: the
// addresses to pass to `floatip run --vip`. It fails when the stack needs
// IPv6 and the lab was built without it.
func (l *Lab) StackVIPs(s Stack) ([]netip.Addr, error) {
	v6 := l.VIP6
	if s.NeedsIPv6() && !v6.IsValid() {
		return nil, fmt.Errorf("lab: stack %s needs a lab with IPv6 (Options.IPv6)", s)
	}
	switch s {
	case StackIPv6:
		return []netip.Addr{v6}, nil
	case StackDual:
		return []netip.Addr{l.VIP, v6}, nil
	}
	return []netip.Addr{l.VIP}, nil
}

// Target is the address the lab client requests for the stack: the IPv6
// VIP for ipv6 and dual, else the IPv4 VIP.
func (l *Lab) Target(s Stack) (netip.AddrPort, error) {
	vips, err := l.StackVIPs(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(vips[len(vips)-1], ServicePort), nil
}

// FloatipArgsFor is FloatipArgs with the given VIPs (one --vip each, one
// group) instead of the lab's IPv4 VIP.
func (n *Node) FloatipArgsFor(vips []netip.Addr) []string {
	args := []string{"run", "--interface", "eth0"}
	for _, v := range vips {
		args = append(args, "--vip", v.String())
	}
	return append(args, "--node-name", n.Name, "--log-format", "json", "--socket", n.Socket())
}

// StartFloatipVIPs is StartFloatip for a group of the given VIPs.
func (n *Node) StartFloatipVIPs(ctx context.Context, vips []netip.Addr, extraArgs ...string) (*Proc, error) {
	return n.StartDaemon(ctx, n.lab.Binary, append(n.FloatipArgsFor(vips), extraArgs...)...)
}

// heldAddrs returns the addresses (both families) on the node's eth0 that
// the kernel uses: an IPv6 address that is tentative or failed DAD is left
// out, since the kernel neither answers for it nor accepts traffic to it.
func (n *Node) heldAddrs() ([]netip.Addr, error) {
	link, err := n.link()
	if err != nil {
		return nil, err
	}
	var addrs []netlink.Addr
	for try := 0; ; try++ {
		addrs, err = n.h.AddrList(link, netlink.FAMILY_ALL)
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lab: %s addresses: %w", n.Name, err)
		}
		break
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// HoldersOf returns, for each of vips, the names of the nodes holding it on
// eth0 (kernel state, one address dump per node for all of them), skipping
// powered-off nodes as Holders does.
func (l *Lab) HoldersOf(vips []netip.Addr) ([][]string, error) {
	out := make([][]string, len(vips))
	for _, n := range l.nodes {
		if n.PoweredOff() {
			continue
		}
		have, err := n.heldAddrs()
		if err != nil {
			return nil, err
		}
		for i, v := range vips {
			if slices.Contains(have, v) {
				out[i] = append(out[i], n.Name)
			}
		}
	}
	return out, nil
}

// GroupHolders is a WaitHolders-style reading for a group: the nodes that
// hold every one of vips (a node holding only some is not among them). For
// one VIP it is the VIP's holders.
func (l *Lab) GroupHolders(vips []netip.Addr) ([]string, error) {
	per, err := l.HoldersOf(vips)
	if err != nil {
		return nil, err
	}
	return whole(per), nil
}

// whole is the nodes present in every list.
func whole(per [][]string) []string {
	if len(per) == 0 {
		return nil
	}
	var out []string
	for _, n := range per[0] {
		if !slices.ContainsFunc(per[1:], func(h []string) bool { return !slices.Contains(h, n) }) {
			out = append(out, n)
		}
	}
	return out
}

// WaitGroupHolders is WaitHolders for a group of VIPs: it polls until
// want(the nodes holding all of vips) holds and every node that holds any of
// them holds all of them.
func (l *Lab) WaitGroupHolders(ctx context.Context, vips []netip.Addr, want func([]string) bool, timeout time.Duration, watch ...*Proc) ([]string, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(HolderPoll)
	defer tick.Stop()
	for {
		per, err := l.HoldersOf(vips)
		if err != nil {
			return nil, err
		}
		h := whole(per)
		if want(h) && !Split(per) && slices.Equal(union(per), h) {
			return h, nil
		}
		for _, p := range watch {
			if p.Exited() {
				return h, fmt.Errorf("lab: %s exited (%v) while waiting for the holders of %v; its last output: %s", p.Name, p.Wait(), vips, p.Tail(8))
			}
		}
		if time.Now().After(deadline) {
			return h, fmt.Errorf("lab: holders of %v still %v after %v%s", vips, per, timeout, tails(watch, 4))
		}
		select {
		case <-ctx.Done():
			return h, fmt.Errorf("lab: waiting for the holders of %v (now %v): %w", vips, per, ctx.Err())
		case <-tick.C:
		}
	}
}

func union(per [][]string) []string {
	var out []string
	for _, h := range per {
		for _, n := range h {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Split reports whether a group's VIPs (per: the holders of each) are on
// different nodes: two of them are held, but by no common node, so that no
// node answers for the whole group. A group held whole by two nodes (a
// partition) is not split, nor one a node holds whole while another holds
// part of it (one node is between the two netlink calls of a claim or a
// release: the two-holder time counts that), nor one whose other VIP nobody
// holds (a claim under way).
func Split(per [][]string) bool {
	for i, hi := range per {
		for _, hj := range per[i+1:] {
			if len(hi) > 0 && len(hj) > 0 && !slices.ContainsFunc(hi, func(n string) bool { return slices.Contains(hj, n) }) {
				return true
			}
		}
	}
	return false
}

// GroupObs is one reading of a group's holders: Holders[i] are the nodes
// holding VIP i.
type GroupObs struct {
	At      time.Time
	Holders [][]string
}

// GroupRecorder is HolderRecorder for a group of VIPs of either family: it
// reads every node's addresses every HolderPoll (one dump per node) and
// keeps the first reading and each one that differs from the one before.
type GroupRecorder struct {
	VIPs []netip.Addr

	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	obs []GroupObs
}

// RecordGroup starts a GroupRecorder for vips; it runs until Stop or ctx
// ends.
func (l *Lab) RecordGroup(ctx context.Context, vips []netip.Addr) *GroupRecorder {
	ctx, cancel := context.WithCancel(ctx)
	r := &GroupRecorder{VIPs: slices.Clone(vips), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(HolderPoll)
		defer tick.Stop()
		for {
			at := time.Now()
			if h, err := l.HoldersOf(r.VIPs); err == nil {
				r.mu.Lock()
				if len(r.obs) == 0 || !sameHolders(r.obs[len(r.obs)-1].Holders, h) {
					r.obs = append(r.obs, GroupObs{At: at, Holders: h})
				}
				r.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

func sameHolders(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// Observations returns the readings so far, in time order.
func (r *GroupRecorder) Observations() []GroupObs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.obs)
}

// Stop ends the recording (idempotent) and returns the observations.
func (r *GroupRecorder) Stop() []GroupObs {
	r.cancel()
	<-r.done
	return r.Observations()
}

// Series is the readings of VIP i alone, as a HolderRecorder would have
// kept them (a reading each time its holders changed).
func Series(obs []GroupObs, i int) []HolderObs {
	var out []HolderObs
	for _, o := range obs {
		if i >= len(o.Holders) {
			continue
		}
		if len(out) == 0 || !slices.Equal(out[len(out)-1].Holders, o.Holders[i]) {
			out = append(out, HolderObs{At: o.At, Holders: o.Holders[i]})
		}
	}
	return out
}

// WholeSeries is the readings of the nodes holding every VIP of the group.
func WholeSeries(obs []GroupObs) []HolderObs {
	var out []HolderObs
	for _, o := range obs {
		h := whole(o.Holders)
		if len(out) == 0 || !slices.Equal(out[len(out)-1].Holders, h) {
			out = append(out, HolderObs{At: o.At, Holders: h})
		}
	}
	return out
}

// SplitTime is how long, between from and to, the group's VIPs were on
// different nodes (Split), each reading counting until the next (the last
// until to).
func SplitTime(obs []GroupObs, from, to time.Time) time.Duration {
	return TimeWhere(obs, func(o GroupObs) time.Time { return o.At }, from, to, func(o GroupObs) bool { return Split(o.Holders) })
}

// TimeWhere is how long, between from and to, the readings in obs (sorted
// by the time at gives) showed what holds says: each reading counts until
// the next one (the last until to). The benchmark's two-holder times and
// SplitTime are this with their own predicate.
func TimeWhere[T any](obs []T, at func(T) time.Time, from, to time.Time, holds func(T) bool) time.Duration {
	var total time.Duration
	for i, o := range obs {
		end := to
		if i+1 < len(obs) {
			end = at(obs[i+1])
		}
		start := at(o)
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if holds(o) && end.After(start) {
			total += end.Sub(start)
		}
	}
	return total
}

// GoneAt is when node stopped holding every VIP of the group, looking from
// time from on: the first reading at or after from (or the one in force at
// from) in which it holds none of them. ok is false when it still held one
// at the last reading.
func GoneAt(obs []GroupObs, node string, from time.Time) (at time.Time, ok bool) {
	for i, o := range obs {
		if i+1 < len(obs) && !obs[i+1].At.After(from) {
			continue // superseded before from
		}
		if !slices.ContainsFunc(o.Holders, func(h []string) bool { return slices.Contains(h, node) }) {
			if o.At.Before(from) {
				return from, true
			}
			return o.At, true
		}
	}
	return time.Time{}, false
}

// FormatGroupObs renders a reading: "198.18.0.100 n1; 2001:db8:18::100 n1,n2".
func FormatGroupObs(vips []netip.Addr, o GroupObs) string {
	parts := make([]string, len(vips))
	for i, v := range vips {
		var h []string
		if i < len(o.Holders) {
			h = o.Holders[i]
		}
		parts[i] = v.String() + " " + noneOr(h)
	}
	return strings.Join(parts, "; ")
}
