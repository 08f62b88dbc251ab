package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PlayRoot holds one directory per lab to play in (PlayDir).
const PlayRoot = "/run/floatip-lab"

// PlayDir is the directory of the lab to play in with this prefix: its
// supervisor's API socket, pid file and log, and bin/floatip, the copy of
// the binary every process of the lab runs.
func PlayDir(prefix string) string { return filepath.Join(PlayRoot, prefix) }

func apiSocket(prefix string) string  { return filepath.Join(PlayDir(prefix), "api.sock") }
func pidFile(prefix string) string    { return filepath.Join(PlayDir(prefix), "supervisor.pid") }
func playBinary(prefix string) string { return filepath.Join(PlayDir(prefix), "bin", "floatip") }

// PlayLog is the supervisor's log file.
func PlayLog(prefix string) string { return filepath.Join(PlayDir(prefix), "supervisor.log") }

// Supervise is `floatip lab supervise`: StartPlay, then answer the API on
// PlayDir's socket until ctx ends or a client asks for down; then Close.
// It writes its pid file first and removes it and the socket last.
func Supervise(ctx context.Context, o PlayOptions) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	if err := os.MkdirAll(PlayDir(o.Prefix), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(o.Prefix), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidFile(o.Prefix))
	p, err := StartPlay(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintf(o.Progress, "%s tearing down\n", clock(time.Now()))
		if err := p.Close(); err != nil {
			fmt.Fprintf(o.Progress, "tearing down: %v\n", err)
		}
	}()
	sock := apiSocket(o.Prefix)
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	ctx, down := context.WithCancel(ctx)
	defer down()
	srv := &http.Server{Handler: playAPI(p, down), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(o.Progress, "%s ready: API on %s\n", clock(time.Now()), sock)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type apiReply struct {
	Status *PlayStatus `json:"status,omitempty"`
	Done   []string    `json:"done,omitempty"`
	Error  string      `json:"error,omitempty"`
}

func playAPI(p *Play, down context.CancelFunc) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, r apiReply) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := p.Status(r.Context())
		reply(w, apiReply{Status: &st})
	})
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		node, err := p.Fault(r.FormValue("fault"), r.FormValue("node"))
		if err != nil {
			reply(w, apiReply{Error: err.Error()})
			return
		}
		reply(w, apiReply{Done: []string{r.FormValue("fault") + " on " + node}})
	})
	mux.HandleFunc("POST /heal", func(w http.ResponseWriter, r *http.Request) {
		done, err := p.Heal(r.FormValue("kind"), r.FormValue("node"))
		rep := apiReply{Done: done}
		if err != nil {
			rep.Error = err.Error()
		}
		reply(w, rep)
	})
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) {
		reply(w, apiReply{Done: []string{"down"}})
		down()
	})
	return mux
}

// PlayClientAPI talks to the supervisor of a lab to play in.
type PlayClientAPI struct{ Prefix string }

// ErrNoPlay matches (errors.Is) the error of a PlayClientAPI call when no
// supervisor answers for the prefix.
var ErrNoPlay = errors.New("no lab is running")

func (c PlayClientAPI) call(ctx context.Context, method, path string, form url.Values) (apiReply, error) {
	sock := apiSocket(c.Prefix)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: 60 * time.Second}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://lab"+path, body)
	if err != nil {
		return apiReply{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return apiReply{}, fmt.Errorf("%w with prefix %s (no supervisor answers on %s; start one with `lab up%s`)", ErrNoPlay, c.Prefix, sock, prefixFlag(c.Prefix))
		}
		return apiReply{}, err
	}
	defer resp.Body.Close()
	var r apiReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&r); err != nil {
		return apiReply{}, fmt.Errorf("lab supervisor on %s: %w", sock, err)
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}

// Status asks for the lab's state.
func (c PlayClientAPI) Status(ctx context.Context) (PlayStatus, error) {
	r, err := c.call(ctx, http.MethodGet, "/status", nil)
	if err != nil {
		return PlayStatus{}, err
	}
	if r.Status == nil {
		return PlayStatus{}, errors.New("the lab supervisor answered without a status")
	}
	return *r.Status, nil
}

// Fault injects fault (ParseFault's syntax) on node ("" for the holder) and
// returns what it did ("crash on n1").
func (c PlayClientAPI) Fault(ctx context.Context, fault, node string) (string, error) {
	r, err := c.call(ctx, http.MethodPost, "/fault", url.Values{"fault": {fault}, "node": {node}})
	if err != nil {
		return "", err
	}
	return strings.Join(r.Done, ", "), nil
}

// Heal undoes faults (see Play.Heal) and returns what it healed.
func (c PlayClientAPI) Heal(ctx context.Context, kind, node string) ([]string, error) {
	r, err := c.call(ctx, http.MethodPost, "/heal", url.Values{"kind": {kind}, "node": {node}})
	return r.Done, err
}

// UpPlay starts a lab to play in, in the background: it copies the binary
// into PlayDir, starts `BINARY lab supervise` from there in a new session
// (output to PlayLog), and waits until the supervisor answers (the lab is
// built and one node holds the VIP) or exits (then its log is the error).
func UpPlay(ctx context.Context, o PlayOptions) (PlayStatus, error) {
	if err := o.setDefaults(); err != nil {
		return PlayStatus{}, err
	}
	if os.Geteuid() != 0 {
		return PlayStatus{}, errors.New("the lab needs root (it creates network namespaces): run it with sudo")
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return PlayStatus{}, err
		}
		o.Binary = exe
	}
	if pid := supervisorPid(o.Prefix); pid > 0 {
		return PlayStatus{}, existsError{fmt.Sprintf("a lab named %s is already running (supervisor pid %d); `lab down%s` removes it", o.Prefix, pid, prefixFlag(o.Prefix))}
	}
	if ns, err := labNamespaces(o.Prefix); err != nil {
		return PlayStatus{}, err
	} else if len(ns) > 0 {
		return PlayStatus{}, existsError{fmt.Sprintf("a lab named %s is already running (namespaces %s); `lab down%s` removes it", o.Prefix, strings.Join(ns, ", "), prefixFlag(o.Prefix))}
	}
	dir := PlayDir(o.Prefix)
	_ = os.RemoveAll(dir) // a log left by a supervisor that was killed
	if err := os.MkdirAll(filepath.Dir(playBinary(o.Prefix)), 0o755); err != nil {
		return PlayStatus{}, err
	}
	if err := copyFile(o.Binary, playBinary(o.Prefix)); err != nil {
		return PlayStatus{}, fmt.Errorf("copy the floatip binary into %s: %w", dir, err)
	}
	logf, err := os.OpenFile(PlayLog(o.Prefix), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return PlayStatus{}, err
	}
	defer logf.Close()
	cmd := exec.Command(playBinary(o.Prefix), "lab", "supervise", "--prefix", o.Prefix,
		"--nodes", strconv.Itoa(o.Nodes), "--profile", o.Profile, "--quorum", o.Quorum, "--stack", string(o.Stack))
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return PlayStatus{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := PlayClientAPI{Prefix: o.Prefix}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			return PlayStatus{}, fmt.Errorf("the lab supervisor exited (%v); its log %s ends: %s", err, PlayLog(o.Prefix), logTail(PlayLog(o.Prefix), 6))
		case <-ctx.Done():
			_, _ = Teardown(o.Prefix)
			return PlayStatus{}, ctx.Err()
		case <-deadline:
			_, _ = Teardown(o.Prefix)
			return PlayStatus{}, fmt.Errorf("the lab supervisor did not answer within 2 minutes; its log ends: %s", logTail(PlayLog(o.Prefix), 6))
		case <-tick.C:
		}
		if _, err := os.Stat(apiSocket(o.Prefix)); err != nil {
			continue
		}
		if st, err := c.Status(ctx); err == nil {
			return st, nil
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err = errors.Join(err, out.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, to)
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}

// supervisorPid is the pid of the running supervisor of the prefix's lab,
// or 0. The pid file is trusted only when that process's command line is a
// `lab supervise` with this prefix.
func supervisorPid(prefix string) int {
	b, err := os.ReadFile(pidFile(prefix))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if !bytes.Contains(cmdline, []byte("\x00lab\x00supervise\x00")) {
		return 0
	}
	for i, a := range args {
		if a == "--prefix" && i+1 < len(args) && args[i+1] == prefix {
			return pid
		}
	}
	return 0
}

// Teardown removes the lab with this prefix, whatever made it: it asks a
// `lab up` supervisor to go down (and waits for it, killing it if it does
// not go), then removes what is left (Cleanup) and PlayDir. It returns the
// namespaces it found.
func Teardown(prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	names, err := labNamespaces(prefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var errs []error
	if pid := supervisorPid(prefix); pid > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, derr := PlayClientAPI{Prefix: prefix}.call(ctx, http.MethodPost, "/down", nil)
		cancel()
		if derr != nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		if !waitGone(pid, 20*time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if !waitGone(pid, 3*time.Second) {
				errs = append(errs, fmt.Errorf("lab supervisor pid %d survives SIGKILL", pid))
			}
		}
	}
	errs = append(errs, Cleanup(prefix))
	if err := os.RemoveAll(PlayDir(prefix)); err != nil {
		errs = append(errs, err)
	}
	return names, errors.Join(errs...)
}

func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// ExecCommand is `floatip lab exec NODE -- ARGV`: argv run inside the
// node's namespace ("n1", ..., or "c" for the client) with the lab's floatip
// first on PATH and FLOATIP_SOCKET set to the node's control socket, so
// `floatip status` and friends talk to that node's daemon.
func ExecCommand(prefix, node string, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command to run (lab exec NODE -- COMMAND...)")
	}
	ns := prefix + "-" + node
	if !isLabNamespace(prefix, ns) || node == "br" {
		return nil, fmt.Errorf("node %q: want n1, n2, ... or c (the client)", node)
	}
	if _, err := os.Stat(netnsPath(ns)); err != nil {
		return nil, fmt.Errorf("node %s: no namespace %s (is the lab up? `lab up%s`)", node, ns, prefixFlag(prefix))
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	bin := filepath.Dir(playBinary(prefix))
	env := append(os.Environ(), "PATH="+bin+":"+path, "FLOATIP_SOCKET="+filepath.Join(SocketDir, ns+".sock"), "FLOATIP_LAB_NODE="+node)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = env
	return cmd, nil
}

// PlayHints prints the commands to play with a running lab; inv is how
// the user runs floatip ("floatip", "sudo go run ./cmd/floatip").
func PlayHints(w io.Writer, inv, prefix string) {
	p := prefixFlag(prefix)
	var faults []string
	for _, k := range FaultKinds {
		if k == FaultLoss {
			faults = append(faults, "loss:20")
		} else {
			faults = append(faults, string(k))
		}
	}
	fmt.Fprintf(w, "\nplay with it:\n")
	fmt.Fprintf(w, "  %s lab status%s\n", inv, p)
	fmt.Fprintf(w, "  %s lab fault crash%s      (on the holder unless you name a node; faults: %s)\n", inv, p, strings.Join(faults, ", "))
	fmt.Fprintf(w, "  %s lab heal%s\n", inv, p)
	fmt.Fprintf(w, "  %s lab exec%s n2 -- floatip status      (or handover, release, hold; any command)\n", inv, p)
	fmt.Fprintf(w, "  %s lab down%s\n", inv, p)
}
