package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
)

const sighup = syscall.SIGHUP

// startWithConfig runs floatip on the node from a config file (no --vip, so
// the file's groups count) and waits until its control socket answers.
func (c *cluster) startWithConfig(n *lab.Node, yaml string) (*lab.Proc, string) {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), n.Name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		c.t.Fatal(err)
	}
	p, err := n.Start(c.ctx, binary, "run", "--config", path, "--node-name", n.Name, "--log-format", "json", "--socket", n.Socket())
	if err != nil {
		c.t.Fatal(err)
	}
	c.daemons[n.Name] = p
	c.waitStatus(n, func(s control.Status) bool { return len(s.Groups) > 0 }, "control socket up")
	return p, path
}

func (c *cluster) status(n *lab.Node) (control.Status, error) {
	return control.Client{Path: n.Socket(), Timeout: 2 * time.Second}.Status(c.ctx)
}

func (c *cluster) waitStatus(n *lab.Node, ok func(control.Status) bool, what string) control.Status {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := c.status(n)
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: waiting for %s: status %+v, err %v", n.Name, what, s, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func groupState(s control.Status, name string) string {
	for _, g := range s.Groups {
		if g.Name == name {
			return g.State.String()
		}
	}
	return ""
}

func hasAddr(t *testing.T, n *lab.Node, a string) bool {
	t.Helper()
	addrs, err := n.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr().String() == a })
}

func TestStatusReleaseHold(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	n1, n2 := c.Node(1), c.Node(2)
	s := c.waitStatus(n1, func(s control.Status) bool { return groupState(s, "default") == "holder" }, "n1 holder")
	g := s.Groups[0]
	if s.Node != "n1" || s.Interface != "eth0" || g.Priority != 200 || !slices.Equal(g.VIPs, []string{"198.18.0.100"}) || g.Counters.Claims != 1 || g.Reason == "" {
		t.Errorf("n1 status: %+v", s)
	}
	s2 := c.waitStatus(n2, func(s control.Status) bool { return groupState(s, "default") == "standby" }, "n2 standby")
	if s2.Groups[0].Holder != g.Holder || g.Holder == "" {
		t.Errorf("n2 sees holder %q, n1 says it is %q", s2.Groups[0].Holder, g.Holder)
	}
	// The human table and the JSON from the CLI itself.
	out, code := runBinary(t, nil, "status", "--socket", n1.Socket())
	if code != 0 || !strings.Contains(out, "holder") || !strings.Contains(out, "198.18.0.100") {
		t.Errorf("floatip status: exit %d\n%s", code, out)
	}
	out, code = runBinary(t, nil, "status", "--json", "--socket", n1.Socket())
	if code != 0 || !strings.Contains(out, `"state": "holder"`) && !strings.Contains(out, `"state":"holder"`) {
		t.Errorf("floatip status --json: exit %d\n%s", code, out)
	}

	// release: n1 hands the VIP to n2 and stays standby.
	if out, code := runBinary(t, nil, "release", "--socket", n1.Socket()); code != 0 {
		t.Fatalf("floatip release: exit %d\n%s", code, out)
	}
	c.waitHolders(lab.HeldBy("n2"), 3*time.Second, "n2 to hold after n1's release")
	c.waitStatus(n1, func(s control.Status) bool { return groupState(s, "default") == "standby" }, "n1 standby after release")

	// hold on n2: it hands the VIP back to n1 and never claims.
	if out, code := runBinary(t, nil, "hold", "--socket", n2.Socket()); code != 0 {
		t.Fatalf("floatip hold: exit %d\n%s", code, out)
	}
	c.waitHolders(lab.HeldBy("n1"), 3*time.Second, "n1 to hold after n2's hold")
	held := c.waitStatus(n2, func(s control.Status) bool { return s.Groups[0].Held }, "n2 maintenance hold")
	if held.Groups[0].State.String() == "holder" {
		t.Errorf("n2 holds during its maintenance hold")
	}
	// With n1 gone, n2 still does not claim while held...
	if err := c.daemons["n1"].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(func(h []string) bool { return len(h) == 0 }, 3*time.Second, "no holder while the only node left is held")
	// ...and claims once the hold ends.
	if out, code := runBinary(t, nil, "hold", "--off", "--socket", n2.Socket()); code != 0 {
		t.Fatalf("floatip hold --off: exit %d\n%s", code, out)
	}
	c.waitHolders(lab.HeldBy("n2"), 3*time.Second, "n2 to claim after its hold ended")
}

func TestReloadKeepsUnchangedGroups(t *testing.T) {
	c := newLab(t, 1)
	n1 := c.Node(1)
	conf := func(prio int, groups string) string {
		return fmt.Sprintf("interface: eth0\npriority: %d\ngroups:\n%s", prio, groups)
	}
	groupA := "  - name: a\n    vips: [198.18.0.100]\n"
	groupB := "  - name: b\n    vips: [198.18.0.101]\n"
	groupC := "  - name: c\n    vips: [198.18.0.102]\n"
	_, path := c.startWithConfig(n1, conf(200, groupA+groupB))
	c.waitStatus(n1, func(s control.Status) bool {
		return groupState(s, "a") == "holder" && groupState(s, "b") == "holder"
	}, "both groups held")
	client := c.servedClient()
	before := c.waitStatus(n1, func(control.Status) bool { return true }, "status")
	reloadAt := time.Now()

	// Change a's priority, remove b, add c.
	os.WriteFile(path, []byte(conf(180, groupA+groupC)), 0o644)
	if out, code := runBinary(t, nil, "reload", "--socket", n1.Socket()); code != 0 {
		t.Fatalf("floatip reload: exit %d\n%s", code, out)
	}
	after := c.waitStatus(n1, func(s control.Status) bool {
		return groupState(s, "c") == "holder" && groupState(s, "b") == ""
	}, "c held and b gone after reload")
	if hasAddr(t, n1, "198.18.0.101") {
		t.Error("removed group b's VIP is still configured")
	}
	a0, a1 := before.Groups[0], after.Groups[0]
	if a1.Name != "a" || a1.State.String() != "holder" || !a1.Since.Equal(a0.Since) || a1.Counters.Claims != 1 || a1.Priority != 180 {
		t.Errorf("group a was disturbed by the reload or kept its old priority:\nbefore %+v\nafter  %+v", a0, a1)
	}

	// A bad configuration is rejected with the reason; everything stays.
	os.WriteFile(path, []byte(conf(300, groupA)), 0o644)
	out, code := runBinary(t, nil, "reload", "--socket", n1.Socket())
	if code == 0 || !strings.Contains(out, "priority: must be 1..254, got 300") {
		t.Errorf("bad reload: exit %d\n%s", code, out)
	}
	c.waitStatus(n1, func(s control.Status) bool {
		return groupState(s, "a") == "holder" && groupState(s, "c") == "holder"
	}, "groups unchanged after a rejected reload")

	// SIGHUP reloads too, and a new log level applies at once.
	os.WriteFile(path, []byte(conf(180, groupA)+"log_level: debug\n"), 0o644)
	if err := c.daemons["n1"].Signal(sighup); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(n1, func(s control.Status) bool { return len(s.Groups) == 1 }, "group c removed by SIGHUP")
	if _, err := c.daemons["n1"].WaitMsg(c.ctx, 3*time.Second, "probe sent", nil); err != nil {
		t.Errorf("no debug line after reloading with log_level debug: %v", err)
	}

	r := lab.Measure(client.Stop(), reloadAt)
	if r.Failed > 0 {
		t.Errorf("the client saw %d failed requests to the unchanged group's VIP during reloads: %+v", r.Failed, r)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	c := newLab(t, 1)
	n1 := c.Node(1)
	c.startWithConfig(n1, "interface: eth0\npriority: 200\nvips: [198.18.0.100]\nmetrics:\n  listen: 127.0.0.1:9110\n")
	c.waitStatus(n1, func(s control.Status) bool { return groupState(s, "default") == "holder" }, "holder")
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		body, err = scrapeIn(n1.NS, "127.0.0.1:9110")
		if err == nil && strings.Contains(body, `floatip_group_state{group="default",state="holder"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the holder state: err %v\n%s", err, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`floatip_build_info{`,
		`floatip_claims_total{group="default"} 1`,
		`floatip_vips_held{group="default"} 1`,
		`floatip_transitions_total{from="probing",group="default",to="candidate"} 1`,
		`floatip_probes_sent_total{group="default"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// scrapeEnv makes the test binary print http://ADDR/metrics and exit
// (TestMain); scrapeIn runs it inside a namespace, so no thread of this
// process ever changes namespace.
const scrapeEnv = "FLOATIP_TEST_SCRAPE"

// scrapeIn fetches /metrics from addr inside a network namespace.
func scrapeIn(ns, addr string) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), scrapeEnv+"="+addr)
	out, err := cmd.Output()
	return string(out), err
}

// scrape is the other side of scrapeIn.
func scrape(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	_, err = io.Copy(os.Stdout, bufio.NewReader(conn))
	return err
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("../../packaging/floatip.service")
	if err != nil {
		t.Fatal(err)
	}
	// Point the unit at the binary under test, since verify checks that
	// ExecStart exists.
	text := strings.ReplaceAll(string(unit), "/usr/sbin/floatip", binary)
	path := filepath.Join(t.TempDir(), "floatip.service")
	os.WriteFile(path, []byte(text), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "floatip.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW", "WatchdogSec=", "ExecReload="} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}
