package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

func demoPrefix(tag string) string { return fmt.Sprintf("fd%d%s", os.Getpid()%1000, tag) }

// leftovers lists the lab namespaces with the prefix that still exist.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, prefix+"-") {
			left = append(left, name)
		}
	}
	return left
}

// TestDemoRuns is the README's first command, as a smoke test: it builds the
// lab, fails the holder, prints the timeline and the summary, and removes
// everything it made.
func TestDemoRuns(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("a")
	t.Cleanup(func() { lab.Cleanup(prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "lab", "--nodes", "2", "--prefix", prefix).CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("floatip lab: %v\n%s", err, text)
	}
	for _, want := range []string{"fault: power off n1", "timeline", "first answer from n2", "summary", "outage", "answering node   n1 -> n2", "tearing down... ok"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after the demo: %v", left)
	}
}

// TestDemoInterrupted presses Ctrl-C while the demo runs: it stops, and
// nothing it made is left.
func TestDemoInterrupted(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("b")
	t.Cleanup(func() { lab.Cleanup(prefix) })
	cmd := exec.Command(binary, "lab", "--nodes", "2", "--prefix", prefix)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			// The lab is up and the daemons run: interrupt now.
			if !signalled && strings.Contains(sc.Text(), "client in") {
				cmd.Process.Signal(syscall.SIGINT)
				signalled = true
			}
		}
		io.Copy(io.Discard, stdout)
		seen <- all.String()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the demo did not stop within 60 s of starting")
	}
	text := <-seen
	if !strings.Contains(text, "client in") {
		t.Fatalf("the demo never got as far as starting the client:\n%s", text)
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() == 0 {
		t.Errorf("interrupted demo exited with %v, want a non-zero status\n%s", werr, text)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after Ctrl-C: %v\n%s", left, text)
	}
	if out, _ := exec.Command("pgrep", "-f", "--node-name n[12] --log-format json --socket /run/floatip/"+prefix).Output(); len(out) > 0 {
		t.Errorf("daemons left after Ctrl-C: %s", out)
	}
}

// TestDemoRefusesRunningLab: a second demo on the same prefix refuses with a
// clear message instead of tearing down the first.
func TestDemoRefusesRunningLab(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("c")
	l, err := lab.Up(context.Background(), lab.Options{Prefix: prefix, Nodes: 2, Binary: binary})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	out, code := runBinary(t, nil, "lab", "--nodes", "2", "--prefix", prefix)
	if code == 0 || !strings.Contains(out, "already running") {
		t.Errorf("second demo on a running lab: exit %d\n%s", code, out)
	}
	if left := leftovers(t, prefix); len(left) == 0 {
		t.Error("the refused demo tore down the running lab")
	}
}
