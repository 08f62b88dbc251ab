package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// DefaultTimeout bounds a Client's request when Client.Timeout is zero. It
// is longer than the server's own limit for carrying out a command, so the
// daemon's error arrives before the client gives up.
const DefaultTimeout = 15 * time.Second

const maxResponse = 8 << 20 // bytes

// Client talks to a running daemon. The zero value uses [DefaultSocket]
// and [DefaultTimeout].
type Client struct {
	Path    string        // the socket; "" means DefaultSocket
	Timeout time.Duration // for the whole request; 0 means DefaultTimeout
}

// RemoteError is an error the daemon answered with, e.g. an unknown group.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Status returns the daemon's state.
func (c Client) Status(ctx context.Context) (Status, error) {
	resp, err := c.do(ctx, request{Cmd: cmdStatus})
	if err != nil {
		return Status{}, err
	}
	if resp.Status == nil {
		return Status{}, fmt.Errorf("floatip at %s answered without a status", c.path())
	}
	return *resp.Status, nil
}

// Release asks the daemon to hand the group's VIPs away and stay standby;
// "" means every group.
func (c Client) Release(ctx context.Context, group string) error {
	_, err := c.do(ctx, request{Cmd: cmdRelease, Group: group})
	return err
}

// Hold starts (on) or ends a maintenance hold of the group; "" means every
// group.
func (c Client) Hold(ctx context.Context, group string, on bool) error {
	_, err := c.do(ctx, request{Cmd: cmdHold, Group: group, On: &on})
	return err
}

// Handover asks the daemon to hand the group's VIPs to the standby named to,
// or to the best live standby when to is ""; "" group means every group held.
func (c Client) Handover(ctx context.Context, group, to string) error {
	_, err := c.do(ctx, request{Cmd: cmdHandover, Group: group, To: to})
	return err
}

// Reload asks the daemon to re-read its configuration.
func (c Client) Reload(ctx context.Context) error {
	_, err := c.do(ctx, request{Cmd: cmdReload})
	return err
}

func (c Client) path() string {
	if c.Path == "" {
		return DefaultSocket
	}
	return c.Path
}

// do sends req and returns the daemon's successful response; a refusal is a
// *RemoteError. When the daemon is busy (it serves MaxConns connections at
// once and refuses more at once) it tries again until the timeout.
func (c Client) do(ctx context.Context, req request) (response, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		resp, busy, err := c.once(ctx, req, timeout)
		if !busy {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err // the daemon's "busy" error
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// once makes one request; busy reports the daemon's "busy" refusal.
func (c Client) once(ctx context.Context, req request, timeout time.Duration) (_ response, busy bool, _ error) {
	path := c.path()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return response{}, false, dialError(path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancelling ctx interrupts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	fail := func(what string, err error) (response, bool, error) {
		if errors.Is(ctx.Err(), context.Canceled) {
			return response{}, false, ctx.Err()
		}
		// The connection's deadline may fire a moment before ctx's.
		var ne net.Error
		if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
			return response{}, false, fmt.Errorf("floatip at %s did not answer within %v", path, timeout)
		}
		return response{}, false, fmt.Errorf("%s floatip at %s: %w", what, path, err)
	}
	b, _ := json.Marshal(req) // cannot fail: strings and a bool
	_, werr := conn.Write(append(b, '\n'))
	if uc, ok := conn.(*net.UnixConn); ok && werr == nil {
		uc.CloseWrite() // the request is complete
	}
	// Even when the write failed, the daemon may have answered before it
	// closed (a "busy" refusal does not wait for the request).
	var resp response
	if err := json.NewDecoder(io.LimitReader(conn, maxResponse)).Decode(&resp); err != nil {
		if werr != nil {
			return fail("send to", werr)
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("connection closed without an answer")
		}
		return fail("read the answer of", err)
	}
	if !resp.OK {
		msg := resp.Error
		if msg == "" {
			msg = "floatip refused the request without saying why"
		}
		return response{}, resp.Busy, &RemoteError{Msg: msg}
	}
	return resp, false, nil
}

// dialError says why the daemon cannot be reached and what to do about it.
func dialError(path string, err error) error {
	var what, hint string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what, hint = "no such file", "is the daemon running? --socket sets the path"
	case errors.Is(err, syscall.ECONNREFUSED):
		what, hint = "connection refused", "the socket is left over: is the daemon running? --socket sets the path"
	case errors.Is(err, fs.ErrPermission):
		what, hint = "permission denied", "root or the socket's group needed"
	case errors.Is(err, syscall.ENOTDIR):
		what, hint = "not a directory", "--socket sets the path"
	}
	return &reachError{path: path, what: what, hint: hint, err: err}
}

// reachError is a failure to connect to the daemon. It unwraps to the
// system's error.
type reachError struct {
	path, what, hint string
	err              error
}

func (e *reachError) Error() string {
	if e.what == "" {
		return fmt.Sprintf("cannot reach floatip at %s: %v", e.path, e.err)
	}
	return fmt.Sprintf("cannot reach floatip at %s: %s (%s)", e.path, e.what, e.hint)
}

func (e *reachError) Unwrap() error { return e.err }
