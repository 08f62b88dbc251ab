package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// Quorum with etcd: two floatip nodes (n1, n2) and a three-member etcd
// cluster (one member on each of n1, n2, n3). The kernels' address state
// is sampled throughout (watchHolders): two holders at the same moment
// fail every test.

type quorumLab struct {
	*cluster
	etcd *lab.EtcdCluster
	cfg  string // the daemons' configuration file
	ttl  time.Duration
}

func newQuorumLab(t *testing.T, ttl time.Duration) *quorumLab {
	t.Helper()
	c := newLab(t, 3)
	e, err := c.StartEtcd(c.ctx, lab.EtcdOptions{})
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	cfg := filepath.Join(t.TempDir(), "floatip.yaml")
	body := fmt.Sprintf("quorum:\n  etcd:\n    endpoints: [%s]\n    ttl: %s\n    prefix: /floatip/%s\n",
		strings.Join(e.Endpoints(), ", "), ttl, c.Prefix)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return &quorumLab{cluster: c, etcd: e, cfg: cfg, ttl: ttl}
}

// startTwo starts floatip on n1 (priority 200), waits until it holds,
// then on n2 (150), and waits until it is standby.
func (q *quorumLab) startTwo() {
	q.t.Helper()
	q.start(q.Node(1), "--config", q.cfg)
	q.waitHolders(lab.HeldBy("n1"), 20*time.Second, "n1 to hold the VIP with the quorum key")
	if _, err := q.daemons["n1"].WaitMsg(q.ctx, time.Second, "quorum key granted", nil); err != nil {
		q.t.Fatalf("n1 holds without a logged grant of the key: %v", err)
	}
	q.start(q.Node(2), "--config", q.cfg)
	q.waitState("n2", "standby", 10*time.Second)
}

// noOverlap stops the sampler and fails the test if two nodes ever held
// the VIP at once.
func (q *quorumLab) noOverlap(stop chan struct{}, worst <-chan []string) {
	q.t.Helper()
	close(stop)
	if w := <-worst; len(w) > 1 {
		q.t.Errorf("two holders at once: %v", w)
	}
}

func TestQuorumOneHolderThenPowerOff(t *testing.T) {
	q := newQuorumLab(t, 5*time.Second)
	q.startTwo()
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	// Settled: n1 alone, n2 standby, for a few keepalive rounds.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if h, err := q.Holders(); err != nil || len(h) != 1 || h[0] != "n1" {
			t.Fatalf("holders %v (err %v), want [n1]", h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fault := time.Now()
	if err := q.Node(1).PowerOff(); err != nil {
		t.Fatal(err)
	}
	// n2 may claim only once etcd gives it the key: after n1's lease ran
	// out (n1 was not fenced).
	q.waitHolders(lab.HeldBy("n2"), q.ttl+10*time.Second, "n2 to take over from the powered-off n1")
	t.Logf("power off: n2 holds %v after the fault (TTL %v)", time.Since(fault).Round(time.Millisecond), q.ttl)
	line := q.waitState("n2", "holder", time.Second)
	if !strings.Contains(line.Str("reason"), "quorum key granted") {
		t.Errorf("n2 became holder with reason %q, want it granted the key", line.Str("reason"))
	}
	q.noOverlap(stop, worst)
}

func TestQuorumGracefulStopMovesWithoutTTL(t *testing.T) {
	// A long TTL: a takeover that waited for the lease to expire would not
	// come within the wait below.
	q := newQuorumLab(t, 60*time.Second)
	q.startTwo()
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	n1 := q.daemons["n1"]
	stopped := time.Now()
	if err := q.Node(1).Inject(lab.Fault{Kind: lab.FaultStop}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("n1 did not exit within 10s of SIGTERM")
	}
	if err := n1.Wait(); err != nil {
		t.Errorf("n1 exit after SIGTERM: %v, want status 0", err)
	}
	if _, err := n1.WaitMsg(q.ctx, time.Second, "etcd: resigned", nil); err != nil {
		t.Errorf("n1 did not resign its key: %v", err)
	}
	q.waitHolders(lab.HeldBy("n2"), 10*time.Second, "n2 to take over after n1's graceful stop (TTL 60s)")
	t.Logf("graceful stop: n2 holds %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	q.noOverlap(stop, worst)
}

func TestQuorumPartitionNeverTwoHolders(t *testing.T) {
	q := newQuorumLab(t, 5*time.Second)
	q.startTwo()
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	// n1 is cut off from everyone: from n2 and from the etcd majority. It
	// keeps the VIP until its lease deadline, then drops it; n2 holds
	// only once etcd gives it the key.
	cut := time.Now()
	if err := q.Node(1).Inject(lab.Fault{Kind: lab.FaultPartition}); err != nil {
		t.Fatal(err)
	}
	q.waitHolders(lab.HeldBy("n2"), q.ttl+10*time.Second, "n2 to take over from the cut-off n1")
	t.Logf("partition: n2 holds %v after the cut (TTL %v)", time.Since(cut).Round(time.Millisecond), q.ttl)
	// (The kernel removes it first, when the lifetime bounded by the
	// lease deadline runs out; the daemon's own drop is the backstop.)
	if _, err := q.daemons["n1"].WaitMsg(q.ctx, time.Second, "vip removed", func(l lab.Line) bool { return l.Time().After(cut) }); err != nil {
		t.Errorf("n1 did not give the VIP up: %v", err)
	}
	// Stay cut a while: n1 must not claim back without the key.
	for end := time.Now().Add(2 * q.ttl); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if h, _ := q.Holders(); len(h) != 1 || h[0] != "n2" {
			t.Fatalf("holders during the partition %v, want [n2]", h)
		}
	}
	healed := time.Now()
	if err := q.Node(1).Heal(q.ctx, lab.FaultPartition); err != nil {
		t.Fatal(err)
	}
	if _, err := q.daemons["n1"].WaitMsg(q.ctx, 15*time.Second, "state changed", func(l lab.Line) bool {
		return l.Str("to") == "standby" && l.Time().After(healed)
	}); err != nil {
		t.Errorf("n1 did not follow n2 after the heal: %v", err)
	}
	if h, _ := q.Holders(); len(h) != 1 || h[0] != "n2" {
		t.Errorf("holders after the heal %v, want [n2]", h)
	}
	q.noOverlap(stop, worst)
}
