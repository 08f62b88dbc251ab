package integration

// Local privilege: what floatip's children (notify hooks, the fence command,
// exec health checks) get, run as root and run the way the systemd unit runs
// it (a non-root user with CAP_NET_ADMIN and CAP_NET_RAW as ambient
// capabilities), and the unit's sandbox score.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

// netCapBits are CAP_NET_ADMIN (12) and CAP_NET_RAW (13).
const netCapBits = 1<<12 | 1<<13

// capsScript writes its own capability sets and those of a grandchild to
// $1/$2-$FLOATIP_NODE.caps (a hook), $1/$2-$FLOATIP_CHECK.caps (a health
// check) or $1/$2-$FLOATIP_FENCE_NODE.caps (the fence command: the node
// fenced), replacing the file in one step, and exits 0.
const capsScript = `out="$1/$2-${FLOATIP_NODE:-${FLOATIP_CHECK:-$FLOATIP_FENCE_NODE}}.caps"
{
  echo "uid $(id -u)"
  grep ^Cap /proc/self/status | sed 's/^/child /'
  sh -c 'grep ^Cap /proc/self/status' | sed 's/^/grandchild /'
} > "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
exit 0
`

// readCaps parses a capsScript file: the uid and, per process (child,
// grandchild), its capability sets.
func readCaps(t *testing.T, path string) (uid int, sets map[string]map[string]uint64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sets = map[string]map[string]uint64{}
	uid = -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.ReplaceAll(sc.Text(), ":", " "))
		switch {
		case len(fields) == 2 && fields[0] == "uid":
			uid, _ = strconv.Atoi(fields[1])
		case len(fields) == 3:
			v, err := strconv.ParseUint(fields[2], 16, 64)
			if err != nil {
				t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
			}
			if sets[fields[0]] == nil {
				sets[fields[0]] = map[string]uint64{}
			}
			sets[fields[0]][fields[1]] = v
		default:
			t.Fatalf("%s: unexpected line %q", path, sc.Text())
		}
	}
	return uid, sets
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not appear within %v", what, path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestChildrenWithoutNetCaps: a notify hook, an exec health check and the
// fence command each record their capability sets and a grandchild's; none
// has CAP_NET_ADMIN or CAP_NET_RAW in any set, whether floatip runs as
// root or as nobody with the two as ambient capabilities (the systemd
// unit's setting, emulated with setpriv since systemd is not PID 1 in CI).
// In the second case floatip itself still works: it holds the VIP, fails
// over, runs its hooks and checks.
func TestChildrenWithoutNetCaps(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	for _, mode := range []string{"root", "ambient"} {
		t.Run(mode, func(t *testing.T) {
			c := newLab(t, 2)
			// Everything the daemons and their children use, reachable and
			// writable by nobody.
			dir, err := os.MkdirTemp("", "floatip-caps-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o755)
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(out, 0o777)
			script := writeScript(t, dir, "caps", capsScript)
			mac := macOf(t, c.Node(1))
			conf := fmt.Sprintf(`notify:
  - command: [%[1]s, %[2]s, hook]
    on: [holder]
checks:
  - name: capcheck
    exec: {command: [%[1]s, %[2]s, check]}
    interval: 500ms
    timeout: 500ms
peers:
  n1: %[3]q
fencing:
  policy: best-effort
  command: [%[1]s, %[2]s, fence]
  timeout: 5s
`, script, out, mac)
			sockets := map[string]string{}
			for i, n := range c.Nodes() {
				cfg := filepath.Join(dir, n.Name+".yaml")
				if err := os.WriteFile(cfg, []byte(nodeConfig(n, conf)), 0o644); err != nil {
					t.Fatal(err)
				}
				sock := filepath.Join(dir, "run-"+n.Name, "floatip.sock")
				sockets[n.Name] = sock
				args := []string{binary, "run", "--config", cfg, "--node-name", n.Name, "--log-format", "json", "--socket", sock}
				if mode == "ambient" {
					// The socket's directory, as systemd's RuntimeDirectory
					// would make it.
					os.Mkdir(filepath.Dir(sock), 0o750)
					os.Chown(filepath.Dir(sock), 65534, 65534)
					args = append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
						"--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw",
						"--bounding-set=-all,+net_admin,+net_raw"}, args...)
				}
				p, err := n.Start(c.ctx, args[0], args[1:]...)
				if err != nil {
					t.Fatal(err)
				}
				c.daemons[n.Name] = p
				if i == 0 {
					c.waitHolders(lab.HeldBy("n1"), 8*time.Second, "n1 to hold the VIP after starting first")
				}
			}
			c.waitState("n2", "standby", 8*time.Second)
			// The daemons run as intended.
			for _, n := range c.Nodes() {
				st, err := control.Client{Path: sockets[n.Name], Timeout: 2 * time.Second}.Status(c.ctx)
				if err != nil {
					t.Fatalf("%s status: %v", n.Name, err)
				}
				uid := daemonUID(t, st.PID)
				if want := map[string]int{"root": 0, "ambient": 65534}[mode]; uid != want {
					t.Fatalf("%s runs as uid %d, want %d", n.Name, uid, want)
				}
			}
			waitFile(t, filepath.Join(out, "hook-n1.caps"), 5*time.Second, "n1's holder hook")
			waitFile(t, filepath.Join(out, "check-capcheck.caps"), 5*time.Second, "the exec check")
			healthy := checksAre(true)
			for deadline := time.Now().Add(5 * time.Second); ; {
				st, err := control.Client{Path: sockets["n2"], Timeout: 2 * time.Second}.Status(c.ctx)
				if err == nil && healthy(st) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("n2's exec check not healthy within 5s: %+v, %v", st, err)
				}
				time.Sleep(20 * time.Millisecond)
			}

			if err := c.Node(1).PowerOff(); err != nil {
				t.Fatal(err)
			}
			c.waitHolders(lab.HeldBy("n2"), 8*time.Second, "n2 to take over from the powered-off n1")
			waitFile(t, filepath.Join(out, "fence-n1.caps"), 5*time.Second, "n2's fence command against n1")
			waitFile(t, filepath.Join(out, "hook-n2.caps"), 5*time.Second, "n2's holder hook")

			wantUID := map[string]int{"root": 0, "ambient": 65534}[mode]
			for _, f := range []string{"hook-n1", "check-capcheck", "fence-n1", "hook-n2"} {
				path := filepath.Join(out, f+".caps")
				uid, sets := readCaps(t, path)
				if uid != wantUID {
					t.Errorf("%s ran as uid %d, want %d", f, uid, wantUID)
				}
				for _, who := range []string{"child", "grandchild"} {
					s := sets[who]
					if len(s) < 5 {
						t.Fatalf("%s: %s capability sets missing: %v", f, who, sets)
					}
					for _, set := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
						if s[set]&netCapBits != 0 {
							t.Errorf("%s: %s %s = %#x has CAP_NET_ADMIN/CAP_NET_RAW", f, who, set, s[set])
						}
					}
					if mode == "root" && s["CapBnd"]&netCapBits != 0 {
						t.Errorf("%s: %s CapBnd = %#x still has CAP_NET_ADMIN/CAP_NET_RAW", f, who, s["CapBnd"])
					}
				}
				t.Logf("%s: uid %d, child CapEff %#x CapPrm %#x CapAmb %#x CapBnd %#x, grandchild CapEff %#x",
					f, uid, sets["child"]["CapEff"], sets["child"]["CapPrm"], sets["child"]["CapAmb"], sets["child"]["CapBnd"], sets["grandchild"]["CapEff"])
			}
		})
	}
}

// daemonUID reads the effective uid of process pid.
func daemonUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+\d+\s+(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no Uid line in /proc/%d/status", pid)
	}
	uid, _ := strconv.Atoi(string(m[1]))
	return uid
}

// TestSystemdUnitSecurityScore: `systemd-analyze security --offline` (a
// static reading of the unit file) rates the shipped unit's exposure at
// 2.0 or less, so a change that loosens the sandbox fails here.
func TestSystemdUnitSecurityScore(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: systemd-analyze (package systemd) is needed")
		}
		t.Skip("systemd-analyze not installed")
	}
	unit, err := filepath.Abs("../../packaging/floatip.service")
	if err != nil {
		t.Fatal(err)
	}
	// --threshold=20 makes it exit non-zero above an exposure of 2.0.
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for floatip\.service: (\d+\.\d)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no overall exposure (%v):\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", score)
	if err != nil || score > 2.0 {
		t.Errorf("the unit's exposure is %.1f (exit: %v), want at most 2.0:\n%s", score, err, out)
	}
}
