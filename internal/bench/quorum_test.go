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

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

func TestSummarizeQuorum(t *testing.T) {
	trials := []QuorumTrial{
		{Impl: "floatip", Fault: lab.FaultPartition, DropMS: ptr(3000), MarginMS: ptr(1500), TakeoverMS: ptr(5400), HealToOneMS: ptr(0), HoldersEnd: []string{"n2"}},
		{Impl: "floatip", Fault: lab.FaultPartition, DropMS: ptr(3200), MarginMS: ptr(1200), TakeoverMS: ptr(5600), HealToOneMS: ptr(20), HoldersEnd: []string{"n2"}},
		{Impl: "floatip", Fault: lab.FaultPartition, Err: "lab up: boom"},
		{Impl: "vip-manager", Fault: lab.FaultStop, TwoHoldersMS: 2000, TakeoverMS: ptr(120), HoldersEnd: []string{"n1", "n2"}},
		{Impl: "vip-manager", Fault: lab.FaultQuorumLost, DropMS: ptr(1000), MarginMS: ptr(3000), Failed: 1900, HoldersEnd: []string{"n1"}},
	}
	s := SummarizeQuorum(trials)
	if len(s) != 3 {
		t.Fatalf("%d summaries, want 3: %+v", len(s), s)
	}
	p := s[0]
	if p.Trials != 2 || p.Errors != 1 || p.TwoHolderTrials != 0 || *p.MarginMinMS != 1200 || *p.MarginMedianMS != 1350 ||
		*p.TakeoverMedianMS != 5500 || *p.TakeoverMaxMS != 5600 || *p.HealToOneMaxMS != 20 || p.EndNotOne != 0 || p.Kept != 0 {
		t.Errorf("partition summary %+v", p)
	}
	if v := s[1]; v.Kept != 1 || v.TwoHolderTrials != 1 || v.TwoHoldersMaxMS != 2000 || v.EndNotOne != 1 || v.DropMedianMS != nil {
		t.Errorf("stop summary %+v", v)
	}
	if q := s[2]; q.NoTakeover != 1 || q.TakeoverMedianMS != nil || q.FailedMax != 1900 {
		t.Errorf("quorum-lost summary %+v", q)
	}
	var b bytes.Buffer
	res := &QuorumResults{TTL: 5, Trials: 2, Faults: []lab.FaultKind{lab.FaultPartition, lab.FaultQuorumLost, lab.FaultStop}, Summaries: s}
	if err := WriteQuorumMarkdown(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| partition | floatip | 2 (+1 errors) | 0 (0 ms) | 3100 ms | 1200 ms / 1350 ms | 5500 ms / 5600 ms | 0 / 0 | 20 ms | 0 |",
		"| quorum-lost | vip-manager | 1 | 0 (0 ms) | 1000 ms | 3000 ms / 3000 ms | none | 1900 / 1900 | – | 0 |",
		"| stop | vip-manager | 1 | 1 (2000 ms) | – (kept in 1) | – | 120 ms / 120 ms | 0 / 0 | – | 1 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks\n%s\nin\n%s", want, b.String())
		}
	}
}

func TestSettledSince(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	obs := []lab.HolderObs{{At: at(0), Holders: []string{"n1"}}, {At: at(100), Holders: nil}, {At: at(200), Holders: []string{"n2"}}}
	// Already one holder at the heal: settled at the heal.
	if s, ok := settledSince(obs, at(500)); !ok || !s.Equal(at(500)) {
		t.Errorf("settled %v %v, want at the heal", s, ok)
	}
	// One holder only after the heal.
	if s, ok := settledSince(obs, at(150)); !ok || !s.Equal(at(200)) {
		t.Errorf("settled %v %v, want at 200 ms", s, ok)
	}
	two := append(obs, lab.HolderObs{At: at(300), Holders: []string{"n1", "n2"}})
	if _, ok := settledSince(two, at(150)); ok {
		t.Error("two holders at the end counted as settled")
	}
}

func TestQuorumConfigYAML(t *testing.T) {
	y := QuorumConfigYAML([]string{"http://198.18.0.11:2379", "http://198.18.0.12:2379"}, 5*time.Second,
		map[string]string{"n2": "02:00:00:00:00:02", "n1": "02:00:00:00:00:01"}, []string{"/usr/bin/floatip", "lab", "fence", "--socket", "/run/floatip/fbq-power.sock"})
	want := "quorum:\n  etcd:\n    endpoints: [http://198.18.0.11:2379, http://198.18.0.12:2379]\n    ttl: 5s\n    prefix: /floatip/bench\n" +
		"peers:\n  n1: \"02:00:00:00:00:01\"\n  n2: \"02:00:00:00:00:02\"\n" +
		"fencing:\n  policy: required\n  command: [\"/usr/bin/floatip\", \"lab\", \"fence\", \"--socket\", \"/run/floatip/fbq-power.sock\"]\n  timeout: 5s\n"
	if y != want {
		t.Errorf("config\n%s\nwant\n%s", y, want)
	}
	if y := QuorumConfigYAML([]string{"http://a:2379"}, 3*time.Second, nil, nil); strings.Contains(y, "fencing") || strings.Contains(y, "peers") {
		t.Errorf("config without fencing has it:\n%s", y)
	}
}

func TestRunQuorumBadConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  QuorumConfig
		want string
	}{
		{QuorumConfig{TTL: 2 * time.Second}, "--ttl 2s"},
		{QuorumConfig{TTL: 3500 * time.Millisecond}, "whole seconds"},
		{QuorumConfig{Trials: -1}, "--trials -1"},
		{QuorumConfig{Faults: []lab.FaultKind{lab.FaultCrash}}, `unknown quorum fault "crash"`},
	} {
		if _, err := RunQuorum(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := LookupQuorumImpl("keepalived-1s"); err == nil || !strings.Contains(err.Error(), "floatip, floatip-fence, vip-manager") {
		t.Errorf("LookupQuorumImpl: %v", err)
	}
}

// TestQuorumSmoke runs one trial of floatip with its quorum under
// poweroff and one of vip-manager under stop, each on a real lab with a
// real three-member etcd (TTL 3 s), and checks that the benchmark measured
// them, wrote its files and left nothing behind.
func TestQuorumSmoke(t *testing.T) {
	testutil.RequireRoot(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	for _, bin := range []string{"etcd", "vip-manager"} {
		if _, err := exec.LookPath(bin); err != nil {
			if testutil.InCI() {
				t.Fatalf("%s is not installed; under CI=true the CI script installs it", bin)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	prefix := fmt.Sprintf("fbq%d", os.Getpid()%100000)
	t.Cleanup(func() { _ = lab.Cleanup(prefix) })
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fl, _ := LookupQuorumImpl("floatip")
	vm, _ := LookupQuorumImpl("vip-manager")
	var progress, table bytes.Buffer
	res, err := RunQuorum(ctx, QuorumConfig{
		Binary: floatipBin, Impls: []QuorumImpl{fl}, Faults: []lab.FaultKind{lab.FaultPowerOff},
		Trials: 1, TTL: 3 * time.Second, Prefix: prefix, OutDir: out, Progress: &progress, Table: &table,
	})
	if err == nil {
		var res2 *QuorumResults
		res2, err = RunQuorum(ctx, QuorumConfig{
			Binary: floatipBin, Impls: []QuorumImpl{vm}, Faults: []lab.FaultKind{lab.FaultStop},
			Trials: 1, TTL: 3 * time.Second, Prefix: prefix, Progress: &progress, Table: &table,
		})
		if res2 != nil {
			res.Runs = append(res.Runs, res2.Runs...)
			res.Leftovers = append(res.Leftovers, res2.Leftovers...)
		}
	}
	t.Logf("%s%s", progress.String(), table.String())
	if err != nil {
		t.Fatalf("RunQuorum: %v", err)
	}
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(res.Runs))
	}
	for _, tr := range res.Runs {
		if tr.Err != "" {
			t.Fatalf("%s %s: the trial failed: %s", tr.Impl, tr.Fault, tr.Err)
		}
		if tr.Holder != "n1" || tr.TakeoverMS == nil || len(tr.Changes) < 2 {
			t.Errorf("%s %s: holder %q, takeover %v, changes %v: want n1 broken and a takeover measured", tr.Impl, tr.Fault, tr.Holder, tr.TakeoverMS, tr.Changes)
		}
	}
	if tr := res.Runs[0]; tr.DropMS == nil {
		t.Errorf("floatip poweroff: no drop measured (%+v)", tr)
	}
	if len(res.Leftovers) > 0 {
		t.Errorf("leftovers: %v", res.Leftovers)
	}
	if !strings.Contains(table.String(), "| poweroff | floatip | 1 |") || !strings.Contains(table.String(), "| stop | vip-manager | 1 |") {
		t.Errorf("table lacks the rows:\n%s", table.String())
	}
	var back QuorumResults
	if b, err := os.ReadFile(filepath.Join(out, FileQuorumJSON)); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(b, &back); err != nil || len(back.Runs) != 1 {
		t.Errorf("%s does not read back (%v): %+v", FileQuorumJSON, err, back.Runs)
	}
	if fi, err := os.Stat(filepath.Join(out, FileQuorumMarkdown)); err != nil || fi.Size() == 0 {
		t.Errorf("%s: %v", FileQuorumMarkdown, err)
	}
	assertNothingLeft(t, prefix, keepalivedPids())
}

func TestQuorumDeadline(t *testing.T) {
	d := time.Unix(2000, 0)
	st := control.Status{Groups: []control.Group{{Name: "a"}, {Name: "b", Quorum: &control.Quorum{LeaseDeadline: d}}}}
	if got, ok := quorumDeadline(st); !ok || !got.Equal(d) {
		t.Errorf("deadline %v %v, want %v", got, ok, d)
	}
	if _, ok := quorumDeadline(control.Status{Groups: []control.Group{{Name: "a"}}}); ok {
		t.Error("a deadline without a referee")
	}
}
