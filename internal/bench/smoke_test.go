package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

var (
	floatipBin string
	buildErr   error
)

// TestMain builds the floatip command for the privileged smoke test (the lab
// runs it inside the namespaces; a test binary is not floatip). It builds
// only when that test can run: as root, or under CI=true where it must.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floatip-bench-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Geteuid() == 0 || testutil.InCI() {
		floatipBin, buildErr = lab.Build(dir)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestSmoke runs one trial of floatip under poweroff and, when keepalived is
// installed, one of keepalived-0.1s under stop, each on a real lab, and checks
// that it measured something, wrote its files and left nothing behind.
func TestSmoke(t *testing.T) {
	testutil.RequireRoot(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	prefix := fmt.Sprintf("fbt%d", os.Getpid()%100000)
	before := keepalivedPids()
	t.Cleanup(func() { _ = lab.Cleanup(prefix) })

	cases := []struct {
		impl  string
		fault lab.FaultKind
	}{
		{"floatip", lab.FaultPowerOff},
		{"keepalived-0.1s", lab.FaultStop},
	}
	for _, c := range cases {
		t.Run(c.impl+"/"+string(c.fault), func(t *testing.T) {
			im, err := LookupImpl(c.impl)
			if err != nil {
				t.Fatal(err)
			}
			if im.Kind == KindKeepalived {
				if _, err := exec.LookPath("keepalived"); err != nil {
					if testutil.InCI() {
						t.Fatal("keepalived is not installed; under CI=true the CI script installs it")
					}
					t.Skip("keepalived is not installed (apt-get install keepalived)")
				}
			}
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var progress, table bytes.Buffer
			start := time.Now()
			res, err := Run(ctx, Config{
				Binary: floatipBin, Impls: []Impl{im}, Faults: []lab.FaultKind{c.fault},
				Trials: 1, Nodes: 2, Prefix: prefix, OutDir: out, Progress: &progress, Table: &table,
			})
			t.Logf("%s in %v:\n%s%s", c.impl, time.Since(start).Round(time.Millisecond), progress.String(), table.String())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res.Runs) != 1 {
				t.Fatalf("%d runs, want 1", len(res.Runs))
			}
			tr := res.Runs[0]
			if tr.Err != "" {
				t.Fatalf("the trial failed: %s", tr.Err)
			}
			if tr.OutageMS <= 0 || tr.Failed == 0 || !tr.Recovered {
				t.Errorf("outage %v ms, %d failed, recovered %v: want a measured, finite outage", tr.OutageMS, tr.Failed, tr.Recovered)
			}
			if tr.Holder != "n1" || len(tr.Samples) == 0 {
				t.Errorf("holder %q, %d samples", tr.Holder, len(tr.Samples))
			}
			if len(res.Leftovers) > 0 {
				t.Errorf("leftovers: %v", res.Leftovers)
			}
			if !strings.Contains(table.String(), "| "+string(c.fault)+" | "+c.impl+" | 1 |") {
				t.Errorf("table lacks the row:\n%s", table.String())
			}
			for _, f := range []string{FileMarkdown, FileJSON, FileSummary, FileTrials, FileSamples, FaultSVG(c.fault)} {
				fi, err := os.Stat(filepath.Join(out, f))
				if err != nil || fi.Size() == 0 {
					t.Errorf("result file %s: %v (size %d)", f, err, sizeOf(fi))
				}
			}
			var back Results
			if b, err := os.ReadFile(filepath.Join(out, FileJSON)); err != nil {
				t.Error(err)
			} else if err := json.Unmarshal(b, &back); err != nil || len(back.Runs) != 1 || back.Runs[0].OutageMS != tr.OutageMS {
				t.Errorf("%s does not read back (%v): %+v", FileJSON, err, back.Runs)
			}
			if b, err := os.ReadFile(filepath.Join(out, FaultSVG(c.fault))); err == nil {
				if rows := svgRows(t, b); len(rows) != 1 || rows[0] != c.impl {
					t.Errorf("SVG rows %q, want [%s]", rows, c.impl)
				}
			}
			assertNothingLeft(t, prefix, before)
		})
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}

// assertNothingLeft checks that no namespace with the prefix and no
// keepalived process started since before remain.
func assertNothingLeft(t *testing.T, prefix string, before map[int]bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			t.Errorf("namespace %s left behind", f[0])
		}
	}
	for pid := range keepalivedPids() {
		if !before[pid] {
			t.Errorf("keepalived pid %d left running", pid)
		}
	}
}

// TestSmokeIPv6 is TestSmoke for `floatip bench --ipv6`: floatip under
// poweroff with the IPv4 and the IPv6 VIP on the same lab, and keepalived's
// IPv6 VRRP under stop; it checks that each stack measured an outage and
// that the table puts the IPv6 row beside the IPv4 one with their ratio.
func TestSmokeIPv6(t *testing.T) {
	testutil.RequireRoot(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	prefix := fmt.Sprintf("fbs%d", os.Getpid()%100000)
	before := keepalivedPids()
	t.Cleanup(func() { _ = lab.Cleanup(prefix) })
	cases := []struct {
		impl   string
		fault  lab.FaultKind
		stacks []lab.Stack
		rows   []string
	}{
		{"floatip", lab.FaultPowerOff, []lab.Stack{lab.StackIPv4, lab.StackIPv6}, []string{"| poweroff | floatip | IPv4 | 1 |", "| poweroff | floatip | IPv6 | 1 |"}},
		{"keepalived-0.1s", lab.FaultStop, []lab.Stack{lab.StackIPv6}, []string{"| stop | keepalived-0.1s | IPv6 | 1 |"}},
	}
	for _, c := range cases {
		t.Run(c.impl+"/"+string(c.fault), func(t *testing.T) {
			im, err := LookupImpl(c.impl)
			if err != nil {
				t.Fatal(err)
			}
			if im.Kind == KindKeepalived {
				if _, err := exec.LookPath("keepalived"); err != nil {
					if testutil.InCI() {
						t.Fatal("keepalived is not installed; under CI=true the CI script installs it")
					}
					t.Skip("keepalived is not installed (apt-get install keepalived)")
				}
			}
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var progress, table bytes.Buffer
			res, err := Run(ctx, Config{
				Binary: floatipBin, Impls: []Impl{im}, Faults: []lab.FaultKind{c.fault}, Stacks: c.stacks,
				Trials: 1, Nodes: 2, Prefix: prefix, OutDir: out, Progress: &progress, Table: &table,
			})
			t.Logf("%s%s", progress.String(), table.String())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res.Runs) != len(c.stacks) {
				t.Fatalf("%d runs, want %d", len(res.Runs), len(c.stacks))
			}
			for i, tr := range res.Runs {
				if tr.Err != "" {
					t.Fatalf("the %s trial failed: %s", tr.Stack, tr.Err)
				}
				if tr.Stack != c.stacks[i] {
					t.Errorf("run %d is of stack %q, want %q", i, tr.Stack, c.stacks[i])
				}
				if tr.OutageMS <= 0 || tr.Failed == 0 || !tr.Recovered {
					t.Errorf("%s: outage %v ms, %d failed, recovered %v: want a measured, finite outage", tr.Stack, tr.OutageMS, tr.Failed, tr.Recovered)
				}
			}
			for _, row := range c.rows {
				if !strings.Contains(table.String(), row) {
					t.Errorf("table lacks the row %q:\n%s", row, table.String())
				}
			}
			if len(c.stacks) > 1 && !strings.Contains(table.String(), "×") {
				t.Errorf("table lacks the IPv6/IPv4 outage ratio:\n%s", table.String())
			}
			if b, err := os.ReadFile(filepath.Join(out, FaultSVG(c.fault))); err == nil {
				if rows := svgRows(t, b); len(rows) != len(c.stacks) {
					t.Errorf("SVG rows %q, want one per stack", rows)
				}
			} else {
				t.Error(err)
			}
			if len(res.Leftovers) > 0 {
				t.Errorf("leftovers: %v", res.Leftovers)
			}
			assertNothingLeft(t, prefix, before)
		})
	}
}
