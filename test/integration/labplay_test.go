package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

// labStatus runs `floatip lab status --json`.
func labStatus(t *testing.T, prefix string) lab.PlayStatus {
	t.Helper()
	out, code := runBinary(t, nil, "lab", "status", "--json", "--prefix", prefix)
	if code != 0 {
		t.Fatalf("lab status: exit %d\n%s", code, out)
	}
	var st lab.PlayStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("lab status --json: %v\n%s", err, out)
	}
	return st
}

// waitStatus polls lab status until cond holds (deadline 30 s).
func waitStatus(t *testing.T, prefix, what string, cond func(lab.PlayStatus) bool) lab.PlayStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := labStatus(t, prefix)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("lab status: no %s within 30 s; last:\n%s", what, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func nodeOf(st lab.PlayStatus, name string) lab.PlayNode {
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	return lab.PlayNode{}
}

// checkGone: nothing of the lab is left: namespaces, control sockets, its
// directory, processes.
func checkGone(t *testing.T, prefix string) {
	t.Helper()
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if socks, _ := filepath.Glob("/run/floatip/" + prefix + "-n*.sock"); len(socks) > 0 {
		t.Errorf("control sockets left: %v", socks)
	}
	if _, err := os.Stat(lab.PlayDir(prefix)); err == nil {
		t.Errorf("%s left", lab.PlayDir(prefix))
	}
	if out, _ := exec.Command("pgrep", "-af", "--prefix "+prefix+"( |$)").Output(); len(out) > 0 {
		t.Errorf("processes left: %s", out)
	}
	if out, _ := exec.Command("pgrep", "-af", "/run/floatip/"+prefix+"-n").Output(); len(out) > 0 {
		t.Errorf("daemons left: %s", out)
	}
}

// TestLabPlay is the README's "Play with it": lab up leaves a cluster
// running; status shows one holder; a crash on the holder moves the VIP;
// heal restarts the daemon; exec runs floatip status and handover on a
// node; down removes everything.
func TestLabPlay(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("u")
	t.Cleanup(func() { lab.Teardown(prefix) })
	out, code := runBinary(t, nil, "lab", "up", "--nodes", "2", "--prefix", prefix)
	if code != 0 {
		t.Fatalf("lab up: exit %d\n%s", code, out)
	}
	for _, want := range []string{"play with it", "lab fault crash --prefix " + prefix, "lab down --prefix " + prefix} {
		if !strings.Contains(out, want) {
			t.Errorf("lab up output lacks %q:\n%s", want, out)
		}
	}
	st := waitStatus(t, prefix, "single holder the client reaches", func(st lab.PlayStatus) bool {
		return len(st.Holders) == 1 && st.Client.OK > 0 && st.Client.Running
	})
	old := st.Holders[0]
	other := "n1"
	if old == "n1" {
		other = "n2"
	}
	if n := nodeOf(st, old); n.State != "holder" || n.Daemon != "running" {
		t.Errorf("holder %s: daemon %q state %q", old, n.Daemon, n.State)
	}
	if n := nodeOf(st, other); n.State != "standby" {
		t.Errorf("standby %s: state %q", other, n.State)
	}
	if text, code := runBinary(t, nil, "lab", "status", "--prefix", prefix); code != 0 || !strings.Contains(text, "VIP held by: "+old) {
		t.Errorf("lab status: exit %d\n%s", code, text)
	}

	// Crash the holder (the default node).
	if text, code := runBinary(t, nil, "lab", "fault", "crash", "--prefix", prefix); code != 0 || !strings.Contains(text, "crash on "+old) {
		t.Fatalf("lab fault crash: exit %d\n%s", code, text)
	}
	st = waitStatus(t, prefix, other+" holding", func(st lab.PlayStatus) bool {
		return slices.Equal(st.Holders, []string{other}) && nodeOf(st, other).State == "holder"
	})
	if n := nodeOf(st, old); n.Daemon != "exited" || !slices.Equal(n.Faults, []string{"crash"}) {
		t.Errorf("crashed %s: daemon %q faults %q", old, n.Daemon, n.Faults)
	}
	if text, code := runBinary(t, nil, "lab", "heal", "--prefix", prefix); code != 0 || !strings.Contains(text, "healed crash on "+old) {
		t.Fatalf("lab heal: exit %d\n%s", code, text)
	}
	waitStatus(t, prefix, old+" back as a standby", func(st lab.PlayStatus) bool {
		n := nodeOf(st, old)
		return n.Daemon == "running" && n.State == "standby" && len(n.Faults) == 0
	})

	// floatip on a node talks to that node's daemon, unchanged.
	text, code := runBinary(t, nil, "lab", "exec", "--prefix", prefix, old, "--", "floatip", "status")
	if code != 0 || !strings.Contains(text, "group default") || !strings.Contains(text, "standby") || !strings.Contains(text, "on "+old) {
		t.Errorf("lab exec %s -- floatip status: exit %d\n%s", old, code, text)
	}
	// The holder hands over once it counts the restarted node as a live,
	// healthy standby (its next beacon after its health check passes).
	for deadline := time.Now().Add(30 * time.Second); ; {
		text, code := runBinary(t, nil, "lab", "exec", "--prefix", prefix, other, "--", "floatip", "handover")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(text, "no live standby") {
			t.Fatalf("lab exec %s -- floatip handover: exit %d\n%s", other, code, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitStatus(t, prefix, old+" holding after the handover", func(st lab.PlayStatus) bool {
		return slices.Equal(st.Holders, []string{old})
	})

	if text, code := runBinary(t, nil, "lab", "down", "--prefix", prefix); code != 0 || !strings.Contains(text, "removed lab "+prefix) {
		t.Errorf("lab down: exit %d\n%s", code, text)
	}
	checkGone(t, prefix)
	if text, code := runBinary(t, nil, "lab", "status", "--prefix", prefix); code == 0 || !strings.Contains(text, "no lab is running") {
		t.Errorf("lab status after down: exit %d\n%s", code, text)
	}
}

// TestDemoKeep: --keep leaves a running cluster (daemons, services, a
// client), with a tear-down hint that names this binary, and --cleanup
// removes all of it.
func TestDemoKeep(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("k")
	t.Cleanup(func() { lab.Teardown(prefix) })
	out, code := runBinary(t, nil, "lab", "--fault", "crash", "--nodes", "2", "--keep", "--prefix", prefix, "--svg", filepath.Join(t.TempDir(), "k.svg"))
	if code != 0 {
		t.Fatalf("lab --keep: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, binary+" lab down --prefix "+prefix) {
		t.Errorf("--keep output lacks the tear-down command %q:\n%s", binary+" lab down --prefix "+prefix, out)
	}
	st := waitStatus(t, prefix, "running cluster", func(st lab.PlayStatus) bool {
		return len(st.Holders) == 1 && st.Client.OK > 0 && st.Client.Running
	})
	for _, n := range st.Nodes {
		if n.Daemon != "running" || n.State == "" {
			t.Errorf("kept lab: %s daemon %q state %q", n.Name, n.Daemon, n.State)
		}
	}
	if text, code := runBinary(t, nil, "lab", "--cleanup", "--prefix", prefix); code != 0 || !strings.Contains(text, "removed") {
		t.Errorf("lab --cleanup: exit %d\n%s", code, text)
	}
	checkGone(t, prefix)
}

// TestLabUpPriorities: every node of a larger lab gets its own priority
// (with 6 nodes the old 200-50*i gave n5 and n6 both 1).
func TestLabUpPriorities(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("q")
	t.Cleanup(func() { lab.Teardown(prefix) })
	if out, code := runBinary(t, nil, "lab", "up", "--nodes", "6", "--prefix", prefix); code != 0 {
		t.Fatalf("lab up --nodes 6: exit %d\n%s", code, out)
	}
	st := labStatus(t, prefix)
	if len(st.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(st.Nodes))
	}
	seen := map[int]string{}
	for i, n := range st.Nodes {
		if n.Priority != lab.Priority(i+1, 6) {
			t.Errorf("%s: priority %d, want %d", n.Name, n.Priority, lab.Priority(i+1, 6))
		}
		if other, dup := seen[n.Priority]; dup {
			t.Errorf("%s and %s both have priority %d", other, n.Name, n.Priority)
		}
		seen[n.Priority] = n.Name
	}
	if out, code := runBinary(t, nil, "lab", "down", "--prefix", prefix); code != 0 {
		t.Errorf("lab down: exit %d\n%s", code, out)
	}
	checkGone(t, prefix)
}
