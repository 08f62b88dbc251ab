package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/health"
	"github.com/floatip/floatip/internal/hooks"
	"github.com/floatip/floatip/internal/quorum"
)

// maxSleep bounds how long a group's goroutine sleeps without an event, so
// its heartbeat (for the systemd watchdog) stays fresh in every state.
const maxSleep = time.Second

// group owns one VIP group's state machine; only its run goroutine touches
// the machine. Others talk to it through events and read its snapshot.
type group struct {
	name string
	vips []netip.Addr
	// vipStrings is vips as text, made once: status snapshots share it.
	vipStrings []string
	d          *daemon
	log        *slog.Logger
	logBatch   *batchLog // holds log's records during apply
	m          *election.Machine
	events     chan election.Event
	cmds       chan command
	nodeCfg    *config.Config // the node's whole configuration; owned by the run goroutine once it runs
	groupCfg   config.Group   // this group's part of it; read and written under reloadMu
	ctx        context.Context
	cancel     context.CancelFunc
	done       chan struct{}

	// Owned by the run goroutine.
	added        bool
	since        time.Time
	reason       string
	lastProbe    time.Time
	lastAnnounce time.Time
	prev         election.Stats
	published    time.Time
	sendFails    int // frames in a row whose every try failed
	lastForeign  *control.ForeignClaim

	checks   *health.Monitor // nil without checks
	notifier Notifier
	// retired are the notifiers a reload replaced, finishing their queued
	// hooks; run waits for them.
	retired sync.WaitGroup
	fencing sync.WaitGroup // fence commands in flight
	// fenceCancel stops the running fence command; the machine left the
	// fencing state (the old holder answered again, a hold), so powering
	// that node off now would only take the VIP away from it.
	fenceCancel context.CancelFunc

	snap       atomic.Pointer[control.Group] // for Status
	dropped    atomic.Uint64                 // frames dropped on a full queue
	droppedLog atomic.Int64                  // when that was last logged (since the daemon started)
	heartbeat  atomic.Int64                  // monotonic nanoseconds since the daemon started, at the last loop turn
	lostAfter  atomic.Int64                  // a peer unheard this long is lost (Machine.LostAfter), for Status

	elector  quorum.Elector // the group's referee elector (quorum.go); nil without quorum:
	vipUntil time.Time      // quorum: when the VIPs' kernel lifetime, as last set, ends (owned by run)
	qkey     string         // the quorum configuration's key (quorums.by); "" without quorum:
}

// peerNames is peers: keyed by MAC, for the machine's names.
func peerNames(cfg *config.Config) map[string]string {
	if len(cfg.Peers) == 0 {
		return nil
	}
	m := make(map[string]string, len(cfg.Peers))
	for name, mac := range cfg.Peers {
		m[string(mac)] = name
	}
	return m
}

func params(cfg *config.Config, gc config.Group, mac net.HardwareAddr) election.Params {
	t := cfg.Timing
	policy := election.Yield
	if cfg.OnForeignClaim == config.ForeignClaimDefend {
		policy = election.Defend
	}
	fence := election.FenceOff
	switch cfg.Fencing.Policy {
	case config.FencingBestEffort:
		fence = election.FenceBestEffort
	case config.FencingRequired:
		fence = election.FenceRequired
	}
	return election.Params{
		HasChecks:     len(gc.Checks) > 0,
		KeepUnhealthy: cfg.UnhealthyPolicy != config.UnhealthyRelease,
		Fencing:       fence,
		Preempt:       cfg.Preempt,
		PreemptDelay:  cfg.PreemptDelay,
		VIPs:          probeOrder(gc.VIPs),
		MAC:           mac,
		Priority:      uint8(gc.Priority),
		NodeID:        nodeID(cfg.NodeName),
		Name:          cfg.NodeName,
		PeerNames:     peerNames(cfg),
		Timing: election.Timing{
			CheckInterval: t.CheckInterval, Misses: t.Misses, ClaimSlot: t.ClaimSlot,
			AnnounceCount: t.AnnounceCount, AnnounceInterval: t.AnnounceInterval,
			Lifetime: t.Lifetime, RenewInterval: t.RenewInterval, BeaconInterval: t.BeaconInterval,
		},
		ForeignPolicy: policy,
		AuthRequired:  cfg.Auth.Enabled() && cfg.Auth.Require,
		FenceAllowed:  fenceAllowed(cfg),
		Quorum:        gc.Quorum != nil,
		QuorumTTL:     quorumTTL(&gc),
	}
}

// quorumTTL is the group's referee lease TTL, zero without a referee.
func quorumTTL(gc *config.Group) time.Duration {
	if gc.Quorum == nil {
		return 0
	}
	return gc.Quorum.Etcd.TTL
}

// fenceAllowed is the MACs that fencing: required may fence: the peers:
// table. Without peers (or without fencing required) nil: no restriction.
func fenceAllowed(cfg *config.Config) []net.HardwareAddr {
	if cfg.Fencing.Policy != config.FencingRequired || len(cfg.Peers) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(cfg.Peers))
	out := make([]net.HardwareAddr, 0, len(names))
	for _, n := range names {
		out = append(out, slices.Clone(cfg.Peers[n]))
	}
	return out
}

// newGroup makes a group; cfg is the configuration it starts with (a
// reload hands it a newer one through its command channel).
func (d *daemon) newGroup(cfg *config.Config, gc config.Group) *group {
	ctx, cancel := context.WithCancel(d.ctx)
	p := params(cfg, gc, d.mac)
	p.Epoch = d.started // all groups' routine timers on one grid
	lb := &batchLog{}
	g := &group{
		name: gc.Name, vips: probeOrder(gc.VIPs), d: d,
		m:        election.New(p),
		nodeCfg:  cfg,
		groupCfg: gc,
		log:      lb.logger(d.log.With("group", gc.Name)),
		logBatch: lb,
		events:   make(chan election.Event, 1024),
		cmds:     make(chan command),
		ctx:      ctx, cancel: cancel, done: make(chan struct{}),
		since: d.now(),
	}
	for _, v := range gc.VIPs {
		g.vipStrings = append(g.vipStrings, v.String())
	}
	g.notifier = g.newNotifier(cfg)
	if len(gc.Checks) > 0 {
		var cs []health.Check
		for _, c := range gc.Checks {
			cs = append(cs, health.Check{
				Name: c.Name, Kind: health.Kind(c.Type), URL: c.URL, ExpectStatus: c.ExpectStatus,
				Address: c.Address, Command: c.Command,
				Interval: c.Interval, Timeout: c.Timeout, Fall: c.Fall, Rise: c.Rise,
			})
		}
		g.checks = health.New(cs, g.log)
	}
	g.openElector()
	g.heartbeat.Store(int64(d.since(d.started)))
	g.publish()
	return g
}

// deliver queues an event without ever blocking the reader: a group that
// is this far behind loses frames, which the protocol tolerates.
func (g *group) deliver(ev election.Event) {
	select {
	case g.events <- ev:
	default:
		// Logged at most every 10 s, with the count: a flood of frames
		// must not become a flood of log lines.
		n := g.dropped.Add(1)
		if last := g.droppedLog.Load(); (n == 1 || g.d.since(g.d.started)-time.Duration(last) > 10*time.Second) &&
			g.droppedLog.CompareAndSwap(last, int64(g.d.since(g.d.started))) {
			g.log.Warn("event queue full; dropping frames", "dropped_total", n)
		}
	}
}

// command is an operator's event and where to say whether it was refused.
// A reload also hands over the new configuration.
type command struct {
	ev    election.Event
	cfg   *config.Config
	reply chan error
}

// enqueue queues an event that may not be lost (link and address changes),
// blocking until there is room; it gives up when the group or ctx ends.
func (g *group) enqueue(ctx context.Context, ev election.Event) {
	select {
	case g.events <- ev:
	case <-g.done:
	case <-ctx.Done():
	}
}

// command hands an operator's event to the group's goroutine and waits for
// the machine's verdict (a Refused action becomes the error).
func (g *group) command(ctx context.Context, ev election.Event) error {
	return g.send(ctx, command{ev: ev, reply: make(chan error, 1)})
}

func (g *group) send(ctx context.Context, c command) error {
	select {
	case g.cmds <- c:
	case <-g.done:
		return fmt.Errorf("group %s is stopped", g.name)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopAll ends the groups (each releases its VIPs if held) all at once,
// then waits for every one: a group draining a slow hook must not keep the
// others holding.
func stopAll(gs []*group) {
	for _, g := range gs {
		g.cancel()
	}
	for _, g := range gs {
		<-g.done
	}
}

// onGrid rounds a deadline up to the daemon's timer grid. Groups that wake
// at the same instants share the runtime's wake-ups and read their answers
// in one burst, which matters with many groups. The step is a tenth of the
// shortest interval the machine uses, so timing stays within 10 %. The grid
// counts from the daemon's start on the monotonic clock, so a wall-clock
// step cannot move it.
func (g *group) onGrid(dl time.Time) time.Time {
	step := g.gridStep()
	off := dl.Sub(g.d.started)
	return g.d.started.Add((off + step - 1) / step * step)
}

func (g *group) gridStep() time.Duration {
	t := g.nodeCfg.Timing
	return max(min(t.CheckInterval, t.AnnounceInterval, max(t.ClaimSlot, time.Millisecond))/10, time.Millisecond)
}

// tickTime is the machine's time for a Tick due at deadline dl, handled at
// now (not before onGrid(dl)): that grid point when the loop woke in time,
// but the last grid point at or before now when it woke late (the process
// was descheduled, stopped, or the machine is busy). Ticking at the old
// deadline then would replay every check the stall skipped back to back,
// in microseconds, and take the silence of no real time at all for a
// holder's: each replayed check counts a miss, and the holder's answers
// never get a chance between them.
func (g *group) tickTime(dl, now time.Time) time.Time {
	at := g.onGrid(dl)
	step := g.gridStep()
	if now.Sub(at) < step {
		return at
	}
	off := now.Sub(g.d.started)
	return g.d.started.Add(off / step * step)
}

func (g *group) run(start election.Start) {
	defer close(g.done)
	if m, ok := g.d.conn.(vipMember); ok {
		// IPv6: see the probes and beacons for our VIPs behind an MLD
		// snooping switch, for as long as the group runs.
		if err := m.JoinVIPs(g.vips); err != nil {
			g.log.Error("joining the solicited-node groups of the IPv6 VIPs; other nodes' probes may not reach this node", "err", err)
		} else if _, v6 := split(g.vips); len(v6) > 0 {
			g.log.Debug("joined the solicited-node groups of the IPv6 VIPs", "vips", len(v6), "node_groups", m.Groups())
		}
		defer func() {
			if err := m.LeaveVIPs(g.vips); err != nil {
				g.log.Warn("leaving the solicited-node groups of the IPv6 VIPs", "err", err)
			}
		}()
	}
	defer g.retired.Wait()
	defer func() { g.notifier.Close() }() // after the last transition's hooks are queued
	defer g.fencing.Wait()
	timer := time.NewTimer(maxSleep)
	defer timer.Stop()
	// armed is when timer fires; zero once it did. Re-arming only when
	// that changes matters with many groups: most events (a probe's
	// answer, a peer's beacon) leave the deadline as it was, and each
	// Reset to an earlier instant can wake an idle thread of the runtime.
	armed := g.d.now().Add(maxSleep)
	if g.checks != nil {
		checksCtx, stopChecks := context.WithCancel(context.Background())
		var forwarder sync.WaitGroup
		defer func() { stopChecks(); forwarder.Wait(); g.checks.Close() }()
		g.checks.Start(checksCtx)
		forwarder.Go(func() { g.forwardHealth(checksCtx) })
	}
	defer g.startQuorum()() // closes the elector first on the way out
	if g.apply(g.m.Handle(g.d.now(), start)) {
		return
	}
	stopping := g.ctx.Done()
	for {
		g.heartbeat.Store(int64(g.d.since(g.d.started)))
		now := g.d.now()
		want, capped := now.Add(maxSleep), true
		if dl := g.m.Deadline(); !dl.IsZero() {
			if at := g.onGrid(dl); at.Before(want) {
				want, capped = at, false
			}
		}
		// When only the heartbeat is due, any armed time up to maxSleep
		// from now will do.
		keep := !armed.IsZero() && (armed.Equal(want) || capped && armed.After(now) && !armed.After(want))
		if !keep {
			// (Since Go 1.23 a Reset timer never delivers a stale value.)
			timer.Reset(want.Sub(now))
			armed = want
		}
		var done bool
		select {
		case <-stopping:
			// A key-first stop under a referee (election.Machine) is done
			// only once another node owns the key: keep running until then.
			stopping = nil
			done = g.apply(g.m.Handle(g.d.now(), election.Stop{}))
		case ev := <-g.events:
			done = g.apply(g.m.Handle(g.d.now(), ev))
		case c := <-g.cmds:
			if c.cfg != nil {
				g.nodeCfg = c.cfg
				old := g.notifier
				g.notifier = g.newNotifier(c.cfg)
				g.retired.Go(old.Close) // lets its queued hooks finish; run waits
			}
			acts := g.m.Handle(g.d.now(), c.ev)
			var err error
			for _, a := range acts {
				if r, ok := a.(election.Refused); ok {
					err = fmt.Errorf("group %s: %s", g.name, r.Reason)
				}
			}
			done = g.apply(acts)
			// The snapshot first, then the answer: the operator (or a
			// reload that carries a hold over) looks at the status next.
			g.publish()
			c.reply <- err
		case <-timer.C:
			armed = time.Time{}
			// Frames already here go first: a claim decided by the timer
			// must not overlook an announcement waiting in the queue.
			for pending := len(g.events); pending > 0 && !done; pending-- {
				done = g.apply(g.m.Handle(g.d.now(), <-g.events))
			}
			if done {
				return
			}
			// Woken at (or just after) the grid point at or after the
			// deadline: the machine's time is a grid point (tickTime),
			// never ahead of the real time and never before the deadline,
			// so the next deadlines stay on the grid without drifting.
			if dl := g.m.Deadline(); !dl.IsZero() {
				if now := g.d.now(); !now.Before(g.onGrid(dl)) {
					done = g.apply(g.m.Handle(g.tickTime(dl, now), election.Tick{}))
				}
			}
		}
		if done {
			return
		}
	}
}

// apply carries out the machine's actions in order; it reports whether the
// machine is done.
func (g *group) apply(actions []election.Action) bool {
	g.logBatch.hold()
	defer g.logBatch.flush()
	done := false
	notable := false
	mt := g.d.metrics
	for i := 0; i < len(actions); i++ {
		switch actions[i].(type) {
		case election.Transition, election.Note, election.AddVIPs, election.RemoveVIPs, election.Done, election.ForeignClaim:
			notable = true
		}
		switch a := actions[i].(type) {
		case election.Send:
			if err := g.write(a.Packet); err != nil {
				// Persistent: the machine leaves its state (a holder
				// whose announcements fail must not stay holder).
				actions = append(actions[:i+1], g.m.Handle(g.d.now(), election.SendFailed{Err: err})...)
				continue
			}
			if !sameFrameNext(actions, i) { // a release goes out twice; log it once
				g.logSend(a.Packet)
			}
		case election.AddVIPs:
			lifetime, err := g.addVIPs(a)
			if err != nil {
				g.log.Error("adding the VIPs", "err", err)
				// Feed the failure back; the machine decides what follows.
				// The rest of this batch (announcements) assumed success.
				actions = append(actions[:i+1], g.m.Handle(g.d.now(), election.ClaimFailed{Err: err})...)
				continue
			}
			if !g.added && !a.FirstOnly {
				g.added = true
				g.log.Info("vip added", "vips", addrList(g.vips), "lifetime", lifetime.String())
			}
		case election.RemoveVIPs:
			g.drain(a.Drain)
			if err := g.d.addrs.Release(g.vips); err != nil {
				g.log.Error("removing the VIPs", "err", err)
			}
			if g.added {
				g.log.Info("vip removed", "vips", addrList(g.vips))
			}
			g.added = false
		case election.Transition:
			lvl := slog.LevelInfo
			if a.To == election.StateFault {
				lvl = slog.LevelWarn
			}
			g.since, g.reason = g.d.now(), a.Reason
			if a.From == election.StateFencing && g.fenceCancel != nil {
				g.fenceCancel()
				g.fenceCancel = nil
			}
			g.log.Log(context.Background(), lvl, "state changed", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason)
			mt.Transition(g.name, a.From, a.To)
			mt.SetState(g.name, a.To)
			g.notifier.Notify(hooks.Event{
				Group: g.name, VIPs: g.vipStrings, Interface: g.nodeCfg.Interface, Node: g.nodeCfg.NodeName,
				From: hooks.StateName(a.From), To: hooks.StateName(a.To), Reason: a.Reason, Time: g.since,
			})
		case election.Note:
			g.log.Log(context.Background(), a.Level, a.Msg, a.Attrs...)
		case election.ProbeAnswered:
			mt.ProbeRTT(g.name, a.RTT)
		case election.Refused:
			g.log.Warn("command refused", "reason", a.Reason)
		case election.Fence:
			g.fence(a)
		case election.WantKey, election.ReleaseKey, election.FenceKey:
			g.applyQuorum(a)
		case election.ForeignClaim:
			g.foreignClaim(a)
		case election.HolderLost:
			// The node's other groups on the same holder (relaxed ones
			// check it only now and then) go for their VIPs too.
			for _, o := range g.d.allGroups() {
				if o != g {
					o.deliver(election.PeerLost{MAC: a.MAC})
				}
			}
		case election.Done:
			done = true
		}
	}
	g.count()
	// Probes come many times a second in a large setup; a status snapshot
	// per probe is waste. Publish changes at once, the rest at most every
	// publishEvery.
	if notable || g.d.since(g.published) >= publishEvery {
		g.publish()
	}
	return done
}

const publishEvery = 250 * time.Millisecond

// drainPoll is how often drain looks at the VIPs' connections.
const drainPoll = time.Millisecond

// drain waits, until at most until, for a moment with no TCP connection
// open to the VIPs (election.RemoveVIPs.Drain). The VIPs are still served
// meanwhile; a service with long-lived connections waits the whole bound,
// and those connections break as they would have. A look (a sock_diag
// dump) takes longer the more sockets the node has, and cannot be cut
// short: no look starts once the bound has come, nor one that the longest
// look so far says would end past it (under a referee the bound is the
// lease's drop time).
func (g *group) drain(until time.Time) {
	open := g.d.deps.OpenConns
	if open == nil || until.IsZero() || !g.added {
		return
	}
	start := g.d.now()
	var longest time.Duration // the longest look so far
	for now, looks := start, 0; ; looks++ {
		if !now.Add(longest).Before(until) {
			if looks > 0 {
				g.log.Info("connections to the VIPs still open; removing them anyway", "waited", now.Sub(start).Round(time.Millisecond).String())
			}
			return
		}
		busy, err := open(g.vips)
		if err != nil {
			g.log.Warn("cannot see the VIPs' connections; removing the VIPs without draining", "err", err)
			return
		}
		looked := g.d.now()
		longest = max(longest, looked.Sub(now))
		if !busy {
			if waited := looked.Sub(start); waited > 0 {
				g.log.Debug("drained the VIPs' connections", "waited", waited.String())
			}
			return
		}
		if looked.Before(until) {
			time.Sleep(min(drainPoll, until.Sub(looked)))
		}
		now = g.d.now()
	}
}

// A frame whose write fails is tried sendRetries more times at once (a
// full socket buffer clears quickly); sendFailLimit frames in a row that
// failed so are a persistent failure, reported to the machine.
const (
	sendRetries   = 2
	sendFailLimit = 3
)

// write sends one frame, retrying, and counts every failed write. It
// returns an error only when the failures persist (sendFailLimit frames in
// a row failed every try).
func (g *group) write(p *arp.Packet) error {
	var err error
	for range 1 + sendRetries {
		if err = g.d.conn.Write(p); err == nil {
			g.sendFails = 0
			return nil
		}
		g.d.metrics.SendFailed(g.name)
	}
	g.sendFails++
	if g.sendFails == 1 {
		g.log.Warn("sending frame failed", "err", err, "tries", 1+sendRetries)
	}
	if g.sendFails < sendFailLimit {
		return nil
	}
	g.sendFails = 0
	g.log.Error("sending frames keeps failing", "err", err, "frames", sendFailLimit)
	return fmt.Errorf("%d frames in a row failed %d tries each: %w", sendFailLimit, 1+sendRetries, err)
}

// count turns the machine's counters into metric increments.
func (g *group) count() {
	mt := g.d.metrics
	now := g.m.Stats()
	for range now.Claims - g.prev.Claims {
		mt.Claim(g.name)
	}
	for range now.Releases - g.prev.Releases {
		mt.Release(g.name)
	}
	for range now.Conflicts - g.prev.Conflicts {
		mt.Conflict(g.name)
	}
	for range now.ProbesSent - g.prev.ProbesSent {
		mt.ProbeSent(g.name)
	}
	for range now.ProbesUnanswered - g.prev.ProbesUnanswered {
		mt.ProbeUnanswered(g.name)
	}
	mt.GroupGuard(g.name, now.ForeignClaims-g.prev.ForeignClaims, now.Throttled-g.prev.Throttled,
		now.Unconfirmed-g.prev.Unconfirmed, now.Ignored-g.prev.Ignored)
	g.prev = now
	mt.Holding(g.name, len(g.vips), g.m.State().HasVIPs())
}

// publish stores a snapshot of the group for Status.
func (g *group) publish() {
	g.published = g.d.now()
	st := g.m.Stats()
	var holder string
	if h := g.m.Holder(); h != nil {
		holder = h.String()
	}
	g.snap.Store(&control.Group{
		Name: g.name, VIPs: g.vipStrings, State: g.m.State(), Since: g.since, Reason: g.reason,
		Holder: holder, Priority: int(g.m.Priority()), Held: g.m.Held(),
		LastProbe: g.lastProbe, LastAnnounce: g.lastAnnounce,
		Counters: control.Counters{
			Claims: st.Claims, Releases: st.Releases, Conflicts: st.Conflicts,
			ProbesUnanswered: st.ProbesUnanswered, Transitions: st.Transitions,
			ForeignClaims: st.ForeignClaims, Spoofed: st.Spoofed, Throttled: st.Throttled,
			Unconfirmed: st.Unconfirmed, Ignored: st.Ignored,
		},
		LastForeignClaim: g.lastForeign,
		HolderNode:       g.holderNode(),
		Health:           g.healthStatus(),
		Peers:            g.peerStatus(),
	})
}

// holderNode names the holder: this node, or a peer by peers: or its frames.
func (g *group) holderNode() string {
	if g.m.State().HasVIPs() {
		return g.nodeCfg.NodeName
	}
	return g.m.PeerName(g.m.Holder())
}

// peerStatus lists the machine's peer table; Status marks the lost ones.
func (g *group) peerStatus() []control.Peer {
	g.lostAfter.Store(int64(g.m.LostAfter()))
	ps := g.m.Peers(g.d.now())
	out := make([]control.Peer, len(ps))
	for i, p := range ps {
		src := ""
		switch {
		case p.Configured:
			src = "peers"
		case p.Name != "":
			src = "frames"
		}
		out[i] = control.Peer{
			Name: p.Name, NameSource: src, MAC: p.MAC.String(), Priority: int(p.Priority),
			Role: p.Role, Healthy: !p.Passive, LastHeard: p.LastSeen,
		}
	}
	return out
}

func (g *group) newNotifier(cfg *config.Config) Notifier {
	var hs []hooks.Hook
	for _, h := range cfg.Notify {
		hs = append(hs, hooks.Hook{Command: h.Command, Timeout: h.Timeout, On: h.On})
	}
	return g.d.deps.NewNotifier(hs, g.log, func(hook string, err error) { g.d.metrics.HookRun(g.name, hook, err) })
}

func (g *group) healthStatus() []control.Check {
	if g.checks == nil {
		return []control.Check{}
	}
	var out []control.Check
	for _, r := range g.checks.Results() {
		out = append(out, control.Check{Name: r.Check, Healthy: r.Healthy, Detail: r.Detail, Last: r.At})
	}
	return out
}

// forwardHealth turns the checks' reports into machine events. They must
// not be dropped, so it waits for room.
func (g *group) forwardHealth(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-g.checks.Updates():
			for _, res := range r.Results {
				g.d.metrics.HealthResult(g.name, res.Check, res.Healthy)
			}
			detail := "all checks pass"
			for _, res := range r.Results {
				if !res.Healthy {
					detail = res.Check + ": " + res.Detail
					break
				}
			}
			select {
			case g.events <- election.Health{Healthy: r.Healthy, Detail: detail}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// foreignClaim reports a claim of one of our VIPs by a host that is not an
// (authenticated) floatip peer: a WARN line, the status, and the hooks
// whose on: lists foreign-claim. The machine rate-limits the action.
func (g *group) foreignClaim(a election.ForeignClaim) {
	now := g.d.now()
	mac, vip := a.MAC.String(), a.VIP.String()
	g.log.Warn("foreign claim: a host that is not an authenticated floatip peer claims a VIP of the group",
		"mac", mac, "vip", vip, "state", g.m.State().String(), "unreported_before", a.Suppressed)
	g.lastForeign = &control.ForeignClaim{MAC: mac, VIP: vip, Time: now}
	g.notifier.Notify(hooks.Event{
		Group: g.name, VIPs: g.vipStrings, Interface: g.nodeCfg.Interface, Node: g.nodeCfg.NodeName,
		From: hooks.StateName(g.m.State()), To: hooks.ForeignClaim,
		Reason: fmt.Sprintf("%s claims %s", mac, vip), Time: now,
		Foreign: &hooks.Foreign{MAC: mac, VIP: vip, Suppressed: a.Suppressed},
	})
}

// fence runs the fence command for the machine on its own goroutine and
// reports the result back as an event.
func (g *group) fence(a election.Fence) {
	f := g.nodeCfg.Fencing
	t := hooks.Target{
		MAC: a.MAC.String(), Node: peerName(g.nodeCfg, a.MAC), LastSeen: a.LastSeen,
		Group: g.name, VIPs: g.vipStrings, Interface: g.nodeCfg.Interface,
	}
	g.log.Warn("fencing the vanished holder", "target", t.MAC, "node", t.Node, "last_seen", a.LastSeen)
	ctx, cancel := context.WithCancel(g.ctx)
	g.fenceCancel = cancel
	g.fencing.Add(1)
	go func() {
		defer g.fencing.Done()
		defer cancel()
		err := hooks.Fence(ctx, f.Command, f.Timeout, t, g.log)
		g.d.metrics.HookRun(g.name, "fence", err)
		select {
		case g.events <- election.FenceResult{Err: err, Attempt: a.Attempt}:
		case <-g.done:
		case <-g.ctx.Done():
		}
	}()
}

// sameFrameNext reports whether actions[i+1] sends the same kind of frame
// as actions[i], to the same destination for the same VIP.
func sameFrameNext(actions []election.Action, i int) bool {
	if i+1 >= len(actions) {
		return false
	}
	a, ok1 := actions[i].(election.Send)
	b, ok2 := actions[i+1].(election.Send)
	if !ok1 || !ok2 || a.Packet.Trailer == nil || b.Packet.Trailer == nil {
		return false
	}
	return a.Packet.Trailer.Kind == b.Packet.Trailer.Kind && a.Packet.SenderIP == b.Packet.SenderIP &&
		a.Packet.Destination.String() == b.Packet.Destination.String()
}

func (g *group) logSend(p *arp.Packet) {
	if p.Trailer == nil {
		return
	}
	switch p.Trailer.Kind {
	case arp.KindAnnounce, arp.KindDefend:
		g.lastAnnounce = g.d.now()
		if p.SenderIP == g.vips[0] {
			g.log.Info("announced", "kind", p.Trailer.Kind.String(), "vips", addrList(g.vips))
		}
	case arp.KindRelease:
		g.log.Info("release sent")
	default:
		g.lastProbe = g.d.now()
		if g.log.Enabled(context.Background(), slog.LevelDebug) {
			g.log.Debug("probe sent", "kind", p.Trailer.Kind.String(), "to", p.Destination.String())
		}
	}
}
