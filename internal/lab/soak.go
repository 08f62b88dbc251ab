package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/floatip/floatip/internal/config"
)

// SoakKinds are the faults the soak draws from: all of them but those
// that need the lab's etcd (the soak runs none).
var SoakKinds = slices.DeleteFunc(slices.Clone(FaultKinds), func(k FaultKind) bool {
	return k == FaultEtcdCut || k == FaultQuorumLost
})

// SoakOptions configures RunSoak.
type SoakOptions struct {
	Duration time.Duration // of the faulty part; default 30 min
	Seed     uint64        // the run is replayed by its seed
	Nodes    int           // default 3
	Profile  string        // floatip's --profile; default "default"
	Every    time.Duration // about one fault every so often (±25 %); default 20 s
	Settle   time.Duration // healed time at the end; default 60 s
	Kinds    []FaultKind   // the faults to draw from; default SoakKinds
	Prefix   string        // namespace prefix; default "fsoak"
	Binary   string        // see Options.Binary
	Out      io.Writer     // progress and the report; nil discards
	OutDir   string        // where soak-seed-N.json goes; "" writes none
	// FlickerGrace tolerates two-holder stretches shorter than it (see
	// SoakInput.FlickerGrace); zero, the default, tolerates none.
	FlickerGrace time.Duration
}

// SoakHolderShare is the share of faults aimed at the holder.
const SoakHolderShare = 0.75

// SoakMetricsAddr is where each daemon serves its metrics, on its own
// namespace's loopback.
const SoakMetricsAddr = "127.0.0.1:9110"

// soakCheckFail is how long the lab's health check takes to call a dead
// service unhealthy (WriteServiceChecks: every 100 ms, fall 2).
const soakCheckFail = 2 * 100 * time.Millisecond

// ErrSoakFailed is RunSoak's error when an invariant broke; the report says
// which.
var ErrSoakFailed = errors.New("the soak found invariant violations")

// RunSoak is `floatip lab soak`: a lab with floatip on every node and the
// client on the VIP, seeded random faults one at a time (most of them on the
// holder), each healed after a random hold, then Settle healed; it watches
// the kernel's address state in every node namespace (netlink address
// events, one clock), the daemons' logged states, the client, and the
// daemons' goroutines and memory, and returns the report. The error is
// ErrSoakFailed when an invariant broke (the report is complete then too).
func RunSoak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	if o.Duration == 0 {
		o.Duration = 30 * time.Minute
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Profile == "" {
		o.Profile = config.ProfileDefault
	}
	if o.Every == 0 {
		o.Every = 20 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 60 * time.Second
	}
	if len(o.Kinds) == 0 {
		o.Kinds = SoakKinds
	}
	if o.Prefix == "" {
		o.Prefix = "fsoak"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Nodes < 2 {
		return nil, fmt.Errorf("--nodes %d: the soak needs at least 2 nodes", o.Nodes)
	}
	if o.Every < 2*time.Second {
		return nil, fmt.Errorf("--every %s: want at least 2s (a fault, its hold and its heal)", o.Every)
	}
	timing, err := config.Preset(o.Profile)
	if err != nil {
		return nil, fmt.Errorf("--profile: %w", err)
	}
	for _, k := range o.Kinds {
		if !slices.Contains(FaultKinds, k) {
			return nil, fmt.Errorf("fault %q: want one of %s", k, FaultKindNames())
		}
	}
	s := &soak{o: o, timing: timing, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	s.bounds = ComputeBounds(timing, o.Nodes, soakCheckFail)
	s.printf("soak: seed %d (replay with --seed %d), profile %s, %d nodes, %s of faults about every %s, then %s healed\n",
		o.Seed, o.Seed, o.Profile, o.Nodes, o.Duration, o.Every, o.Settle)
	s.printBounds()

	l, err := Up(ctx, Options{Prefix: o.Prefix, Nodes: o.Nodes, Binary: o.Binary, Progress: o.Out})
	if err != nil {
		return nil, err
	}
	s.l = l
	defer func() {
		if err := l.Down(); err != nil {
			s.printf("tearing down: %v\n", err)
		}
	}()
	rep, err := s.run(ctx)
	if rep != nil {
		rep.Seed, rep.Profile, rep.Nodes = o.Seed, o.Profile, o.Nodes
		rep.Duration, rep.Every, rep.Settle = o.Duration, o.Every, o.Settle
		for _, k := range FaultKinds {
			if !slices.Contains(o.Kinds, k) {
				rep.Skipped = append(rep.Skipped, string(k))
			}
		}
		rep.Print(o.Out)
		if o.OutDir != "" {
			if werr := writeReport(o.OutDir, rep); werr != nil {
				err = errors.Join(err, werr)
			} else {
				s.printf("report written to %s\n", filepath.Join(o.OutDir, reportName(o.Seed)))
			}
		}
	}
	if err == nil && rep != nil && !rep.OK() {
		err = ErrSoakFailed
	}
	return rep, err
}

func reportName(seed uint64) string { return fmt.Sprintf("soak-seed-%d.json", seed) }

func writeReport(dir string, r *SoakReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, reportName(r.Seed)), append(b, '\n'), 0o644)
}

type soak struct {
	o      SoakOptions
	timing config.Timing
	bounds SoakBounds
	rng    *rand.Rand
	l      *Lab
	watch  *addrWatch

	mu     sync.Mutex
	outMu  sync.Mutex
	runs   []*soakRun
	faults []SoakFault
}

// soakRun is a daemon process and what became of it.
type soakRun struct {
	node     string
	proc     *Proc
	start    time.Time
	end      time.Time // set by its watcher
	expected bool      // a fault is about to end it
}

func (s *soak) printf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.o.Out, format, args...)
}

func (s *soak) printBounds() {
	b := s.bounds
	s.printf("bounds (profile %s: detect = %d misses x %s + %d x claim slot %s = %s; lifetime %s; margin %s):\n",
		s.o.Profile, s.timing.Misses, s.timing.CheckInterval, s.o.Nodes-1, s.timing.ClaimSlot, b.Detect, s.timing.Lifetime, BoundMargin)
	var parts []string
	for _, k := range FaultKinds {
		parts = append(parts, fmt.Sprintf("%s %d ms", k, b.NoHolder[k].Milliseconds()))
	}
	s.printf("  no holder at most: %s; no fault %d ms\n", strings.Join(parts, ", "), b.Quiet.Milliseconds())
	s.printf("  converge after the final heal within %d ms; two holders only during partitions and %s after their heal; daemon/kernel disagreement at most %s\n",
		b.Converge.Milliseconds(), PartitionHealGrace, DisagreeGrace)
}

// track records the node's current daemon as a run and watches for its end.
func (s *soak) track(n *Node) {
	p := n.Daemon()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.runs {
		if r.proc == p {
			return
		}
	}
	r := &soakRun{node: n.Name, proc: p, start: time.Now()}
	s.runs = append(s.runs, r)
	go func() {
		<-p.Done()
		s.mu.Lock()
		r.end = time.Now()
		s.mu.Unlock()
	}()
}

// expectExit marks the node's running daemon as about to be ended by a fault.
func (s *soak) expectExit(n *Node) {
	p := n.Daemon()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.runs {
		if r.proc == p {
			r.expected = true
		}
	}
}

func (s *soak) writeConfig() (string, error) {
	f, err := os.CreateTemp("", "floatip-soak-*.yaml")
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "checks:\n  - name: http\n    http: {url: %q}\n    interval: 100ms\n    timeout: 100ms\n    fall: 2\n    rise: 2\nmetrics:\n  listen: %q\n",
		ServiceURL, SoakMetricsAddr)
	err = errors.Join(err, f.Close(), os.Chmod(f.Name(), 0o644))
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (s *soak) run(ctx context.Context) (*SoakReport, error) {
	l := s.l
	nodes := l.Nodes()
	watch, err := watchAddrs(ctx, l)
	if err != nil {
		return nil, err
	}
	s.watch = watch
	defer watch.stop()
	auditCtx, stopAudit := context.WithCancel(ctx)
	auditDone := make(chan struct{})
	go func() { defer close(auditDone); watch.audit(auditCtx, l) }()
	defer func() { stopAudit(); <-auditDone }()

	for _, n := range nodes {
		if _, err := n.StartService(ctx); err != nil {
			return nil, err
		}
	}
	cfg, err := s.writeConfig()
	if err != nil {
		return nil, err
	}
	defer os.Remove(cfg)
	for i, n := range nodes {
		if _, err := n.StartFloatip(ctx, "--priority", strconv.Itoa(Priority(i+1, len(nodes))), "--profile", s.o.Profile, "--config", cfg); err != nil {
			return nil, err
		}
		s.track(n)
	}
	var daemons []*Proc
	for _, n := range nodes {
		daemons = append(daemons, n.Daemon())
	}
	if _, err := l.WaitHolders(ctx, ExactlyOne, 15*time.Second, daemons...); err != nil {
		return nil, err
	}
	total := s.o.Duration + s.o.Settle + time.Minute
	client, err := l.StartClient(ctx, ClientOptions{Duration: total})
	if err != nil {
		return nil, err
	}
	defer client.Stop()
	if _, err := client.WaitSample(ctx, 5*time.Second, func(x Sample) bool { return x.OK }); err != nil {
		return nil, fmt.Errorf("the client never got an answer from the VIP: %w", err)
	}
	start := time.Now()
	growth := make([]DaemonGrowth, len(nodes))
	startPids := make([]int, len(nodes))
	for i, n := range nodes {
		growth[i] = DaemonGrowth{Node: n.Name, GoroutinesStart: -1, GoroutinesEnd: -1}
		// The metrics endpoint may take a moment after the start.
		for try := 0; try < 20 && growth[i].GoroutinesStart < 0; try++ {
			growth[i].GoroutinesStart = goroutines(ctx, n)
			if growth[i].GoroutinesStart < 0 {
				_ = Sleep(ctx, 100*time.Millisecond)
			}
		}
		startPids[i] = n.Daemon().Pid()
		growth[i].RSSStartKB = rssKB(startPids[i])
	}
	s.printf("\n%s  soak started: %s holds the VIP; client requests it every 5 ms\n", clock(start), noneOr(mustHolders(l)))

	// The faults, one at a time.
	deadline := start.Add(s.o.Duration)
	next := start.Add(s.jitter(s.o.Every))
	var runErr error
	for next.Before(deadline) {
		if err := sleepUntil(ctx, next); err != nil {
			runErr = err
			break
		}
		slot := s.jitter(s.o.Every)
		if err := s.oneFault(ctx, start, slot); err != nil {
			runErr = err
			break
		}
		next = next.Add(slot)
	}
	if runErr == nil {
		s.printf("%s  +%s  all faults healed; %s without faults\n", clock(time.Now()), since(start), s.o.Settle)
		runErr = Sleep(ctx, s.o.Settle)
	}
	end := time.Now()
	for i, n := range nodes {
		d := n.Daemon()
		growth[i].GoroutinesEnd = goroutines(ctx, n)
		growth[i].RSSEndKB = rssKB(d.Pid())
		growth[i].SameProcess = d.Pid() == startPids[i]
	}
	samples := client.Stop()
	s.watch.stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if runErr != nil {
		return nil, runErr
	}
	in := s.input(start, end, samples, growth)
	rep := Analyze(in)
	if s.o.OutDir != "" {
		if err := s.writeLogs(); err != nil {
			return nil, err
		}
	}
	return &rep, nil
}

// input gathers the observations for Analyze.
func (s *soak) input(start, end time.Time, samples []Sample, growth []DaemonGrowth) SoakInput {
	in := SoakInput{Start: start, End: end, Kernel: s.watch.observations(), Samples: samples, Growth: growth, Bounds: s.bounds, FlickerGrace: s.o.FlickerGrace}
	s.watch.mu.Lock()
	for _, e := range s.watch.errs {
		in.WatchErrs = append(in.WatchErrs, e.Error())
	}
	s.watch.mu.Unlock()
	for _, n := range s.l.Nodes() {
		in.Nodes = append(in.Nodes, n.Name)
	}
	s.mu.Lock()
	in.Faults = slices.Clone(s.faults)
	runs := slices.Clone(s.runs)
	s.mu.Unlock()
	for _, r := range runs {
		d := DaemonRun{Node: r.node, Pid: r.proc.Pid(), Start: r.start, Expected: r.expected}
		s.mu.Lock()
		d.End = r.end
		s.mu.Unlock()
		if !d.End.IsZero() && d.End.After(end) {
			d.End = time.Time{} // ended by the teardown
		}
		if !d.End.IsZero() {
			if err := r.proc.Wait(); err != nil {
				d.ExitErr = err.Error()
			} else {
				d.ExitErr = "exit 0"
			}
		}
		in.Runs = append(in.Runs, d)
		for _, line := range r.proc.Lines() {
			if strings.Contains(line.Text, "panic:") || strings.Contains(line.Text, "fatal error:") {
				in.Panics = append(in.Panics, r.node+": "+line.Text)
			}
			if line.Msg() == "state changed" {
				in.States = append(in.States, StateObs{At: line.Time(), Node: r.node, State: line.Str("to")})
			}
		}
	}
	slices.SortStableFunc(in.States, func(a, b StateObs) int { return a.At.Compare(b.At) })
	return in
}

// writeLogs writes each node's daemon output (every run in turn) and the
// faults next to the report: soak-seed-N-n1.log, ...
func (s *soak) writeLogs() error {
	if err := os.MkdirAll(s.o.OutDir, 0o755); err != nil {
		return err
	}
	s.mu.Lock()
	runs := slices.Clone(s.runs)
	s.mu.Unlock()
	files := map[string]*strings.Builder{}
	for _, r := range runs {
		b := files[r.node]
		if b == nil {
			b = &strings.Builder{}
			files[r.node] = b
		}
		fmt.Fprintf(b, "# %s pid %d started %s\n", r.node, r.proc.Pid(), r.start.Format(time.RFC3339Nano))
		for _, line := range r.proc.Lines() {
			b.WriteString(line.Text)
			b.WriteByte('\n')
		}
	}
	for node, b := range files {
		name := filepath.Join(s.o.OutDir, fmt.Sprintf("soak-seed-%d-%s.log", s.o.Seed, node))
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// jitter is d ±25 %.
func (s *soak) jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*s.rng.Float64()))
}

// between is a random duration in [lo, hi].
func (s *soak) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// oneFault draws a fault, injects it, holds it and heals it, within slot.
func (s *soak) oneFault(ctx context.Context, start time.Time, slot time.Duration) error {
	l := s.l
	nodes := l.Nodes()
	kind := s.o.Kinds[s.rng.IntN(len(s.o.Kinds))]
	holders, _ := l.Holders()
	var target *Node
	onHolder := false
	if len(holders) == 1 && s.rng.Float64() < SoakHolderShare {
		target, onHolder = l.NodeByName(holders[0]), true
	} else {
		target = nodes[s.rng.IntN(len(nodes))]
		onHolder = slices.Contains(holders, target.Name)
	}
	f := Fault{Kind: kind}
	maxHold := max(time.Second, slot*6/10)
	hold := s.between(time.Second, maxHold)
	switch kind {
	case FaultLoss:
		f.LossPercent = 5 + s.rng.IntN(46)
	case FaultFreeze:
		hold = s.between(s.timing.Lifetime/2, 2*s.timing.Lifetime)
	}
	switch kind {
	case FaultPowerOff, FaultStop, FaultCrash:
		s.expectExit(target)
	}
	sf := SoakFault{Kind: kind, Node: target.Name, LossPercent: f.LossPercent, OnHolder: onHolder, At: time.Now(), Hold: hold}
	role := "standby"
	if onHolder {
		role = "holder"
	}
	s.printf("%s  +%s  %-16s on %s (%s), held %s\n", clock(sf.At), since(start), f, target.Name, role, hold.Round(time.Millisecond))
	ierr := target.Inject(f)
	if ierr != nil {
		sf.Err = ierr.Error()
		s.printf("    inject failed: %v\n", ierr)
	}
	s.addFault(sf)
	if err := Sleep(ctx, hold); err != nil {
		return err
	}
	if ierr == nil {
		herr := target.Heal(ctx, kind)
		s.mu.Lock()
		s.faults[len(s.faults)-1].HealAt = time.Now()
		if herr != nil {
			s.faults[len(s.faults)-1].Err = herr.Error()
		}
		s.mu.Unlock()
		if herr != nil {
			s.printf("    heal failed: %v\n", herr)
		}
	}
	// A daemon that died without a fault: note it and start it again, as
	// systemd would.
	for _, n := range nodes {
		if d := n.Daemon(); d != nil && d.Exited() && !n.PoweredOff() {
			s.printf("    %s: daemon exited unexpectedly (%v); last output: %s; restarting it\n", n.Name, d.Wait(), d.Tail(3))
			if err := n.restartDaemon(ctx); err != nil {
				return err
			}
		}
		if n.Daemon() != nil {
			s.track(n)
		}
	}
	return nil
}

func (s *soak) addFault(f SoakFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

func mustHolders(l *Lab) []string {
	h, _ := l.Holders()
	return h
}

func since(start time.Time) string {
	return fmt.Sprintf("%6.1fs", time.Since(start).Seconds())
}

func sleepUntil(ctx context.Context, t time.Time) error {
	return Sleep(ctx, time.Until(t))
}

// rssKB is VmRSS of pid in kB, -1 when unknown.
func rssKB(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// goroutines reads go_goroutines from the node's daemon's metrics endpoint
// on the node's own loopback; -1 when it cannot.
func goroutines(ctx context.Context, n *Node) int {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return n.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+SoakMetricsAddr+"/metrics", nil)
	if err != nil {
		return -1
	}
	resp, err := hc.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return int(f)
			}
		}
	}
	return -1
}

// addrWatch follows the VIP on every node's interfaces through netlink
// address events (one subscription per namespace, listing the existing
// addresses first), stamping each change on the soak's clock.
type addrWatch struct {
	vip   string
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	has   map[string]bool
	names []string
	obs   []HolderObs
	errs  []error
}

func watchAddrs(ctx context.Context, l *Lab) (*addrWatch, error) {
	w := &addrWatch{vip: l.VIP.String(), done: make(chan struct{}), has: map[string]bool{}}
	for _, n := range l.Nodes() {
		w.names = append(w.names, n.Name)
		nsh, err := netns.GetFromName(n.NS)
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("lab: soak: namespace %s: %w", n.NS, err)
		}
		ch := make(chan netlink.AddrUpdate, 1024)
		err = netlink.AddrSubscribeWithOptions(ch, w.done, netlink.AddrSubscribeOptions{
			Namespace:         &nsh,
			ListExisting:      true,
			ReceiveBufferSize: 1 << 20,
			ErrorCallback: func(err error) {
				w.mu.Lock()
				w.errs = append(w.errs, fmt.Errorf("%s: %w", n.Name, err))
				w.mu.Unlock()
			},
		})
		nsh.Close()
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("lab: soak: address events in %s: %w", n.NS, err)
		}
		go func() {
			for u := range ch {
				if u.LinkAddress.IP.String() != w.vip {
					continue
				}
				w.set(n.Name, u.NewAddr, time.Now())
			}
		}()
	}
	w.mu.Lock()
	w.obs = append(w.obs, HolderObs{At: time.Now(), Holders: w.holdersLocked()})
	w.mu.Unlock()
	return w, nil
}

func (w *addrWatch) set(node string, has bool, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.has[node] == has {
		return // a renewal
	}
	w.has[node] = has
	w.obs = append(w.obs, HolderObs{At: at, Holders: w.holdersLocked()})
}

func (w *addrWatch) holdersLocked() []string {
	var h []string
	for _, n := range w.names {
		if w.has[n] {
			h = append(h, n)
		}
	}
	return h
}

func (w *addrWatch) observations() []HolderObs {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.obs)
}

// auditEvery is how often audit compares the watch with an address dump;
// auditRecheck how long a disagreement may last (events in flight).
const (
	auditEvery   = 250 * time.Millisecond
	auditRecheck = 250 * time.Millisecond
)

// audit checks the watch against the kernel until ctx ends: every
// auditEvery it dumps each node's addresses, and when the dump and the watch
// still disagree auditRecheck later, with the same dump, it records an
// error (reported as a violation: the figures would not be exact).
func (w *addrWatch) audit(ctx context.Context, l *Lab) {
	tick := time.NewTicker(auditEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, n := range l.Nodes() {
			has, err := n.HasVIP()
			if err != nil || has == w.holds(n.Name) {
				continue
			}
			if Sleep(ctx, auditRecheck) != nil {
				return
			}
			again, err := n.HasVIP()
			if err == nil && again == has && again != w.holds(n.Name) {
				w.mu.Lock()
				w.errs = append(w.errs, fmt.Errorf("%s: the kernel's dump says VIP present=%v at %s, the events said otherwise for over %s", n.Name, has, clock(time.Now()), auditRecheck))
				w.mu.Unlock()
			}
		}
	}
}

func (w *addrWatch) holds(node string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.has[node]
}

// stop ends the subscriptions (idempotent).
func (w *addrWatch) stop() {
	w.once.Do(func() { close(w.done) })
}
