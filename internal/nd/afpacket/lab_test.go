//go:build linux

package afpacket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/ifaddr6"
	"github.com/floatip/floatip/internal/nd"
	"github.com/floatip/floatip/internal/testutil"
)

// The lab: namespaces A and B, each with one veth end ("a0", "b0") whose
// other end is a port of bridge "br0" in a third namespace S. The bridge
// snoops MLD and is its own querier, so it forwards a multicast group only
// to the ports that reported it, as a real switch does.
type lab struct {
	a, b, s string // namespace names
}

var (
	ipA  = netip.MustParseAddr("2001:db8:ff::a")
	ipB  = netip.MustParseAddr("2001:db8:ff::b")
	vipB = netip.MustParseAddr("2001:db8:ff::10") // held by B
	free = netip.MustParseAddr("2001:db8:ff::99") // held by nobody
)

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	p := os.Getpid()
	l := &lab{a: fmt.Sprintf("nd%da", p), b: fmt.Sprintf("nd%db", p), s: fmt.Sprintf("nd%ds", p)}
	for _, ns := range []string{l.a, l.b, l.s} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	// No DAD for the bridge's link-local: the bridge's MLD querier needs a
	// usable source address before its first query, or it stays silent
	// (and the bridge floods) until the next startup query 31 s later.
	run(t, "ip", "netns", "exec", l.s, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	run(t, "ip", "-n", l.s, "link", "add", "br0", "type", "bridge",
		"mcast_snooping", "1", "mcast_querier", "1")
	run(t, "ip", "-n", l.s, "link", "set", "br0", "up")
	for _, x := range []struct{ ns, dev, port string }{{l.a, "a0", "pa"}, {l.b, "b0", "pb"}} {
		run(t, "ip", "-n", l.s, "link", "add", x.port, "type", "veth", "peer", "name", x.dev, "netns", x.ns)
		run(t, "ip", "-n", l.s, "link", "set", x.port, "master", "br0", "up")
		run(t, "ip", "-n", x.ns, "link", "set", x.dev, "up")
	}
	run(t, "ip", "-n", l.a, "addr", "add", ipA.String()+"/64", "dev", "a0", "nodad")
	run(t, "ip", "-n", l.b, "addr", "add", ipB.String()+"/64", "dev", "b0", "nodad")
	return l
}

// inNS runs fn on a thread in network namespace ns. The thread is never
// unlocked, so it dies with the goroutine and no other code runs there;
// sockets fn opens stay in ns and can be used from anywhere.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			done <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func listenIn(t *testing.T, ns, ifname string) *Conn {
	t.Helper()
	var c *Conn
	inNS(t, ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = Listen(ifi)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func claimIn(t *testing.T, ns, ifname string, vip netip.Addr, valid time.Duration) *ifaddr6.Addrs {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, err := ifaddr6.Open(ifname, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Claim([]netip.Addr{vip}, valid); err != nil {
		t.Fatal(err)
	}
	return a
}

// readUntil reads from c until match accepts a frame or 5 s pass. Malformed
// frames and our own frames fail the test; unrelated frames are logged.
func readUntil(t *testing.T, c *Conn, what string, match func(*nd.Frame) bool) *nd.Frame {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.Read()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if f.Source.String() == c.HardwareAddr().String() {
			t.Fatalf("Read returned our own frame: %+v", f)
		}
		if match(f) {
			return f
		}
		t.Logf("skipping unrelated frame: %v -> %v %T target %v", f.SourceIP, f.DestinationIP, f.Message, f.Target())
	}
}

func isNAFor(target netip.Addr) func(*nd.Frame) bool {
	return func(f *nd.Frame) bool { return f.IsAdvertisement() && f.Target() == target }
}

func TestLab(t *testing.T) {
	l := newLab(t)
	a := listenIn(t, l.a, "a0")
	b := listenIn(t, l.b, "b0")
	// B holds the VIP the way floatip claims it: /128, NODAD, preferred 0.
	claimIn(t, l.b, "b0", vipB, time.Hour)
	t.Log(run(t, "ip", "-n", l.b, "-6", "addr", "show", "dev", "b0"))

	t.Run("kernel answers DAD probe for held address, not for free one", func(t *testing.T) {
		opt := &nd.Option{Trailer: arp.Trailer{Kind: arp.KindProbe, Priority: 100, NodeID: 7}}
		// The free address first: the bridge and B's kernel keep the
		// order, so an answer for it would come before the held one's.
		for _, vip := range []netip.Addr{free, vipB} {
			if err := a.Write(nd.NewProbe(a.HardwareAddr(), nil, vip, opt)); err != nil {
				t.Fatal(err)
			}
		}
		got := readUntil(t, a, "NA for held VIP", func(f *nd.Frame) bool {
			if isNAFor(free)(f) {
				t.Fatalf("kernel answered a DAD probe for free address %v: %+v", free, f)
			}
			return isNAFor(vipB)(f)
		})
		na := got.Message.(*ndp.NeighborAdvertisement)
		t.Logf("answer: %v -> %v (eth %v -> %v) %+v", got.SourceIP, got.DestinationIP, got.Source, got.Destination, *na)
		if got.DestinationIP != nd.AllNodes {
			t.Errorf("answer to a DAD probe went to %v, want all-nodes (RFC 4861 7.2.4)", got.DestinationIP)
		}
		if na.Solicited || !na.Override {
			t.Errorf("answer flags S=%v O=%v, want S=false O=true", na.Solicited, na.Override)
		}
		if got.LinkLayerAddr().String() != b.HardwareAddr().String() {
			t.Errorf("answer says %v is at %v, want %v", vipB, got.LinkLayerAddr(), b.HardwareAddr())
		}
		if got.Option != nil {
			t.Errorf("kernel's answer carries a floatip option: %+v", got.Option)
		}
		// B's Conn saw the probe with our option intact.
		p := readUntil(t, b, "the probe at B", func(f *nd.Frame) bool { return f.IsProbe() && f.Target() == vipB })
		if p.Option == nil || p.Option.Trailer != opt.Trailer || p.Option.Auth != nil {
			t.Errorf("probe option at B = %+v, want %+v", p.Option, opt)
		}
	})

	t.Run("kernel answers DAD probe unicast to the holder's MAC", func(t *testing.T) {
		if err := a.Write(nd.NewProbe(a.HardwareAddr(), b.HardwareAddr(), vipB, nil)); err != nil {
			t.Fatal(err)
		}
		got := readUntil(t, a, "NA for held VIP", isNAFor(vipB))
		t.Logf("answer: %v -> %v (eth %v -> %v)", got.SourceIP, got.DestinationIP, got.Source, got.Destination)
	})

	t.Run("kernel answers unicast NS from link-local with unicast NA", func(t *testing.T) {
		ll := linkLocal(t, l.a, "a0")
		if err := a.Write(nd.NewSolicitation(a.HardwareAddr(), b.HardwareAddr(), ll, vipB, nil)); err != nil {
			t.Fatal(err)
		}
		got := readUntil(t, a, "solicited NA", isNAFor(vipB))
		na := got.Message.(*ndp.NeighborAdvertisement)
		t.Logf("answer: %v -> %v (eth %v -> %v) %+v", got.SourceIP, got.DestinationIP, got.Source, got.Destination, *na)
		if got.DestinationIP != ll || got.Destination.String() != a.HardwareAddr().String() || !na.Solicited {
			t.Errorf("answer %v -> %v (eth %v) S=%v, want a solicited NA unicast to %v at %v",
				got.SourceIP, got.DestinationIP, got.Destination, na.Solicited, ll, a.HardwareAddr())
		}
		// What Linux leaves out of its answer to a unicast NS.
		if na.Override || got.LinkLayerAddr() != nil {
			t.Logf("note: Linux now sets O=%v and link-layer option %v in its answer to a unicast NS", na.Override, got.LinkLayerAddr())
		}
		if got.SenderMAC().String() != b.HardwareAddr().String() {
			t.Errorf("SenderMAC %v, want %v", got.SenderMAC(), b.HardwareAddr())
		}
	})

	t.Run("kernel answers multicast NS from link-local with unicast NA", func(t *testing.T) {
		ll := linkLocal(t, l.a, "a0")
		if err := a.Write(nd.NewSolicitation(a.HardwareAddr(), nil, ll, vipB, nil)); err != nil {
			t.Fatal(err)
		}
		got := readUntil(t, a, "solicited NA", isNAFor(vipB))
		na := got.Message.(*ndp.NeighborAdvertisement)
		t.Logf("answer: %v -> %v (eth %v -> %v) %+v", got.SourceIP, got.DestinationIP, got.Source, got.Destination, *na)
		if got.DestinationIP != ll || got.Destination.String() != a.HardwareAddr().String() || !na.Solicited || !na.Override {
			t.Errorf("answer %v -> %v (eth %v) S=%v O=%v, want a solicited NA with override unicast to %v at %v",
				got.SourceIP, got.DestinationIP, got.Destination, na.Solicited, na.Override, ll, a.HardwareAddr())
		}
		if got.LinkLayerAddr().String() != b.HardwareAddr().String() {
			t.Errorf("answer's link-layer option %v, want %v", got.LinkLayerAddr(), b.HardwareAddr())
		}
	})

	t.Run("snooping bridge forwards a solicited-node group only to members", func(t *testing.T) {
		other := netip.MustParseAddr("2001:db8:ff::1:77") // its group has no member yet
		g := nd.SolicitedNode(other)
		// A probe to a group nobody joined, then one to the group B's
		// kernel joined for vipB: B must see only the second.
		for _, vip := range []netip.Addr{other, vipB} {
			if err := a.Write(nd.NewProbe(a.HardwareAddr(), nil, vip, nil)); err != nil {
				t.Fatal(err)
			}
		}
		readUntil(t, b, "probe for "+vipB.String(), func(f *nd.Frame) bool {
			if f.IsProbe() && f.Target() == other {
				t.Fatalf("bridge forwarded group %v to B before B joined it (no querier yet?)\n%s", g,
					run(t, "bridge", "-n", l.s, "mdb", "show"))
			}
			return f.IsProbe() && f.Target() == vipB
		})
		if err := b.JoinGroup(g); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the bridge to learn that B joined "+g.String(), func() (bool, string) {
			out := run(t, "bridge", "-n", l.s, "mdb", "show", "dev", "br0")
			return strings.Contains(out, "port pb grp "+g.String()), out
		})
		if err := a.Write(nd.NewProbe(a.HardwareAddr(), nil, other, nil)); err != nil {
			t.Fatal(err)
		}
		readUntil(t, b, "probe for "+other.String()+" after the join", func(f *nd.Frame) bool {
			return f.IsProbe() && f.Target() == other
		})
		if err := b.LeaveGroup(g); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unsolicited NA with override updates neighbour cache", func(t *testing.T) {
		moved := netip.MustParseAddr("2001:db8:ff::20")
		run(t, "ip", "-n", l.b, "neigh", "replace", moved.String(), "lladdr", "02:00:00:00:00:99", "dev", "b0", "nud", "stale")
		opt := &nd.Option{Trailer: arp.Trailer{Kind: arp.KindAnnounce, Priority: 200, Flags: arp.FlagHolder, NodeID: 7}}
		if err := a.Write(nd.NewAdvertisement(a.HardwareAddr(), moved, false, opt)); err != nil {
			t.Fatal(err)
		}
		want := "lladdr " + a.HardwareAddr().String()
		waitFor(t, "B's neighbour entry for "+moved.String()+" to move to A", func() (bool, string) {
			out := run(t, "ip", "-n", l.b, "neigh", "show", moved.String(), "dev", "b0")
			return strings.Contains(out, want), out
		})
	})

	t.Run("host with drop_unsolicited_na ignores the NA", func(t *testing.T) {
		moved := netip.MustParseAddr("2001:db8:ff::21")
		stale := "02:00:00:00:00:98"
		run(t, "ip", "netns", "exec", l.b, "sysctl", "-qw", "net.ipv6.conf.b0.drop_unsolicited_na=1")
		defer run(t, "ip", "netns", "exec", l.b, "sysctl", "-qw", "net.ipv6.conf.b0.drop_unsolicited_na=0")
		run(t, "ip", "-n", l.b, "neigh", "replace", moved.String(), "lladdr", stale, "dev", "b0", "nud", "stale")
		run(t, "ip", "-n", l.b, "neigh", "flush", "to", ipA.String(), "dev", "b0")
		if err := a.Write(nd.NewAdvertisement(a.HardwareAddr(), moved, false, nil)); err != nil {
			t.Fatal(err)
		}
		// Then a frame B's kernel visibly acts on: an NS from A's address
		// with its MAC makes B learn A. B handles frames in order, so once
		// it knows A it has handled (and dropped) the NA.
		if err := a.Write(nd.NewSolicitation(a.HardwareAddr(), b.HardwareAddr(), ipA, ipB, nil)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "B to learn A from the NS", func() (bool, string) {
			out := run(t, "ip", "-n", l.b, "neigh", "show", ipA.String(), "dev", "b0")
			return strings.Contains(out, "lladdr "+a.HardwareAddr().String()), out
		})
		if out := run(t, "ip", "-n", l.b, "neigh", "show", moved.String(), "dev", "b0"); !strings.Contains(out, "lladdr "+stale) {
			t.Errorf("with drop_unsolicited_na, B's entry for %v changed: %s", moved, out)
		}
	})

	t.Run("NS with hop limit 64 is rejected", func(t *testing.T) {
		bad, err := nd.NewProbe(a.HardwareAddr(), nil, vipB, nil).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		bad[14+7] = 64 // the hop limit is not in the checksum
		if _, err := a.pc.WriteTo(bad, &packet.Addr{HardwareAddr: nd.MulticastMAC(nd.SolicitedNode(vipB))}); err != nil {
			t.Fatal(err)
		}
		if err := b.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := b.Read()
			if errors.Is(err, nd.ErrHopLimit) {
				if !errors.Is(err, nd.ErrMalformed) {
					t.Errorf("hop limit error %v does not match ErrMalformed", err)
				}
				t.Logf("rejected: %v", err)
				break
			}
			if err != nil {
				t.Fatalf("waiting for the hop limit 64 NS: %v", err)
			}
			t.Logf("skipping: %v -> %v %T", f.SourceIP, f.DestinationIP, f.Message)
		}
	})

	t.Run("deprecated NODAD VIP takes TCP and is not a source address", func(t *testing.T) {
		var ln net.Listener
		inNS(t, l.b, func() (err error) {
			ln, err = net.Listen("tcp6", "["+vipB.String()+"]:0")
			return err
		})
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hello\n"))
				c.Close()
			}
		}()
		inNS(t, l.a, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp6", ln.Addr().String())
			if err != nil {
				return fmt.Errorf("connect to VIP: %w", err)
			}
			defer c.Close()
			buf := make([]byte, 6)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil || string(buf) != "hello\n" {
				return fmt.Errorf("read from VIP: %q, %v", buf, err)
			}
			return nil
		})
		out := run(t, "ip", "-n", l.b, "-6", "route", "get", ipA.String())
		t.Logf("B's route to A: %s", out)
		if !strings.Contains(out, "src "+ipB.String()) {
			t.Errorf("B's source address towards %v is not %v: %s", ipA, ipB, out)
		}
	})

	t.Run("VIP disappears when its valid lifetime ends", func(t *testing.T) {
		short := netip.MustParseAddr("2001:db8:ff::11")
		addrs := claimIn(t, l.b, "b0", short, 2*time.Second)
		present := func() (bool, string) {
			m, err := addrs.Present([]netip.Addr{short})
			if err != nil {
				t.Fatal(err)
			}
			return m[short], fmt.Sprint(m)
		}
		if ok, _ := present(); !ok {
			t.Fatalf("%v not present right after Claim", short)
		}
		waitFor(t, short.String()+" to expire", func() (bool, string) {
			ok, s := present()
			return !ok, s
		})
	})
}

func TestLabCloseAndDeadline(t *testing.T) {
	l := newLab(t)
	t.Run("read and write after close", func(t *testing.T) {
		c := listenIn(t, l.a, "a0")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: err = %v, want net.ErrClosed", err)
		}
		if err := c.Write(nd.NewAdvertisement(c.HardwareAddr(), vipB, false, nil)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: err = %v, want net.ErrClosed", err)
		}
	})
	t.Run("close ends blocked read", func(t *testing.T) {
		c := listenIn(t, l.a, "a0")
		done := make(chan error, 1)
		go func() {
			for {
				// The kernel's own DAD probes and MLD reports for the
				// new link may arrive first: only the error counts.
				if _, err := c.Read(); err != nil {
					done <- err
					return
				}
			}
		}()
		// Not an assertion: lets Read block first, so this usually
		// covers the interrupted path. Both paths give net.ErrClosed.
		time.Sleep(20 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: err = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still blocked 5s after Close")
		}
	})
	t.Run("deadline ends blocked read", func(t *testing.T) {
		c := listenIn(t, l.a, "a0")
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := c.Read()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			if err != nil {
				t.Fatalf("Read past deadline: err = %v, want os.ErrDeadlineExceeded", err)
			}
			// The kernel's own DAD probes for link-locals may arrive.
		}
	})
}

// waitFor polls cond until it holds or 10 s pass; the last detail is in the
// failure message.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// linkLocal returns the fe80:: address of ifname in ns once it is no longer
// tentative.
func linkLocal(t *testing.T, ns, ifname string) netip.Addr {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, err := ifaddr6.Open(ifname, h)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var ll netip.Addr
	waitFor(t, "a usable link-local address on "+ifname, func() (bool, string) {
		list, err := a.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range list {
			if x.Prefix.Addr().IsLinkLocalUnicast() && x.Flags&unix.IFA_F_TENTATIVE == 0 {
				ll = x.Prefix.Addr()
				return true, ""
			}
		}
		return false, fmt.Sprint(list)
	})
	return ll
}
