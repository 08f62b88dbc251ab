package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/metrics"
	"github.com/floatip/floatip/internal/quorum"
)

// This file wires a group's referee (quorum:, package quorum) into the
// daemon: one Backend per distinct quorum configuration (one lease for all
// the groups that share it), one Elector per group whose events a
// forwarder goroutine hands to the group's machine, the machine's key
// actions, and the VIPs' kernel lifetime bounded by the lease deadline.

// NewQuorum makes the referee backend for one quorum configuration; name
// is this node's name (the value of its keys). It must return at once and
// connect in the background.
type NewQuorum func(cfg quorum.EtcdConfig, name string, log *slog.Logger) (quorum.Backend, error)

// quorumClose bounds how long the shutdown waits for the backends to
// resign and revoke their leases.
const quorumClose = 5 * time.Second

// quorums holds the daemon's backends by configuration.
type quorums struct {
	mu      sync.Mutex
	by      map[string]*quorumBackend
	metrics sync.Once // registers the metrics' source with the first backend
}

type quorumBackend struct {
	key string // the configuration, as quorumKey spells it
	cfg config.Quorum
	b   quorum.Backend
}

func quorumKey(q config.Quorum) string { return fmt.Sprintf("%#v", q) }

// openQuorums makes a backend for every quorum configuration of cfg's
// groups that has none yet (at start, and for a reload before it goes
// through). An error names the configuration.
func (d *daemon) openQuorums(cfg config.Config) error {
	d.quorums.mu.Lock()
	defer d.quorums.mu.Unlock()
	if d.quorums.by == nil {
		d.quorums.by = map[string]*quorumBackend{}
	}
	for _, gc := range cfg.Groups {
		if gc.Quorum == nil {
			continue
		}
		k := quorumKey(*gc.Quorum)
		if d.quorums.by[k] != nil {
			continue
		}
		if d.deps.NewQuorum == nil {
			return fmt.Errorf("group %s: quorum: is configured but this daemon has no referee backend", gc.Name)
		}
		ec, err := gc.Quorum.Resolve()
		if err != nil {
			return fmt.Errorf("group %s: %w", gc.Name, err)
		}
		log := d.log.With("etcd_endpoints", strings.Join(ec.Endpoints, ","), "etcd_prefix", ec.Prefix)
		b, err := d.deps.NewQuorum(ec, cfg.NodeName, log)
		if err != nil {
			return fmt.Errorf("group %s: quorum: %w", gc.Name, err)
		}
		log.Info("quorum backend started", "ttl", ec.TTL.String())
		d.quorums.by[k] = &quorumBackend{key: k, cfg: *gc.Quorum, b: b}
		d.quorums.metrics.Do(func() { d.metrics.QuorumSource(d.quorumMetrics) })
	}
	return nil
}

// pruneQuorums closes the backends that no running group uses (after a
// reload, under reloadMu), revoking their leases.
func (d *daemon) pruneQuorums() {
	used := map[string]bool{}
	for _, g := range d.groups {
		used[g.qkey] = true
	}
	d.quorums.mu.Lock()
	var unused []*quorumBackend
	for k, qb := range d.quorums.by {
		if !used[k] {
			unused = append(unused, qb)
			delete(d.quorums.by, k)
		}
	}
	d.quorums.mu.Unlock()
	for _, qb := range unused {
		ctx, cancel := context.WithTimeout(context.Background(), quorumClose)
		if err := qb.b.Close(ctx); err != nil {
			d.log.Warn("closing an unused quorum backend", "err", err)
		} else {
			d.log.Info("closed a quorum backend no group uses any more", "etcd_endpoints", strings.Join(qb.cfg.Etcd.Endpoints, ","))
		}
		cancel()
	}
}

// quorumMetrics is the referees' state for the metrics, per group.
func (d *daemon) quorumMetrics() []metrics.QuorumGroup {
	st := d.quorumStatus()
	var out []metrics.QuorumGroup
	for _, g := range *d.ordered.Load() {
		if g.qkey == "" {
			continue
		}
		s, ok := st[g.qkey]
		if !ok {
			continue
		}
		qg := metrics.QuorumGroup{Group: g.name, State: s.State, Reachable: s.Reachable, Deadline: s.Deadline}
		if gs, ok := groupOf(s, g.name); ok {
			qg.Role = gs.Role
		}
		out = append(out, qg)
	}
	return out
}

func groupOf(s quorum.Status, name string) (quorum.GroupStatus, bool) {
	for _, gs := range s.Groups {
		if gs.Group == name {
			return gs, true
		}
	}
	return quorum.GroupStatus{}, false
}

// quorumView is the group's referee for the control socket's status; nil
// without quorum:. st is quorumStatus().
func (g *group) quorumView(st map[string]quorum.Status) *control.Quorum {
	if g.qkey == "" {
		return nil
	}
	q := &control.Quorum{Backend: "etcd", Endpoints: slices.Clone(g.groupCfg.Quorum.Etcd.Endpoints), State: "closed", Role: quorum.RoleIdle.String()}
	s, ok := st[g.qkey]
	if !ok {
		q.Error = "no backend"
		return q
	}
	q.State, q.Reachable, q.LeaseDeadline, q.LastKeepAlive, q.Error = s.State.String(), s.Reachable, s.Deadline, s.LastKeepAlive, s.Err
	if gs, ok := groupOf(s, g.name); ok {
		q.Role, q.KeyHolder, q.Token = gs.Role.String(), gs.Holder, int64(gs.Token)
	}
	return q
}

// quorumFor returns the backend of a group's quorum configuration, nil
// without one.
func (d *daemon) quorumFor(q *config.Quorum) quorum.Backend {
	if q == nil {
		return nil
	}
	d.quorums.mu.Lock()
	defer d.quorums.mu.Unlock()
	if qb := d.quorums.by[quorumKey(*q)]; qb != nil {
		return qb.b
	}
	return nil
}

// closeQuorums closes every backend (revoking their leases) once the
// groups stopped.
func (d *daemon) closeQuorums() {
	d.quorums.mu.Lock()
	bs := d.quorums.by
	d.quorums.by = nil
	d.quorums.mu.Unlock()
	var wg sync.WaitGroup
	for _, qb := range bs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), quorumClose)
			defer cancel()
			if err := qb.b.Close(ctx); err != nil {
				d.log.Warn("closing the quorum backend", "err", err)
			}
		})
	}
	wg.Wait()
}

// quorumStatus is every backend's status, for the control socket and
// metrics, by the quorum configuration's key.
func (d *daemon) quorumStatus() map[string]quorum.Status {
	d.quorums.mu.Lock()
	bs := make([]*quorumBackend, 0, len(d.quorums.by))
	for _, qb := range d.quorums.by {
		bs = append(bs, qb)
	}
	d.quorums.mu.Unlock()
	out := make(map[string]quorum.Status, len(bs))
	for _, qb := range bs {
		out[qb.key] = qb.b.Status()
	}
	return out
}

// openElector gives the group its elector when it has a quorum.
func (g *group) openElector() {
	if g.groupCfg.Quorum == nil {
		return
	}
	g.qkey = quorumKey(*g.groupCfg.Quorum)
	b := g.d.quorumFor(g.groupCfg.Quorum)
	if b == nil {
		g.log.Error("quorum: no backend for the group's quorum configuration: the group will never hold")
		return
	}
	e, err := b.Elector(g.name)
	if err != nil {
		g.log.Error("quorum: no elector for the group: it will never hold", "err", err)
		return
	}
	g.elector = e
}

// startQuorum starts the forwarder of the elector's events; the returned
// function closes the elector (resigning), while the forwarder still
// reads, then stops the forwarder and waits for it.
func (g *group) startQuorum() (stop func()) {
	if g.elector == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var fwd sync.WaitGroup
	fwd.Go(func() { g.forwardQuorum(ctx) })
	return func() {
		g.elector.Close()
		cancel()
		fwd.Wait()
	}
}

// forwardQuorum hands the elector's events to the machine. They are never
// dropped: a delay is safe (the deadline alone carries safety), a lost
// Granted or Lost is not.
func (g *group) forwardQuorum(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-g.elector.Events():
			select {
			case g.events <- election.Quorum{Ev: ev}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// errDeadlineClose says the lease deadline is too close to add the VIPs.
var errDeadlineClose = errors.New("the quorum lease deadline is too close to give the VIPs a kernel lifetime")

// addVIPs carries out AddVIPs. With Until (quorum) the kernel lifetime is
// computed right before the netlink call and checked right after it: a
// process frozen around the call must not leave the VIPs past the
// deadline. It returns the lifetime set, 0 when a renewal was skipped
// (the VIPs keep their earlier, shorter bound; the machine removes them at
// DropBy).
func (g *group) addVIPs(a election.AddVIPs) (time.Duration, error) {
	vips := g.vips
	if a.FirstOnly {
		vips = vips[:1]
	}
	if a.Until.IsZero() {
		return a.Lifetime, g.d.addrs.Claim(vips, a.Lifetime)
	}
	l, ok := quorum.VIPLifetime(g.d.now(), a.Until)
	if !ok {
		if g.added {
			g.log.Debug("quorum: lease deadline too close to renew the VIPs' lifetime; they keep the earlier one", "deadline_in", a.Until.Sub(g.d.now()).String())
			return 0, nil
		}
		return 0, errDeadlineClose
	}
	l = min(l, a.Lifetime)
	now := g.d.now()
	if g.added && now.Add(l).Before(g.vipUntil) {
		// The lifetime is whole seconds: a renewal with a deadline no
		// later than before would only shorten the bound the VIPs have.
		return 0, nil
	}
	if err := g.d.addrs.Claim(vips, l); err != nil {
		return 0, err
	}
	if g.d.now().Add(l + quorum.KernelSlack).After(a.Until) {
		// Frozen between computing the lifetime and setting it.
		if err := g.d.addrs.Release(g.vips); err != nil {
			g.log.Error("removing the VIPs", "err", err)
		}
		g.added = false
		return 0, fmt.Errorf("the VIPs' lifetime (%v) would outlast the quorum lease deadline (the process stalled around the netlink call): removed them", l)
	}
	if !a.FirstOnly {
		g.vipUntil = now.Add(l)
	}
	return l, nil
}

// applyQuorum carries out the machine's key actions (all non-blocking).
func (g *group) applyQuorum(a election.Action) {
	e := g.elector
	switch a := a.(type) {
	case election.WantKey:
		if e != nil {
			g.log.Info("quorum: campaigning for the key")
			e.Campaign()
		}
	case election.ReleaseKey:
		if e != nil {
			g.log.Info("quorum: giving the key up")
			e.Resign()
		}
	case election.FenceKey:
		if e != nil {
			g.log.Warn("quorum: deleting the fenced holder's key", "token", int64(a.Token))
			e.Fence(a.Token)
		}
	}
}
