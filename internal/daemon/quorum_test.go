package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/quorum"
)

// A fake referee for the daemon's quorum wiring: one in-memory "etcd"
// shared by the nodes' backends, with leases that expire on the bubble's
// fake clock, a first-come queue per group, and a switch that makes one
// node's backend unreachable. The real etcd is tested in
// test/integration/quorum_test.go.

const fakeTTL = 5 * time.Second

type fakeReferee struct {
	mu       sync.Mutex
	rev      int64
	queues   map[string][]*fakeElector
	backends []*fakeBackend
	resigned []string // "node/group" of every Resign that deleted a key
	granted  []string // "node/group" of every grant, in order
	// rtt is how long before the referee's renewal the node sent the
	// keepalive (the answer's way back): the node's deadline counts from
	// the send time.
	rtt time.Duration
}

type fakeBackend struct {
	ref       *fakeReferee
	name      string
	reachable bool
	expires   time.Time // the referee's expiry of the lease (zero: none)
	deadline  time.Time // the node's deadline
	electors  map[string]*fakeElector
	closed    bool
	stop      chan struct{}
	done      chan struct{}
}

type fakeElector struct {
	b       *fakeBackend
	group   string
	events  chan quorum.Event
	want    bool
	queued  bool
	holding bool
	resigns uint64 // Resign calls
}

func newFakeReferee() *fakeReferee { return &fakeReferee{queues: map[string][]*fakeElector{}} }

// newBackend is a NewQuorum for the daemon.
func (r *fakeReferee) newBackend(_ quorum.EtcdConfig, name string, _ *slog.Logger) (quorum.Backend, error) {
	b := &fakeBackend{ref: r, name: name, reachable: true, electors: map[string]*fakeElector{}, stop: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	r.backends = append(r.backends, b)
	b.keepalive(time.Now())
	r.mu.Unlock()
	go b.loop()
	return b, nil
}

func (r *fakeReferee) backend(name string) *fakeBackend {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.backends {
		if b.name == name {
			return b
		}
	}
	return nil
}

func (r *fakeReferee) setReachable(name string, ok bool) {
	b := r.backend(name)
	r.mu.Lock()
	b.reachable = ok
	r.mu.Unlock()
}

// keyHolder is the node that owns the group's key ("" for none).
func (r *fakeReferee) keyHolder(group string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.queues[group]; len(q) > 0 && q[0].holding {
		return q[0].b.name
	}
	return ""
}

func (e *fakeElector) push(ev quorum.Event) {
	select {
	case e.events <- ev:
	default:
		panic("fake elector: event queue full")
	}
}

// keepalive renews b's lease (under ref.mu), taking a new one if it expired.
func (b *fakeBackend) keepalive(now time.Time) {
	if !b.reachable {
		return
	}
	if b.expires.IsZero() {
		for _, e := range b.electors {
			if e.want && !e.queued {
				b.ref.enqueue(e)
			}
		}
	}
	b.expires = now.Add(fakeTTL)
	b.deadline = quorum.LeaseDeadline(now.Add(-b.ref.rtt), fakeTTL)
	for _, e := range b.electors {
		if e.holding {
			e.push(quorum.Extended{Deadline: b.deadline})
		}
	}
}

func (b *fakeBackend) loop() {
	defer close(b.done)
	t := time.NewTicker(fakeTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		r := b.ref
		r.mu.Lock()
		b.keepalive(now)
		// The node's side: a deadline passed unextended loses the keys.
		if !now.Before(b.deadline) {
			for _, e := range b.electors {
				if e.holding {
					e.holding = false
					e.push(quorum.Lost{Cause: quorum.CauseExpired})
				}
			}
		}
		// The referee's side: expired leases lose their keys.
		for _, bb := range r.backends {
			if !bb.expires.IsZero() && now.After(bb.expires) {
				bb.expires = time.Time{}
				for _, e := range bb.electors {
					r.dequeue(e)
				}
			}
		}
		r.settleAll()
		r.mu.Unlock()
	}
}

func (r *fakeReferee) enqueue(e *fakeElector) {
	r.queues[e.group] = append(r.queues[e.group], e)
	e.queued = true
}

func (r *fakeReferee) dequeue(e *fakeElector) {
	if !e.queued {
		return
	}
	r.queues[e.group] = slices.DeleteFunc(r.queues[e.group], func(x *fakeElector) bool { return x == e })
	e.queued = false
}

func (r *fakeReferee) settleAll() {
	for _, q := range r.queues {
		if len(q) == 0 {
			continue
		}
		h := q[0]
		if !h.holding && h.b.reachable && time.Now().Before(h.b.deadline) {
			h.holding = true
			r.rev++
			r.granted = append(r.granted, h.b.name+"/"+h.group)
			h.push(quorum.Granted{Token: quorum.Token(r.rev), Deadline: h.b.deadline, Resigns: h.resigns})
			// Every node's elector watches the key (as etcd's does).
			for _, b := range r.backends {
				if e := b.electors[h.group]; e != nil && !b.closed {
					e.push(quorum.Holder{Name: h.b.name, Token: quorum.Token(r.rev), Self: e == h})
				}
			}
		}
	}
}

func (b *fakeBackend) Elector(group string) (quorum.Elector, error) {
	b.ref.mu.Lock()
	defer b.ref.mu.Unlock()
	e := &fakeElector{b: b, group: group, events: make(chan quorum.Event, 1024)}
	b.electors[group] = e
	return e, nil
}

func (b *fakeBackend) Status() quorum.Status {
	b.ref.mu.Lock()
	defer b.ref.mu.Unlock()
	st := quorum.Status{State: quorum.StateLive, Reachable: b.reachable, Deadline: b.deadline}
	for g, e := range b.electors {
		gs := quorum.GroupStatus{Group: g}
		if e.holding {
			gs.Role = quorum.RoleHolding
		} else if e.want {
			gs.Role = quorum.RoleCampaigning
		}
		st.Groups = append(st.Groups, gs)
	}
	return st
}

func (b *fakeBackend) Close(ctx context.Context) error {
	close(b.stop)
	<-b.done
	r := b.ref
	r.mu.Lock()
	defer r.mu.Unlock()
	b.closed = true
	if b.reachable { // revoke the lease
		b.expires = time.Time{}
		for _, e := range b.electors {
			r.dequeue(e)
		}
		r.settleAll()
	}
	return nil
}

func (e *fakeElector) Campaign() {
	r := e.b.ref
	r.mu.Lock()
	defer r.mu.Unlock()
	e.want = true
	if !e.queued && e.b.reachable && !e.b.expires.IsZero() {
		r.enqueue(e)
		r.settleAll()
	}
}

func (e *fakeElector) Resign() {
	r := e.b.ref
	r.mu.Lock()
	defer r.mu.Unlock()
	e.want = false
	e.resigns++
	if !e.b.reachable {
		return // the key goes when the lease expires
	}
	if e.holding {
		e.holding = false
		r.resigned = append(r.resigned, e.b.name+"/"+e.group)
		e.push(quorum.Lost{Cause: quorum.CauseResigned})
	}
	r.dequeue(e)
	r.settleAll()
}

func (e *fakeElector) Fence(t quorum.Token) {
	e.push(quorum.Fenced{Token: t, Err: errors.New("fake referee: no fencing")})
}

func (e *fakeElector) Events() <-chan quorum.Event { return e.events }

func (e *fakeElector) Close() { e.Resign() }

// lifetimes records the lifetimes the daemon gives the VIPs.
type lifetimes struct {
	Addrs
	mu    sync.Mutex
	all   []time.Duration
	stall time.Duration // the next Claim returns this much later (the process froze around it)
	slow  time.Duration // every Claim takes this long (a loaded machine)
	// onRelease, when set, runs before each Release.
	onRelease func()
}

func (l *lifetimes) Release(vips []netip.Addr) error {
	l.mu.Lock()
	f := l.onRelease
	l.mu.Unlock()
	if f != nil {
		f()
	}
	return l.Addrs.Release(vips)
}

func (l *lifetimes) Claim(vips []netip.Addr, lifetime time.Duration) error {
	l.mu.Lock()
	l.all = append(l.all, lifetime)
	stall := l.stall + l.slow
	l.stall = 0
	l.mu.Unlock()
	err := l.Addrs.Claim(vips, lifetime)
	time.Sleep(stall)
	return err
}

func (l *lifetimes) max() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Max(append([]time.Duration{0}, l.all...))
}

func quorumConfig(node string, prio int) config.Config {
	c := testConfig(node, prio, grp("web", vip1.String()))
	// A lifetime longer than the lease: the lease must bound it.
	c.Timing.Lifetime = time.Minute
	q := &config.Quorum{Etcd: quorum.EtcdConfig{Endpoints: []string{"198.18.0.11:2379"}, TTL: fakeTTL}.WithDefaults()}
	c.Quorum = q
	c.Groups[0].Quorum = q
	return c
}

// quorumPair starts a (priority 200) and b (100) on one fake referee and
// waits until a holds the group.
func quorumPair(t *testing.T) (*fakeReferee, *fakeLAN, *testNode, *testNode) {
	t.Helper()
	ref := newFakeReferee()
	lan := &fakeLAN{}
	a, _ := lan.quorumNode(t, ref, "a", 200)
	b, _ := lan.quorumNode(t, ref, "b", 100)
	if h := soleHolder(t, "web", vip1, a, b); h != a {
		t.Fatalf("holder %s, want a", h.name)
	}
	return ref, lan, a, b
}

// quorumNode starts a node whose group has a quorum on ref.
func (l *fakeLAN) quorumNode(t *testing.T, ref *fakeReferee, node string, prio int) (*testNode, *lifetimes) {
	t.Helper()
	var lt *lifetimes
	n := l.newTestNode(t, quorumConfig(node, prio), func(d *Deps) {
		lt = &lifetimes{Addrs: d.Addrs}
		d.Addrs = lt
		d.NewQuorum = ref.newBackend
	})
	if err := n.d.openQuorums(n.cfg); err != nil {
		t.Fatal(err)
	}
	return n.start(), lt
}

func TestQuorumOneHolderOwnsTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref := newFakeReferee()
		lan := &fakeLAN{}
		a, alt := lan.quorumNode(t, ref, "a", 200)
		b, blt := lan.quorumNode(t, ref, "b", 100)
		h := soleHolder(t, "web", vip1, a, b)
		if got := ref.keyHolder("web"); got != h.name {
			t.Fatalf("%s holds the VIP, the key is %q's", h.name, got)
		}
		// The VIPs' kernel lifetime never outlasts the lease: with TTL
		// 5 s at most floor(5 s - KernelSlack) = 3 s.
		if m := max(alt.max(), blt.max()); m == 0 || m > 3*time.Second {
			t.Fatalf("longest VIP lifetime %v, want 1s..3s", m)
		}
		// Keepalives renew the lease: the holder keeps the VIP for a while.
		time.Sleep(4 * fakeTTL)
		if h2 := soleHolder(t, "web", vip1, a, b); h2 != h {
			t.Fatalf("holder changed from %s to %s while the referee was up", h.name, h2.name)
		}
		s, _ := h.d.Status(context.Background())
		q := s.Groups[0].Quorum
		if q == nil || q.Role != "holding" || !q.Reachable || q.LeaseDeadline.IsZero() {
			t.Fatalf("status quorum %+v, want holding, reachable, with a deadline", q)
		}
	})
}

func TestQuorumUnreachableHolderDropsBeforeTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref, _, a, b := quorumPair(t)
		// a cannot reach the referee (and still hears b on the LAN).
		ref.setReachable("a", false)
		cut := time.Now()
		for !(b.addrs.has(vip1) && b.state("web") == "holder") {
			if a.addrs.has(vip1) && b.addrs.has(vip1) {
				t.Fatalf("two holders %v after the cut", time.Since(cut))
			}
			if time.Since(cut) > time.Minute {
				t.Fatal("b never took over")
			}
			time.Sleep(time.Millisecond)
		}
		if a.addrs.has(vip1) {
			t.Fatal("a kept the VIP while b holds it")
		}
		// Cut off, a never claims again.
		for end := time.Now().Add(4 * fakeTTL); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if a.addrs.has(vip1) {
				t.Fatal("a claimed the VIP without the key")
			}
		}
		if s := a.state("web"); s == "holder" {
			t.Fatalf("a is %s", s)
		}
	})
}

func TestQuorumStandbyNeverClaimsWithoutKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref := newFakeReferee()
		lan := &fakeLAN{}
		a, _ := lan.quorumNode(t, ref, "a", 200)
		b, _ := lan.quorumNode(t, ref, "b", 100)
		h := soleHolder(t, "web", vip1, a, b)
		other := b
		if h == b {
			other = a
		}
		// The standby loses the referee, then the holder is unplugged from
		// everything (LAN and referee): its lease runs out.
		ref.setReachable(other.name, false)
		h.cut.Store(true)
		ref.setReachable(h.name, false)
		for end := time.Now().Add(10 * fakeTTL); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if other.addrs.has(vip1) {
				t.Fatal("the standby claimed without the key")
			}
		}
		if h.addrs.has(vip1) {
			t.Fatal("the unplugged holder kept the VIP past its lease deadline")
		}
		if s := other.state("web"); s != "candidate" {
			t.Fatalf("the standby is %s, want candidate (waiting for the key)", s)
		}
		// The referee is back: now it may.
		ref.setReachable(other.name, true)
		waitFor(t, "the standby to claim with the key", func() bool { return other.addrs.has(vip1) && other.state("web") == "holder" })
	})
}

func TestQuorumStopResignsBeforeLeaseExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref, _, a, b := quorumPair(t)
		stopped := time.Now()
		a.stop()
		if a.addrs.has(vip1) {
			t.Fatal("a kept the VIP after stopping")
		}
		waitFor(t, "b to take over", func() bool { return b.addrs.has(vip1) && b.state("web") == "holder" })
		// The key moved because a gave it up, not because its lease ran
		// out: a graceful stop moves the VIP at once.
		ref.mu.Lock()
		resigned := slices.Clone(ref.resigned)
		ref.mu.Unlock()
		if !slices.Contains(resigned, "a/web") {
			t.Fatalf("a did not resign its key (resigned: %v)", resigned)
		}
		if took := time.Since(stopped); took >= fakeTTL {
			t.Fatalf("b took over %v after a stopped: it waited for the lease", took)
		}
	})
}

// A graceful stop, `floatip release` and `floatip handover` under a
// referee hand the key over first: the standby owns the key before the old
// holder removes the VIP, and adds it on the release frame, never while
// the old holder still has it, and with no moment between (the fake LAN
// and addresses take no time).
func TestQuorumMovesHandKeyFirst(t *testing.T) {
	for _, move := range []string{"stop", "release", "handover"} {
		t.Run(move, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ref := newFakeReferee()
				lan := &fakeLAN{}
				a, alt := lan.quorumNode(t, ref, "a", 200)
				b, _ := lan.quorumNode(t, ref, "b", 100)
				c, _ := lan.quorumNode(t, ref, "c", 150)
				if h := soleHolder(t, "web", vip1, a, b, c); h != a {
					t.Fatalf("holder %s, want a", h.name)
				}
				// Let a hear the standbys' probes, so that it knows live ones.
				time.Sleep(time.Second)
				var keyAtRemove atomic.Value // the key's holder when a removes the VIP
				alt.mu.Lock()
				alt.onRelease = func() {
					if keyAtRemove.Load() == nil {
						keyAtRemove.Store(ref.keyHolder("web"))
					}
				}
				alt.mu.Unlock()
				// The best standby is c; a handover names b.
				want := c
				moved := make(chan error, 1)
				ctx := context.Background()
				switch move {
				case "stop":
					go func() { a.stop(); moved <- nil }()
				case "release":
					go func() { moved <- a.d.Release(ctx, "web") }()
				case "handover":
					want = b
					go func() { moved <- a.d.Handover(ctx, "web", "b") }()
				}
				start := time.Now()
				for a.addrs.has(vip1) {
					if b.addrs.has(vip1) || c.addrs.has(vip1) {
						t.Fatalf("two holders %v after the %s", time.Since(start), move)
					}
					if time.Since(start) > time.Minute {
						t.Fatal("a never removed the VIP")
					}
					time.Sleep(100 * time.Microsecond)
				}
				// (Every goroutine was blocked before this poll: the new
				// holder has handled a's release frame.)
				if !want.addrs.has(vip1) {
					t.Fatalf("the VIP was not on %s right after a removed it", want.name)
				}
				if got := keyAtRemove.Load(); got != want.name {
					t.Fatalf("a removed the VIP while the key was %q's, want %s's: the key was not handed over first", got, want.name)
				}
				if err := <-moved; err != nil {
					t.Fatalf("%s: %v", move, err)
				}
				if got := ref.keyHolder("web"); got != want.name {
					t.Fatalf("key holder %q, want %s", got, want.name)
				}
				waitFor(t, want.name+" to hold", func() bool { return want.state("web") == "holder" })
				if move != "stop" {
					waitFor(t, "a to be a standby", func() bool { return a.state("web") == "standby" })
				}
			})
		})
	}
}

// A holder frozen around the netlink call that renews the VIPs' lifetime
// (computed before the freeze, set after it) removes the VIPs at once: the
// lifetime would outlast the lease deadline.
func TestQuorumFrozenAroundClaimRemovesVIPs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref := newFakeReferee()
		lan := &fakeLAN{}
		a, alt := lan.quorumNode(t, ref, "a", 200)
		if h := soleHolder(t, "web", vip1, a); h != a {
			t.Fatal("a does not hold")
		}
		alt.mu.Lock()
		alt.stall = 2 * time.Second
		alt.mu.Unlock()
		// The next renewal stalls; right after it the VIP must be gone.
		waitFor(t, "the stalled renewal", func() bool {
			alt.mu.Lock()
			defer alt.mu.Unlock()
			return alt.stall == 0
		})
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		if a.addrs.has(vip1) {
			t.Fatal("the VIPs stayed after a renewal that outlasts the deadline")
		}
		if s := a.state("web"); s != "fault" {
			t.Fatalf("state %s after the stalled renewal, want fault (claim failed; it retries)", s)
		}
	})
}

// A netlink call that is slow but ordinary (200 ms on a loaded machine)
// does not look like a stall: the lifetime leaves room for the call
// (quorum.CallAllowance), so the holder keeps its VIPs renewal after
// renewal. Without that room the whole-second rounding often leaves a few
// milliseconds, and the post-call check removed a healthy holder's VIPs.
func TestQuorumSlowClaimKeepsVIPs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref := newFakeReferee()
		// Keepalives answered 480 ms after they were sent: the deadline
		// then leaves 15 ms beyond a whole-second lifetime and the slack.
		ref.rtt = 480 * time.Millisecond
		lan := &fakeLAN{}
		a, alt := lan.quorumNode(t, ref, "a", 200)
		if h := soleHolder(t, "web", vip1, a); h != a {
			t.Fatal("a does not hold")
		}
		alt.mu.Lock()
		alt.slow = 200 * time.Millisecond
		n0 := len(alt.all)
		alt.mu.Unlock()
		before := a.d.groups[0].snap.Load().Counters.Transitions
		time.Sleep(time.Minute)
		synctest.Wait()
		alt.mu.Lock()
		renewals := len(alt.all) - n0
		alt.mu.Unlock()
		if renewals < 10 {
			t.Fatalf("%d renewals in a minute, want the holder's regular ones", renewals)
		}
		if !a.addrs.has(vip1) || a.state("web") != "holder" {
			t.Fatalf("after %d slow renewals: state %s, VIP present %v; want holder with the VIP", renewals, a.state("web"), a.addrs.has(vip1))
		}
		if n := a.d.groups[0].snap.Load().Counters.Transitions - before; n != 0 {
			t.Fatalf("%d transitions during slow renewals, want none", n)
		}
	})
}

// A reload that drops the group's quorum restarts the group without it and
// closes the backend nobody uses any more (revoking its lease).
func TestQuorumReloadWithoutQuorumClosesBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ref := newFakeReferee()
		lan := &fakeLAN{}
		a, _ := lan.quorumNode(t, ref, "a", 200)
		soleHolder(t, "web", vip1, a)
		a.next = testConfig("a", 200, grp("web", vip1.String()))
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		b := ref.backend("a")
		ref.mu.Lock()
		closed := b.closed
		ref.mu.Unlock()
		if !closed {
			t.Fatal("the unused backend is still open after the reload")
		}
		soleHolder(t, "web", vip1, a)
		s, _ := a.d.Status(context.Background())
		if q := s.Groups[0].Quorum; q != nil {
			t.Fatalf("status still shows a quorum: %+v", q)
		}
	})
}
