package election

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// A simulated LAN: machines with their own MAC and priority share a fake
// clock and a frame bus. Each node has a simulated kernel that holds the
// VIPs (with a lifetime) and answers probes for them like Linux does; a
// passive client on the segment keeps an ARP cache entry for vip1 that
// gratuitous ARPs update. A discrete-event loop always runs the earliest of
// the pending frame deliveries, kernel address expiries and machine
// deadlines.

type simNode struct {
	idx     int
	name    string
	mac     net.HardwareAddr
	prio    uint8
	m       *Machine
	running bool // the daemon handles events and ticks
	powered bool // the NIC and the kernel work
	has     bool // the kernel has the VIPs
	expiry  time.Time

	ticked   bool
	lastTick time.Time
	spins    int // Ticks that left the Deadline in the past (the daemon would busy-loop)
	trans    []simTrans
	fences   []time.Time // when the machine asked for a fence (Fence actions)
	refused  []Refused
}

type simTrans struct {
	at time.Time
	Transition
}

type simEvent struct {
	at  time.Time
	seq uint64
	fn  func()
}

// spinStep is how far the loop moves a node whose Deadline stayed in the
// past after a Tick: the daemon would re-arm its timer in the past and tick
// again at once; 100µs keeps that cheap to simulate.
const spinStep = 100 * time.Microsecond

type lan struct {
	t     *testing.T
	tm    Timing
	vips  []netip.Addr
	now   time.Time
	nodes []*simNode
	queue []simEvent
	seq   uint64
	rng   *rand.Rand // breaks ties at random when set

	delay func(from, to int) time.Duration // one way; nil means none
	cut   map[[2]int]bool                  // frames from→to dropped; index len(nodes) is the client

	auth bool // frames from the nodes' daemons are authenticated (see withAuthLAN)

	// loss drops frames on a node's link, both ways: a frame from or to
	// node i is lost with probability loss[i] (drawn from lossRNG), each
	// crossing on its own, like nft's numgen drop on the lab's bridge.
	loss    map[int]float64
	lossRNG *rand.Rand
	lost    int // frames dropped by loss

	client       net.HardwareAddr // the client's ARP cache entry for vip1
	clientSeen   time.Time
	ignoreClient bool // wantSoleHolder does not check the client's cache

	// fence, when set, runs a node's Fence action: its result comes back
	// as FenceResult simFenceDelay later. Nil: Fence actions get no answer.
	fence func(n *simNode, f Fence) error

	steps          int
	maxHolders     int // live nodes in StateHolder at once
	maxKernels     int // kernels having the VIP at once
	doubleHolderAt []time.Time
	doubleKernelAt []time.Time
	trace          []string
}

func newLAN(t *testing.T, tm Timing, prios ...uint8) *lan {
	l := &lan{t: t, tm: tm, vips: []netip.Addr{vip1, vip2}, now: t0, cut: map[[2]int]bool{}}
	for i, prio := range prios {
		n := &simNode{idx: i, name: fmt.Sprintf("n%d(p%d)", i, prio), mac: mac(byte(0x20 + i)), prio: prio}
		// Each node's own Epoch, as a daemon's start: timers on the grid.
		ep := t0.Add(-time.Duration(3+17*i) * time.Millisecond)
		n.m = New(Params{VIPs: l.vips, MAC: n.mac, Priority: prio, NodeID: uint32(i + 1), Timing: tm, Epoch: ep})
		l.nodes = append(l.nodes, n)
	}
	return l
}

func (l *lan) rel(t time.Time) string { return "t0+" + t.Sub(t0).String() }

func (l *lan) logf(format string, args ...any) {
	l.trace = append(l.trace, l.rel(l.now)+" "+fmt.Sprintf(format, args...))
}

// dumpTrace returns the last lines of the event trace, for failures.
func (l *lan) dumpTrace(n int) string {
	tr := l.trace
	if len(tr) > n {
		tr = tr[len(tr)-n:]
	}
	return strings.Join(tr, "\n")
}

func (l *lan) schedule(at time.Time, fn func()) {
	l.seq++
	ev := simEvent{at: at, seq: l.seq, fn: fn}
	i := sort.Search(len(l.queue), func(i int) bool {
		q := l.queue[i]
		return q.at.After(at) || q.at.Equal(at) && q.seq > ev.seq
	})
	l.queue = slices.Insert(l.queue, i, ev)
}

func (l *lan) at(d time.Duration, fn func()) { l.schedule(t0.Add(d), fn) }

// start boots node i at t0+d.
func (l *lan) start(i int, d time.Duration) {
	l.at(d, func() {
		n := l.nodes[i]
		n.running, n.powered = true, true
		l.handle(n, Start{LinkUp: true, Present: n.has})
	})
}

// powerOff cuts node i off completely: no ticks, no frames, no kernel.
func (l *lan) powerOff(n *simNode) {
	l.logf("%s powered off", n.name)
	n.running, n.powered, n.has = false, false, false
}

// kill stops node i's daemon (kill -9); its kernel keeps the VIP until
// the lifetime expires and keeps answering probes.
func (l *lan) kill(n *simNode) {
	l.logf("%s killed", n.name)
	n.running = false
}

// partition drops every frame between the two sides; the client sits on
// side b.
func (l *lan) partition(a, b []int) {
	l.logf("partition %v | %v", a, b)
	b = append(slices.Clone(b), len(l.nodes))
	for _, i := range a {
		for _, j := range b {
			l.cut[[2]int{i, j}], l.cut[[2]int{j, i}] = true, true
		}
	}
}

func (l *lan) heal() {
	l.logf("healed")
	clear(l.cut)
}

func (l *lan) handle(n *simNode, ev Event) {
	acts := n.m.Handle(l.now, ev)
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			l.send(n, a.Packet)
		case AddVIPs:
			n.has, n.expiry = true, l.now.Add(a.Lifetime)
		case RemoveVIPs:
			n.has = false
		case Transition:
			n.trans = append(n.trans, simTrans{at: l.now, Transition: a})
			l.logf("%s %v->%v: %s", n.name, a.From, a.To, a.Reason)
		case Done:
			n.running = false
		case Refused:
			n.refused = append(n.refused, a)
			l.logf("%s refused: %s", n.name, a.Reason)
		case Fence:
			n.fences = append(n.fences, l.now)
			l.logf("%s fences %s (last seen %s)", n.name, a.MAC, l.rel(a.LastSeen))
			if l.fence != nil {
				l.schedule(l.now.Add(simFenceDelay), func() {
					err := l.fence(n, a)
					l.logf("%s: fence of %s done: %v", n.name, a.MAC, err)
					if n.running {
						l.handle(n, FenceResult{Err: err, Attempt: a.Attempt})
					}
				})
			}
		}
	}
}

// simFenceDelay is how long the simulated fence command runs.
const simFenceDelay = 100 * time.Millisecond

func (l *lan) send(from *simNode, p *arp.Packet) {
	if !from.powered {
		return
	}
	bcast := bytes.Equal(p.Destination, arp.Broadcast)
	for _, to := range l.nodes {
		if to == from || !bcast && !bytes.Equal(p.Destination, to.mac) || l.cut[[2]int{from.idx, to.idx}] {
			continue
		}
		if l.lossy(from.idx) || l.lossy(to.idx) {
			continue
		}
		var d time.Duration
		if l.delay != nil {
			d = l.delay(from.idx, to.idx)
		}
		l.schedule(l.now.Add(d), func() { l.receive(from, to, p) })
	}
	// The client's cache follows gratuitous ARPs and replies to it.
	if bcast && !l.cut[[2]int{from.idx, len(l.nodes)}] && !p.IsProbe() && p.SenderIP == vip1 {
		l.schedule(l.now, func() { l.client, l.clientSeen = p.SenderHardwareAddr, l.now })
	}
}

// lossy draws whether a frame crossing node i's link is lost.
func (l *lan) lossy(i int) bool {
	q, ok := l.loss[i]
	if !ok || q <= 0 {
		return false
	}
	if l.lossRNG.Float64() < q {
		l.lost++
		return true
	}
	return false
}

func (l *lan) receive(from, to *simNode, p *arp.Packet) {
	if !to.powered || l.cut[[2]int{from.idx, to.idx}] {
		return
	}
	// The kernel answers a probe for an address it has, without a trailer.
	if p.IsProbe() && slices.Contains(l.vips, p.TargetIP) && to.has {
		l.send(to, arp.NewReply(to.mac, p.SenderHardwareAddr, p.TargetIP, p.SenderIP, nil))
	}
	if to.running {
		// With auth, the daemons' frames (all with a trailer) are sealed;
		// the kernels' replies and the attacker's frames are not.
		l.handle(to, Frame{Packet: p, Authenticated: l.auth && from.idx >= 0 && p.Trailer != nil})
	}
}

// step runs the earliest pending thing if it is not after end.
func (l *lan) step(end time.Time) bool {
	type cand struct {
		at time.Time
		fn func()
	}
	var cands []cand
	consider := func(at time.Time, fn func()) {
		switch {
		case len(cands) == 0 || at.Before(cands[0].at):
			cands = append(cands[:0], cand{at, fn})
		case at.Equal(cands[0].at):
			cands = append(cands, cand{at, fn})
		}
	}
	if len(l.queue) > 0 {
		consider(l.queue[0].at, func() {
			ev := l.queue[0]
			l.queue = l.queue[1:]
			ev.fn()
		})
	}
	for _, n := range l.nodes {
		if n.has && n.powered {
			consider(n.expiry, func() {
				l.logf("%s: VIP lifetime expired", n.name)
				n.has = false
				if n.running {
					for _, v := range l.vips {
						l.handle(n, AddrChanged{Addr: v, Present: false})
					}
				}
			})
		}
	}
	for _, n := range l.nodes {
		if !n.running {
			continue
		}
		dl := n.m.Deadline()
		if dl.IsZero() {
			continue
		}
		spin := n.ticked && !dl.After(n.lastTick)
		if spin {
			dl = n.lastTick.Add(spinStep)
		}
		consider(dl, func() {
			if spin {
				n.spins++
			}
			n.ticked, n.lastTick = true, l.now
			l.handle(n, Tick{})
		})
	}
	if len(cands) == 0 || cands[0].at.After(end) {
		return false
	}
	c := cands[0]
	if l.rng != nil && len(cands) > 1 {
		c = cands[l.rng.IntN(len(cands))]
	}
	if c.at.After(l.now) {
		l.now = c.at
	}
	c.fn()
	l.check()
	l.steps++
	if l.steps > 3_000_000 {
		l.t.Fatalf("simulation does not progress at %s\n%s", l.rel(l.now), l.dumpTrace(40))
	}
	return true
}

func (l *lan) runUntil(d time.Duration) {
	end := t0.Add(d)
	for l.step(end) {
	}
	l.now = end
}

func (l *lan) check() {
	holders, kernels := len(l.holders()), 0
	for _, n := range l.nodes {
		if n.powered && n.has {
			kernels++
		}
	}
	if holders > 1 && len(l.doubleHolderAt) < 20 {
		l.doubleHolderAt = append(l.doubleHolderAt, l.now)
	}
	if kernels > 1 && len(l.doubleKernelAt) < 20 {
		l.doubleKernelAt = append(l.doubleKernelAt, l.now)
	}
	l.maxHolders = max(l.maxHolders, holders)
	l.maxKernels = max(l.maxKernels, kernels)
}

// holders returns the running nodes in StateHolder.
func (l *lan) holders() []*simNode {
	var hs []*simNode
	for _, n := range l.nodes {
		if n.running && n.m.State() == StateHolder {
			hs = append(hs, n)
		}
	}
	return hs
}

// wantSoleHolder checks that exactly one live node holds the VIP, that only
// its kernel has it, that the others are standby, and that the client
// reaches it.
func (l *lan) wantSoleHolder(want *simNode) {
	l.t.Helper()
	hs := l.holders()
	if len(hs) != 1 || want != nil && hs[0] != want {
		l.t.Fatalf("at %s: holders %v, want exactly %v\n%s", l.rel(l.now), names(hs), want, l.dumpTrace(40))
	}
	h := hs[0]
	for _, n := range l.nodes {
		if n == h || !n.running {
			continue
		}
		if s := n.m.State(); s != StateStandby {
			l.t.Fatalf("at %s: %s is %v, want standby", l.rel(l.now), n.name, s)
		}
		if n.has && n.powered {
			l.t.Fatalf("at %s: %s's kernel has the VIP too", l.rel(l.now), n.name)
		}
		if !bytes.Equal(n.m.Holder(), h.mac) {
			l.t.Errorf("at %s: %s believes the holder is %v, want %s", l.rel(l.now), n.name, n.m.Holder(), h.mac)
		}
	}
	if !h.has {
		l.t.Fatalf("at %s: holder %s's kernel lacks the VIP", l.rel(l.now), h.name)
	}
	if !l.ignoreClient && !bytes.Equal(l.client, h.mac) {
		l.t.Errorf("at %s: the client's ARP cache maps %v to %v (last updated %s), want holder %s %v",
			l.rel(l.now), vip1, l.client, l.rel(l.clientSeen), h.name, h.mac)
	}
}

func (n *simNode) String() string {
	if n == nil {
		return "<nil>"
	}
	return n.name
}

func names(ns []*simNode) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	return s
}

// firstHolder returns the first transition to holder at or after from.
func (l *lan) firstHolder(from time.Time) (*simNode, time.Time) {
	var best *simNode
	var at time.Time
	for _, n := range l.nodes {
		for _, tr := range n.trans {
			if tr.To == StateHolder && !tr.at.Before(from) && (best == nil || tr.at.Before(at)) {
				best, at = n, tr.at
			}
		}
	}
	return best, at
}

// transitionsAfter counts a node's transitions at or after from.
func (n *simNode) transitionsAfter(from time.Time) []simTrans {
	var ts []simTrans
	for _, tr := range n.trans {
		if !tr.at.Before(from) {
			ts = append(ts, tr)
		}
	}
	return ts
}

func (n *simNode) becameHolderAfter(from time.Time) bool {
	for _, tr := range n.transitionsAfter(from) {
		if tr.To == StateHolder {
			return true
		}
	}
	return false
}

func (l *lan) spins() int {
	s := 0
	for _, n := range l.nodes {
		s += n.spins
	}
	return s
}

// report logs the measurement and, when the daemon would have spun, says so.
func (l *lan) report(format string, args ...any) {
	l.t.Helper()
	l.t.Logf(format, args...)
	if s := l.spins(); s > 0 {
		l.t.Logf("  note: %d Ticks left a Deadline in the past (busy loop in the daemon; see TestDeadlineMovesPastTick)", s)
	}
}

func (l *lan) wantNoDoubleHolder() {
	l.t.Helper()
	if l.maxHolders > 1 {
		l.t.Fatalf("two live holders at once at %v\n%s", l.doubleHolderAt, l.dumpTrace(60))
	}
}

// eachProfile runs f as one subtest per shipped timing profile.
func eachProfile(t *testing.T, f func(t *testing.T, tm Timing)) {
	for _, name := range profiles {
		t.Run(name, func(t *testing.T) { f(t, profileTiming(name)) })
	}
}

// (a) Simultaneous start: the best node holds, nobody flaps.
func TestSimSimultaneousStart(t *testing.T) {
	eachProfile(t, func(t *testing.T, tm Timing) {
		l := newLAN(t, tm, 200, 150, 100)
		for i := range l.nodes {
			l.start(i, 0)
		}
		l.runUntil(10 * time.Second)
		l.wantSoleHolder(l.nodes[0])
		l.wantNoDoubleHolder()
		_, at := l.firstHolder(t0)
		for _, n := range l.nodes {
			want := 2 // init->probing->standby
			if n == l.nodes[0] {
				want = 3 // init->probing->candidate->holder
			}
			if len(n.trans) != want {
				t.Errorf("%s made %d transitions, want %d: %v", n.name, len(n.trans), want, n.trans)
			}
		}
		l.report("simultaneous start: %s holds after %v", l.nodes[0].name, at.Sub(t0))
	})
}

// (a) Staggered starts: the first node to find the VIP free keeps it.
func TestSimStaggeredStart(t *testing.T) {
	eachProfile(t, func(t *testing.T, tm Timing) {
		// A node finds the VIP free after Misses unanswered probes; the
		// gaps straddle that.
		free := time.Duration(tm.Misses) * tm.CheckInterval
		orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
		for _, gap := range []time.Duration{time.Millisecond, free / 5, free - time.Millisecond, free, free + 250*time.Millisecond} {
			for _, order := range orders {
				t.Run(fmt.Sprintf("gap %v order %v", gap, order), func(t *testing.T) {
					l := newLAN(t, tm, 200, 150, 100)
					for k, i := range order {
						l.start(i, time.Duration(k)*gap)
					}
					l.runUntil(10 * time.Second)
					first, at := l.firstHolder(t0)
					l.wantSoleHolder(first)
					l.wantNoDoubleHolder()
					// Exactly one claim in the whole run: nobody was preempted.
					claims := 0
					for _, n := range l.nodes {
						for _, tr := range n.trans {
							if tr.To == StateHolder {
								claims++
							}
						}
					}
					if claims != 1 {
						t.Fatalf("%d claims, want 1\n%s", claims, l.dumpTrace(40))
					}
					if gap > free && first != l.nodes[order[0]] {
						t.Fatalf("%s holds, want the first started %s", first, l.nodes[order[0]])
					}
					l.report("gap %v order %v: %s holds at %v", gap, order, first, at.Sub(t0))
				})
			}
		}
	})
}

// settle starts the three nodes together and runs until the 200 one has
// held for a while.
func settled(t *testing.T, tm Timing, delay time.Duration) *lan {
	l := newLAN(t, tm, 200, 150, 100)
	if delay > 0 {
		l.delay = func(from, to int) time.Duration { return delay }
	}
	for i := range l.nodes {
		l.start(i, 0)
	}
	l.runUntil(2 * time.Second)
	l.wantSoleHolder(l.nodes[0])
	return l
}

// phases are offsets added to failure instants, to catch every alignment
// with the probe schedule.
func phases(step time.Duration, n int) []time.Duration {
	var ps []time.Duration
	for k := range n {
		ps = append(ps, time.Duration(k)*step)
	}
	return ps
}

type stats struct {
	min, max, sum time.Duration
	n             int
}

func (s *stats) add(d time.Duration) {
	if s.n == 0 || d < s.min {
		s.min = d
	}
	s.max = max(s.max, d)
	s.sum += d
	s.n++
}

func (s stats) String() string {
	if s.n == 0 {
		return "none"
	}
	return fmt.Sprintf("min %v avg %v max %v (n=%d)", s.min, s.sum/time.Duration(s.n), s.max, s.n)
}

// (b) The holder loses power: the 150 node takes over within
// (Misses+1) x CheckInterval plus a claim slot.
func TestSimPowerOff(t *testing.T) {
	for _, name := range profiles {
		prof := struct {
			name string
			tm   Timing
		}{name, profileTiming(name)}
		for _, delay := range []time.Duration{0, 500 * time.Microsecond} {
			t.Run(fmt.Sprintf("%s delay %v", prof.name, delay), func(t *testing.T) {
				tm := prof.tm
				bound := time.Duration(tm.Misses+1)*tm.CheckInterval + tm.ClaimSlot + 4*delay
				var st stats
				for _, ph := range phases(tm.CheckInterval/10+time.Millisecond/3, 13) {
					l := settled(t, tm, delay)
					off := 2*time.Second + ph
					l.at(off, func() { l.powerOff(l.nodes[0]) })
					l.runUntil(off + 5*time.Second)
					l.wantSoleHolder(l.nodes[1])
					l.wantNoDoubleHolder()
					if l.nodes[2].becameHolderAfter(t0.Add(off)) {
						t.Fatalf("the 100 node claimed\n%s", l.dumpTrace(40))
					}
					n, at := l.firstHolder(t0.Add(off))
					if n != l.nodes[1] {
						t.Fatalf("first claim by %s", n)
					}
					took := at.Sub(t0.Add(off))
					if took > bound {
						t.Errorf("failover took %v, want <= %v\n%s", took, bound, l.dumpTrace(40))
					}
					st.add(took)
					if s := l.spins(); s > 0 {
						t.Logf("phase %v: %d spinning ticks", ph, s)
					}
				}
				t.Logf("power off, %s profile, delay %v: failover %v (bound %v)", prof.name, delay, st, bound)
			})
		}
	}
}

// (c) Graceful stop: the next best holds at once.
func TestSimGracefulStop(t *testing.T) {
	eachProfile(t, testSimGracefulStop)
}

func testSimGracefulStop(t *testing.T, tm Timing) {
	for _, delay := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprint("delay ", delay), func(t *testing.T) {
			var st stats
			for _, ph := range phases(7*time.Millisecond, 10) {
				l := settled(t, tm, delay)
				stop := 2*time.Second + ph
				l.at(stop, func() { l.handle(l.nodes[0], Stop{}) })
				l.runUntil(stop + 3*time.Second)
				l.wantSoleHolder(l.nodes[1])
				l.wantNoDoubleHolder()
				if l.nodes[0].running || l.nodes[0].has {
					t.Fatalf("stopped node still running or holding")
				}
				if l.nodes[2].becameHolderAfter(t0.Add(stop)) {
					t.Fatalf("the 100 node claimed\n%s", l.dumpTrace(40))
				}
				_, at := l.firstHolder(t0.Add(stop))
				took := at.Sub(t0.Add(stop))
				if took > 5*time.Millisecond+2*delay {
					t.Errorf("failover took %v\n%s", took, l.dumpTrace(30))
				}
				st.add(took)
			}
			t.Logf("graceful stop, delay %v: failover %v", delay, st)
		})
	}
}

// (d) kill -9: the daemon dies but its kernel keeps the VIP (and answers
// for it) until the lifetime expires; nobody may take over before that.
func TestSimKill9(t *testing.T) {
	eachProfile(t, testSimKill9)
}

func testSimKill9(t *testing.T, tm Timing) {
	var st, afterExpiry stats
	for _, ph := range phases(137*time.Millisecond, 8) {
		l := settled(t, tm, 200*time.Microsecond)
		kill := 2*time.Second + ph
		var expiry time.Time
		l.at(kill, func() { l.kill(l.nodes[0]); expiry = l.nodes[0].expiry })
		l.runUntil(kill + 6*time.Second)
		l.wantSoleHolder(l.nodes[1])
		l.wantNoDoubleHolder()
		if l.maxKernels > 1 {
			t.Fatalf("two kernels had the VIP at once at %v\n%s", l.doubleKernelAt, l.dumpTrace(40))
		}
		n, at := l.firstHolder(t0.Add(kill))
		if n != l.nodes[1] || at.Before(expiry) {
			t.Fatalf("%s claimed at %s, before the old VIP expired at %s", n, l.rel(at), l.rel(expiry))
		}
		st.add(at.Sub(t0.Add(kill)))
		afterExpiry.add(at.Sub(expiry))
		if d := at.Sub(expiry); d > 4*tm.CheckInterval+tm.ClaimSlot {
			t.Errorf("took over %v after the expiry", d)
		}
	}
	t.Logf("kill -9: failover after kill %v; after lifetime expiry %v", st, afterExpiry)
}

// partitionRun cuts the holder n0 off from n1, n2 and the client at
// 2s+cutPhase for 5s+healPhase, checks that both sides hold before the heal,
// and runs 3s past the heal.
func partitionRun(t *testing.T, tm Timing, cutPhase, healPhase time.Duration) (l *lan, healAt time.Time, takeover time.Duration) {
	t.Helper()
	l = settled(t, tm, 200*time.Microsecond)
	cut := 2*time.Second + cutPhase
	heal := cut + 5*time.Second + healPhase
	l.at(cut, func() { l.partition([]int{0}, []int{1, 2}) })
	l.at(heal, func() { l.heal() })
	l.runUntil(heal - time.Millisecond)
	if hs := l.holders(); len(hs) != 2 || hs[0] != l.nodes[0] || hs[1] != l.nodes[1] {
		t.Fatalf("during the partition: holders %v, want n0 and n1\n%s", names(hs), l.dumpTrace(30))
	}
	_, at := l.firstHolder(t0.Add(cut))
	healAt = t0.Add(heal)
	l.runUntil(heal + 3*time.Second)
	return l, healAt, at.Sub(t0.Add(cut))
}

func partitionPhases() (cut, heal []time.Duration) {
	for k := range 12 {
		cut = append(cut, time.Duration(k)*113*time.Millisecond)
		heal = append(heal, time.Duration(k*379%1000)*time.Millisecond)
	}
	return cut, heal
}

// (e) The holder is cut off for 5s: both sides hold; after the heal the
// better one keeps the VIP within a beacon interval, the other is standby,
// and nobody flaps.
func TestSimPartitionHeal(t *testing.T) {
	eachProfile(t, testSimPartitionHeal)
}

func testSimPartitionHeal(t *testing.T, tm Timing) {
	var during, resolve stats
	cuts, heals := partitionPhases()
	for k := range cuts {
		t.Run(fmt.Sprintf("cut+%v heal+%v", cuts[k], heals[k]), func(t *testing.T) {
			l, healAt, takeover := partitionRun(t, tm, cuts[k], heals[k])
			during.add(takeover)
			l.ignoreClient = true // see TestSimPartitionHealClientsFollowWinner
			l.wantSoleHolder(l.nodes[0])
			var lost time.Time
			for _, tr := range l.nodes[1].transitionsAfter(healAt) {
				if tr.From == StateHolder && tr.To == StateStandby {
					lost = tr.at
				}
			}
			if lost.IsZero() {
				t.Fatalf("n1 never gave the VIP up\n%s", l.dumpTrace(30))
			}
			resolve.add(lost.Sub(healAt))
			if d := lost.Sub(healAt); d > tm.BeaconInterval+10*time.Millisecond {
				t.Errorf("two holders for %v after the heal", d)
			}
			if l.nodes[2].becameHolderAfter(healAt) {
				t.Errorf("the 100 node claimed after the heal (flap)\n%s", l.dumpTrace(40))
			}
			if tr := l.nodes[0].transitionsAfter(healAt); len(tr) != 0 {
				t.Errorf("the winner made transitions after the heal: %v", tr)
			}
		})
	}
	t.Logf("partition: the cut-off side's new holder after %v; after the heal one holder within %v", during, resolve)
}

// After a heal, clients that followed the loser during the partition must
// be told where the VIP is now: the winner has to announce. It does only
// when it is the one that noticed the conflict; when the loser notices first
// (its holder probe answered by the winner's kernel) it yields silently and
// the clients keep the loser's MAC, which no longer has the VIP.
func TestSimPartitionHealClientsFollowWinner(t *testing.T) {
	eachProfile(t, testSimPartitionHealClientsFollowWinner)
}

func testSimPartitionHealClientsFollowWinner(t *testing.T, tm Timing) {
	cuts, heals := partitionPhases()
	for k := range cuts {
		t.Run(fmt.Sprintf("cut+%v heal+%v", cuts[k], heals[k]), func(t *testing.T) {
			l, healAt, _ := partitionRun(t, tm, cuts[k], heals[k])
			if !bytes.Equal(l.client, l.nodes[0].mac) {
				t.Errorf("BUG: 3s after the heal the client still maps %v to %v (last gratuitous ARP at %s, from n1 during the partition); "+
					"n1 yielded at %s without the winner n0 re-announcing\n%s",
					vip1, l.client, l.rel(l.clientSeen), l.rel(lastLoss(l.nodes[1], healAt)), l.dumpTrace(6))
			}
		})
	}
}

func lastLoss(n *simNode, from time.Time) time.Time {
	var at time.Time
	for _, tr := range n.transitionsAfter(from) {
		if tr.From == StateHolder {
			at = tr.at
		}
	}
	return at
}

// (f) Five nodes with random priorities, start offsets and link delays.
func TestSimRandom(t *testing.T) {
	eachProfile(t, testSimRandom)
}

func testSimRandom(t *testing.T, tm Timing) {
	var settle stats
	for seed := range uint64(20) {
		for _, together := range []bool{true, false} {
			t.Run(fmt.Sprintf("seed %d together %v", seed, together), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				prios := make([]uint8, 5)
				for i := range prios {
					prios[i] = uint8(1 + rng.IntN(255))
					if seed%4 == 0 && i > 0 && rng.IntN(2) == 0 {
						prios[i] = prios[0] // ties: the lower MAC wins
					}
				}
				l := newLAN(t, tm, prios...)
				l.rng = rand.New(rand.NewPCG(seed, 8))
				var delays [5][5]time.Duration
				for i := range delays {
					for j := range delays[i] {
						delays[i][j] = time.Duration(rng.IntN(2001)) * time.Microsecond
					}
				}
				l.delay = func(from, to int) time.Duration { return delays[from][to] }
				for i := range l.nodes {
					var off time.Duration
					if !together {
						off = time.Duration(rng.IntN(2001)) * time.Microsecond
					}
					l.start(i, off)
				}
				l.runUntil(5 * time.Second)
				best := l.nodes[0]
				for _, n := range l.nodes[1:] {
					if n.prio > best.prio || n.prio == best.prio && bytes.Compare(n.mac, best.mac) < 0 {
						best = n
					}
				}
				var want *simNode
				if together {
					want = best
				}
				l.wantSoleHolder(want)
				if l.maxHolders > 1 {
					t.Logf("transient double holders at %v", l.doubleHolderAt)
				}
				_, at := l.firstHolder(t0)
				last := at
				for _, n := range l.nodes {
					for _, tr := range n.trans {
						if tr.at.After(last) {
							last = tr.at
						}
					}
				}
				settle.add(last.Sub(t0))
				if hs := l.holders(); hs[0] != best {
					t.Logf("prios %v: %s holds, best is %s", prios, hs[0], best)
				}
			})
		}
	}
	t.Logf("random 5 nodes: settled (last transition) after %v", settle)
}

// inject makes a host outside floatip (an attacker) send the frame mk(k)
// every interval from t0+from to t0+until, to every node (broadcast).
func (l *lan) inject(from, until, every time.Duration, mk func(k int) *arp.Packet) {
	attacker := &simNode{idx: -1, name: "attacker", powered: true}
	k := 0
	var next func()
	next = func() {
		if l.now.After(t0.Add(until)) {
			return
		}
		p := mk(k)
		k++
		for _, to := range l.nodes {
			l.receive(attacker, to, p)
		}
		l.schedule(l.now.Add(every), next)
	}
	l.at(from, next)
}

// forgedMAC is the k-th of many fresh MACs an attacker makes up.
func forgedMAC(k int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xbd, byte(k >> 16), byte(k >> 8), byte(k), 0x01}
}

// About 11 forged claiming probes a second, each claiming priority 255,
// must not keep the VIP on no node after the holder fails: the claim
// deferral has a ceiling. (Before it, each one pushed the candidates'
// claim back by a claim slot and a check interval, for ever.)
func TestSimForgedClaimingProbesDoNotStallFailover(t *testing.T) {
	for _, fresh := range []bool{true, false} {
		t.Run(map[bool]string{true: "fresh MAC each frame", false: "one MAC"}[fresh], func(t *testing.T) {
			eachProfile(t, func(t *testing.T, tm Timing) {
				l := settled(t, tm, 200*time.Microsecond)
				// Just faster than each one defers the claim.
				every := (tm.ClaimSlot + tm.CheckInterval) * 9 / 10
				l.inject(1900*time.Millisecond, time.Minute, every, func(k int) *arp.Packet {
					from := forgedMAC(0)
					if fresh {
						from = forgedMAC(k)
					}
					return arp.NewProbe(from, arp.Broadcast, vip1, &arp.Trailer{Kind: arp.KindProbe, Priority: 255, Flags: arp.FlagClaiming})
				})
				off := 2 * time.Second
				l.at(off, func() { l.powerOff(l.nodes[0]) })
				l.runUntil(off + 20*time.Second)
				l.ignoreClient = true // the attacker's frames do not move the client
				l.wantSoleHolder(l.nodes[1])
				l.wantNoDoubleHolder()
				_, at := l.firstHolder(t0.Add(off))
				l.report("forged claiming probes: n1 holds %v after the power-off", at.Sub(t0.Add(off)))
			})
		})
	}
}

// Forged probes from a "better" node must not keep starting nodes probing
// for ever: better peers reset a probing node's misses only for a bounded
// time.
func TestSimForgedBetterProbesDoNotStallStart(t *testing.T) {
	eachProfile(t, func(t *testing.T, tm Timing) {
		l := newLAN(t, tm, 200, 150, 100)
		// Just faster than the nodes probe: one between any two checks.
		l.inject(0, time.Minute, tm.CheckInterval*9/10, func(k int) *arp.Packet {
			return arp.NewProbe(forgedMAC(0), arp.Broadcast, vip1, &arp.Trailer{Kind: arp.KindProbe, Priority: 255})
		})
		for i := range l.nodes {
			l.start(i, time.Duration(i)*time.Millisecond)
		}
		l.runUntil(20 * time.Second)
		l.ignoreClient = true
		l.wantSoleHolder(l.nodes[0])
		_, at := l.firstHolder(t0)
		l.report("forged better probes at start: n0 holds after %v", at.Sub(t0))
	})
}

// withAuthLAN turns on AuthRequired on every node: the daemons' frames are
// authenticated, the kernels' and the attacker's are not.
func (l *lan) withAuthLAN() *lan {
	l.auth = true
	for _, n := range l.nodes {
		n.m.p.AuthRequired = true
	}
	return l
}

// The attack of the issue: 20 forged "holder" frames with priority 254 and
// a standby's MAC. Nothing may move: the holder keeps the VIP, nobody is
// fenced, and the standby whose MAC was borrowed counts the frames as
// spoofing.
func TestSimForgedHolderFramesMoveNothing(t *testing.T) {
	for _, auth := range []bool{false, true} {
		t.Run(map[bool]string{false: "without auth", true: "with auth"}[auth], func(t *testing.T) {
			eachProfile(t, func(t *testing.T, tm Timing) {
				l := newLAN(t, tm, 200, 150, 100)
				if auth {
					l.withAuthLAN()
				}
				l.configure(func(i int, p *Params) { p.Fencing = FenceBestEffort })
				l.fence = func(n *simNode, f Fence) error { return nil }
				l.delay = func(from, to int) time.Duration { return 200 * time.Microsecond }
				for i := range l.nodes {
					l.start(i, 0)
				}
				l.runUntil(2 * time.Second)
				l.wantSoleHolder(l.nodes[0])
				victim := l.nodes[2]
				l.inject(2*time.Second, 2*time.Second+19*10*time.Millisecond, 10*time.Millisecond, func(k int) *arp.Packet {
					return arp.NewAnnouncement(victim.mac, vip1, &arp.Trailer{Kind: arp.KindAnnounce, Priority: 254, Flags: arp.FlagHolder})
				})
				l.runUntil(10 * time.Second)
				l.ignoreClient = true // the forged announcements poisoned the client's cache: ARP spoofing
				l.wantSoleHolder(l.nodes[0])
				for _, n := range l.nodes {
					if len(n.fences) != 0 {
						t.Fatalf("%s fenced at %v\n%s", n.name, relAll(l, n.fences), l.dumpTrace(40))
					}
					if tr := n.transitionsAfter(t0.Add(2 * time.Second)); len(tr) != 0 {
						t.Fatalf("%s moved: %v\n%s", n.name, tr, l.dumpTrace(40))
					}
				}
				if s := victim.m.Stats().Spoofed; s != 20 {
					t.Fatalf("the impersonated node counted %d spoofed frames, want 20", s)
				}
			})
		})
	}
}

// The failure scenarios again with AuthRequired on every node: the
// kernels' replies carry no tag, so liveness comes from the holder's own
// authenticated answers.
func TestSimAuthRequired(t *testing.T) {
	eachProfile(t, func(t *testing.T, tm Timing) {
		t.Run("power off", func(t *testing.T) {
			l := settledAuth(t, tm)
			l.at(2*time.Second, func() { l.powerOff(l.nodes[0]) })
			l.runUntil(7 * time.Second)
			l.wantSoleHolder(l.nodes[1])
			l.wantNoDoubleHolder()
			_, at := l.firstHolder(t0.Add(2 * time.Second))
			if bound := time.Duration(tm.Misses+1)*tm.CheckInterval + tm.ClaimSlot + time.Millisecond; at.Sub(t0.Add(2*time.Second)) > bound {
				t.Errorf("failover took %v, want <= %v", at.Sub(t0.Add(2*time.Second)), bound)
			}
		})
		t.Run("graceful stop", func(t *testing.T) {
			l := settledAuth(t, tm)
			l.at(2*time.Second, func() { l.handle(l.nodes[0], Stop{}) })
			l.runUntil(5 * time.Second)
			l.wantSoleHolder(l.nodes[1])
			l.wantNoDoubleHolder()
		})
		t.Run("kill -9", func(t *testing.T) {
			l := settledAuth(t, tm)
			var expiry time.Time
			l.at(2*time.Second, func() { l.kill(l.nodes[0]); expiry = l.nodes[0].expiry })
			l.runUntil(8 * time.Second)
			l.wantSoleHolder(l.nodes[1])
			if l.maxKernels > 1 {
				t.Fatalf("two kernels had the VIP at once at %v\n%s", l.doubleKernelAt, l.dumpTrace(40))
			}
			if _, at := l.firstHolder(t0.Add(2 * time.Second)); at.Before(expiry) {
				t.Fatalf("claimed at %s, before the old VIP expired at %s", l.rel(at), l.rel(expiry))
			}
		})
		t.Run("partition heal", func(t *testing.T) {
			l := settledAuth(t, tm)
			l.at(2*time.Second, func() { l.partition([]int{0}, []int{1, 2}) })
			l.at(7*time.Second, func() { l.heal() })
			l.runUntil(10 * time.Second)
			l.ignoreClient = true
			l.wantSoleHolder(l.nodes[0])
		})
	})
}

func settledAuth(t *testing.T, tm Timing) *lan {
	l := newLAN(t, tm, 200, 150, 100).withAuthLAN()
	l.delay = func(from, to int) time.Duration { return 200 * time.Microsecond }
	for i := range l.nodes {
		l.start(i, 0)
	}
	l.runUntil(2 * time.Second)
	l.wantSoleHolder(l.nodes[0])
	return l
}

// Forged announcements from ever new MACs, none of which ever answers a
// check, must not keep the VIP on no node after the holder fails: a
// standby follows a new claimant only a bounded number of times without
// an answer.
func TestSimForgedAnnouncementsDoNotStallFailover(t *testing.T) {
	eachProfile(t, func(t *testing.T, tm Timing) {
		l := settled(t, tm, 200*time.Microsecond)
		l.inject(1900*time.Millisecond, time.Minute, tm.CheckInterval*9/10, func(k int) *arp.Packet {
			return arp.NewAnnouncement(forgedMAC(k), vip1, &arp.Trailer{Kind: arp.KindAnnounce, Priority: 254, Flags: arp.FlagHolder})
		})
		off := 2 * time.Second
		l.at(off, func() { l.powerOff(l.nodes[0]) })
		l.runUntil(off + 20*time.Second)
		hs := l.holders()
		if len(hs) != 1 || hs[0] != l.nodes[1] {
			t.Fatalf("20s after the power-off under forged announcements: holders %v, want n1\n%s", names(hs), l.dumpTrace(60))
		}
		_, at := l.firstHolder(t0.Add(off))
		l.report("forged announcements: n1 holds %v after the power-off", at.Sub(t0.Add(off)))
	})
}

// (g) Loss on the holder's link, both ways: a standby's check is a round
// trip, lost with p = 1-(1-q)^2 (0.36 at q = 20 %). Misses plain checks
// in a row lost happen several times a minute at that rate; the quick
// confirmation checks (confirm.go) make a false failover need 21 in a
// row. Over simulated minutes the VIP must not move, and no second holder
// appear; and a power-off under the same loss is still detected: the
// standby takes over once, and only after the holder went dark.
func TestSimLossNoFalseFailover(t *testing.T) {
	eachProfile(t, func(t *testing.T, tm Timing) {
		for _, q := range []float64{0.2, 0.3} {
			for seed := uint64(1); seed <= 3; seed++ {
				t.Run(fmt.Sprintf("loss %.0f%% seed %d", q*100, seed), func(t *testing.T) {
					l := newLAN(t, tm, 200, 150)
					l.start(0, 0)
					l.start(1, 100*time.Millisecond)
					l.runUntil(2 * time.Second)
					l.wantSoleHolder(l.nodes[0])
					l.loss = map[int]float64{0: q}
					l.lossRNG = rand.New(rand.NewPCG(seed, 11))
					from := l.now
					const span = 120 * time.Second
					l.runUntil(2*time.Second + span)
					if l.lost == 0 {
						t.Fatal("no frame was lost: the loss is not applied")
					}
					for _, n := range l.nodes {
						if tr := n.transitionsAfter(from); len(tr) > 0 {
							t.Fatalf("%s changed state under %.0f%% loss (%d frames lost in %v): %v\n%s", n.name, q*100, l.lost, span, tr[0].Transition, l.dumpTrace(40))
						}
					}
					l.wantNoDoubleHolder()
					t.Logf("%.0f%% loss both ways on the holder's link, %v: %d frames lost, no move", q*100, span, l.lost)

					// Power off the holder, loss still on: the standby
					// takes over, once, after the power-off.
					off := l.now.Add(7 * time.Millisecond)
					l.schedule(off, func() { l.powerOff(l.nodes[0]) })
					l.runUntil(2*time.Second + span + 5*time.Second)
					tr := l.nodes[1].transitionsAfter(from)
					var got []string
					for _, x := range tr {
						got = append(got, x.From.String()+"->"+x.To.String())
					}
					if want := []string{"standby->candidate", "candidate->holder"}; !slices.Equal(got, want) {
						t.Fatalf("after the power-off: standby transitions %v, want %v\n%s", got, want, l.dumpTrace(40))
					}
					if tr[0].at.Before(off) {
						t.Fatalf("the standby left standby at %s, before the power-off at %s", l.rel(tr[0].at), l.rel(off))
					}
					t.Logf("power off under loss: taken over %v after", tr[1].at.Sub(off))
				})
			}
		}
	})
}
