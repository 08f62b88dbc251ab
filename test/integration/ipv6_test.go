package integration

import (
	"context"
	"crypto/rand"
	bin "encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/nd"
	"github.com/floatip/floatip/internal/testutil"
)

// newLab6 is newLab on a lab with IPv6 (lab.Options.IPv6), whose daemons
// float vips (default: the IPv6 VIP alone).
func newLab6(t *testing.T, tag string, nodes int, vips ...netip.Addr) *cluster {
	t.Helper()
	testutil.RequireRoot(t)
	prefix := fmt.Sprintf("f6%d%s", os.Getpid()%1000, tag)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.Up(ctx, lab.Options{Prefix: prefix, Nodes: nodes, Binary: binary, IPv6: true, VIPs: vips})
	if err != nil {
		cancel()
		t.Fatalf("lab up: %v", err)
	}
	c := &cluster{Lab: l, t: t, ctx: ctx, daemons: map[string]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		cancel()
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	for _, n := range l.Nodes() {
		if _, err := n.StartService(ctx); err != nil {
			t.Fatalf("service on %s: %v", n.Name, err)
		}
	}
	return c
}

// holdersOf returns the nodes (powered on) that have ip on eth0.
func (c *cluster) holdersOf(ip netip.Addr) []string {
	c.t.Helper()
	var h []string
	for _, n := range c.Nodes() {
		if n.PoweredOff() {
			continue
		}
		ok, err := n.HasAddr(ip)
		if err != nil {
			c.t.Fatalf("%s: %v", n.Name, err)
		}
		if ok {
			h = append(h, n.Name)
		}
	}
	return h
}

// clientResolves makes the client namespace forget the VIP's neighbour
// entry, connects to the VIP (so its kernel resolves it again with a
// Neighbor Solicitation), and returns the node that served the request and
// the MAC the client's neighbour cache then has for the VIP.
func (c *cluster) clientResolves(vip netip.Addr) (served, lladdr string) {
	c.t.Helper()
	ns := c.ClientNode().NS
	if out, err := exec.Command("ip", "-n", ns, "-6", "neigh", "flush", "to", vip.String()).CombinedOutput(); err != nil {
		c.t.Fatalf("flushing the client's neighbour entry: %v\n%s", err, out)
	}
	return c.clientReaches(vip)
}

// clientReaches connects to the VIP from the client namespace with the
// neighbour entry it has, and returns the node that served the request and
// the MAC the client's neighbour cache has for the VIP afterwards.
func (c *cluster) clientReaches(vip netip.Addr) (served, lladdr string) {
	c.t.Helper()
	ns := c.ClientNode().NS
	client, err := c.StartClient(c.ctx, lab.ClientOptions{Target: netip.AddrPortFrom(vip, lab.ServicePort), Count: 1, Timeout: 2 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	s, err := client.Wait()
	if err != nil || len(s) != 1 || !s[0].OK {
		c.t.Fatalf("the client could not reach [%v]:%d: %v %+v", vip, lab.ServicePort, err, s)
	}
	out, err := exec.Command("ip", "-n", ns, "-6", "neigh", "show", vip.String(), "dev", "eth0").CombinedOutput()
	if err != nil {
		c.t.Fatalf("reading the client's neighbour entry: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			lladdr = f[i+1]
		}
	}
	return s[0].Node, lladdr
}

// startAll6 starts every node's daemon, n1 first, and waits until n1
// holds the lab's first VIP and the others are standbys.
func (c *cluster) startAll6(extra ...string) {
	c.t.Helper()
	for i, n := range c.Nodes() {
		c.start(n, extra...)
		if i == 0 {
			c.waitHolders(lab.HeldBy("n1"), 5*time.Second, "n1 to hold the VIP after starting first")
		}
	}
	for _, n := range c.Nodes()[1:] {
		c.waitState(n.Name, "standby", 5*time.Second)
	}
}

func TestIPv6PowerOffFailsOver(t *testing.T) {
	c := newLab6(t, "off", 3)
	vip := c.VIP6
	c.startAll6()
	if served, mac := c.clientResolves(vip); served != "n1" || mac != c.macOf(c.Node(1)) {
		t.Fatalf("before the fault the client reached %s and resolved %v to %s, want n1 at %s", served, vip, mac, c.macOf(c.Node(1)))
	}
	if out := c.statusCmd(c.Node(1)); !strings.Contains(out, vip.String()) || !strings.Contains(out, "holder") {
		t.Errorf("floatip status on n1 does not show it holding %v:\n%s", vip, out)
	}
	if err := c.Node(1).PowerOff(); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 10*time.Second, "n2 to take over from the powered-off n1")
	if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n2" {
		t.Fatalf("holders of %v after the power-off: %v, want n2 alone", vip, h)
	}
	// The client's entry still says n1: n2's unsolicited NAs move it.
	if served, mac := c.clientReaches(vip); served != "n2" || mac != c.macOf(c.Node(2)) {
		t.Errorf("after the fault the client (entry kept) reached %s with %v at %s, want n2 at %s", served, vip, mac, c.macOf(c.Node(2)))
	}
	if served, mac := c.clientResolves(vip); served != "n2" || mac != c.macOf(c.Node(2)) {
		t.Errorf("after the fault the client reached %s and resolved %v to %s, want n2 at %s", served, vip, mac, c.macOf(c.Node(2)))
	}
	if c.everHeld("n3") {
		t.Error("n3 (priority 100) became holder although n2 (150) was alive")
	}
}

func TestIPv6GracefulStopHandsOver(t *testing.T) {
	c := newLab6(t, "stop", 2)
	vip := c.VIP6
	c.startAll6()
	n1 := c.daemons["n1"]
	if err := c.Node(1).Inject(lab.Fault{Kind: lab.FaultStop}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("n1 did not exit within 5s of SIGTERM")
	}
	if err := n1.Wait(); err != nil {
		t.Errorf("n1 exit after SIGTERM: %v, want status 0", err)
	}
	if _, err := n1.WaitMsg(c.ctx, time.Second, "release sent", nil); err != nil {
		t.Errorf("n1 did not announce its release: %v", err)
	}
	c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to take over after n1's release")
	if line := c.waitState("n2", "candidate", time.Second); !strings.Contains(line.Str("reason"), "released") {
		t.Errorf("n2 became candidate with reason %q, want n1's release", line.Str("reason"))
	}
	if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n2" {
		t.Fatalf("holders of %v after the graceful stop: %v, want n2 alone", vip, h)
	}
	if served, mac := c.clientResolves(vip); served != "n2" || mac != c.macOf(c.Node(2)) {
		t.Errorf("after the stop the client reached %s and resolved %v to %s, want n2 at %s", served, vip, mac, c.macOf(c.Node(2)))
	}
}

// TestDualStackMovesTogether: a group of an IPv4 and an IPv6 VIP is on one
// node before, during and after a failover: every sample of the kernels'
// address state finds both addresses on the same nodes.
func TestDualStackMovesTogether(t *testing.T) {
	c := newLab6(t, "dual", 3, lab.DefaultVIP, lab.DefaultVIP6)
	c.startAll6()
	stop := make(chan struct{})
	split := make(chan string, 1)
	go func() {
		// The nodes are read one after the other, each node's two
		// addresses in one dump: a node with one but not the other, in
		// two samples in a row, is a split group (one sample may fall
		// between the two families' netlink calls of a claim).
		prev := ""
		for {
			bad := ""
			for _, n := range c.Nodes() {
				if n.PoweredOff() {
					continue
				}
				v4, err4 := n.HasAddr(c.VIP)
				v6, err6 := n.HasAddr(c.VIP6)
				if err4 == nil && err6 == nil && v4 != v6 {
					bad = fmt.Sprintf("%s has %v: %v, %v: %v", n.Name, c.VIP, v4, c.VIP6, v6)
				}
			}
			if bad != "" && prev != "" {
				split <- prev + "; then " + bad
				return
			}
			prev = bad
			select {
			case <-stop:
				split <- ""
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	if err := c.Node(1).PowerOff(); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 10*time.Second, "n2 to take over the dual-stack group")
	if err := c.Node(2).Inject(lab.Fault{Kind: lab.FaultStop}); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n3"), 10*time.Second, "n3 to take over after n2's graceful stop")
	close(stop)
	if s := <-split; s != "" {
		t.Errorf("the group's addresses were on different nodes: %s", s)
	}
	for _, vip := range []netip.Addr{c.VIP, c.VIP6} {
		if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n3" {
			t.Errorf("holders of %v: %v, want n3 alone", vip, h)
		}
	}
	if served, mac := c.clientResolves(c.VIP6); served != "n3" || mac != c.macOf(c.Node(3)) {
		t.Errorf("the client reached %s and resolved %v to %s, want n3 at %s", served, c.VIP6, mac, c.macOf(c.Node(3)))
	}
}

// forgedND is an ND frame with floatip's option whose auth block has the
// real key id and a random tag (sealed), or none: what an attacker without
// the key can send.
func forgedND(t *testing.T, f *nd.Frame, keyID uint32, sealed bool) []byte {
	t.Helper()
	if sealed {
		blk := make([]byte, auth.BlockLen)
		copy(blk, "FLAU")
		blk[4] = auth.Version
		bin.BigEndian.PutUint32(blk[6:10], keyID)
		bin.BigEndian.PutUint64(blk[10:18], uint64(time.Now().UnixNano()))
		rand.Read(blk[18:])
		f.Option.Auth = blk
	}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIPv6Auth: with auth, an IPv6 group elects, checks and fails over as
// without it, and forged ND frames from the client namespace (a better
// claim in a standby's name, a release in the holder's name, with a bad
// tag or none) are counted and move nothing.
func TestIPv6Auth(t *testing.T) {
	c := newLab6(t, "auth", 2)
	vip := c.VIP6
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	k, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WriteKeyFile(keyFile, k, false); err != nil {
		t.Fatal(err)
	}
	if err := c.ClientNode().SetLearning(false); err != nil {
		t.Fatalf("attacker port: %v", err)
	}
	c.startAllWithConfig(func(n *lab.Node) string {
		return fmt.Sprintf("interface: eth0\npriority: %s\nvips: [%s]\nlog_level: debug\nauth:\n  key_file: %s\n  sequence_file: %s\n",
			priority(n), vip, keyFile, filepath.Join(dir, "seq-"+n.Name))
	})
	n1, n2 := hwAddr(t, c.Node(1)), hwAddr(t, c.Node(2))
	claim := func(mac net.HardwareAddr, sealed bool) []byte {
		return forgedND(t, nd.NewAdvertisement(mac, vip, false, &nd.Option{Trailer: arp.Trailer{Kind: arp.KindAnnounce, Priority: 254, Flags: arp.FlagHolder}}), uint32(k.ID()), sealed)
	}
	release := func(mac net.HardwareAddr, sealed bool) []byte {
		return forgedND(t, nd.NewProbe(mac, nil, vip, &nd.Option{Trailer: arp.Trailer{Kind: arp.KindRelease, Priority: 200, Flags: arp.FlagPassive}}), uint32(k.ID()), sealed)
	}
	var frames [][]byte
	for range 10 {
		frames = append(frames, claim(n2, true), release(n1, true), claim(n2, false), release(n1, false))
	}
	before := map[string]control.Status{}
	for _, n := range c.Nodes() {
		before[n.Name] = c.waitStatus(n, func(control.Status) bool { return true }, "status")
	}
	c.attack(frames)
	// Each node sees the 20 sealed forgeries not in its own name as bad
	// tags, the 20 in its name as spoofed (unverified), and the unsealed
	// ones not in its name as missing an auth block.
	for _, n := range c.Nodes() {
		b := before[n.Name]
		c.waitStatus(n, func(s control.Status) bool {
			return s.Auth.Failures["bad_tag"]-b.Auth.Failures["bad_tag"] >= 10 && s.SpoofedFrames-b.SpoofedFrames >= 20 &&
				s.Auth.Failures["missing"]-b.Auth.Failures["missing"] >= 10
		}, "the forged frames to be counted")
	}
	if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n1" {
		t.Fatalf("holders of %v after the forged frames: %v, want n1 alone", vip, h)
	}
	for _, n := range c.Nodes() {
		s, err := c.status(n)
		if err != nil {
			t.Fatal(err)
		}
		b := before[n.Name]
		if s.Groups[0].State != before[n.Name].Groups[0].State || s.Groups[0].Counters.Transitions != b.Groups[0].Counters.Transitions {
			t.Errorf("%s: state %v (%d transitions) after the forged frames, was %v (%d)", n.Name, s.Groups[0].State,
				s.Groups[0].Counters.Transitions, b.Groups[0].State, b.Groups[0].Counters.Transitions)
		}
	}
	// And the group still fails over, authenticated.
	if err := c.Node(1).PowerOff(); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 10*time.Second, "n2 to take over from the powered-off n1")
	if served, mac := c.clientResolves(vip); served != "n2" || mac != c.macOf(c.Node(2)) {
		t.Errorf("after the fault the client reached %s and resolved %v to %s, want n2 at %s", served, vip, mac, c.macOf(c.Node(2)))
	}
}

// An IPv6 VIP deleted from the holder by hand is noticed at once (not only
// at the next renewal), as for IPv4.
func TestIPv6VIPRemovedByHand(t *testing.T) {
	c := newLab6(t, "del", 2)
	c.startAll6()
	if out, err := exec.Command("ip", "-n", c.Node(1).NS, "addr", "del", c.VIP6.String()+"/128", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("ip addr del: %v\n%s", err, out)
	}
	if _, err := c.daemons["n1"].WaitMsg(c.ctx, 3*time.Second, "state changed", func(l lab.Line) bool {
		return l.Str("from") == "holder" && strings.Contains(l.Str("reason"), "disappeared")
	}); err != nil {
		t.Fatalf("n1 did not notice its VIP was removed: %v", err)
	}
	h := c.waitHolders(lab.ExactlyOne, 5*time.Second, "one node to hold the VIP again")
	if got := c.holdersOf(c.VIP6); len(got) != 1 || got[0] != h[0] {
		t.Fatalf("holders of %v: %v", c.VIP6, got)
	}
}

// A killed holder's IPv6 VIP expires by itself (valid lifetime, never
// renewed), and only then does the standby take it: never two holders.
func TestIPv6Kill9LeavesNoDuplicate(t *testing.T) {
	c := newLab6(t, "kill", 2)
	c.startAll6()
	stop := make(chan struct{})
	worst := c.watchHolders(stop)
	if err := c.Node(1).Inject(lab.Fault{Kind: lab.FaultCrash}); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 8*time.Second, "n1's IPv6 VIP to expire and n2 to take over")
	close(stop)
	if w := <-worst; len(w) > 1 {
		t.Errorf("two holders at once after kill -9: %v", w)
	}
}

// After a partition heals, an IPv6 group ends with one holder, the node of
// highest priority, and the client's neighbour entry follows it.
func TestIPv6PartitionHeals(t *testing.T) {
	c := newLab6(t, "part", 3)
	c.startAll6()
	if err := c.Node(1).Inject(lab.Fault{Kind: lab.FaultPartition}); err != nil {
		t.Fatal(err)
	}
	c.waitState("n2", "holder", 5*time.Second)
	if err := c.Node(1).Heal(c.ctx, lab.FaultPartition); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n1"), 10*time.Second, "n1 (priority 200) to be the one holder after the heal")
	if served, mac := c.clientResolves(c.VIP6); served != "n1" || mac != c.macOf(c.Node(1)) {
		t.Errorf("after the heal the client reached %s and resolved %v to %s, want n1 at %s", served, c.VIP6, mac, c.macOf(c.Node(1)))
	}
}

// On an interface without IPv6 (the IPv4 lab turns it off), an IPv6 VIP is
// refused at start with the fix in one line, rather than faulting forever.
func TestIPv6VIPWithoutIPv6IsRefused(t *testing.T) {
	c := newLab(t, 1)
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", c.Node(1).NS, binary, "run", "--interface", "eth0",
		"--vip", "2001:db8:18::100", "--node-name", "n1", "--socket", c.Node(1).Socket()).CombinedOutput()
	want := `floatip: IPv6 VIPs configured, but IPv6 is disabled on "eth0": set net.ipv6.conf.eth0.disable_ipv6=0`
	if err == nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("floatip run with an IPv6 VIP on an interface without IPv6: %v, output:\n%s\nwant:\n%s", err, out, want)
	}
}
