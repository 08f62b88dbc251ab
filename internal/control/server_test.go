package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHandler records its calls and answers with st or err.
type fakeHandler struct {
	mu    sync.Mutex
	calls []string
	st    Status
	err   error
	panic bool
}

func (f *fakeHandler) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.panic {
		panic("boom")
	}
	return f.err
}

func (f *fakeHandler) Status(ctx context.Context) (Status, error) {
	if err := f.record("status"); err != nil {
		return Status{}, err
	}
	return f.st, nil
}

func (f *fakeHandler) Release(ctx context.Context, group string) error {
	return f.record("release " + group)
}

func (f *fakeHandler) Hold(ctx context.Context, group string, on bool) error {
	if on {
		return f.record("hold " + group + " on")
	}
	return f.record("hold " + group + " off")
}

func (f *fakeHandler) Reload(ctx context.Context) error { return f.record("reload") }

func (f *fakeHandler) Handover(ctx context.Context, group, to string) error {
	return f.record("handover " + group + " " + to)
}

func (f *fakeHandler) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// sockPath returns a socket path in a fresh temporary directory.
func sockPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "floatip.sock")
}

// serve listens on path and serves h until the test ends; it returns a
// function that stops the server and waits for Serve to return.
func serve(t *testing.T, path string, h Handler) (stop func()) {
	t.Helper()
	s, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRoundTrip(t *testing.T) {
	path := sockPath(t)
	h := &fakeHandler{st: sampleStatus()}
	serve(t, path, h)
	c := Client{Path: path, Timeout: 5 * time.Second}
	ctx := t.Context()

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSt := sampleStatus()
	wantSt.Control = &Stats{} // the server's counters, nothing refused
	if !reflect.DeepEqual(st, wantSt) {
		t.Errorf("Status:\n got %+v\nwant %+v", st, wantSt)
	}
	for _, step := range []struct {
		name string
		call func() error
	}{
		{"release all", func() error { return c.Release(ctx, "") }},
		{"release web", func() error { return c.Release(ctx, "web") }},
		{"hold on", func() error { return c.Hold(ctx, "db", true) }},
		{"hold off", func() error { return c.Hold(ctx, "", false) }},
		{"reload", func() error { return c.Reload(ctx) }},
		{"handover", func() error { return c.Handover(ctx, "web", "n2") }},
	} {
		if err := step.call(); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
	want := []string{"status", "release ", "release web", "hold db on", "hold  off", "reload", "handover web n2"}
	if got := h.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("handler calls %q, want %q", got, want)
	}
}

func TestHandlerErrorReachesClient(t *testing.T) {
	path := sockPath(t)
	h := &fakeHandler{err: errors.New(`no group "web"`)}
	serve(t, path, h)
	c := Client{Path: path, Timeout: 5 * time.Second}
	ctx := t.Context()

	checks := map[string]error{
		"release":  c.Release(ctx, "web"),
		"hold":     c.Hold(ctx, "web", true),
		"reload":   c.Reload(ctx),
		"handover": c.Handover(ctx, "web", ""),
	}
	_, checks["status"] = c.Status(ctx)
	for name, err := range checks {
		var re *RemoteError
		if !errors.As(err, &re) || err.Error() != `no group "web"` {
			t.Errorf("%s: error %v (%T), want RemoteError `no group \"web\"`", name, err, err)
		}
	}
}

func TestHandlerPanicIsAnError(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &fakeHandler{panic: true})
	c := Client{Path: path, Timeout: 5 * time.Second}
	err := c.Reload(t.Context())
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Reload with a panicking handler: %v, want an error about the panic", err)
	}
	if _, err := (Client{Path: path}).Status(t.Context()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("server stopped answering after a panic: %v", err)
	}
}

// rawRequest sends b on its own connection and decodes the response.
func rawRequest(t *testing.T, path string, b []byte) response {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	var resp response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %q: %v", out, err)
	}
	return resp
}

func TestBadRequests(t *testing.T) {
	path := sockPath(t)
	h := &fakeHandler{st: sampleStatus()}
	serve(t, path, h)
	for _, tc := range []struct {
		req, want string
	}{
		{`{"cmd":`, "bad request"},
		{`not json`, "bad request"},
		{``, "bad request"},
		{`[1,2]`, "bad request"},
		{`{"cmd":"status","grop":"web"}`, `unknown field "grop"`},
		{`{"cmd":"reboot"}`, `unknown cmd "reboot"`},
		{`{}`, `no "cmd"`},
		{`{"cmd":"hold","group":"web"}`, `"hold" needs "on"`},
		{`{"cmd":"release","on":"yes"}`, "bad request"},
	} {
		resp := rawRequest(t, path, []byte(tc.req))
		if resp.OK || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("request %q: response %+v, want an error containing %q", tc.req, resp, tc.want)
		}
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("bad requests reached the handler: %q", calls)
	}
	// The server still serves after all that.
	if resp := rawRequest(t, path, []byte(`{"cmd":"status"}`)); !resp.OK || resp.Status == nil {
		t.Errorf("status after bad requests: %+v", resp)
	}
	if _, err := (Client{Path: path}).Status(t.Context()); err != nil {
		t.Errorf("client after bad requests: %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &fakeHandler{st: sampleStatus()})
	// A client that connects and says nothing must not hold up the others.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := (Client{Path: path, Timeout: 5 * time.Second}).Status(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestSocketModeAndRemoval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "floatip") // Listen creates it
	path := filepath.Join(dir, "floatip.sock")
	stop := serve(t, path, &fakeHandler{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm&^0o750 != 0 {
		t.Errorf("created directory has mode %v, want at most 0750", perm)
	}
	stop()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Serve returned: %v, want it removed", err)
	}
}

func TestListenWithOwnGroup(t *testing.T) {
	// Chown to a group we are in works without root.
	path := sockPath(t)
	s, err := Listen(path, os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestStaleSocketRemoved(t *testing.T) {
	path := sockPath(t)
	// A socket file nobody accepts on, as a killed daemon leaves it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	serve(t, path, &fakeHandler{st: sampleStatus()})
	if _, err := (Client{Path: path}).Status(t.Context()); err != nil {
		t.Fatalf("status through the new socket: %v", err)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &fakeHandler{st: sampleStatus()})
	_, err := Listen(path, -1)
	if err == nil || err.Error() != "another floatip is running on "+path {
		t.Fatalf("second Listen: %v, want another floatip is running", err)
	}
	// The first server is untouched.
	if _, err := (Client{Path: path}).Status(t.Context()); err != nil {
		t.Fatalf("first server after the refused Listen: %v", err)
	}
}

func TestListenRefusesOtherFiles(t *testing.T) {
	path := sockPath(t)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen on a regular file: %v, want an error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("Listen touched a regular file")
	}
}

func TestCloseWithoutServe(t *testing.T) {
	path := sockPath(t)
	s, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
	if err := s.Serve(t.Context(), &fakeHandler{}); err != nil {
		t.Errorf("Serve after Close: %v, want nil", err)
	}
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothing.sock")
	_, err := Client{Path: missing}.Status(t.Context())
	want := "cannot reach floatip at " + missing + ": no such file (is the daemon running? --socket sets the path)"
	if err == nil || err.Error() != want {
		t.Errorf("missing socket: %v\nwant %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing socket: %v does not unwrap to fs.ErrNotExist", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	err = Client{Path: stale}.Reload(t.Context())
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("stale socket: %v, want connection refused", err)
	}

	// Permission is the filesystem's: only testable when not root.
	if os.Geteuid() != 0 {
		noAccess := sockPath(t)
		serve(t, noAccess, &fakeHandler{})
		if err := os.Chmod(noAccess, 0); err != nil {
			t.Fatal(err)
		}
		err = Client{Path: noAccess}.Reload(t.Context())
		want := "cannot reach floatip at " + noAccess + ": permission denied (root or the socket's group needed)"
		if err == nil || err.Error() != want {
			t.Errorf("socket without access: %v\nwant %s", err, want)
		}
	}
}

// slowHandler blocks in Status until its context ends.
type slowHandler struct{ fakeHandler }

func (s *slowHandler) Status(ctx context.Context) (Status, error) {
	<-ctx.Done()
	return Status{}, ctx.Err()
}

func TestClientTimeoutAndCancel(t *testing.T) {
	path := sockPath(t)
	serve(t, path, &slowHandler{})
	_, err := Client{Path: path, Timeout: 100 * time.Millisecond}.Status(t.Context())
	if err == nil || !strings.Contains(err.Error(), "did not answer within 100ms") {
		t.Errorf("slow daemon: %v, want a timeout", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = Client{Path: path}.Status(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

func TestServeEndsInFlightHandlers(t *testing.T) {
	// Stopping the server cancels handlers still working and waits for them.
	path := sockPath(t)
	stop := serve(t, path, &slowHandler{})
	errc := make(chan error, 1)
	go func() {
		_, err := Client{Path: path}.Status(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	stop()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("request during shutdown: %v, want the handler's context error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request still waiting after the server stopped")
	}
}
