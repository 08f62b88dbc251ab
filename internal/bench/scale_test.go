package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

func TestWriteScaleMarkdown(t *testing.T) {
	res := &ScaleResults{Trials: []ScaleTrial{
		{Trial: 1, IdleCPU: []float64{1.2, 1.0, 1.1}, RSSMB: []float64{20, 19, 19.5}, ReferenceMS: 200, WorstMS: 280, Ratio: 1.4, AllMovedMS: 230},
		{Trial: 2, IdleCPU: []float64{1.6, 1.3, 1.2}, RSSMB: []float64{21, 19, 19}, ReferenceMS: 190, WorstMS: 380, Ratio: 2, AllMovedMS: 250},
		{Trial: 3, Err: "lab: boom"},
	}}
	var b bytes.Buffer
	if err := WriteScaleMarkdown(&b, res); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		"3 trial(s) (1 failed, left out)",
		"| failover ratio (worst sampled VIP / single VIP) | 2 | 1.70 | 1.94 | 1.40 | 2.00 |",
		"| idle CPU, holder (n1) | 2 | 1.40 % | 1.56 % | 1.20 % | 1.60 % |",
		"| idle CPU, standby (n2, n3) | 4 | 1.15 % | 1.27 % | 1.00 % | 1.30 % |",
		"| RSS, holder (n1) | 2 | 20.5 MB |",
		"| all 1000 VIPs on n2 after | 2 | 240 ms |",
		"Trial 3 failed: lab: boom",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
}

func TestCPUTimeAndRSS(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); {
	}
	after, err := CPUTime(os.Getpid())
	if err != nil || after <= before {
		t.Errorf("CPU time %v then %v (err %v): want it to grow while the test spins", before, after, err)
	}
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("RSS %d (err %v): want at least 1 MiB", rss, err)
	}
}

// TestScaleSmoke runs one short trial of the scale benchmark on a real lab
// and checks that it measured every figure.
func TestScaleSmoke(t *testing.T) {
	testutil.RequireRoot(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	prefix := fmt.Sprintf("fbs%d", os.Getpid()%100000)
	t.Cleanup(func() { _ = lab.Cleanup(prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress, table bytes.Buffer
	res, err := RunScale(ctx, ScaleConfig{Binary: floatipBin, Trials: 1, Prefix: prefix, Idle: time.Second, OutDir: t.TempDir(), Progress: &progress, Table: &table})
	t.Logf("%s%s", progress.String(), table.String())
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Trials[0]
	if tr.Err != "" || tr.Ratio <= 0 || tr.ReferenceMS <= 0 || len(tr.IdleCPU) != 3 || len(tr.RSSMB) != 3 || tr.RSSMB[0] <= 0 {
		t.Errorf("trial %+v: want every figure measured", tr)
	}
	if !strings.Contains(table.String(), "| failover ratio (worst sampled VIP / single VIP) | 1 |") {
		t.Errorf("table lacks the ratio row:\n%s", table.String())
	}
	assertNothingLeft(t, prefix, nil)
}
