package lab

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/config"
)

// soakT0 is the synthetic soak's start; at(ms) a moment after it.
var soakT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return soakT0.Add(time.Duration(ms) * time.Millisecond) }

func obs(ms int, holders ...string) HolderObs { return HolderObs{At: at(ms), Holders: holders} }

func testBounds() SoakBounds {
	tm, err := config.Preset(config.ProfileDefault)
	if err != nil {
		panic(err)
	}
	return ComputeBounds(tm, 3, 200*time.Millisecond)
}

// baseInput is a 3-node soak of 60 s with n1 holding throughout.
func baseInput() SoakInput {
	return SoakInput{
		Start: at(0), End: at(60_000), Nodes: []string{"n1", "n2", "n3"},
		Kernel: []HolderObs{obs(0, "n1")},
		Growth: []DaemonGrowth{{Node: "n1", GoroutinesStart: 20, GoroutinesEnd: 21}},
		Bounds: testBounds(),
	}
}

func TestComputeBounds(t *testing.T) {
	b := testBounds()
	// default: 3 x 50 ms + 2 x 50 ms = 250 ms to detect; lifetime 3 s.
	want := map[FaultKind]time.Duration{
		FaultPowerOff:  750 * time.Millisecond,
		FaultStop:      750 * time.Millisecond,
		FaultPartition: 750 * time.Millisecond,
		FaultCrash:     3750 * time.Millisecond,
		FaultFreeze:    3750 * time.Millisecond,
		FaultService:   950 * time.Millisecond,
		FaultLoss:      500 * time.Millisecond,
	}
	if b.Detect != 250*time.Millisecond {
		t.Errorf("detect %v, want 250ms", b.Detect)
	}
	for k, d := range want {
		if b.NoHolder[k] != d {
			t.Errorf("bound of %s %v, want %v", k, b.NoHolder[k], d)
		}
	}
	for _, k := range FaultKinds {
		if b.NoHolder[k] == 0 {
			t.Errorf("no bound for %s", k)
		}
	}
	if b.Converge != 3750*time.Millisecond || b.Quiet != BoundMargin {
		t.Errorf("converge %v quiet %v", b.Converge, b.Quiet)
	}
	fast, _ := config.Preset(config.ProfileFast)
	if bf := ComputeBounds(fast, 5, 0); bf.Detect != 3*10*time.Millisecond+4*10*time.Millisecond {
		t.Errorf("fast, 5 nodes: detect %v, want 70ms", bf.Detect)
	}
}

func TestAnalyzeClean(t *testing.T) {
	r := Analyze(baseInput())
	if !r.OK() || r.TwoHolders != 0 || r.NoHolderBeyond != 0 || !r.Converged || !slices.Equal(r.FinalHolders, []string{"n1"}) {
		t.Errorf("clean run: %+v", r)
	}
}

// TestAnalyzeTwoHolders: two holders outside a partition count and break the
// invariant; inside one and during its heal grace they are expected; past
// the grace they count again.
func TestAnalyzeTwoHolders(t *testing.T) {
	in := baseInput()
	in.Faults = []SoakFault{
		{Kind: FaultCrash, Node: "n2", At: at(5_000), HealAt: at(8_000)},
		{Kind: FaultPartition, Node: "n1", At: at(20_000), HealAt: at(23_000)},
	}
	in.Kernel = []HolderObs{
		obs(0, "n1"),
		obs(6_000, "n1", "n2"), obs(6_120, "n1"), // 120 ms outside: counts
		obs(20_200, "n1", "n2"), obs(23_900, "n1"), // inside + 900 ms of grace: expected
		obs(30_000, "n1", "n3"), obs(30_050, "n1"), // 50 ms, window of the partition but past its grace
	}
	r := Analyze(in)
	if r.TwoHolders != 170*time.Millisecond {
		t.Errorf("two holders outside partitions %v, want 170ms", r.TwoHolders)
	}
	if len(r.TwoHolderEpisodes) != 2 || r.TwoHolderEpisodes[0].Fault != "crash on n2" || !slices.Equal(r.TwoHolderEpisodes[1].Nodes, []string{"n1", "n3"}) {
		t.Errorf("episodes %+v", r.TwoHolderEpisodes)
	}
	var part KindStats
	for _, k := range r.Kinds {
		if k.Kind == "partition" {
			part = k
		}
	}
	if part.TwoHoldersExp != 3700*time.Millisecond || part.TwoHolders != 50*time.Millisecond {
		t.Errorf("partition: expected %v (want 3.7s), outside %v (want 50ms)", part.TwoHoldersExp, part.TwoHolders)
	}
	if r.OK() || !strings.Contains(strings.Join(r.Violations, "\n"), "two holders (n1,n2) for 120 ms") {
		t.Errorf("violations %q", r.Violations)
	}

	// A two-holder stretch that begins inside the grace and outlasts it
	// counts from the end of the grace.
	in.Kernel = []HolderObs{obs(0, "n1"), obs(23_500, "n1", "n2"), obs(24_300, "n1")}
	r = Analyze(in)
	if r.TwoHolders != 300*time.Millisecond {
		t.Errorf("across the grace's end: %v, want 300ms", r.TwoHolders)
	}
}

// TestAnalyzeNoHolder: gaps are held against the bound of the fault whose
// window they start in; a powered-off node's namespace holds nothing.
func TestAnalyzeNoHolder(t *testing.T) {
	in := baseInput()
	in.Faults = []SoakFault{
		{Kind: FaultPowerOff, Node: "n1", OnHolder: true, At: at(5_000), HealAt: at(8_000)},
		{Kind: FaultCrash, Node: "n2", OnHolder: true, At: at(20_000), HealAt: at(23_000)},
		{Kind: FaultLoss, LossPercent: 20, Node: "n3", OnHolder: true, At: at(40_000), HealAt: at(45_000)},
	}
	in.Kernel = []HolderObs{
		obs(0, "n1"),
		// Power off at 5 s: n1's namespace keeps the address until the
		// heal; n2 claims 900 ms later: 150 ms beyond the 750 ms bound.
		obs(5_900, "n1", "n2"),
		obs(7_900, "n2"),
		// Crash of n2: the kernel drops its VIP after the lifetime, n3
		// takes it 40 ms later (well within 3.75 s).
		obs(23_000), obs(23_040, "n3"),
		// Loss on n3: a 600 ms gap, beyond loss's 500 ms.
		obs(41_000), obs(41_600, "n3"),
	}
	r := Analyze(in)
	if r.TwoHolders != 0 {
		t.Errorf("a powered-off node counted as a holder: %v", r.TwoHolderEpisodes)
	}
	if r.NoHolderBeyond != 250*time.Millisecond || len(r.NoHolderEpisodes) != 2 {
		t.Errorf("beyond the bounds %v in %+v, want 150+100 ms in 2 episodes", r.NoHolderBeyond, r.NoHolderEpisodes)
	}
	stats := map[string]KindStats{}
	for _, k := range r.Kinds {
		stats[k.Kind] = k
	}
	if s := stats["poweroff"]; s.NoHolder != 900*time.Millisecond || s.BeyondBound != 150*time.Millisecond || s.Moves != 1 || s.OnHolder != 1 {
		t.Errorf("poweroff %+v", s)
	}
	if s := stats["crash"]; s.NoHolder != 40*time.Millisecond || s.BeyondBound != 0 || s.MaxNoHolder != 40*time.Millisecond {
		t.Errorf("crash %+v", s)
	}
	if s := stats["loss"]; s.BeyondBound != 100*time.Millisecond {
		t.Errorf("loss %+v", s)
	}
	v := strings.Join(r.Violations, "\n")
	if !strings.Contains(v, "no holder for 900 ms") || !strings.Contains(v, "beyond the 750 ms bound of poweroff on n1") {
		t.Errorf("violations %q", r.Violations)
	}
}

func TestAnalyzeConvergence(t *testing.T) {
	in := baseInput()
	in.Faults = []SoakFault{{Kind: FaultPartition, Node: "n1", At: at(10_000), HealAt: at(20_000)}}
	in.Kernel = []HolderObs{obs(0, "n1"), obs(10_200, "n1", "n2"), obs(20_150, "n1")}
	r := Analyze(in)
	if !r.Converged || r.Converge != 150*time.Millisecond || !r.OK() {
		t.Errorf("converge %v (converged %v), violations %q; want 150ms", r.Converge, r.Converged, r.Violations)
	}
	// Still two at the end: no convergence.
	in.Kernel = []HolderObs{obs(0, "n1"), obs(10_200, "n1", "n2")}
	r = Analyze(in)
	if r.Converged || !strings.Contains(strings.Join(r.Violations, "\n"), "no convergence") {
		t.Errorf("two holders at the end: converged %v, violations %q", r.Converged, r.Violations)
	}
	// One holder at last, but only after the bound.
	in.Kernel = []HolderObs{obs(0, "n1"), obs(10_200, "n1", "n2"), obs(20_000+4_000, "n2")}
	r = Analyze(in)
	if r.Converged || r.Converge != 4*time.Second {
		t.Errorf("late convergence: %v converged %v", r.Converge, r.Converged)
	}
}

// TestAnalyzeDisagreement: a daemon state against the kernel counts past
// DisagreeGrace, not while the daemon is frozen or not running.
func TestAnalyzeDisagreement(t *testing.T) {
	in := baseInput()
	in.Faults = []SoakFault{{Kind: FaultFreeze, Node: "n1", At: at(10_000), HealAt: at(15_000)}}
	in.Runs = []DaemonRun{
		{Node: "n1", Pid: 1, Start: at(0)},
		{Node: "n2", Pid: 2, Start: at(0), End: at(30_000), Expected: true},
		{Node: "n2", Pid: 3, Start: at(31_000)},
	}
	in.States = []StateObs{
		{At: at(0), Node: "n1", State: "holder"},
		{At: at(0), Node: "n2", State: "standby"},
		{At: at(31_100), Node: "n2", State: "probing"},
		{At: at(31_250), Node: "n2", State: "holder"},
	}
	in.Kernel = []HolderObs{
		obs(0, "n1"),
		obs(13_000), obs(13_100, "n2"), // n1 frozen: its "holder" is stale, not a disagreement
		obs(15_300, "n1", "n2"), // thawed n1 still holder, n2 standby? n2 has it and says nothing: its last word was standby
		obs(15_400, "n1"),
		obs(25_000), // n1 holder without the VIP from 25 s on
		obs(30_500, "n2"),
	}
	r := Analyze(in)
	var got []string
	for _, e := range r.Disagreements {
		got = append(got, e.Nodes[0]+" "+e.Problem+" "+e.Dur.String())
	}
	want := []string{
		"n2 daemon standby, kernel has the VIP 2.3s", // 13.1 .. 15.4 s
		"n1 daemon holder, kernel has no VIP 35s",    // 25 s .. the end
	}
	if !slices.Equal(got, want) {
		t.Errorf("disagreements\n got %q\nwant %q", got, want)
	}
	// n2's new daemon: unknown 30.5..31.1 s (no state yet), probing with the
	// VIP for 150 ms (within the grace), then holder: no disagreement.
	for _, e := range r.Disagreements {
		if e.From.After(at(30_000)) {
			t.Errorf("restarted daemon: %+v", e)
		}
	}
}

func TestAnalyzeExitsPanicsGrowth(t *testing.T) {
	in := baseInput()
	in.Runs = []DaemonRun{
		{Node: "n1", Pid: 1, Start: at(0), End: at(5_000), Expected: true},
		{Node: "n2", Pid: 2, Start: at(0), End: at(9_000), ExitErr: "exit status 2"},
	}
	in.Panics = []string{"n3: panic: runtime error: index out of range"}
	in.Growth = []DaemonGrowth{{Node: "n1", GoroutinesStart: 20, GoroutinesEnd: 60}, {Node: "n2", GoroutinesStart: 20, GoroutinesEnd: 61}, {Node: "n3", GoroutinesStart: -1, GoroutinesEnd: 500}}
	r := Analyze(in)
	v := strings.Join(r.Violations, "\n")
	for _, want := range []string{"n2: daemon pid 2 exited", "exit status 2", "panic: n3: panic: runtime error", "n2: goroutines grew from 20 to 61"} {
		if !strings.Contains(v, want) {
			t.Errorf("violations lack %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "pid 1") || strings.Contains(v, "n1: goroutines") || strings.Contains(v, "n3: goroutines") {
		t.Errorf("expected exit, growth within the bound or an unread start counted:\n%s", v)
	}
}

// TestAnalyzeClientPerKind: requests count against the fault whose window
// they were sent in.
func TestAnalyzeClientPerKind(t *testing.T) {
	in := baseInput()
	in.Faults = []SoakFault{
		{Kind: FaultPowerOff, Node: "n1", At: at(10_000), HealAt: at(12_000)},
		{Kind: FaultService, Node: "n2", At: at(20_000), HealAt: at(22_000)},
	}
	in.Samples = []Sample{
		{At: at(5_000), OK: true},
		{At: at(10_010), OK: false}, {At: at(10_100), OK: false}, {At: at(15_000), OK: true},
		{At: at(20_050), OK: false}, {At: at(59_000), OK: true},
		{At: at(61_000), OK: false}, // after the end
	}
	r := Analyze(in)
	got := map[string][2]int{}
	for _, k := range r.Kinds {
		got[k.Kind] = [2]int{k.Requests, k.Failed}
	}
	want := map[string][2]int{"none": {1, 0}, "poweroff": {3, 2}, "service": {2, 1}}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: requests/failed %v, want %v", k, got[k], w)
		}
	}
	if r.Requests != 6 || r.Failed != 3 {
		t.Errorf("total %d/%d, want 6/3", r.Requests, r.Failed)
	}
}

// TestAnalyzeHandoverJitter: a handover (one node gains the VIP, another
// loses it) overlapping by less than WatchJitter is the watch's clock, not
// two holders; a node that gains and loses the VIP while another holds it
// counts however short, as does a handover overlap past the jitter.
func TestAnalyzeHandoverJitter(t *testing.T) {
	us := func(u int) time.Time { return soakT0.Add(time.Duration(u) * time.Microsecond) }
	in := baseInput()
	in.Faults = []SoakFault{{Kind: FaultStop, Node: "n1", At: at(5_000), HealAt: at(8_000)}}
	in.Kernel = []HolderObs{
		obs(0, "n1"),
		{At: us(5_000_000), Holders: []string{"n1", "n2"}}, {At: us(5_000_060), Holders: []string{"n2"}}, // n2 claims, n1's removal stamped 60 µs late
		{At: us(9_000_000), Holders: []string{"n2", "n3"}}, {At: us(9_000_300), Holders: []string{"n2"}}, // n3 flickers: real
		{At: us(12_000_000), Holders: []string{"n2", "n3"}}, {At: us(12_008_000), Holders: []string{"n3"}}, // a handover overlapping 8 ms: real
	}
	r := Analyze(in)
	if r.HandoverOverlaps != 1 || len(r.TwoHolderEpisodes) != 2 || r.TwoHolders != 8300*time.Microsecond {
		t.Errorf("handover overlaps %d, episodes %+v, two holders %v; want 1, 2 episodes, 8.3ms", r.HandoverOverlaps, r.TwoHolderEpisodes, r.TwoHolders)
	}
}

// TestAnalyzeFlickerGrace: with a flicker grace, shorter two-holder
// stretches are counted apart; longer ones still break the invariant.
func TestAnalyzeFlickerGrace(t *testing.T) {
	us := func(u int) time.Time { return soakT0.Add(time.Duration(u) * time.Microsecond) }
	in := baseInput()
	in.Kernel = []HolderObs{
		obs(0, "n1"),
		{At: us(5_000_000), Holders: []string{"n1", "n2"}}, {At: us(5_000_900), Holders: []string{"n1"}}, // n2 claims and yields
		{At: us(9_000_000), Holders: []string{"n1", "n3"}}, {At: us(9_003_000), Holders: []string{"n1"}},
	}
	if r := Analyze(in); len(r.TwoHolderEpisodes) != 2 || r.Flickers != 0 {
		t.Errorf("no grace: %d episodes, %d flickers; want 2, 0", len(r.TwoHolderEpisodes), r.Flickers)
	}
	in.FlickerGrace = 2 * time.Millisecond
	r := Analyze(in)
	if len(r.TwoHolderEpisodes) != 1 || r.Flickers != 1 || r.FlickerTime != 900*time.Microsecond || r.TwoHolders != 3*time.Millisecond || r.OK() {
		t.Errorf("2 ms grace: episodes %+v, flickers %d (%v), two holders %v", r.TwoHolderEpisodes, r.Flickers, r.FlickerTime, r.TwoHolders)
	}
}

// Loss above LossLimitPercent is beyond what a standby can tell from death:
// two holders then are expected, as in a partition; below it they count.
func TestAnalyzeHeavyLossLikePartition(t *testing.T) {
	for _, tc := range []struct {
		loss  int
		count time.Duration
	}{{LossLimitPercent + 10, 0}, {LossLimitPercent - 10, 200 * time.Millisecond}} {
		in := baseInput()
		in.Faults = []SoakFault{{Kind: FaultLoss, LossPercent: tc.loss, Node: "n1", At: at(5_000), HealAt: at(10_000)}}
		in.Kernel = []HolderObs{obs(0, "n1"), obs(6_000, "n1", "n2"), obs(6_200, "n1")}
		if r := Analyze(in); r.TwoHolders != tc.count {
			t.Errorf("loss %d %%: two holders outside partitions %v, want %v", tc.loss, r.TwoHolders, tc.count)
		}
	}
}
