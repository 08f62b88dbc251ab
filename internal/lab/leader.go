package lab

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LeaderConfig configures RunLeader (`floatip lab leader`): the leader loop
// a node's service runs in the benchmark's vip-manager comparison, written
// the way Patroni's etcd (v2) store keeps its leader key.
type LeaderConfig struct {
	// Endpoints are etcd's client URLs (http://198.18.0.11:2379, ...); the
	// cluster must serve the v2 API (EtcdOptions.V2).
	Endpoints []string
	Key       string        // the leader key, /service/NAME/leader
	Name      string        // this node's value in it
	TTL       time.Duration // the key's TTL, whole seconds
	// Refresh is how often the leader refreshes the key; default TTL/4.
	Refresh time.Duration
	// Poll is how often a non-leader tries to take a free key; default
	// 100 ms (Patroni watches the key instead; a short poll is as fast).
	Poll time.Duration
	// Then is a command run alongside, in the same process group, and
	// stopped after the key is released (vip-manager); none when empty.
	Then []string
}

// leaderRecord is one JSON line of the leader loop's output.
type leaderRecord struct {
	Time     time.Time  `json:"time"`
	Msg      string     `json:"msg"` // "acquired", "refreshed", "lost", "released", "error"
	Deadline *time.Time `json:"deadline,omitempty"`
	Err      string     `json:"err,omitempty"`
}

// Leader loop messages, as Line.Msg reads them.
const (
	LeaderAcquired  = "acquired"  // the key was created with this node's name; deadline set
	LeaderRefreshed = "refreshed" // the key's TTL was renewed; deadline set
	LeaderLost      = "lost"      // the key is gone or someone else's, or its deadline passed unrenewed
	LeaderReleased  = "released"  // deleted on stop
)

// RunLeader runs the leader loop until ctx ends: while nobody holds Key it
// creates it (prevExist=false) with value Name and TTL; while it holds the
// key it renews it every Refresh with a compare-and-swap on its value
// (prevValue=Name), retrying every 200 ms while etcd does not answer, and
// gives it up when the TTL after the send time of the last renewal that
// succeeded has passed. Each change is a JSON line on w with the deadline
// (send time + TTL) the loop knows. When ctx ends it deletes the key if it
// holds it (prevValue=Name), then stops Then (SIGTERM, SIGKILL after 5 s).
func RunLeader(ctx context.Context, cfg LeaderConfig, w io.Writer) error {
	if len(cfg.Endpoints) == 0 || cfg.Key == "" || cfg.Name == "" {
		return errors.New("lab leader: endpoints, key and name are required")
	}
	if cfg.TTL < time.Second || cfg.TTL%time.Second != 0 {
		return fmt.Errorf("lab leader: ttl %v: want whole seconds, at least 1 s", cfg.TTL)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = cfg.TTL / 4
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	l := &leaderLoop{cfg: cfg, w: w, hc: &http.Client{Timeout: min(cfg.Refresh, time.Second)}}
	var child *exec.Cmd
	childDone := make(chan error, 1)
	if len(cfg.Then) > 0 {
		child = exec.Command(cfg.Then[0], cfg.Then[1:]...)
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			return fmt.Errorf("lab leader: start %s: %w", cfg.Then[0], err)
		}
		go func() { childDone <- child.Wait() }()
	}
	err := l.run(ctx, childDone)
	if child != nil {
		select {
		case cerr := <-childDone:
			if err == nil {
				err = fmt.Errorf("lab leader: %s exited: %v", cfg.Then[0], cerr)
			}
		default:
			_ = child.Process.Signal(syscall.SIGTERM)
			select {
			case <-childDone:
			case <-time.After(5 * time.Second):
				_ = child.Process.Kill()
				<-childDone
			}
		}
	}
	return err
}

type leaderLoop struct {
	cfg  LeaderConfig
	w    io.Writer
	hc   *http.Client
	mu   sync.Mutex
	next int // the endpoint to try first
}

func (l *leaderLoop) log(msg string, deadline time.Time, err error) {
	r := leaderRecord{Time: time.Now(), Msg: msg}
	if !deadline.IsZero() {
		r.Deadline = &deadline
	}
	if err != nil {
		r.Err = err.Error()
	}
	b, _ := json.Marshal(r)
	fmt.Fprintf(l.w, "%s\n", b)
}

func (l *leaderLoop) run(ctx context.Context, childDone <-chan error) error {
	var deadline time.Time // zero while not the leader
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			if !deadline.IsZero() && time.Now().Before(deadline) {
				dctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := l.do(dctx, http.MethodDelete, url.Values{"prevValue": {l.cfg.Name}})
				cancel()
				if err == nil {
					l.log(LeaderReleased, time.Time{}, nil)
				} else {
					l.log("error", time.Time{}, fmt.Errorf("release: %w", err))
				}
			}
			return nil
		case <-childDone:
			return fmt.Errorf("lab leader: %s exited", l.cfg.Then[0])
		case <-time.After(wait):
		}
		sent := time.Now()
		ttl := strconv.Itoa(int(l.cfg.TTL / time.Second))
		if deadline.IsZero() {
			code, err := l.do(ctx, http.MethodPut, url.Values{"value": {l.cfg.Name}, "ttl": {ttl}, "prevExist": {"false"}})
			if err == nil && code == http.StatusCreated {
				deadline = sent.Add(l.cfg.TTL)
				l.log(LeaderAcquired, deadline, nil)
				wait = l.cfg.Refresh
				continue
			}
			wait = l.cfg.Poll
			continue
		}
		code, err := l.do(ctx, http.MethodPut, url.Values{"value": {l.cfg.Name}, "ttl": {ttl}, "prevValue": {l.cfg.Name}})
		switch {
		case err == nil && code == http.StatusOK:
			deadline = sent.Add(l.cfg.TTL)
			l.log(LeaderRefreshed, deadline, nil)
			wait = l.cfg.Refresh
		case err == nil: // 404 key gone, 412 someone else's
			l.log(LeaderLost, time.Time{}, fmt.Errorf("refresh answered %d", code))
			deadline, wait = time.Time{}, l.cfg.Poll
		case !time.Now().Before(deadline):
			l.log(LeaderLost, time.Time{}, fmt.Errorf("deadline passed: %w", err))
			deadline, wait = time.Time{}, l.cfg.Poll
		default:
			wait = 200 * time.Millisecond
		}
	}
}

// do sends one v2 keys request for the key, trying each endpoint once
// (starting with the last that answered), and returns the HTTP status.
func (l *leaderLoop) do(ctx context.Context, method string, form url.Values) (int, error) {
	var errs []error
	l.mu.Lock()
	first := l.next
	l.mu.Unlock()
	n := len(l.cfg.Endpoints)
	for i := range n {
		k := (first + i) % n
		u := strings.TrimSuffix(l.cfg.Endpoints[k], "/") + "/v2/keys" + l.cfg.Key
		var body io.Reader
		if method == http.MethodDelete {
			u += "?" + form.Encode()
		} else {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return 0, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := l.hc.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode >= 500 { // no leader, no quorum: try the next
			errs = append(errs, fmt.Errorf("%s: %s", l.cfg.Endpoints[k], resp.Status))
			continue
		}
		l.mu.Lock()
		l.next = k
		l.mu.Unlock()
		return resp.StatusCode, nil
	}
	return 0, errors.Join(errs...)
}

// PowerSwitchSocket is where the lab's power switch listens
// (Lab.StartPowerSwitch).
func (l *Lab) PowerSwitchSocket() string { return filepath.Join(SocketDir, l.Prefix+"-power.sock") }

// StartPowerSwitch starts the lab's remote power switch, what a fence
// agent talks to (a PDU, a BMC): a unix socket, PowerSwitchSocket, on
// which the line "off NODE" powers that node off (Node.PowerOff; at once
// if it is off already) and is answered "ok" or "error: why". A daemon's
// fence command (`floatip lab fence --socket PATH MAC NODE`) cannot cut
// another namespace itself: the daemon's capabilities do not reach there,
// as a real node cannot power another off but through its switch. Down
// stops it.
func (l *Lab) StartPowerSwitch() (string, error) {
	path := l.PowerSwitchSocket()
	if err := os.MkdirAll(SocketDir, 0o755); err != nil {
		return "", err
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("lab: power switch: %w", err)
	}
	l.mu.Lock()
	l.closers = append(l.closers, func() { ln.Close(); os.Remove(path) })
	l.mu.Unlock()
	go servePower(ln, func(name string) error {
		n := l.NodeByName(name)
		if n == nil || n.Index == 0 {
			return fmt.Errorf("no node %q in lab %s", name, l.Prefix)
		}
		if n.PoweredOff() {
			return nil
		}
		return n.PowerOff()
	})
	return path, nil
}

// servePower answers power switch requests on ln until it is closed.
func servePower(ln net.Listener, off func(string) error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
			if err != nil {
				return
			}
			verb, node, _ := strings.Cut(strings.TrimSpace(line), " ")
			if verb != "off" {
				fmt.Fprintf(c, "error: unknown request %q (want: off NODE)\n", verb)
				return
			}
			if err := off(node); err != nil {
				fmt.Fprintf(c, "error: %v\n", err)
				return
			}
			fmt.Fprintf(c, "ok\n")
		}()
	}
}

// PowerOffVia asks the power switch at socket to power node off and waits
// for its answer: what `floatip lab fence` runs.
func PowerOffVia(ctx context.Context, socket, node string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("lab fence: power switch: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "off %s\n", node); err != nil {
		return fmt.Errorf("lab fence: power switch: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("lab fence: power switch: no answer: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("lab fence: power switch: %s", line)
	}
	return nil
}
