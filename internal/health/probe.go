package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/privdrop"
)

const (
	httpBodyLimit  = 4 << 10 // bytes of an HTTP response body read (and discarded)
	execOutputMax  = 1 << 10 // bytes of an exec check's combined output kept for Detail
	execWaitDelay  = time.Second
	defaultTimeout = time.Second
	defaultEvery   = 2 * time.Second

	// execPath is the PATH of an exec check, the same as hooks get.
	execPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
)

// ExecEnv returns the environment of check c's command:
// PATH=/usr/sbin:/usr/bin:/sbin:/bin and FLOATIP_CHECK (the check's name),
// and nothing from floatip's own environment (as for hooks: no secrets,
// proxies or LD_* variables from the daemon's environment reach it).
func ExecEnv(c Check) []string {
	return []string{execPath, "FLOATIP_CHECK=" + strings.ReplaceAll(c.Name, "\x00", "")}
}

// prober runs one probe of a check. ctx is the monitor's context; the prober
// applies the check's timeout itself.
type prober func(ctx context.Context) (ok bool, detail string)

// newProber returns the probe function for c (already normalized).
func newProber(c Check) prober {
	switch c.Kind {
	case KindHTTP:
		return httpProber(c)
	case KindTCP:
		return tcpProber(c)
	case KindExec:
		return execProber(c)
	default:
		// Fail closed: a check we cannot run never counts as healthy.
		detail := fmt.Sprintf("unknown check kind %q", c.Kind)
		return func(context.Context) (bool, string) { return false, detail }
	}
}

func httpProber(c Check) prober {
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil, // the local service, never through a proxy from the environment
			DialContext:       (&net.Dialer{}).DialContext,
			DisableKeepAlives: true, // every probe connects anew, as a client would
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context) (bool, string) {
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(pctx, http.MethodGet, c.URL, nil)
		if err != nil {
			return false, err.Error()
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return false, errDetail(pctx, ctx, c.Timeout, err)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, httpBodyLimit)
		resp.Body.Close()
		detail := fmt.Sprintf("%s in %s", resp.Status, fmtDuration(time.Since(start)))
		if resp.StatusCode != want {
			return false, fmt.Sprintf("%s (want %d)", detail, want)
		}
		return true, detail
	}
}

func tcpProber(c Check) prober {
	var d net.Dialer
	return func(ctx context.Context) (bool, string) {
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		start := time.Now()
		conn, err := d.DialContext(pctx, "tcp", c.Address)
		if err != nil {
			return false, errDetail(pctx, ctx, c.Timeout, err)
		}
		conn.Close()
		return true, "connected in " + fmtDuration(time.Since(start))
	}
}

func execProber(c Check) prober {
	env := ExecEnv(c)
	return func(ctx context.Context) (bool, string) {
		if len(c.Command) == 0 {
			return false, "no command"
		}
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		cmd := exec.CommandContext(pctx, c.Command[0], c.Command[1:]...)
		cmd.Env = env
		out := &capBuffer{max: execOutputMax}
		cmd.Stdin = nil // /dev/null
		cmd.Stdout, cmd.Stderr = out, out
		// Own process group, so a timeout (or Close) kills everything the
		// command started, not only its first process.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		// A child that escaped the group and holds the output pipe open
		// cannot make us wait longer than this.
		cmd.WaitDelay = execWaitDelay
		// Without floatip's CAP_NET_ADMIN and CAP_NET_RAW (see privdrop).
		err := privdrop.Run(cmd)
		if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success()) {
			return true, "exit status 0"
		}
		if pctx.Err() != nil && ctx.Err() == nil {
			return false, withOutput("timed out after "+c.Timeout.String(), out)
		}
		return false, withOutput(err.Error(), out)
	}
}

// errDetail describes a failed dial or request: a timeout as "timeout after
// X", otherwise the innermost useful error ("connect: connection refused").
func errDetail(pctx, parent context.Context, timeout time.Duration, err error) string {
	if errors.Is(pctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
		return "timeout after " + timeout.String()
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Err != nil {
		err = oe.Err
	}
	return err.Error()
}

func withOutput(detail string, out *capBuffer) string {
	s := strings.ToValidUTF8(strings.TrimSpace(string(out.buf)), "\uFFFD")
	if s == "" {
		return detail
	}
	if out.truncated {
		s += " ..."
	}
	return detail + ": " + s
}

// capBuffer keeps the first max bytes written to it and discards the rest
// (still reporting them written, so the command never blocks on its output).
type capBuffer struct {
	max       int
	buf       []byte
	truncated bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	room := min(b.max-len(b.buf), len(p))
	if room > 0 {
		b.buf = append(b.buf, p[:room]...)
	}
	if room < len(p) {
		b.truncated = true
	}
	return len(p), nil
}

// fmtDuration rounds d for humans: 1.2ms, 312µs, 1.503s.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		d = d.Round(time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}
