// Package integration runs the real floatip binary on a lab of network
// namespaces (a bridge, nodes, a client) and checks what the nodes and the
// client see when holders fail, stop, crash, get cut off or lose their VIP.
//
// These tests need root. Under CI=true they fail instead of skipping.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	if addr := os.Getenv(scrapeEnv); addr != "" {
		if err := scrape(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(sendJunkEnv) != "" {
		if err := sendJunk(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "floatip-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // the unprivileged-run test executes it as nobody
	binary, err = lab.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building floatip:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is a lab with floatip and the HTTP service running on every node;
// n1 has priority 200, n2 150, n3 100, ...
type cluster struct {
	*lab.Lab
	t       *testing.T
	ctx     context.Context
	daemons map[string]*lab.Proc
}

func newLab(t *testing.T, nodes int) *cluster {
	t.Helper()
	testutil.RequireRoot(t)
	prefix := fmt.Sprintf("fit%d%s", os.Getpid()%1000, strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))[:3])
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.Up(ctx, lab.Options{Prefix: prefix, Nodes: nodes, Binary: binary})
	if err != nil {
		cancel()
		t.Fatalf("lab up: %v", err)
	}
	c := &cluster{Lab: l, t: t, ctx: ctx, daemons: map[string]*lab.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		cancel()
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	for _, n := range l.Nodes() {
		if _, err := n.StartService(ctx); err != nil {
			t.Fatalf("service on %s: %v", n.Name, err)
		}
	}
	return c
}

func priority(n *lab.Node) string { return fmt.Sprint(250 - 50*n.Index) }

// start runs floatip on the node with its priority and the default profile.
func (c *cluster) start(n *lab.Node, extra ...string) *lab.Proc {
	c.t.Helper()
	args := append([]string{"--priority", priority(n), "--log-level", "debug"}, extra...)
	p, err := n.StartFloatip(c.ctx, args...)
	if err != nil {
		c.t.Fatalf("floatip on %s: %v", n.Name, err)
	}
	c.daemons[n.Name] = p
	return p
}

// startAll starts every node's daemon, n1 first, and waits until n1 holds.
func (c *cluster) startAll() {
	c.t.Helper()
	for i, n := range c.Nodes() {
		c.start(n)
		if i == 0 {
			c.waitHolders(lab.HeldBy("n1"), 5*time.Second, "n1 to hold the VIP after starting first")
		}
	}
	for _, n := range c.Nodes()[1:] {
		c.waitState(n.Name, "standby", 5*time.Second)
	}
}

func (c *cluster) waitHolders(want func([]string) bool, timeout time.Duration, what string) []string {
	c.t.Helper()
	h, err := c.WaitHolders(c.ctx, want, timeout)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v (holders: %v)", what, err, h)
	}
	return h
}

// waitState waits for the node's daemon to log a transition to state.
func (c *cluster) waitState(node, state string, timeout time.Duration) lab.Line {
	c.t.Helper()
	l, err := c.daemons[node].WaitMsg(c.ctx, timeout, "state changed", func(l lab.Line) bool { return l.Str("to") == state })
	if err != nil {
		c.t.Fatalf("waiting for %s to become %s: %v", node, state, err)
	}
	return l
}

// everHeld reports whether the node's daemon ever became holder.
func (c *cluster) everHeld(node string) bool {
	for _, l := range c.daemons[node].Lines() {
		if l.Msg() == "state changed" && l.Str("to") == "holder" {
			return true
		}
	}
	return false
}

func (c *cluster) dumpLogs() {
	for name, p := range c.daemons {
		for _, l := range p.Lines() {
			if l.Msg() == "probe sent" {
				continue
			}
			c.t.Logf("%s: %s", name, l.Text)
		}
	}
}

// servedClient starts the lab client on the VIP and waits until it is
// served once.
func (c *cluster) servedClient() *lab.Client {
	c.t.Helper()
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK }); err != nil {
		c.t.Fatalf("the client was never served by the VIP: %v", err)
	}
	return client
}

// watchHolders polls the holders until stop is closed and returns the most
// nodes that held the VIP at the same moment. One poll reads the nodes one
// after the other, so a handover that happens between reading the old
// holder and reading the new one looks like two holders although there
// never were; only an overlap seen by two polls in a row counts.
func (c *cluster) watchHolders(stop <-chan struct{}) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var worst, prev []string
		for {
			h, err := c.Holders()
			if err == nil && len(h) > 1 && len(prev) > 1 && len(h) > len(worst) {
				worst = h
			}
			if err == nil {
				prev = h
			}
			select {
			case <-stop:
				out <- worst
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return out
}

func TestSimultaneousStartElectsHighestPriority(t *testing.T) {
	c := newLab(t, 3)
	// Start all three at once; each must see the others' probes and let the
	// highest priority claim.
	for _, n := range c.Nodes() {
		c.start(n)
	}
	c.waitHolders(lab.HeldBy("n1"), 5*time.Second, "n1 (priority 200) to hold the VIP")
	c.waitState("n2", "standby", 5*time.Second)
	c.waitState("n3", "standby", 5*time.Second)
	// Hold on: after a few beacon rounds it is still n1 alone, and no other
	// node ever became holder on the way.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if h, err := c.Holders(); err != nil || !slices.Equal(h, []string{"n1"}) {
			t.Fatalf("holders changed to %v (err %v), want [n1]", h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range []string{"n2", "n3"} {
		if c.everHeld(n) {
			t.Errorf("%s became holder during a simultaneous start", n)
		}
	}
}

func TestPowerOffFailsOverToNextPriority(t *testing.T) {
	c := newLab(t, 3)
	c.startAll()
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" }); err != nil {
		t.Fatalf("client never reached n1: %v", err)
	}
	fault := time.Now()
	if err := c.Node(1).PowerOff(); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to take over from the powered-off n1")
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n2" && s.At.After(fault) }); err != nil {
		t.Fatalf("client never reached n2 after the fault: %v", err)
	}
	r := lab.Measure(client.Stop(), fault)
	t.Logf("power off: outage %v, %d failed requests, %s -> %s", r.Outage, r.Failed, r.Before, r.After)
	if !r.Recovered || r.After != "n2" {
		t.Errorf("client did not recover on n2: %+v", r)
	}
	if c.everHeld("n3") {
		t.Error("n3 (priority 100) became holder although n2 (150) was alive")
	}
}

func TestGracefulStopHandsOver(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	n1 := c.daemons["n1"]
	if err := c.Node(1).Inject(lab.Fault{Kind: lab.FaultStop}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("n1 did not exit within 5s of SIGTERM")
	}
	if err := n1.Wait(); err != nil {
		t.Errorf("n1 exit after SIGTERM: %v, want status 0", err)
	}
	if _, err := n1.WaitMsg(c.ctx, time.Second, "release sent", nil); err != nil {
		t.Errorf("n1 did not announce its release: %v", err)
	}
	// The release frame goes out twice (against loss); the log says so once.
	releases := 0
	for _, l := range n1.Lines() {
		if l.Msg() == "release sent" {
			releases++
		}
	}
	if releases != 1 {
		t.Errorf("%q logged %d times for one release, want once", "release sent", releases)
	}
	if has, _ := c.Node(1).HasVIP(); has {
		t.Error("n1 still has the VIP after a graceful stop")
	}
	c.waitHolders(lab.HeldBy("n2"), 2*time.Second, "n2 to take over after n1's release")
	line := c.waitState("n2", "holder", time.Second)
	if !strings.Contains(line.Str("reason"), "released") && !strings.Contains(line.Str("reason"), "highest") {
		t.Logf("n2 took over with reason %q", line.Str("reason"))
	}
}

func TestKill9LeavesNoDuplicate(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	stop := make(chan struct{})
	worst := c.watchHolders(stop)
	if err := c.Node(1).Inject(lab.Fault{Kind: lab.FaultCrash}); err != nil {
		t.Fatal(err)
	}
	// The kernel drops n1's VIP when its lifetime (3s) runs out; only then
	// may n2 take it.
	c.waitHolders(lab.HeldBy("n2"), 8*time.Second, "n1's VIP to expire and n2 to take over")
	close(stop)
	if w := <-worst; len(w) > 1 {
		t.Errorf("two holders at once after kill -9: %v", w)
	}
}

func TestRestartKeepsVIPWithoutGap(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	client := c.servedClient()
	fault := time.Now()
	if err := c.daemons["n1"].Kill(); err != nil {
		t.Fatal(err)
	}
	c.start(c.Node(1))
	line := c.waitState("n1", "holder", 3*time.Second)
	if !strings.Contains(line.Str("reason"), "already configured") {
		t.Errorf("restarted n1 became holder with reason %q, want it to keep the configured VIP", line.Str("reason"))
	}
	if _, err := c.daemons["n1"].WaitMsg(c.ctx, 3*time.Second, "verified: no other host claims the VIP", nil); err != nil {
		t.Fatal(err)
	}
	r := lab.Measure(client.Stop(), fault)
	if r.Failed > 0 || r.After != "n1" {
		t.Errorf("restart of the holder's daemon disturbed the client: %+v", r)
	}
	if c.everHeld("n2") {
		t.Error("n2 took the VIP while n1's daemon restarted")
	}
}

// TestPartitionHeals cuts n1 off the others (its link stays up, so it keeps
// the VIP while n2 takes it too), then heals: one holder must remain, the
// higher priority, and the client must reach it.
func TestPartitionHeals(t *testing.T) {
	c := newLab(t, 3)
	c.startAll()
	if err := c.Node(1).Inject(lab.Fault{Kind: lab.FaultPartition}); err != nil {
		t.Fatal(err)
	}
	c.waitState("n2", "holder", 5*time.Second)
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if err := c.Node(1).Heal(c.ctx, lab.FaultPartition); err != nil {
		t.Fatal(err)
	}
	h := c.waitHolders(lab.ExactlyOne, 5*time.Second, "exactly one holder after the heal")
	t.Logf("one holder (%v) %v after the heal", h, time.Since(healed).Round(time.Millisecond))
	c.waitHolders(lab.HeldBy("n1"), 5*time.Second, "n1 (priority 200) to be the one holder")
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" && s.At.After(healed) }); err != nil {
		t.Fatalf("client never reached n1 after the heal: %v", err)
	}
	// No flapping: once settled, the holder stays and n2/n3 stay standby.
	settled := time.Now()
	for time.Since(settled) < time.Second {
		if h, _ := c.Holders(); !slices.Equal(h, []string{"n1"}) {
			t.Fatalf("holders flapped to %v after the heal", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLinkFlap(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	n1 := c.Node(1)
	if err := n1.Inject(lab.Fault{Kind: lab.FaultLinkDown}); err != nil {
		t.Fatal(err)
	}
	c.waitState("n1", "fault", 3*time.Second)
	c.waitHolders(lab.HeldBy("n2"), 3*time.Second, "n2 to take over while n1's link is down")
	if has, _ := n1.HasVIP(); has {
		t.Error("n1 kept the VIP on a downed interface")
	}
	if err := n1.Heal(c.ctx, lab.FaultLinkDown); err != nil {
		t.Fatal(err)
	}
	// Back up, n1 finds n2 holding and stays standby (no preemption).
	c.waitState("n1", "standby", 5*time.Second)
	c.waitHolders(lab.HeldBy("n2"), time.Second, "n2 to keep the VIP after n1's link came back")
}

func TestVIPRemovedByHand(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	if err := c.Node(1).DelVIP(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.daemons["n1"].WaitMsg(c.ctx, 3*time.Second, "state changed", func(l lab.Line) bool {
		return l.Str("from") == "holder" && strings.Contains(l.Str("reason"), "disappeared")
	}); err != nil {
		t.Fatalf("n1 did not notice its VIP was removed: %v", err)
	}
	h := c.waitHolders(lab.ExactlyOne, 5*time.Second, "one node to hold the VIP again")
	t.Logf("after removal by hand the VIP is on %v", h)
}

func TestBadInputGivesOneLineErrors(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "floatip.yaml")
	os.WriteFile(bad, []byte("interface: eth0\npriority: 300\nvips: [198.18.0.100]\ntiming:\n  lifetime: 1s\n  renew_interval: 2s\n"), 0o644)
	// A key file anyone may read: floatip check names the key_file entry.
	key := filepath.Join(dir, "key")
	if out, code := runBinary(t, nil, "keygen", "--out", key); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	os.Chmod(key, 0o644)
	loose := filepath.Join(dir, "loose.yaml")
	os.WriteFile(loose, []byte("interface: lo\nvips: [198.18.0.100]\nauth:\n  key_file: "+key+"\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad config", []string{"check", "--config", bad}, 2, bad + ":2: priority: must be 1..254, got 300"},
		{"impossible timing", []string{"check", "--config", bad}, 2, bad + ":5: timing.lifetime"},
		{"loose key file", []string{"check", "--config", loose}, 2, loose + ":4: auth.key_file: auth: key file " + key + " has mode 0644"},
		{"unknown interface", []string{"run", "--interface", "nosuch0", "--vip", "198.18.0.100"}, 1, `interface "nosuch0" not found`},
		{"link-local ipv6 vip", []string{"run", "--interface", "lo", "--vip", "fe80::1"}, 2, "--vip: fe80::1 is a link-local address (fe80::/10)"},
		{"bad vip", []string{"run", "--interface", "lo", "--vip", "198.18.0.300"}, 2, `"198.18.0.300" is not an IPv4 address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runBinary(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("floatip %v: exit %d, output:\n%s\nwant exit %d and %q", tt.args, code, out, tt.code, tt.want)
			}
		})
	}
}

func TestVIPEqualToOwnAddressIsRefused(t *testing.T) {
	c := newLab(t, 1)
	n := c.Node(1)
	p, err := n.Start(c.ctx, binary, "run", "--interface", "eth0", "--vip", n.IP.String())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	var text []string
	for _, l := range p.Lines() {
		text = append(text, l.Text)
	}
	out := strings.Join(text, "\n")
	if err == nil || !strings.Contains(out, "is this node's own address") {
		t.Errorf("want a refusal naming the own address, got err %v, output:\n%s", err, out)
	}
}

func TestMissingPrivileges(t *testing.T) {
	testutil.RequireRoot(t)
	out, code := runBinary(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}},
		"run", "--interface", "lo", "--vip", "198.18.0.100")
	if code != 1 || !strings.Contains(out, "missing privileges: needs CAP_NET_ADMIN and CAP_NET_RAW") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("unprivileged run: exit %d, output:\n%s\nwant exit 1 and one line naming the capabilities", code, out)
	}
}

func runBinary(t *testing.T, attr *syscall.SysProcAttr, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running floatip: %v", err)
	}
	return string(out), 0
}
