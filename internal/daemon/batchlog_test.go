package daemon

import (
	"bytes"
	"encoding/json"
	"github.com/floatip/floatip/internal/testutil"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Records made during a batch wait until it ends, keep their order and
// the time they were made, and carry the logger's attributes.
func TestBatchLogHoldsRecordsUntilFlush(t *testing.T) {
	var out bytes.Buffer
	var b batchLog
	log := b.logger(slog.New(slog.NewJSONHandler(&out, nil)).With("group", "web"))
	log.Info("before")
	b.hold()
	log.Info("first")
	log.With("k", 1).Warn("second")
	if strings.Contains(out.String(), "first") {
		t.Fatalf("a record was written during the batch: %s", out.String())
	}
	flushed := time.Now()
	b.flush()
	log.Info("after")
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			Time  time.Time
			Msg   string
			Group string
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Group != "web" {
			t.Errorf("%q: group %q, want web", r.Msg, r.Group)
		}
		if r.Msg == "first" && !r.Time.Before(flushed) {
			t.Errorf("held record stamped at the flush (%v), want the time it was made", r.Time)
		}
		got = append(got, r.Msg)
	}
	if want := "before first second after"; strings.Join(got, " ") != want {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// gatedClaims blocks every Claim until gate closes (an rtnl lock held by
// someone else for long), and says when one is waiting.
type gatedClaims struct {
	Addrs
	gate    chan struct{}
	waiting chan struct{}
}

func (g *gatedClaims) Claim(vips []netip.Addr, lifetime time.Duration) error {
	select {
	case g.waiting <- struct{}{}:
	default:
	}
	<-g.gate
	return g.Addrs.Claim(vips, lifetime)
}

// A group stuck in the middle of a batch (a netlink call that does not
// return) holds the batch's log records; the watchdog, which then stops
// its pings so that systemd restarts the daemon, writes them first: the
// log must say what the group was doing (here: it became holder) before
// the process is killed.
func TestStuckGroupWritesItsHeldLogRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gc := &gatedClaims{gate: make(chan struct{}), waiting: make(chan struct{}, 1)}
		n := (&fakeLAN{}).newTestNode(t, testConfig("a", 200, grp("web", vip1.String())), func(d *Deps) {
			gc.Addrs = d.Addrs
			d.Addrs = gc
		})
		var out testutil.SyncBuffer
		n.d.log = slog.New(slog.NewTextHandler(&out, nil))
		n.start()
		defer close(gc.gate) // (before the node's stop, a cleanup)
		<-gc.waiting
		time.Sleep(time.Minute)
		if st := n.d.stuckGroup(time.Second); st != "web" {
			t.Fatalf("stuck group %q, want web", st)
		}
		if !strings.Contains(out.String(), "to=holder") {
			t.Fatalf("the stuck group's transition to holder is not in the log:\n%s", out.String())
		}
	})
}
