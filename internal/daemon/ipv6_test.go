package daemon

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/nd"
)

var (
	vip6a = netip.MustParseAddr("2001:db8::10")
	vip6b = netip.MustParseAddr("2001:db8::11")
)

// An IPv6-only group on the fake LAN: one holder; the standby sees it
// through the kernel's answers to its solicitations and the holder's
// beacons, and takes over when the holder stops (release) or vanishes
// (cut off: its checks go unanswered).
func TestIPv6GroupFailsOver(t *testing.T) {
	for _, how := range []string{"stop", "vanish"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := &fakeLAN{}
				a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip6a.String())), nil).start()
				b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip6a.String())), nil).start()
				h := soleHolder(t, "web", vip6a, a, b)
				other := map[*testNode]*testNode{a: b, b: a}[h]
				// The standby stays standby: its checks are answered.
				missed, sent := other.d.groups[0].snap.Load().Counters.ProbesUnanswered, other.nd.writes.Load()
				time.Sleep(10 * time.Second)
				if soleHolder(t, "web", vip6a, a, b) != h {
					t.Fatal("the holder changed without a fault")
				}
				if n := other.nd.writes.Load() - sent; n < 50 {
					t.Fatalf("the standby sent %d ND frames in 10 s, want its checks", n)
				}
				if n := other.d.groups[0].snap.Load().Counters.ProbesUnanswered - missed; n != 0 {
					t.Fatalf("%d of the standby's checks went unanswered with the holder alive", n)
				}
				switch how {
				case "stop":
					h.stop()
					if h.addrs.has(vip6a) {
						t.Fatal("the stopped holder kept the VIP")
					}
				case "vanish":
					h.cut.Store(true)
				}
				waitFor(t, "the standby to take over", func() bool { return other.state("web") == "holder" && other.addrs.has(vip6a) })
			})
		})
	}
}

// Every node joins the solicited-node group of its IPv6 VIPs for as long
// as the group runs, and leaves it when a reload removes the group.
func TestIPv6JoinsSolicitedNodeGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		cfg := testConfig("a", 200, grp("web", vip6a.String(), vip1.String()), grp("db", vip6b.String()))
		a := lan.newTestNode(t, cfg, nil).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip6a.String(), vip1.String()), grp("db", vip6b.String())), nil).start()
		soleHolder(t, "web", vip1, a, b)
		soleHolder(t, "db", vip6b, a, b)
		for _, n := range []*testNode{a, b} {
			for _, v := range []netip.Addr{vip6a, vip6b} {
				if !n.nd.joined(nd.SolicitedNode(v)) {
					t.Errorf("%s did not join the solicited-node group of %v", n.name, v)
				}
			}
		}
		a.next = testConfig("a", 200, grp("web", vip6a.String(), vip1.String()))
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.nd.joined(nd.SolicitedNode(vip6b)) {
			t.Error("the removed group's solicited-node group is still joined")
		}
		if !a.nd.joined(nd.SolicitedNode(vip6a)) {
			t.Error("the kept group's solicited-node group was left")
		}
		a.stop()
		if a.nd.joined(nd.SolicitedNode(vip6a)) {
			t.Error("a stopped daemon is still in a solicited-node group")
		}
	})
}

// A dual-stack group moves as one: both addresses on the same node, and
// its checks are ARP (the IPv4 VIP probes, whatever the configured order).
func TestDualStackGroupMovesAsOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip6a.String(), vip1.String())), nil).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip6a.String(), vip1.String())), nil).start()
		h := soleHolder(t, "web", vip1, a, b)
		other := map[*testNode]*testNode{a: b, b: a}[h]
		if !h.addrs.has(vip6a) || other.addrs.has(vip6a) {
			t.Fatalf("IPv6 VIP on holder %v, on standby %v", h.addrs.has(vip6a), other.addrs.has(vip6a))
		}
		if got := h.d.groups[0].vips[0]; got != vip1 {
			t.Fatalf("the group probes %v, want the IPv4 VIP %v", got, vip1)
		}
		st, err := h.d.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(st.Groups[0].VIPs, ","); got != vip6a.String()+","+vip1.String() {
			t.Errorf("status lists the VIPs as %s, want the configured order", got)
		}
		h.stop()
		waitFor(t, "both addresses on the other node", func() bool {
			return other.state("web") == "holder" && other.addrs.has(vip1) && other.addrs.has(vip6a)
		})
		if h.addrs.has(vip1) || h.addrs.has(vip6a) {
			t.Fatal("the stopped holder kept an address")
		}
	})
}

// Broken ND frames from the wire are counted by reason and move nothing.
func TestIPv6JunkIsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip6a.String())), nil).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip6a.String())), nil).start()
		h := soleHolder(t, "web", vip6a, a, b)
		stranger := net.HardwareAddr{2, 9, 9, 9, 9, 9}
		claim, err := nd.NewAdvertisement(stranger, vip6a, false, nil).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		hop := append([]byte(nil), claim...)
		hop[14+7] = 64 // forwarded by a router (or forged off-link)
		sum := append([]byte(nil), claim...)
		sum[14+40+2] ^= 0xff
		for range 20 {
			lan.send(nil, hop)
			lan.send(nil, sum)
		}
		time.Sleep(5 * time.Second)
		for _, n := range []*testNode{a, b} {
			if got := n.d.junk[junkHopLimit].Load(); got != 20 {
				t.Errorf("%s counted %d frames with a bad hop limit, want 20", n.name, got)
			}
			if got := n.d.junk[junkChecksum].Load(); got != 20 {
				t.Errorf("%s counted %d frames with a bad checksum, want 20", n.name, got)
			}
		}
		if soleHolder(t, "web", vip6a, a, b) != h {
			t.Fatal("broken frames moved the group")
		}
	})
}

// A daemon started without IPv6 VIPs has no ND socket: a reload that adds
// some is refused with a clear error, and nothing changes.
func TestReloadAddingIPv6NeedsRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		soleHolder(t, "web", vip1, a)
		a.next = testConfig("a", 200, grp("web", vip1.String(), vip6a.String()))
		err := a.d.Reload(context.Background())
		if err == nil || !strings.Contains(err.Error(), "IPv6 VIPs added") {
			t.Fatalf("reload: %v, want the restart error", err)
		}
		if a.addrs.has(vip6a) {
			t.Fatal("the refused reload claimed the IPv6 VIP")
		}
	})
}

// A foreign host's unsolicited NA for the VIP (no floatip option) is a
// conflict for the holder, which defends with its own NAs.
func TestIPv6ForeignClaimSeenByHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip6a.String())), nil).start()
		soleHolder(t, "web", vip6a, a)
		stranger := net.HardwareAddr{2, 9, 9, 9, 9, 9}
		claim, err := nd.NewAdvertisement(stranger, vip6a, false, nil).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		lan.send(nil, claim)
		waitFor(t, "the foreign claim to be counted", func() bool {
			st, _ := a.d.Status(context.Background())
			return st.Groups[0].Counters.ForeignClaims > 0
		})
	})
}
