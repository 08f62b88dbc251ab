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
	Keep    bool      // keep the namespaces afterwards (processes stopped)
	Prefix  string    // namespace prefix (default DefaultPrefix)
	Binary  string    // see Options.Binary
	Out     io.Writer // the demo's output; nil discards it
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
	if o.Nodes < 2 {
		return fmt.Errorf("--nodes %d: a failover needs at least 2 nodes", o.Nodes)
	}
	l, err := Up(ctx, Options{Prefix: o.Prefix, Nodes: o.Nodes, Binary: o.Binary, Progress: out})
	if err != nil {
		return err
	}
	defer func() {
		if o.Keep {
			fmt.Fprintf(out, "\nstopping processes... ")
			_ = l.StopProcs()
			fmt.Fprintf(out, "ok; namespaces kept:\n")
			fmt.Fprintf(out, "  enter a node:  sudo ip netns exec %s-n1 sh\n", l.Prefix)
			fmt.Fprintf(out, "  the bridge:    sudo ip netns exec %s-br bridge fdb\n", l.Prefix)
			fmt.Fprintf(out, "  tear down:     sudo floatip lab --cleanup%s\n", prefixFlag(l.Prefix))
			return
		}
		fmt.Fprintf(out, "tearing down... ")
		if err := l.Down(); err != nil {
			fmt.Fprintf(out, "failed: %v\n", err)
			return
		}
		fmt.Fprintf(out, "ok\n")
	}()

	d := &demo{l: l, out: out, fault: o.Fault}
	err = d.run(ctx, o.Profile)
	if ctx.Err() != nil {
		fmt.Fprintln(out, "\ninterrupted")
		return ctx.Err()
	}
	return err
}

// demo is one run of the failover demo.
type demo struct {
	l       *Lab
	watch   *HolderRecorder
	out     io.Writer
	fault   FaultKind
	daemons map[string]*Proc // node name -> floatip
	mu      sync.Mutex       // serialises writes to out
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

	var prios []string
	for i, n := range nodes {
		prio := max(200-50*i, 1)
		prios = append(prios, fmt.Sprintf("%s=%d", n.Name, prio))
		p, err := n.StartFloatip(ctx, "--priority", strconv.Itoa(prio), "--profile", profile, "--config", checks)
		if err != nil {
			return err
		}
		d.daemons[n.Name] = p
	}
	d.printf("starting floatip (profile %s, priorities %s, health check http://127.0.0.1:%d/ every 100 ms, fall 2)... ok\n", profile, strings.Join(prios, " "), ServicePort)

	d.printf("waiting for exactly one holder of %v... ", d.l.VIP)
	t0 := time.Now()
	holders, err := d.l.WaitHolders(ctx, ExactlyOne, DemoRecover, d.daemonList()...)
	if err != nil {
		d.printf("failed\n")
		return err
	}
	old := holders[0]
	d.printf("%s (after %s)\n", old, roundMS(time.Since(t0)))

	client, err := d.l.StartClient(ctx, ClientOptions{})
	if err != nil {
		return err
	}
	if _, err := client.WaitSample(ctx, 5*time.Second, func(s Sample) bool { return s.OK }); err != nil {
		return fmt.Errorf("the client never got an answer from the VIP: %w", err)
	}
	d.printf("client in %s requests http://%v:%d/ every 5 ms (50 ms timeout)\n\n", d.l.ClientNode().NS, d.l.VIP, ServicePort)

	d.watch = d.l.RecordHolders(ctx)
	defer d.watch.Stop()
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

	_, werr := client.WaitSample(ctx, DemoRecover, func(s Sample) bool {
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
	d.watch.Stop()
	stopPrinter()
	end, _ := d.l.Holders()

	res := Measure(samples, faultAt)
	d.printTimeline(faultAt, old, res)
	d.printSummary(old, res, samples, end, werr == nil)
	if werr != nil {
		d.printf("\nFAILED: no answer from a new holder within %s of the fault\n", DemoRecover)
		return ErrDemoFailed
	}
	return nil
}

// demoWhat is how the demo announces each fault on a node.
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
// DemoPartitionFor. healed is closed once the fault is over (at once for the
// others).
func (d *demo) applyFault(ctx context.Context, n *Node, at time.Time, healed chan<- struct{}) error {
	err := n.Inject(Fault{Kind: d.fault})
	d.printf("%s  *** fault: %s\n", clock(at), demoWhat(d.fault, n.Name))
	if d.fault != FaultPartition {
		close(healed)
		return err
	}
	time.AfterFunc(DemoPartitionFor, func() {
		if herr := n.Heal(ctx, FaultPartition); herr != nil {
			d.printf("heal %s: %v\n", n.Name, herr)
		} else {
			d.printf("%s  *** healed: %s is back on the segment\n", clock(time.Now()), n.Name)
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
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	d.printf("\ntimeline (from the daemons' JSON logs and the client)\n")
	d.printf("  %10s  %-7s %s\n", "T0", old, "fault: "+string(d.fault)+" ("+clock(faultAt)+")")
	for _, e := range evs {
		d.printf("  %+8dms  %-7s %s\n", e.at.Sub(faultAt).Milliseconds(), e.node, e.text)
	}
}

func (d *demo) printSummary(old string, r Result, samples []Sample, end []string, ok bool) {
	total := 0
	for _, s := range samples {
		if !s.At.Before(r.FaultAt) {
			total++
		}
	}
	d.printf("\nsummary\n")
	switch {
	case r.Failed == 0:
		d.printf("  outage           none: no request failed\n")
	case r.Recovered:
		d.printf("  outage           %d ms\n", r.Outage.Milliseconds())
	default:
		d.printf("  outage           at least %d ms (never recovered)\n", r.Outage.Milliseconds())
	}
	d.printf("  failed requests  %d of %d sent after the fault\n", r.Failed, total)
	newHolder := r.After
	if !ok {
		newHolder = "(none)"
	}
	d.printf("  answering node   %s -> %s\n", old, newHolder)
	d.printf("  VIP holders now  %s\n", strings.Join(orNone(end), ", "))
	if len(end) > 1 {
		d.printf("  warning          more than one node holds %v\n", d.l.VIP)
	}
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

// printer shows the client's progress like ping: a line per 50 ms batch when
// something changes (answering node, failures), otherwise a heartbeat line
// each second; daemon log events appear as they happen.
type printer struct {
	d         *demo
	c         *Client
	next      int
	logNext   map[string]int
	watchNext int
	lastKey   string
	lastAt    time.Time
	quiet     int // batches not shown since the last line
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
			p.batch()
			return
		case <-tick.C:
			p.batch()
		}
	}
}

func (p *printer) batch() {
	type out struct {
		at   time.Time
		text string
	}
	var outs []out
	// Daemon events, merged by time with the client's batch line.
	names := make([]string, 0, len(p.d.daemons))
	for name := range p.d.daemons {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		proc := p.d.daemons[name]
		lines := proc.LinesFrom(p.logNext[name])
		p.logNext[name] += len(lines)
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
	if at, line, ok := p.clientLine(); ok {
		outs = append(outs, out{at, line})
	}
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].at.Before(outs[j].at) })
	for _, o := range outs {
		p.d.printf("%s\n", o.text)
	}
}

// clientLine summarises the samples that arrived since the last call; ok is
// false when there is nothing worth a line.
func (p *printer) clientLine() (at time.Time, line string, ok bool) {
	lines := p.c.Proc.LinesFrom(p.next)
	p.next += len(lines)
	var nOK, nFail int
	nodes := map[string]int{}
	errs := map[string]int{}
	var lat []time.Duration
	for _, l := range lines {
		s, good := ParseSample(l)
		if !good {
			continue
		}
		if s.OK {
			nOK++
			nodes[s.Node]++
			lat = append(lat, s.Latency)
		} else {
			nFail++
			errs[s.Err]++
		}
	}
	if nOK+nFail == 0 {
		return at, "", false
	}
	// Stamp the line when the answers (or timeouts) arrived, so lines stay
	// in order: a timeout is sent 50 ms before it is reported.
	at = time.Now()
	status := "ok"
	switch {
	case nFail > 0 && nOK == 0:
		status = "FAIL"
	case nFail > 0:
		status = "mixed"
	}
	key := status + " " + keysOf(nodes)
	now := time.Now()
	if key == p.lastKey && now.Sub(p.lastAt) < time.Second {
		p.quiet++
		return at, "", false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-5s %-7s", clock(at), status, dash(keysOf(nodes)))
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Fprintf(&b, " %6.1fms", float64(lat[len(lat)/2].Microseconds())/1000)
	} else {
		b.WriteString("         ")
	}
	fmt.Fprintf(&b, "  %d ok", nOK)
	if nFail > 0 {
		fmt.Fprintf(&b, ", %d failed (%s)", nFail, keysOfCount(errs))
	}
	if key == p.lastKey && p.quiet > 0 {
		fmt.Fprintf(&b, "   [no change for %s]", roundMS(now.Sub(p.lastAt)))
	}
	p.lastKey, p.lastAt, p.quiet = key, now, 0
	return at, b.String(), true
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
