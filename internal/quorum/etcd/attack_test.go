package etcd

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/quorum"
)

// Attacks on the backend's promises with the real cluster (issue 13's
// review): each test names what it tries to break.

// A graceful stop of a holder cut off from etcd (the daemon's order: the
// VIPs are gone, Resign, then the elector's Close, then the backend's
// Close with the daemon's bound) must fit in the service manager's stop
// timeout (TimeoutStopSec of the unit floatip ships), or it kills the
// daemon before the hooks of the last transition ran. The resign used to
// wait up to the TTL (until gRPC's keepalive gave up, 5 to 6 s) for a
// cluster it cannot reach, and the revoke 5 s more.
func TestStopCutOffFromEtcdFitsTheUnitsStopTimeout(t *testing.T) {
	budget := unitStopTimeout(t)
	l, c := cluster(t)
	ttl := 30 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)

	if err := l.Node(1).BlockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Node(1).UnblockEtcdClient() })
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		a.e.Resign()
		a.e.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // the daemon's quorumClose
		defer cancel()
		_ = a.b.Close(ctx)
	}()
	select {
	case <-stopped:
		t.Logf("stopped in %v (the unit allows %v)", time.Since(start).Round(time.Millisecond), budget)
	case <-time.After(budget):
		<-stopped
		t.Fatalf("the stop of a holder cut off from etcd took %v: the unit's TimeoutStopSec=%v kills the daemon first", time.Since(start).Round(time.Millisecond), budget)
	}
}

// unitStopTimeout is TimeoutStopSec of the systemd unit floatip ships.
func unitStopTimeout(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("../../../packaging/floatip.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "TimeoutStopSec="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("TimeoutStopSec=%s: %v", v, err)
			}
			return time.Duration(n) * time.Second
		}
	}
	t.Fatal("packaging/floatip.service: no TimeoutStopSec")
	return 0
}

// Deadlines are counted on the monotonic clock: every deadline the
// backend hands out carries a monotonic reading, so a wall-clock step
// (NTP, date -s) cannot move them.
func TestDeadlinesAreMonotonic(t *testing.T) {
	l, c := cluster(t)
	a := newNode(t, l.Node(1), c, prefix(t), 3*time.Second)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)
	a.wait(0, 10*time.Second, "Extended", func(ev quorum.Event) bool { _, ok := ev.(quorum.Extended); return ok })
	for _, e := range a.events() {
		if d, ok := deadlineOf(e.ev); ok && !strings.Contains(d.String(), " m=") {
			t.Errorf("%T deadline %v has no monotonic clock reading", e.ev, d)
		}
	}
	if d := a.b.Status().Deadline; !strings.Contains(d.String(), " m=") {
		t.Errorf("status deadline %v has no monotonic clock reading", d)
	}
}

// A resign that fails (the holder briefly cut off from etcd while it
// gives the group up: a maintenance hold, a handover) must still give the
// key up once etcd answers again. The backend keeps the lease alive, so a
// key left behind is never freed by the lease's expiry: the standby waited
// for it forever while the old holder, no longer wanting it, held nothing.
func TestFailedResignStillFreesTheKey(t *testing.T) {
	l, c := cluster(t)
	ttl := 30 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	b := newNode(t, l.Node(2), c, prefix(t), ttl)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)
	b.e.Campaign()
	b.wait(0, 10*time.Second, "Holder n1", isHolder("n1"))

	if err := l.Node(1).BlockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Node(1).UnblockEtcdClient() })
	mark := a.mark()
	a.e.Resign()
	lost, _ := a.wait(mark, ttl, "Lost resigned", isLost(quorum.CauseResigned))
	if lost.ev.(quorum.Lost).Err == nil {
		t.Fatalf("resigned while cut off from etcd: %+v", lost.ev)
	}
	if err := l.Node(1).UnblockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	// Had a died now, its lease would be gone within a TTL: the standby
	// must not wait longer than that for a key a gave up.
	gb, _ := b.wait(0, ttl, "Granted", isGranted)
	t.Logf("standby granted %v after the holder's failed resign", gb.at.Sub(lost.at).Round(time.Millisecond))
	noOverlap(t, a, b)
}

// The stale-Granted race at its source: Campaign, Resign and Campaign
// again in a row, faster than the events. Every Granted the elector sent
// before it acted on the Resign carries Resigns 0 and is followed by a
// Lost (its key is being deleted); the key this node ends up holding was
// granted with Resigns 1, so a machine that counted its one Resign takes
// only that one.
func TestGrantedCountsResigns(t *testing.T) {
	l, c := cluster(t)
	a := newNode(t, l.Node(1), c, prefix(t), 5*time.Second)
	a.e.Campaign()
	g, _ := a.wait(0, 10*time.Second, "Granted", isGranted)
	if r := g.ev.(quorum.Granted).Resigns; r != 0 {
		t.Fatalf("first Granted: Resigns %d, want 0", r)
	}
	for round := uint64(1); round <= 5; round++ {
		mark := a.mark()
		a.e.Resign()
		a.e.Campaign()
		a.wait(mark, 10*time.Second, "Granted after the Resign", func(ev quorum.Event) bool {
			g, ok := ev.(quorum.Granted)
			return ok && g.Resigns == round
		})
		evs := a.events()[mark:]
		t.Logf("round %d: %s", round, describe(evs))
		stale := false
		for _, e := range evs {
			switch ev := e.ev.(type) {
			case quorum.Granted:
				if stale {
					t.Errorf("round %d: a Granted before the stale one's Lost: %s", round, describe(evs))
				}
				stale = ev.Resigns < round
			case quorum.Lost:
				stale = false
			}
		}
	}
	if st := a.b.Status(); len(st.Groups) != 1 || st.Groups[0].Role != quorum.RoleHolding {
		t.Errorf("status %+v: want holding", st)
	}
}
