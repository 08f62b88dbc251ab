package main

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/floatip/floatip/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
)

var st0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// statusHandler answers status with a fixed cluster view; each call
// counts, so the test can tell the refreshes apart.
type statusHandler struct {
	mu    sync.Mutex
	calls int
}

func (h *statusHandler) Status(context.Context) (control.Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	return control.Status{Node: "n1", Interface: "eth0", Version: "test", PID: 1, Started: st0, Groups: []control.Group{{
		Name: "default", VIPs: []string{"198.18.0.100"}, State: election.StateHolder, Since: st0,
		Holder: "02:00:00:00:00:01", Priority: 100, Health: []control.Check{},
		Counters: control.Counters{Transitions: uint64(h.calls)},
		Peers: []control.Peer{
			{Name: "n2", NameSource: "frames", MAC: "02:00:00:00:00:02", Priority: 50, Role: election.RoleStandby, Healthy: true, LastHeard: st0},
		},
	}}}, nil
}
func (h *statusHandler) Release(context.Context, string) error          { return errors.New("no") }
func (h *statusHandler) Hold(context.Context, string, bool) error       { return errors.New("no") }
func (h *statusHandler) Reload(context.Context) error                   { return errors.New("no") }
func (h *statusHandler) Handover(context.Context, string, string) error { return errors.New("no") }

func serveStatus(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	s, err := control.Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx, &statusHandler{}) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

// runWatch drives `status --watch` for the first draw and two refreshes.
func runWatch(t *testing.T, args ...string) string {
	t.Helper()
	return runWatchTo(t, true, args...)
}

// runWatchTo is runWatch on a terminal (redraw) or a pipe.
func runWatchTo(t *testing.T, redraw bool, args ...string) string {
	t.Helper()
	path := serveStatus(t)
	c := parse(t, append([]string{"status", "--watch", "--socket", path}, args...)...)
	ticks := make(chan time.Time) // unbuffered: a send returns once the previous draw is done
	clock := st0
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	var out testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Status.watch(ctx, &out, redraw, ticks, now) }()
	for range 2 {
		select {
		case ticks <- time.Time{}:
		case err := <-done:
			t.Fatalf("watch ended early: %v\n%s", err, out.String())
		}
	}
	// The third draw may still be running: a watcher that is waiting
	// for the next tick returns at once on cancel.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "peers") < 3 { // each draw shows the peers once
		if time.Now().After(deadline) {
			t.Fatalf("the third draw never came:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("watch ended early: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch returned %v after Ctrl-C, want nil", err)
	}
	return out.String()
}

func TestStatusWatchRedraws(t *testing.T) {
	out := runWatch(t)
	frames := strings.Split(out, clearScreen)
	if frames[0] != "" {
		t.Errorf("output does not start by clearing the screen: %q", out)
	}
	frames = frames[1:]
	if len(frames) != 3 {
		t.Fatalf("%d screens, want 3 (first draw and two refreshes):\n%s", len(frames), out)
	}
	for i, f := range frames {
		// The fake clock moves a second per draw: the view is redrawn
		// with the time of each refresh, and the daemon asked again.
		wantUp := "up " + []string{"1s", "2s", "3s"}[i]
		wantPeer := "n2 (02:00:00:00:00:02)  prio 50  standby  " + []string{"1s", "2s", "3s"}[i] + " ago"
		wantCount := "transitions " + []string{"1", "2", "3"}[i]
		for _, w := range []string{wantUp, wantPeer, wantCount} {
			if !strings.Contains(f, w) {
				t.Errorf("screen %d lacks %q:\n%s", i+1, w, f)
			}
		}
	}
}

func TestStatusWatchJSON(t *testing.T) {
	out := runWatch(t, "--json")
	if strings.Contains(out, clearScreen) {
		t.Errorf("--json output clears the screen: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one JSON object per refresh (3):\n%s", len(lines), out)
	}
	for i, l := range lines {
		var st control.Status
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		if p := st.Groups[0].Peers; len(p) != 1 || p[0].Name != "n2" || st.Groups[0].Counters.Transitions != uint64(i+1) {
			t.Errorf("line %d: %s", i+1, l)
		}
	}
}

// Into a pipe, --watch writes plain views one after another: no escape
// codes (they garble a log file or a grep), a blank line between views.
func TestStatusWatchIntoPipe(t *testing.T) {
	out := runWatchTo(t, false)
	if strings.Contains(out, "\x1b") {
		t.Errorf("output into a pipe has escape codes: %q", out)
	}
	if n := strings.Count(out, "transitions "); n != 3 {
		t.Errorf("%d views, want 3 (first draw and two refreshes):\n%s", n, out)
	}
	if strings.HasPrefix(out, "\n") || !strings.Contains(out, "\n\n") {
		t.Errorf("views not separated by one blank line (and none before the first):\n%s", out)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is taken for a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is not taken for a terminal")
		}
	}
}
