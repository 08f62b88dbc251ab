//go:build linux

package privdrop

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// netCaps are bits 12 (CAP_NET_ADMIN) and 13 (CAP_NET_RAW).
const netCaps = 1<<12 | 1<<13

// script prints the capability lines of the child and of a grandchild.
const script = `grep ^Cap /proc/self/status | sed 's/^/child /'; sh -c 'grep ^Cap /proc/self/status' | sed 's/^/grandchild /'`

// capLines parses "WHO CapXxx:\tHEX" lines into who -> set -> mask.
func capLines(t *testing.T, out string) map[string]map[string]uint64 {
	t.Helper()
	m := map[string]map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		who, rest, ok := strings.Cut(sc.Text(), " ")
		name, hex, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 {
			t.Fatalf("unexpected output line %q", sc.Text())
		}
		v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if m[who] == nil {
			m[who] = map[string]uint64{}
		}
		m[who][name] = v
	}
	return m
}

// ownCaps reads the capability sets of every thread of this process.
func ownCaps(t *testing.T) []map[string]uint64 {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var all []map[string]uint64
	for _, e := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // the thread ended meanwhile
		}
		var sb strings.Builder
		for l := range strings.Lines(string(b)) {
			if strings.HasPrefix(l, "Cap") {
				sb.WriteString("t " + l)
			}
		}
		all = append(all, capLines(t, sb.String())["t"])
	}
	return all
}

// checkChild runs the script through Start and checks that neither the
// child nor the grandchild has the network capabilities in any set, nor
// in the bounding set when bounded is set.
func checkChild(t *testing.T, bounded bool) {
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := Run(cmd); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	m := capLines(t, out.String())
	for _, who := range []string{"child", "grandchild"} {
		sets := m[who]
		if len(sets) < 5 {
			t.Fatalf("%s: capability sets missing in output:\n%s", who, out.String())
		}
		for _, set := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
			if sets[set]&netCaps != 0 {
				t.Errorf("%s %s = %#x has CAP_NET_ADMIN/CAP_NET_RAW", who, set, sets[set])
			}
		}
		if bounded && sets["CapBnd"]&netCaps != 0 {
			t.Errorf("%s CapBnd = %#x still has CAP_NET_ADMIN/CAP_NET_RAW", who, sets["CapBnd"])
		}
	}
	if testing.Verbose() && !t.Failed() {
		t.Logf("child and grandchild:\n%s", out.String())
	}
}

// checkParentKeeps checks that every thread of this process still has both
// capabilities in its effective set after the launches.
func checkParentKeeps(t *testing.T) {
	for i, th := range ownCaps(t) {
		if th["CapEff"]&netCaps != netCaps {
			t.Errorf("thread %d of the parent lost its capabilities: CapEff %#x", i, th["CapEff"])
		}
	}
}

func requireNetCaps(t *testing.T) {
	t.Helper()
	for _, th := range ownCaps(t)[:1] {
		if th["CapEff"]&netCaps != netCaps {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true: this test needs CAP_NET_ADMIN and CAP_NET_RAW (run as root); CapEff %#x", th["CapEff"])
			}
			t.Skipf("needs CAP_NET_ADMIN and CAP_NET_RAW; CapEff %#x", th["CapEff"])
		}
	}
}

// TestStartDropsNetCapsAsRoot: run as root, the child and its children
// lose the two capabilities from every set including the bounding set,
// and the parent keeps them, on every thread, after many launches.
func TestStartDropsNetCapsAsRoot(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("helper run")
	}
	requireNetCaps(t)
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	for range 20 {
		checkChild(t, true)
		if t.Failed() {
			break
		}
	}
	checkParentKeeps(t)
}

const helperEnv = "FLOATIP_PRIVDROP_HELPER"

// TestStartDropsAmbientCaps is the systemd unit's setting: a non-root
// user holding CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities,
// which children inherit unless dropped. The test binary re-runs itself
// under setpriv so.
func TestStartDropsAmbientCaps(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		requireNetCaps(t)
		if os.Geteuid() == 0 {
			t.Fatal("helper runs as root")
		}
		checkChild(t, false)
		checkParentKeeps(t)
		return
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: run as root")
		}
		t.Skip("needs root to start the non-root helper with ambient capabilities")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a directory only root can enter; copy it
	// where nobody can run it.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/privdrop.test"
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw",
		bin, "-test.run=^TestStartDropsAmbientCaps$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid 65534 with ambient caps: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestStartDropsAmbientCaps") {
		t.Fatalf("helper did not pass:\n%s", out)
	}
	t.Logf("helper:\n%s", out)
}

func TestStartRefusesAmbientRequest(t *testing.T) {
	cmd := exec.Command("true")
	cmd.SysProcAttr = newAmbientAttr()
	if err := Start(cmd); err == nil {
		cmd.Wait()
		t.Fatal("Start with AmbientCaps succeeded")
	} else if !strings.Contains(err.Error(), "ambient") {
		t.Fatalf("error %q does not say why", err)
	}
}

func TestStartErrorIsExecs(t *testing.T) {
	cmd := exec.Command("/nonexistent/floatip-no-such-command")
	err := Start(cmd)
	if err == nil {
		cmd.Wait()
		t.Fatal("no error")
	}
	if !os.IsNotExist(err) {
		t.Fatalf("error %v is not the exec's not-exist error (%T)", err, err)
	}
	_ = fmt.Sprint(err)
}
