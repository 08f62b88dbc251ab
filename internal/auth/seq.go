package auth

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultSequenceFile is where the daemon keeps its sequence high-water
// mark unless configured otherwise.
const DefaultSequenceFile = "/var/lib/floatip/seq"

// DefaultReserve is how far ahead of the numbers in use the high-water mark
// is written: one minute of clock, so a node sending steadily writes its
// state file about once a minute.
const DefaultReserve = time.Minute

// Sequencer hands out sequence numbers that are never repeated for a key.
type Sequencer interface {
	Next() (uint64, error)
}

// SequenceOptions tune a Sequence; the zero value is the default.
type SequenceOptions struct {
	// Now is the wall clock; time.Now when nil.
	Now func() time.Time
	// Reserve is how far beyond the current number the durable mark is
	// set (in clock time, 1 ns per number); DefaultReserve when 0.
	Reserve time.Duration
}

// Sequence is a Sequencer that follows the wall clock in Unix nanoseconds,
// never goes back, and never reuses a number across restarts: every number
// it returns is at most the high-water mark last written durably to its
// state file. Safe for concurrent use. One process per state file.
type Sequence struct {
	mu      sync.Mutex
	path    string // "" keeps no state file
	now     func() time.Time
	reserve uint64
	last    uint64 // last number returned (or the mark read at start)
	mark    uint64 // durable: no number above it has been returned
}

const seqFileTag = "floatip-seq 1"

// OpenSequence reads the state file at path (a missing file means a first
// start) and writes a fresh mark at once, so an unwritable state directory
// is an error at startup rather than at the first frame. The directory is
// created if missing. With path "" nothing is persisted and only the clock
// prevents reuse after a restart (for tests and tools, not the daemon).
func OpenSequence(path string, opts SequenceOptions) (*Sequence, error) {
	s := &Sequence{path: path, now: opts.Now, reserve: uint64(opts.Reserve)}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Reserve <= 0 {
		s.reserve = uint64(DefaultReserve)
	}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("auth: sequence state: %w", err)
	default:
		m, err := parseMark(data)
		if err != nil {
			return nil, fmt.Errorf("auth: sequence state %s: %v (it is rewritten every minute; if it was damaged, remove it and floatip restarts from the clock)", path, err)
		}
		s.last, s.mark = m, m
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("auth: sequence state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.extend(s.candidate()); err != nil {
		return nil, err
	}
	return s, nil
}

func parseMark(data []byte) (uint64, error) {
	s := strings.TrimSpace(string(data))
	rest, ok := strings.CutPrefix(s, seqFileTag+" ")
	if !ok {
		return 0, fmt.Errorf("want %q and a number", seqFileTag)
	}
	m, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad mark %q", rest)
	}
	return m, nil
}

// candidate is the next number: one past the last, or the clock if it is
// ahead. Caller holds mu.
func (s *Sequence) candidate() uint64 {
	n := s.last + 1
	if t := s.now().UnixNano(); t > 0 && uint64(t) > n {
		n = uint64(t)
	}
	return n
}

// Next returns a number greater than every number returned before, also by
// an earlier process with the same state file. It fails only when the new
// high-water mark cannot be written; the caller must then not send.
func (s *Sequence) Next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == math.MaxUint64 {
		return 0, errors.New("auth: sequence numbers exhausted")
	}
	n := s.candidate()
	if s.path != "" && n > s.mark {
		if err := s.extend(n); err != nil {
			return 0, err
		}
	}
	s.last = n
	return n, nil
}

// extend writes a mark of n plus the reserve durably (write, fsync, rename,
// fsync of the directory). Caller holds mu.
func (s *Sequence) extend(n uint64) error {
	m := n + s.reserve
	if m < n {
		m = math.MaxUint64
	}
	if err := writeMark(s.path, m); err != nil {
		return fmt.Errorf("auth: sequence state: %w", err)
	}
	s.mark = m
	return nil
}

func writeMark(path string, m uint64) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(seqFileTag + " " + strconv.FormatUint(m, 10) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(dir)
}

// Refresh writes a new mark when less than half the reserve is left, so a
// caller that runs it from a timer (say every 10 seconds) keeps the state
// file write (about 7 ms with fsync on a loaded VM) off the send path:
// Next then never has to write.
func (s *Sequence) Refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path == "" {
		return nil
	}
	n := s.candidate()
	if n <= s.mark && s.mark-n >= s.reserve/2 {
		return nil
	}
	return s.extend(n)
}

// Mark returns the durable high-water mark (for tests and status).
func (s *Sequence) Mark() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark
}
