package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
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
	if err := c.Node(1).PowerOff(); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 10*time.Second, "n2 to take over from the powered-off n1")
	if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n2" {
		t.Fatalf("holders of %v after the power-off: %v, want n2 alone", vip, h)
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
