//go:build linux

package ifaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// These tests need root. Each runs in a fresh, anonymous network namespace
// holding veth pairs; the namespace (and everything in it) vanishes
// when the last handle to it is closed. The host's interfaces are never
// touched.

// The main goroutine keeps the main thread. newLab moves a thread into a
// fresh namespace and lets it die there; had it been the main thread, the
// runtime would keep that thread (it cannot exit) in the namespace, and
// /proc/PID/ns/net, which Open compares with, would name the test's
// namespace, not the process's.
func init() { runtime.LockOSThread() }

type lab struct {
	ns netns.NsHandle
	h  *netlink.Handle // a handle inside ns, for setting up and checking
}

// newLab makes a namespace with a veth pair "fip0" / "fip0p", both up.
func newLab(t testing.TB) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result)
	go func() {
		// Never unlocked: the thread is in the new namespace and dies with
		// this goroutine, so no other code ever runs there by accident.
		runtime.LockOSThread()
		ns, err := netns.New()
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("create network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	h, err := netlink.NewHandleAt(r.ns)
	if err != nil {
		t.Fatalf("netlink handle in test namespace: %v", err)
	}
	t.Cleanup(h.Close)
	l := &lab{ns: r.ns, h: h}
	l.addVeth(t, "fip0")
	return l
}

// addVeth adds a veth pair name and name+"p", both up (this kernel has
// no dummy driver), and returns the link name.
func (l *lab) addVeth(t testing.TB, name string) netlink.Link {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := l.h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, n := range []string{name + "p", name} {
		if err := l.h.LinkSetUp(l.link(t, n)); err != nil {
			t.Fatalf("set %s up: %v", n, err)
		}
	}
	return l.link(t, name)
}

func (l *lab) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	link, err := l.h.LinkByName(name)
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	return link
}

// addr returns the address a on fip0 as the kernel lists it, or nil.
func (l *lab) addr(t *testing.T, a string) *netlink.Addr {
	t.Helper()
	list, err := l.h.AddrList(l.link(t, "fip0"), netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("list addresses: %v", err)
	}
	for _, x := range list {
		if x.IP.Equal(net.ParseIP(a)) {
			return &x
		}
	}
	return nil
}

func (l *lab) open(t testing.TB) *Manager {
	t.Helper()
	m, err := OpenInNamespace("fip0", l.ns)
	if err != nil {
		t.Fatalf("OpenInNamespace(fip0): %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

var (
	vip1 = netip.MustParseAddr("198.18.98.1")
	vip2 = netip.MustParseAddr("198.18.98.2")
)

func TestOpenNotFound(t *testing.T) {
	l := newLab(t)
	_, err := OpenInNamespace("eth9", l.ns)
	if err == nil {
		t.Fatal("OpenInNamespace(eth9) succeeded in a namespace without eth9")
	}
	if got, want := err.Error(), `interface "eth9" not found`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		t.Errorf("error %v does not wrap netlink.LinkNotFoundError", err)
	}
}

// TestOpenCurrentNamespace checks Open from a thread that is inside the
// test namespace: the handle and Watch's subscriptions must both live there.
func TestOpenCurrentNamespace(t *testing.T) {
	l := newLab(t)
	type result struct {
		m         *Manager
		err, err9 error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if err := netns.Set(l.ns); err != nil {
			ch <- result{err: err}
			return
		}
		m, err := Open("fip0")
		_, err9 := Open("eth9")
		ch <- result{m, err, err9}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("Open(fip0) inside the namespace: %v", r.err)
	}
	m := r.m
	t.Cleanup(func() { m.Close() })
	if r.err9 == nil || r.err9.Error() != `interface "eth9" not found` {
		t.Errorf("Open(eth9) error = %v, want interface \"eth9\" not found", r.err9)
	}
	if m.Index() != l.link(t, "fip0").Attrs().Index {
		t.Errorf("Index() = %d, want fip0's %d", m.Index(), l.link(t, "fip0").Attrs().Index)
	}
	w := startWatch(t, m)
	if err := m.Claim([]netip.Addr{vip1}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	w.want(t, "AddrAdded 198.18.98.1", func(e Event) bool { return e.Kind == AddrAdded && e.Addr == vip1 })
}

func TestLink(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	// The kernel sets the operational state a moment after the veth pair
	// comes up: wait for the carrier.
	var got Link
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if got, err = m.Link(); err != nil {
			t.Fatal(err)
		}
		if got.Carrier || time.Now().After(deadline) {
			break
		}
	}
	want := l.link(t, "fip0").Attrs()
	if got.Name != "fip0" || got.Index != want.Index || got.MAC.String() != want.HardwareAddr.String() {
		t.Errorf("Link() = %+v, want name fip0, index %d, MAC %v", got, want.Index, want.HardwareAddr)
	}
	if !got.Up || !got.Carrier {
		t.Errorf("Link() = %+v, want Up and Carrier on an up veth with its peer up", got)
	}
	if len(got.Addrs) != 0 {
		t.Errorf("Link().Addrs = %v, want none", got.Addrs)
	}

	if err := l.h.LinkSetDown(l.link(t, "fip0")); err != nil {
		t.Fatal(err)
	}
	if err := m.Claim([]netip.Addr{vip1}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.h.AddrAdd(l.link(t, "fip0"), &netlink.Addr{IPNet: mustIPNet("198.18.98.200/24")}); err != nil {
		t.Fatal(err)
	}
	got, err := m.Link()
	if err != nil {
		t.Fatal(err)
	}
	if got.Up || got.Carrier {
		t.Errorf("Link() = %+v, want neither Up nor Carrier on a down veth", got)
	}
	wantAddrs := map[netip.Prefix]bool{
		netip.MustParsePrefix("198.18.98.1/32"):   true,
		netip.MustParsePrefix("198.18.98.200/24"): true,
	}
	if len(got.Addrs) != len(wantAddrs) || !wantAddrs[got.Addrs[0]] || !wantAddrs[got.Addrs[1]] {
		t.Errorf("Link().Addrs = %v, want %v", got.Addrs, wantAddrs)
	}
}

func mustIPNet(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

func TestClaimPresentRelease(t *testing.T) {
	l := newLab(t)
	m := l.open(t)

	if err := m.Claim([]netip.Addr{vip1}, 3*time.Second); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	a := l.addr(t, "198.18.98.1")
	if a == nil {
		t.Fatal("198.18.98.1 not on fip0 after Claim")
	}
	if ones, _ := a.Mask.Size(); ones != 32 || a.Scope != 0 {
		t.Errorf("address %v scope %d, want a /32 of global scope", a.IPNet, a.Scope)
	}
	if a.ValidLft < 2 || a.ValidLft > 3 || a.PreferedLft < 2 || a.PreferedLft > 3 {
		t.Errorf("lifetimes valid %d preferred %d, want about 3", a.ValidLft, a.PreferedLft)
	}

	// Renewing with a longer lifetime shows that the existing address
	// got the new one (rather than an error or a second address).
	if err := m.Claim([]netip.Addr{vip1, vip2}, 30*time.Second); err != nil {
		t.Fatalf("Claim again: %v", err)
	}
	for _, s := range []string{"198.18.98.1", "198.18.98.2"} {
		a = l.addr(t, s)
		if a == nil {
			t.Fatalf("%s not on fip0 after Claim", s)
		}
		if a.ValidLft < 29 || a.ValidLft > 30 || a.PreferedLft < 29 || a.PreferedLft > 30 {
			t.Errorf("%s: lifetimes valid %d preferred %d, want about 30", s, a.ValidLft, a.PreferedLft)
		}
	}

	// Rounding up: 1.5 s becomes 2 s.
	vip3 := netip.MustParseAddr("198.18.98.3")
	if err := m.Claim([]netip.Addr{vip3}, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if a = l.addr(t, "198.18.98.3"); a == nil || a.ValidLft < 1 || a.ValidLft > 2 {
		t.Errorf("198.18.98.3 after a 1.5 s claim: %+v, want valid lifetime 2 (or 1)", a)
	}

	absent := netip.MustParseAddr("198.18.98.99")
	p, err := m.Present([]netip.Addr{vip1, vip2, absent})
	if err != nil {
		t.Fatal(err)
	}
	if !p[vip1] || !p[vip2] || p[absent] || len(p) != 3 {
		t.Errorf("Present = %v, want .1 and .2 true, .99 false", p)
	}

	if err := m.Release([]netip.Addr{vip1}); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if l.addr(t, "198.18.98.1") != nil {
		t.Error("198.18.98.1 still on fip0 after Release")
	}
	if err := m.Release([]netip.Addr{vip1, absent}); err != nil {
		t.Errorf("Release of addresses already gone: %v", err)
	}
	p, err = m.Present([]netip.Addr{vip1, vip2})
	if err != nil {
		t.Fatal(err)
	}
	if p[vip1] || !p[vip2] {
		t.Errorf("Present after Release = %v, want .1 false, .2 true", p)
	}

	// Release leaves an address of another prefix length alone.
	if err := l.h.AddrAdd(l.link(t, "fip0"), &netlink.Addr{IPNet: mustIPNet("198.18.98.200/24")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Release([]netip.Addr{netip.MustParseAddr("198.18.98.200")}); err != nil {
		t.Errorf("Release of a /24: %v", err)
	}
	if l.addr(t, "198.18.98.200") == nil {
		t.Error("Release deleted 198.18.98.200/24, which it did not claim")
	}
}

// TestClaimMany claims a large group, which goes through one batched
// netlink write per 64 addresses, and renews it.
func TestClaimMany(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	var addrs []netip.Addr
	for i := range 300 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, byte(100 + i/250), byte(1 + i%250)}))
	}
	for _, lifetime := range []time.Duration{3 * time.Second, 30 * time.Second} {
		if err := m.Claim(addrs, lifetime); err != nil {
			t.Fatalf("Claim of %d addresses: %v", len(addrs), err)
		}
		p, err := m.Present(addrs)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if !p[a] {
				t.Fatalf("%v missing after claiming %d addresses", a, len(addrs))
			}
		}
		last := l.addr(t, addrs[len(addrs)-1].String())
		if want := uint32(lifetime / time.Second); last == nil || uint32(last.ValidLft) > want || uint32(last.ValidLft) < want-1 {
			t.Fatalf("last address after a %v claim: %+v", lifetime, last)
		}
	}
	// A bad address in a batch is reported, and the good ones still land.
	bad := append([]netip.Addr{netip.MustParseAddr("fd00::1")}, addrs[:3]...)
	if err := m.Claim(bad, 3*time.Second); err == nil || !strings.Contains(err.Error(), "fd00::1") {
		t.Fatalf("Claim with an IPv6 address: %v", err)
	}
}

// manyAddrs returns n addresses from 198.18.100.1 on.
func manyAddrs(n int) []netip.Addr {
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{198, 18, byte(100 + i/250), byte(1 + i%250)})
	}
	return addrs
}

// TestRenewReadsOneAnswerPerChunk renews 1000 addresses and counts the
// receives: only the last request of each chunk asks for an answer, so
// there are as many as chunks (more only if the kernel split its answers),
// not one per address.
func TestRenewReadsOneAnswerPerChunk(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	addrs := manyAddrs(1000)
	if err := m.Claim(addrs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	before := m.reads
	if err := m.Claim(addrs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	chunks := (len(addrs) + batchSize - 1) / batchSize
	if got := m.reads - before; got != chunks {
		t.Errorf("renewing %d addresses read answers %d times, want %d (one per chunk of %d)", len(addrs), got, chunks, batchSize)
	}
}

// TestBatchReportsEveryRefusal sends a chunk in which two requests, neither
// of them the last and neither asking for an answer, name an interface
// that does not exist: the kernel refuses exactly those two, Claim's
// errors name both addresses, and the other requests take effect.
func TestBatchReportsEveryRefusal(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	addrs := manyAddrs(40)
	bad := map[int]bool{10: true, 27: true}
	m.batchMu.Lock()
	first := m.batchSeq + 1
	var buf []byte
	for i, a := range addrs {
		index := m.index
		if bad[i] {
			index = 0x7ffffff0 // no such interface
		}
		buf = appendNewAddr(buf, first+uint32(i), index, a.As4(), 30, i == len(addrs)-1)
	}
	m.batchSeq += uint32(len(addrs))
	var errs claimErrors
	err := m.exchange(m.batch, buf, first, addrs, &errs)
	m.batchMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != len(bad) {
		t.Fatalf("%d errors, want %d: %v", len(errs), len(bad), errs.err())
	}
	for i, e := range errs {
		want := []netip.Addr{addrs[10], addrs[27]}[i]
		if !strings.Contains(e.Error(), want.String()+"/32") || !errors.Is(e, unix.ENODEV) {
			t.Errorf("error %d = %v, want one naming %v with ENODEV", i, e, want)
		}
	}
	p, err := m.Present(addrs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		if p[a] == bad[i] {
			t.Errorf("%v present %v after the batch, want %v", a, p[a], !bad[i])
		}
	}
	// The socket holds nothing more about this batch: the next Claim
	// reads only its own answers.
	if err := m.Claim(addrs, 30*time.Second); err != nil {
		t.Errorf("Claim after the refused requests: %v", err)
	}
}

// TestClaimManyInterfaceGone renews a large group after its interface was
// deleted: every request fails, and the error shows each address.
func TestClaimManyInterfaceGone(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	addrs := manyAddrs(100)
	if err := m.Claim(addrs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.h.LinkDel(l.link(t, "fip0")); err != nil {
		t.Fatal(err)
	}
	err := m.Claim(addrs, 30*time.Second)
	if err == nil {
		t.Fatal("Claim on a deleted interface succeeded")
	}
	if want := fmt.Sprintf("claim %v/32 on fip0: no such device (and %d more addresses)", addrs[0], len(addrs)-1); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	var each interface{ Unwrap() []error }
	if !errors.As(err, &each) || len(each.Unwrap()) != len(addrs) {
		t.Fatalf("error %v does not unwrap to one error per address", err)
	}
	for i, e := range each.Unwrap() {
		if !strings.Contains(e.Error(), addrs[i].String()+"/32") || !errors.Is(e, unix.ENODEV) {
			t.Errorf("error %d = %v, want one naming %v with ENODEV", i, e, addrs[i])
		}
	}
}

// TestRenewRecreatesDeleted shows what renewing does with an address that
// someone deleted: the kernel adds it again (IPv4 RTM_NEWADDR creates a
// missing address even without NLM_F_CREATE), so Claim cannot tell a lost
// address by an error; Watch's AddrRemoved and Present can.
func TestRenewRecreatesDeleted(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	addrs := manyAddrs(100)
	if err := m.Claim(addrs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	gone := addrs[42]
	if err := l.h.AddrDel(l.link(t, "fip0"), &netlink.Addr{IPNet: mustIPNet(gone.String() + "/32")}); err != nil {
		t.Fatal(err)
	}
	if l.addr(t, gone.String()) != nil {
		t.Fatalf("%v still there after deleting it", gone)
	}
	if err := m.Claim(addrs, 30*time.Second); err != nil {
		t.Fatalf("renewal with %v deleted: %v", gone, err)
	}
	if l.addr(t, gone.String()) == nil {
		t.Errorf("%v not there again after the renewal", gone)
	}
}

func TestClaimErrors(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	v6 := netip.MustParseAddr("2001:db8::1")
	err := m.Claim([]netip.Addr{v6, vip1}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "2001:db8::1") {
		t.Errorf("Claim of an IPv6 address: error %v, want one naming it", err)
	}
	if l.addr(t, "198.18.98.1") == nil {
		t.Error("Claim stopped at the bad address; 198.18.98.1 was not added")
	}
	if err := m.Claim([]netip.Addr{vip2}, 0); err == nil {
		t.Error("Claim with lifetime 0 succeeded; it would make the address permanent")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := m.Claim([]netip.Addr{vip2}, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Claim after Close: %v, want ErrClosed", err)
	}
	if _, err := m.Present([]netip.Addr{vip1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Present after Close: %v, want ErrClosed", err)
	}
}

// watcher runs Watch for a test.
type watcher struct {
	events chan Event
	cancel context.CancelFunc
	done   chan error
}

// startWatch starts Watch and returns once it is subscribed.
func startWatch(t *testing.T, m *Manager) *watcher {
	t.Helper()
	return startWatchChan(t, m, make(chan Event, 16))
}

func startWatchChan(t *testing.T, m *Manager, events chan Event) *watcher {
	t.Helper()
	subscribed := make(chan struct{}, 1)
	m.onSubscribed = func() {
		select {
		case subscribed <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{events: events, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- m.Watch(ctx, events) }()
	t.Cleanup(func() { w.stop(t) })
	select {
	case <-subscribed:
	case err := <-w.done:
		t.Fatalf("Watch ended early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not subscribe within 5s")
	}
	return w
}

// stop cancels Watch and checks that it returns promptly.
func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case err, ok := <-w.done:
		if ok && err != nil {
			t.Errorf("Watch returned %v after cancel, want nil", err)
		}
		close(w.done)
	case <-time.After(5 * time.Second):
		t.Error("Watch did not return within 5s of cancel")
	}
}

// want skips events until one satisfies match, and fails after a deadline.
func (w *watcher) want(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	return w.wantWithin(t, 5*time.Second, what, match)
}

func (w *watcher) wantWithin(t *testing.T, d time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-w.events:
			if match(e) {
				return e
			}
			t.Logf("skipping event %v %v %+v", e.Kind, e.Addr, e.Link)
		case <-deadline:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// wantNextAddr returns the next address event, skipping link events.
func (w *watcher) wantNextAddr(t *testing.T) Event {
	t.Helper()
	return w.want(t, "address event", func(e Event) bool { return e.Kind == AddrAdded || e.Kind == AddrRemoved })
}

func TestWatch(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	w := startWatch(t, m)

	if err := m.Claim([]netip.Addr{vip1}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := w.wantNextAddr(t); e.Kind != AddrAdded || e.Addr != vip1 {
		t.Fatalf("event %v %v, want AddrAdded %v", e.Kind, e.Addr, vip1)
	}

	// Not reported: a renewal, IPv6, another interface.
	if err := m.Claim([]netip.Addr{vip1}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	v6 := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(128, 128)}}
	if err := l.h.AddrAdd(l.link(t, "fip0"), v6); err != nil {
		t.Fatal(err)
	}
	other := l.addVeth(t, "fip1")
	if err := l.h.AddrAdd(other, &netlink.Addr{IPNet: mustIPNet("198.18.98.50/32")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Claim([]netip.Addr{vip2}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := w.wantNextAddr(t); e.Kind != AddrAdded || e.Addr != vip2 {
		t.Fatalf("event %v %v, want AddrAdded %v (renewals, IPv6 and other interfaces are not reported)", e.Kind, e.Addr, vip2)
	}

	if err := m.Release([]netip.Addr{vip1}); err != nil {
		t.Fatal(err)
	}
	if e := w.wantNextAddr(t); e.Kind != AddrRemoved || e.Addr != vip1 {
		t.Fatalf("event %v %v, want AddrRemoved %v", e.Kind, e.Addr, vip1)
	}

	if err := l.h.LinkSetDown(l.link(t, "fip0")); err != nil {
		t.Fatal(err)
	}
	e := w.want(t, "LinkChanged down", func(e Event) bool { return e.Kind == LinkChanged && !e.Link.Up })
	if e.Link.Carrier || e.Link.Name != "fip0" || e.Link.Index != m.Index() {
		t.Errorf("LinkChanged on down: %+v, want fip0 without carrier", e.Link)
	}
	if err := l.h.LinkSetUp(l.link(t, "fip0")); err != nil {
		t.Fatal(err)
	}
	w.want(t, "LinkChanged up with carrier", func(e Event) bool { return e.Kind == LinkChanged && e.Link.Up && e.Link.Carrier })

	// Carrier loss: the peer goes down, fip0 stays administratively up.
	if err := l.h.LinkSetDown(l.link(t, "fip0p")); err != nil {
		t.Fatal(err)
	}
	w.want(t, "LinkChanged up without carrier", func(e Event) bool { return e.Kind == LinkChanged && e.Link.Up && !e.Link.Carrier })
	got, err := m.Link()
	if err != nil {
		t.Fatal(err)
	}
	if !got.Up || got.Carrier {
		t.Errorf("Link() with the peer down = %+v, want Up without Carrier", got)
	}
	if err := l.h.LinkSetUp(l.link(t, "fip0p")); err != nil {
		t.Fatal(err)
	}
	w.want(t, "LinkChanged carrier back", func(e Event) bool { return e.Kind == LinkChanged && e.Link.Up && e.Link.Carrier })

	// A cancel ends Watch even while it is blocked sending: fill the
	// channel and make one more event, then stop (in Cleanup).
	for i := 0; i < cap(w.events)+2; i++ {
		a := netip.AddrFrom4([4]byte{198, 18, 98, byte(100 + i)})
		if err := m.Claim([]netip.Addr{a}, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(w.events) < cap(w.events) {
		if time.Now().After(deadline) {
			t.Fatalf("event channel holds %d events, want it full (%d)", len(w.events), cap(w.events))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKernelExpiry checks the safety net the daemon relies on: an address
// that is not renewed is deleted by the kernel, and Watch reports it.
func TestKernelExpiry(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	w := startWatch(t, m)

	vip := netip.MustParseAddr("198.18.98.9")
	start := time.Now()
	if err := m.Claim([]netip.Addr{vip}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	w.want(t, "AddrAdded", func(e Event) bool { return e.Kind == AddrAdded && e.Addr == vip })
	w.wantWithin(t, 6*time.Second, "AddrRemoved after the lifetime ran out", func(e Event) bool {
		return e.Kind == AddrRemoved && e.Addr == vip
	})
	took := time.Since(start)
	t.Logf("kernel deleted the address %v after the claim", took.Round(10*time.Millisecond))
	if took < 1500*time.Millisecond || took > 4500*time.Millisecond {
		t.Errorf("address with a 2s lifetime disappeared after %v, want about 2-4s", took)
	}
	p, err := m.Present([]netip.Addr{vip})
	if err != nil {
		t.Fatal(err)
	}
	if p[vip] {
		t.Error("Present reports the expired address")
	}
}

// TestResyncAfterOverrun overflows the subscription's socket buffer and
// checks that Watch re-subscribes, sends Resync and keeps reporting.
func TestResyncAfterOverrun(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	m.rcvbuf = 1 // the kernel rounds it up to its minimum, a few messages
	w := startWatchChan(t, m, make(chan Event))

	// Nobody drains w.events while the kernel sends many messages.
	link := l.link(t, "fip0")
	for i := 1; i <= 250; i++ {
		a := &netlink.Addr{IPNet: mustIPNet(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 98, byte(i)}), 32).String())}
		if err := l.h.AddrAdd(link, a); err != nil {
			t.Fatal(err)
		}
	}
	w.wantWithin(t, 10*time.Second, "Resync", func(e Event) bool { return e.Kind == Resync })

	// Still reporting after the re-subscription.
	vip := netip.MustParseAddr("198.18.98.250")
	if err := m.Release([]netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	w.want(t, "AddrRemoved after Resync", func(e Event) bool { return e.Kind == AddrRemoved && e.Addr == vip })
}

// TestWatchSkipsOwnBatches claims and renews a large group while watching:
// the kernel's events for Claim's batched requests stay out (nothing to
// read per address and renewal), while an address added by someone else
// and the removal of a batched one are reported.
func TestWatchSkipsOwnBatches(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	w := startWatchChan(t, m, make(chan Event, 1024))
	addrs := manyAddrs(200)
	for range 2 { // claim, renew
		if err := m.Claim(addrs, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	other := netip.MustParseAddr("198.18.98.77")
	if err := l.h.AddrAdd(l.link(t, "fip0"), &netlink.Addr{IPNet: mustIPNet(other.String() + "/32")}); err != nil {
		t.Fatal(err)
	}
	// Events arrive in order: had the batches' events come through, the
	// first would be AddrAdded of addrs[0].
	if e := w.wantNextAddr(t); e.Kind != AddrAdded || e.Addr != other {
		t.Fatalf("first address event %v %v, want AddrAdded %v (none for the batched claims)", e.Kind, e.Addr, other)
	}
	if err := l.h.AddrDel(l.link(t, "fip0"), &netlink.Addr{IPNet: mustIPNet(addrs[7].String() + "/32")}); err != nil {
		t.Fatal(err)
	}
	if e := w.wantNextAddr(t); e.Kind != AddrRemoved || e.Addr != addrs[7] {
		t.Fatalf("event %v %v, want AddrRemoved %v", e.Kind, e.Addr, addrs[7])
	}
}

// The interface deleted and created again under the same name: the watch
// reports the loss of the link (down) and then LinkReplaced with the new
// index, since everything bound to the old index no longer sees it.
func TestWatchLinkReplaced(t *testing.T) {
	l := newLab(t)
	m := l.open(t)
	w := startWatch(t, m)
	old := l.link(t, "fip0").Attrs().Index
	if err := l.h.LinkDel(l.link(t, "fip0")); err != nil {
		t.Fatal(err)
	}
	w.want(t, "link down on delete", func(e Event) bool { return e.Kind == LinkChanged && !e.Link.Up })
	l.addVeth(t, "fip0")
	e := w.want(t, "LinkReplaced", func(e Event) bool { return e.Kind == LinkReplaced })
	if e.Link.Name != "fip0" || e.Link.Index == old || e.Link.Index == 0 {
		t.Fatalf("LinkReplaced for %s index %d, want fip0 with a new index (old %d)", e.Link.Name, e.Link.Index, old)
	}
}
