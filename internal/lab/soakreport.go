package lab

import (
	"fmt"
	"github.com/floatip/floatip/internal/election"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/floatip/floatip/internal/config"
)

// The soak's report: pure functions of what a run observed (kernel address
// state, daemon states, faults, client samples), so they can be tested with
// synthetic observations.

// Grace periods and margins of the soak's invariants.
const (
	// PartitionHealGrace: two holders are expected while a (full or one-way)
	// partition is in force and for this long after its heal.
	PartitionHealGrace = time.Second
	// DisagreeGrace is how long a daemon's state may disagree with the
	// kernel (a holder without the VIP, a standby with it) before it counts.
	DisagreeGrace = 500 * time.Millisecond
	// BoundMargin is added to every expected no-holder bound: the lab shares
	// a loaded machine, and a bound is a bug detector, not a benchmark.
	BoundMargin = 500 * time.Millisecond
	// WatchJitter: the kernel watch reads each namespace's address events on
	// its own socket and stamps them on arrival, so across two nodes their
	// order is only good to a few milliseconds. A two-holder stretch shorter
	// than this in which one node gained the VIP and another lost it (a
	// handover: a graceful release, then the claim) may be that jitter: it
	// is counted (HandoverOverlaps), not held against the daemon. One node
	// gaining and losing the VIP while another held it throughout is always
	// real: one socket's events are in order.
	WatchJitter = 5 * time.Millisecond
	// GoroutineGrowthLimit: a daemon whose goroutines at the end exceed
	// twice those at the start plus this many has leaked.
	GoroutineGrowthLimit = 20
)

// LossLimitPercent is the loss, both ways on the holder's link, up to which
// a standby still tells loss from death (README, Under packet loss: about
// one false failover per 27 minutes at 40 %, one per 83 s at 50 %). Above
// it, as in a partition, two holders for a while are expected; the heal
// must still converge.
const LossLimitPercent = 40

// partitionKinds are the faults during which two holders are expected.
var partitionKinds = []FaultKind{FaultPartition, FaultPartitionOut, FaultPartitionIn}

// SoakBounds are the longest no-holder episode each fault kind may cause,
// derived from a profile's timing, and the time allowed to converge to one
// holder after the final heal.
type SoakBounds struct {
	Detect   time.Duration // misses x check_interval + (nodes-1) x claim_slot
	NoHolder map[FaultKind]time.Duration
	Quiet    time.Duration // no fault in force (and before the first)
	Converge time.Duration
}

// ComputeBounds derives the bounds from the timing of a profile, for a lab
// of nodes nodes whose health check fails after checkFail:
//
//	detect    = misses x check_interval + (nodes-1) x claim_slot
//	poweroff, stop, linkdown, partitions: detect + margin
//	crash, freeze: lifetime + detect + margin (the kernel keeps the VIP
//	               of a dead or frozen daemon until its lifetime runs out)
//	service:  checkFail + detect + margin
//	loss, no fault: margin (no holder is expected at all)
//	converge: lifetime + detect + margin
func ComputeBounds(t config.Timing, nodes int, checkFail time.Duration) SoakBounds {
	detect := time.Duration(t.Misses)*t.CheckInterval + time.Duration(max(nodes-1, 0))*t.ClaimSlot
	b := SoakBounds{Detect: detect, NoHolder: map[FaultKind]time.Duration{}, Quiet: BoundMargin}
	for _, k := range FaultKinds {
		switch k {
		case FaultCrash, FaultFreeze:
			b.NoHolder[k] = t.Lifetime + detect + BoundMargin
		case FaultService:
			b.NoHolder[k] = checkFail + detect + BoundMargin
		case FaultLoss:
			b.NoHolder[k] = BoundMargin
		default:
			b.NoHolder[k] = detect + BoundMargin
		}
	}
	b.Converge = t.Lifetime + detect + BoundMargin
	return b
}

// SoakFault is one fault the soak injected.
type SoakFault struct {
	Kind        FaultKind     `json:"kind"`
	Node        string        `json:"node"`
	LossPercent int           `json:"loss_percent,omitempty"`
	OnHolder    bool          `json:"on_holder"` // the node held the VIP when it was injected
	At          time.Time     `json:"at"`
	HealAt      time.Time     `json:"heal_at"` // zero if never healed
	Hold        time.Duration `json:"hold_ns"`
	Err         string        `json:"error,omitempty"` // inject or heal failed
}

func (f SoakFault) String() string {
	s := string(f.Kind)
	if f.Kind == FaultLoss {
		s = fmt.Sprintf("loss:%d", f.LossPercent)
	}
	return s + " on " + f.Node
}

// StateObs is a daemon's state as its log told it ("state changed").
type StateObs struct {
	At    time.Time
	Node  string
	State string
}

// DaemonRun is one daemon process of the soak: when it started and ended
// (zero End: still running), and whether a fault ended it.
type DaemonRun struct {
	Node     string    `json:"node"`
	Pid      int       `json:"pid"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	Expected bool      `json:"expected_exit"` // a poweroff, stop or crash ended it
	ExitErr  string    `json:"exit,omitempty"`
}

// DaemonGrowth is a node's daemon at the start and at the end of the soak.
type DaemonGrowth struct {
	Node            string `json:"node"`
	GoroutinesStart int    `json:"goroutines_start"` // -1: not read
	GoroutinesEnd   int    `json:"goroutines_end"`
	RSSStartKB      int    `json:"rss_start_kb"`
	RSSEndKB        int    `json:"rss_end_kb"`
	SameProcess     bool   `json:"same_process"` // never restarted in between
}

// SoakInput is everything a run observed.
type SoakInput struct {
	Start, End time.Time // the analysed window: first holder seen .. end
	Nodes      []string
	Kernel     []HolderObs // nodes whose eth0 has the VIP, power ignored, each change
	Faults     []SoakFault // in time order, one at a time
	States     []StateObs  // in time order per node
	Runs       []DaemonRun
	Samples    []Sample
	Panics     []string // daemon log lines with "panic:" or "fatal error:"
	Growth     []DaemonGrowth
	WatchErrs  []string // the kernel watch lost events: the figures are not exact
	Bounds     SoakBounds
	// FlickerGrace, when not zero, tolerates two-holder stretches shorter
	// than it (counted in Flickers, not violations). Zero: every one counts.
	FlickerGrace time.Duration
}

// Episode is a stretch of time during which something held.
type Episode struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Dur     time.Duration `json:"duration_ns"`
	Nodes   []string      `json:"nodes,omitempty"`
	Fault   string        `json:"fault,omitempty"` // the fault whose window it started in
	Bound   time.Duration `json:"bound_ns,omitempty"`
	Problem string        `json:"problem,omitempty"`

	kind  FaultKind // of Fault
	added []string  // two holders: the nodes that made it two
}

// KindStats are the figures of one fault kind.
type KindStats struct {
	Kind          string        `json:"kind"`
	Count         int           `json:"count"`
	OnHolder      int           `json:"on_holder"`
	Requests      int           `json:"requests"`
	Failed        int           `json:"failed_requests"`
	NoHolder      time.Duration `json:"no_holder_ns"`
	MaxNoHolder   time.Duration `json:"max_no_holder_ns"`
	Bound         time.Duration `json:"bound_ns"`
	BeyondBound   time.Duration `json:"beyond_bound_ns"`
	TwoHolders    time.Duration `json:"two_holders_ns"`          // outside partitions
	TwoHoldersExp time.Duration `json:"two_holders_expected_ns"` // during partitions
	Moves         int           `json:"moves"`
}

// SoakReport is the soak's result.
type SoakReport struct {
	Seed     uint64        `json:"seed"`
	Profile  string        `json:"profile"`
	Nodes    int           `json:"nodes"`
	Duration time.Duration `json:"duration_ns"`
	Every    time.Duration `json:"every_ns"`
	Settle   time.Duration `json:"settle_ns"`
	Skipped  []string      `json:"skipped_kinds,omitempty"`

	Bounds map[string]time.Duration `json:"bounds_ns"`
	Kinds  []KindStats              `json:"kinds"`

	TwoHolders       time.Duration `json:"two_holders_ns"`    // outside partitions and their heal grace
	HandoverOverlaps int           `json:"handover_overlaps"` // two-holder handovers shorter than WatchJitter
	FlickerGrace     time.Duration `json:"flicker_grace_ns,omitempty"`
	Flickers         int           `json:"flickers,omitempty"` // two-holder stretches shorter than FlickerGrace
	FlickerTime      time.Duration `json:"flicker_ns,omitempty"`
	NoHolderBeyond   time.Duration `json:"no_holder_beyond_bound_ns"`
	Converged        bool          `json:"converged"`
	Converge         time.Duration `json:"converge_ns"`
	FinalHolders     []string      `json:"final_holders"`
	Requests         int           `json:"requests"`
	Failed           int           `json:"failed_requests"`

	TwoHolderEpisodes []Episode      `json:"two_holder_episodes,omitempty"`
	NoHolderEpisodes  []Episode      `json:"no_holder_episodes,omitempty"` // beyond their bound
	Disagreements     []Episode      `json:"disagreements,omitempty"`
	Panics            []string       `json:"panics,omitempty"`
	UnexpectedExits   []DaemonRun    `json:"unexpected_exits,omitempty"`
	Growth            []DaemonGrowth `json:"growth"`
	WatchErrs         []string       `json:"watch_errors,omitempty"`
	Faults            []SoakFault    `json:"faults"`
	Violations        []string       `json:"violations,omitempty"`
}

// OK reports whether no invariant broke.
func (r *SoakReport) OK() bool { return len(r.Violations) == 0 }

// timeline is a piecewise-constant function of time: value i holds from
// at[i] until at[i+1] (the last until the end).
type timeline[T any] struct {
	at  []time.Time
	val []T
}

func (tl *timeline[T]) set(at time.Time, v T) {
	if n := len(tl.at); n > 0 && at.Before(tl.at[n-1]) {
		at = tl.at[n-1] // keep it ordered; lines may arrive a hair out of order
	}
	tl.at = append(tl.at, at)
	tl.val = append(tl.val, v)
}

// get is the value at t, or zero before the first change.
func (tl *timeline[T]) get(t time.Time) (v T) {
	i := sort.Search(len(tl.at), func(i int) bool { return tl.at[i].After(t) })
	if i == 0 {
		return v
	}
	return tl.val[i-1]
}

// span is [from, to).
type span struct{ from, to time.Time }

func (s span) contains(t time.Time) bool { return !t.Before(s.from) && t.Before(s.to) }

func inAny(spans []span, t time.Time) bool {
	for _, s := range spans {
		if s.contains(t) {
			return true
		}
	}
	return false
}

// healOf is the fault's heal time, or end when it never healed.
func healOf(f SoakFault, end time.Time) time.Time {
	if f.HealAt.IsZero() {
		return end
	}
	return f.HealAt
}

// Analyze turns the observations into the report (without Seed, Profile and
// the other settings, which the caller fills in) and its violations.
//
// The soak injects one fault at a time in a lab of at least 2 nodes, so a
// healthy node exists throughout: every no-holder stretch is held against
// the bound of the fault in whose window (its injection to the next one's)
// it began.
func Analyze(in SoakInput) SoakReport {
	r := SoakReport{Nodes: len(in.Nodes), Bounds: map[string]time.Duration{}}
	for k, b := range in.Bounds.NoHolder {
		r.Bounds[string(k)] = b
	}
	r.Bounds["quiet"] = in.Bounds.Quiet
	r.Bounds["converge"] = in.Bounds.Converge
	r.Faults = in.Faults
	r.Growth = in.Growth
	r.WatchErrs = in.WatchErrs
	r.FlickerGrace = in.FlickerGrace
	end := in.End

	// Power: a powered-off node holds nothing, whatever its namespace keeps.
	off := map[string][]span{}
	var partitions []span
	frozenOf := map[string][]span{}
	for _, f := range in.Faults {
		s := span{f.At, healOf(f, end)}
		switch {
		case f.Kind == FaultPowerOff:
			off[f.Node] = append(off[f.Node], s)
		case slices.Contains(partitionKinds, f.Kind),
			f.Kind == FaultLoss && f.LossPercent > LossLimitPercent:
			partitions = append(partitions, span{s.from, s.to.Add(PartitionHealGrace)})
		case f.Kind == FaultFreeze:
			frozenOf[f.Node] = append(frozenOf[f.Node], s)
		}
	}
	var kernel timeline[[]string]
	for _, o := range in.Kernel {
		kernel.set(o.At, o.Holders)
	}
	holdersAt := func(t time.Time) []string {
		var h []string
		for _, n := range kernel.get(t) {
			if !inAny(off[n], t) {
				h = append(h, n)
			}
		}
		return h
	}

	// Which fault's window a moment falls in: from its injection to the
	// next fault's (the last one's lasts to the end); -1 before the first.
	faultAt := func(t time.Time) int {
		return sort.Search(len(in.Faults), func(i int) bool { return in.Faults[i].At.After(t) }) - 1
	}

	// Every moment at which something may change.
	var cuts []time.Time
	add := func(ts ...time.Time) {
		for _, t := range ts {
			if !t.Before(in.Start) && t.Before(end) {
				cuts = append(cuts, t)
			}
		}
	}
	add(in.Start)
	for _, o := range in.Kernel {
		add(o.At)
	}
	for _, f := range in.Faults {
		add(f.At, healOf(f, end), healOf(f, end).Add(PartitionHealGrace))
	}
	for _, s := range in.States {
		add(s.At)
	}
	for _, d := range in.Runs {
		add(d.Start, d.End)
	}
	sort.Slice(cuts, func(i, j int) bool { return cuts[i].Before(cuts[j]) })
	cuts = slices.Compact(cuts)

	// Per-kind figures.
	stats := map[FaultKind]*KindStats{}
	kindOf := func(i int) FaultKind {
		if i < 0 {
			return "none"
		}
		return in.Faults[i].Kind
	}
	statOf := func(k FaultKind) *KindStats {
		if stats[k] == nil {
			stats[k] = &KindStats{Kind: string(k), Bound: in.Bounds.NoHolder[k]}
			if k == "none" {
				stats[k].Bound = in.Bounds.Quiet
			}
		}
		return stats[k]
	}
	for _, f := range in.Faults {
		s := statOf(f.Kind)
		s.Count++
		if f.OnHolder {
			s.OnHolder++
		}
	}

	// Sweep the elementary segments for two holders and no holder.
	var two, none *Episode
	// closeTwo ends a two-holder stretch at to, where removed lost the VIP.
	closeTwo := func(to time.Time, removed []string) {
		if two == nil {
			return
		}
		two.To, two.Dur = to, to.Sub(two.From)
		handover := len(removed) > 0 && !slices.ContainsFunc(removed, func(n string) bool { return slices.Contains(two.added, n) })
		switch {
		case handover && two.Dur < WatchJitter:
			r.HandoverOverlaps++
		case two.Dur < in.FlickerGrace:
			r.Flickers++
			r.FlickerTime += two.Dur
		default:
			statOf(two.kind).TwoHolders += two.Dur
			r.TwoHolders += two.Dur
			r.TwoHolderEpisodes = append(r.TwoHolderEpisodes, *two)
		}
		two = nil
	}
	closeNone := func(to time.Time) {
		if none == nil {
			return
		}
		none.To, none.Dur = to, to.Sub(none.From)
		i := faultAt(none.From)
		s := statOf(kindOf(i))
		s.NoHolder += none.Dur
		s.MaxNoHolder = max(s.MaxNoHolder, none.Dur)
		if none.Dur > none.Bound {
			s.BeyondBound += none.Dur - none.Bound
			r.NoHolderBeyond += none.Dur - none.Bound
			r.NoHolderEpisodes = append(r.NoHolderEpisodes, *none)
		}
		none = nil
	}
	var prevSingle string
	var prevH []string
	for ci, t := range cuts {
		next := end
		if ci+1 < len(cuts) {
			next = cuts[ci+1]
		}
		h := holdersAt(t)
		i := faultAt(t)
		k := kindOf(i)
		seg := next.Sub(t)
		exempt := inAny(partitions, t)
		switch {
		case len(h) >= 2 && exempt:
			statOf(k).TwoHoldersExp += seg
		case len(h) >= 2:
			if two == nil {
				two = &Episode{From: t, Nodes: h, Fault: faultName(in.Faults, i), kind: k, added: minus(h, prevH)}
			}
		}
		if len(h) < 2 || exempt {
			closeTwo(t, minus(prevH, h))
		}
		prevH = h
		if len(h) == 0 {
			if none == nil {
				b := in.Bounds.Quiet
				if i >= 0 {
					b = in.Bounds.NoHolder[k]
				}
				none = &Episode{From: t, Fault: faultName(in.Faults, i), Bound: b}
			}
		} else {
			closeNone(t)
		}
		if len(h) == 1 {
			if prevSingle != "" && prevSingle != h[0] {
				statOf(k).Moves++
			}
			prevSingle = h[0]
		}
	}
	closeTwo(end, nil)
	closeNone(end)

	// Convergence after the final heal.
	final := in.Start
	for _, f := range in.Faults {
		if h := healOf(f, end); h.After(final) {
			final = h
		}
	}
	r.FinalHolders = holdersAt(end.Add(-time.Nanosecond))
	if len(r.FinalHolders) == 1 {
		// The last moment the holders were not exactly the final one.
		last := final
		for _, t := range cuts {
			if !t.Before(final) {
				if h := holdersAt(t); !slices.Equal(h, r.FinalHolders) {
					last = t
					// it lasts until the next cut
					j := sort.Search(len(cuts), func(j int) bool { return cuts[j].After(t) })
					if j < len(cuts) {
						last = cuts[j]
					} else {
						last = end
					}
				}
			}
		}
		r.Converge = last.Sub(final)
		r.Converged = r.Converge <= in.Bounds.Converge
	}

	// Client requests per fault window.
	for _, s := range in.Samples {
		if s.At.Before(in.Start) || !s.At.Before(end) {
			continue
		}
		st := statOf(kindOf(faultAt(s.At)))
		st.Requests++
		r.Requests++
		if !s.OK {
			st.Failed++
			r.Failed++
		}
	}

	r.Disagreements = disagreements(in, kernel, frozenOf)
	r.Panics = in.Panics
	for _, d := range in.Runs {
		if !d.End.IsZero() && !d.Expected {
			r.UnexpectedExits = append(r.UnexpectedExits, d)
		}
	}

	for _, k := range append([]FaultKind{"none"}, FaultKinds...) {
		if s := stats[k]; s != nil {
			r.Kinds = append(r.Kinds, *s)
		}
	}
	r.Violations = violations(&r)
	return r
}

// minus is the names in a but not in b.
func minus(a, b []string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

func faultName(fs []SoakFault, i int) string {
	if i < 0 {
		return "none"
	}
	return fs[i].String()
}

// notHeldStates are the daemon states in which its node must not have the
// VIP (in "holder" it must have it; "releasing" may have it a moment
// longer, and "init" has not looked yet).
var notHeldStates = func() []string {
	var out []string
	for _, s := range election.States() {
		if !s.HasVIPs() && s != election.StateInit {
			out = append(out, s.String())
		}
	}
	return out
}()

// disagreements finds the stretches longer than DisagreeGrace in which a
// running, unfrozen daemon's state disagreed with its node's kernel.
func disagreements(in SoakInput, kernel timeline[[]string], frozenOf map[string][]span) []Episode {
	var out []Episode
	for _, node := range in.Nodes {
		// The daemon's state: "" while none runs or it has not said.
		var st timeline[string]
		type ev struct {
			at    time.Time
			state string
			order int
		}
		var evs []ev
		for _, d := range in.Runs {
			if d.Node != node {
				continue
			}
			evs = append(evs, ev{d.Start, "", 0})
			if !d.End.IsZero() {
				evs = append(evs, ev{d.End, "", 2})
			}
		}
		for _, s := range in.States {
			if s.Node == node {
				evs = append(evs, ev{s.At, s.State, 1})
			}
		}
		sort.SliceStable(evs, func(i, j int) bool {
			if !evs[i].at.Equal(evs[j].at) {
				return evs[i].at.Before(evs[j].at)
			}
			return evs[i].order < evs[j].order
		})
		for _, e := range evs {
			st.set(e.at, e.state)
		}
		var cuts []time.Time
		for _, t := range append(slices.Clone(st.at), kernel.at...) {
			if !t.Before(in.Start) && t.Before(in.End) {
				cuts = append(cuts, t)
			}
		}
		for _, s := range frozenOf[node] {
			cuts = append(cuts, s.from, s.to)
		}
		cuts = append(cuts, in.Start)
		sort.Slice(cuts, func(i, j int) bool { return cuts[i].Before(cuts[j]) })
		cuts = slices.Compact(cuts)
		var cur *Episode
		flush := func(to time.Time) {
			if cur != nil {
				cur.To, cur.Dur = to, to.Sub(cur.From)
				if cur.Dur > DisagreeGrace {
					out = append(out, *cur)
				}
				cur = nil
			}
		}
		for _, t := range cuts {
			if t.Before(in.Start) || !t.Before(in.End) {
				continue
			}
			state := st.get(t)
			has := slices.Contains(kernel.get(t), node)
			problem := ""
			if !inAny(frozenOf[node], t) {
				switch {
				case state == "holder" && !has:
					problem = "daemon holder, kernel has no VIP"
				case slices.Contains(notHeldStates, state) && has:
					problem = "daemon " + state + ", kernel has the VIP"
				}
			}
			if cur != nil && cur.Problem != problem {
				flush(t)
			}
			if problem != "" && cur == nil {
				cur = &Episode{From: t, Nodes: []string{node}, Problem: problem}
			}
		}
		flush(in.End)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From.Before(out[j].From) })
	return out
}

func violations(r *SoakReport) []string {
	var v []string
	for _, e := range r.TwoHolderEpisodes {
		v = append(v, fmt.Sprintf("two holders (%s) for %d ms from %s outside any partition (during %s)",
			strings.Join(e.Nodes, ","), e.Dur.Milliseconds(), clock(e.From), e.Fault))
	}
	for _, e := range r.NoHolderEpisodes {
		v = append(v, fmt.Sprintf("no holder for %d ms from %s, beyond the %d ms bound of %s",
			e.Dur.Milliseconds(), clock(e.From), e.Bound.Milliseconds(), e.Fault))
	}
	if !r.Converged {
		v = append(v, fmt.Sprintf("no convergence to one holder after the final heal (holders at the end: %s, %d ms after the heal; bound %d ms)",
			noneOr(r.FinalHolders), r.Converge.Milliseconds(), r.Bounds["converge"].Milliseconds()))
	}
	for _, e := range r.Disagreements {
		v = append(v, fmt.Sprintf("%s: %s for %d ms from %s", e.Nodes[0], e.Problem, e.Dur.Milliseconds(), clock(e.From)))
	}
	for _, p := range r.Panics {
		v = append(v, "panic: "+p)
	}
	for _, d := range r.UnexpectedExits {
		v = append(v, fmt.Sprintf("%s: daemon pid %d exited at %s without a fault (%s)", d.Node, d.Pid, clock(d.End), d.ExitErr))
	}
	for _, e := range r.WatchErrs {
		v = append(v, "kernel address watch: "+e)
	}
	for _, g := range r.Growth {
		if g.GoroutinesStart >= 0 && g.GoroutinesEnd > 2*g.GoroutinesStart+GoroutineGrowthLimit {
			v = append(v, fmt.Sprintf("%s: goroutines grew from %d to %d", g.Node, g.GoroutinesStart, g.GoroutinesEnd))
		}
	}
	return v
}

// Print writes the report as tables.
func (r *SoakReport) Print(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%d", d.Milliseconds()) }
	fmt.Fprintf(w, "\nsoak: seed %d, profile %s, %d nodes, %s, a fault about every %s, %s healed at the end\n",
		r.Seed, r.Profile, r.Nodes, r.Duration, r.Every, r.Settle)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "skipped fault kinds: %s\n", strings.Join(r.Skipped, ", "))
	}
	fmt.Fprintf(w, "\n%-14s %5s %6s %8s %7s %10s %9s %8s %9s %10s %6s\n",
		"fault", "count", "holder", "requests", "failed", "no-holder", "max gap", "bound", "beyond", "2 holders", "moves")
	fmt.Fprintf(w, "%-14s %5s %6s %8s %7s %10s %9s %8s %9s %10s %6s\n",
		"", "", "", "", "", "ms", "ms", "ms", "ms", "ms (exp)", "")
	for _, k := range r.Kinds {
		fmt.Fprintf(w, "%-14s %5d %6d %8d %7d %10s %9s %8s %9s %10s %6d\n", k.Kind, k.Count, k.OnHolder, k.Requests, k.Failed,
			ms(k.NoHolder), ms(k.MaxNoHolder), ms(k.Bound), ms(k.BeyondBound),
			fmt.Sprintf("%s (%s)", ms(k.TwoHolders), ms(k.TwoHoldersExp)), k.Moves)
	}
	fmt.Fprintf(w, "\ntwo holders outside partitions  %d ms (%d episodes)\n", r.TwoHolders.Milliseconds(), len(r.TwoHolderEpisodes))
	fmt.Fprintf(w, "handover overlaps < %d ms       %d (within the watch's clock jitter; not counted)\n", WatchJitter.Milliseconds(), r.HandoverOverlaps)
	if r.FlickerGrace > 0 {
		fmt.Fprintf(w, "two-holder flickers < %s      %d, %.1f ms in all (tolerated: --flicker-grace)\n", r.FlickerGrace, r.Flickers, float64(r.FlickerTime.Microseconds())/1000)
	}
	fmt.Fprintf(w, "no holder beyond the bounds     %d ms (%d episodes)\n", r.NoHolderBeyond.Milliseconds(), len(r.NoHolderEpisodes))
	fmt.Fprintf(w, "convergence after final heal    %d ms to %s (bound %d ms)\n", r.Converge.Milliseconds(), noneOr(r.FinalHolders), r.Bounds["converge"].Milliseconds())
	fmt.Fprintf(w, "client requests                 %d, %d failed\n", r.Requests, r.Failed)
	fmt.Fprintf(w, "state disagreements > %d ms    %d\n", DisagreeGrace.Milliseconds(), len(r.Disagreements))
	fmt.Fprintf(w, "panics, unexpected exits        %d, %d\n", len(r.Panics), len(r.UnexpectedExits))
	for _, g := range r.Growth {
		fmt.Fprintf(w, "daemon %-4s goroutines %d -> %d, RSS %d -> %d kB%s\n", g.Node, g.GoroutinesStart, g.GoroutinesEnd, g.RSSStartKB, g.RSSEndKB,
			map[bool]string{true: "", false: " (restarted in between)"}[g.SameProcess])
	}
	if r.OK() {
		fmt.Fprintf(w, "\nPASS (seed %d)\n", r.Seed)
		return
	}
	fmt.Fprintf(w, "\nFAIL: %d invariant violations (seed %d):\n", len(r.Violations), r.Seed)
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
