package integration

// Service-aware failover on the lab: health checks of each node's HTTP
// service, the unhealthy policy, notify hooks, fencing, planned handover and
// preemption, all with the real binary and config files.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
)

const testVIP = "198.18.0.100"

// settle is two beacon intervals of the default profile: after it, every
// node has heard every other's beacon. A standby started less than a beacon
// interval ago does not know the others yet and may claim a released VIP at
// the same moment as a better one (the conflict is resolved at once, but the
// tests that say "n3 never holds" mean a settled cluster).
const settle = time.Second

// liveWindow is how long a holder counts a silent standby as live (3 beacon
// intervals of the default profile), plus a margin.
const liveWindow = 2 * time.Second

// httpCheck checks the node's own service (`lab serve` on :8080 in its
// namespace): unhealthy after 2 failures 100 ms apart.
const httpCheck = `checks:
  - name: web
    http: {url: "http://127.0.0.1:8080/"}
    interval: 100ms
    timeout: 100ms
    fall: 2
    rise: 2
`

// nodeConfig is a config file for n with its usual priority (n1 200, n2 150,
// n3 100), the lab VIP and extra keys appended.
func nodeConfig(n *lab.Node, extra string) string {
	return fmt.Sprintf("interface: eth0\npriority: %s\nvips: [%s]\nlog_level: debug\n%s", priority(n), testVIP, extra)
}

// startAllWithConfig starts every node's daemon from its config file, n1
// first, and waits until n1 holds and the others are standby.
func (c *cluster) startAllWithConfig(conf func(*lab.Node) string) {
	c.t.Helper()
	for i, n := range c.Nodes() {
		c.startWithConfig(n, conf(n))
		if i == 0 {
			c.waitHolders(lab.HeldBy("n1"), 5*time.Second, "n1 to hold the VIP after starting first")
		}
	}
	for _, n := range c.Nodes()[1:] {
		c.waitState(n.Name, "standby", 5*time.Second)
	}
}

// serviceProc finds the node's running HTTP service that newLab started.
func serviceProc(t *testing.T, n *lab.Node) *lab.Proc {
	t.Helper()
	for _, p := range n.Procs() {
		if strings.HasSuffix(p.Name, "lab serve") && !p.Exited() {
			return p
		}
	}
	t.Fatalf("%s: no running service among %d processes", n.Name, len(n.Procs()))
	return nil
}

// killService kills the node's HTTP service and returns when it was killed.
func (c *cluster) killService(n *lab.Node) time.Time {
	c.t.Helper()
	p := serviceProc(c.t, n)
	at := time.Now()
	if err := p.Kill(); err != nil {
		c.t.Fatalf("killing %s: %v", p.Name, err)
	}
	return at
}

// checksAre is a waitStatus condition: the first group has checks and every
// one of them has the given debounced state.
func checksAre(healthy bool) func(control.Status) bool {
	return func(s control.Status) bool {
		if len(s.Groups) == 0 || len(s.Groups[0].Health) == 0 {
			return false
		}
		for _, h := range s.Groups[0].Health {
			if h.Healthy != healthy {
				return false
			}
		}
		return true
	}
}

// holdsFor fails the test if the holders are ever not want during d.
func (c *cluster) holdsFor(want []string, d time.Duration, what string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		h, err := c.Holders()
		if err != nil {
			c.t.Fatalf("reading holders: %v", err)
		}
		if !slices.Equal(h, want) {
			c.t.Fatalf("%s: holders became %v, want %v", what, h, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits for a JSON log line of the node's daemon with that level
// whose msg contains text.
func (c *cluster) waitLog(node, level, text string, timeout time.Duration) lab.Line {
	c.t.Helper()
	l, err := c.daemons[node].WaitLine(c.ctx, timeout, func(l lab.Line) bool {
		return l.Str("level") == level && strings.Contains(l.Msg(), text)
	})
	if err != nil {
		c.t.Fatalf("%s: waiting for a %s line containing %q: %v", node, level, text, err)
	}
	return l
}

// writeScript writes an executable shell script into dir and returns its
// absolute path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeAtomic replaces a file's contents in one step (the scripts may read
// it at any moment).
func writeAtomic(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// record is one run of a recording script: its FLOATIP_ environment, its
// arguments, and (for the fence script) when it started.
type record struct {
	env  map[string]string
	args string
	at   time.Time
}

// readRecords parses a file of records written as
//
//	BEGIN <unix seconds.nanos>
//	FLOATIP_...=...
//	ARGS <args>
//	END
//
// and ignores an unfinished last record.
func readRecords(t *testing.T, path string) []record {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	var cur *record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "BEGIN"):
			cur = &record{env: map[string]string{}}
			if secs, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "BEGIN")), 64); err == nil {
				cur.at = time.Unix(0, int64(secs*1e9))
			}
		case cur == nil:
		case line == "END":
			out = append(out, *cur)
			cur = nil
		case strings.HasPrefix(line, "ARGS "):
			cur.args = strings.TrimPrefix(line, "ARGS ")
		default:
			if k, v, ok := strings.Cut(line, "="); ok {
				cur.env[k] = v
			}
		}
	}
	return out
}

// recorder is the body of a script that appends a record (see readRecords)
// to file.
func recorder(file string) string {
	return fmt.Sprintf(`{
  echo "BEGIN $(date +%%s.%%N)"
  env | grep '^FLOATIP_' | sort
  echo "ARGS $*"
  echo "END"
} >> %q
`, file)
}

// switchGap is the time between the last successful request answered by
// from and the first answered by to after it (send times), or -1 when there
// is no such pair.
func switchGap(samples []lab.Sample, from, to string) time.Duration {
	s := slices.Clone(samples)
	slices.SortStableFunc(s, func(a, b lab.Sample) int { return a.At.Compare(b.At) })
	var last time.Time
	for _, x := range s {
		switch {
		case !x.OK:
		case x.Node == from:
			last = x.At
		case x.Node == to && !last.IsZero():
			return x.At.Sub(last)
		}
	}
	return -1
}

func TestServiceFailureMovesVIP(t *testing.T) {
	c := newLab(t, 3)
	c.startAllWithConfig(func(n *lab.Node) string { return nodeConfig(n, httpCheck) })
	for _, n := range c.Nodes() {
		c.waitStatus(n, checksAre(true), "its check to be healthy")
	}
	// Let every node hear the others' beacons (every 500 ms), so that n3
	// knows n2 outranks it, and n1 hears the standbys' probes without the
	// passive flag.
	time.Sleep(settle)
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" }); err != nil {
		t.Fatalf("client never reached n1: %v", err)
	}

	killed := c.killService(c.Node(1))
	c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to take over from n1 whose service died")
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n2" && s.At.After(killed) }); err != nil {
		t.Fatalf("client never reached n2 after n1's service died: %v", err)
	}
	r := lab.Measure(client.Stop(), killed)

	unhealthy, err := c.daemons["n1"].WaitMsg(c.ctx, time.Second, "local service unhealthy", nil)
	if err != nil {
		t.Fatalf("n1 never reported its service unhealthy: %v", err)
	}
	released := c.waitState("n1", "standby", time.Second)
	if !strings.Contains(released.Str("reason"), "unhealthy") {
		t.Errorf("n1 left holder with reason %q, want one naming the unhealthy service", released.Str("reason"))
	}
	took := c.waitState("n2", "holder", time.Second)
	t.Logf("service killed -> n1 unhealthy %v, n1 released %v, n2 holder %v",
		unhealthy.Time().Sub(killed).Round(time.Millisecond), released.Time().Sub(killed).Round(time.Millisecond),
		took.Time().Sub(killed).Round(time.Millisecond))
	t.Logf("service failure: client outage %v, %d failed requests, %s -> %s", r.Outage.Round(time.Millisecond), r.Failed, r.Before, r.After)
	if !r.Recovered || r.After != "n2" {
		t.Errorf("client did not recover on n2: %+v", r)
	}
	if c.everHeld("n3") {
		t.Error("n3 (priority 100) became holder although n2 (150) was healthy")
	}
}

func TestUnhealthyStandbyNeverClaims(t *testing.T) {
	for _, tt := range []struct {
		policy string
		claims bool
	}{{"release", false}, {"keep", true}} {
		t.Run(tt.policy, func(t *testing.T) {
			c := newLab(t, 2)
			c.startAllWithConfig(func(n *lab.Node) string {
				return nodeConfig(n, httpCheck+"unhealthy_policy: "+tt.policy+"\n")
			})
			n1, n2 := c.Node(1), c.Node(2)
			c.waitStatus(n1, checksAre(true), "n1's check healthy")
			c.waitStatus(n2, checksAre(true), "n2's check healthy")

			c.killService(n2)
			c.waitStatus(n2, checksAre(false), "n2's check unhealthy")
			// An unhealthy standby changes nothing for the holder; let n1
			// hear n2's passive probes before it goes.
			c.holdsFor([]string{"n1"}, 300*time.Millisecond, "n1 holding while n2 is unhealthy")

			off := time.Now()
			if err := n1.PowerOff(); err != nil {
				t.Fatal(err)
			}
			if !tt.claims {
				c.holdsFor(nil, 2*time.Second, "no holder: the only node left is unhealthy (policy release)")
				if _, err := c.daemons["n2"].WaitMsg(c.ctx, time.Second, "not claiming: the local service is unhealthy", nil); err != nil {
					t.Errorf("n2 did not say why it does not claim: %v", err)
				}
				if c.everHeld("n2") {
					t.Error("unhealthy n2 became holder with unhealthy_policy release")
				}
				if s, err := c.status(n2); err != nil || groupState(s, "default") == "holder" {
					t.Errorf("n2 status: %v, err %v", groupState(s, "default"), err)
				}
				return
			}
			c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "unhealthy n2 to claim the free VIP (policy keep)")
			took := c.waitState("n2", "holder", time.Second)
			cand := c.waitState("n2", "candidate", time.Second)
			loud := c.waitLog("n2", "ERROR", "keeping the VIP", 3*time.Second)
			t.Logf("keep: n2 candidate %v after power off (%q), holder %v, error line %v: %q",
				cand.Time().Sub(off).Round(time.Millisecond), cand.Str("reason"),
				took.Time().Sub(off).Round(time.Millisecond), loud.Time().Sub(off).Round(time.Millisecond), loud.Msg())
			if !strings.Contains(cand.Str("reason"), "unhealthy") {
				t.Errorf("n2's claim does not say it is unhealthy: %q", cand.Str("reason"))
			}
		})
	}
}

func TestAllUnhealthyKeepsVIP(t *testing.T) {
	c := newLab(t, 2)
	c.startAllWithConfig(func(n *lab.Node) string { return nodeConfig(n, httpCheck) })
	n1, n2 := c.Node(1), c.Node(2)
	c.waitStatus(n1, checksAre(true), "n1's check healthy")
	c.waitStatus(n2, checksAre(true), "n2's check healthy")

	// n2 first: were n1's service to fail while n2 is still healthy, n1
	// would rightly hand the VIP to n2.
	c.killService(n2)
	c.waitStatus(n2, checksAre(false), "n2's check unhealthy")
	c.holdsFor([]string{"n1"}, 300*time.Millisecond, "n1 holding while n2 is unhealthy")
	killed := c.killService(n1)
	c.waitStatus(n1, checksAre(false), "n1's check unhealthy")
	loud := c.waitLog("n1", "ERROR", "keeping the VIP", 3*time.Second)
	t.Logf("n1's service killed -> %v later: %s %q", loud.Time().Sub(killed).Round(time.Millisecond), loud.Str("level"), loud.Msg())
	c.holdsFor([]string{"n1"}, 2*time.Second, "n1 keeping the VIP with every node unhealthy")
	for _, l := range c.daemons["n1"].Lines() {
		if l.Msg() == "state changed" && l.Str("from") == "holder" {
			t.Errorf("n1 left holder: %s", l.Text)
		}
	}
	if c.everHeld("n2") {
		t.Error("n2 became holder")
	}
}

func TestNotifyHookEnvAndTimeout(t *testing.T) {
	c := newLab(t, 2)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	hook := writeScript(t, dir, "record-hook", recorder(dir+`/notify-$FLOATIP_NODE.log`))
	sleeper := writeScript(t, dir, "sleep-hook", fmt.Sprintf(`sleep 30 &
echo $! >> %q
wait
`, dir+"/sleep-$FLOATIP_NODE.pids"))
	conf := fmt.Sprintf(`notify:
  - command: [%s]
    on: [holder, standby, stopping]
  - command: [%s]
    timeout: 200ms
    on: [holder, standby, stopping]
`, hook, sleeper)
	c.startAllWithConfig(func(n *lab.Node) string { return nodeConfig(n, conf) })
	n1log, n2log := filepath.Join(dir, "notify-n1.log"), filepath.Join(dir, "notify-n2.log")

	hookDone := func(node, to string, timeout time.Duration) {
		t.Helper()
		if _, err := c.daemons[node].WaitMsg(c.ctx, timeout, "notify hook done", func(l lab.Line) bool {
			return l.Str("hook") == "record-hook" && l.Str("to") == to
		}); err != nil {
			t.Fatalf("%s: the recording hook did not run for %s: %v", node, to, err)
		}
	}
	hookDone("n1", "holder", 3*time.Second)
	hookDone("n2", "standby", 3*time.Second)

	recs := readRecords(t, n1log)
	if len(recs) != 1 {
		t.Fatalf("n1 ran the hook %d times before SIGTERM, want once (holder): %+v", len(recs), recs)
	}
	want := map[string]string{
		"FLOATIP_NEW_STATE": "holder", "FLOATIP_GROUP": "default", "FLOATIP_VIPS": testVIP,
		"FLOATIP_INTERFACE": "eth0", "FLOATIP_NODE": "n1",
	}
	for k, v := range want {
		if recs[0].env[k] != v {
			t.Errorf("n1 holder hook: %s=%q, want %q (env %v)", k, recs[0].env[k], v, recs[0].env)
		}
	}
	if !strings.HasPrefix(recs[0].args, "holder default "+testVIP+" ") {
		t.Errorf("n1 holder hook args %q, want \"holder default %s <old state>\"", recs[0].args, testVIP)
	}
	for _, k := range []string{"FLOATIP_OLD_STATE", "FLOATIP_REASON", "FLOATIP_TIME"} {
		if recs[0].env[k] == "" {
			t.Errorf("n1 holder hook: %s empty", k)
		}
	}

	n1 := c.daemons["n1"]
	term := time.Now()
	if err := n1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 3*time.Second, "n2 to take over after n1's SIGTERM")
	took := time.Since(term)
	select {
	case <-n1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("n1 did not exit within 5s of SIGTERM")
	}
	exited := time.Since(term)
	if err := n1.Wait(); err != nil {
		t.Errorf("n1 exit after SIGTERM: %v", err)
	}
	t.Logf("SIGTERM -> n2 holds %v, n1 exited %v (it waits for its stopping hooks, the sleeper killed at 200ms)",
		took.Round(time.Millisecond), exited.Round(time.Millisecond))

	recs = readRecords(t, n1log)
	if len(recs) != 2 || recs[1].env["FLOATIP_NEW_STATE"] != "stopping" || recs[1].env["FLOATIP_OLD_STATE"] != "holder" ||
		recs[1].args != "stopping default "+testVIP+" holder" {
		t.Errorf("n1 hook runs after SIGTERM: %+v, want holder then stopping (args \"stopping default %s holder\")", recs, testVIP)
	}

	hookDone("n2", "holder", 3*time.Second)
	var n2states []string
	for _, r := range readRecords(t, n2log) {
		n2states = append(n2states, r.env["FLOATIP_NEW_STATE"])
		if r.env["FLOATIP_NODE"] != "n2" {
			t.Errorf("n2 hook run with FLOATIP_NODE=%q", r.env["FLOATIP_NODE"])
		}
	}
	if !slices.Equal(n2states, []string{"standby", "holder"}) {
		t.Errorf("n2 hook runs for %v, want [standby holder]", n2states)
	}

	// The sleeper was killed at its timeout, on every run of n1 (which has
	// exited, so all its runs are over), and left no sleep behind.
	var timeouts []string
	for _, l := range n1.Lines() {
		if l.Msg() == "notify hook failed" && l.Str("hook") == "sleep-hook" {
			if !strings.Contains(l.Str("err"), "timed out after 200ms") {
				t.Errorf("sleep hook failure without the timeout: %s", l.Text)
			}
			timeouts = append(timeouts, l.Str("to"))
		}
	}
	if !slices.Equal(timeouts, []string{"holder", "stopping"}) {
		t.Errorf("n1 logged the sleep hook timing out for %v, want [holder stopping]", timeouts)
	}
	pids, err := os.ReadFile(filepath.Join(dir, "sleep-n1.pids"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(pids))
	if len(fields) != 2 {
		t.Errorf("n1 started the sleep hook %d times, want 2: %q", len(fields), pids)
	}
	for _, pid := range fields {
		if cmd, err := os.ReadFile("/proc/" + pid + "/cmdline"); err == nil && strings.Contains(string(cmd), "sleep") {
			t.Errorf("the sleep hook's `sleep 30` (pid %s) still runs after its timeout", pid)
		}
	}
	// n2's transitions were not held up by its own sleeper (which runs for
	// 200 ms per state change).
	if h, _ := c.Holders(); !slices.Equal(h, []string{"n2"}) {
		t.Errorf("holders %v, want [n2]", h)
	}
}

// macOf reads the MAC address of the node's eth0.
func macOf(t *testing.T, n *lab.Node) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", n.NS, "-j", "link", "show", "eth0").Output()
	if err != nil {
		t.Fatalf("ip link in %s: %v", n.NS, err)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Address == "" {
		t.Fatalf("ip -j link show eth0 in %s: %v: %s", n.NS, err, out)
	}
	return links[0].Address
}

func TestFencingRequired(t *testing.T) {
	setup := func(t *testing.T, policy string) (*cluster, string, string, string) {
		c := newLab(t, 2)
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		calls, ctl := filepath.Join(dir, "fence.log"), filepath.Join(dir, "fence.ctl")
		writeAtomic(t, ctl, "exit 1\n")
		fence := writeScript(t, dir, "fence", recorder(calls)+fmt.Sprintf(". %q\n", ctl))
		mac := macOf(t, c.Node(1))
		conf := fmt.Sprintf("peers:\n  n1: %q\nfencing:\n  policy: %s\n  command: [%s]\n  timeout: 5s\n", mac, policy, fence)
		c.startAllWithConfig(func(n *lab.Node) string { return nodeConfig(n, conf) })
		return c, mac, calls, ctl
	}

	t.Run("required", func(t *testing.T) {
		c, mac, calls, ctl := setup(t, "required")
		n2 := c.Node(2)
		off := time.Now()
		if err := c.Node(1).PowerOff(); err != nil {
			t.Fatal(err)
		}
		c.waitStatus(n2, func(s control.Status) bool { return groupState(s, "default") == "fencing" }, "n2 fencing")
		// The fence fails: n2 keeps fencing, retrying after 1s then 2s, and
		// never holds.
		var recs []record
		deadline := time.Now().Add(8 * time.Second)
		for len(recs) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("fence command called %d times in 8s, want 3 (first try and two retries)", len(recs))
			}
			if h, _ := c.Holders(); len(h) != 0 {
				t.Fatalf("holders %v while the required fence fails", h)
			}
			if s, err := c.status(n2); err == nil && groupState(s, "default") != "fencing" {
				t.Fatalf("n2 left fencing while the fence fails: %s (%s)", groupState(s, "default"), s.Groups[0].Reason)
			}
			time.Sleep(20 * time.Millisecond)
			recs = readRecords(t, calls)
		}
		first := recs[0]
		t.Logf("power off -> first fence call %v", first.at.Sub(off).Round(time.Millisecond))
		if first.env["FLOATIP_FENCE_MAC"] != mac || first.env["FLOATIP_FENCE_NODE"] != "n1" || first.args != mac+" n1" {
			t.Errorf("fence called with MAC %q node %q args %q, want %s n1", first.env["FLOATIP_FENCE_MAC"], first.env["FLOATIP_FENCE_NODE"], first.args, mac)
		}
		if first.env["FLOATIP_GROUP"] != "default" || first.env["FLOATIP_VIPS"] != testVIP || first.env["FLOATIP_INTERFACE"] != "eth0" {
			t.Errorf("fence env %v", first.env)
		}
		gap1, gap2 := recs[1].at.Sub(recs[0].at), recs[2].at.Sub(recs[1].at)
		t.Logf("fence retries after %v and %v (backoff 1s, 2s)", gap1.Round(time.Millisecond), gap2.Round(time.Millisecond))
		if gap1 < 900*time.Millisecond || gap2 < 1800*time.Millisecond {
			t.Errorf("fence retried after %v and %v, want the 1s and 2s backoff", gap1, gap2)
		}
		if _, err := c.daemons["n2"].WaitMsg(c.ctx, time.Second, "fencing failed; not taking over (fencing policy required), retrying", nil); err != nil {
			t.Errorf("n2 did not log the failed fence: %v", err)
		}
		if c.everHeld("n2") {
			t.Fatal("n2 became holder although the required fence failed")
		}

		fixed := time.Now()
		writeAtomic(t, ctl, "exit 0\n")
		c.waitHolders(lab.HeldBy("n2"), 8*time.Second, "n2 to hold once the fence succeeds")
		took := c.waitState("n2", "holder", time.Second)
		t.Logf("fence fixed -> n2 holder %v (next retry after 4s backoff): %q", took.Time().Sub(fixed).Round(time.Millisecond), took.Str("reason"))
		if !strings.Contains(took.Str("reason"), "fenced") {
			t.Errorf("n2 became holder with reason %q, want it after fencing", took.Str("reason"))
		}
	})

	t.Run("best-effort", func(t *testing.T) {
		c, mac, calls, _ := setup(t, "best-effort")
		off := time.Now()
		if err := c.Node(1).PowerOff(); err != nil {
			t.Fatal(err)
		}
		c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to hold although the fence fails (best-effort)")
		took := c.waitState("n2", "holder", time.Second)
		loud := c.waitLog("n2", "ERROR", "fencing failed; taking over anyway", time.Second)
		recs := readRecords(t, calls)
		t.Logf("best-effort: power off -> n2 holder %v (%q); %s", took.Time().Sub(off).Round(time.Millisecond), took.Str("reason"), loud.Str("err"))
		if len(recs) != 1 || recs[0].env["FLOATIP_FENCE_MAC"] != mac || recs[0].env["FLOATIP_FENCE_NODE"] != "n1" {
			t.Errorf("fence runs %+v, want one for %s (n1)", recs, mac)
		}
	})
}

func TestHandoverGap(t *testing.T) {
	c := newLab(t, 3)
	c.startAll()
	time.Sleep(settle)
	n1, n3 := c.Node(1), c.Node(3)
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" }); err != nil {
		t.Fatalf("client never reached n1: %v", err)
	}
	stop := make(chan struct{})
	worst := c.watchHolders(stop)
	start := time.Now()
	if out, code := runBinary(t, nil, "handover", "--to", "n3", "--socket", n1.Socket()); code != 0 {
		t.Fatalf("floatip handover --to n3: exit %d\n%s", code, out)
	}
	c.waitHolders(lab.HeldBy("n3"), 3*time.Second, "n3 to hold after the handover")
	if _, err := client.WaitSample(c.ctx, 3*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n3" && s.At.After(start) }); err != nil {
		t.Fatalf("client never reached n3 after the handover: %v", err)
	}
	close(stop)
	samples := client.Stop()
	r := lab.Measure(samples, start)
	t.Logf("handover n1 -> n3: client outage %v (%d failed requests), switch gap %v (last n1 answer to first n3 answer), first n3 answer %v after the command",
		r.Outage.Round(100*time.Microsecond), r.Failed, switchGap(samples, "n1", "n3").Round(100*time.Microsecond),
		r.FirstNew.At.Sub(start).Round(time.Millisecond))
	if r.Outage >= 500*time.Millisecond || !r.Recovered || r.After != "n3" {
		t.Errorf("handover: %+v, want the client on n3 with an outage under 500ms", r)
	}
	if w := <-worst; len(w) > 1 {
		t.Errorf("two holders at once during the handover: %v", w)
	}
	if c.everHeld("n2") {
		t.Error("n2 became holder during a handover to n3")
	}
	c.waitStatus(n1, func(s control.Status) bool { return groupState(s, "default") == "standby" }, "n1 standby after the handover")

	// Back to n1 with no --to: the best live standby is n1 (200), not n2.
	if out, code := runBinary(t, nil, "handover", "--socket", n3.Socket()); code != 0 {
		t.Fatalf("floatip handover (best standby): exit %d\n%s", code, out)
	}
	c.waitHolders(lab.HeldBy("n1"), 3*time.Second, "n1 to hold after the handover to the best standby")
	if c.everHeld("n2") {
		t.Error("n2 became holder during a handover to the best standby")
	}

	// No standby left: the handover is refused and n1 keeps the VIP. (Wait
	// until n1 no longer counts them as live; right after they stop, see
	// TestHandoverRightAfterStandbysStopped.)
	for _, n := range []string{"n2", "n3"} {
		if err := c.daemons[n].Stop(5 * time.Second); err != nil {
			t.Fatalf("stopping %s: %v", n, err)
		}
	}
	time.Sleep(liveWindow)
	out, code := runBinary(t, nil, "handover", "--socket", n1.Socket())
	t.Logf("handover with no standby: exit %d: %s", code, strings.TrimSpace(out))
	if code == 0 || !strings.Contains(out, "no live standby") {
		t.Errorf("handover with no standby alive: exit %d\n%s\nwant a failure saying there is no live standby", code, out)
	}
	c.holdsFor([]string{"n1"}, time.Second, "n1 keeping the VIP after a refused handover")
}

// TestHandoverRightAfterStandbysStopped: with the only standbys stopped
// (gracefully) a moment ago, `floatip handover` must be refused and the VIP
// stay where it is.
func TestHandoverRightAfterStandbysStopped(t *testing.T) {
	c := newLab(t, 3)
	c.startAll()
	time.Sleep(settle)
	n1 := c.Node(1)
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" }); err != nil {
		t.Fatalf("client never reached n1: %v", err)
	}
	for _, n := range []string{"n2", "n3"} {
		if err := c.daemons[n].Stop(5 * time.Second); err != nil {
			t.Fatalf("stopping %s: %v", n, err)
		}
	}
	at := time.Now()
	out, code := runBinary(t, nil, "handover", "--socket", n1.Socket())
	if code == 0 || !strings.Contains(out, "no live standby") {
		t.Errorf("handover right after every standby stopped: exit %d\n%s\nwant a failure saying there is no live standby", code, out)
	}
	c.holdsFor([]string{"n1"}, time.Second, "n1 keeping the VIP after a refused handover")
	if r := lab.Measure(client.Stop(), at); r.Failed > 0 {
		t.Errorf("the client lost %d requests (outage %v) to a handover nobody could take", r.Failed, r.Outage)
	}
}

func TestPreemptAfterDelay(t *testing.T) {
	c := newLab(t, 2)
	n1, n2 := c.Node(1), c.Node(2)
	conf := func(n *lab.Node) string { return nodeConfig(n, "preempt: true\npreempt_delay: 1s\n") }
	c.startWithConfig(n2, conf(n2))
	c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to hold after starting alone")
	client, err := c.StartClient(c.ctx, lab.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n2" }); err != nil {
		t.Fatalf("client never reached n2: %v", err)
	}
	stop := make(chan struct{})
	worst := c.watchHolders(stop)

	c.startWithConfig(n1, conf(n1))
	standby := c.waitState("n1", "standby", 5*time.Second).Time()
	time.Sleep(time.Until(standby.Add(500 * time.Millisecond)))
	if h, _ := c.Holders(); !slices.Equal(h, []string{"n2"}) {
		t.Errorf("holders %v 0.5s after n1 became standby, want [n2] (preempt_delay 1s)", h)
	}
	took := c.waitState("n1", "holder", 5*time.Second)
	c.waitHolders(lab.HeldBy("n1"), 2*time.Second, "n1 to hold after preempting")
	if _, err := client.WaitSample(c.ctx, 3*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" }); err != nil {
		t.Fatalf("client never reached n1 after the preemption: %v", err)
	}
	close(stop)
	samples := client.Stop()
	delay := took.Time().Sub(standby)
	r := lab.Measure(samples, standby)
	t.Logf("preempt: n1 holder %v after becoming standby (%q); client: %d failed requests, switch gap %v (last n2 answer to first n1 answer)",
		delay.Round(time.Millisecond), took.Str("reason"), r.Failed, switchGap(samples, "n2", "n1").Round(100*time.Microsecond))
	if r.Failed > 0 {
		t.Logf("preempt: failed requests from %v to %v", r.FirstFail.At.Sub(standby).Round(time.Millisecond), r.LastFail.At.Sub(standby).Round(time.Millisecond))
	}
	if delay < 800*time.Millisecond {
		t.Errorf("n1 preempted %v after becoming standby, want about preempt_delay 1s", delay)
	}
	if w := <-worst; len(w) > 1 {
		t.Errorf("two holders at once during the preemption: %v", w)
	}
	if _, err := c.daemons["n2"].WaitMsg(c.ctx, time.Second, "state changed", func(l lab.Line) bool {
		return l.Str("from") == "holder" && strings.Contains(l.Str("reason"), "preempted")
	}); err != nil {
		t.Errorf("n2 did not log being preempted: %v", err)
	}
	if !r.Recovered || r.After != "n1" {
		t.Errorf("client did not end on n1: %+v", r)
	}
}
