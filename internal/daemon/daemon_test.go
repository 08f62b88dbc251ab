package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/hooks"
	"github.com/floatip/floatip/internal/ifaddr"
	"github.com/floatip/floatip/internal/metrics"
)

var (
	vip1 = netip.MustParseAddr("198.18.0.10")
	vip2 = netip.MustParseAddr("198.18.0.11")
	vip3 = netip.MustParseAddr("198.18.0.12")
)

// Two daemons elect one holder; when the holder stops, it releases the VIP
// and the standby takes it.
func TestTwoNodesOneHolderThenFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip1.String())), nil).start()
		h := soleHolder(t, "web", vip1, a, b)
		other := b
		if h == b {
			other = a
		}
		h.stop()
		if h.addrs.has(vip1) {
			t.Fatal("the stopped holder kept the VIP")
		}
		if !h.conn.isClosed() || !h.addrs.closed {
			t.Fatal("stop left the frame conn or the address manager open")
		}
		waitFor(t, "the standby to take over", func() bool { return other.state("web") == "holder" && other.addrs.has(vip1) })
	})
}

// A holder whose link goes down gives the VIP up (fault); the other node
// claims it; when the link is back the first node becomes standby.
func TestLinkDownMovesTheVIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip1.String())), nil).start()
		h := soleHolder(t, "web", vip1, a, b)
		other := map[*testNode]*testNode{a: b, b: a}[h]
		h.cut.Store(true)
		h.addrs.setLink(true, false)
		waitFor(t, "fault on the old holder", func() bool { return h.state("web") == "fault" && !h.addrs.has(vip1) })
		waitFor(t, "the other node to claim", func() bool { return other.state("web") == "holder" })
		h.cut.Store(false)
		h.addrs.setLink(true, true)
		if got := soleHolder(t, "web", vip1, a, b); got != other {
			t.Fatalf("holder after the link came back is %s, want %s", got.name, other.name)
		}
	})
}

// A VIP removed from the holder by hand makes it release and probe again;
// it ends up holding again (nobody else claims it).
func TestAddrRemovedByHand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String(), vip2.String())), nil).start()
		soleHolder(t, "web", vip1, a)
		before := a.d.groups[0].snap.Load().Counters.Claims
		a.addrs.removeByHand(vip2)
		waitFor(t, "a second claim", func() bool {
			s, _ := a.d.Status(context.Background())
			return s.Groups[0].Counters.Claims > before && a.state("web") == "holder" && a.addrs.has(vip2)
		})
	})
}

// A lost netlink subscription (Resync) makes the daemon re-read the
// interface: a VIP gone meanwhile is noticed.
func TestResyncRereadsTheInterface(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		soleHolder(t, "web", vip1, a)
		before := a.d.groups[0].snap.Load().Counters.Claims
		a.addrs.mu.Lock()
		delete(a.addrs.vips, vip1) // no event: the subscription missed it
		a.addrs.mu.Unlock()
		a.addrs.emit(ifaddr.Event{Kind: ifaddr.Resync})
		waitFor(t, "a new claim after the resync", func() bool {
			return a.d.groups[0].snap.Load().Counters.Claims > before && a.addrs.has(vip1)
		})
	})
}

// Failing to add the VIP is a fault the group retries from.
func TestClaimFailureFaultsAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil)
		a.addrs.claimErr = errors.New("no room")
		a.start()
		waitFor(t, "fault", func() bool { return a.state("web") == "fault" })
		a.addrs.mu.Lock()
		a.addrs.claimErr = nil
		a.addrs.mu.Unlock()
		soleHolder(t, "web", vip1, a)
	})
}

// A holder whose frames cannot be sent (its gratuitous ARPs fail, clients
// keep the old MAC) counts the failures, retries, and when they persist
// goes to fault (send-failed) and removes the VIP; it holds again once
// frames go out.
func TestSendFailuresFaultAndRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		m := metrics.New("test")
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), func(d *Deps) { d.Metrics = m }).start()
		soleHolder(t, "web", vip1, a)
		a.conn.failWrites.Store(true)
		waitFor(t, "fault after failed sends", func() bool { return a.state("web") == "fault" })
		if a.addrs.has(vip1) {
			t.Fatal("the VIP stayed configured on a node that cannot send frames")
		}
		if r := a.d.groups[0].snap.Load().Reason; !strings.Contains(r, "frames cannot be sent") {
			t.Fatalf("fault reason %q", r)
		}
		if n := sendFailures(t, m); n < sendFailLimit*(1+sendRetries) {
			t.Fatalf("floatip_send_failures_total = %v, want >= %d", n, sendFailLimit*(1+sendRetries))
		}
		a.conn.failWrites.Store(false)
		soleHolder(t, "web", vip1, a)
	})
}

func sendFailures(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "floatip_send_failures_total" {
			var n float64
			for _, s := range mf.GetMetric() {
				n += s.GetCounter().GetValue()
			}
			return n
		}
	}
	return 0
}

// The interface deleted and created again: the daemon's socket and watch
// are bound to the old index, so it ends serving with an error (Run exits
// non-zero and the service manager restarts it on the new interface),
// releasing its VIPs on the way out.
func TestLinkReplacedEndsServeWithError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		soleHolder(t, "web", vip1, a)
		errc := make(chan error, 1)
		go func() { errc <- a.d.serve(context.Background(), make(chan os.Signal)) }()
		a.addrs.emit(ifaddr.Event{Kind: ifaddr.LinkReplaced, Link: ifaddr.Link{Name: "eth0", Index: 99}})
		err := <-errc
		if err == nil || !strings.Contains(err.Error(), "created again") {
			t.Fatalf("serve ended with %v, want the interface re-created", err)
		}
		a.stop()
		if a.addrs.has(vip1) {
			t.Fatal("the VIP stayed after the daemon stopped")
		}
	})
}

// A renewal whose netlink call returns only after the VIP's lifetime may
// have re-created a VIP that expired meanwhile and that a standby took (the
// kernel creates a missing IPv4 address even for a request without
// NLM_F_CREATE, so renewing cannot avoid it): the holder's very next loop
// turn finds itself past its lifetime without a renewal (the machine checks
// that before any event) and gives the VIP up, instead of holding on.
func TestStalledRenewalGivesTheVIPUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		soleHolder(t, "web", vip1, a)
		a.addrs.mu.Lock()
		a.addrs.renewStall = a.cfg.Timing.Lifetime + time.Second
		a.addrs.mu.Unlock()
		waitFor(t, "the holder to give the VIP up after a stalled renewal", func() bool {
			return a.d.groups[0].snap.Load().Counters.Releases > 0
		})
		a.addrs.mu.Lock()
		a.addrs.renewStall = 0
		a.addrs.mu.Unlock()
		soleHolder(t, "web", vip1, a) // alone, it claims again
	})
}

// Frames are routed by VIP to their group; frames about other addresses
// and junk are dropped without harm.
func TestFrameRoutingAndJunk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		m := metrics.New("test")
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String()), grp("db", vip2.String(), vip3.String())),
			func(d *Deps) { d.Metrics = m }).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip1.String()), grp("db", vip2.String(), vip3.String())), nil).start()
		ha := soleHolder(t, "web", vip1, a, b)
		hb := soleHolder(t, "db", vip2, a, b)
		for range 50 {
			lan.send(nil, []byte("junk"))
			stranger := arp.NewAnnouncement(arp.Broadcast[:0:0], netip.MustParseAddr("198.18.0.99"), nil)
			stranger.SenderHardwareAddr = []byte{2, 9, 9, 9, 9, 9}
			stranger.Source = stranger.SenderHardwareAddr
			if bb, err := stranger.MarshalBinary(); err == nil {
				lan.send(nil, bb)
			}
		}
		// The groups are not disturbed by frames for no VIP of theirs.
		time.Sleep(5 * time.Second)
		if soleHolder(t, "web", vip1, a, b) != ha || soleHolder(t, "db", vip2, a, b) != hb {
			t.Fatal("junk frames moved a group")
		}
	})
}

// The control commands reach the groups: release hands the VIP to the
// standby, a hold keeps a node from claiming, handover moves it back.
func TestControlCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip1.String())), nil).start()
		h := soleHolder(t, "web", vip1, a, b)
		other := map[*testNode]*testNode{a: b, b: a}[h]
		ctx := context.Background()
		if err := other.d.Release(ctx, ""); err == nil || !strings.Contains(err.Error(), "holds no VIPs") {
			t.Fatalf("release on the standby: %v, want an error saying it holds none", err)
		}
		if err := h.d.Release(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no group "nope"`) {
			t.Fatalf("release of an unknown group: %v", err)
		}
		if err := h.d.Release(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if got := soleHolder(t, "web", vip1, a, b); got != other {
			t.Fatalf("after release the holder is %s", got.name)
		}
		if err := h.d.Hold(ctx, "web", true); err != nil {
			t.Fatal(err)
		}
		if s, _ := h.d.Status(ctx); !s.Groups[0].Held {
			t.Fatal("status does not show the maintenance hold")
		}
		// The held node does not take a released VIP: the releasing node
		// finds it free and claims it again.
		if err := other.d.Release(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if got := soleHolder(t, "web", vip1, a, b); got != other {
			t.Fatalf("with %s held, the holder is %s", h.name, got.name)
		}
		if err := h.d.Hold(ctx, "", false); err != nil {
			t.Fatal(err)
		}
		// Once its beacon says the hold is over, the other node may hand over.
		waitFor(t, "a handover to be accepted", func() bool { return other.d.Handover(ctx, "web", h.name) == nil })
		if got := soleHolder(t, "web", vip1, a, b); got != h {
			t.Fatalf("after handover the holder is %s, want %s", got.name, h.name)
		}
		if err := other.d.Handover(ctx, "", ""); err == nil {
			t.Fatal("handover from a node that holds nothing succeeded")
		}
		if st := h.d.stuckGroup(time.Hour); st != "" {
			t.Fatalf("group %s counts as stuck", st)
		}
	})
}

// A reload keeps unchanged groups (their VIPs stay), reconfigures changed
// ones in place, stops removed ones (releasing their VIPs) and starts new
// ones; status keeps configuration order.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		cfg := testConfig("a", 200, grp("web", vip1.String()), grp("db", vip2.String()), grp("old", vip3.String()))
		a := lan.newTestNode(t, cfg, nil).start()
		soleHolder(t, "web", vip1, a)
		soleHolder(t, "db", vip2, a)
		soleHolder(t, "old", vip3, a)
		web := a.d.groups[0]
		webClaims := web.snap.Load().Counters.Claims

		next := testConfig("a", 200, grp("new", vip3.String()), grp("web", vip1.String()), grp("db", vip2.String()))
		next.Groups[2].Priority = 150 // reconfigure in place
		next.LogLevel = "debug"
		var level string
		a.d.opts.SetLogLevel = func(l string) error { level = l; return nil }
		a.next = next
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := a.groupNames(), []string{"new", "web", "db"}; !slices.Equal(got, want) {
			t.Fatalf("groups after reload %v, want %v", got, want)
		}
		if a.d.groups[1] != web || web.snap.Load().Counters.Claims != webClaims || a.state("web") != "holder" {
			t.Fatal("the unchanged group was restarted")
		}
		if got := a.d.groups[2].snap.Load().Priority; got != 150 {
			t.Fatalf("db priority after reload %d, want 150", got)
		}
		if level != "debug" {
			t.Fatalf("log level not applied: %q", level)
		}
		soleHolder(t, "new", vip3, a)

		// What needs a restart is refused whole.
		bad := next
		bad.Interface = "eth1"
		a.next = bad
		if err := a.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "needs a restart") {
			t.Fatalf("reload with a new interface: %v", err)
		}
		own := next
		own.Groups = append(slices.Clone(own.Groups), grp("mine", "198.18.0.1"))
		a.next = own
		if err := a.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "own address") {
			t.Fatalf("reload with the node's own address as VIP: %v", err)
		}
		// SIGHUP reloads too.
		hup := make(chan os.Signal, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.d.serve(ctx, hup) }()
		a.next = testConfig("a", 200, grp("web", vip1.String()))
		hup <- syscall.SIGHUP
		waitFor(t, "the reload by SIGHUP", func() bool { return slices.Equal(a.groupNames(), []string{"web"}) })
		cancel()
		<-done
		if a.addrs.has(vip2) || a.addrs.has(vip3) {
			t.Fatal("removed groups kept their VIPs")
		}
		a.stop()
		if err := a.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "stopping") {
			t.Fatalf("reload after stop: %v", err)
		}
	})
}

// A group whose health checks change restarts and keeps an operator's hold.
func TestReloadRestartKeepsHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil).start()
		soleHolder(t, "web", vip1, a)
		if err := a.d.Hold(context.Background(), "web", true); err != nil {
			t.Fatal(err)
		}
		old := a.d.groups[0]
		next := testConfig("a", 200, grp("web", vip1.String(), vip2.String()))
		a.next = next
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.d.groups[0] == old {
			t.Fatal("a group with new VIPs was not restarted")
		}
		select {
		case <-old.done:
		default:
			t.Fatal("the replaced group still runs")
		}
		// A group publishes its status before it answers a command, so the
		// hold just set is seen by the reload, and status shows it at once.
		if !a.d.groups[0].snap.Load().Held {
			t.Fatal("the restarted group lost the maintenance hold")
		}
	})
}

func TestReloadUnavailable(t *testing.T) {
	lan := &fakeLAN{}
	a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), nil)
	a.d.opts.Load = nil
	if err := a.d.Reload(context.Background()); err == nil {
		t.Fatal("reload without a loader succeeded")
	}
	a.d.opts.Load = func() (config.Config, error) { return config.Config{}, errors.New("line 3: bad") }
	if err := a.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("reload of a bad file: %v", err)
	}
}

// stop returns only after every goroutine the core started ended: here the
// notifier a reload retired blocks in Close (a slow hook draining its
// queue), and stop waits for it; the netlink watch ended before the address
// manager was closed.
func TestStopWaitsForEveryGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		release := make(chan struct{})
		var notifiers []*blockingNotifier
		cfg := testConfig("a", 200, grp("web", vip1.String()))
		cfg.Notify = []config.Hook{{Command: []string{"/bin/true"}, On: []string{"holder"}}}
		a := lan.newTestNode(t, cfg, func(d *Deps) {
			d.NewNotifier = func(hs []hooks.Hook, _ *slog.Logger, _ func(string, error)) Notifier {
				n := &blockingNotifier{}
				if len(notifiers) == 0 {
					n.release = release // only the first one is slow
				}
				notifiers = append(notifiers, n)
				return n
			}
		}).start()
		soleHolder(t, "web", vip1, a)
		next := cfg
		next.Notify = []config.Hook{{Command: []string{"/bin/false"}, On: []string{"holder"}}}
		a.next = next
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(notifiers) != 2 {
			t.Fatalf("%d notifiers made, want 2 (one retired by the reload)", len(notifiers))
		}
		stopped := make(chan struct{})
		go func() { defer close(stopped); a.stop() }()
		time.Sleep(time.Minute) // fake time: everything else has long ended
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("stop returned while hooks were still running")
		default:
		}
		close(release)
		<-stopped
		for i, n := range notifiers {
			if !n.closed.Load() {
				t.Fatalf("notifier %d not closed when stop returned", i)
			}
		}
		if ev := notifiers[0].seen(); len(ev) == 0 || ev[len(ev)-1].To != "holder" {
			t.Fatalf("first notifier saw %v, want the transition to holder", ev)
		}
		if ev := notifiers[1].seen(); len(ev) == 0 || ev[len(ev)-1].To != "stopping" {
			t.Fatalf("last notifier saw %v, want stopping last", ev)
		}
		if a.addrs.closedWatched {
			t.Fatal("the address manager was closed while Watch still ran")
		}
	})
}

func TestPlanReload(t *testing.T) {
	web := grp("web", "198.18.0.10")
	web2 := grp("web", "198.18.0.10", "198.18.0.11")
	webPrio := web
	webPrio.Priority = 7
	webChecks := web
	webChecks.Checks = []config.Check{{Name: "tcp-0", Type: config.CheckTCP, Address: "127.0.0.1:80"}}
	db := grp("db", "198.18.0.20")
	for _, tc := range []struct {
		name      string
		cur, next []config.Group
		want      []groupChange
	}{
		{"nothing", nil, nil, nil},
		{"same", []config.Group{web, db}, []config.Group{web, db}, []groupChange{{"web", keep}, {"db", keep}}},
		{"reordered", []config.Group{web, db}, []config.Group{db, web}, []groupChange{{"web", keep}, {"db", keep}}},
		{"priority", []config.Group{web}, []config.Group{webPrio}, []groupChange{{"web", reconfigure}}},
		{"new vips", []config.Group{web}, []config.Group{web2}, []groupChange{{"web", restart}}},
		{"new checks", []config.Group{web}, []config.Group{webChecks}, []groupChange{{"web", restart}}},
		{"removed", []config.Group{web, db}, []config.Group{db}, []groupChange{{"web", stop}, {"db", keep}}},
		{"added", []config.Group{db}, []config.Group{web, db}, []groupChange{{"db", keep}, {"web", start}}},
		{"replaced", []config.Group{web}, []config.Group{db}, []groupChange{{"web", stop}, {"db", start}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planReload(tc.cur, tc.next); !slices.Equal(got, tc.want) {
				t.Fatalf("planReload = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckLink(t *testing.T) {
	cfg := testConfig("a", 100, grp("web", "198.18.0.10"))
	a := newFakeAddrs([]byte{2, 0, 0, 0, 0, 1})
	if _, err := checkLink(cfg, a); err != nil {
		t.Fatal(err)
	}
	a.link.Up = false
	if _, err := checkLink(cfg, a); err == nil || !strings.Contains(err.Error(), "is down") {
		t.Fatalf("down link: %v", err)
	}
	a.link.Up, a.link.MAC = true, nil
	if _, err := checkLink(cfg, a); err == nil || !strings.Contains(err.Error(), "Ethernet") {
		t.Fatalf("no MAC: %v", err)
	}
	a.link.MAC = []byte{2, 0, 0, 0, 0, 1}
	own := testConfig("a", 100, grp("web", "198.18.0.1"))
	if _, err := checkLink(own, a); err == nil || !strings.Contains(err.Error(), "own address") {
		t.Fatalf("own address as VIP: %v", err)
	}
	a.linkErr = errors.New("gone")
	if _, err := checkLink(cfg, a); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("unreadable link: %v", err)
	}
}

func TestMissingCaps(t *testing.T) {
	for _, tc := range []struct{ status, want string }{
		{"Name: x\nCapEff:\t000001ffffffffff\n", ""},
		{"CapEff:\t0000000000000000\n", "CAP_NET_ADMIN and CAP_NET_RAW"},
		{"CapEff:\t0000000000001000\n", "needs CAP_NET_RAW"},
		{"CapEff:\t0000000000002000\n", "needs CAP_NET_ADMIN"},
		{"no such line", ""},
		{"CapEff: zz", ""},
	} {
		err := missingCaps(tc.status)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("missingCaps(%q) = %v, want %q", tc.status, err, tc.want)
		}
	}
}

func TestSocketGroup(t *testing.T) {
	if gid, err := socketGroup(""); err != nil || gid != -1 {
		t.Fatalf("socketGroup(\"\") = %d, %v", gid, err)
	}
	if gid, err := socketGroup("root"); err != nil || gid != 0 {
		t.Fatalf("socketGroup(root) = %d, %v", gid, err)
	}
	if _, err := socketGroup("no-such-group-floatip"); err == nil {
		t.Fatal("an unknown group resolved")
	}
}

// Health reports reach the group: a node whose only check fails gives the
// VIP up under unhealthy_policy release, and claims again when it passes.
func TestHealthChecksReachTheGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		web := grp("web", vip1.String())
		web.Checks = []config.Check{{Name: "tcp-0", Type: config.CheckTCP, Address: addr,
			Interval: time.Second, Timeout: time.Second, Fall: 1, Rise: 1}}
		cfg := testConfig("a", 200, web)
		cfg.UnhealthyPolicy = config.UnhealthyRelease
		lan := &fakeLAN{}
		a := lan.newTestNode(t, cfg, func(d *Deps) { d.Metrics = metrics.New("test") }).start()
		soleHolder(t, "web", vip1, a)
		ln.Close()
		waitFor(t, "the unhealthy holder to give the VIP up", func() bool { return a.state("web") != "holder" && !a.addrs.has(vip1) })
		if h := a.d.groups[0].snap.Load().Health; len(h) != 1 || h[0].Healthy {
			t.Fatalf("status health %+v, want one failing check", h)
		}
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s again: %v", addr, err)
		}
		defer ln.Close()
		soleHolder(t, "web", vip1, a)
	})
}
