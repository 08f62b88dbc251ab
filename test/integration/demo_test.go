package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/chart"
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
	svg := filepath.Join(t.TempDir(), "demo.svg")
	out, err := exec.CommandContext(ctx, binary, "lab", "--nodes", "2", "--prefix", prefix, "--svg", svg).CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("floatip lab: %v\n%s", err, text)
	}
	for _, want := range []string{
		"n1     198.18.0.11   namespace " + prefix + "-n1", "client 198.18.0.200", "VIP    198.18.0.100", // the map
		"fault: power off n1", "timeline", "first answer from n2", "summary", "outage", "answering nodes  n1 (", "-> n2 (",
		"picture of the run: " + svg, "tearing down... ok",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	checkLinesAddUp(t, text)
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	lanes, classes := svgGroups(t, b)
	if want := []string{"n1", "n2", "client"}; !slices.Equal(lanes, want) {
		t.Errorf("picture lanes %q, want %q", lanes, want)
	}
	if !slices.Contains(classes, "fault") {
		t.Errorf("picture has no fault marker (groups %q)", classes)
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after the demo: %v", left)
	}
}

var (
	clientLineRE = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}  (?:ok|FAIL|mixed) .*  (\d+) ok(?:, (\d+) failed)?`)
	clientSumRE  = regexp.MustCompile(`client lines     (\d+) answered, (\d+) failed in all`)
)

// checkLinesAddUp: the demo's client lines add up to its summary.
func checkLinesAddUp(t *testing.T, text string) {
	t.Helper()
	okSum, failSum := 0, 0
	for _, m := range clientLineRE.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[1])
		okSum += n
		if m[2] != "" {
			n, _ = strconv.Atoi(m[2])
			failSum += n
		}
	}
	m := clientSumRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no client total in the summary:\n%s", text)
	}
	if m[1] != strconv.Itoa(okSum) || m[2] != strconv.Itoa(failSum) {
		t.Errorf("client lines add up to %d ok, %d failed; the summary says %s, %s:\n%s", okSum, failSum, m[1], m[2], text)
	}
}

// svgGroups decodes an SVG and returns the data-node of each lane and the
// class of every group.
func svgGroups(t *testing.T, data []byte) (lanes, classes []string) {
	t.Helper()
	lanes, classes, err := chart.Groups(data)
	if err != nil {
		t.Fatalf("the picture is not well-formed XML: %v", err)
	}
	return lanes, classes
}

// TestDemoPartition: the partition demo shows the heal, who answered over
// time (n1, n2 alone, n1 again) and the time two nodes held the VIP, and
// after the heal no standby calls n1's live daemon silent.
func TestDemoPartition(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("p")
	t.Cleanup(func() { lab.Cleanup(prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "lab", "--fault", "partition", "--nodes", "2", "--prefix", prefix, "--svg", filepath.Join(t.TempDir(), "p.svg")).CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("floatip lab: %v\n%s", err, text)
	}
	for _, want := range []string{"heal: partition undone", "two holders      ", "answering nodes  n1 (", "-> n2 (", "-> n1 ("} {
		if !strings.Contains(text, want) {
			t.Errorf("partition demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "silent but its VIP answers") {
		t.Errorf("after the heal a standby called the holder's live daemon silent:\n%s", text)
	}
	checkLinesAddUp(t, text)
}

// TestDemoNeedsTwoNodes: --nodes 1 says what the demo needs.
func TestDemoNeedsTwoNodes(t *testing.T) {
	out, code := runBinary(t, nil, "lab", "--nodes", "1", "--prefix", demoPrefix("o"))
	if code == 0 || !strings.Contains(out, "--nodes 1: the demo fails the holder over to another node, so it needs 2 to 80 nodes (for one node to play with: lab up --nodes 1)") {
		t.Errorf("lab --nodes 1: exit %d\n%s", code, out)
	}
}

// TestLabHelp: `floatip lab --help` lists the demo's flags.
func TestLabHelp(t *testing.T) {
	out, code := runBinary(t, nil, "lab", "--help")
	for _, want := range []string{"--fault=FAULT", "--keep", "--cleanup", "--nodes=NODES", "lab up", "lab status", "lab down"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("floatip lab --help (exit %d) lacks %q:\n%s", code, want, out)
		}
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
