package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of the server.
const (
	readTimeout    = 5 * time.Second  // for the whole request
	handlerTimeout = 10 * time.Second // for the Handler's work
	writeTimeout   = 5 * time.Second  // for the whole response
	maxRequest     = 64 << 10         // bytes
	maxSocketPath  = 107              // sun_path is 108 bytes including the NUL

	// MaxConns is how many connections are served at once; a connection
	// beyond it gets a "busy" answer at once and is closed (as many as
	// MaxConns more are answered so within a second; beyond that they are
	// closed without an answer). Each
	// connection costs at most the server's timeouts, so a local user
	// cannot hold more than this many goroutines and descriptors.
	MaxConns = 16

	refusedLogEvery = time.Second // at most one log line per kind of refusal per second
	refuseDrain     = time.Second // how long a refused connection may take to send its request
)

// Server serves the control socket. Make one with [Listen].
type Server struct {
	path      string
	gid       int // the control group, or -1
	uid       int // the daemon's own effective uid
	ln        *net.UnixListener
	serving   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	log       atomic.Pointer[slog.Logger]

	denied, overLimit atomic.Uint64
	lastDeniedLog     atomic.Int64 // unix nanoseconds
	lastOverLimitLog  atomic.Int64
}

// Stats counts what the server refused since it started.
type Stats struct {
	// Denied counts state-changing commands (release, hold, handover,
	// reload) refused because the peer is neither root, floatip's own
	// user nor a member of the control group.
	Denied uint64 `json:"denied"`
	// OverLimit counts connections closed at once because MaxConns were
	// being served.
	OverLimit uint64 `json:"over_limit"`
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Denied: s.denied.Load(), OverLimit: s.overLimit.Load()}
}

// SetLogger makes the server log its refusals (at Warn, at most one line
// per kind and second, with the running count) to log; nil logs nothing.
func (s *Server) SetLogger(log *slog.Logger) { s.log.Store(log) }

// logRefusal logs one refusal unless one of its kind was logged within the
// last refusedLogEvery.
func (s *Server) logRefusal(last *atomic.Int64, msg string, args ...any) {
	log := s.log.Load()
	if log == nil {
		return
	}
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(refusedLogEvery) || !last.CompareAndSwap(prev, now) {
		return
	}
	log.Warn(msg, args...)
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
// The socket appears at path with its final mode and group, whatever the
// umask: it is bound inside a new private (0700) directory next to path,
// given its mode and group there, then hard-linked to path (which fails if
// another daemon created path meanwhile) and the private directory
// removed. Nobody but the daemon's user can reach it before that.
//
// Who may do what: anyone who can connect may ask for "status"; the
// state-changing commands (release, hold, handover, reload) are refused
// unless the peer (SO_PEERCRED, the credentials of the connecting process
// when it connected) has uid 0 or the daemon's own uid, or has group gid
// as its primary group or among its supplementary groups (SO_PEERGROUPS:
// the kernel's copy from connect time; /proc is not read, so a peer that
// exits or a PID reused meanwhile cannot fool it). With gid < 0 only root
// and the daemon's user may change state.
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
	ln, err := listenFinal(path, gid)
	if err != nil {
		return nil, err
	}
	return &Server{path: path, gid: gid, uid: os.Geteuid(), ln: ln}, nil
}

// testHookBound, when set, is called with the path the socket was bound
// at, before its mode is set (tests check that nobody else can reach it).
var testHookBound func(bound string)

// listenFinal binds the socket in a private directory beside path, sets
// its mode and group, and links it to path (see Listen).
func listenFinal(path string, gid int) (*net.UnixListener, error) {
	priv, err := os.MkdirTemp(filepath.Dir(path), ".floatip-sock-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(priv)
	// MkdirTemp makes it 0700 less the umask; make sure of 0700.
	if err := os.Chmod(priv, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	tmp := filepath.Join(priv, "s")
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("control socket path %s is too long to create it safely (the temporary %s is %d bytes, at most %d)", path, tmp, len(tmp), maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// We remove path ourselves in Close; the listener's own name is the
	// temporary one.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, error) {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if testHookBound != nil {
		testHookBound(tmp)
	}
	if err := os.Chmod(tmp, 0o660); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			ln.Close()
			return nil, fmt.Errorf("another floatip is running on %s (it appeared while starting)", path)
		}
		return fail(err)
	}
	return ln, nil
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
	s.closeOnce.Do(func() {
		s.closeErr = s.ln.Close()
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) && s.closeErr == nil {
			s.closeErr = err
		}
	})
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

	slots := make(chan struct{}, MaxConns)
	refusing := make(chan struct{}, MaxConns) // connections being told "busy"
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
		select {
		case slots <- struct{}{}:
		default:
			s.overLimit.Add(1)
			s.logRefusal(&s.lastOverLimitLog, "control connection refused: too many at once",
				"max", MaxConns, "refused_total", s.overLimit.Load())
			select {
			case refusing <- struct{}{}:
				wg.Go(func() {
					defer func() { <-refusing }()
					refuse(conn)
				})
			default:
				conn.Close() // a flood: not even an answer
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.serveConn(ctx, conn, h)
		})
	}
}

// refuse answers conn "busy" and closes it. It first reads (and drops)
// what the client sends, for at most refuseDrain: closing a unix socket
// with unread data resets the connection, and the client would see the
// reset instead of the answer.
func refuse(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(refuseDrain))
	b, _ := json.Marshal(response{Busy: true, Error: fmt.Sprintf("busy: %d control connections are being served; try again", MaxConns)})
	conn.Write(append(b, '\n'))
	conn.CloseWrite()
	io.Copy(io.Discard, io.LimitReader(conn, maxRequest))
}

// peer is who is on the other end of a connection.
type peer struct {
	ok       bool // the credentials were read
	pid      int32
	uid, gid uint32
	groups   []uint32 // supplementary
}

func (p peer) String() string {
	if !p.ok {
		return "unknown peer"
	}
	return fmt.Sprintf("uid %d gid %d pid %d", p.uid, p.gid, p.pid)
}

// peerOf reads the credentials of conn's peer. Errors leave ok false, and
// an unknown peer is never allowed to change state.
func peerOf(conn *net.UnixConn) peer {
	var p peer
	rc, err := conn.SyscallConn()
	if err != nil {
		return p
	}
	rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			return
		}
		groups, err := peerGroups(int(fd))
		if err != nil {
			return
		}
		p = peer{ok: true, pid: cred.Pid, uid: cred.Uid, gid: cred.Gid, groups: groups}
	})
	return p
}

// peerGroups reads SO_PEERGROUPS, the peer's supplementary groups when it
// connected (Linux 4.13 and later).
func peerGroups(fd int) ([]uint32, error) {
	n := 64
	for {
		buf := make([]uint32, n)
		size := uint32(4 * n)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE && int(size/4) > n && size <= 4*65536:
			n = int(size / 4) // the kernel said how much it needs
		case errno != 0:
			return nil, errno
		default:
			return buf[:size/4], nil
		}
	}
}

// mayChange tells whether p may run the state-changing commands.
func (s *Server) mayChange(p peer) bool {
	if !p.ok {
		return false
	}
	if p.uid == 0 || int64(p.uid) == int64(s.uid) {
		return true
	}
	if s.gid < 0 {
		return false
	}
	g := uint32(s.gid)
	return p.gid == g || slices.Contains(p.groups, g)
}

// changesState tells whether cmd changes the daemon's state.
func changesState(cmd string) bool {
	switch cmd {
	case cmdRelease, cmdHold, cmdReload, cmdHandover:
		return true
	}
	return false
}

// whoMay says who may change state, for the refusal's message.
func (s *Server) whoMay() string {
	if s.gid < 0 {
		return "root or floatip's own user (no control.group is configured)"
	}
	name := strconv.Itoa(s.gid)
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	return "root, floatip's own user or members of group " + name + " (control.group)"
}

// serveConn reads one request from conn, answers it and closes conn.
func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn, h Handler) {
	defer conn.Close()
	who := peerOf(conn)
	var resp response
	conn.SetReadDeadline(time.Now().Add(readTimeout))
	var req request
	dec := json.NewDecoder(io.LimitReader(conn, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		resp = response{Error: "bad request: " + describeDecodeError(err)}
	} else if changesState(req.Cmd) && !s.mayChange(who) {
		s.denied.Add(1)
		s.logRefusal(&s.lastDeniedLog, "control command refused: peer may not change state",
			"cmd", req.Cmd, "peer", who.String(), "denied_total", s.denied.Load())
		resp = response{Error: fmt.Sprintf("permission denied: %s may be run only by %s; you are %s", req.Cmd, s.whoMay(), who)}
	} else {
		hctx, cancel := context.WithTimeout(ctx, handlerTimeout)
		resp = dispatch(hctx, h, req)
		cancel()
		if resp.Status != nil {
			st := s.Stats()
			resp.Status.Control = &st
		}
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
