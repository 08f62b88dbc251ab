package integration

import (
	"context"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// TestManyVIPs: 1000 VIPs in 10 groups on 3 nodes. When the holder of every
// group is powered off, every VIP moves to the next priority (n2), none is
// ever on two nodes, n3 (lower priority) never claims, and every sampled VIP
// answers again from n2. How fast, and what the daemons cost idle, is
// `floatip bench --scale`'s business, not a test's.
func TestManyVIPs(t *testing.T) {
	c := newLab(t, 3)
	started := time.Now()
	s, err := lab.StartScale(c.ctx, c.Lab, lab.ScaleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, n := range c.Nodes() {
		c.daemons[n.Name] = n.Daemon() // for the logs of a failed test
	}
	t.Logf("n1 holds %d groups with %d VIPs, n2 and n3 stand by, %v after start", len(s.Groups), len(s.VIPs), time.Since(started).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	f, err := s.PowerOffFailover(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d VIPs on n2 %v after the power-off, none elsewhere after %v", len(s.VIPs), f.AllOnNext.Round(time.Millisecond), f.Settled.Round(time.Millisecond))
	if f.MaxOnTwo > 0 {
		t.Errorf("up to %d VIPs were on two nodes at once", f.MaxOnTwo)
	}
	if f.MaxOnOthers > 0 || f.OthersClaimed > 0 {
		t.Errorf("n3 (priority 100) claimed while n2 (priority 150) was alive: became holder %d times, had up to %d VIPs", f.OthersClaimed, f.MaxOnOthers)
	}
	for name, r := range f.Sampled {
		if !r.Recovered || r.After != "n2" {
			t.Errorf("client %s did not recover on n2: %+v", name, r)
		}
	}
	if !f.Reference.Recovered || f.Reference.After != "n2" {
		t.Errorf("reference client did not recover on n2: %+v", f.Reference)
	}
	if len(f.Sampled) != 2*len(s.Groups) {
		t.Errorf("%d sampled clients, want %d", len(f.Sampled), 2*len(s.Groups))
	}
}
