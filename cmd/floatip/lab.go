package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// labCmd is `floatip lab`: the live failover demo by default, plus the
// hidden helpers the lab runs inside its namespaces.
type labCmd struct {
	Demo      labDemoCmd      `cmd:"" default:"withargs" help:"Build a namespace lab, run floatip on every node, break the holder and show the failover (the default)."`
	Serve     labServeCmd     `cmd:"" hidden:"" help:"HTTP server answering its node name (run inside a lab node)."`
	Client    labClientCmd    `cmd:"" hidden:"" help:"Request a target over fresh TCP connections, one JSON line per request (run inside the lab)."`
	HTTPCheck labHTTPCheckCmd `cmd:"" name:"httpcheck" hidden:"" help:"Exit 0 if URL answers 200 within the timeout (keepalived's track_script in the benchmark)."`
}

type labServeCmd struct {
	Name   string `required:"" help:"Node name to answer with."`
	Listen string `default:":8080" help:"Address to listen on."`
}

func (c *labServeCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.Serve(ctx, c.Name, c.Listen, os.Stdout)
}

type labHTTPCheckCmd struct {
	URL     string        `required:"" help:"URL to GET."`
	Timeout time.Duration `default:"500ms" help:"Timeout."`
}

func (c labHTTPCheckCmd) Run() error {
	hc := &http.Client{Timeout: c.Timeout}
	resp, err := hc.Get(c.URL)
	if err != nil {
		return exitError{1}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return exitError{1}
	}
	return nil
}

type labClientCmd struct {
	Target   string        `required:"" help:"host:port to request."`
	Every    time.Duration `default:"5ms" help:"Interval between requests."`
	Timeout  time.Duration `default:"50ms" help:"Timeout per request."`
	Count    int           `help:"Stop after this many requests (0: no limit)."`
	Duration time.Duration `default:"10m" help:"Stop after this long."`
}

func (c *labClientCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.RunClient(ctx, lab.ClientConfig{
		Target: c.Target, Every: c.Every, Timeout: c.Timeout, Count: c.Count, Duration: c.Duration,
	}, os.Stdout)
}

type labDemoCmd struct {
	Fault   string `enum:"poweroff,stop,crash,partition,service" default:"poweroff" help:"What happens to the holder: poweroff (cut its link, kill everything), stop (SIGTERM floatip), crash (SIGKILL floatip), partition (cut its link for 3 s), service (kill its HTTP service). One of: ${enum}."`
	Nodes   int    `default:"3" help:"Number of nodes (priorities 200, 150, 100, ...)."`
	Profile string `enum:"default,fast" default:"default" help:"Timing profile passed to floatip: ${enum}."`
	Keep    bool   `help:"Keep the namespaces afterwards (processes are stopped) to look around."`
	Cleanup bool   `help:"Remove a lab left behind (namespaces with the prefix and everything in them), then exit."`
	Prefix  string `default:"flab" help:"Name prefix of the lab's namespaces."`
}

const (
	demoSettle       = 2 * time.Second  // client traffic before the fault
	demoRecover      = 15 * time.Second // how long the client may fail
	demoPartitionFor = 3 * time.Second
)

func (c *labDemoCmd) Run() error {
	out := os.Stdout
	if c.Cleanup {
		removed, err := lab.CleanupReport(c.Prefix)
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			fmt.Fprintf(out, "no lab named %s found\n", c.Prefix)
		} else {
			fmt.Fprintf(out, "removed %s\n", strings.Join(removed, ", "))
		}
		return nil
	}
	if c.Nodes < 2 {
		return fmt.Errorf("--nodes %d: a failover needs at least 2 nodes", c.Nodes)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := lab.Up(ctx, lab.Options{Prefix: c.Prefix, Nodes: c.Nodes, Progress: out})
	if err != nil {
		return err
	}
	defer func() {
		if c.Keep {
			fmt.Fprintf(out, "\nstopping processes... ")
			_ = l.StopProcs()
			fmt.Fprintf(out, "ok; namespaces kept:\n")
			fmt.Fprintf(out, "  enter a node:  sudo ip netns exec %s-n1 sh\n", l.Prefix)
			fmt.Fprintf(out, "  the bridge:    sudo ip netns exec %s-br bridge fdb\n", l.Prefix)
			fmt.Fprintf(out, "  tear down:     sudo floatip lab --cleanup%s\n", prefixArg(l.Prefix))
			return
		}
		fmt.Fprintf(out, "tearing down... ")
		if err := l.Down(); err != nil {
			fmt.Fprintf(out, "failed: %v\n", err)
			return
		}
		fmt.Fprintf(out, "ok\n")
	}()

	d := &demo{l: l, out: out, fault: c.Fault}
	err = d.run(ctx, c.Profile)
	if ctx.Err() != nil {
		fmt.Fprintln(out, "\ninterrupted")
		return exitError{130}
	}
	return err
}

func prefixArg(p string) string {
	if p == lab.DefaultPrefix {
		return ""
	}
	return " --prefix " + p
}

// demo is one run of the failover demo.
type demo struct {
	l       *lab.Lab
	watch   *holderWatch
	out     io.Writer
	fault   string
	daemons map[string]*lab.Proc // node name -> floatip
	svcs    map[string]*lab.Proc // node name -> HTTP service
	mu      sync.Mutex           // serialises writes to out
}

func (d *demo) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, args...)
}

func (d *demo) run(ctx context.Context, profile string) error {
	nodes := d.l.Nodes()
	d.daemons = map[string]*lab.Proc{}
	d.svcs = map[string]*lab.Proc{}

	d.printf("starting HTTP services on %s... ", nodeNames(nodes))
	for _, n := range nodes {
		p, err := n.StartService(ctx)
		if err != nil {
			d.printf("failed\n")
			return err
		}
		d.svcs[n.Name] = p
	}
	d.printf("ok\n")

	// Every node checks its own HTTP service (the health check the
	// service fault exercises): every 100 ms, unhealthy after 2 failures.
	checks, err := lab.WriteServiceChecks()
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
	d.printf("starting floatip (profile %s, priorities %s, health check http://127.0.0.1:%d/ every 100 ms, fall 2)... ok\n", profile, strings.Join(prios, " "), lab.ServicePort)

	d.printf("waiting for exactly one holder of %v... ", d.l.VIP)
	t0 := time.Now()
	holders, err := d.waitHolders(ctx, lab.ExactlyOne, demoRecover)
	if err != nil {
		d.printf("failed\n")
		return err
	}
	old := holders[0]
	d.printf("%s (after %s)\n", old, roundMS(time.Since(t0)))

	client, err := d.l.StartClient(ctx, lab.ClientOptions{})
	if err != nil {
		return err
	}
	if _, err := client.WaitSample(ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK }); err != nil {
		return fmt.Errorf("the client never got an answer from the VIP: %w", err)
	}
	d.printf("client in %s requests http://%v:%d/ every 5 ms (50 ms timeout)\n\n", d.l.ClientNode().NS, d.l.VIP, lab.ServicePort)

	d.watch = watchHolders(ctx, d.l)
	defer d.watch.stop()
	pr := newPrinter(d, client)
	prDone := make(chan struct{})
	prCtx, prStop := context.WithCancel(ctx)
	go func() { defer close(prDone); pr.loop(prCtx) }()
	stopPrinter := func() { prStop(); <-prDone }
	defer stopPrinter()

	select {
	case <-time.After(demoSettle):
	case <-ctx.Done():
		return ctx.Err()
	}

	holder := d.l.NodeByName(old)
	faultAt := time.Now()
	healed := make(chan struct{})
	if err := d.applyFault(holder, faultAt, healed); err != nil {
		return err
	}

	_, werr := client.WaitSample(ctx, demoRecover, func(s lab.Sample) bool {
		return s.OK && !s.At.Before(faultAt) && s.Node != old
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Let the tail of the failover (and a healed partition) show.
	settle := time.Second
	if d.fault == "partition" {
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
	d.watch.stop()
	stopPrinter()
	end, _ := d.l.Holders()

	res := lab.Measure(samples, faultAt)
	d.printTimeline(faultAt, old, res)
	d.printSummary(old, res, samples, end, werr == nil)
	if werr != nil {
		d.printf("\nFAILED: no answer from a new holder within %s of the fault\n", demoRecover)
		return exitError{1}
	}
	return nil
}

// waitHolders is Lab.WaitHolders that gives up early, with the daemon's
// output, when a floatip process exits.
func (d *demo) waitHolders(ctx context.Context, want func([]string) bool, timeout time.Duration) ([]string, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for name, p := range d.daemons {
		go func() {
			select {
			case <-p.Done():
				cancel(fmt.Errorf("floatip on %s exited (%v); its output:\n%s", name, p.Wait(), tailText(p, 15)))
			case <-wctx.Done():
			}
		}()
	}
	h, err := d.l.WaitHolders(wctx, want, timeout)
	if err != nil && context.Cause(wctx) != nil && ctx.Err() == nil {
		return h, context.Cause(wctx)
	}
	return h, err
}

func tailText(p *lab.Proc, n int) string {
	lines := p.Lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "  (no output)"
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l.Text + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func (d *demo) applyFault(n *lab.Node, at time.Time, healed chan<- struct{}) error {
	var what string
	var err error
	switch d.fault {
	case "poweroff":
		what = "power off " + n.Name + " (link cut, every process killed)"
		err = n.PowerOff()
	case "stop":
		what = "SIGTERM to floatip on " + n.Name
		err = d.daemons[n.Name].Signal(syscall.SIGTERM)
	case "crash":
		what = "SIGKILL to floatip on " + n.Name + " (its HTTP service stays up)"
		err = d.daemons[n.Name].Signal(syscall.SIGKILL)
	case "service":
		what = "kill the HTTP service on " + n.Name + " (floatip stays up)"
		err = d.svcs[n.Name].Kill()
	case "partition":
		what = fmt.Sprintf("partition %s from every other host for %s (its link stays up, so it keeps its VIP: split brain until the heal)", n.Name, demoPartitionFor)
		err = n.Partition()
		time.AfterFunc(demoPartitionFor, func() {
			if herr := n.Heal(); herr != nil {
				d.printf("heal %s: %v\n", n.Name, herr)
			} else {
				d.printf("%s  *** healed: %s is back on the segment\n", clock(time.Now()), n.Name)
			}
			close(healed)
		})
	default:
		return fmt.Errorf("unknown fault %q", d.fault)
	}
	d.printf("%s  *** fault: %s\n", clock(at), what)
	if d.fault != "partition" {
		close(healed)
	}
	return err
}

// relevant reports whether a daemon log line belongs on the timeline.
func relevant(l lab.Line) bool {
	switch l.Msg() {
	case "state changed", "vip added", "vip removed", "announced":
		return true
	}
	lv := strings.ToUpper(l.Str("level"))
	return lv == "WARN" || lv == "ERROR"
}

// describe renders a daemon log line briefly: "state changed  vip: backup -> master (probe timeout)".
func describe(l lab.Line) string {
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

func (d *demo) printTimeline(faultAt time.Time, old string, r lab.Result) {
	var evs []event
	for name, p := range d.daemons {
		for _, l := range p.Lines() {
			if l.Fields == nil || !relevant(l) || l.Time().Before(faultAt) {
				continue
			}
			evs = append(evs, event{l.Time(), name, describe(l)})
		}
	}
	for _, c := range d.watch.changes() {
		if !c.at.Before(faultAt) {
			evs = append(evs, event{c.at, "lab", c.text()})
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
	d.printf("  %10s  %-7s %s\n", "T0", old, "fault: "+d.fault+" ("+clock(faultAt)+")")
	for _, e := range evs {
		d.printf("  %+8dms  %-7s %s\n", e.at.Sub(faultAt).Milliseconds(), e.node, e.text)
	}
}

func (d *demo) printSummary(old string, r lab.Result, samples []lab.Sample, end []string, ok bool) {
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
	c         *lab.Client
	next      int
	logNext   map[string]int
	watchNext int
	lastKey   string
	lastAt    time.Time
	quiet     int // batches not shown since the last line
}

func newPrinter(d *demo, c *lab.Client) *printer {
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
	changes := p.d.watch.changes()
	for _, c := range changes[min(p.watchNext, len(changes)):] {
		outs = append(outs, out{c.at, fmt.Sprintf("%s  %-5s %s", clock(c.at), "lab", c.text())})
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
		s, good := lab.ParseSample(l)
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

func nodeNames(nodes []*lab.Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ", ")
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

func roundMS(d time.Duration) string { return d.Round(time.Millisecond).String() }

// holderWatch records, every 10 ms, which nodes have the VIP on eth0, as the
// kernel sees it (independent of what the daemons log).
type holderWatch struct {
	mu     sync.Mutex
	log    []holderChange
	cancel context.CancelFunc
	done   chan struct{}
}

type holderChange struct {
	at       time.Time
	from, to []string
}

func (c holderChange) text() string {
	return "VIP holders: " + strings.Join(orNone(c.from), ",") + " -> " + strings.Join(orNone(c.to), ",")
}

func watchHolders(ctx context.Context, l *lab.Lab) *holderWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &holderWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last, _ := l.Holders()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			h, err := l.Holders()
			if err != nil || slices.Equal(h, last) {
				continue
			}
			w.mu.Lock()
			w.log = append(w.log, holderChange{time.Now(), last, h})
			w.mu.Unlock()
			last = h
		}
	}()
	return w
}

func (w *holderWatch) stop() {
	w.cancel()
	<-w.done
}

func (w *holderWatch) changes() []holderChange {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]holderChange(nil), w.log...)
}
