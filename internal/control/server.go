package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits of the server.
const (
	readTimeout    = 5 * time.Second  // for the whole request
	handlerTimeout = 10 * time.Second // for the Handler's work
	writeTimeout   = 5 * time.Second  // for the whole response
	maxRequest     = 64 << 10         // bytes
	maxSocketPath  = 107              // sun_path is 108 bytes including the NUL
)

// Server serves the control socket. Make one with [Listen].
type Server struct {
	path      string
	ln        *net.UnixListener
	serving   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Listen creates the control socket at path and starts listening on it.
//
// The parent directory is created with mode 0750 if it is missing (and
// given group gid when gid >= 0, so that the group can reach the socket);
// an existing directory is left as it is. A socket file left by a daemon
// that is gone (nobody accepts on it) is removed; if a daemon still answers
// on it, Listen fails with "another floatip is running on <path>". Any
// other file at path is an error. The socket gets mode 0660 and, when
// gid >= 0, group gid, so that an operator group can use it.
//
// Call [Server.Serve] to answer requests; it removes the socket file when it
// returns. Call [Server.Close] instead if Serve is never called.
func Listen(path string, gid int) (*Server, error) {
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket path %s is too long (%d bytes, at most %d)", path, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		if gid >= 0 {
			if err := os.Chown(dir, -1, gid); err != nil {
				return nil, fmt.Errorf("control socket: %w", err)
			}
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Closing ln removes the socket file (the default for a listener that
	// created it).
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	return &Server{path: path, ln: ln}, nil
}

// removeStale removes a socket file at path that nobody accepts on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another floatip is running on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket: check whether %s is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops listening and removes the socket file. Connections being
// served are not interrupted. It is safe to call more than once and while
// Serve runs.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.ln.Close() })
	return s.closeErr
}

// Serve answers requests with h, each connection on its own goroutine,
// until ctx ends or [Server.Close] is called. Then it closes the socket,
// removing the file, waits for the connections being served (each ends
// within the server's timeouts) and returns nil. It may be called once.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	if h == nil {
		s.Close()
		return errors.New("control: Serve with a nil Handler")
	}
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("control: Serve called twice")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()

	var backoff time.Duration
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than give up the socket for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Go(func() { serveConn(ctx, conn, h) })
	}
}

// serveConn reads one request from conn, answers it and closes conn.
func serveConn(ctx context.Context, conn net.Conn, h Handler) {
	defer conn.Close()
	var resp response
	conn.SetReadDeadline(time.Now().Add(readTimeout))
	var req request
	dec := json.NewDecoder(io.LimitReader(conn, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		resp = response{Error: "bad request: " + describeDecodeError(err)}
	} else {
		hctx, cancel := context.WithTimeout(ctx, handlerTimeout)
		resp = dispatch(hctx, h, req)
		cancel()
	}
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(response{Error: "cannot encode the answer: " + err.Error()})
	}
	conn.Write(append(b, '\n'))
}

func describeDecodeError(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no complete request within %v", readTimeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the request ended early; send one JSON object such as {\"cmd\":\"status\"}"
	}
	return err.Error()
}

// dispatch runs one request on h. A panic in h becomes an error response.
func dispatch(ctx context.Context, h Handler, req request) (resp response) {
	defer func() {
		if p := recover(); p != nil {
			resp = response{Error: fmt.Sprintf("internal error in %s: %v", req.Cmd, p)}
		}
	}()
	var err error
	switch req.Cmd {
	case cmdStatus:
		var st Status
		if st, err = h.Status(ctx); err == nil {
			st = normalize(st)
			return response{OK: true, Status: &st}
		}
	case cmdRelease:
		err = h.Release(ctx, req.Group)
	case cmdHold:
		if req.On == nil {
			return response{Error: `bad request: "hold" needs "on": true or false`}
		}
		err = h.Hold(ctx, req.Group, *req.On)
	case cmdReload:
		err = h.Reload(ctx)
	case cmdHandover:
		err = h.Handover(ctx, req.Group, req.To)
	case "":
		return response{Error: `bad request: no "cmd"; want status, release, hold, reload or handover`}
	default:
		return response{Error: fmt.Sprintf("bad request: unknown cmd %q; want status, release, hold, reload or handover", req.Cmd)}
	}
	if err != nil {
		msg := err.Error()
		if msg == "" {
			msg = req.Cmd + " failed"
		}
		return response{Error: msg}
	}
	return response{OK: true}
}
