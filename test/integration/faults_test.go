package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// The holder's daemon is stopped (SIGSTOP) for two lifetimes: its VIP
// expires and the standby takes over. Thawed, the old holder must not
// handle its queued frames and timers as holder ("conflict: we win") and
// take the VIP back: it gives the VIP up first and follows the new holder.
// The kernel state of both nodes is sampled throughout.
func TestThawedHolderDoesNotTakeBack(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	n1 := c.Node(1)
	lifetime := 3 * time.Second // the default profile's
	frozen := time.Now()
	if err := n1.Inject(lab.Fault{Kind: lab.FaultFreeze}); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 2*lifetime, "n2 to take over from the frozen n1")
	rec := c.RecordHolders(c.ctx)
	defer rec.Stop()
	if err := lab.Sleep(c.ctx, time.Until(frozen.Add(2*lifetime))); err != nil {
		t.Fatal(err)
	}
	if err := n1.Heal(c.ctx, lab.FaultFreeze); err != nil {
		t.Fatal(err)
	}
	c.waitState("n1", "standby", 5*time.Second)
	// Watch for a while after the thaw: n2 alone, throughout.
	if err := lab.Sleep(c.ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, o := range rec.Stop() {
		if slices.Contains(o.Holders, "n1") {
			c.dumpLogs()
			t.Fatalf("the thawed n1 held the VIP again at %s while n2 was alive (holders %v)", o.At.Format("15:04:05.000"), o.Holders)
		}
	}
	c.waitHolders(lab.HeldBy("n2"), time.Second, "n2 to keep the VIP")
}

// The holder's interface is deleted and created again (same name, new
// index): the daemon, whose netlink watch, ARP socket and address calls are
// bound to the old index, exits non-zero saying why (systemd's
// Restart=on-failure starts it again); started again, as systemd would, it
// works on the new interface. Meanwhile the standby took over.
func TestInterfaceRecreatedExitsForRestart(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	n1 := c.Node(1)
	old := c.daemons["n1"]
	if err := n1.Rewire(c.ctx); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to take over while n1's interface is gone")
	select {
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon on n1 kept running on the deleted interface's index")
	}
	if err := old.Wait(); err == nil {
		t.Fatal("the daemon exited 0 after its interface was re-created; systemd's Restart=on-failure would not restart it")
	}
	if _, err := old.WaitMsg(c.ctx, time.Second, "interface re-created; exiting so that the service manager restarts floatip on it", nil); err != nil {
		t.Fatalf("no log line saying why it exited: %v", err)
	}
	// Restarted (as systemd would), it runs on the new interface: standby
	// behind n2, no preemption.
	c.start(n1)
	c.waitState("n1", "standby", 5*time.Second)
	c.waitHolders(lab.HeldBy("n2"), time.Second, "n2 to keep the VIP")
}
