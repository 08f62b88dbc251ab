package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/privdrop"
)

const (
	// DefaultTimeout is used when a hook or fence timeout is zero or negative.
	DefaultTimeout = 30 * time.Second

	// OutputLimit is how much of a command's combined stdout and stderr is
	// kept (and logged); the rest is read and discarded.
	OutputLimit = 4 << 10

	// pathEnv is the only variable commands get from outside floatip.
	pathEnv = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

	// waitDelay bounds how long we wait for the output pipe to close after
	// the command exited (a background child may hold it open) or after it
	// was killed.
	waitDelay = 2 * time.Second

	// firstLineMax bounds the output quoted in an error.
	firstLineMax = 200
)

// RunError is the error of a hook or fence command that did not succeed.
// Its message says what happened, e.g. "fence command /usr/sbin/fence exited
// with status 2: no route to PDU".
type RunError struct {
	What     string         // "fence command /usr/sbin/fence", "notify hook command /etc/floatip/notify"
	Status   int            // exit status when the command exited by itself with non-zero status, else -1
	Signal   syscall.Signal // the signal that killed it when it did not exit by itself (and did not time out), else 0
	TimedOut bool           // killed (whole process group) after Timeout
	Timeout  time.Duration  // the timeout in force
	NotFound bool           // the command does not exist
	Output   string         // the first non-empty line of its output, if any
	Err      error          // the underlying error
}

func (e *RunError) Error() string {
	var msg string
	switch {
	case e.NotFound:
		msg = e.What + " not found"
	case e.TimedOut:
		msg = fmt.Sprintf("%s timed out after %v", e.What, e.Timeout)
	case e.Status > 0:
		msg = fmt.Sprintf("%s exited with status %d", e.What, e.Status)
	case e.Signal != 0:
		msg = fmt.Sprintf("%s was killed by signal %d (%v)", e.What, int(e.Signal), e.Signal)
	case errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded):
		msg = fmt.Sprintf("%s was stopped: %v", e.What, e.Err) // the caller's context ended
	default:
		msg = fmt.Sprintf("%s failed: %v", e.What, e.Err)
	}
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *RunError) Unwrap() error { return e.Err }

// exitStatus is the status to log for err: 0 for success, the exit status,
// or -1 when the command did not exit by itself.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var re *RunError
	if errors.As(err, &re) {
		return re.Status
	}
	return -1
}

// result is one run of a command.
type result struct {
	output    []byte
	truncated bool
	duration  time.Duration
	err       error // nil or *RunError
}

// run runs argv with env (and nothing else from our environment) in its own
// process group, stdin from /dev/null, stdout and stderr captured, without
// CAP_NET_ADMIN and CAP_NET_RAW (privdrop.Start). It kills
// the whole process group when timeout runs out or ctx is done.
func run(ctx context.Context, what string, argv, env []string, timeout time.Duration) result {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	fail := func(err error) *RunError {
		return &RunError{What: what, Status: -1, Timeout: timeout, Err: err}
	}
	if len(argv) == 0 || argv[0] == "" {
		return result{err: fail(errors.New("empty command"))}
	}

	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	cmd.Env = env
	out := &capture{limit: OutputLimit}
	cmd.Stdout, cmd.Stderr = out, out // the same writer: one pipe, output interleaved in order
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's ID is the leader's PID (Setpgid with Pgid 0).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay

	start := time.Now()
	// Without floatip's CAP_NET_ADMIN and CAP_NET_RAW (see privdrop).
	err := privdrop.Run(cmd)
	r := result{output: out.buf.Bytes(), truncated: out.dropped > 0, duration: time.Since(start)}
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success()) {
		// Exit 0; with ErrWaitDelay a background child kept the output
		// open, which is not the command's failure.
		return r
	}

	re := fail(err)
	re.Output = firstLine(r.output)
	switch {
	case cmd.Process == nil: // not started
		re.NotFound = notFound(argv[0], err)
	case ctx.Err() != nil: // the caller gave up
		re.Err = ctx.Err()
	case tctx.Err() != nil:
		re.TimedOut = true
		re.Err = tctx.Err()
	default:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				re.Status = ws.ExitStatus()
			case ws.Signaled():
				re.Signal = ws.Signal()
			}
		}
	}
	r.err = re
	return r
}

// notFound tells whether a start error means that the command does not
// exist (rather than, say, a missing #! interpreter, which the kernel also
// reports as ENOENT).
func notFound(name string, err error) bool {
	if errors.Is(err, exec.ErrNotFound) {
		return true
	}
	if errors.Is(err, fs.ErrNotExist) {
		_, serr := os.Stat(name)
		return errors.Is(serr, fs.ErrNotExist)
	}
	return false
}

// capture keeps the first limit bytes written and counts the rest.
// exec writes to it from a single goroutine, and we read it after Wait.
type capture struct {
	buf     bytes.Buffer
	limit   int
	dropped int
}

func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.limit - c.buf.Len(); room < len(p) {
		c.dropped += len(p) - max(room, 0)
		p = p[:max(room, 0)]
	}
	c.buf.Write(p)
	return n, nil
}

// lines splits output into its non-empty lines.
func lines(output []byte) []string {
	var ls []string
	for l := range strings.Lines(string(output)) {
		l = strings.TrimRight(l, "\r\n")
		if strings.TrimSpace(l) != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

func firstLine(output []byte) string {
	ls := lines(output)
	if len(ls) == 0 {
		return ""
	}
	l := strings.TrimSpace(ls[0])
	if len(l) > firstLineMax {
		l = l[:firstLineMax] + "..."
	}
	return l
}

// logOutput logs the captured output line by line at Info.
func logOutput(log *slog.Logger, msg, key, name string, r result) {
	for _, l := range lines(r.output) {
		log.Info(msg, key, name, "line", l)
	}
	if r.truncated {
		log.Info(msg, key, name, "line", fmt.Sprintf("(output truncated after %d bytes)", OutputLimit))
	}
}

// envValue makes s usable in an environment variable (no NUL bytes, which
// exec rejects).
func envValue(s string) string { return strings.ReplaceAll(s, "\x00", "") }

// rfc3339ms formats t as RFC 3339 with milliseconds, "" for the zero time.
func rfc3339ms(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}
