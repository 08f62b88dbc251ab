package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/hooks"
	"github.com/floatip/floatip/internal/ifaddr"
	"github.com/floatip/floatip/internal/nd"
)

// A fake LAN for the daemon core: every node has a fake ARP socket
// (FrameConn), with IPv6 VIPs a fake ND socket too (NDConn, behind the
// wire), and a fake kernel (Addrs) that holds the VIPs and answers
// probes and Neighbor Solicitations for them like Linux does. The LAN
// forwards an IPv6 multicast frame only to the ND sockets that joined its
// group (all-nodes always), like a switch that snoops MLD with a querier. Frames travel encoded, through the real
// codec, so no two daemons share a packet. Tests run in a testing/synctest
// bubble: the daemons' timers and the clock are fake, and a test waits for
// a condition with a deadline in fake time.

type fakeLAN struct {
	mu    sync.Mutex
	nodes []*fakeNode
}

type fakeNode struct {
	lan   *fakeLAN
	name  string
	mac   net.HardwareAddr
	conn  *fakeConn
	nd    *fakeNDConn // nil without IPv6
	addrs *fakeAddrs
	cut   atomic.Bool // unplugged: no frames in or out
}

func (l *fakeLAN) node(name string, i int) *fakeNode {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, byte(i + 1)}
	n := &fakeNode{lan: l, name: name, mac: mac}
	n.conn = &fakeConn{node: n, in: make(chan []byte, 4096), closed: make(chan struct{})}
	n.addrs = newFakeAddrs(mac)
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	return n
}

// send puts a frame from node from (nil: a stranger) on the LAN.
func (l *fakeLAN) send(from *fakeNode, b []byte) {
	if from != nil && from.cut.Load() {
		return
	}
	if len(b) >= 14 && b[12] == 0x86 && b[13] == 0xdd {
		l.sendND(from, b)
		return
	}
	var p arp.Packet
	decoded := p.UnmarshalBinary(b) == nil
	l.mu.Lock()
	nodes := slices.Clone(l.nodes)
	l.mu.Unlock()
	for _, to := range nodes {
		if to == from || to.cut.Load() {
			continue
		}
		if decoded && !bytes.Equal(p.Destination, arp.Broadcast) && !bytes.Equal(p.Destination, to.mac) {
			continue
		}
		// The kernel answers a probe for an address it has, without a trailer.
		if decoded && p.IsProbe() && to.addrs.has(p.TargetIP) {
			reply, err := arp.NewReply(to.mac, p.SenderHardwareAddr, p.TargetIP, p.SenderIP, nil).MarshalBinary()
			if err == nil {
				defer l.send(to, reply)
			}
		}
		select {
		case to.conn.in <- slices.Clone(b):
		default: // a full socket buffer drops the frame, like the kernel
		}
	}
}

// sendND delivers an IPv6 frame: unicast to its MAC, multicast to the ND
// sockets that joined the group. A node's kernel answers an NS for an
// address it holds as Linux does (see docs/ipv6.md): a DAD NS with an NA
// to all-nodes (Override, target link-layer option), a unicast NS with a
// solicited NA unicast to the sender, without Override or link-layer
// option, a multicast NS from an address with a solicited NA with both.
func (l *fakeLAN) sendND(from *fakeNode, b []byte) {
	var f nd.Frame
	decoded := f.UnmarshalBinary(b) == nil
	dst := net.HardwareAddr(b[0:6])
	group := dst[0]&1 != 0
	l.mu.Lock()
	nodes := slices.Clone(l.nodes)
	l.mu.Unlock()
	for _, to := range nodes {
		if to == from || to.cut.Load() {
			continue
		}
		if !group && !bytes.Equal(dst, to.mac) {
			continue
		}
		if t := f.Target(); decoded && f.IsSolicitation() && to.addrs.has(t) &&
			(!group || bytes.Equal(dst, nd.MulticastMAC(nd.SolicitedNode(t)))) {
			var ans *nd.Frame
			switch {
			case f.SourceIP.IsUnspecified():
				ans = nd.NewAdvertisement(to.mac, t, false, nil)
			case !group:
				ans = nd.NewReply(to.mac, f.Source, t, f.SourceIP, false, nil)
				na := ans.Message.(*ndp.NeighborAdvertisement)
				na.Override, na.Options = false, nil
			default:
				ans = nd.NewReply(to.mac, f.SenderMAC(), t, f.SourceIP, false, nil)
			}
			if enc, err := ans.MarshalBinary(); err == nil {
				defer l.send(to, enc)
			}
		}
		if to.nd == nil || group && !to.nd.member(dst) {
			continue
		}
		select {
		case to.nd.in <- slices.Clone(b):
		default:
		}
	}
}

// fakeNDConn is a node's ND socket (NDConn): it receives the IPv6
// multicast groups it joined, and all-nodes.
type fakeNDConn struct {
	node      *fakeNode
	in        chan []byte
	closeOnce sync.Once
	closed    chan struct{}
	mu        sync.Mutex
	groups    map[netip.Addr]int
	writes    atomic.Int64
}

func newFakeNDConn(n *fakeNode) *fakeNDConn {
	return &fakeNDConn{node: n, in: make(chan []byte, 4096), closed: make(chan struct{}), groups: map[netip.Addr]int{}}
}

func (c *fakeNDConn) member(mac net.HardwareAddr) bool {
	if bytes.Equal(mac, nd.MulticastMAC(nd.AllNodes)) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for g := range c.groups {
		if bytes.Equal(mac, nd.MulticastMAC(g)) {
			return true
		}
	}
	return false
}

// joined reports whether the socket is in g.
func (c *fakeNDConn) joined(g netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[g] > 0
}

func (c *fakeNDConn) Read() (*nd.Frame, error) {
	select {
	case b := <-c.in:
		f := new(nd.Frame)
		if err := f.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		return f, nil
	case <-c.closed:
		return nil, fmt.Errorf("read: %w", net.ErrClosed)
	}
}

func (c *fakeNDConn) Write(f *nd.Frame) error {
	c.writes.Add(1)
	select {
	case <-c.closed:
		return fmt.Errorf("write: %w", net.ErrClosed)
	default:
	}
	b, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	c.node.lan.send(c.node, b)
	return nil
}

func (c *fakeNDConn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[g]++
	return nil
}

func (c *fakeNDConn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g] == 0 {
		return fmt.Errorf("leave %v: not joined", g)
	}
	c.groups[g]--
	if c.groups[g] == 0 {
		delete(c.groups, g)
	}
	return nil
}

func (c *fakeNDConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// linkLocal is the node's link-local address, fe80::<i+1>.
func (n *fakeNode) linkLocal() netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: n.mac[5]})
}

type fakeConn struct {
	node      *fakeNode
	in        chan []byte
	closeOnce sync.Once
	closed    chan struct{}
	// failWrites makes every Write fail (a NIC or socket that refuses
	// frames); writes counts Write calls.
	failWrites atomic.Bool
	writes     atomic.Int64
}

func (c *fakeConn) Read() (*arp.Packet, error) {
	select {
	case b := <-c.in:
		p := new(arp.Packet)
		if err := p.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		return p, nil
	case <-c.closed:
		return nil, fmt.Errorf("read: %w", net.ErrClosed)
	}
}

func (c *fakeConn) Write(p *arp.Packet) error {
	c.writes.Add(1)
	if c.failWrites.Load() {
		return fmt.Errorf("write: %w", syscall.ENOBUFS)
	}
	select {
	case <-c.closed:
		return fmt.Errorf("write: %w", net.ErrClosed)
	default:
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	c.node.lan.send(c.node, b)
	return nil
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// fakeAddrs is a node's kernel: the interface's link, its own addresses and
// the VIPs, with netlink-like events for every change.
type fakeAddrs struct {
	mu       sync.Mutex
	link     ifaddr.Link // Addrs: the host's own addresses
	vips     map[netip.Addr]bool
	claimErr error
	// renewStall makes a Claim of VIPs already present take this long
	// (a netlink call stalled; the fake clock runs meanwhile).
	renewStall time.Duration
	linkErr    error
	closed     bool
	// closedWatched says Close came while Watch still ran (an unowned
	// goroutine using a closed handle).
	closedWatched bool
	watchers      int
	feed          chan ifaddr.Event
}

func newFakeAddrs(mac net.HardwareAddr) *fakeAddrs {
	return &fakeAddrs{
		link: ifaddr.Link{Name: "eth0", Index: 2, MAC: mac, Up: true, Carrier: true,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}},
		vips: map[netip.Addr]bool{},
		feed: make(chan ifaddr.Event, 4096),
	}
}

func (a *fakeAddrs) emit(ev ifaddr.Event) {
	select {
	case a.feed <- ev:
	default:
	}
}

func (a *fakeAddrs) has(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.vips[ip]
}

func (a *fakeAddrs) Claim(vips []netip.Addr, lifetime time.Duration) error {
	a.mu.Lock()
	if stall := a.renewStall; stall > 0 && len(vips) > 0 && a.vips[vips[0]] {
		a.mu.Unlock()
		time.Sleep(stall)
		a.mu.Lock()
	}
	defer a.mu.Unlock()
	if a.claimErr != nil {
		return a.claimErr
	}
	for _, v := range vips {
		if !a.vips[v] {
			a.vips[v] = true
			a.emit(ifaddr.Event{Kind: ifaddr.AddrAdded, Addr: v})
		}
	}
	return nil
}

func (a *fakeAddrs) Release(vips []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, v := range vips {
		a.remove(v)
	}
	return nil
}

func (a *fakeAddrs) remove(v netip.Addr) {
	if a.vips[v] {
		delete(a.vips, v)
		a.emit(ifaddr.Event{Kind: ifaddr.AddrRemoved, Addr: v})
	}
}

// removeByHand deletes a VIP as `ip addr del` would.
func (a *fakeAddrs) removeByHand(v netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remove(v)
}

func (a *fakeAddrs) Present(vips []netip.Addr) (map[netip.Addr]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[netip.Addr]bool{}
	for _, v := range vips {
		out[v] = a.vips[v]
	}
	return out, nil
}

func (a *fakeAddrs) Link() (ifaddr.Link, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.linkErr != nil {
		return ifaddr.Link{}, a.linkErr
	}
	l := a.link
	l.Addrs = slices.Clone(l.Addrs)
	for v := range a.vips {
		l.Addrs = append(l.Addrs, netip.PrefixFrom(v, v.BitLen()))
	}
	return l, nil
}

func (a *fakeAddrs) setLink(up, carrier bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.link.Up, a.link.Carrier = up, carrier
	l := a.link
	l.Addrs = nil
	a.emit(ifaddr.Event{Kind: ifaddr.LinkChanged, Link: l})
}

func (a *fakeAddrs) Watch(ctx context.Context, out chan<- ifaddr.Event) error {
	a.mu.Lock()
	a.watchers++
	a.mu.Unlock()
	defer func() {
		// Like netlink's, the subscription takes a moment to end.
		time.Sleep(time.Millisecond)
		a.mu.Lock()
		a.watchers--
		a.mu.Unlock()
	}()
	for {
		var ev ifaddr.Event
		select {
		case <-ctx.Done():
			return nil
		case ev = <-a.feed:
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		}
	}
}

func (a *fakeAddrs) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	a.closedWatched = a.closedWatched || a.watchers > 0
	return nil
}

// blockingNotifier stands for notify hooks: it records every event, and
// Close blocks until release is closed (a slow hook draining its queue).
type blockingNotifier struct {
	mu      sync.Mutex
	events  []hooks.Event
	release chan struct{}
	closed  atomic.Bool
}

func (n *blockingNotifier) Notify(e hooks.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, e)
}

func (n *blockingNotifier) Close() {
	if n.release != nil {
		<-n.release
	}
	n.closed.Store(true)
}

func (n *blockingNotifier) seen() []hooks.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.events)
}

// testConfig is one node's configuration with the shipped default timing.
func testConfig(node string, prio int, groups ...config.Group) config.Config {
	c := config.Default()
	c.Interface = "eth0"
	c.NodeName = node
	c.Priority = prio
	c.Control.Socket = "/nonexistent/floatip.sock"
	for i := range groups {
		if groups[i].Priority == 0 {
			groups[i].Priority = prio
		}
	}
	c.Groups = groups
	return c
}

func grp(name string, vips ...string) config.Group {
	g := config.Group{Name: name}
	for _, v := range vips {
		g.VIPs = append(g.VIPs, netip.MustParseAddr(v))
	}
	return g
}

// testNode is one daemon core on the fake LAN.
type testNode struct {
	*fakeNode
	t       *testing.T
	d       *daemon
	cfg     config.Config
	next    config.Config // what Options.Load returns
	stopped bool
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("FLOATIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestNode builds a core on the LAN without starting it; deps may
// adjust its Deps.
func (l *fakeLAN) newTestNode(t *testing.T, cfg config.Config, deps func(*Deps)) *testNode {
	fn := l.node(cfg.NodeName, len(l.nodes))
	n := &testNode{fakeNode: fn, t: t, cfg: cfg, next: cfg}
	dp := Deps{Conn: fn.conn, Addrs: fn.addrs, MAC: fn.mac}
	if hasIPv6VIPs(cfg.Groups) {
		// As the OS layer does: the wire over both sockets.
		fn.nd = newFakeNDConn(fn)
		dp.Conn, dp.IPv6 = newWire(fn.conn, fn.nd, fn.linkLocal), true
	}
	if deps != nil {
		deps(&dp)
	}
	opts := Options{Version: "test", Load: func() (config.Config, error) { return n.next, nil }}
	n.d = newDaemon(cfg, testLogger(t).With("node", cfg.NodeName), opts, dp)
	return n
}

func (n *testNode) start() *testNode {
	link, err := checkLink(n.cfg, n.addrs)
	if err != nil {
		n.t.Fatal(err)
	}
	n.d.start(link)
	n.t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	if !n.stopped {
		n.stopped = true
		n.d.stop()
	}
}

// state is the group's state as the control socket reports it ("" for no
// such group).
func (n *testNode) state(group string) string {
	s, err := n.d.Status(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	for _, g := range s.Groups {
		if g.Name == group {
			return fmt.Sprint(g.State)
		}
	}
	return ""
}

func (n *testNode) groupNames() []string {
	s, _ := n.d.Status(context.Background())
	var out []string
	for _, g := range s.Groups {
		out = append(out, g.Name)
	}
	return out
}

// waitFor polls cond until it holds, failing after a minute of fake time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// soleHolder waits until exactly one node holds group (in state and in
// its kernel) and every other is standby, and returns it.
func soleHolder(t *testing.T, group string, vip netip.Addr, nodes ...*testNode) *testNode {
	t.Helper()
	var holder *testNode
	waitFor(t, "one holder of "+group, func() bool {
		holder = nil
		for _, n := range nodes {
			switch n.state(group) {
			case "holder":
				if holder != nil || !n.addrs.has(vip) {
					return false
				}
				holder = n
			case "standby":
				if n.addrs.has(vip) {
					return false
				}
			default:
				return false
			}
		}
		return holder != nil
	})
	return holder
}
