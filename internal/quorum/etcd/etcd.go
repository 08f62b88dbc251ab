// Package etcd is the etcd implementation of quorum.Backend, on the
// official client (go.etcd.io/etcd/client/v3 and its concurrency package).
//
// One lease per Backend serves all of a node's groups; each group
// campaigns with concurrency.Election on Prefix/<group>, writing the
// node's name as the value. The client keeps the lease alive on its own,
// but it times the lease from the response and looks about once a second,
// so the Backend also sends its own keepalive every TTL/4 (retried every
// 200 ms while failing) and computes the deadline itself from the send
// time of the last one that succeeded: quorum.LeaseDeadline. When the
// deadline passes unextended, the Backend stops counting on the lease (it
// revokes it when it can) and starts over with a new one.
//
// New does not wait for the cluster: the keeper goroutine makes the
// client (with a user name the client authenticates then, which needs the
// cluster), takes a lease and keeps it, retrying all along; Status says
// what it is waiting for.
//
// A campaign writes the key concurrency.Election.Campaign would write and
// waits for it to lead with reads of a short timeout (retried) after each
// watch event, each fence and at least every attemptTimeout, instead of
// Campaign's single watch with no per-request timeout, whose stream may
// sit on a powered-off member's connection for seconds (see
// elector.campaign); the key won is resumed as a concurrency.Election. A
// campaign is cancelled when its lease ends. A fence retries short
// attempts for up to a TTL.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/floatip/floatip/internal/quorum"
)

// Options are the Backend's non-configuration inputs.
type Options struct {
	// Name is this node's name, written as the value of its keys so that
	// the others can tell who holds a group.
	Name   string
	Logger *slog.Logger
	// Dialer, when set, opens the client's TCP connections (the lab's
	// tests dial from inside a network namespace).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
}

// retryInterval is how soon a failed keepalive, grant or campaign is
// retried: a leader election takes about a second, so retrying often lets
// the first request after it succeed.
const retryInterval = 200 * time.Millisecond

// maxBackoff bounds the wait between attempts to get a lease while etcd
// does not answer.
const maxBackoff = 2 * time.Second

// streakEvery is how often a run of the same failure is logged again.
const streakEvery = 30 * time.Second

// streak logs the first failure of a run, then at most every streakEvery
// with the count, so that an etcd outage is one line, not one per retry.
type streak struct {
	n    int
	last time.Time
}

func (s *streak) fail(log *slog.Logger, msg string, args ...any) {
	s.n++
	if s.n == 1 || time.Since(s.last) >= streakEvery {
		s.last = time.Now()
		log.Warn(msg, append(args, "failures", s.n)...)
	}
}

// ok ends the run and says how long it was.
func (s *streak) ok() int {
	n := s.n
	s.n = 0
	return n
}

// Backend is a quorum.Backend on etcd.
type Backend struct {
	cfg  quorum.EtcdConfig
	name string
	log  *slog.Logger
	ttl  time.Duration
	cc   clientv3.Config
	// cli is set once, by the keeper, before ready is closed; nothing
	// else uses it before ready.
	cli   *clientv3.Client
	ready chan struct{}

	ctx      context.Context // ends at the very end of Close
	cancel   context.CancelFunc
	keepStop context.CancelFunc // stops the keeper
	keepDone chan struct{}
	wg       sync.WaitGroup // campaigns and background revokes/resigns

	mu        sync.Mutex
	cur       *lease
	changed   chan struct{} // closed and replaced when cur or its deadline changes
	reachable bool
	lastErr   string
	lastKA    time.Time
	closed    bool
	electors  map[string]*elector
}

// lease is one etcd lease as this node counts on it.
type lease struct {
	id   clientv3.LeaseID
	sess *concurrency.Session
	ttl  time.Duration
	// deadline is guarded by Backend.mu; it only ever grows.
	deadline time.Time
	over     chan struct{} // closed when this node no longer counts on the lease
	cause    quorum.Cause  // why, set before over is closed
}

var _ quorum.Backend = (*Backend)(nil)

// New validates cfg, connects (without waiting for the cluster: the first
// lease comes when it answers) and starts keeping a lease.
func New(cfg quorum.EtcdConfig, o Options) (*Backend, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Name == "" {
		return nil, errors.New("quorum: etcd backend needs the node's name")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tlsConf *tls.Config
	if cfg.TLS() {
		var err error
		if tlsConf, err = loadTLS(cfg); err != nil {
			return nil, err
		}
	}
	var eps []string
	for _, ep := range cfg.Endpoints {
		_, hp, _ := quorum.ParseEndpoint(ep)
		eps = append(eps, hp)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cc := clientv3.Config{
		Endpoints: eps,
		// A dead TCP connection (a member cut off without a reset) is
		// found within 8 s; etcd refuses pings more often than every 5 s.
		DialKeepAliveTime:    6 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		TLS:                  tlsConf,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Context:              ctx,
		Logger:               zap.NewNop(),
	}
	if o.Dialer != nil {
		cc.DialOptions = append(cc.DialOptions, grpc.WithContextDialer(o.Dialer))
	}
	// With a user name the client authenticates while it is made, which
	// waits for the cluster: so the keeper makes it, retrying.
	cc.DialTimeout = 2 * min(time.Second, cfg.TTL/4)
	b := &Backend{
		cfg: cfg, name: o.Name, log: log.With("quorum", "etcd"), ttl: cfg.TTL, cc: cc,
		ctx: ctx, cancel: cancel, keepDone: make(chan struct{}), ready: make(chan struct{}),
		changed: make(chan struct{}), electors: map[string]*elector{},
	}
	kctx, kstop := context.WithCancel(ctx)
	b.keepStop = kstop
	go b.keep(kctx)
	return b, nil
}

func loadTLS(cfg quorum.EtcdConfig) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("quorum.etcd.tls: client certificate %s / key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("quorum.etcd.tls: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("quorum.etcd.tls: ca %s: no PEM certificate in it", cfg.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

func (b *Backend) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *Backend) setErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reachable = false
	b.lastErr = err.Error()
}

// view is a consistent look at the current lease.
type view struct {
	l        *lease // nil without a lease
	deadline time.Time
	changed  <-chan struct{}
}

func (b *Backend) view() view {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := view{l: b.cur, changed: b.changed}
	if b.cur != nil {
		v.deadline = b.cur.deadline
	}
	return v
}

// attemptTimeout bounds one request: short enough to retry within a lease.
func (b *Backend) attemptTimeout() time.Duration { return min(time.Second, b.ttl/4) }

// resignTimeout bounds a resign: two requests' time. A failed resign is
// retried (elector.run), and a stop must not wait on an unreachable
// cluster for the lease's TTL.
func (b *Backend) resignTimeout() time.Duration { return 2 * b.attemptTimeout() }

// tryTimeout bounds the next attempt of a request the campaign or a fence
// retries, after timeouts attempts in a row timed out: a quarter of
// attemptTimeout for as many attempts as there are members less one, then
// doubling up to attemptTimeout. The client sends requests round robin over
// the members' connections, and one of them may sit on a powered-off
// member's connection (until gRPC's keepalive finds it dead, seconds
// later): such an attempt costs little, and the next goes to another
// member; a slow but live cluster still gets the full time. (Doubling from
// the second attempt made a fenced takeover wait 250 + 500 ms when two
// attempts in a row met the dead member's connection: 1.47 s instead of
// 0.72 s in one of three trials.)
func (b *Backend) tryTimeout(timeouts int) time.Duration {
	shift := max(0, timeouts-(len(b.cfg.Endpoints)-1))
	return min((b.attemptTimeout()/4)<<min(shift, 2), b.attemptTimeout())
}

// keep holds a lease for as long as the Backend lives, taking a new one
// whenever the current one is over.
func (b *Backend) keep(ctx context.Context) {
	defer close(b.keepDone)
	var fails streak
	backoff := retryInterval
	for ctx.Err() == nil {
		cli, err := clientv3.New(b.cc)
		if err == nil {
			b.cli = cli
			close(b.ready)
			break
		}
		if ctx.Err() != nil {
			return
		}
		err = fmt.Errorf("connect to %v: %w", b.cfg.Endpoints, err)
		b.setErr(err)
		fails.fail(b.log, "etcd: cannot connect; retrying", "err", err)
		sleep(ctx, backoff)
		backoff = min(2*backoff, maxBackoff)
	}
	for ctx.Err() == nil {
		l, err := b.grant(ctx)
		if err != nil {
			if ctx.Err() == nil {
				b.setErr(err)
				fails.fail(b.log, "etcd: no lease; retrying", "err", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, maxBackoff)
			}
			continue
		}
		if n := fails.ok(); n > 0 {
			b.log.Info("etcd: reachable again", "failures", n)
		}
		backoff = retryInterval
		cause := b.hold(ctx, l)
		b.mu.Lock()
		l.cause = cause
		close(l.over)
		if ctx.Err() == nil {
			b.cur = nil
		} // else Close revokes it
		b.notifyLocked()
		b.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("etcd: lease over", "lease", fmt.Sprintf("%x", int64(l.id)), "cause", cause.String())
		// Revoke it if the cluster answers: its keys then go at once
		// rather than at its expiry. Best effort: it expires anyway.
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			l.sess.Orphan()
			rctx, cancel := context.WithTimeout(b.ctx, l.ttl)
			defer cancel()
			_, _ = b.cli.Revoke(rctx, l.id)
		}()
	}
}

func (b *Backend) grant(ctx context.Context) (*lease, error) {
	sent := time.Now()
	gctx, cancel := context.WithTimeout(ctx, b.attemptTimeout())
	resp, err := b.cli.Grant(gctx, int64(b.ttl/time.Second))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("grant a lease: %w", err)
	}
	ttl := time.Duration(resp.TTL) * time.Second
	sess, err := concurrency.NewSession(b.cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(resp.TTL)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("session on lease %x: %w", int64(resp.ID), err)
	}
	l := &lease{id: resp.ID, sess: sess, ttl: ttl, deadline: quorum.LeaseDeadline(sent, ttl), over: make(chan struct{})}
	b.mu.Lock()
	b.cur = l
	b.reachable, b.lastErr, b.lastKA = true, "", sent
	b.notifyLocked()
	b.mu.Unlock()
	b.log.Info("etcd: lease granted", "lease", fmt.Sprintf("%x", int64(resp.ID)), "ttl", ttl.String())
	return l, nil
}

// hold sends keepalives for l until its deadline passes without one
// succeeding, etcd says it is gone, or ctx ends; it says which.
func (b *Backend) hold(ctx context.Context, l *lease) quorum.Cause {
	interval := l.ttl / 4
	next := time.Now().Add(interval)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	failing := false
	// The session's Done says only that the client's own keepalive stream
	// gave up: it does so when no answer came for a TTL, as when its
	// stream sits on a powered-off member's connection while the other
	// members renew our keepalives. So it is a reason to ask at once, not
	// proof that the lease is gone (ErrLeaseNotFound is).
	sessDone := l.sess.Done()
	timeouts := 0 // keepalives in a row that timed out
	for {
		b.mu.Lock()
		dl := l.deadline
		b.mu.Unlock()
		now := time.Now()
		if !now.Before(dl) {
			return quorum.CauseExpired
		}
		if now.Before(next) {
			timer.Reset(min(next.Sub(now), dl.Sub(now)))
			select {
			case <-ctx.Done():
				return quorum.CauseResigned
			case <-sessDone:
				sessDone = nil
				b.log.Info("etcd: the client's keepalive stream ended; checking the lease", "lease", fmt.Sprintf("%x", int64(l.id)))
				next = time.Now()
			case <-timer.C:
			}
			continue
		}
		sent := time.Now()
		// Short first (tryTimeout): one attempt may go to a powered-off
		// member's connection, and the holder's VIP lifetime ends soon.
		actx, cancel := context.WithTimeout(ctx, min(b.tryTimeout(timeouts), dl.Sub(sent)))
		resp, err := b.cli.KeepAliveOnce(actx, l.id)
		cancel()
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			timeouts++
		} else {
			timeouts = 0
		}
		switch {
		case err == nil:
			ndl := quorum.LeaseDeadline(sent, time.Duration(resp.TTL)*time.Second)
			b.mu.Lock()
			if ndl.After(l.deadline) {
				l.deadline = ndl
			}
			b.reachable, b.lastErr, b.lastKA = true, "", sent
			b.notifyLocked()
			b.mu.Unlock()
			if failing {
				b.log.Info("etcd: keepalives succeed again", "lease", fmt.Sprintf("%x", int64(l.id)))
				failing = false
			}
			next = sent.Add(interval)
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return quorum.CauseLeaseGone
		case ctx.Err() != nil:
			return quorum.CauseResigned
		default:
			b.mu.Lock()
			b.reachable, b.lastErr = false, err.Error()
			b.notifyLocked()
			b.mu.Unlock()
			if !failing {
				b.log.Warn("etcd: keepalive failed; retrying until the lease deadline", "err", err, "deadline_in", time.Until(dl).String())
				failing = true
			}
			next = time.Now().Add(retryInterval)
		}
	}
}

// Elector returns the group's elector, making it on first use.
func (b *Backend) Elector(group string) (quorum.Elector, error) {
	if err := checkGroup(group); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("quorum: the etcd backend is closed")
	}
	if e := b.electors[group]; e != nil {
		return e, nil
	}
	e := newElector(b, group)
	b.electors[group] = e
	return e, nil
}

func checkGroup(g string) error {
	if g == "" {
		return errors.New("quorum: empty group name")
	}
	for _, r := range g {
		if r == '/' || r < 0x21 || r == 0x7f {
			return fmt.Errorf("quorum: group name %q: no slashes, spaces or control characters in an etcd key element", g)
		}
	}
	return nil
}

func (b *Backend) forget(e *elector) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.electors[e.group] == e {
		delete(b.electors, e.group)
	}
}

// Status reports the backend's state.
func (b *Backend) Status() quorum.Status {
	b.mu.Lock()
	st := quorum.Status{Reachable: b.reachable, LastKeepAlive: b.lastKA, Err: b.lastErr}
	switch {
	case b.closed:
		st.State = quorum.StateClosed
	case b.cur == nil:
		st.State = quorum.StateConnecting
	case b.reachable:
		st.State = quorum.StateLive
	default:
		st.State = quorum.StateDegraded
	}
	if b.cur != nil {
		st.Deadline, st.Lease = b.cur.deadline, int64(b.cur.id)
	}
	es := make([]*elector, 0, len(b.electors))
	for _, e := range b.electors {
		es = append(es, e)
	}
	b.mu.Unlock()
	for _, e := range es {
		st.Groups = append(st.Groups, e.status())
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Group < st.Groups[j].Group })
	return st
}

// Close resigns every group, revokes the lease and closes the client; ctx
// bounds the resigns and the revoke.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	es := make([]*elector, 0, len(b.electors))
	for _, e := range b.electors {
		es = append(es, e)
	}
	b.mu.Unlock()
	// Stop every elector at once (each resigns its key).
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Go(func() { e.closeCtx(ctx) })
	}
	wg.Wait()
	b.keepStop()
	<-b.keepDone
	var err error
	b.mu.Lock()
	l := b.cur
	b.mu.Unlock()
	if l != nil {
		l.sess.Orphan()
		if _, rerr := b.cli.Revoke(ctx, l.id); rerr != nil {
			err = fmt.Errorf("quorum: revoke lease %x: %w (its keys go when it expires)", int64(l.id), rerr)
		}
	}
	b.cancel()
	var cerr error
	if b.isReady() {
		cerr = b.cli.Close()
	}
	b.wg.Wait()
	if cerr != nil && !errors.Is(cerr, context.Canceled) {
		err = errors.Join(err, cerr)
	}
	return err
}

func (b *Backend) isReady() bool {
	select {
	case <-b.ready:
		return true
	default:
		return false
	}
}

// waitReady waits until the client exists; false when ctx ended first.
func (b *Backend) waitReady(ctx context.Context) bool {
	select {
	case <-b.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
