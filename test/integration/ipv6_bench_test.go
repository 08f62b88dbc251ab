package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/bench"
	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

// TestIPv6Targets runs floatip through the benchmark's trials (real binary,
// real lab with IPv6 and an MLD querier, the client on a fresh TCP
// connection to [VIP]:8080 every 5 ms) and checks the behaviour issue 12
// asks of an IPv6 VIP and of a dual-stack group. It asserts what happened,
// never how fast: the figures belong to `floatip bench --ipv6`.
func TestIPv6Targets(t *testing.T) {
	testutil.RequireRoot(t)
	im, err := bench.LookupImpl("floatip")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stack lab.Stack
		fault lab.FaultKind
		check func(t *testing.T, tr bench.Trial)
	}{
		{"ipv6/stop: at most the request in the handover's gap fails", lab.StackIPv6, lab.FaultStop, func(t *testing.T, tr bench.Trial) {
			wantHandoverGap(t, tr)
			if tr.TwoHoldersMS != 0 {
				t.Errorf("two holders for %v ms during a graceful stop", tr.TwoHoldersMS)
			}
			wantOneHolder(t, tr, "n2")
		}},
		{"ipv6/crash: never two holders, the VIP leaves the killed node", lab.StackIPv6, lab.FaultCrash, func(t *testing.T, tr bench.Trial) {
			if tr.TwoHoldersMS != 0 {
				t.Errorf("two holders for %v ms after kill -9", tr.TwoHoldersMS)
			}
			if tr.GoneMS == nil {
				t.Errorf("the VIP was still on %s, whose daemon was killed, when the trial ended (%v ms after the kill)", tr.Holder, tr.EndMS)
			}
			wantOneHolder(t, tr, "n2")
		}},
		{"ipv6/partition: one holder after the heal", lab.StackIPv6, lab.FaultPartition, func(t *testing.T, tr bench.Trial) {
			if tr.HealToOneMS == nil {
				t.Errorf("no single holder after the heal; holders over time: %v", tr.HolderChanges)
			}
			if len(tr.HoldersEnd) != 1 {
				t.Errorf("holders at the end %v, want exactly one", tr.HoldersEnd)
			}
		}},
		{"dual/poweroff: v4 and v6 never apart", lab.StackDual, lab.FaultPowerOff, func(t *testing.T, tr bench.Trial) {
			wantTogether(t, tr)
			wantOneHolder(t, tr, "n2")
		}},
		{"dual/stop: v4 and v6 never apart", lab.StackDual, lab.FaultStop, func(t *testing.T, tr bench.Trial) {
			wantTogether(t, tr)
			wantHandoverGap(t, tr)
			wantOneHolder(t, tr, "n2")
		}},
		{"dual/partition: v4 and v6 never apart", lab.StackDual, lab.FaultPartition, func(t *testing.T, tr bench.Trial) {
			wantTogether(t, tr)
			if len(tr.HoldersEnd) != 1 {
				t.Errorf("holders at the end %v, want exactly one", tr.HoldersEnd)
			}
		}},
	}
	prefix := fmt.Sprintf("fi6%d", os.Getpid()%10000)
	t.Cleanup(func() { _ = lab.Cleanup(prefix) })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var progress strings.Builder
			res, err := bench.Run(ctx, bench.Config{
				Binary: binary, Impls: []bench.Impl{im}, Faults: []lab.FaultKind{c.fault},
				Stacks: []lab.Stack{c.stack}, Trials: 1, Nodes: 2, Prefix: prefix, Progress: &progress,
				// A busy machine's slow answer is not a failure here; a
				// SYN lost to the failover still is (TCP resends it
				// after 1 s).
				ClientTimeout: 500 * time.Millisecond,
			})
			t.Logf("%s", progress.String())
			if err != nil {
				t.Fatalf("bench: %v", err)
			}
			if len(res.Runs) != 1 || res.Runs[0].Err != "" {
				t.Fatalf("the trial did not run: %+v", res.Runs)
			}
			tr := res.Runs[0]
			if tr.Stack != c.stack || tr.Holder != "n1" {
				t.Fatalf("trial of stack %q broke %q, want %q and n1", tr.Stack, tr.Holder, c.stack)
			}
			c.check(t, tr)
			if t.Failed() {
				for _, p := range tr.Samples {
					if !p.OK && p.MS > -100 {
						t.Logf("failed request sent at %+.1f ms: %s", p.MS, p.Err)
					}
				}
			}
		})
	}
}

// wantHandoverGap: a graceful stop loses at most the one connection
// attempt that falls into its gap. The old holder deletes the VIP, then
// sends the release; the new holder adds the VIP and advertises it about a
// millisecond later (measured in the client's namespace: 0.7 ms). A SYN the
// client sends in between goes to the old MAC and is dropped, and TCP
// resends it only after a second, past the client's timeout. With one
// request every 5 ms at most one can fall there; the benchmark's stop trials
// show how often one does (0 in 18 at 25368f9). Closing the gap needs the
// two kernels to overlap, which is two holders: floatip does not.
func wantHandoverGap(t *testing.T, tr bench.Trial) {
	t.Helper()
	if tr.Failed > 1 {
		t.Errorf("a graceful stop failed %d requests of %d, want at most the one in the handover's gap", tr.Failed, tr.Requests)
	}
}

// wantTogether: a dual-stack group's two addresses were never on two
// different nodes after the fault.
func wantTogether(t *testing.T, tr bench.Trial) {
	t.Helper()
	if tr.SplitMS != 0 {
		t.Errorf("the group's IPv4 and IPv6 VIPs were on different nodes for %v ms", tr.SplitMS)
	}
}

// wantOneHolder: the trial ended with node alone holding the VIP.
func wantOneHolder(t *testing.T, tr bench.Trial, node string) {
	t.Helper()
	if len(tr.HoldersEnd) != 1 || tr.HoldersEnd[0] != node {
		t.Errorf("holders at the end %v, want %s alone", tr.HoldersEnd, node)
	}
}
