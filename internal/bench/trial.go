package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/lab"
)

// Trial is one run of one implementation under one fault.
type Trial struct {
	Impl  string        `json:"impl"`
	Fault lab.FaultKind `json:"fault"`
	// Stack is the VIPs the group floats: ipv4 (the lab's IPv4 VIP), ipv6
	// or dual (both in one group; the client requests the IPv6 one).
	Stack lab.Stack `json:"stack"`
	Trial int       `json:"trial"` // 1-based
	// Err is why the trial could not run (setup failed, the first holder
	// never appeared, ...); the other fields are then incomplete and the
	// trial is left out of the statistics.
	Err string `json:"error,omitempty"`

	FaultAt time.Time `json:"fault_at"`
	Holder  string    `json:"holder"` // the node broken at FaultAt

	// From lab.Measure: FaultAt to the first successful request after the
	// last failed one (0 when none failed).
	OutageMS  float64 `json:"outage_ms"`
	Recovered bool    `json:"recovered"`
	Failed    int     `json:"failed_requests"`
	Requests  int     `json:"requests_after_fault"`
	// FirstNewMS is when the first request answered by another node than
	// Holder was sent, after FaultAt; nil when none was.
	FirstNewMS *float64 `json:"first_new_ms,omitempty"`
	After      string   `json:"answering_after"` // node of the last successful request

	TwoHoldersMS float64 `json:"two_holders_ms"` // after FaultAt, polled every 10 ms: any VIP of the group on two nodes
	// SplitMS (dual stack): after FaultAt, how long the group's VIPs were
	// on different nodes (lab.Split); the target is 0.
	SplitMS float64 `json:"split_ms"`
	// GoneMS (crash and stop): from FaultAt to when the broken node's
	// kernel had none of the group's VIPs left; nil when it still had one
	// at the end.
	GoneMS *float64 `json:"vip_gone_ms,omitempty"`
	// Moves counts the changes of the polled holders after FaultAt (a
	// failover and its return are two); the loss faults want 0.
	Moves      int      `json:"moves"`
	HoldersEnd []string `json:"holders_end"`
	// Partition only: HealAt, and from it to exactly one holder for good
	// (nil when the trial ended with none or several).
	HealMS      *float64 `json:"heal_ms,omitempty"`
	HealToOneMS *float64 `json:"heal_to_one_ms,omitempty"`
	EndMS       float64  `json:"end_ms"` // when sampling stopped

	// HolderChanges are the polled holders, each time they changed, from
	// the client's start on (times relative to FaultAt).
	HolderChanges []HolderChange `json:"holder_changes"`

	// ClientRate is the share of the requests the client should have sent
	// after the fault (one per 5 ms until EndMS) that it did send; well below
	// 1 means the machine was too busy for the client to keep its pace and
	// the trial measured the machine, not the failover (see Disturbed).
	ClientRate float64 `json:"client_rate"`
	// Disturbed marks a trial whose ClientRate stayed below MinClientRate
	// in every attempt; Attempts counts the attempts.
	Disturbed bool `json:"disturbed,omitempty"`
	Attempts  int  `json:"attempts"`

	Samples []Point `json:"-"` // every request, for the pictures and samples.csv
	err     error
}

// HolderChange is a change of the VIP's holders, relative to the fault.
type HolderChange struct {
	MS      float64  `json:"ms"`
	Holders []string `json:"holders"`
}

// Point is one client request relative to the fault.
type Point struct {
	MS   float64 // send time minus FaultAt
	OK   bool
	Node string // answering node, when OK
	Err  string // why it failed
}

func (t Trial) brief() string {
	if t.Err != "" {
		return "ERROR " + t.Err
	}
	var b strings.Builder
	if t.Disturbed {
		fmt.Fprintf(&b, "DISTURBED (the client sent only %.0f%% of its requests in each of %d attempts) ", 100*t.ClientRate, t.Attempts)
	}
	if t.Failed == 0 {
		b.WriteString("outage 0 ms (no request failed)")
	} else if t.Recovered {
		fmt.Fprintf(&b, "outage %.0f ms", t.OutageMS)
	} else {
		fmt.Fprintf(&b, "outage >= %.0f ms (never recovered)", t.OutageMS)
	}
	fmt.Fprintf(&b, ", %d failed", t.Failed)
	if t.TwoHoldersMS > 0 {
		fmt.Fprintf(&b, ", two holders %.0f ms", t.TwoHoldersMS)
	}
	if t.Stack == lab.StackDual {
		fmt.Fprintf(&b, ", v4/v6 apart %.0f ms", t.SplitMS)
	}
	if t.Fault == lab.FaultCrash {
		if t.GoneMS != nil {
			fmt.Fprintf(&b, ", VIP gone from %s after %.0f ms", t.Holder, *t.GoneMS)
		} else {
			fmt.Fprintf(&b, ", VIP still on %s at the end", t.Holder)
		}
	}
	if _, loss := LossFaults[t.Fault]; loss || t.Moves > 0 {
		fmt.Fprintf(&b, ", %d holder changes", t.Moves)
	}
	if t.HealToOneMS != nil {
		fmt.Fprintf(&b, ", heal->one holder %.0f ms", *t.HealToOneMS)
	} else if t.Fault == lab.FaultPartition {
		b.WriteString(", no single holder after the heal")
	}
	fmt.Fprintf(&b, ", holders at end: %s", orNone(t.HoldersEnd))
	return b.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func msOf(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}

func ptr(f float64) *float64 { return &f }

type runner struct {
	cfg     Config
	mu      sync.Mutex
	started map[int]bool // keepalived pids started by this run
}

func (r *runner) noteStarted(pids []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started == nil {
		r.started = map[int]bool{}
	}
	for _, p := range pids {
		r.started[p] = true
	}
}

// trial runs one trial on a fresh lab and tears the lab down.
// A trial whose client sent fewer than MinClientRate of its requests is run
// again, up to Attempts times in all; the last attempt counts.
const (
	MinClientRate = 0.9
	Attempts      = 3
)

func (r *runner) trial(ctx context.Context, im Impl, fault lab.FaultKind, stack lab.Stack, n int) Trial {
	var t Trial
	for attempt := 1; ; attempt++ {
		t = Trial{Impl: im.Name, Fault: fault, Stack: stack, Trial: n, Attempts: attempt}
		err := r.runTrial(ctx, im, fault, &t)
		if err != nil {
			t.Err = err.Error()
			t.err = err
			return t
		}
		if t.ClientRate >= MinClientRate {
			return t
		}
		if attempt == Attempts {
			t.Disturbed = true
			return t
		}
		fmt.Fprintf(r.cfg.Progress, "%s %s trial %d: the client sent only %.0f%% of its requests (the machine is busy); running it again\n",
			im.Name+stackTag(stack), fault, n, 100*t.ClientRate)
	}
}

// daemons are the implementation's processes, by node name.
type daemons map[string]*lab.Proc

func (r *runner) runTrial(ctx context.Context, im Impl, fault lab.FaultKind, t *Trial) (err error) {
	// Every trial of a run that measures IPv6 runs on a lab with IPv6, the
	// IPv4 ones too: the same lab for every row.
	l, err := lab.Up(ctx, lab.WithIPv6(lab.Options{Prefix: r.cfg.Prefix, Nodes: r.cfg.Nodes, Binary: r.cfg.Binary}, r.cfg.needIPv6()))
	if err != nil {
		return err
	}
	var kdir string
	var kpids []int
	defer func() {
		derr := l.Down()
		// Keepalived must be gone with the lab; check its processes by pid.
		var alive []string
		// A process killed a moment ago may still be exiting: give it time.
		for _, pid := range kpids {
			if !waitGone(pid, 2*time.Second) {
				killPid(pid)
				alive = append(alive, strconv.Itoa(pid))
			}
		}
		if kdir != "" {
			os.RemoveAll(kdir)
		}
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("%w: tearing down: %v", errLeftover, derr))
		}
		if len(alive) > 0 {
			err = errors.Join(err, fmt.Errorf("%w: keepalived pids %s survived the teardown", errLeftover, strings.Join(alive, ", ")))
		}
	}()

	vips, err := l.StackVIPs(t.Stack)
	if err != nil {
		return err
	}
	target, err := l.Target(t.Stack)
	if err != nil {
		return err
	}
	nodes := l.Nodes()
	for _, nd := range nodes {
		if _, err := nd.StartService(ctx); err != nil {
			return err
		}
	}
	// The service fault needs the daemons to check the service.
	var floatipExtra []string
	var keepalivedCheck string
	if fault == lab.FaultService {
		checks, err := lab.WriteServiceChecks()
		if err != nil {
			return err
		}
		defer os.Remove(checks)
		floatipExtra = []string{"--config", checks}
		keepalivedCheck = l.Binary + " lab httpcheck --url " + lab.ServiceURL + " --timeout 500ms"
	}

	authConfig := func(*lab.Node) ([]string, error) { return floatipExtra, nil }
	if im.Auth {
		dir, err := os.MkdirTemp("", "floatip-bench-auth-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if authConfig, err = authConfigs(dir, floatipExtra); err != nil {
			return err
		}
	}

	ds := daemons{}
	start := func(nd *lab.Node) error {
		var p *lab.Proc
		var err error
		switch im.Kind {
		case KindFloatip:
			var extra []string
			if extra, err = authConfig(nd); err != nil {
				return err
			}
			p, err = nd.StartFloatipVIPs(ctx, vips, append([]string{"--priority", strconv.Itoa(Priority(nd.Index)), "--profile", im.Profile}, extra...)...)
		case KindKeepalived:
			if kdir == "" {
				if kdir, err = os.MkdirTemp("", "floatip-bench-keepalived-"); err != nil {
					return err
				}
			}
			p, err = startKeepalived(ctx, r.cfg.Keepalived, kdir, nd, im.Advert, vips, keepalivedCheck)
			if p != nil {
				kpids = append(kpids, p.Pid())
				r.noteStarted([]int{p.Pid()})
			}
		default:
			return fmt.Errorf("unknown implementation kind %q", im.Kind)
		}
		if err != nil {
			return err
		}
		ds[nd.Name] = p
		return nil
	}

	// The highest priority first, alone, so it becomes the holder; then the
	// others, each waited for until it runs as a backup.
	first := nodes[0]
	if err := start(first); err != nil {
		return err
	}
	if _, err := l.WaitGroupHolders(ctx, vips, lab.HeldBy(first.Name), StartLimit, ds.procs()...); err != nil {
		return fmt.Errorf("waiting for %s to hold the VIP: %w", first.Name, err)
	}
	for _, nd := range nodes[1:] {
		if err := start(nd); err != nil {
			return err
		}
		if err := waitBackup(ctx, im, ds[nd.Name]); err != nil {
			return err
		}
	}
	if im.Kind == KindKeepalived {
		for _, p := range ds {
			kids := groupPids(p.Pid())
			kpids = append(kpids, kids...)
			r.noteStarted(kids)
		}
	}
	if _, err := l.WaitGroupHolders(ctx, vips, lab.HeldBy(first.Name), StartLimit, ds.procs()...); err != nil {
		return fmt.Errorf("waiting for %s alone to hold the VIP: %w", first.Name, err)
	}

	client, err := l.StartClient(ctx, lab.ClientOptions{Target: target, Every: clientEvery, Timeout: r.cfg.ClientTimeout})
	if err != nil {
		return err
	}
	if _, err := client.WaitSample(ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK }); err != nil {
		return fmt.Errorf("the client never got an answer from the VIP: %w", err)
	}
	poll := l.RecordGroup(ctx, vips)
	defer poll.Stop()

	if err := lab.Sleep(ctx, Settle); err != nil {
		return err
	}
	if per, err := l.HoldersOf(vips); err != nil {
		return err
	} else if slices.ContainsFunc(per, func(h []string) bool { return !slices.Equal(h, []string{first.Name}) }) {
		return fmt.Errorf("before the fault the holders are %s, not %s", lab.FormatGroupObs(vips, lab.GroupObs{Holders: per}), first.Name)
	}

	if err := faultPhase(ctx, t.Impl, string(t.Fault), t.Trial); err != nil {
		return err
	}
	// T0.
	t.Holder = first.Name
	faultAt := time.Now()
	var healAt time.Time
	type heal struct {
		at  time.Time
		err error
	}
	healed := make(chan heal, 1)
	lossPct, loss := LossFaults[fault]
	if loss {
		err = first.Inject(lab.Fault{Kind: lab.FaultLoss, LossPercent: lossPct})
	} else {
		err = first.Inject(lab.Fault{Kind: fault})
	}
	if fault == lab.FaultPartition {
		healTimer := time.AfterFunc(PartitionFor, func() {
			at := time.Now()
			healed <- heal{at, first.Heal(ctx, lab.FaultPartition)}
		})
		defer healTimer.Stop()
	}
	t.FaultAt = faultAt
	if err != nil {
		return err
	}

	// Sample until the client recovered (a request answered by another node)
	// and Tail more; a crash at least CrashWindow. A partition: until Tail
	// after the heal, after the first answer after the heal, and until a
	// second after a single holder is back.
	var end time.Time
	switch {
	case loss:
		// Nothing fails: watch the whole loss, heal, and watch Tail more.
		if err := lab.Sleep(ctx, LossFor); err != nil {
			return err
		}
		if err := first.Heal(ctx, lab.FaultLoss); err != nil {
			return fmt.Errorf("heal %s: %w", first.Name, err)
		}
		end = time.Now().Add(Tail)
	case fault != lab.FaultPartition:
		end = faultAt.Add(RecoverLimit)
		if s, werr := client.WaitSample(ctx, RecoverLimit, func(s lab.Sample) bool {
			return s.OK && !s.At.Before(faultAt) && s.Node != first.Name
		}); werr == nil {
			end = s.At.Add(Tail)
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		if fault == lab.FaultCrash {
			end = later(end, faultAt.Add(CrashWindow))
		}
	default:
		select {
		case h := <-healed:
			if h.err != nil {
				return fmt.Errorf("heal %s: %w", first.Name, h.err)
			}
			healAt = h.at
		case <-ctx.Done():
			return ctx.Err()
		}
		end = healAt.Add(Tail)
		if s, werr := client.WaitSample(ctx, RecoverLimit, func(s lab.Sample) bool {
			return s.OK && !s.At.Before(healAt)
		}); werr == nil {
			end = later(end, s.At.Add(Tail))
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else {
			end = later(end, healAt.Add(RecoverLimit))
		}
		if _, werr := l.WaitGroupHolders(ctx, vips, lab.ExactlyOne, RecoverLimit); werr == nil {
			end = later(end, time.Now().Add(time.Second))
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := lab.Sleep(ctx, time.Until(end)); err != nil {
		return err
	}
	samples := client.Stop()
	endAt := time.Now()
	group := poll.Stop()
	// The target's holders stand for the group in the fields a single VIP
	// had (holder changes, holders at the end, heal to one holder); the
	// group's own measures come from every VIP.
	obs := lab.Series(group, len(vips)-1)

	res := lab.Measure(samples, faultAt)
	t.OutageMS = msOf(res.Outage)
	t.Recovered = res.Recovered
	t.Failed = res.Failed
	t.After = res.After
	for _, s := range samples {
		if !s.At.Before(faultAt) {
			t.Requests++
			if s.OK && s.Node != first.Name && t.FirstNewMS == nil {
				t.FirstNewMS = ptr(msOf(s.At.Sub(faultAt)))
			}
		}
		t.Samples = append(t.Samples, Point{MS: msOf(s.At.Sub(faultAt)), OK: s.OK, Node: s.Node, Err: s.Err})
	}
	t.TwoHoldersMS = msOf(TwoHolderTimeGroup(group, faultAt, endAt))
	if len(vips) > 1 {
		t.SplitMS = msOf(lab.SplitTime(group, faultAt, endAt))
	}
	if fault == lab.FaultCrash || fault == lab.FaultStop {
		if at, ok := lab.GoneAt(group, first.Name, faultAt); ok {
			t.GoneMS = ptr(msOf(at.Sub(faultAt)))
		}
	}
	if len(obs) > 0 {
		t.HoldersEnd = obs[len(obs)-1].Holders
	}
	if t.HoldersEnd == nil {
		t.HoldersEnd = []string{}
	}
	if !healAt.IsZero() {
		t.HealMS = ptr(msOf(healAt.Sub(faultAt)))
		if at, ok := SettledAt(obs, healAt); ok {
			t.HealToOneMS = ptr(msOf(at.Sub(healAt)))
		}
	}
	t.EndMS = msOf(endAt.Sub(faultAt))
	t.ClientRate = clientRate(t.Requests, endAt.Sub(faultAt), clientEvery)
	var last []string
	for i, o := range obs {
		if i == 0 || !slices.Equal(o.Holders, last) {
			t.HolderChanges = append(t.HolderChanges, HolderChange{MS: msOf(o.At.Sub(faultAt)), Holders: o.Holders})
			if i > 0 && o.At.After(faultAt) {
				t.Moves++
			}
			last = o.Holders
		}
	}
	return nil
}

// stackTag is " (IPv6)" for the progress lines of a non-IPv4 trial.
func stackTag(s lab.Stack) string {
	if s == "" || s == lab.StackIPv4 {
		return ""
	}
	return " (" + s.Label() + ")"
}

// faultPhase sleeps a uniformly drawn part of the client's request
// interval before a fault. The steps before a fault take about the same
// time in every trial, so without it each fault came at about the same
// point of the client's cycle: a plain stop's handover always fell 2.5-5 ms
// after a request was sent, in the quiet half of the cycle, and never met
// the requests that its sub-millisecond gap can catch (0 failed in 28
// trials), while the quorum stop, whose handover follows etcd round
// trips, came at any point and lost one request in about a third of its
// trials. Seeded by the trial, so that a rerun draws the same offsets.
func faultPhase(ctx context.Context, impl, fault string, trial int) error {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%d", impl, fault, trial)
	r := rand.New(rand.NewPCG(h.Sum64(), 0))
	return lab.Sleep(ctx, time.Duration(r.Int64N(int64(clientEvery))))
}

// clientEvery is the client's request interval.
const clientEvery = 5 * time.Millisecond

// clientRate is sent requests over those due in d at one per every, rounded
// to 0.01; 1 for d too short to judge.
func clientRate(sent int, d, every time.Duration) float64 {
	due := float64(d) / float64(every)
	if due < 10 {
		return 1
	}
	return math.Round(float64(sent)/due*100) / 100
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// authConfigs writes a key into dir and returns, per node, the arguments
// of a configuration file with auth on (the node's own sequence file)
// plus what extra's --config file holds (the service check).
func authConfigs(dir string, extra []string) (func(*lab.Node) ([]string, error), error) {
	k, err := auth.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "key")
	if err := auth.WriteKeyFile(key, k, false); err != nil {
		return nil, err
	}
	var base []byte
	if len(extra) == 2 && extra[0] == "--config" {
		if base, err = os.ReadFile(extra[1]); err != nil {
			return nil, err
		}
	}
	return func(nd *lab.Node) ([]string, error) {
		path := filepath.Join(dir, nd.Name+".yaml")
		cfg := fmt.Sprintf("%sauth:\n  key_file: %s\n  sequence_file: %s\n", base, key, filepath.Join(dir, "seq-"+nd.Name))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		return []string{"--config", path}, nil
	}, nil
}

// waitBackup waits until a daemon started after the holder runs as a backup:
// floatip logs a state change to standby, keepalived "Entering BACKUP STATE".
func waitBackup(ctx context.Context, im Impl, p *lab.Proc) error {
	var err error
	switch im.Kind {
	case KindFloatip:
		_, err = p.WaitMsg(ctx, StartLimit, "state changed", func(l lab.Line) bool { return l.Str("to") == "standby" })
	case KindKeepalived:
		_, err = p.WaitLine(ctx, StartLimit, func(l lab.Line) bool { return strings.Contains(l.Text, "Entering BACKUP STATE") })
	}
	if err != nil {
		return fmt.Errorf("waiting for %s to run as a backup: %w", p.Name, err)
	}
	return nil
}

// procs are the daemons in node order.
func (ds daemons) procs() []*lab.Proc {
	names := make([]string, 0, len(ds))
	for name := range ds {
		names = append(names, name)
	}
	slices.Sort(names)
	var ps []*lab.Proc
	for _, name := range names {
		ps = append(ps, ds[name])
	}
	return ps
}
