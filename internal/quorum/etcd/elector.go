package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/floatip/floatip/internal/quorum"
)

// elector campaigns for one group. Its run goroutine owns the campaign
// state and is the only sender on events; helpers (the observer, the
// watch on the held key, fences) report to it on channels.
type elector struct {
	b      *Backend
	group  string
	pfx    string // Prefix/group; keys are pfx + "/" + lease in hex
	events chan quorum.Event
	wake   chan struct{} // capacity 1
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // observer, key watch, fences

	holderc chan quorum.Holder
	fencec  chan quorum.Fenced
	recheck chan struct{} // capacity 1: a fence ended, a campaign looks again

	mu      sync.Mutex
	want    bool
	resigns int // Resign calls: a Resign then Campaign still gives the key up
	fences  []quorum.Token
	closing context.Context // set by Close: bounds the final resign
	st      quorum.GroupStatus
}

func newElector(b *Backend, group string) *elector {
	ctx, cancel := context.WithCancel(b.ctx)
	e := &elector{
		b: b, group: group, pfx: b.cfg.Prefix + "/" + group,
		events: make(chan quorum.Event, 16), wake: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		holderc: make(chan quorum.Holder), fencec: make(chan quorum.Fenced),
		recheck: make(chan struct{}, 1),
		st:      quorum.GroupStatus{Group: group},
	}
	e.wg.Add(1)
	go e.observe()
	go e.run()
	return e
}

func (e *elector) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *elector) Campaign() {
	e.mu.Lock()
	e.want = true
	e.mu.Unlock()
	e.poke()
}

func (e *elector) Resign() {
	e.mu.Lock()
	e.want = false
	e.resigns++
	e.mu.Unlock()
	e.poke()
}

func (e *elector) Fence(t quorum.Token) {
	e.mu.Lock()
	e.fences = append(e.fences, t)
	e.mu.Unlock()
	e.poke()
}

func (e *elector) Events() <-chan quorum.Event { return e.events }

func (e *elector) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), e.b.ttl)
	defer cancel()
	e.closeCtx(ctx)
}

func (e *elector) closeCtx(ctx context.Context) {
	e.mu.Lock()
	if e.closing == nil {
		e.closing = ctx
	}
	e.mu.Unlock()
	e.poke()
	<-e.done
	e.cancel()
	e.wg.Wait()
	e.b.forget(e)
}

func (e *elector) status() quorum.GroupStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

func (e *elector) setStatus(role quorum.Role, token quorum.Token) {
	e.mu.Lock()
	e.st.Role, e.st.Token = role, token
	e.mu.Unlock()
}

// held is the key this node owns.
type held struct {
	el       *concurrency.Election
	l        *lease
	token    quorum.Token
	deadline time.Time // as last told to the machine
	deleted  chan struct{}
	stop     context.CancelFunc // stops the key watch
}

// owed is a key this node gave up whose delete failed: the backend keeps
// the lease alive, so its expiry never frees the key, and the standbys
// would wait for it for as long as this node runs. The elector deletes it
// (guarded by its revision) again until that succeeds or the lease is
// over (then the key goes with it, and Close revokes it).
type owed struct {
	key   string
	token quorum.Token
	l     *lease
}

type campaignResult struct {
	el  *concurrency.Election
	l   *lease
	rev int64 // the revision at which we checked that we lead
	err error
}

func (e *elector) run() {
	defer close(e.done)
	var (
		pending  []quorum.Event
		h        *held
		camp     chan campaignResult // non-nil while a campaign runs
		campL    *lease
		campStop context.CancelFunc
		retry    <-chan time.Time
		fails    streak // campaigns failing in a row
		resigned int    // Resign calls acted on
		owe      *owed  // a given-up key whose delete failed
		oweNow   bool   // delete owe on this pass
		oweAt    <-chan time.Time
	)
	push := func(ev quorum.Event) {
		// Coalesce: only the latest deadline and holder matter.
		if n := len(pending); n > 0 {
			switch ev.(type) {
			case quorum.Extended:
				if _, ok := pending[n-1].(quorum.Extended); ok {
					pending[n-1] = ev
					return
				}
			case quorum.Holder:
				if _, ok := pending[n-1].(quorum.Holder); ok {
					pending[n-1] = ev
					return
				}
			}
		}
		pending = append(pending, ev)
	}
	lose := func(c quorum.Cause, err error) {
		h.stop()
		h = nil
		e.setStatus(quorum.RoleIdle, 0)
		push(quorum.Lost{Cause: c, Err: err})
	}
	for {
		e.mu.Lock()
		want, closing, fences, resigns := e.want, e.closing, e.fences, e.resigns
		e.fences = nil
		e.mu.Unlock()
		newResign := resigns != resigned
		resigned = resigns
		v := e.b.view()
		for _, t := range fences {
			e.wg.Add(1)
			go e.fence(t)
		}
		if h != nil {
			switch {
			case closing != nil || !want || newResign:
				// Bounded by one request's time, not the TTL: a stop
				// must not wait on a cluster it cannot reach (the VIPs
				// are gone already, and Close revokes the lease).
				parent := e.ctx
				if closing != nil {
					parent = closing
				}
				rctx, cancel := context.WithTimeout(parent, e.b.resignTimeout())
				key := h.el.Key()
				err := h.el.Resign(rctx)
				cancel()
				switch {
				case err == nil:
					e.b.log.Info("etcd: resigned", "group", e.group)
				case closing != nil:
					e.b.log.Warn("etcd: resign failed; closing revokes the lease", "group", e.group, "err", err)
				default:
					e.b.log.Warn("etcd: resign failed; deleting the key again until etcd answers", "group", e.group, "err", err)
					owe, oweAt = &owed{key: key, token: h.token, l: h.l}, time.After(retryInterval)
				}
				lose(quorum.CauseResigned, err)
			case v.l != h.l:
				c := h.l.cause
				if c == 0 {
					c = quorum.CauseExpired
				}
				lose(c, nil)
			case v.deadline.After(h.deadline):
				h.deadline = v.deadline
				push(quorum.Extended{Deadline: v.deadline})
			}
		}
		if owe != nil {
			switch {
			case closing != nil || v.l != owe.l:
				owe, oweNow, oweAt = nil, false, nil // the lease (revoked by Close, or over) takes the key
			case oweNow:
				oweNow = false
				dctx, cancel := context.WithTimeout(e.ctx, e.b.resignTimeout())
				err := deleteGuarded(dctx, e.b.cli, owe.key, owe.token)
				cancel()
				if err == nil || errors.Is(err, quorum.ErrStaleToken) {
					e.b.log.Info("etcd: deleted the key given up earlier", "group", e.group, "token", int64(owe.token))
					owe, oweAt = nil, nil
				} else {
					oweAt = time.After(retryInterval)
				}
			}
		}
		if camp != nil && (closing != nil || !want || newResign || v.l != campL) {
			campStop()
		}
		if closing != nil && h == nil {
			if camp != nil {
				// Do not wait for the campaign to wind down (its clean-up
				// may wait for an unreachable cluster): the backend owns
				// it, and gives back a key it won meanwhile.
				e.b.wg.Add(1)
				go func(camp chan campaignResult) {
					defer e.b.wg.Done()
					if r := <-camp; r.err == nil {
						rctx, cancel := context.WithTimeout(e.b.ctx, e.b.ttl)
						defer cancel()
						_ = r.el.Resign(rctx)
					}
				}(camp)
			}
			return // undelivered events are dropped: nobody reads any more
		}
		if want && closing == nil && h == nil && camp == nil && retry == nil && owe == nil && v.l != nil && time.Now().Before(v.deadline) {
			cctx, stop := context.WithCancel(e.ctx)
			camp, campL, campStop = make(chan campaignResult, 1), v.l, stop
			e.setStatus(quorum.RoleCampaigning, 0)
			e.b.wg.Add(1)
			go e.campaign(cctx, v.l, camp)
		}
		if !want && h == nil && camp == nil {
			e.setStatus(quorum.RoleIdle, 0)
		}
		var out chan quorum.Event
		var next quorum.Event
		if len(pending) > 0 {
			out, next = e.events, pending[0]
		}
		var deleted chan struct{}
		if h != nil {
			deleted = h.deleted
		}
		select {
		case <-e.wake:
		case <-v.changed:
		case <-retry:
			retry = nil
		case <-oweAt:
			oweAt, oweNow = nil, true
		case out <- next:
			pending = pending[1:]
		case <-deleted:
			e.b.log.Warn("etcd: our key was deleted (fenced by another node)", "group", e.group)
			lose(quorum.CauseKeyDeleted, nil)
		case hv := <-e.holderc:
			e.mu.Lock()
			e.st.Holder = hv.Name
			e.mu.Unlock()
			push(hv)
		case f := <-e.fencec:
			push(f)
		case r := <-camp:
			campStop()
			camp = nil
			now := time.Now()
			e.mu.Lock()
			stillWant := e.want && e.closing == nil
			e.mu.Unlock()
			v := e.b.view()
			switch {
			case r.err != nil:
				if e.ctx.Err() == nil && !errors.Is(r.err, context.Canceled) {
					fails.fail(e.b.log, "etcd: campaign failed; retrying", "group", e.group, "err", r.err)
					retry = time.After(min(retryInterval<<min(fails.n-1, 4), maxBackoff))
				}
				e.setStatus(quorum.RoleIdle, 0)
			case !stillWant || v.l != r.l || !now.Before(v.deadline):
				// Won, but no longer wanted or no longer counted on:
				// give the key back at once (again until it is gone).
				e.setStatus(quorum.RoleIdle, 0)
				owe, oweNow = &owed{key: r.el.Key(), token: quorum.Token(r.el.Rev()), l: r.l}, true
			default:
				fails.ok()
				wctx, stop := context.WithCancel(e.ctx)
				h = &held{el: r.el, l: r.l, token: quorum.Token(r.el.Rev()), deadline: v.deadline, deleted: make(chan struct{}), stop: stop}
				e.wg.Add(1)
				go e.watchKey(wctx, r.el.Key(), r.el.Rev(), r.rev, h.deleted)
				e.setStatus(quorum.RoleHolding, h.token)
				e.b.log.Info("etcd: key granted", "group", e.group, "token", int64(h.token), "deadline_in", v.deadline.Sub(now).String())
				push(quorum.Granted{Token: h.token, Deadline: v.deadline, Resigns: uint64(resigned)})
			}
		}
	}
}

// campaign puts this node's key on lease l under the group's prefix and
// waits until it leads (the lowest create revision), checking with a read
// (bounded by a short timeout, retried) after every change a watch on the
// prefix reports, after every fence (e.recheck), and at least every
// recheckInterval. concurrency.Election.Campaign waits on a single watch
// and a Get with no per-request timeout: after a power-off the gRPC
// stream of either may sit on the dead member's connection until gRPC's
// keepalive declares it dead (seconds), so a key freed by fencing was
// handed over late. The key and its name are the ones Campaign would
// write (Prefix/group/<lease in hex>, the node's name), and the result is
// a concurrency.Election resumed on it, so Resign works as before.
func (e *elector) campaign(ctx context.Context, l *lease, res chan<- campaignResult) {
	defer e.b.wg.Done()
	key := fmt.Sprintf("%s/%x", e.pfx, int64(l.id))
	createRev, rev, err := e.waitLead(ctx, l, key)
	if err != nil {
		if ctx.Err() != nil {
			// Given up (Resign, lease over, Close): take the queued key
			// back so it cannot win later.
			dctx, cancel := context.WithTimeout(e.b.ctx, e.b.ttl)
			_, _ = e.b.cli.Delete(dctx, key)
			cancel()
		}
		res <- campaignResult{err: fmt.Errorf("campaign on %s: %w", e.pfx, err)}
		return
	}
	el := concurrency.ResumeElection(l.sess, e.pfx+"/", key, createRev)
	res <- campaignResult{el: el, l: l, rev: rev}
}

// recheckInterval bounds how long a campaign trusts its watch alone.
func (e *elector) recheckInterval() time.Duration { return e.b.attemptTimeout() }

// waitLead puts key (if it is not there yet) and returns its create
// revision and the revision at which a read found it leading.
func (e *elector) waitLead(ctx context.Context, l *lease, key string) (createRev, rev int64, err error) {
	every, attempt := e.b.hedgeEvery(), e.b.attemptTimeout()
	for createRev == 0 {
		// (Hedged: the put is idempotent.)
		tr, err := hedged(ctx, every, attempt, func(actx context.Context) (*clientv3.TxnResponse, error) {
			return e.b.cli.Txn(actx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, e.b.name, clientv3.WithLease(l.id))).
				Else(clientv3.OpGet(key)).Commit()
		})
		switch {
		case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			e.b.log.Debug("etcd: campaign put timed out; retrying", "group", e.group)
			continue // every attempt timed out: try again
		case err != nil:
			return 0, 0, err
		case tr.Succeeded:
			createRev = tr.Header.Revision
		default:
			createRev = tr.Responses[0].GetResponseRange().Kvs[0].CreateRevision
		}
	}
	for {
		resp, err := hedged(ctx, every, attempt, func(actx context.Context) (*clientv3.GetResponse, error) {
			return e.b.cli.Get(actx, e.pfx+"/", clientv3.WithFirstCreate()...)
		})
		if err != nil {
			if ctx.Err() != nil {
				return 0, 0, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				e.b.log.Debug("etcd: campaign read timed out; retrying", "group", e.group)
				continue
			}
			sleep(ctx, retryInterval)
			continue
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision > createRev {
			return 0, 0, fmt.Errorf("our key %s is gone (its lease expired?)", key)
		}
		if kv := resp.Kvs[0]; string(kv.Key) == key && kv.CreateRevision == createRev && kv.Lease == int64(l.id) {
			return createRev, resp.Header.Revision, nil
		}
		// Wait for a change: a watch event, a fence, or the interval.
		// WithRequireLeader: a member cut off from the others ends the
		// watch instead of serving it stale. Watch itself is called on its
		// own goroutine: it blocks until the client's shared watch stream
		// takes the request, and that stream may sit on a powered-off
		// member's connection for seconds; cancelling wctx ends the call
		// (and the Backend, which closes the client before it waits for
		// its goroutines, owns this one).
		wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
		changed := make(chan bool, 1) // true: the watch ended at once
		e.b.wg.Add(1)
		go func() {
			defer e.b.wg.Done()
			wch := e.b.cli.Watch(wctx, e.pfx+"/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
			wr, ok := <-wch
			changed <- !ok || wr.Err() != nil
		}()
		e.b.log.Debug("etcd: campaign waiting", "group", e.group, "leader_token", resp.Kvs[0].CreateRevision, "token", createRev)
		t := time.NewTimer(e.recheckInterval())
		select {
		case ended := <-changed:
			if ended && ctx.Err() == nil {
				sleep(ctx, retryInterval) // the watch ended at once: do not spin
			}
		case <-e.recheck:
			e.b.log.Debug("etcd: campaign looks again after a fence", "group", e.group)
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		stop()
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
	}
}

// watchKey closes deleted when the held key (created at createRev) is
// deleted or replaced, watching from after rev.
func (e *elector) watchKey(ctx context.Context, key string, createRev, rev int64, deleted chan<- struct{}) {
	defer e.wg.Done()
	for ctx.Err() == nil {
		wch := e.b.cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(rev+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != createRev {
					close(deleted)
					return
				}
			}
			rev = wr.Header.Revision
		}
		// The watch ended (member lost its leader, compaction): look.
		sleep(ctx, retryInterval)
		gctx, cancel := context.WithTimeout(ctx, e.b.attemptTimeout())
		resp, err := e.b.cli.Get(gctx, key)
		cancel()
		if err != nil {
			continue
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != createRev {
			close(deleted)
			return
		}
		rev = resp.Header.Revision
	}
}

// observe reports the group's holder (the key with the lowest create
// revision) whenever it changes.
func (e *elector) observe() {
	defer e.wg.Done()
	ctx := e.ctx
	if !e.b.waitReady(ctx) {
		return
	}
	var last *quorum.Holder
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, e.b.attemptTimeout())
		resp, err := e.b.cli.Get(gctx, e.pfx+"/", clientv3.WithFirstCreate()...)
		cancel()
		if err != nil {
			sleep(ctx, retryInterval)
			continue
		}
		h := quorum.Holder{}
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			h = quorum.Holder{Name: string(kv.Value), Token: quorum.Token(kv.CreateRevision)}
			if v := e.b.view(); v.l != nil && int64(v.l.id) == kv.Lease {
				h.Self = true
			}
		}
		if last == nil || *last != h {
			select {
			case e.holderc <- h:
				last = &h
			case <-ctx.Done():
				return
			}
		}
		wctx, stop := context.WithCancel(ctx)
		wch := e.b.cli.Watch(clientv3.WithRequireLeader(wctx), e.pfx+"/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil || len(wr.Events) > 0 {
				break
			}
		}
		stop()
	}
}

// fence deletes the key created at revision t, guarded by that revision,
// and has a waiting campaign look again at once.
func (e *elector) fence(t quorum.Token) {
	defer e.wg.Done()
	err := e.fenceKey(e.ctx, t, e.b.ttl)
	if err != nil {
		e.b.log.Warn("etcd: fencing failed", "group", e.group, "token", int64(t), "err", err)
	} else {
		e.b.log.Warn("etcd: fenced the holder's key", "group", e.group, "token", int64(t))
	}
	select {
	case e.recheck <- struct{}{}:
	default:
	}
	select {
	case e.fencec <- quorum.Fenced{Token: t, Err: err}:
	case <-e.ctx.Done():
	}
}

// errOwnKey: a fence token that names this node's own key.
var errOwnKey = errors.New("that is this node's own key")

// fenceKey deletes the key created at revision t, in attempts started
// every hedgeEvery (up to maxFenceAttempts at once)
// until one succeeds, the token is stale, or within has passed (a TTL:
// by then the fenced holder's lease has expired anyway). The client sends
// requests round robin over the members' connections and one of them may
// sit on a powered-off member's connection until gRPC's keepalive finds
// it dead, seconds later: the next attempt goes to another member without
// waiting for that one to time out, while an attempt that is merely slow
// (a loaded cluster) keeps its full time. The delete is guarded by the
// revision, so attempts that overlap are harmless.
func (e *elector) fenceKey(ctx context.Context, t quorum.Token, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if !e.b.waitReady(ctx) {
		return fmt.Errorf("quorum: fence %s token %d: not connected to etcd", e.pfx, t)
	}
	res := make(chan error, maxFenceAttempts) // never blocks an attempt
	inflight, n := 0, 0
	launch := func() {
		inflight++
		n++
		go func() { res <- e.fenceOnce(ctx, t, e.b.attemptTimeout()) }()
	}
	launch()
	hedge := time.NewTicker(e.b.hedgeEvery())
	defer hedge.Stop()
	done := ctx.Done()
	var last error
	stale := false
	for {
		select {
		case err := <-res:
			inflight--
			switch {
			case err == nil:
				return nil
			case errors.Is(err, errOwnKey):
				return err
			case errors.Is(err, quorum.ErrStaleToken):
				stale = true // an attempt still running may yet report its delete
			default:
				last = err
				if ctx.Err() == nil {
					e.b.log.Info("etcd: fence attempt failed; retrying", "group", e.group, "token", int64(t), "attempt", n, "err", err)
				}
			}
		case <-hedge.C:
			if !stale && inflight < maxFenceAttempts && ctx.Err() == nil {
				launch()
			}
		case <-done:
			done = nil
		}
		if inflight == 0 {
			switch {
			case stale:
				return quorum.ErrStaleToken
			case ctx.Err() != nil:
				return fmt.Errorf("quorum: fence %s token %d: gave up after %d attempts: %w", e.pfx, t, n, last)
			}
		}
	}
}

// maxFenceAttempts bounds the attempts of one fence running at once.
const maxFenceAttempts = 4

// fenceOnce is one attempt of a fence, each request bounded by timeout.
func (e *elector) fenceOnce(ctx context.Context, t quorum.Token, timeout time.Duration) error {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	resp, err := e.b.cli.Get(gctx, e.pfx+"/", clientv3.WithPrefix(), clientv3.WithMinCreateRev(int64(t)), clientv3.WithMaxCreateRev(int64(t)), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return fmt.Errorf("quorum: fence %s token %d: %w", e.pfx, t, err)
	}
	if len(resp.Kvs) == 0 {
		return quorum.ErrStaleToken
	}
	key := string(resp.Kvs[0].Key)
	if v := e.b.view(); v.l != nil && key == fmt.Sprintf("%s/%x", e.pfx, int64(v.l.id)) {
		return fmt.Errorf("quorum: fence %s token %d: %w", e.pfx, t, errOwnKey)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return deleteGuarded(dctx, e.b.cli, key, t)
}

// deleteGuarded deletes key only if it was created at revision t.
func deleteGuarded(ctx context.Context, cli *clientv3.Client, key string, t quorum.Token) error {
	tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", int64(t))).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("quorum: fence %s token %d: %w", key, t, err)
	}
	if !tr.Succeeded {
		return quorum.ErrStaleToken
	}
	return nil
}
