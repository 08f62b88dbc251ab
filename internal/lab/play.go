package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/control"
)

// A lab to play in (`floatip lab up`): a lab with floatip and the HTTP
// service on every node and a client sampling the VIP, kept running in the
// background by a supervisor process (`floatip lab supervise`) that holds
// the Lab and answers status, fault, heal and down over a unix socket in
// PlayDir (see supervise.go).

// PlayOptions configures StartPlay and UpPlay.
type PlayOptions struct {
	Prefix  string // default DefaultPrefix
	Nodes   int    // 1..MaxNodes, default 3; node i gets Priority(i, Nodes)
	Profile string // floatip's --profile, default "default"
	// Stack is what the group floats: the IPv4 VIP (default), the IPv6 VIP,
	// or both in one group (dual).
	Stack Stack
	// Binary is the floatip executable; default os.Executable(). UpPlay
	// copies it into PlayDir (a `go run` build is deleted when go run
	// exits, and the supervisor restarts daemons long after).
	Binary   string
	Progress io.Writer // progress lines; nil discards them
	// Quorum "etcd" runs a three-member etcd (one member on each of the
	// first three nodes) and gives the daemons the quorum, as
	// DemoOptions.Quorum; "" none.
	Quorum string
}

func (o *PlayOptions) setDefaults() error {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	// The rest of the checks are Up's; these come first for UpPlay, which
	// starts Up in another process.
	lo := Options{Prefix: o.Prefix, Nodes: o.Nodes}
	if err := lo.setLayout(); err != nil {
		return err
	}
	o.Prefix = lo.Prefix
	if o.Profile == "" {
		o.Profile = "default"
	}
	if o.Quorum != "" && o.Quorum != "etcd" {
		return fmt.Errorf("--quorum %q: want etcd", o.Quorum)
	}
	if o.Quorum != "" && o.Nodes < 3 {
		return fmt.Errorf("--nodes %d: with --quorum the lab runs an etcd member on each of three nodes, so it needs at least 3", o.Nodes)
	}
	if o.Stack == "" {
		o.Stack = StackIPv4
	}
	if _, err := StackOptions(lo, o.Stack); err != nil {
		return err
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// Play client: one request every PlayEvery, and how far back status counts.
const (
	PlayEvery      = 20 * time.Millisecond
	PlayWindow     = 5 * time.Second
	playKeepLines  = 50000 // client lines kept (about 17 min at PlayEvery)
	playKeepDaemon = 20000 // daemon log lines kept
)

// Play is a running lab to play in: services, daemons and a client, until
// Close.
type Play struct {
	Lab     *Lab
	Profile string
	Quorum  string // the etcd endpoints, "" without a quorum
	Started time.Time

	ctx     context.Context // processes started by heals live as long as the play
	cancel  context.CancelFunc
	checks  string
	prios   map[string]int
	client  *Client
	holders *HolderRecorder

	mu sync.Mutex // serialises faults and heals
}

// StartPlay builds a lab and starts on every node the HTTP service and
// floatip (priorities Priority(i, n), health check of the node's service),
// waits until exactly one node holds the VIP, and starts the client. The
// processes live until Close (not until ctx ends: ctx bounds the start-up).
func StartPlay(ctx context.Context, o PlayOptions) (_ *Play, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	lo, err := StackOptions(Options{Prefix: o.Prefix, Nodes: o.Nodes, Binary: o.Binary, Progress: o.Progress}, o.Stack)
	if err != nil {
		return nil, err
	}
	l, err := Up(ctx, lo)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &Play{Lab: l, Profile: o.Profile, Started: time.Now(), ctx: pctx, cancel: cancel, prios: map[string]int{}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	quorum, err := startQuorum(ctx, l, o.Quorum, o.Progress)
	if err != nil {
		return nil, err
	}
	if c := l.Etcd(); c != nil {
		p.Quorum = strings.Join(c.Endpoints(), ",")
	}
	fmt.Fprintf(o.Progress, "starting HTTP services and floatip (profile %s)... ", o.Profile)
	if p.checks, err = WriteServiceChecks(); err != nil {
		return nil, err
	}
	if quorum != "" {
		if err := appendFile(p.checks, quorum); err != nil {
			return nil, err
		}
	}
	var daemons []*Proc
	for i, n := range l.Nodes() {
		if _, err := n.StartService(pctx); err != nil {
			return nil, err
		}
		prio := Priority(i+1, o.Nodes)
		p.prios[n.Name] = prio
		d, err := n.StartFloatip(pctx, "--priority", strconv.Itoa(prio), "--profile", o.Profile, "--config", p.checks)
		if err != nil {
			return nil, err
		}
		d.SetKeep(playKeepDaemon)
		daemons = append(daemons, d)
	}
	fmt.Fprintf(o.Progress, "ok\nwaiting for one holder of %s... ", vipList(l.VIPs))
	h, err := l.WaitGroupHolders(ctx, l.VIPs, ExactlyOne, DemoRecover, daemons...)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "%s\n", h[0])
	p.client, err = l.StartClient(pctx, ClientOptions{Target: clientTarget(l), Every: PlayEvery, Duration: 100000 * time.Hour})
	if err != nil {
		return nil, err
	}
	p.client.Proc.SetKeep(playKeepLines)
	p.holders = l.RecordHolders(pctx)
	return p, nil
}

// Close stops everything and removes the lab (namespaces, sockets).
func (p *Play) Close() error {
	if p.holders != nil {
		p.holders.Stop()
	}
	p.cancel()
	if p.checks != "" {
		os.Remove(p.checks)
	}
	return p.Lab.Down()
}

// PlayStatus is what `floatip lab status` shows.
type PlayStatus struct {
	Prefix string `json:"prefix"`
	VIP    string `json:"vip"` // the first of VIPs, which Holders are of
	// VIPs are the group's addresses (IPv4 first); Target is what the
	// client requests.
	VIPs   []string `json:"vips"`
	Target string   `json:"client_target"`
	// VIPHolders are the holders of each of VIPs (kernel state), in order.
	VIPHolders [][]string `json:"vip_holders"`
	// Apart (a dual-stack group): the VIPs are held, but by no common node
	// (lab.Split).
	Apart   bool         `json:"vips_apart,omitempty"`
	Profile string       `json:"profile"`
	Quorum  string       `json:"quorum,omitempty"` // the etcd endpoints
	Binary  string       `json:"binary"`
	Started time.Time    `json:"started"`
	Nodes   []PlayNode   `json:"nodes"`
	Holders []string     `json:"holders"` // the nodes whose eth0 has the VIP (kernel state)
	Since   time.Time    `json:"holders_since,omitzero"`
	Client  PlayClient   `json:"client"`
	Errors  []string     `json:"errors,omitempty"`
	Changes []PlayChange `json:"changes,omitempty"` // the last few holder changes
}

// PlayNode is one node in PlayStatus.
type PlayNode struct {
	Name     string   `json:"name"`
	NS       string   `json:"namespace"`
	IP       string   `json:"ip"`
	IP6      string   `json:"ip6,omitempty"`
	Priority int      `json:"priority"` // the daemon's (control socket), else the one it was started with
	Socket   string   `json:"socket"`
	Daemon   string   `json:"daemon"` // running, exited, frozen, powered off
	State    string   `json:"state"`  // the daemon's group state (control socket); "" when it does not answer
	Reason   string   `json:"reason,omitempty"`
	Holder   string   `json:"holder_node,omitempty"` // whom the daemon believes holds the VIP
	HoldsVIP bool     `json:"holds_vip"`
	Faults   []string `json:"faults"`
}

// PlayClient is what the client saw in the last PlayWindow.
type PlayClient struct {
	Window    time.Duration  `json:"window_ns"`
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	Answering map[string]int `json:"answering"` // node -> answers
	LastNode  string         `json:"last_node,omitempty"`
	LastErr   string         `json:"last_error,omitempty"`
	Running   bool           `json:"running"`
}

// PlayChange is a change of the VIP's holders.
type PlayChange struct {
	At   time.Time `json:"at"`
	From []string  `json:"from"`
	To   []string  `json:"to"`
}

// Status reads the lab's state: each daemon over its control socket, the
// holders from the kernel, the client's recent samples.
func (p *Play) Status(ctx context.Context) PlayStatus {
	l := p.Lab
	st := PlayStatus{Prefix: l.Prefix, VIP: l.VIPs[0].String(), Target: clientTarget(l).String(), Profile: p.Profile, Quorum: p.Quorum, Binary: l.Binary, Started: p.Started}
	for _, v := range l.VIPs {
		st.VIPs = append(st.VIPs, v.String())
	}
	holders, err := l.Holders()
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
	}
	if per, err := l.HoldersOf(l.VIPs); err == nil {
		for _, h := range per {
			st.VIPHolders = append(st.VIPHolders, orEmpty(h))
		}
		st.Apart = Split(per)
	} else {
		st.Errors = append(st.Errors, err.Error())
	}
	st.Holders = orEmpty(holders)
	for _, n := range l.Nodes() {
		pn := PlayNode{Name: n.Name, NS: n.NS, IP: n.IP.String(), IP6: addrOrEmpty(n.IP6), Priority: p.prios[n.Name], Socket: n.Socket(),
			HoldsVIP: slices.Contains(holders, n.Name), Faults: []string{}}
		for _, f := range n.Faults() {
			pn.Faults = append(pn.Faults, f.String())
		}
		switch d := n.Daemon(); {
		case n.PoweredOff():
			pn.Daemon = "powered off"
		case d == nil || d.Exited():
			pn.Daemon = "exited"
		case slices.ContainsFunc(n.Faults(), func(f Fault) bool { return f.Kind == FaultFreeze }):
			pn.Daemon = "frozen"
		default:
			pn.Daemon = "running"
		}
		if pn.Daemon == "running" {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := control.Client{Path: n.Socket(), Timeout: time.Second}.Status(cctx)
			cancel()
			if err == nil && len(s.Groups) > 0 {
				g := s.Groups[0]
				pn.State, pn.Reason, pn.Holder = g.State.String(), g.Reason, g.HolderNode
				pn.Priority = g.Priority // as the daemon runs it
				switch {
				case g.State.HasVIPs():
					pn.Holder = "itself"
				case pn.Holder == "":
					pn.Holder = g.Holder // a MAC until names travel on the wire
				}
			} else if err != nil {
				pn.Reason = err.Error()
			}
		}
		st.Nodes = append(st.Nodes, pn)
	}
	if p.holders != nil {
		obs := p.holders.Observations()
		if len(obs) > 0 {
			st.Since = obs[len(obs)-1].At
		}
		ch := p.holders.Changes()
		for _, c := range ch[max(len(ch)-5, 0):] {
			st.Changes = append(st.Changes, PlayChange{At: c.At, From: orEmpty(c.From), To: orEmpty(c.To)})
		}
	}
	st.Client = clientStatus(p.client, time.Now())
	return st
}

func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// clientStatus counts the client's samples sent in the last PlayWindow
// before now (leaving out the last 100 ms, whose requests may still run).
func clientStatus(c *Client, now time.Time) PlayClient {
	pc := PlayClient{Window: PlayWindow, Answering: map[string]int{}}
	if c == nil {
		return pc
	}
	pc.Running = !c.Proc.Exited()
	from, to := now.Add(-PlayWindow-100*time.Millisecond), now.Add(-100*time.Millisecond)
	for _, s := range c.Samples() {
		if s.At.Before(from) || !s.At.Before(to) {
			continue
		}
		if s.OK {
			pc.OK++
			pc.Answering[s.Node]++
			pc.LastNode = s.Node
		} else {
			pc.Failed++
			pc.LastErr = s.Err
		}
	}
	return pc
}

// Fault injects spec (a FaultKind name, "loss:20") on the named node, by
// default ("") on the node holding the VIP. It returns the node's name.
func (p *Play) Fault(spec, node string) (string, error) {
	f, err := ParseFault(spec)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n, err := p.node(node)
	if err != nil {
		return "", err
	}
	if err := n.Inject(f); err != nil {
		return "", err
	}
	return n.Name, nil
}

// node is the named node, or the holder for "".
func (p *Play) node(name string) (*Node, error) {
	if name != "" {
		n := p.Lab.NodeByName(name)
		if n == nil {
			return nil, fmt.Errorf("no node %q in the lab (it has %s)", name, nodeNames(p.Lab.Nodes()))
		}
		return n, nil
	}
	h, err := p.Lab.Holders()
	if err != nil {
		return nil, err
	}
	if len(h) != 1 {
		return nil, fmt.Errorf("%s nodes hold the VIP (%s): name the node", strconv.Itoa(len(h)), noneOr(h))
	}
	return p.Lab.NodeByName(h[0]), nil
}

// Heal undoes faults: kind "" means every fault in force; node "" every
// node. It returns what it healed ("crash on n1") and fails when there was
// nothing to heal.
func (p *Play) Heal(kind, node string) ([]string, error) {
	var k FaultKind
	if kind != "" {
		var err error
		if k, err = ParseFaultKind(kind); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	nodes := p.Lab.Nodes()
	if node != "" {
		n, err := p.node(node)
		if err != nil {
			return nil, err
		}
		nodes = []*Node{n}
	}
	var healed []string
	var errs []error
	for _, n := range nodes {
		for _, f := range n.Faults() {
			if k != "" && f.Kind != k {
				continue
			}
			if err := n.Heal(p.ctx, f.Kind); err != nil {
				errs = append(errs, err)
				continue
			}
			healed = append(healed, f.String()+" on "+n.Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return healed, err
	}
	if len(healed) == 0 {
		what := "no fault"
		if k != "" {
			what = "no " + string(k) + " fault"
		}
		where := "on any node"
		if node != "" {
			where = "on " + node
		}
		return nil, fmt.Errorf("%s in force %s", what, where)
	}
	return healed, nil
}

// FormatPlayStatus writes st for a person: a line per node, the holders,
// the client.
func FormatPlayStatus(w io.Writer, st PlayStatus, now time.Time) error {
	var b strings.Builder
	vips := st.VIP
	if len(st.VIPs) > 1 {
		vips = strings.Join(st.VIPs, " and ") + " (one group)"
	}
	fmt.Fprintf(&b, "lab %s: VIP %s, profile %s, up %s\n", st.Prefix, vips, st.Profile, now.Sub(st.Started).Round(time.Second))
	if st.Quorum != "" {
		fmt.Fprintf(&b, "quorum: etcd %s (lease TTL %s)\n", st.Quorum, QuorumTTL)
	}
	addrW := 13
	for _, n := range st.Nodes {
		if n.IP6 != "" {
			addrW = max(addrW, len(n.IP)+1+len(n.IP6))
		}
	}
	fmt.Fprintf(&b, "  %-4s %-*s %-4s %-12s %-10s %-4s %-10s %s\n", "NODE", addrW, "ADDRESS", "PRIO", "DAEMON", "STATE", "VIP", "FAULTS", "SEES HOLDER")
	for _, n := range st.Nodes {
		addr := n.IP
		if n.IP6 != "" {
			addr += " " + n.IP6
		}
		vip := "-"
		if n.HoldsVIP {
			vip = "yes"
		}
		state := n.State
		if state == "" {
			state = "-"
		}
		faults := strings.Join(n.Faults, ",")
		if faults == "" {
			faults = "-"
		}
		fmt.Fprintf(&b, "  %-4s %-*s %-4d %-12s %-10s %-4s %-10s %s\n", n.Name, addrW, addr, n.Priority, n.Daemon, state, vip, faults, dash(n.Holder))
	}
	since := ""
	if !st.Since.IsZero() {
		since = fmt.Sprintf(" (since %s, %s ago)", clock(st.Since), now.Sub(st.Since).Round(time.Second))
	}
	switch len(st.Holders) {
	case 0:
		fmt.Fprintf(&b, "VIP held by: none%s\n", since)
	case 1:
		fmt.Fprintf(&b, "VIP held by: %s%s\n", st.Holders[0], since)
	default:
		fmt.Fprintf(&b, "VIP held by: %s%s  WARNING: more than one node\n", strings.Join(st.Holders, ", "), since)
	}
	if len(st.VIPs) > 1 && len(st.VIPHolders) == len(st.VIPs) {
		parts := make([]string, len(st.VIPs))
		for i, v := range st.VIPs {
			parts[i] = v + " " + noneOr(st.VIPHolders[i])
		}
		fmt.Fprintf(&b, "  by address: %s\n", strings.Join(parts, "; "))
	}
	if st.Apart {
		fmt.Fprintf(&b, "WARNING: the group's addresses are on different nodes\n")
	}
	c := st.Client
	client := ClientIP.String()
	if strings.HasPrefix(st.Target, "[") {
		client = ClientIP6.String() + " to " + st.Target
	}
	fmt.Fprintf(&b, "client (%s, a request every %s, last %s): %d ok, %d failed", client, PlayEvery, c.Window, c.OK, c.Failed)
	if len(c.Answering) > 0 {
		fmt.Fprintf(&b, "; answered by %s", keysOfCount(c.Answering))
	}
	if c.LastErr != "" {
		fmt.Fprintf(&b, "; last error %s", c.LastErr)
	}
	if !c.Running {
		b.WriteString("; the client has stopped")
	}
	b.WriteString("\n")
	for _, e := range st.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
