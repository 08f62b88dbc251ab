package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/quorum"
	"github.com/floatip/floatip/internal/testutil"
)

// One lab with a three-member etcd cluster serves every test; each test
// uses its own key prefix. Tests that stop members start them again.
var shared struct {
	once sync.Once
	lab  *lab.Lab
	etcd *lab.EtcdCluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.etcd != nil {
		shared.etcd.Close()
	}
	if shared.lab != nil {
		shared.lab.Down()
	}
	os.Exit(code)
}

func cluster(t *testing.T) (*lab.Lab, *lab.EtcdCluster) {
	t.Helper()
	testutil.RequireRoot(t)
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		l, err := lab.Up(ctx, lab.Options{Prefix: fmt.Sprintf("qe%d", os.Getpid()%1000000), Nodes: 3})
		if err != nil {
			shared.err = err
			return
		}
		shared.lab = l
		shared.etcd, shared.err = l.StartEtcd(ctx, lab.EtcdOptions{})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	// A previous test may have left the cluster electing a leader.
	if err := shared.etcd.WaitHealthy(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return shared.lab, shared.etcd
}

// stamped is an event with the time the test received it (one clock for
// every node: the test process's).
type stamped struct {
	at time.Time
	ev quorum.Event
}

// node is a Backend and one group's Elector on a lab node, recording
// every event.
type node struct {
	t    *testing.T
	name string
	b    *Backend
	e    quorum.Elector

	mu       sync.Mutex
	closedAt time.Time // when close was called: a daemon removes its VIPs first
	evs      []stamped
	changed  chan struct{}
	done     chan struct{}
}

func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

func newNode(t *testing.T, n *lab.Node, c *lab.EtcdCluster, prefix string, ttl time.Duration) *node {
	t.Helper()
	return newNodeCfg(t, n, quorum.EtcdConfig{Endpoints: c.Endpoints(), TTL: ttl, Prefix: prefix})
}

func newNodeCfg(t *testing.T, n *lab.Node, cfg quorum.EtcdConfig) *node {
	t.Helper()
	b, err := New(cfg, Options{Name: n.Name, Logger: testLogger(t, n.Name), Dialer: n.Dialer()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Elector("g")
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{t: t, name: n.Name, b: b, e: e, changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(nd.done)
		for {
			select {
			case ev := <-e.Events():
				nd.mu.Lock()
				nd.evs = append(nd.evs, stamped{time.Now(), ev})
				close(nd.changed)
				nd.changed = make(chan struct{})
				nd.mu.Unlock()
			case <-b.ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { nd.close() })
	return nd
}

func (n *node) close() {
	n.mu.Lock()
	if n.closedAt.IsZero() {
		n.closedAt = time.Now()
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.b.Close(ctx); err != nil {
		n.t.Logf("%s: close: %v", n.name, err)
	}
	<-n.done
}

func (n *node) events() []stamped {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]stamped(nil), n.evs...)
}

// wait returns the first event at index from or later for which match
// holds, waiting up to timeout.
func (n *node) wait(from int, timeout time.Duration, what string, match func(quorum.Event) bool) (stamped, int) {
	n.t.Helper()
	deadline := time.After(timeout)
	for {
		n.mu.Lock()
		evs, ch := n.evs, n.changed
		n.mu.Unlock()
		for i := from; i < len(evs); i++ {
			if match(evs[i].ev) {
				return evs[i], i
			}
		}
		select {
		case <-ch:
		case <-deadline:
			n.t.Fatalf("%s: no %s within %v; events: %s", n.name, what, timeout, describe(evs))
		}
	}
}

func (n *node) mark() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.evs)
}

func describe(evs []stamped) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %T%+v", e.at.Format("15:04:05.000"), e.ev, e.ev)
	}
	return b.String()
}

func isGranted(ev quorum.Event) bool { _, ok := ev.(quorum.Granted); return ok }

func isLost(c quorum.Cause) func(quorum.Event) bool {
	return func(ev quorum.Event) bool { l, ok := ev.(quorum.Lost); return ok && l.Cause == c }
}

func isHolder(name string) func(quorum.Event) bool {
	return func(ev quorum.Event) bool { h, ok := ev.(quorum.Holder); return ok && h.Name == name }
}

// deadlineOf is the deadline a Granted or Extended carries.
func deadlineOf(ev quorum.Event) (time.Time, bool) {
	switch ev := ev.(type) {
	case quorum.Granted:
		return ev.Deadline, true
	case quorum.Extended:
		return ev.Deadline, true
	}
	return time.Time{}, false
}

// lastDeadline is the latest deadline the node was told (Granted or
// Extended) among events before index upto.
func (n *node) lastDeadline(upto int) time.Time {
	var dl time.Time
	for i, e := range n.events() {
		if i >= upto {
			break
		}
		if d, ok := deadlineOf(e.ev); ok {
			dl = d
		}
	}
	return dl
}

func prefix(t *testing.T) string { return "/floatip-test/" + t.Name() }

// noOverlap fails when both nodes hold at once, judged from their event
// streams on the test's clock: a Granted ends with the next Lost.
func noOverlap(t *testing.T, a, b *node) {
	t.Helper()
	type span struct{ from, to time.Time }
	spans := func(n *node) []span {
		var out []span
		var cur *span
		for _, e := range n.events() {
			switch e.ev.(type) {
			case quorum.Granted:
				cur = &span{from: e.at}
			case quorum.Lost:
				if cur != nil {
					cur.to = e.at
					out = append(out, *cur)
					cur = nil
				}
			}
		}
		if cur != nil {
			n.mu.Lock()
			cur.to = n.closedAt
			n.mu.Unlock()
			if cur.to.IsZero() {
				cur.to = time.Now().Add(time.Hour)
			}
			out = append(out, *cur)
		}
		return out
	}
	for _, x := range spans(a) {
		for _, y := range spans(b) {
			if x.from.Before(y.to) && y.from.Before(x.to) {
				t.Errorf("%s held %v..%v while %s held %v..%v", a.name, x.from, x.to, b.name, y.from, y.to)
			}
		}
	}
}

func TestCampaignWaitResignClose(t *testing.T) {
	l, c := cluster(t)
	ttl := 3 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	b := newNode(t, l.Node(2), c, prefix(t), ttl)

	a.e.Campaign()
	ga, _ := a.wait(0, 10*time.Second, "Granted", isGranted)
	tokA := ga.ev.(quorum.Granted).Token
	if tokA <= 0 || !ga.ev.(quorum.Granted).Deadline.After(ga.at) {
		t.Fatalf("Granted %+v at %v: want a positive token and a deadline in the future", ga.ev, ga.at)
	}
	if st := a.b.Status(); st.State != quorum.StateLive || !st.Reachable || len(st.Groups) != 1 || st.Groups[0].Role != quorum.RoleHolding {
		t.Errorf("holder's status %+v: want live, reachable, holding", st)
	}

	b.e.Campaign()
	b.wait(0, 10*time.Second, "Holder n1", func(ev quorum.Event) bool {
		h, ok := ev.(quorum.Holder)
		return ok && h.Name == "n1" && h.Token == tokA && !h.Self
	})

	// Resign: the standby gets the key at once, not at the lease's expiry
	// (a's lease stays alive: its backend keeps it).
	mark := a.mark()
	resignAt := time.Now()
	dlA := a.lastDeadline(mark)
	a.e.Resign()
	a.wait(mark, 10*time.Second, "Lost resigned", isLost(quorum.CauseResigned))
	gb, _ := b.wait(0, 10*time.Second, "Granted", isGranted)
	if !gb.at.After(resignAt) {
		t.Errorf("standby granted at %v, before the holder resigned at %v", gb.at, resignAt)
	}
	if !gb.at.Before(dlA) {
		t.Errorf("standby granted at %v, not before the resigned holder's deadline %v: it waited for the lease", gb.at, dlA)
	}
	if tokB := gb.ev.(quorum.Granted).Token; tokB <= tokA {
		t.Errorf("new holder's token %d is not above the old one's %d", tokB, tokA)
	}

	// Graceful stop of the holder (Close revokes the lease): a, who
	// campaigns again, gets the key before b's deadline.
	a.e.Campaign()
	a.wait(mark, 10*time.Second, "Holder n2", isHolder("n2"))
	markA := a.mark()
	dlB := b.lastDeadline(b.mark())
	closeAt := time.Now()
	b.close()
	ga2, _ := a.wait(markA, 10*time.Second, "Granted", isGranted)
	if !ga2.at.After(closeAt) || !ga2.at.Before(dlB) {
		t.Errorf("granted at %v: want after the holder's Close at %v and before its deadline %v", ga2.at, closeAt, dlB)
	}
	noOverlap(t, a, b)
}

func TestFenceWithToken(t *testing.T) {
	l, c := cluster(t)
	ttl := 3 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	b := newNode(t, l.Node(2), c, prefix(t), ttl)

	a.e.Campaign()
	g1, _ := a.wait(0, 10*time.Second, "Granted", isGranted)
	old := g1.ev.(quorum.Granted).Token
	// Resign and campaign again at once: the key is given up all the same
	// and won again, under the same name (same lease) with a new token.
	a.e.Resign()
	a.e.Campaign()
	_, i := a.wait(0, 10*time.Second, "Lost", isLost(quorum.CauseResigned))
	g2, _ := a.wait(i, 10*time.Second, "Granted", isGranted)
	cur := g2.ev.(quorum.Granted).Token
	if cur <= old {
		t.Fatalf("tokens %d then %d: want growing", old, cur)
	}
	b.e.Campaign()
	b.wait(0, 10*time.Second, "Holder n1", isHolder("n1"))

	// The guard itself: a's key, but the stale token of its first tenure.
	key := fmt.Sprintf("%s/g/%x", prefix(t), a.b.Status().Lease)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := deleteGuarded(ctx, b.b.cli, key, old); !errors.Is(err, quorum.ErrStaleToken) {
		t.Fatalf("guarded delete of %s with stale token %d: %v, want ErrStaleToken", key, old, err)
	}
	// Through the elector.
	b.e.Fence(old)
	f, _ := b.wait(0, 10*time.Second, "Fenced", func(ev quorum.Event) bool { _, ok := ev.(quorum.Fenced); return ok })
	if err := f.ev.(quorum.Fenced).Err; !errors.Is(err, quorum.ErrStaleToken) {
		t.Fatalf("Fence(stale %d): %v, want ErrStaleToken", old, err)
	}
	if st := a.b.Status(); st.Groups[0].Role != quorum.RoleHolding {
		t.Fatalf("a stale fence took the key: holder's status %+v", st)
	}

	dlA := a.lastDeadline(a.mark())
	b.e.Fence(cur)
	f, _ = b.wait(0, 10*time.Second, "Fenced ok", func(ev quorum.Event) bool {
		fe, ok := ev.(quorum.Fenced)
		return ok && fe.Token == cur
	})
	if err := f.ev.(quorum.Fenced).Err; err != nil {
		t.Fatalf("Fence(current %d): %v", cur, err)
	}
	a.wait(0, 10*time.Second, "Lost key deleted", isLost(quorum.CauseKeyDeleted))
	gb, _ := b.wait(0, 10*time.Second, "Granted", isGranted)
	if !gb.at.Before(dlA) {
		t.Errorf("granted at %v, not before the fenced holder's deadline %v: fencing did not hand the key over at once", gb.at, dlA)
	}
	// No noOverlap here: the fenced holder is alive in this test, and a
	// fence means the fenced node is off (the fence command said so), so
	// its Lost may come a few milliseconds after the fencer's Granted
	// (seen: 8 ms). Safety after a fence rests on the fence command.
}

// The holder cut off from etcd's client port: its own deadline passes
// before etcd gives the key to the standby.
func TestPartitionedHolderLosesFirst(t *testing.T) {
	l, c := cluster(t)
	ttl := 3 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	b := newNode(t, l.Node(2), c, prefix(t), ttl)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)
	b.e.Campaign()
	b.wait(0, 10*time.Second, "Holder n1", isHolder("n1"))

	if err := l.Node(1).BlockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Node(1).UnblockEtcdClient() })
	blockedAt := time.Now()
	lost, i := a.wait(0, 4*ttl, "Lost expired", isLost(quorum.CauseExpired))
	dlA := a.lastDeadline(i)
	if lost.at.Before(dlA) {
		t.Errorf("Lost at %v before the deadline %v", lost.at, dlA)
	}
	if dlA.After(blockedAt.Add(ttl)) {
		t.Errorf("deadline %v extended by a keepalive sent after the block at %v", dlA, blockedAt)
	}
	gb, _ := b.wait(0, 4*ttl, "Granted", isGranted)
	if !gb.at.After(dlA) {
		t.Errorf("standby granted at %v, before the cut-off holder's deadline %v: two holders", gb.at, dlA)
	}
	t.Logf("holder's deadline %v after the block; standby granted %v after that deadline",
		dlA.Sub(blockedAt).Round(time.Millisecond), gb.at.Sub(dlA).Round(time.Millisecond))
	if st := a.b.Status(); st.Reachable || st.State == quorum.StateLive {
		t.Errorf("cut-off node's status %+v: want unreachable and not live", st)
	}
	noOverlap(t, a, b)
}

// Two of three members stopped: the holder's deadline is not extended,
// and nobody gets the key until the quorum is back.
func TestQuorumLost(t *testing.T) {
	l, c := cluster(t)
	ttl := 3 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	b := newNode(t, l.Node(2), c, prefix(t), ttl)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)
	b.e.Campaign()
	b.wait(0, 10*time.Second, "Holder n1", isHolder("n1"))

	// Stop the leader and one follower, so that the member left knows at
	// once that it has no leader. (A leader left alone would go on
	// renewing leases until it steps down, up to two election timeouts
	// later; etcd covers that by extending every lease by an election
	// timeout when a new leader takes over.)
	m2 := findLeader(t, a.b.cli, c)
	var m3 *lab.EtcdMember
	for _, m := range c.Members() {
		if m != m2 {
			m3 = m
			break
		}
	}
	t.Cleanup(func() {
		for _, m := range []*lab.EtcdMember{m2, m3} {
			if !m.Running() {
				m.Start()
			}
		}
		c.WaitHealthy(context.Background(), 20*time.Second)
	})
	stopAt := time.Now()
	if err := errors.Join(m2.Kill(), m3.Kill()); err != nil {
		t.Fatal(err)
	}
	_, i := a.wait(0, 4*ttl, "Lost expired", isLost(quorum.CauseExpired))
	dlA := a.lastDeadline(i)
	if dlA.After(stopAt.Add(ttl)) {
		t.Errorf("deadline %v extended without quorum (members stopped at %v)", dlA, stopAt)
	}
	restartAt := time.Now()
	if err := errors.Join(m2.Start(), m3.Start()); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Someone gets the key again, but only after the quorum came back.
	var got stamped
	select {
	case got = <-firstGranted(a, i+1):
	case got = <-firstGranted(b, 0):
	case <-time.After(6 * ttl):
		t.Fatalf("nobody granted after the quorum came back; a: %s\nb: %s", describe(a.events()), describe(b.events()))
	}
	if !got.at.After(restartAt) {
		t.Errorf("granted at %v while the quorum was lost (members restarted at %v)", got.at, restartAt)
	}
	for _, e := range b.events() {
		if isGranted(e.ev) && e.at.Before(restartAt) {
			t.Errorf("standby granted at %v without quorum", e.at)
		}
	}
	noOverlap(t, a, b)
}

func firstGranted(n *node, from int) <-chan stamped {
	ch := make(chan stamped, 1)
	go func() {
		for {
			n.mu.Lock()
			evs, changed := n.evs, n.changed
			n.mu.Unlock()
			for _, e := range evs[min(from, len(evs)):] {
				if isGranted(e.ev) {
					ch <- e
					return
				}
			}
			select {
			case <-changed:
			case <-n.done:
				return
			}
		}
	}()
	return ch
}

// The etcd leader restarted (a leader election, a second or two): with
// TTL 5 s the holder keeps the key throughout.
func TestLeaderHiccupKeepsKey(t *testing.T) {
	l, c := cluster(t)
	ttl := 5 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	g, _ := func() (stamped, int) { a.e.Campaign(); return a.wait(0, 10*time.Second, "Granted", isGranted) }()

	leader := findLeader(t, a.b.cli, c)
	hiccupAt := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	healthyAt := time.Now()
	// A keepalive sent after the cluster is whole again extends the deadline.
	a.wait(0, 2*ttl, "Extended after the hiccup", func(ev quorum.Event) bool {
		x, ok := ev.(quorum.Extended)
		return ok && x.Deadline.After(healthyAt.Add(ttl/2))
	})
	for _, e := range a.events() {
		switch ev := e.ev.(type) {
		case quorum.Lost:
			t.Errorf("key lost at %v (%v) during the leader hiccup", e.at, ev.Cause)
		case quorum.Granted:
			if ev.Token != g.ev.(quorum.Granted).Token {
				t.Errorf("granted again (token %d) at %v: the key was lost and won back", ev.Token, e.at)
			}
		}
	}
	// Nor would the VIP have gone: each deadline, when it arrived, gave a
	// kernel lifetime lasting until the next one arrived.
	var prev *stamped
	var worst time.Duration
	for _, e := range a.events() {
		if _, ok := deadlineOf(e.ev); !ok {
			continue
		}
		if prev != nil {
			pdl, _ := deadlineOf(prev.ev)
			lft, ok := quorum.VIPLifetime(prev.at, pdl)
			if gap := e.at.Sub(prev.at); !ok || !prev.at.Add(lft).After(e.at) {
				t.Errorf("deadline at %v gave a VIP lifetime of %v (ok %v), but the next came %v later: the VIP would have dropped", prev.at, lft, ok, gap)
			} else {
				worst = max(worst, gap)
			}
		}
		prev = &e
	}
	t.Logf("leader %s restarted; cluster healthy %v after the kill; longest wait between deadlines %v",
		leader.Name, healthyAt.Sub(hiccupAt).Round(time.Millisecond), worst.Round(time.Millisecond))
}

func findLeader(t *testing.T, cli *clientv3.Client, c *lab.EtcdCluster) *lab.EtcdMember {
	t.Helper()
	for _, m := range c.Members() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, strings.TrimPrefix(m.ClientURL(), "http://"))
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return m
		}
	}
	t.Fatal("no etcd member says it is the leader")
	return nil
}

// A fence sent while etcd cannot answer (quorum lost for longer than one
// request's timeout) is retried, and deletes the key once the quorum is
// back, within a TTL: it does not give up after one attempt and leave the
// standby waiting for the fenced holder's lease to expire.
func TestFenceRetriesUntilEtcdAnswers(t *testing.T) {
	l, c := cluster(t)
	// A long TTL, so that neither lease is over while the quorum is lost.
	ttl := 10 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	b := newNode(t, l.Node(2), c, prefix(t), ttl)
	a.e.Campaign()
	g, _ := a.wait(0, 10*time.Second, "Granted", isGranted)
	tok := g.ev.(quorum.Granted).Token
	b.e.Campaign()
	b.wait(0, 10*time.Second, "Holder n1", isHolder("n1"))

	// The leader and one follower down: the member left has no leader, so
	// every request of the fence times out until they are back.
	m1 := findLeader(t, a.b.cli, c)
	var m2 *lab.EtcdMember
	for _, m := range c.Members() {
		if m != m1 {
			m2 = m
			break
		}
	}
	t.Cleanup(func() {
		for _, m := range []*lab.EtcdMember{m1, m2} {
			if !m.Running() {
				m.Start()
			}
		}
		c.WaitHealthy(context.Background(), 20*time.Second)
	})
	if err := errors.Join(m1.Kill(), m2.Kill()); err != nil {
		t.Fatal(err)
	}
	from := b.mark()
	b.e.Fence(tok)
	// The outage outlasts several request timeouts (the fault's length,
	// not an assertion).
	time.Sleep(3 * time.Second)
	if err := errors.Join(m1.Start(), m2.Start()); err != nil {
		t.Fatal(err)
	}
	f, _ := b.wait(from, 2*ttl, "Fenced", func(ev quorum.Event) bool { _, ok := ev.(quorum.Fenced); return ok })
	if err := f.ev.(quorum.Fenced).Err; err != nil {
		t.Fatalf("Fence(%d) across the outage: %v, want the key deleted once etcd answers", tok, err)
	}
	a.wait(0, 2*ttl, "Lost key deleted", isLost(quorum.CauseKeyDeleted))
	b.wait(from, 2*ttl, "Granted", isGranted)
	// No noOverlap here: a fence is for a holder known to be dead, and this
	// one, alive, learns of the delete only after the fencer may be granted.
}

// The client's own keepalive stream for the session ending (as it does a
// TTL after its stream went to a powered-off member's connection) does
// not end a lease that etcd still renews: the holder keeps its key and
// its deadline goes on being extended.
func TestSessionEndKeepsLiveLease(t *testing.T) {
	l, c := cluster(t)
	ttl := 3 * time.Second
	a := newNode(t, l.Node(1), c, prefix(t), ttl)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)
	v := a.b.view()
	from := a.mark()
	v.l.sess.Orphan() // ends the session's keepalive stream, as a stuck stream's timeout does
	select {
	case <-v.l.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
	// Two extensions after the session ended: the keeper's keepalives go on.
	_, i := a.wait(from, 2*ttl, "Extended", func(ev quorum.Event) bool { _, ok := ev.(quorum.Extended); return ok })
	a.wait(i+1, 2*ttl, "Extended again", func(ev quorum.Event) bool { _, ok := ev.(quorum.Extended); return ok })
	for _, e := range a.events()[from:] {
		if _, ok := e.ev.(quorum.Lost); ok {
			t.Fatalf("lost the key when the session's keepalive stream ended: %s", describe(a.events()[from:]))
		}
	}
	if st := a.b.Status(); st.Groups[0].Role != quorum.RoleHolding || st.Lease != int64(v.l.id) {
		t.Fatalf("status %+v: want still holding on lease %x", st, int64(v.l.id))
	}
}
