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
