package bench

// The quorum benchmark (`floatip bench --quorum etcd`): floatip with its
// etcd quorum against vip-manager (Debian's 1.0.2), on the same lab, the
// same three-member etcd (one member on each node) and the same TTL, under
// the faults that split a holder from its referee.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
)

// KindVipManager is vip-manager under a Patroni-like leader loop.
const KindVipManager = "vip-manager"

// QuorumImpl is one implementation of the quorum benchmark.
type QuorumImpl struct {
	Name string // "floatip", "floatip-fence", "vip-manager"
	Kind string // KindFloatip or KindVipManager
	// Fence runs floatip with fencing required: the fence command is
	// `floatip lab fence`, which powers the old holder off through the
	// lab's power switch (Lab.StartPowerSwitch) and succeeds.
	Fence bool
	// Faults are the faults it runs when none are asked for; nil: all of
	// QuorumFaults.
	Faults []lab.FaultKind
}

// QuorumImpls are the implementations of the quorum benchmark, by name.
//
// vip-manager floats the VIP on the node whose name is the value of an etcd
// key that something else keeps (Patroni, in its users' clusters). Here
// each node runs `floatip lab leader`, which keeps the key in etcd's v2
// store as Patroni's etcd store does (create with prevExist=false and the
// TTL; renew every TTL/4 with a compare-and-swap on its own value; give it
// up when a TTL has passed since the last renewal it sent that succeeded;
// delete it on stop), and runs vip-manager alongside, in the same process
// group, so a fault on the "daemon" hits both as it hits floatip, which is
// both. vip-manager reads the key every 100 ms (its --interval; default
// 1000), a standby's loop tries to take a free key every 100 ms.
var QuorumImpls = []QuorumImpl{
	{Name: "floatip", Kind: KindFloatip},
	{Name: "floatip-fence", Kind: KindFloatip, Fence: true, Faults: []lab.FaultKind{lab.FaultPowerOff}},
	{Name: "vip-manager", Kind: KindVipManager},
}

// QuorumFaults are the faults of the quorum benchmark, in order. The
// partition, etcd-cut, freeze and quorum-lost faults are held for
// 2 x TTL and then healed; power-off and stop are not healed.
var QuorumFaults = []lab.FaultKind{lab.FaultPartition, lab.FaultEtcdCut, lab.FaultFreeze, lab.FaultQuorumLost, lab.FaultPowerOff, lab.FaultStop}

// LookupQuorumImpl returns the quorum implementation called name.
func LookupQuorumImpl(name string) (QuorumImpl, error) {
	for _, i := range QuorumImpls {
		if i.Name == name {
			return i, nil
		}
	}
	var names []string
	for _, i := range QuorumImpls {
		names = append(names, i.Name)
	}
	return QuorumImpl{}, fmt.Errorf("unknown quorum implementation %q (want one of %s)", name, strings.Join(names, ", "))
}

// QuorumNodes is the size of the quorum benchmark's lab: three nodes, each
// running the implementation and one etcd member.
const QuorumNodes = 3

// DefaultQuorumTTL is the lease (floatip) and key (vip-manager) TTL.
const DefaultQuorumTTL = 5 * time.Second

// QuorumConfig configures RunQuorum.
type QuorumConfig struct {
	Binary     string // floatip executable run inside the lab
	VipManager string // vip-manager executable; "" looks it up in PATH
	Impls      []QuorumImpl
	Faults     []lab.FaultKind // default: each implementation's own (QuorumImpl.Faults)
	Trials     int             // default 3
	TTL        time.Duration   // default DefaultQuorumTTL
	Prefix     string          // default "fbq"
	// LeaderOnHolder moves etcd's leadership to the holder's member before
	// each fault; by default it is moved to another member. Where the
	// leader is matters: a holder that takes the leader down with it (power
	// off, partition) makes etcd elect a new one first, which renews every
	// lease to a full TTL plus an election timeout.
	LeaderOnHolder bool
	// LogDir, when set, keeps every trial's daemon output in
	// LogDir/IMPL-FAULT-N/NODE.log.
	LogDir   string
	OutDir   string // "" writes no files
	Progress io.Writer
	Table    io.Writer
}

// QuorumTrial is one trial of the quorum benchmark. Times are in ms after
// FaultAt; the holders are read from the kernel every 10 ms.
type QuorumTrial struct {
	Impl    string        `json:"impl"`
	Fault   lab.FaultKind `json:"fault"`
	Trial   int           `json:"trial"`
	Err     string        `json:"error,omitempty"`
	TTL     float64       `json:"ttl_s"`
	FaultAt time.Time     `json:"fault_at"`
	Holder  string        `json:"holder"`
	// EtcdLeader is the etcd member that led the cluster at the fault.
	EtcdLeader string `json:"etcd_leader"`

	TwoHoldersMS float64 `json:"two_holders_ms"`
	// DropMS is when the old holder's kernel no longer had the VIP.
	DropMS *float64 `json:"drop_ms,omitempty"`
	// DeadlineMS is the old holder's lease (floatip) or key (vip-manager's
	// leader loop) deadline as it knew it: the last one it reported before
	// DropMS (floatip: `floatip status`, polled every 100 ms; the leader
	// loop: its log). MarginMS is DeadlineMS - DropMS: positive when the VIP
	// left before the deadline.
	DeadlineMS *float64 `json:"deadline_ms,omitempty"`
	MarginMS   *float64 `json:"margin_ms,omitempty"`
	// TakeoverMS is when another node first had the VIP.
	TakeoverMS *float64 `json:"takeover_ms,omitempty"`
	// From the client (a request every 5 ms).
	OutageMS  float64 `json:"outage_ms"`
	Recovered bool    `json:"recovered"`
	Failed    int     `json:"failed_requests"`
	// Failures lists the failed requests sent at or after the fault: when
	// (ms from the fault) and why, for reading them against the logs.
	Failures []FailedRequest `json:"failures,omitempty"`
	// The held faults: HealMS, and from it to exactly one holder for good.
	HealMS      *float64       `json:"heal_ms,omitempty"`
	HealToOneMS *float64       `json:"heal_to_one_ms,omitempty"`
	HoldersEnd  []string       `json:"holders_end"`
	EndMS       float64        `json:"end_ms"`
	Changes     []HolderChange `json:"holder_changes"`
	err         error
}

// FailedRequest is one failed client request of a trial.
type FailedRequest struct {
	SentMS  float64 `json:"sent_ms"` // from the fault
	EndedMS float64 `json:"ended_ms"`
	Err     string  `json:"err"`
}

// maxFailures bounds Failures: a long outage is its count, not a list.
const maxFailures = 20

func failures(samples []lab.Sample, faultAt time.Time) []FailedRequest {
	var fs []FailedRequest
	for _, s := range samples {
		if s.OK || s.At.Before(faultAt) {
			continue
		}
		if len(fs) == maxFailures {
			break
		}
		fs = append(fs, FailedRequest{SentMS: msOf(s.At.Sub(faultAt)), EndedMS: msOf(s.At.Add(s.Latency).Sub(faultAt)), Err: s.Err})
	}
	return fs
}

func (t QuorumTrial) brief() string {
	if t.Err != "" {
		return "ERROR " + t.Err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "two holders %.0f ms", t.TwoHoldersMS)
	if t.DropMS != nil {
		fmt.Fprintf(&b, ", old holder dropped the VIP at %.0f ms", *t.DropMS)
		if t.MarginMS != nil {
			fmt.Fprintf(&b, " (%.0f ms before its deadline)", *t.MarginMS)
		}
	} else {
		b.WriteString(", old holder kept the VIP")
	}
	if t.TakeoverMS != nil {
		fmt.Fprintf(&b, ", takeover at %.0f ms", *t.TakeoverMS)
	}
	fmt.Fprintf(&b, ", %d failed requests", t.Failed)
	if t.HealToOneMS != nil {
		fmt.Fprintf(&b, ", heal->one holder %.0f ms", *t.HealToOneMS)
	}
	fmt.Fprintf(&b, ", holders at end: %s", orNone(t.HoldersEnd))
	return b.String()
}

// QuorumResults is what RunQuorum measured.
type QuorumResults struct {
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
	TTL     float64   `json:"ttl_s"`
	Trials  int       `json:"trials_per_case"`
	// LeaderOnHolder: etcd's leader was moved to the holder's member
	// before each fault (else to another member).
	LeaderOnHolder bool            `json:"etcd_leader_on_holder"`
	Impls          []string        `json:"impls"`
	Faults         []lab.FaultKind `json:"faults"`
	Skipped        []string        `json:"skipped,omitempty"`
	Summaries      []QuorumSummary `json:"summaries"`
	Runs           []QuorumTrial   `json:"runs"`
	Leftovers      []string        `json:"leftovers,omitempty"`
}

// Files RunQuorum writes into its output directory.
const (
	FileQuorumMarkdown = "quorum.md"
	FileQuorumJSON     = "quorum.json"
)

// RunQuorum runs the quorum benchmark: every implementation × fault × trial
// on a fresh lab of QuorumNodes nodes with a fresh etcd.
func RunQuorum(ctx context.Context, cfg QuorumConfig) (*QuorumResults, error) {
	if cfg.Trials == 0 {
		cfg.Trials = 3
	}
	if cfg.Trials < 1 {
		return nil, fmt.Errorf("--trials %d: want at least 1", cfg.Trials)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultQuorumTTL
	}
	if cfg.TTL < 3*time.Second || cfg.TTL%time.Second != 0 {
		return nil, fmt.Errorf("--ttl %v: want whole seconds, at least 3 s", cfg.TTL)
	}
	if len(cfg.Impls) == 0 {
		cfg.Impls = slices.Clone(QuorumImpls)
	}
	for _, f := range cfg.Faults {
		if !slices.Contains(QuorumFaults, f) {
			return nil, fmt.Errorf("unknown quorum fault %q (want one of %s)", f, kindNames(QuorumFaults))
		}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "fbq"
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Table == nil {
		cfg.Table = io.Discard
	}
	if cfg.VipManager == "" {
		cfg.VipManager, _ = exec.LookPath("vip-manager")
	}
	if cfg.OutDir != "" {
		if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
			return nil, err
		}
	}
	host, _ := os.Hostname()
	res := &QuorumResults{Started: time.Now().UTC(), Host: host, TTL: cfg.TTL.Seconds(), Trials: cfg.Trials, LeaderOnHolder: cfg.LeaderOnHolder}
	type cell struct {
		im    QuorumImpl
		fault lab.FaultKind
	}
	var cells []cell
	for _, im := range cfg.Impls {
		if im.Kind == KindVipManager && cfg.VipManager == "" {
			note := im.Name + ": vip-manager is not installed (apt-get install vip-manager)"
			fmt.Fprintf(cfg.Progress, "note: skipping %s\n", note)
			res.Skipped = append(res.Skipped, note)
			continue
		}
		faults := cfg.Faults
		if len(faults) == 0 {
			faults = im.Faults
		}
		if len(faults) == 0 {
			faults = QuorumFaults
		}
		for _, f := range faults {
			cells = append(cells, cell{im, f})
			if !slices.Contains(res.Faults, f) {
				res.Faults = append(res.Faults, f)
			}
		}
		res.Impls = append(res.Impls, im.Name)
	}
	// The table goes by fault in QuorumFaults' order.
	slices.SortStableFunc(res.Faults, func(a, b lab.FaultKind) int {
		return slices.Index(QuorumFaults, a) - slices.Index(QuorumFaults, b)
	})
	var runErr error
run:
	for _, c := range cells {
		for n := 1; n <= cfg.Trials; n++ {
			if err := ctx.Err(); err != nil {
				runErr = err
				break run
			}
			t := QuorumTrial{Impl: c.im.Name, Fault: c.fault, Trial: n, TTL: cfg.TTL.Seconds(), HoldersEnd: []string{}}
			t.err = runQuorumTrial(ctx, cfg, c.im, c.fault, &t)
			if t.err != nil && ctx.Err() != nil {
				runErr = ctx.Err()
				break run
			}
			if t.err != nil {
				t.Err = t.err.Error()
			}
			res.Runs = append(res.Runs, t)
			fmt.Fprintf(cfg.Progress, "%s %s trial %d/%d: %s\n", c.im.Name, c.fault, n, cfg.Trials, t.brief())
			if errors.Is(t.err, errLeftover) || errors.Is(t.err, lab.ErrExists) {
				runErr = t.err
				break run
			}
		}
	}
	res.Summaries = SummarizeQuorum(res.Runs)
	if removed, err := lab.CleanupReport(cfg.Prefix); err != nil {
		res.Leftovers = append(res.Leftovers, fmt.Sprintf("cleaning up lab %s: %v", cfg.Prefix, err))
	} else if len(removed) > 0 {
		res.Leftovers = append(res.Leftovers, "namespaces "+strings.Join(removed, ", "))
	}
	if len(res.Leftovers) > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("left behind (now removed): %s", strings.Join(res.Leftovers, "; ")))
	}
	if len(res.Runs) > 0 {
		if err := WriteQuorumMarkdown(cfg.Table, res); err != nil {
			runErr = errors.Join(runErr, err)
		}
		if cfg.OutDir != "" {
			if err := writeQuorumFiles(cfg.OutDir, res); err != nil {
				runErr = errors.Join(runErr, err)
			}
		}
	}
	if runErr == nil && len(cells) == 0 {
		runErr = errors.New("nothing to run")
	}
	if runErr == nil && !slices.ContainsFunc(res.Runs, func(t QuorumTrial) bool { return t.Err == "" }) {
		runErr = errors.New("no trial ran; see the errors above")
	}
	return res, runErr
}

func kindNames(ks []lab.FaultKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// heldFault reports whether the benchmark heals the fault after 2 x TTL.
func heldFault(f lab.FaultKind) bool {
	return f == lab.FaultPartition || f == lab.FaultEtcdCut || f == lab.FaultFreeze || f == lab.FaultQuorumLost
}

// vipManagerKey is the leader key of the vip-manager trials (Patroni's
// /service/SCOPE/leader).
const vipManagerKey = "/service/floatip-bench/leader"

// QuorumConfigYAML is the floatip configuration of a quorum trial: the etcd
// quorum and, with fenceCmd, fencing required through it (`BIN lab fence
// --socket SWITCH`) with the nodes' MACs as peers.
func QuorumConfigYAML(endpoints []string, ttl time.Duration, peers map[string]string, fenceCmd []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "quorum:\n  etcd:\n    endpoints: [%s]\n    ttl: %s\n    prefix: /floatip/bench\n", strings.Join(endpoints, ", "), ttl)
	if len(fenceCmd) > 0 {
		b.WriteString("peers:\n")
		names := make([]string, 0, len(peers))
		for n := range peers {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(&b, "  %s: %q\n", n, peers[n])
		}
		var q []string
		for _, a := range fenceCmd {
			q = append(q, strconv.Quote(a))
		}
		fmt.Fprintf(&b, "fencing:\n  policy: required\n  command: [%s]\n  timeout: 5s\n", strings.Join(q, ", "))
	}
	return b.String()
}

func runQuorumTrial(ctx context.Context, cfg QuorumConfig, im QuorumImpl, fault lab.FaultKind, t *QuorumTrial) (err error) {
	l, err := lab.Up(ctx, lab.Options{Prefix: cfg.Prefix, Nodes: QuorumNodes, Binary: cfg.Binary})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "floatip-bench-quorum-")
	if err != nil {
		l.Down()
		return err
	}
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("%w: tearing down: %v", errLeftover, derr))
		}
		os.RemoveAll(dir)
	}()
	ec, err := l.StartEtcd(ctx, lab.EtcdOptions{V2: im.Kind == KindVipManager})
	if err != nil {
		return err
	}
	nodes := l.Nodes()
	for _, nd := range nodes {
		if _, err := nd.StartService(ctx); err != nil {
			return err
		}
	}
	var confPath string
	if im.Kind == KindFloatip {
		peers := map[string]string{}
		var fenceCmd []string
		if im.Fence {
			for _, nd := range nodes {
				if peers[nd.Name], err = nd.MAC(); err != nil {
					return err
				}
			}
			sock, err := l.StartPowerSwitch()
			if err != nil {
				return err
			}
			fenceCmd = []string{l.Binary, "lab", "fence", "--socket", sock}
		}
		confPath = filepath.Join(dir, "floatip.yaml")
		if err := os.WriteFile(confPath, []byte(QuorumConfigYAML(ec.Endpoints(), cfg.TTL, peers, fenceCmd)), 0o644); err != nil {
			return err
		}
	}
	ds := daemons{}
	if cfg.LogDir != "" {
		defer func() {
			d := filepath.Join(cfg.LogDir, fmt.Sprintf("%s-%s-%d", im.Name, fault, t.Trial))
			if os.MkdirAll(d, 0o755) == nil {
				for name, p := range ds {
					var b strings.Builder
					for _, l := range p.Lines() {
						b.WriteString(l.Text + "\n")
					}
					_ = os.WriteFile(filepath.Join(d, name+".log"), []byte(b.String()), 0o644)
				}
			}
		}()
	}
	start := func(nd *lab.Node) error {
		var p *lab.Proc
		var err error
		switch im.Kind {
		case KindFloatip:
			p, err = nd.StartFloatip(ctx, "--priority", strconv.Itoa(Priority(nd.Index)), "--config", confPath)
		case KindVipManager:
			p, err = nd.StartDaemon(ctx, l.Binary, VipManagerArgs(cfg.VipManager, ec.Endpoints(), cfg.TTL, nd.Name, l.VIP.String())...)
		}
		if err != nil {
			return err
		}
		ds[nd.Name] = p
		return nil
	}
	first := nodes[0]
	if err := start(first); err != nil {
		return err
	}
	if _, err := l.WaitHolders(ctx, lab.HeldBy(first.Name), StartLimit, ds.procs()...); err != nil {
		return fmt.Errorf("waiting for %s to hold the VIP: %w", first.Name, err)
	}
	for _, nd := range nodes[1:] {
		if err := start(nd); err != nil {
			return err
		}
		if im.Kind == KindFloatip {
			if err := waitBackup(ctx, Impl{Kind: KindFloatip}, ds[nd.Name]); err != nil {
				return err
			}
		}
	}
	if err := lab.Sleep(ctx, time.Second); err != nil { // the standbys settle
		return err
	}
	if _, err := l.WaitHolders(ctx, lab.HeldBy(first.Name), StartLimit, ds.procs()...); err != nil {
		return fmt.Errorf("waiting for %s alone to hold the VIP: %w", first.Name, err)
	}
	client, err := l.StartClient(ctx, lab.ClientOptions{Every: clientEvery})
	if err != nil {
		return err
	}
	if _, err := client.WaitSample(ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK }); err != nil {
		return fmt.Errorf("the client never got an answer from the VIP: %w", err)
	}
	poll := l.RecordHolders(ctx)
	defer poll.Stop()
	var dl *deadlineWatch
	if im.Kind == KindFloatip {
		dl = watchFloatipDeadline(ctx, first)
		defer dl.stop()
	}
	if err := lab.Sleep(ctx, Settle); err != nil {
		return err
	}
	// Place etcd's leader.
	var to *lab.EtcdMember
	for _, m := range ec.Members() {
		if (m.Name == first.Name) == cfg.LeaderOnHolder {
			to = m
			break
		}
	}
	if err := ec.MoveLeader(ctx, to); err != nil {
		return err
	}
	if err := lab.Sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	if m, err := ec.Leader(ctx); err != nil {
		return err
	} else {
		t.EtcdLeader = m.Name
	}
	if h, err := l.Holders(); err != nil {
		return err
	} else if !slices.Equal(h, []string{first.Name}) {
		return fmt.Errorf("before the fault the holders are %s, not %s", orNone(h), first.Name)
	}

	if err := faultPhase(ctx, im.Name, string(fault), t.Trial); err != nil {
		return err
	}
	t.Holder = first.Name
	faultAt := time.Now()
	t.FaultAt = faultAt
	if err := first.Inject(lab.Fault{Kind: fault}); err != nil {
		return err
	}
	var healAt time.Time
	var end time.Time
	switch {
	case heldFault(fault):
		if err := lab.Sleep(ctx, 2*cfg.TTL); err != nil {
			return err
		}
		healAt = time.Now()
		if err := first.Heal(ctx, fault); err != nil {
			return fmt.Errorf("heal %s: %w", first.Name, err)
		}
		end = time.Now().Add(Tail)
		limit := RecoverLimit + cfg.TTL
		if fault == lab.FaultQuorumLost {
			// etcd elects a leader again first.
			limit += 10 * time.Second
		}
		if _, werr := l.WaitHolders(ctx, lab.ExactlyOne, limit); werr == nil {
			end = later(end, time.Now().Add(time.Second))
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	default:
		limit := RecoverLimit + cfg.TTL
		end = faultAt.Add(limit)
		if s, werr := client.WaitSample(ctx, limit, func(s lab.Sample) bool {
			return s.OK && !s.At.Before(faultAt) && s.Node != first.Name
		}); werr == nil {
			end = s.At.Add(Tail)
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := lab.Sleep(ctx, time.Until(end)); err != nil {
		return err
	}
	samples := client.Stop()
	endAt := time.Now()
	obs := poll.Stop()

	m := lab.Measure(samples, faultAt)
	t.OutageMS, t.Recovered, t.Failed = msOf(m.Outage), m.Recovered, m.Failed
	t.Failures = failures(samples, faultAt)
	t.TwoHoldersMS = msOf(TwoHolderTime(obs, faultAt, endAt))
	t.EndMS = msOf(endAt.Sub(faultAt))
	if len(obs) > 0 && obs[len(obs)-1].Holders != nil {
		t.HoldersEnd = obs[len(obs)-1].Holders
	}
	var dropAt time.Time
	var last []string
	for i, o := range obs {
		if i == 0 || !slices.Equal(o.Holders, last) {
			t.Changes = append(t.Changes, HolderChange{MS: msOf(o.At.Sub(faultAt)), Holders: o.Holders})
			last = o.Holders
		}
		if o.At.Before(faultAt) {
			continue
		}
		if dropAt.IsZero() && !slices.Contains(o.Holders, first.Name) {
			dropAt = o.At
			t.DropMS = ptr(msOf(o.At.Sub(faultAt)))
		}
		if t.TakeoverMS == nil && slices.ContainsFunc(o.Holders, func(h string) bool { return h != first.Name }) {
			t.TakeoverMS = ptr(msOf(o.At.Sub(faultAt)))
		}
	}
	// The deadline the old holder knew, for the faults that leave it
	// running (power-off and stop end it).
	if fault != lab.FaultPowerOff && fault != lab.FaultStop {
		var deadline time.Time
		before := endAt
		if !dropAt.IsZero() {
			before = dropAt
		}
		if im.Kind == KindFloatip {
			deadline = dl.stop().lastBefore(before)
			if deadline.IsZero() {
				deadline = floatipLogDeadline(ds[first.Name], faultAt, before)
			}
		} else {
			deadline = leaderDeadline(ds[first.Name], before)
		}
		if !deadline.IsZero() {
			t.DeadlineMS = ptr(msOf(deadline.Sub(faultAt)))
			if !dropAt.IsZero() {
				t.MarginMS = ptr(msOf(deadline.Sub(dropAt)))
			}
		}
	}
	if !healAt.IsZero() {
		t.HealMS = ptr(msOf(healAt.Sub(faultAt)))
		if at, ok := settledSince(obs, healAt); ok {
			t.HealToOneMS = ptr(msOf(at.Sub(healAt)))
		}
	}
	return nil
}

// settledSince is when exactly one node has held the VIP for good, but
// not before from (0 after from when one node held it already then).
func settledSince(obs []lab.HolderObs, from time.Time) (time.Time, bool) {
	if len(obs) == 0 || len(obs[len(obs)-1].Holders) != 1 {
		return time.Time{}, false
	}
	i := len(obs) - 1
	for i > 0 && len(obs[i-1].Holders) == 1 {
		i--
	}
	return later(obs[i].At, from), true
}

// VipManagerArgs are the arguments of a vip-manager node: `floatip lab
// leader` keeping the key for node, with vip-manager alongside watching it
// every 100 ms.
func VipManagerArgs(vipManager string, endpoints []string, ttl time.Duration, node, vip string) []string {
	return []string{"lab", "leader", "--endpoints", strings.Join(endpoints, ","), "--key", vipManagerKey,
		"--name", node, "--ttl", ttl.String(), "--",
		vipManager, "--ip", vip, "--netmask", "32", "--interface", "eth0",
		"--trigger-key", vipManagerKey, "--trigger-value", node,
		"--dcs-type", "etcd", "--dcs-endpoints", strings.Join(endpoints, ","),
		"--interval", "100"}
}

// leaderDeadline is the last deadline the leader loop logged before t.
func leaderDeadline(p *lab.Proc, t time.Time) time.Time {
	var d time.Time
	for _, l := range p.Lines() {
		if l.At.After(t) {
			break
		}
		if m := l.Msg(); m != lab.LeaderAcquired && m != lab.LeaderRefreshed {
			continue
		}
		if v, err := time.Parse(time.RFC3339Nano, l.Str("deadline")); err == nil {
			d = v
		}
	}
	return d
}

// keepaliveFailed is the message of floatip's etcd backend when a
// keepalive fails; its deadline_in is the time left to the lease deadline.
const keepaliveFailed = "etcd: keepalive failed; retrying until the lease deadline"

// floatipLogDeadline is the lease deadline floatip logged with its first
// failed keepalive after the fault (line time + deadline_in), before t;
// zero when it logged none (a frozen daemon logs nothing).
func floatipLogDeadline(p *lab.Proc, faultAt, t time.Time) time.Time {
	for _, l := range p.Lines() {
		if l.Time().Before(faultAt) || l.Msg() != keepaliveFailed {
			continue
		}
		if l.Time().After(t) {
			break
		}
		if d, err := time.ParseDuration(l.Str("deadline_in")); err == nil {
			return l.Time().Add(d)
		}
	}
	return time.Time{}
}

// deadlineWatch polls a floatip daemon's status every 100 ms and keeps the
// lease deadlines it reports, with when.
type deadlineWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   []seenDeadline
}

type seenDeadline struct{ at, deadline time.Time }

func watchFloatipDeadline(ctx context.Context, nd *lab.Node) *deadlineWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &deadlineWatch{cancel: cancel, done: make(chan struct{})}
	c := control.Client{Path: nd.Socket()}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
			st, err := c.Status(sctx)
			scancel()
			at := time.Now()
			if err == nil {
				if d, ok := quorumDeadline(st); ok {
					w.mu.Lock()
					if len(w.seen) == 0 || !w.seen[len(w.seen)-1].deadline.Equal(d) {
						w.seen = append(w.seen, seenDeadline{at, d})
					}
					w.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *deadlineWatch) stop() *deadlineWatch {
	w.cancel()
	<-w.done
	return w
}

// lastBefore is the latest deadline reported before t.
func (w *deadlineWatch) lastBefore(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Time
	for _, s := range w.seen {
		if s.at.After(t) {
			break
		}
		if s.deadline.After(d) {
			d = s.deadline
		}
	}
	return d
}
