//go:build linux

package ifaddr6

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/floatip/floatip/internal/testutil"
)

// newNS makes an anonymous network namespace with a veth pair "v6a" /
// "v6b", both up; it vanishes with its last handle. The host's interfaces
// are never touched.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	testutil.RequireRoot(t)
	ch := make(chan netns.NsHandle, 1)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine.
		runtime.LockOSThread()
		ns, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		ch <- ns
	}()
	var ns netns.NsHandle
	select {
	case ns = <-ch:
	case err := <-errc:
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "v6a"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "v6b"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, n := range []string{"v6a", "v6b"} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func find(t *testing.T, a *Addrs, ip netip.Addr) (Addr, bool) {
	t.Helper()
	list, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.Prefix.Addr() == ip {
			return x, true
		}
	}
	return Addr{}, false
}

func TestClaimRenewRelease(t *testing.T) {
	ns := newNS(t)
	a, err := Open("v6a", ns)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	vip := netip.MustParseAddr("2001:db8::10")

	if err := a.Claim([]netip.Addr{vip}, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	x, ok := find(t, a, vip)
	if !ok {
		t.Fatalf("%v not on the interface after Claim", vip)
	}
	if x.Prefix.Bits() != 128 {
		t.Errorf("prefix %v, want /128", x.Prefix)
	}
	if x.Flags&unix.IFA_F_NODAD == 0 || x.Flags&unix.IFA_F_TENTATIVE != 0 || x.Flags&unix.IFA_F_DADFAILED != 0 {
		t.Errorf("flags %#x, want NODAD and neither tentative nor dadfailed", x.Flags)
	}
	if x.Flags&unix.IFA_F_DEPRECATED == 0 || x.PreferedLft != 0 {
		t.Errorf("flags %#x preferred %d s, want deprecated with preferred lifetime 0", x.Flags, x.PreferedLft)
	}
	if x.ValidLft <= 0 || x.ValidLft > 90 {
		t.Errorf("valid lifetime %d s, want at most 90", x.ValidLft)
	}

	// Renewal replaces the lifetime (here: makes it longer) and keeps
	// the flags.
	if err := a.Claim([]netip.Addr{vip}, time.Hour); err != nil {
		t.Fatal(err)
	}
	x, _ = find(t, a, vip)
	if x.ValidLft <= 90 || x.Flags&unix.IFA_F_NODAD == 0 || x.PreferedLft != 0 {
		t.Errorf("after renewal: valid %d s flags %#x preferred %d s, want > 90 s, NODAD, 0", x.ValidLft, x.Flags, x.PreferedLft)
	}
	if m, err := a.Present([]netip.Addr{vip, netip.MustParseAddr("2001:db8::11")}); err != nil || !m[vip] || len(m) != 2 {
		t.Errorf("Present = %v, %v", m, err)
	}

	if err := a.Release([]netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	if _, ok := find(t, a, vip); ok {
		t.Errorf("%v still there after Release", vip)
	}
	if err := a.Release([]netip.Addr{vip}); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
}

func TestClaimRejects(t *testing.T) {
	ns := newNS(t)
	a, err := Open("v6a", ns)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, s := range []string{"198.18.0.1", "::ffff:198.18.0.1", "fe80::1", "ff02::1", "::", "::1"} {
		if err := a.Claim([]netip.Addr{netip.MustParseAddr(s)}, time.Minute); err == nil {
			t.Errorf("Claim(%s) succeeded", s)
		} else {
			t.Log(err)
		}
	}
	if err := a.Claim([]netip.Addr{netip.MustParseAddr("2001:db8::1")}, 0); err == nil {
		t.Error("Claim with lifetime 0 succeeded")
	}
	if _, err := Open("nosuch0", ns); err == nil {
		t.Error("Open of a missing interface succeeded")
	}
}

// TestSourceSelection pins down what preferred lifetime 0 buys: the kernel
// picks the node's own address rather than the deprecated VIP as the source
// towards the VIP's subnet, but picks the VIP when it is the only global
// address of the interface (RFC 6724 rule 2, scope, outranks rule 3,
// avoid deprecated). docs/ipv6.md tells operators to keep an address of
// their own on the interface.
func TestSourceSelection(t *testing.T) {
	ns := newNS(t)
	a, err := Open("v6a", ns)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	vip := netip.MustParseAddr("2001:db8:ff::10")
	peer := netip.MustParseAddr("2001:db8:ff::a")
	if err := a.Claim([]netip.Addr{vip}, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR("2001:db8:ff::/64")
	if err := h.RouteAdd(&netlink.Route{LinkIndex: a.index, Dst: subnet}); err != nil {
		t.Fatal(err)
	}
	src := func() netip.Addr {
		t.Helper()
		rs, err := h.RouteGet(peer.AsSlice())
		if err != nil || len(rs) == 0 {
			t.Fatalf("route get %v: %v %v", peer, rs, err)
		}
		s, _ := netip.AddrFromSlice(rs[0].Src)
		return s
	}
	if got := src(); got != vip {
		t.Errorf("with only the VIP: source %v, want %v (the kernel falls back to a deprecated address)", got, vip)
	}
	own := netip.MustParseAddr("2001:db8:ff::b")
	if err := h.AddrAdd(mustLink(t, h, "v6a"), &netlink.Addr{
		IPNet: &net.IPNet{IP: own.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD,
	}); err != nil {
		t.Fatal(err)
	}
	if got := src(); got != own {
		t.Errorf("with an own address: source %v, want %v, not the deprecated VIP", got, own)
	}
}

func mustLink(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWatchRemoved(t *testing.T) {
	ns := newNS(t)
	a, err := Open("v6a", ns)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	keep, del, expire := netip.MustParseAddr("2001:db8:7::1"), netip.MustParseAddr("2001:db8:7::2"), netip.MustParseAddr("2001:db8:7::3")
	if err := a.Claim([]netip.Addr{keep, del}, time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan netip.Addr, 16)
	done := make(chan error, 1)
	go func() { done <- a.WatchRemoved(ctx, func(v netip.Addr) { got <- v }) }()
	// The subscription is made on the watcher's goroutine: renew until
	// its first deletion shows it is in place, then check what follows.
	deadline := time.Now().Add(5 * time.Second)
	for seen := false; !seen; {
		if time.Now().After(deadline) {
			t.Fatal("no deletion reported")
		}
		if err := a.Claim([]netip.Addr{del}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := a.Release([]netip.Addr{del}); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			if v != del {
				t.Fatalf("reported %v, want %v", v, del)
			}
			seen = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	// A renewal is not a removal; an expiry by the kernel is.
	if err := a.Claim([]netip.Addr{keep}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim([]netip.Addr{expire}, time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != expire {
			t.Fatalf("reported %v, want only the expired %v", v, expire)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the kernel's deletion at the end of the lifetime was not reported")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("WatchRemoved after cancel: %v", err)
	}
}
