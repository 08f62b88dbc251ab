// Package soak runs the short chaos soak (`floatip lab soak`) as a test: its
// own package, so that its minutes do not count against the lab package's
// test timeout.
package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

// The short soak CI runs: 3 minutes of faults about every 8 s (~20 faults),
// a fixed seed, then 15 s healed.
const (
	shortDuration = 3 * time.Minute
	shortEvery    = 8 * time.Second
	shortSettle   = 15 * time.Second
	shortSeed     = 1
)

// pendingFixes are the fault kinds the short soak leaves out while the fix
// of a known bug they trigger is pending, each with the bug's issue point.
// Remove an entry when its fix lands: the soak then covers that kind again.
var pendingFixes = map[lab.FaultKind]string{
	// None: loss (issue 11 point 1), freeze (points 2 and 4) and crash (a
	// standby claiming while a killed holder's VIP still answered) were left
	// out here until the confirming detector, the thaw check before any
	// event and the late-wake fix landed; seed 1 then passed with every
	// kind.
}

// pendingFlickerGrace tolerates two-holder stretches shorter than it while
// a fix is pending (the report counts them either way). It was 2 ms while
// standbys on a loaded machine took late answers for a dead holder (issue 11
// point 1); the confirming detector ended that.
const pendingFlickerGrace = 0

// TestSoakShort runs the chaos soak for 3 minutes with seed 1 against the
// floatip of this tree and fails on any broken invariant, printing the
// report (and the seed, to replay it with `floatip lab soak --seed 1
// --duration 3m --every 8s --settle 15s`).
func TestSoakShort(t *testing.T) {
	testutil.RequireRoot(t)
	if testing.Short() && !testutil.InCI() {
		t.Skip("skipping the 3-minute soak in -short mode")
	}
	bin, err := lab.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []lab.FaultKind
	for _, k := range lab.SoakKinds {
		if why, pending := pendingFixes[k]; pending {
			t.Logf("leaving out %s until its fix lands: %s", k, why)
			continue
		}
		kinds = append(kinds, k)
	}
	out := &strings.Builder{}
	ctx, cancel := context.WithTimeout(context.Background(), shortDuration+shortSettle+3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rep, err := lab.RunSoak(ctx, lab.SoakOptions{
		Duration: shortDuration, Every: shortEvery, Settle: shortSettle, Seed: shortSeed,
		Kinds: kinds, FlickerGrace: pendingFlickerGrace, Prefix: fmt.Sprintf("sk%d", os.Getpid()%100000), Binary: bin, Out: out, OutDir: dir,
	})
	t.Log("\n" + out.String())
	switch {
	case errors.Is(err, lab.ErrSoakFailed):
		t.Errorf("the soak broke %d invariants (seed %d): %s", len(rep.Violations), shortSeed, strings.Join(rep.Violations, "; "))
		for _, node := range []string{"n1", "n2", "n3"} {
			if b, err := os.ReadFile(fmt.Sprintf("%s/soak-seed-%d-%s.log", dir, shortSeed, node)); err == nil {
				t.Logf("daemon log of %s (last lines):\n%s", node, lastLines(string(b), 40))
			}
		}
	case err != nil:
		t.Fatal(err)
	}
	if rep != nil && len(rep.Faults) < 10 {
		t.Errorf("only %d faults in %s: the soak did not exercise the daemon", len(rep.Faults), shortDuration)
	}
	if rep != nil {
		for _, k := range kinds {
			if !slices.ContainsFunc(rep.Faults, func(f lab.SoakFault) bool { return f.Kind == k }) {
				t.Logf("note: seed %d drew no %s fault", shortSeed, k)
			}
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
