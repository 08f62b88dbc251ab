package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Line is one line a process wrote, stamped when the lab read it.
type Line struct {
	At     time.Time      // when the lab received the line
	Stream string         // "stdout" or "stderr"
	Text   string         // the line without its newline
	Fields map[string]any // the line decoded as a JSON object; nil when it is not one
}

// Time is the line's own "time" attribute (RFC 3339, as slog's JSON handler
// writes it) when it has one, else the time the lab received the line.
func (l Line) Time() time.Time {
	if s, ok := l.Fields["time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return l.At
}

// Msg is the line's "msg" attribute, or "" when it has none.
func (l Line) Msg() string { return l.Str("msg") }

// Str is the string attribute key of a JSON line, or "" when it is absent or
// not a string.
func (l Line) Str(key string) string {
	s, _ := l.Fields[key].(string)
	return s
}

// Proc is a process the lab started inside a namespace, in its own process
// group. Its stdout and stderr are read line by line and kept in memory.
type Proc struct {
	Name string // "n1/floatip", for messages
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []Line
	dropped int           // lines dropped from the front (SetKeep); indices count them
	keep    int           // keep at least this many recent lines; 0: keep every line
	changed chan struct{} // closed and replaced whenever a line arrives or the process ends
	exitAt  time.Time

	done    chan struct{} // closed once the process has exited and its output is drained
	waitErr error
}

// startProc starts argv inside namespace ns with `ip netns exec`, in a new
// process group. When ctx ends the whole group is killed. The process is
// killed too if the lab's own process dies (Pdeathsig).
func startProc(ctx context.Context, label, ns string, argv []string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("lab: empty command")
	}
	full := append([]string{"netns", "exec", ns}, argv...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = nil
	p := &Proc{Name: label, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	cmd.Cancel = func() error { return p.signalGroup(syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", label, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go p.read(&readers, "stdout", stdout)
	go p.read(&readers, "stderr", stderr)
	go func() {
		readers.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.exitAt = time.Now()
		p.notifyLocked()
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) read(wg *sync.WaitGroup, stream string, r io.Reader) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := Line{At: time.Now(), Stream: stream, Text: sc.Text()}
		if strings.HasPrefix(l.Text, "{") {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				l.Fields = m
			}
		}
		p.add(l)
	}
	// Drain the rest (a line over 1 MiB) so the writer never blocks.
	_, _ = io.Copy(io.Discard, r)
}

// add keeps a line (dropping the oldest beyond SetKeep's bound) and wakes
// the waiters.
func (p *Proc) add(l Line) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, l)
	if p.keep > 0 && len(p.lines) >= 2*p.keep {
		n := len(p.lines) - p.keep
		p.lines = append([]Line(nil), p.lines[n:]...)
		p.dropped += n
	}
	p.notifyLocked()
}

func (p *Proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Pid is the process id (also its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Lines returns a copy of every line read so far, in arrival order per stream.
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// LinesFrom returns a copy of the lines from index i on (i past the end
// gives none), so a reader can follow the output: next := i + len(result)
// (for a process with SetKeep, use LinesSince).
func (p *Proc) LinesFrom(i int) []Line {
	l, _ := p.LinesSince(i)
	return l
}

// LinesSince returns a copy of the lines from index i on and the index to
// pass next time; lines SetKeep dropped before they were read are skipped.
func (p *Proc) LinesSince(i int) ([]Line, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	j := max(i-p.dropped, 0)
	next := p.dropped + len(p.lines)
	if j >= len(p.lines) {
		return nil, next
	}
	return append([]Line(nil), p.lines[j:]...), next
}

// SetKeep bounds the memory a long-running process's output takes: from now
// on only (at least) the last n lines are kept. Indices (LinesSince) still
// count every line.
func (p *Proc) SetKeep(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keep = n
}

// ExitedAt is when the process was seen to exit (zero while it runs).
func (p *Proc) ExitedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitAt
}

// WaitLine waits until a line matching match has arrived (looking at every
// line since the start, including ones already read) and returns it. It
// fails when ctx ends, when timeout passes (if timeout > 0), or when the
// process exits without such a line.
func (p *Proc) WaitLine(ctx context.Context, timeout time.Duration, match func(Line) bool) (Line, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	next := 0
	for {
		p.mu.Lock()
		lines := p.lines[max(next-p.dropped, 0):]
		next = p.dropped + len(p.lines)
		changed := p.changed
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l, nil
			}
		}
		select {
		case <-p.done:
			// Look once more: lines may have arrived just before the exit.
			p.mu.Lock()
			rest := p.lines[min(max(next-p.dropped, 0), len(p.lines)):]
			p.mu.Unlock()
			for _, l := range rest {
				if match(l) {
					return l, nil
				}
			}
			return Line{}, fmt.Errorf("lab: %s exited (%v) without the expected line; last output: %s", p.Name, p.exitErr(), p.Tail(5))
		case <-changed:
		case <-ctx.Done():
			return Line{}, fmt.Errorf("lab: waiting for a line from %s: %w; last output: %s", p.Name, ctx.Err(), p.Tail(5))
		}
	}
}

// WaitMsg waits for a JSON log line whose "msg" is msg and for which match
// (if not nil) holds.
func (p *Proc) WaitMsg(ctx context.Context, timeout time.Duration, msg string, match func(Line) bool) (Line, error) {
	return p.WaitLine(ctx, timeout, func(l Line) bool {
		return l.Msg() == msg && (match == nil || match(l))
	})
}

// Tail is the last n lines of the process's output, joined by " | ", or
// "(none)".
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(l.Text)
	}
	return b.String()
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Done is closed once the process has exited and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error (an
// *exec.ExitError when it did not exit with status 0).
func (p *Proc) Wait() error {
	<-p.done
	return p.exitErr()
}

// Signal sends sig to the process's whole process group (the process and
// anything it started). Signalling a process that has exited is not an error.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.signalGroup(sig)
}

// SignalMain sends sig to the process alone, not to its process group.
// Signalling a process that has exited is not an error.
func (p *Proc) SignalMain(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	err := syscall.Kill(p.cmd.Process.Pid, sig)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: signal %v to %s: %w", sig, p.Name, err)
	}
	return nil
}

func (p *Proc) signalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: signal %v to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group and waits (up to 5 s) for the
// process to be gone.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("lab: %s (pid %d) still running 5 s after SIGKILL", p.Name, p.Pid())
	}
}

// Stop sends SIGTERM to the process group and waits up to grace for the
// process to exit, then kills it.
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return p.Kill()
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	st := processState(pid)
	return st != 0 && st != 'Z' && st != 'X'
}

// processState is the state letter of pid from /proc/PID/stat ('R', 'S',
// 'T', 'Z', ...), or 0 when there is no such process.
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The state follows the ")" that closes the command name.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
