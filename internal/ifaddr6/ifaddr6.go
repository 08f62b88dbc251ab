//go:build linux

// Package ifaddr6 adds ("claims") and deletes ("releases") IPv6 VIPs as /128
// addresses on one interface over rtnetlink (github.com/vishvananda/netlink),
// the IPv6 counterpart of package ifaddr's IPv4 /32s.
//
// A claimed address has:
//   - IFA_F_NODAD: usable at once, never tentative and never "dadfailed"
//     (floatip does its own duplicate detection before it claims, and a
//     tentative address would not be answered for nor usable);
//   - a finite valid lifetime, renewed by claiming again (RTM_NEWADDR with
//     NLM_F_REPLACE), so the kernel deletes the address by itself when the
//     daemon dies, as for IPv4;
//   - preferred lifetime 0, so the address is "deprecated" from the start:
//     RFC 6724 source address selection (rule 3) then never picks it for the
//     node's own outgoing connections while the interface has another usable
//     address, and a VIP's failover cannot break connections the node itself
//     opened. A deprecated address still works in every other way: the
//     kernel answers Neighbor Solicitations for it and accepts connections
//     to it (both checked in the lab tests).
package ifaddr6

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Addrs changes the IPv6 VIPs of one interface. Its methods are safe for
// concurrent use (a netlink.Handle is).
type Addrs struct {
	name  string
	index int
	h     *netlink.Handle
	ns    netns.NsHandle // for WatchRemoved; the caller's, kept open by it
}

// Open opens the interface name in the network namespace ns; netns.None()
// means the namespace of the calling thread.
func Open(name string, ns netns.NsHandle) (*Addrs, error) {
	var h *netlink.Handle
	var err error
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("ifaddr6: open netlink socket: %w", err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("ifaddr6: interface %q: %w", name, err)
	}
	return &Addrs{name: name, index: l.Attrs().Index, h: h, ns: ns}, nil
}

// Close closes the netlink socket. Claimed addresses stay until their
// lifetime ends.
func (a *Addrs) Close() error {
	a.h.Close()
	return nil
}

// maxLifetimeSecs is the largest finite lifetime; 0xFFFFFFFF is "forever".
const maxLifetimeSecs = math.MaxUint32 - 1

func (a *Addrs) addr128(ip netip.Addr) (*netlink.Addr, error) {
	if !ip.Is6() || ip.Is4In6() {
		return nil, fmt.Errorf("%v is not an IPv6 address", ip)
	}
	if ip.IsMulticast() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return nil, fmt.Errorf("%v is not a global or unique-local unicast address", ip)
	}
	return &netlink.Addr{
		IPNet:     &net.IPNet{IP: ip.WithZone("").AsSlice(), Mask: net.CIDRMask(128, 128)},
		LinkIndex: a.index,
		Scope:     unix.RT_SCOPE_UNIVERSE,
	}, nil
}

// Claim adds each address as a /128 with IFA_F_NODAD, valid lifetime valid
// (rounded up to whole seconds) and preferred lifetime 0, or renews the
// lifetime of one already there. It tries every address and returns the
// first error, which names the address.
func (a *Addrs) Claim(addrs []netip.Addr, valid time.Duration) error {
	if valid <= 0 {
		return fmt.Errorf("claim on %s: lifetime %v is not positive", a.name, valid)
	}
	secs := (valid + time.Second - 1) / time.Second
	if secs > maxLifetimeSecs {
		return fmt.Errorf("claim on %s: lifetime %v is too long (at most %d s)", a.name, valid, uint32(maxLifetimeSecs))
	}
	var first error
	for _, ip := range addrs {
		na, err := a.addr128(ip)
		if err == nil {
			na.Flags = unix.IFA_F_NODAD
			na.ValidLft, na.PreferedLft = int(secs), 0
			err = a.h.AddrReplace(nil, na)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("claim %v/128 on %s: %w", ip, a.name, err)
		}
	}
	return first
}

// Release deletes each /128. An address already gone (also with the whole
// interface) is not an error.
func (a *Addrs) Release(addrs []netip.Addr) error {
	var first error
	for _, ip := range addrs {
		na, err := a.addr128(ip)
		if err == nil {
			err = a.h.AddrDel(nil, na)
			if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL) ||
				errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
				err = nil
			}
		}
		if err != nil && first == nil {
			first = fmt.Errorf("release %v/128 on %s: %w", ip, a.name, err)
		}
	}
	return first
}

// Addr is one IPv6 address of the interface as the kernel reports it.
type Addr struct {
	Prefix netip.Prefix
	// Flags are the IFA_F_* flags (unix.IFA_F_NODAD, IFA_F_DEPRECATED,
	// IFA_F_TENTATIVE, IFA_F_DADFAILED, ...).
	Flags int
	// ValidLft and PreferedLft are the remaining lifetimes in seconds;
	// 0xFFFFFFFF (as int) is forever.
	ValidLft, PreferedLft int
}

// List returns the IPv6 addresses of the interface, retrying a dump the
// kernel interrupted.
func (a *Addrs) List() ([]Addr, error) {
	var err error
	for range 5 {
		var all []netlink.Addr
		all, err = a.h.AddrList(nil, netlink.FAMILY_V6)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", a.name, err)
		}
		var res []Addr
		for _, x := range all {
			if x.LinkIndex != a.index || x.IPNet == nil {
				continue
			}
			ip, ok := netip.AddrFromSlice(x.IP)
			if !ok {
				continue
			}
			ones, _ := x.Mask.Size()
			res = append(res, Addr{
				Prefix:      netip.PrefixFrom(ip, ones),
				Flags:       x.Flags,
				ValidLft:    x.ValidLft,
				PreferedLft: x.PreferedLft,
			})
		}
		return res, nil
	}
	return nil, fmt.Errorf("list addresses of %s: %w (5 tries)", a.name, err)
}

// Present reports which of addrs are configured on the interface now, with
// any prefix length. Every address in addrs is a key of the result.
func (a *Addrs) Present(addrs []netip.Addr) (map[netip.Addr]bool, error) {
	list, err := a.List()
	if err != nil {
		return nil, err
	}
	have := make(map[netip.Addr]bool, len(list))
	for _, x := range list {
		have[x.Prefix.Addr()] = true
	}
	res := make(map[netip.Addr]bool, len(addrs))
	for _, ip := range addrs {
		res[ip] = have[ip.WithZone("")]
	}
	return res, nil
}

// WatchRemoved calls removed with every IPv6 address deleted from the
// interface (by hand, by another program, or by the kernel when its valid
// lifetime ran out) until ctx ends, and then returns nil. Additions and
// renewals are not reported: the subscription is to IPv6 address events
// only, and RTM_NEWADDR messages are dropped after their header, so a
// holder's renewals cost little. removed runs on WatchRemoved's goroutine.
func (a *Addrs) WatchRemoved(ctx context.Context, removed func(netip.Addr)) error {
	s, err := nl.SubscribeAt(a.ns, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		return fmt.Errorf("ifaddr6: watch addresses of %s: %w", a.name, err)
	}
	stop := context.AfterFunc(ctx, s.Close) // ends a blocked Receive
	defer func() {
		if stop() {
			s.Close()
		}
	}()
	for {
		msgs, from, err := s.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ifaddr6: watch addresses of %s: %w", a.name, err)
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_DELADDR || len(m.Data) < unix.SizeofIfAddrmsg {
				continue
			}
			msg := nl.DeserializeIfAddrmsg(m.Data)
			if int(msg.Index) != a.index || msg.Family != unix.AF_INET6 {
				continue
			}
			attrs, err := nl.ParseRouteAttr(m.Data[unix.SizeofIfAddrmsg:])
			if err != nil {
				continue
			}
			for _, at := range attrs {
				if at.Attr.Type == unix.IFA_ADDRESS && len(at.Value) == 16 {
					removed(netip.AddrFrom16([16]byte(at.Value)))
				}
			}
		}
	}
}
