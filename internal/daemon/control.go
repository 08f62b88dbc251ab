package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/ifaddr"
)

// The daemon serves the control socket (control.Handler).
var _ control.Handler = (*daemon)(nil)

func (d *daemon) Status(ctx context.Context) (control.Status, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	s := control.Status{
		Node: d.cfg.NodeName, Interface: d.cfg.Interface, Version: d.opts.Version,
		PID: os.Getpid(), Started: d.started, Groups: []control.Group{},
	}
	now := d.now()
	qs := d.quorumStatus()
	for _, g := range d.groups {
		gs := *g.snap.Load()
		gs.Quorum = g.quorumView(qs)
		// Lost as of now, not as of the snapshot: a peer that went
		// silent is what the operator looks for.
		lost := time.Duration(g.lostAfter.Load())
		gs.Peers = slices.Clone(gs.Peers)
		for i := range gs.Peers {
			gs.Peers[i].Lost = now.Sub(gs.Peers[i].LastHeard) > lost
		}
		s.Groups = append(s.Groups, gs)
	}
	s.SpoofedFrames = d.spoofed.Load()
	for r, n := range d.junk {
		if v := n.Load(); v > 0 {
			if s.MalformedFrames == nil {
				s.MalformedFrames = map[string]uint64{}
			}
			s.MalformedFrames[string(r)] = v
		}
	}
	if a := d.deps.Auth; a != nil {
		st := &control.Auth{Require: d.cfg.Auth.Require, KeyIDs: []string{}, Failures: map[string]uint64{}}
		if ids := d.keyIDs.Load(); ids != nil {
			for _, id := range *ids {
				st.KeyIDs = append(st.KeyIDs, id.String())
			}
		}
		for r, n := range d.authFailures {
			st.Failures[string(r)] = n.Load()
		}
		if a.Stats != nil {
			st.Senders = a.Stats().Senders
		}
		s.Auth = st
	}
	return s, nil
}

// pick returns the named group, or every group for "".
func (d *daemon) pick(name string) ([]*group, error) {
	if name == "" {
		return slices.Clone(d.groups), nil
	}
	for _, g := range d.groups {
		if g.name == name {
			return []*group{g}, nil
		}
	}
	return nil, fmt.Errorf("no group %q", name)
}

func (d *daemon) Release(ctx context.Context, name string) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	gs, err := d.pick(name)
	if err != nil {
		return err
	}
	released := 0
	for _, g := range gs {
		if name == "" && g.snap.Load().State != election.StateHolder {
			continue // "every group" means every group this node holds
		}
		if err := g.command(ctx, election.Release{Reason: "floatip release"}); err != nil {
			return err
		}
		released++
	}
	if released == 0 {
		return errors.New("this node holds no VIPs to release")
	}
	return nil
}

func (d *daemon) Hold(ctx context.Context, name string, on bool) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	gs, err := d.pick(name)
	if err != nil {
		return err
	}
	for _, g := range gs {
		if err := g.command(ctx, election.Hold{On: on}); err != nil {
			return err
		}
	}
	return nil
}

// Handover hands held groups to a standby (all held groups for "").
func (d *daemon) Handover(ctx context.Context, name, to string) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	gs, err := d.pick(name)
	if err != nil {
		return err
	}
	var id uint32
	if to != "" {
		id = nodeID(to)
	}
	handed := 0
	for _, g := range gs {
		if name == "" && g.snap.Load().State != election.StateHolder {
			continue
		}
		if err := g.command(ctx, election.Handover{To: id, Name: to}); err != nil {
			return err
		}
		handed++
	}
	if handed == 0 {
		return errors.New("this node holds no VIPs to hand over")
	}
	return nil
}

// Reload re-reads the configuration. Groups whose VIPs are unchanged keep
// their state and their VIPs (priority and timing change in place); removed
// groups release their VIPs; added ones start. A configuration that does not
// load or validate, or that changes what needs a restart, is rejected whole
// and the running one stays.
func (d *daemon) Reload(ctx context.Context) error {
	if d.opts.Load == nil {
		return errors.New("reloading is not available: the daemon was started without a way to re-read its configuration")
	}
	next, err := d.opts.Load()
	if err != nil {
		return fmt.Errorf("new configuration: %w", err)
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.closing {
		return errors.New("floatip is stopping")
	}
	cur := d.cfg
	switch {
	case next.Interface != cur.Interface:
		return fmt.Errorf("interface changed from %s to %s: that needs a restart", cur.Interface, next.Interface)
	case next.Control != cur.Control:
		return errors.New("control settings changed: that needs a restart")
	case next.Metrics != cur.Metrics:
		return errors.New("metrics settings changed: that needs a restart")
	case next.Auth.Enabled() != cur.Auth.Enabled():
		return errors.New("auth turned on or off: that needs a restart (roll it out with auth.require: false first)")
	case next.Auth.SequenceFile != cur.Auth.SequenceFile:
		return errors.New("auth.sequence_file changed: that needs a restart")
	case next.Auth.Enabled() && d.deps.Auth == nil:
		return errors.New("auth is configured but this daemon was started without it: that needs a restart")
	case hasIPv6VIPs(next.Groups) && !d.deps.IPv6:
		return errors.New("IPv6 VIPs added, but this daemon started without any (no Neighbor Discovery socket): that needs a restart")
	}
	link := d.linkOrAssumeUp()
	if err := checkOwnAddresses(next, link); err != nil {
		return err
	}
	if d.deps.CheckVIPs != nil {
		if err := d.deps.CheckVIPs(next); err != nil {
			return err
		}
	}
	if err := d.openQuorums(next); err != nil {
		return err
	}
	// Whatever happens next, backends no group uses are closed.
	defer d.pruneQuorums()
	if a := d.deps.Auth; a != nil && a.Reload != nil {
		// Keys are re-read last among the checks: once they are in use the
		// reload goes through.
		ids, err := a.Reload(next)
		if err != nil {
			return err
		}
		d.keyIDs.Store(&ids)
		d.log.Info("auth keys loaded", "keys", len(ids), "signing", ids[0].String())
	}
	// Every check passed: from here on the reload is applied whole, even if
	// the operator's request gives up waiting.
	ctx = context.WithoutCancel(ctx)

	byName := map[string]config.Group{}
	for _, gc := range next.Groups {
		byName[gc.Name] = gc
	}
	running := map[string]*group{}
	var runningCfg []config.Group
	for _, g := range d.groups {
		running[g.name] = g
		runningCfg = append(runningCfg, g.groupCfg)
	}
	var kept, stopped []*group
	keptNames := map[string]bool{}
	heldNames := map[string]bool{}
	for _, c := range planReload(runningCfg, next.Groups) {
		g := running[c.Name]
		switch c.Change {
		case keep, reconfigure:
			kept = append(kept, g)
			keptNames[g.name] = true
			continue
		case start:
			continue
		case restart:
			if slices.Equal(byName[c.Name].VIPs, g.vips) {
				d.log.Warn("the group's health checks changed: restarting the group", "group", g.name)
			}
		}
		heldNames[g.name] = g.snap.Load().Held
		stopped = append(stopped, g)
	}
	// Stopped groups leave the routing table (and the watchdog's view)
	// first, then release all at once, so a VIP that moves to another group
	// is released before the new group may claim it. Until they are done
	// their frames still reach them (d.stopping): a key-first stop waits
	// for the new key holder's ready beacon.
	routes := map[netip.Addr]*group{}
	for _, g := range kept {
		for _, v := range g.vips {
			routes[v] = g
		}
	}
	stopping := map[netip.Addr]*group{}
	for _, g := range stopped {
		for _, v := range g.vips {
			stopping[v] = g
		}
	}
	d.stopping.Store(&stopping)
	d.routes.Store(&routes)
	stopAll(stopped)
	d.stopping.Store(nil)
	for _, g := range stopped {
		d.metrics.ForgetGroup(g.name)
	}

	if next.LogLevel != cur.LogLevel && d.opts.SetLogLevel != nil {
		if err := d.opts.SetLogLevel(next.LogLevel); err == nil {
			d.log.Info("log level changed", "level", next.LogLevel)
		}
	}
	if next.LogFormat != cur.LogFormat {
		d.log.Warn("log_format changes apply after a restart", "running", cur.LogFormat, "configured", next.LogFormat)
	}
	d.cfg = next
	if r, ok := d.conn.(routerFlag); ok {
		r.SetRouter(next.IPv6.NARouter)
	}
	shared := next // one copy the kept groups share and never write
	for _, g := range kept {
		gc := byName[g.name]
		g.groupCfg = gc
		c := command{ev: election.Reconfigure{Params: params(&shared, gc, d.mac)}, cfg: &shared, reply: make(chan error, 1)}
		if err := g.send(ctx, c); err != nil {
			d.log.Error("reconfiguring a group", "group", g.name, "err", err)
		}
	}
	d.groups = kept
	var added []config.Group // in configuration order
	for _, gc := range next.Groups {
		if !keptNames[gc.Name] {
			added = append(added, gc)
		}
	}
	d.startGroups(added, link)
	for _, g := range d.groups {
		if heldNames[g.name] {
			// A restarted group keeps the operator's maintenance hold.
			if err := g.command(ctx, election.Hold{On: true}); err != nil {
				d.log.Error("keeping the maintenance hold", "group", g.name, "err", err)
			}
		}
	}
	// Keep configuration order for status.
	order := map[string]int{}
	for i, gc := range next.Groups {
		order[gc.Name] = i
	}
	slices.SortFunc(d.groups, func(a, b *group) int { return order[a.name] - order[b.name] })
	d.publishGroups()
	d.log.Info("reloaded", "kept", len(kept), "stopped", len(stopped), "started", len(added))
	return nil
}

// linkOrAssumeUp reads the interface; on error it returns a link that is up
// with carrier and no addresses, which only makes new groups probe first.
func (d *daemon) linkOrAssumeUp() ifaddr.Link {
	l, err := d.addrs.Link()
	if err != nil {
		d.log.Warn("reading the interface", "err", err)
		return ifaddr.Link{Up: true, Carrier: true}
	}
	return l
}
