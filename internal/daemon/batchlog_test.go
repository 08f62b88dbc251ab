package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
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
