package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/floatip/floatip/internal/testutil"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveServer is serve with the Server returned and the group given.
func serveServer(t *testing.T, path string, gid int, h Handler) *Server {
	t.Helper()
	s, err := Listen(path, gid)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return s
}

// TestSocketNeverWiderMode: with umask 0 (a plain bind would make the
// socket 0777), the socket is bound where only its owner can reach it and
// appears at its path already 0660.
func TestSocketNeverWiderMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := sockPath(t)
	var bound string
	testHookBound = func(b string) {
		bound = b
		if b == path {
			t.Errorf("socket bound at its final path %s before its mode is set", path)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists before the socket's mode is set (Lstat: %v)", path, err)
		}
		fi, err := os.Stat(filepath.Dir(b))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("the directory %s the socket is bound in has mode %v, want 0700", filepath.Dir(b), fi.Mode().Perm())
		}
	}
	defer func() { testHookBound = nil }()
	s, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	if bound == "" {
		t.Fatal("the bind hook was not called")
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	if _, err := os.Lstat(filepath.Dir(bound)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the private directory %s is left behind (%v)", filepath.Dir(bound), err)
	}
	// The socket goes away with Close.
	s.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 0 {
		t.Errorf("files left in the socket's directory: %v", entries)
	}
}

// TestConnectionCap: with MaxConns connections being served, one more is
// answered "busy" at once, closed and counted; once they end, clients are
// served again.
func TestConnectionCap(t *testing.T) {
	path := sockPath(t)
	var logBuf testutil.SyncBuffer
	s := serveServer(t, path, -1, &fakeHandler{st: sampleStatus()})
	s.SetLogger(slog.New(slog.NewTextHandler(&logBuf, nil)))
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range MaxConns {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Accept takes connections in order, so this one comes after the
	// MaxConns idle ones hold every slot (each for up to readTimeout).
	resp := rawRequest(t, path, []byte(`{"cmd":"status"}`))
	if resp.OK || !resp.Busy || !strings.Contains(resp.Error, "busy") {
		t.Fatalf("connection %d: got %+v, want a busy refusal", MaxConns+1, resp)
	}
	if got := s.Stats().OverLimit; got != 1 {
		t.Errorf("OverLimit = %d, want 1", got)
	}
	if !strings.Contains(logBuf.String(), "too many at once") {
		t.Errorf("refusal not logged: %q", logBuf.String())
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	// The client retries while the server is busy, and the slots free up
	// as the idle connections' EOF is read.
	if _, err := (Client{Path: path, Timeout: 5 * time.Second}).Status(t.Context()); err != nil {
		t.Fatalf("status after the idle connections closed: %v", err)
	}
}

const helperEnv = "FLOATIP_CONTROL_HELPER" // "cmd path" for the helper run

// TestPeerHelper is not a test: run by TestPeerCredentials as another
// user, it sends one command and prints the answer as JSON.
func TestPeerHelper(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("helper for TestPeerCredentials")
	}
	cmd, path, _ := strings.Cut(arg, " ")
	c := Client{Path: path, Timeout: 5 * time.Second}
	var err error
	switch cmd {
	case "status":
		_, err = c.Status(t.Context())
	case "release":
		err = c.Release(t.Context(), "web")
	case "hold":
		err = c.Hold(t.Context(), "web", true)
	case "reload":
		err = c.Reload(t.Context())
	case "handover":
		err = c.Handover(t.Context(), "web", "")
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	b, _ := json.Marshal(msg)
	fmt.Printf("ANSWER %s\n", b)
}

// TestPeerCredentials: status is for anyone who can connect; release,
// hold, reload and handover only for root, the daemon's user and members
// of the control group (primary or supplementary); refusals are counted.
func TestPeerCredentials(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("helper run")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: run as root")
		}
		t.Skip("needs root to run clients as other users")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	// A directory everyone can enter, holding the socket and a copy of
	// the test binary that the other users run.
	dir, err := os.MkdirTemp("", "floatip-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}

	const group = 4242 // the control group; needs no /etc/group entry
	path := filepath.Join(dir, "floatip.sock")
	h := &fakeHandler{st: sampleStatus()}
	s := serveServer(t, path, group, h)
	// Let anyone connect, so that the server's own check is what decides.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}

	// as runs the helper with setpriv's credential options.
	as := func(t *testing.T, cmd string, cred ...string) string {
		t.Helper()
		args := append(cred, bin, "-test.run=^TestPeerHelper$", "-test.count=1")
		c := exec.Command(setpriv, args...)
		c.Dir = dir
		c.Env = append(os.Environ(), helperEnv+"="+cmd+" "+path)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("helper %v: %v\n%s", cred, err, out)
		}
		_, ans, ok := strings.Cut(string(out), "ANSWER ")
		if !ok {
			t.Fatalf("helper %v printed no answer:\n%s", cred, out)
		}
		var msg string
		if err := json.Unmarshal([]byte(strings.SplitN(ans, "\n", 2)[0]), &msg); err != nil {
			t.Fatalf("helper answer %q: %v", ans, err)
		}
		return msg
	}
	stranger := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	primary := []string{"--reuid=65534", fmt.Sprintf("--regid=%d", group), "--clear-groups"}
	supplementary := []string{"--reuid=65534", "--regid=65534", fmt.Sprintf("--groups=100,%d", group)}

	if msg := as(t, "status", stranger...); msg != "" {
		t.Errorf("status as a stranger: %s", msg)
	}
	denied := 0
	for _, cmd := range []string{"release", "hold", "reload", "handover"} {
		msg := as(t, cmd, stranger...)
		denied++
		if !strings.Contains(msg, "permission denied: "+cmd) || !strings.Contains(msg, "uid 65534 gid 65534") ||
			!strings.Contains(msg, "group 4242 (control.group)") {
			t.Errorf("%s as a stranger: got %q, want a permission denied naming the peer and the group", cmd, msg)
		}
	}
	if got := s.Stats().Denied; got != uint64(denied) {
		t.Errorf("Denied = %d, want %d", got, denied)
	}
	if got := h.Calls(); len(got) != 1 || got[0] != "status" {
		t.Errorf("handler calls %q, want only the stranger's status", got)
	}
	if msg := as(t, "release", primary...); msg != "" {
		t.Errorf("release with the control group as primary group: %s", msg)
	}
	if msg := as(t, "hold", supplementary...); msg != "" {
		t.Errorf("hold with the control group as a supplementary group: %s", msg)
	}
	if got := s.Stats().Denied; got != uint64(denied) {
		t.Errorf("Denied = %d after allowed commands, want %d", got, denied)
	}
	// The refusals show in the status.
	st, err := (Client{Path: path, Timeout: 5 * time.Second}).Status(t.Context())
	if err != nil || st.Control == nil || st.Control.Denied != uint64(denied) {
		t.Errorf("status control counters %+v (%v), want %d denied", st.Control, err, denied)
	}
	var text strings.Builder
	FormatStatus(&text, st, time.Now())
	if !strings.Contains(text.String(), fmt.Sprintf("control socket refused %d state-changing commands", denied)) {
		t.Errorf("floatip status does not show the refusals:\n%s", text.String())
	}
	// Root (this process) may, too.
	if err := (Client{Path: path, Timeout: 5 * time.Second}).Reload(t.Context()); err != nil {
		t.Errorf("reload as root: %v", err)
	}
}
