package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeOnce runs c's probe once, with New's defaults applied.
func probeOnce(t *testing.T, c Check) (bool, string) {
	t.Helper()
	m := New([]Check{c}, nil)
	ok, detail := m.probes[0](t.Context())
	t.Logf("%s check: ok=%v detail=%q", c.Kind, ok, detail)
	return ok, detail
}

// loopbackServer starts an httptest server on 127.0.0.1 (httptest's default).
func loopbackServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPCheck(t *testing.T) {
	srv := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(strings.Repeat("x", 64<<10))) // longer than what we read
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	})
	tests := []struct {
		path   string
		expect int
		ok     bool
		want   string
	}{
		{"/ok", 0, true, "200 OK in "},
		{"/ok", 200, true, "200 OK in "},
		{"/down", 0, false, "503"},
		{"/down", 503, true, "503 Service Unavailable in "},
		{"/teapot", 200, false, "418"},
		{"/redirect", 200, false, "302"}, // redirects are not followed
		{"/slow", 200, false, "timeout"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, "/")+"-"+strconv.Itoa(tt.expect), func(t *testing.T) {
			start := time.Now()
			ok, detail := probeOnce(t, Check{Name: "web", Kind: KindHTTP, URL: srv.URL + tt.path,
				ExpectStatus: tt.expect, Timeout: 200 * time.Millisecond})
			if ok != tt.ok || !strings.Contains(detail, tt.want) {
				t.Fatalf("got ok=%v detail=%q, want ok=%v and detail containing %q", ok, detail, tt.ok, tt.want)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("probe took %v with a 200ms timeout", el)
			}
		})
	}
}

func TestHTTPCheckRefused(t *testing.T) {
	ok, detail := probeOnce(t, Check{Kind: KindHTTP, URL: "http://" + closedPort(t) + "/", Timeout: time.Second})
	if ok || !strings.Contains(detail, "connection refused") {
		t.Fatalf("got ok=%v detail=%q, want a refused connection", ok, detail)
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and drop, until the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ok, detail := probeOnce(t, Check{Kind: KindTCP, Address: ln.Addr().String(), Timeout: time.Second})
	if !ok || !strings.HasPrefix(detail, "connected in ") {
		t.Fatalf("listening port: got ok=%v detail=%q", ok, detail)
	}
	ok, detail = probeOnce(t, Check{Kind: KindTCP, Address: closedPort(t), Timeout: time.Second})
	if ok || detail != "connect: connection refused" {
		t.Fatalf("closed port: got ok=%v detail=%q, want \"connect: connection refused\"", ok, detail)
	}
}

func TestExecCheck(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		ok      bool
		want    []string
	}{
		{"true", []string{"/bin/true"}, true, []string{"exit status 0"}},
		{"false", []string{"/bin/false"}, false, []string{"exit status 1"}},
		{"output", []string{"sh", "-c", "echo boom; exit 3"}, false, []string{"exit status 3", "boom"}},
		{"stderr", []string{"sh", "-c", "echo oops >&2; exit 2"}, false, []string{"exit status 2: oops"}},
		{"stdin is empty", []string{"sh", "-c", "read x && echo got $x; exit 4"}, false, []string{"exit status 4"}},
		{"missing", []string{"/nonexistent/check"}, false, []string{"no such file"}},
		{"empty", nil, false, []string{"no command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, detail := probeOnce(t, Check{Kind: KindExec, Command: tt.command, Timeout: 5 * time.Second})
			if ok != tt.ok {
				t.Fatalf("got ok=%v detail=%q, want ok=%v", ok, detail, tt.ok)
			}
			for _, w := range tt.want {
				if !strings.Contains(detail, w) {
					t.Fatalf("detail %q does not contain %q", detail, w)
				}
			}
		})
	}
}

func TestExecCheckOutputLimited(t *testing.T) {
	ok, detail := probeOnce(t, Check{Kind: KindExec, Timeout: 5 * time.Second,
		Command: []string{"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; exit 1"}})
	if ok || len(detail) > execOutputMax+100 || !strings.HasPrefix(detail, "exit status 1: xxx") {
		t.Fatalf("got ok=%v and a %d-byte detail starting %.40q", ok, len(detail), detail)
	}
}

func TestExecCheckTimeout(t *testing.T) {
	start := time.Now()
	ok, detail := probeOnce(t, Check{Kind: KindExec, Command: []string{"sleep", "5"}, Timeout: 100 * time.Millisecond})
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("a 100ms timeout returned after %v", el)
	}
	if ok || detail != "timed out after 100ms" {
		t.Fatalf("got ok=%v detail=%q, want \"timed out after 100ms\"", ok, detail)
	}
}

// TestExecCheckTimeoutKillsGroup checks that a timeout kills the command and
// what it started (a background child in its process group).
func TestExecCheckTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	start := time.Now()
	ok, detail := probeOnce(t, Check{Kind: KindExec, Timeout: 300 * time.Millisecond,
		Command: []string{"sh", "-c", `sleep 5 & echo $$ $! > "$0"; wait`, pidFile}})
	if ok || !strings.HasPrefix(detail, "timed out after 300ms") {
		t.Fatalf("got ok=%v detail=%q", ok, detail)
	}
	t.Logf("probe ended after %v", time.Since(start))
	for _, pid := range readPids(t, pidFile) {
		waitGone(t, pid)
	}
}

func readPids(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the command did not write its pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			t.Fatalf("bad pid %q in %s", f, file)
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		t.Fatalf("no pids in %s", file)
	}
	return pids
}

// waitGone waits until process pid is dead: gone, or a zombie (killed, and
// only waiting for init to reap it, which some container inits do slowly).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			return
		}
		// Field 3, after the parenthesized command name, is the state.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running 3s after the check ended: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnknownKindFailsClosed(t *testing.T) {
	ok, detail := probeOnce(t, Check{Kind: "icmp"})
	if ok || !strings.Contains(detail, `unknown check kind "icmp"`) {
		t.Fatalf("got ok=%v detail=%q", ok, detail)
	}
}

func TestProbeStopsWithContext(t *testing.T) {
	// The monitor's context ending (Close) ends a run at once, whatever the timeout.
	m := New([]Check{{Kind: KindExec, Command: []string{"sleep", "5"}, Timeout: time.Minute}}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if ok, _ := m.probes[0](ctx); ok {
		t.Fatal("a cancelled run reported healthy")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("cancelled run returned after %v", el)
	}
}

// TestExecCheckMinimalEnv: the command sees PATH and FLOATIP_CHECK only,
// nothing of the daemon's environment.
func TestExecCheckMinimalEnv(t *testing.T) {
	t.Setenv("FLOATIP_TEST_SECRET", "leaked")
	t.Setenv("LD_PRELOAD", "")
	ok, detail := probeOnce(t, Check{Name: "envcheck", Kind: KindExec, Timeout: 5 * time.Second,
		Command: []string{"sh", "-c", "env | grep -v '^PWD=' | sort | tr '\\n' ' '; exit 1"}})
	if ok {
		t.Fatal("the probe script exits 1")
	}
	want := "exit status 1: FLOATIP_CHECK=envcheck PATH=/usr/sbin:/usr/bin:/sbin:/bin"
	if detail != want {
		t.Fatalf("exec check environment:\n got %q\nwant %q", detail, want)
	}
}

// TestExecCheckWithoutNetCaps: run as root, the check's command and its
// children have neither CAP_NET_ADMIN (bit 12) nor CAP_NET_RAW (bit 13).
func TestExecCheckWithoutNetCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: run as root")
		}
		t.Skip("needs root")
	}
	// Exit 0 only when no capability line of the child or grandchild has
	// bit 12 or 13 (the hex digit 3 from the right, values 1-3 of 0x3000).
	script := `for s in $(grep ^Cap /proc/self/status | cut -f2) $(sh -c 'grep ^Cap /proc/self/status' | cut -f2); do
		d=$(printf %s "$s" | rev | cut -c4)
		case $d in 0|4|8|c) ;; *) echo "has net caps: $s"; exit 1;; esac
	done`
	ok, detail := probeOnce(t, Check{Kind: KindExec, Timeout: 5 * time.Second, Command: []string{"sh", "-c", script}})
	if !ok {
		t.Fatalf("exec check child has network capabilities: %s", detail)
	}
}
