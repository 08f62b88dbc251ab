package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openSeq(t *testing.T, path string, clk *clock, reserve time.Duration) *Sequence {
	t.Helper()
	s, err := OpenSequence(path, SequenceOptions{Now: clk.Now, Reserve: reserve})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func next(t *testing.T, s Sequencer) uint64 {
	t.Helper()
	n, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSequenceFollowsClockNeverBack(t *testing.T) {
	clk := newClock()
	s := openSeq(t, filepath.Join(t.TempDir(), "seq"), clk, 0)
	a := next(t, s)
	if want := uint64(clk.Now().UnixNano()); a != want {
		t.Errorf("first number %d, want the clock %d", a, want)
	}
	b := next(t, s) // same clock reading: one more
	if b != a+1 {
		t.Errorf("second number %d, want %d", b, a+1)
	}
	clk.Add(-time.Hour) // clock stepped back
	c := next(t, s)
	if c != b+1 {
		t.Errorf("after the clock went back: %d, want %d", c, b+1)
	}
	clk.Add(2 * time.Hour) // and forward again
	if d := next(t, s); d != uint64(clk.Now().UnixNano()) {
		t.Errorf("after the clock went forward: %d, want the clock", d)
	}
}

// TestSequenceRestart simulates crashes (the Sequence is dropped without
// any shutdown) with the clock set back each time: a new Sequence on the
// same state file never hands out a number handed out before.
func TestSequenceRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "seq") // directory made on open
	clk := newClock()
	var highest uint64
	for run := 0; run < 5; run++ {
		// A small reserve and a frozen clock make the numbers cross the
		// mark many times within one run.
		s := openSeq(t, path, clk, 100*time.Nanosecond)
		first := next(t, s)
		if first <= highest {
			t.Fatalf("run %d: first number %d, not above %d from the run before", run, first, highest)
		}
		n := first
		for i := 0; i < 1000; i++ {
			n = next(t, s)
			if n > s.Mark() {
				t.Fatalf("run %d: number %d above the durable mark %d", run, n, s.Mark())
			}
		}
		highest = n
		clk.Add(-time.Hour)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "floatip-seq 1 ") {
		t.Errorf("state file %q (%v)", data, fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("state directory holds %d files, want only the state file (no temporary left)", len(entries))
	}
}

// TestSequenceLostState: without its state file a node still starts above
// what it sent, because the numbers follow the clock.
func TestSequenceLostState(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	a := next(t, openSeq(t, filepath.Join(dir, "seq"), clk, 0))
	clk.Add(time.Second)
	if b := next(t, openSeq(t, filepath.Join(dir, "other"), clk, 0)); b <= a {
		t.Errorf("fresh state: %d, not above %d", b, a)
	}
}

func TestSequenceBadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seq")
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSequence(path, SequenceOptions{})
	if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
		t.Errorf("damaged state file: err %v, want a one-line error naming %s", err, path)
	}

	// The state directory is a file: OpenSequence fails at once.
	blocker := filepath.Join(dir, "notadir")
	os.WriteFile(blocker, nil, 0o600)
	if _, err := OpenSequence(filepath.Join(blocker, "seq"), SequenceOptions{}); err == nil {
		t.Error("unwritable state: OpenSequence succeeded")
	}
}

// TestSealFailsWhenMarkCannotBeWritten: once the reserve is used up and the
// state file cannot be rewritten, Seal fails instead of using numbers that
// are not durably reserved.
func TestSealFailsWhenMarkCannotBeWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	clk := newClock()
	s := openSeq(t, filepath.Join(dir, "seq"), clk, time.Second)
	sig := NewSigner(ring(t, testKey(t, 1)), s)
	if _, err := sig.Seal(arpFrame(srcMAC)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // the directory is now a file
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	if f, err := sig.Seal(arpFrame(srcMAC)); err == nil {
		t.Fatalf("Seal past the mark with an unwritable state file returned a frame of %d bytes", len(f))
	}
	// Numbers within the durable reserve need no write: with the clock
	// back, the next number is one past the last and below the mark.
	clk.Add(-2 * time.Second)
	if _, err := sig.Seal(arpFrame(srcMAC)); err != nil {
		t.Errorf("Seal within the reserve: %v", err)
	}
}

func TestSequenceRefresh(t *testing.T) {
	clk := newClock()
	s := openSeq(t, filepath.Join(t.TempDir(), "seq"), clk, time.Minute)
	m0 := s.Mark()
	if err := s.Refresh(); err != nil || s.Mark() != m0 {
		t.Fatalf("Refresh with the whole reserve left: mark %d -> %d, err %v; want unchanged", m0, s.Mark(), err)
	}
	clk.Add(40 * time.Second)
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	if want := uint64(clk.Now().Add(time.Minute).UnixNano()); s.Mark() != want {
		t.Errorf("mark after Refresh %d, want %d", s.Mark(), want)
	}
	m1 := s.Mark()
	next(t, s) // within the reserve: no write needed
	if s.Mark() != m1 {
		t.Error("Next wrote although Refresh had extended the mark")
	}
}
