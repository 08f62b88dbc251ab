package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DemoFaults are the faults the demo can show, in the order of its help.
var DemoFaults = []FaultKind{FaultPowerOff, FaultStop, FaultCrash, FaultPartition, FaultService}

// DemoOptions configures RunDemo.
type DemoOptions struct {
	Fault   FaultKind // what happens to the holder; one of DemoFaults (default poweroff)
	Nodes   int       // at least 2 (default 3); priorities 200, 150, 100, ...
	Profile string    // floatip's --profile (default "default")
	// Keep: afterwards start a lab to play in with the same nodes, profile
	// and prefix (UpPlay, as `floatip lab up`) and leave it running.
	Keep   bool
	Prefix string // namespace prefix (default DefaultPrefix)
	// Stack is what the group floats: the IPv4 VIP (default), the IPv6
	// one, or both (dual: the client requests the IPv6 VIP, and the demo
	// also reports how long the two were on different nodes).
	Stack  Stack
	Binary string    // see Options.Binary
	Out    io.Writer // the demo's output; nil discards it
	// SVG is where to write the picture of the run ("" for none).
	SVG string
	// Invocation is how the user runs floatip, for the hints the demo
	// prints ("floatip", "sudo go run ./cmd/floatip"); default "floatip".
	Invocation string
	// Quorum "etcd" runs a three-member etcd in the lab (one member on
	// each of the first three nodes) and gives every daemon the quorum
	// (TTL QuorumTTL); a partition then lasts 2 x QuorumTTL, so that the
	// cut-off holder's lease runs out and another node is given the key.
	// "" runs none.
	Quorum string
}

// QuorumTTL is the lease TTL of the demo's and the play lab's quorum.
const QuorumTTL = 5 * time.Second

// QuorumYAML is the floatip configuration of a quorum on the cluster's
// endpoints: `quorum: {etcd: {endpoints, ttl, prefix}}`.
func (c *EtcdCluster) QuorumYAML(ttl time.Duration, prefix string) string {
	return fmt.Sprintf("quorum:\n  etcd:\n    endpoints: [%s]\n    ttl: %s\n    prefix: %s\n", strings.Join(c.Endpoints(), ", "), ttl, prefix)
}

// startQuorum starts the lab's etcd for a quorum option ("" none) and
// returns the configuration to add to the daemons'.
func startQuorum(ctx context.Context, l *Lab, quorum string, out io.Writer) (string, error) {
	switch quorum {
	case "":
		return "", nil
	case "etcd":
	default:
		return "", fmt.Errorf("--quorum %q: want etcd", quorum)
	}
	fmt.Fprintf(out, "starting etcd, one member on each of %s... ", nodeNames(l.Nodes()[:min(3, len(l.Nodes()))]))
	c, err := l.StartEtcd(ctx, EtcdOptions{})
	if err != nil {
		fmt.Fprintf(out, "failed\n")
		return "", err
	}
	fmt.Fprintf(out, "ok (%s)\n", strings.Join(c.Endpoints(), " "))
	return c.QuorumYAML(QuorumTTL, "/floatip/"+l.Prefix), nil
}

// Timings of the demo.
const (
	DemoSettle       = 2 * time.Second  // client traffic before the fault
	DemoRecover      = 15 * time.Second // how long the client may fail
	DemoPartitionFor = 3 * time.Second
)

// ErrDemoFailed is RunDemo's error when no other node answered within
// DemoRecover of the fault; the demo has printed why.
var ErrDemoFailed = errors.New("the demo saw no failover")

// RunDemo is `floatip lab`: it builds a lab, runs floatip and the HTTP
// service on every node and the client against the VIP, breaks the holder
// and prints the failover as it happens (client, daemon logs, the holders the
// kernel shows), then a timeline and a summary, and tears the lab down (or
// keeps its namespaces). When ctx ends it prints "interrupted", tears down
// and returns ctx's error.
func RunDemo(ctx context.Context, o DemoOptions) error {
	if o.Fault == "" {
		o.Fault = FaultPowerOff
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Profile == "" {
		o.Profile = "default"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	out := o.Out
	if !slices.Contains(DemoFaults, o.Fault) {
		return fmt.Errorf("fault %q: the demo shows one of %v", o.Fault, DemoFaults)
	}
	if o.Invocation == "" {
		o.Invocation = "floatip"
	}
	if o.Nodes < 2 {
		return fmt.Errorf("--nodes %d: the demo fails the holder over to another node, so it needs 2 to %d nodes (for one node to play with: lab up --nodes 1)", o.Nodes, MaxNodes)
	}
	if o.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d: the lab has room for 2 to %d nodes (one address each, %v to %v, below the VIP)", o.Nodes, MaxNodes, NodeIP(1), NodeIP(MaxNodes))
	}
	if o.Quorum != "" && o.Nodes < 3 {
		return fmt.Errorf("--nodes %d: with --quorum the lab runs an etcd member on each of three nodes (a two-member etcd loses its quorum with the holder), so it needs 3 to %d nodes", o.Nodes, MaxNodes)
	}
	if o.Quorum != "" && o.Quorum != "etcd" {
		return fmt.Errorf("--quorum %q: want etcd", o.Quorum)
	}
	if o.Stack == "" {
		o.Stack = StackIPv4
	}
	lo, err := StackOptions(Options{Prefix: o.Prefix, Nodes: o.Nodes, Binary: o.Binary, Progress: out}, o.Stack)
	if err != nil {
		return err
	}
	l, err := Up(ctx, lo)
	if err != nil {
		return err
	}
	printMap(out, l)
	d := &demo{l: l, out: out, fault: o.Fault, stack: o.Stack, partitionFor: DemoPartitionFor}
	d.quorum, err = startQuorum(ctx, l, o.Quorum, out)
	if d.quorum != "" {
		d.partitionFor = 2 * QuorumTTL
	}
	if err == nil {
		err = d.run(ctx, o.Profile)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(out, "\ninterrupted")
	}
	if err == nil || errors.Is(err, ErrDemoFailed) {
		d.writeSVG(o.SVG)
	}
	fmt.Fprintf(out, "tearing down... ")
	if derr := l.Down(); derr != nil {
		fmt.Fprintf(out, "failed: %v\n", derr)
	} else {
		fmt.Fprintf(out, "ok\n")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.Keep && err == nil {
		fmt.Fprintf(out, "\n--keep: starting a fresh lab of %d nodes in the background to play with (log: %s)... ", o.Nodes, PlayLog(l.Prefix))
		st, kerr := UpPlay(ctx, PlayOptions{Prefix: l.Prefix, Nodes: o.Nodes, Profile: o.Profile, Binary: o.Binary, Quorum: o.Quorum, Stack: o.Stack})
		if kerr != nil {
			fmt.Fprintf(out, "failed\n")
			return kerr
		}
		fmt.Fprintf(out, "ok\n\n")
		_ = FormatPlayStatus(out, st, time.Now())
		PlayHints(out, o.Invocation, l.Prefix)
	}
	return err
}

// printMap prints the lab's layout once: nodes, client, VIP; with IPv6 each
// namespace's IPv6 address beside its IPv4 one.
func printMap(w io.Writer, l *Lab) {
	if !l.IPv6 {
		fmt.Fprintf(w, "\nthe lab: one L2 segment (bridge br0 in %s), %v\n", l.brNS, Subnet)
		for _, n := range l.Nodes() {
			fmt.Fprintf(w, "  %-6s %-13s namespace %s\n", n.Name, n.IP, n.NS)
		}
		fmt.Fprintf(w, "  %-6s %-13s namespace %s (requests the VIP)\n", "client", l.client.IP, l.client.NS)
		fmt.Fprintf(w, "  %-6s %-13s floats between the nodes\n\n", "VIP", l.VIP)
		return
	}
	fmt.Fprintf(w, "\nthe lab: one L2 segment (bridge br0 in %s, MLD snooping with a querier), %v and %v\n", l.brNS, Subnet, Subnet6)
	for _, n := range l.Nodes() {
		fmt.Fprintf(w, "  %-6s %-13s %-18s namespace %s\n", n.Name, n.IP, n.IP6, n.NS)
	}
	fmt.Fprintf(w, "  %-6s %-13s %-18s namespace %s (requests %v)\n", "client", l.client.IP, l.client.IP6, l.client.NS, clientTarget(l))
	v4, v6 := "-", "-"
	for _, v := range l.VIPs {
		if v.Is4() {
			v4 = v.String()
		} else {
			v6 = v.String()
		}
	}
	what := "floats between the nodes"
	if len(l.VIPs) > 1 {
		what = "float between the nodes together (one group)"
	}
	fmt.Fprintf(w, "  %-6s %-13s %-18s %s\n\n", "VIP", v4, v6, what)
}

// demo is one run of the failover demo.
type demo struct {
	l       *Lab
	watch   *HolderRecorder
	out     io.Writer
	fault   FaultKind
	stack   Stack
	group   *GroupRecorder   // every VIP of the group, both families
	daemons map[string]*Proc // node name -> floatip
	// quorum is the daemons' quorum configuration ("" none).
	quorum       string
	partitionFor time.Duration
	mu           sync.Mutex // serialises writes to out

	// Filled in as the run goes, for the timeline, summary and picture.
	old     string    // the holder the fault hit
	start   time.Time // the client's start
	faultAt time.Time
	healAt  time.Time // zero when the fault is not healed
	endAt   time.Time
	samples []Sample
	obs     []HolderObs
	// groupObs: a dual-stack group's readings, both families.
	groupObs []GroupObs
	ran      bool // the run got as far as the fault and its aftermath
}

func (d *demo) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, args...)
}

func (d *demo) daemonList() []*Proc {
	var ps []*Proc
	for _, p := range d.daemons {
		ps = append(ps, p)
	}
	return ps
}

func (d *demo) run(ctx context.Context, profile string) error {
	nodes := d.l.Nodes()
	d.daemons = map[string]*Proc{}

	d.printf("starting HTTP services on %s... ", nodeNames(nodes))
	for _, n := range nodes {
		if _, err := n.StartService(ctx); err != nil {
			d.printf("failed\n")
			return err
		}
	}
	d.printf("ok\n")

	// Every node checks its own HTTP service (the health check the
	// service fault exercises): every 100 ms, unhealthy after 2 failures.
	checks, err := WriteServiceChecks()
	if err != nil {
		return err
	}
	defer os.Remove(checks)
	if d.quorum != "" {
		if err := appendFile(checks, d.quorum); err != nil {
			return err
		}
	}

	var prios []string
	for i, n := range nodes {
		prio := Priority(i+1, len(nodes))
		prios = append(prios, fmt.Sprintf("%s=%d", n.Name, prio))
		p, err := n.StartFloatip(ctx, "--priority", strconv.Itoa(prio), "--profile", profile, "--config", checks)
		if err != nil {
			return err
		}
		d.daemons[n.Name] = p
	}
	q := ""
	if d.quorum != "" {
		q = fmt.Sprintf(", quorum etcd with a %s lease", QuorumTTL)
	}
	d.printf("starting floatip (profile %s, priorities %s, health check http://127.0.0.1:%d/ every 100 ms, fall 2%s)... ok\n", profile, strings.Join(prios, " "), ServicePort, q)

	// Wait for the highest priority to hold, not for any single holder: when
	// every node starts at once, a lower one may claim first and yield a
	// millisecond later, and the demo would then break a standby.
	d.printf("waiting for %s (the highest priority) to hold %s alone... ", nodes[0].Name, vipList(d.l.VIPs))
	t0 := time.Now()
	holders, err := d.l.WaitHolders(ctx, HeldBy(nodes[0].Name), DemoRecover, d.daemonList()...)
	if err != nil {
		d.printf("failed\n")
		return err
	}
	old := holders[0]
	d.printf("%s (after %s)\n", old, roundMS(time.Since(t0)))

	d.start = time.Now()
	client, err := d.l.StartClient(ctx, ClientOptions{Target: clientTarget(d.l)})
	if err != nil {
		return err
	}
	if _, err := client.WaitSample(ctx, 5*time.Second, func(s Sample) bool { return s.OK }); err != nil {
		return fmt.Errorf("the client never got an answer from the VIP: %w", err)
	}
	d.printf("client in %s requests http://%v/ every 5 ms (50 ms timeout)\n\n", d.l.ClientNode().NS, clientTarget(d.l))
	d.printf("%-12s  %-5s %-7s %8s  %s\n", "time", "seen", "nodes", "median", "client requests answered since the line before, and daemon events")

	d.watch = d.l.RecordHolders(ctx)
	defer d.watch.Stop()
	if len(d.l.VIPs) > 1 {
		d.group = d.l.RecordGroup(ctx, d.l.VIPs)
		defer d.group.Stop()
	}
	pr := newPrinter(d, client)
	prDone := make(chan struct{})
	prCtx, prStop := context.WithCancel(ctx)
	go func() { defer close(prDone); pr.loop(prCtx) }()
	stopPrinter := func() { prStop(); <-prDone }
	defer stopPrinter()

	select {
	case <-time.After(DemoSettle):
	case <-ctx.Done():
		return ctx.Err()
	}

	holder := d.l.NodeByName(old)
	faultAt := time.Now()
	healed := make(chan struct{})
	if err := d.applyFault(ctx, holder, faultAt, healed); err != nil {
		return err
	}

	_, werr := client.WaitSample(ctx, DemoRecover+d.partitionFor-DemoPartitionFor, func(s Sample) bool {
		return s.OK && !s.At.Before(faultAt) && s.Node != old
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Let the tail of the failover (and a healed partition) show.
	settle := time.Second
	if d.fault == FaultPartition {
		select {
		case <-healed:
		case <-ctx.Done():
			return ctx.Err()
		}
		settle = 2 * time.Second
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	samples := client.Stop()
	d.obs = d.watch.Stop()
	if d.group != nil {
		d.groupObs = d.group.Stop()
	}
	stopPrinter()
	end, _ := d.l.Holders()
	d.endAt = time.Now()
	d.old, d.faultAt, d.samples, d.ran = old, faultAt, samples, true

	res := Measure(samples, faultAt)
	d.printTimeline(faultAt, old, res)
	d.printSummary(old, res, samples, end, werr == nil, pr)
	if werr != nil {
		d.printf("\nFAILED: no answer from a new holder within %s of the fault\n", DemoRecover)
		return ErrDemoFailed
	}
	return nil
}

// demoWhat is how the demo announces each fault on a node.
func (d *demo) demoWhat(k FaultKind, node string) string {
	if k == FaultPartition && d.quorum != "" {
		return fmt.Sprintf("partition %s from every other host and its etcd member from the others for %s (its link stays up; with the quorum it drops the VIP before its lease can run out, and another node claims once etcd gives it the key)", node, d.partitionFor)
	}
	return demoWhat(k, node)
}

func demoWhat(k FaultKind, node string) string {
	switch k {
	case FaultPowerOff:
		return "power off " + node + " (link cut, every process killed)"
	case FaultStop:
		return "SIGTERM to floatip on " + node
	case FaultCrash:
		return "SIGKILL to floatip on " + node + " (its HTTP service stays up)"
	case FaultService:
		return "kill the HTTP service on " + node + " (floatip stays up)"
	case FaultPartition:
		return fmt.Sprintf("partition %s from every other host for %s (its link stays up, so it keeps its VIP: split brain until the heal)", node, DemoPartitionFor)
	}
	return string(k) + " on " + node
}

// applyFault injects the demo's fault on n; a partition heals after
// d.partitionFor. healed is closed once the fault is over (at once for the
// others).
func (d *demo) applyFault(ctx context.Context, n *Node, at time.Time, healed chan<- struct{}) error {
	err := n.Inject(Fault{Kind: d.fault})
	d.printf("%s  *** fault: %s\n", clock(at), d.demoWhat(d.fault, n.Name))
	if d.fault != FaultPartition {
		close(healed)
		return err
	}
	time.AfterFunc(d.partitionFor, func() {
		at := time.Now()
		if herr := n.Heal(ctx, FaultPartition); herr != nil {
			d.printf("heal %s: %v\n", n.Name, herr)
		} else {
			d.mu.Lock()
			d.healAt = at
			d.mu.Unlock()
			d.printf("%s  *** healed: %s is back on the segment\n", clock(at), n.Name)
		}
		close(healed)
	})
	return err
}

// relevant reports whether a daemon log line belongs on the timeline.
func relevant(l Line) bool {
	switch l.Msg() {
	case "state changed", "vip added", "vip removed", "announced":
		return true
	}
	lv := strings.ToUpper(l.Str("level"))
	return lv == "WARN" || lv == "ERROR"
}

// describe renders a daemon log line briefly: "state changed  vip: backup -> master (probe timeout)".
func describe(l Line) string {
	if l.Msg() == "state changed" {
		s := "state changed  "
		if g := l.Str("group"); g != "" {
			s += g + ": "
		}
		s += l.Str("from") + " -> " + l.Str("to")
		if r := l.Str("reason"); r != "" {
			s += " (" + r + ")"
		}
		return s
	}
	var keys []string
	for k := range l.Fields {
		switch k {
		case "time", "level", "msg", "node", "node_name":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := l.Msg()
	if lv := strings.ToUpper(l.Str("level")); lv == "WARN" || lv == "ERROR" {
		s = lv + " " + s
	}
	for _, k := range keys {
		s += fmt.Sprintf("  %s=%v", k, l.Fields[k])
	}
	return s
}

type event struct {
	at   time.Time
	node string
	text string
}

func (d *demo) printTimeline(faultAt time.Time, old string, r Result) {
	var evs []event
	for name, p := range d.daemons {
		for _, l := range p.Lines() {
			if l.Fields == nil || !relevant(l) || l.Time().Before(faultAt) {
				continue
			}
			evs = append(evs, event{l.Time(), name, describe(l)})
		}
	}
	for _, c := range d.watch.Changes() {
		if !c.At.Before(faultAt) {
			evs = append(evs, event{c.At, "lab", c.String()})
		}
	}
	if r.Failed > 0 {
		evs = append(evs, event{r.FirstFail.At, "client", "first failed request (" + r.FirstFail.Err + ")"})
		evs = append(evs, event{r.LastFail.At, "client", "last failed request (" + r.LastFail.Err + ")"})
	}
	if !r.FirstNew.At.IsZero() {
		evs = append(evs, event{r.FirstNew.At, "client", "first answer from " + r.FirstNew.Node})
	}
	if !r.Recovery.At.IsZero() && r.Recovery.At != r.FirstNew.At {
		evs = append(evs, event{r.Recovery.At, "client", "first answer after the last failure, from " + r.Recovery.Node})
	}
	for _, sp := range AnsweringSpans(d.samples) {
		if !sp.From.Before(faultAt) { // a change of the answering node
			evs = append(evs, event{sp.From, "client", fmt.Sprintf("answered by %s (%d requests until %+dms)", sp.Node, sp.N, sp.To.Sub(faultAt).Milliseconds())})
		}
	}
	d.mu.Lock()
	healAt := d.healAt
	d.mu.Unlock()
	if !healAt.IsZero() {
		evs = append(evs, event{healAt, old, "heal: " + string(d.fault) + " undone"})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	d.printf("\ntimeline (from the daemons' JSON logs and the client)\n")
	d.printf("  %10s  %-7s %s\n", "T0", old, "fault: "+string(d.fault)+" ("+clock(faultAt)+")")
	for _, e := range evs {
		d.printf("  %+8dms  %-7s %s\n", e.at.Sub(faultAt).Milliseconds(), e.node, e.text)
	}
}

// inFlight counts the failed requests sent before faultAt that ended (timed
// out, were reset) at or after it: the fault broke them, though Measure
// counts only requests sent after it.
func inFlight(samples []Sample, faultAt time.Time) int {
	n := 0
	for _, s := range samples {
		if !s.OK && s.At.Before(faultAt) && !s.At.Add(s.Latency).Before(faultAt) {
			n++
		}
	}
	return n
}

func (d *demo) printSummary(old string, r Result, samples []Sample, end []string, ok bool, pr *printer) {
	total, okAll, failAll := 0, 0, 0
	for _, s := range samples {
		if s.OK {
			okAll++
		} else {
			failAll++
		}
		if !s.At.Before(r.FaultAt) {
			total++
		}
	}
	ms := func(t time.Time) string { return fmt.Sprintf("%+d ms", t.Sub(r.FaultAt).Milliseconds()) }
	gaps := Gaps(samples, r.FaultAt)
	d.printf("\nsummary (times relative to the fault)\n")
	switch {
	case len(gaps) == 0 && inFlight(samples, r.FaultAt) > 0:
		d.printf("  outage           none: no request sent after the fault failed\n")
	case len(gaps) == 0:
		d.printf("  outage           none: no request failed\n")
	default:
		var longest, sum time.Duration
		for _, g := range gaps {
			longest = max(longest, g.Len)
			sum += g.Len
		}
		open := ""
		if last := gaps[len(gaps)-1]; last.Recovery.At.IsZero() {
			open = " (the last never recovered: at least)"
		}
		if len(gaps) == 1 {
			d.printf("  outage           %d ms%s (first failed to first answered request); the first failure %s after the fault\n", longest.Milliseconds(), open, ms(gaps[0].First.At))
		} else {
			d.printf("  outage           %d gaps, longest %d ms, %d ms in all%s; the first failure %s after the fault\n", len(gaps), longest.Milliseconds(), sum.Milliseconds(), open, ms(gaps[0].First.At))
			var gs []string
			for _, g := range gaps[:min(len(gaps), 4)] {
				gs = append(gs, fmt.Sprintf("%d ms from %s (%d failed)", g.Len.Milliseconds(), ms(g.First.At), g.Failed))
			}
			if len(gaps) > 4 {
				gs = append(gs, "...")
			}
			d.printf("  gaps             %s\n", strings.Join(gs, ", "))
		}
	}
	if n := inFlight(samples, r.FaultAt); n > 0 {
		d.printf("  failed requests  %d of %d sent after the fault, and %d sent before it that failed after it (in flight at the fault)\n", r.Failed, total, n)
	} else {
		d.printf("  failed requests  %d of %d sent after the fault\n", r.Failed, total)
	}
	d.printf("  client lines     %d answered, %d failed in all (the lines above add up to these)\n", okAll, failAll)
	var spans []string
	for _, sp := range AnsweringSpans(samples) {
		switch {
		case sp.To.Before(r.FaultAt):
			spans = append(spans[:0], fmt.Sprintf("%s (until %s)", sp.Node, ms(sp.To)))
		default:
			spans = append(spans, fmt.Sprintf("%s (%s to %s, %d answers)", sp.Node, ms(sp.From), ms(sp.To), sp.N))
		}
	}
	if !ok {
		spans = append(spans, "no other node")
	}
	d.printf("  answering nodes  %s\n", strings.Join(spans, " -> "))
	if two := MultiHolder(d.obs, r.FaultAt, d.endAt); two > 0 {
		d.printf("  two holders      %d ms in all (the kernel showed the VIP on more than one node)\n", two.Milliseconds())
	}
	if d.group != nil {
		apart := SplitTime(d.groupObs, r.FaultAt, d.endAt)
		d.printf("  v4 and v6 apart  %d ms (the time %v and %v were held by no common node; the group moves as one)\n", apart.Milliseconds(), d.l.VIPs[0], d.l.VIPs[1])
	}
	d.printf("  VIP holders now  %s\n", strings.Join(orNone(end), ", "))
	if len(end) > 1 {
		d.printf("  warning          more than one node holds %v\n", d.l.VIPs[0])
	}
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

// printer shows the client's progress like ping: a line when something
// changes (answering node, failures), otherwise a heartbeat line each
// second; each line counts every request answered since the line before, so
// the lines add up to the summary. Daemon log events appear as they happen.
type printer struct {
	d         *demo
	c         *Client
	next      int
	logNext   map[string]int
	watchNext int
	lastKey   string
	lastAt    time.Time
	pend      *tally // batches not shown yet, all with lastKey
}

// tally counts a stretch of client samples.
type tally struct {
	ok, fail int
	nodes    map[string]int
	errs     map[string]int
	lat      []time.Duration
	at       time.Time // when the last of them arrived
}

func (t *tally) add(s Sample) {
	if s.OK {
		t.ok++
		t.nodes[s.Node]++
		t.lat = append(t.lat, s.Latency)
	} else {
		t.fail++
		t.errs[s.Err]++
	}
}

func (t *tally) merge(o *tally) {
	t.ok += o.ok
	t.fail += o.fail
	for k, v := range o.nodes {
		t.nodes[k] += v
	}
	for k, v := range o.errs {
		t.errs[k] += v
	}
	t.lat = append(t.lat, o.lat...)
	t.at = o.at
}

func (t *tally) status() string {
	switch {
	case t.fail > 0 && t.ok == 0:
		return "FAIL"
	case t.fail > 0:
		return "mixed"
	}
	return "ok"
}

func (t *tally) key() string { return t.status() + " " + keysOf(t.nodes) }

func (t *tally) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-5s %-7s", clock(t.at), t.status(), dash(keysOf(t.nodes)))
	if len(t.lat) > 0 {
		lat := slices.Clone(t.lat)
		slices.Sort(lat)
		fmt.Fprintf(&b, " %6.1fms", float64(lat[len(lat)/2].Microseconds())/1000)
	} else {
		b.WriteString("         ")
	}
	fmt.Fprintf(&b, "  %d ok", t.ok)
	if t.fail > 0 {
		fmt.Fprintf(&b, ", %d failed (%s)", t.fail, keysOfCount(t.errs))
	}
	return b.String()
}

func newPrinter(d *demo, c *Client) *printer {
	return &printer{d: d, c: c, logNext: map[string]int{}}
}

func (p *printer) loop(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.batch(true)
			return
		case <-tick.C:
			p.batch(false)
		}
	}
}

func (p *printer) batch(final bool) {
	type out struct {
		at   time.Time
		text string
	}
	var outs []out
	// Daemon events, merged by time with the client's lines.
	names := make([]string, 0, len(p.d.daemons))
	for name := range p.d.daemons {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		proc := p.d.daemons[name]
		var lines []Line
		lines, p.logNext[name] = proc.LinesSince(p.logNext[name])
		for _, l := range lines {
			if l.Fields != nil && relevant(l) {
				outs = append(outs, out{l.Time(), fmt.Sprintf("%s  %-5s %s", clock(l.Time()), name, describe(l))})
			}
		}
	}
	changes := p.d.watch.Changes()
	for _, c := range changes[min(p.watchNext, len(changes)):] {
		outs = append(outs, out{c.At, fmt.Sprintf("%s  %-5s %s", clock(c.At), "lab", c.String())})
	}
	p.watchNext = len(changes)
	for _, t := range p.clientLines(final) {
		outs = append(outs, out{t.at, t.line()})
	}
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].at.Before(outs[j].at) })
	for _, o := range outs {
		p.d.printf("%s\n", o.text)
	}
}

// clientLines takes the samples that arrived since the last call and
// returns the lines to print: none while nothing changes (for up to a
// second; the samples wait in pend), else the pending stretch and the new
// one. final flushes everything.
func (p *printer) clientLines(final bool) []*tally {
	var lines []Line
	lines, p.next = p.c.Proc.LinesSince(p.next)
	t := &tally{nodes: map[string]int{}, errs: map[string]int{}, at: time.Now()}
	for _, l := range lines {
		if s, good := ParseSample(l); good {
			t.add(s)
		}
	}
	var show []*tally
	if t.ok+t.fail > 0 {
		switch {
		case p.pend != nil && t.key() == p.lastKey:
			p.pend.merge(t)
		case p.pend != nil:
			show = append(show, p.pend)
			p.pend = t
		default:
			p.pend = t
		}
		// A change of what the client sees shows at once.
		if p.pend.key() != p.lastKey || p.pend.at.Sub(p.lastAt) >= time.Second {
			show = append(show, p.pend)
			p.lastKey, p.lastAt, p.pend = p.pend.key(), p.pend.at, nil
		}
	}
	if final && p.pend != nil {
		show = append(show, p.pend)
		p.pend = nil
	}
	return show
}

func keysOf(m map[string]int) string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func keysOfCount(m map[string]int) string {
	var k []string
	for s, n := range m {
		k = append(k, fmt.Sprintf("%s x%d", s, n))
	}
	sort.Strings(k)
	return strings.Join(k, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func nodeNames(nodes []*Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ", ")
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

func roundMS(d time.Duration) string { return d.Round(time.Millisecond).String() }

// appendFile appends text to the file at path.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
