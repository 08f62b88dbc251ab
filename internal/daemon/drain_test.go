package daemon

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/election"
)

// fakeConns reports connections open to the VIPs until closeAt; it
// records when the VIP was still present at each look.
type fakeConns struct {
	mu      sync.Mutex
	closeAt time.Time // zero: never closes
	looks   int
}

func (f *fakeConns) open(addrs []netip.Addr) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.looks++
	return f.closeAt.IsZero() || time.Now().Before(f.closeAt), nil
}

// A planned move (here `floatip release`) removes the VIP only once no
// connection to it is open, and no later than election.DrainMax.
func TestReleaseDrainsOpenConnections(t *testing.T) {
	for _, tc := range []struct {
		name    string
		closeIn time.Duration // 0: the connections never close
		want    time.Duration
	}{
		{"closes", 30 * time.Millisecond, 30 * time.Millisecond},
		{"long-lived", 0, election.DrainMax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lan := &fakeLAN{}
				conns := &fakeConns{}
				a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), func(d *Deps) { d.OpenConns = conns.open }).start()
				b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip1.String())), nil).start()
				if h := soleHolder(t, "web", vip1, a, b); h != a {
					t.Fatalf("holder %s, want a", h.name)
				}
				start := time.Now()
				conns.mu.Lock()
				if tc.closeIn > 0 {
					conns.closeAt = start.Add(tc.closeIn)
				}
				conns.mu.Unlock()
				if err := a.d.Release(context.Background(), "web"); err != nil {
					t.Fatal(err)
				}
				for a.addrs.has(vip1) {
					time.Sleep(100 * time.Microsecond)
				}
				if took := time.Since(start); took < tc.want {
					t.Fatalf("the VIP went %v after the release, before the connections closed or the bound (%v)", took, tc.want)
				}
				if took := time.Since(start); took > tc.want+10*time.Millisecond {
					t.Fatalf("the VIP went %v after the release, want %v", took, tc.want)
				}
				waitFor(t, "b to take over", func() bool { return b.addrs.has(vip1) })
			})
		})
	}
}

// A fault (here the link going down) removes the VIP at once, open
// connections or not.
func TestFaultDoesNotDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		conns := &fakeConns{}
		a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), func(d *Deps) { d.OpenConns = conns.open }).start()
		if h := soleHolder(t, "web", vip1, a); h != a {
			t.Fatal("a does not hold")
		}
		start := time.Now()
		for _, g := range a.d.allGroups() {
			g.enqueue(context.Background(), election.LinkChanged{Up: false})
		}
		for a.addrs.has(vip1) {
			time.Sleep(100 * time.Microsecond)
		}
		if took := time.Since(start); took >= election.DrainMax {
			t.Fatalf("link down: the VIP went after %v: it waited for connections", took)
		}
		conns.mu.Lock()
		defer conns.mu.Unlock()
		if conns.looks != 0 {
			t.Fatalf("link down: looked at the connections %d times", conns.looks)
		}
	})
}

// slowConns always reports open connections, and each look takes took
// (a dump of a large socket table).
type slowConns struct {
	took  time.Duration
	mu    sync.Mutex
	looks int
}

func (f *slowConns) open([]netip.Addr) (bool, error) {
	f.mu.Lock()
	f.looks++
	f.mu.Unlock()
	time.Sleep(f.took)
	return true, nil
}

// The drain's bound is the move's (under a referee at most the lease's
// drop time): a drain whose bound has come does not look at all, and one
// whose looks are slow stops before a look that would run past the
// bound, rather than after it.
func TestDrainKeepsItsBoundWithSlowLooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conns := &slowConns{took: 30 * time.Millisecond}
		n := (&fakeLAN{}).newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), func(d *Deps) { d.OpenConns = conns.open })
		g := &group{name: "web", vips: []netip.Addr{vip1}, d: n.d, log: testLogger(t), added: true}
		g.drain(time.Now())
		if conns.looks != 0 {
			t.Fatalf("a drain whose bound had come looked %d times", conns.looks)
		}
		start := time.Now()
		until := start.Add(election.DrainMax)
		g.drain(until)
		if end := time.Now(); end.After(until) {
			t.Fatalf("drained until %v after its start, past its bound %v (%d looks of %v)", end.Sub(start), election.DrainMax, conns.looks, conns.took)
		}
		if conns.looks == 0 {
			t.Fatal("never looked at the connections")
		}
	})
}
