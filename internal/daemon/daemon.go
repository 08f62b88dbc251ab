// Package daemon runs floatip: it owns the interface's ARP socket and netlink
// handle, starts one goroutine per VIP group that owns that group's election
// state machine, routes frames and interface events to the groups through
// channels, and carries out their actions.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/ifaddr"
)

// Run runs the daemon until ctx ends, then releases every VIP it holds,
// tells the standbys, and returns nil. Errors found before anything was
// changed (privileges, interface, addresses) are returned at once.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if err := checkPrivileges(); err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("interface %q not found", cfg.Interface)
	}
	mgr, err := ifaddr.Open(cfg.Interface)
	if err != nil {
		return err
	}
	defer mgr.Close()
	link, err := mgr.Link()
	if err != nil {
		return fmt.Errorf("read interface %q: %w", cfg.Interface, err)
	}
	if !link.Up {
		return fmt.Errorf("interface %q is down (administratively); bring it up first", cfg.Interface)
	}
	if len(link.MAC) != 6 {
		return fmt.Errorf("interface %q has no Ethernet address; ARP mode needs an Ethernet interface", cfg.Interface)
	}
	if err := checkOwnAddresses(cfg, link); err != nil {
		return err
	}
	conn, err := arp.Listen(ifi)
	if err != nil {
		return err
	}

	d := &daemon{cfg: cfg, log: log, conn: conn, mgr: mgr, byVIP: make(map[netip.Addr]*group)}
	present := map[netip.Addr]bool{}
	for _, p := range link.Addrs {
		if p.Bits() == 32 {
			present[p.Addr()] = true
		}
	}
	for _, gc := range cfg.Groups {
		g := d.newGroup(gc, link.MAC)
		d.groups = append(d.groups, g)
		for _, v := range gc.VIPs {
			d.byVIP[v] = g
		}
	}
	log.Info("starting", "interface", cfg.Interface, "mac", link.MAC.String(), "node", cfg.NodeName, "groups", len(d.groups))

	watchCtx, stopWatch := context.WithCancel(context.Background())
	var aux sync.WaitGroup
	aux.Add(2)
	go func() { defer aux.Done(); d.readFrames() }()
	go func() { defer aux.Done(); d.watch(watchCtx) }()

	var groups sync.WaitGroup
	linkUp := link.Up && link.Carrier
	for _, g := range d.groups {
		start := election.Start{LinkUp: linkUp}
		for _, v := range g.vips {
			start.Present = start.Present || present[v]
		}
		groups.Add(1)
		go func() { defer groups.Done(); g.run(ctx, start) }()
	}
	groups.Wait()
	stopWatch()
	conn.Close()
	aux.Wait()
	log.Info("stopped")
	return nil
}

type daemon struct {
	cfg    config.Config
	log    *slog.Logger
	conn   *arp.Conn
	mgr    *ifaddr.Manager
	groups []*group
	byVIP  map[netip.Addr]*group
}

// readFrames hands every ARP frame about one of our VIPs to its group.
func (d *daemon) readFrames() {
	var malformed int
	var lastReport time.Time
	for {
		p, err := d.conn.Read()
		switch {
		case errors.Is(err, arp.ErrMalformed):
			// Anyone on the LAN can send junk; note it without flooding the log.
			malformed++
			if time.Since(lastReport) > 10*time.Second {
				d.log.Warn("ignored malformed ARP frames", "count", malformed, "last_error", err.Error())
				malformed, lastReport = 0, time.Now()
			}
			continue
		case errors.Is(err, net.ErrClosed):
			return
		case err != nil:
			d.log.Error("reading ARP frames", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ip := p.SenderIP
		if p.IsProbe() {
			ip = p.TargetIP
		}
		if g := d.byVIP[ip]; g != nil {
			g.deliver(election.Frame{Packet: p})
		}
	}
}

// watch turns netlink link and address events into group events.
func (d *daemon) watch(ctx context.Context) {
	events := make(chan ifaddr.Event, 64)
	go func() {
		if err := d.mgr.Watch(ctx, events); err != nil && ctx.Err() == nil {
			d.log.Error("watching the interface failed; link and address changes will go unnoticed", "err", err)
		}
	}()
	lastUp := true
	for {
		var ev ifaddr.Event
		select {
		case <-ctx.Done():
			return
		case ev = <-events:
		}
		switch ev.Kind {
		case ifaddr.LinkChanged:
			up := ev.Link.Up && ev.Link.Carrier
			if up != lastUp {
				d.log.Info("link changed", "interface", d.cfg.Interface, "admin_up", ev.Link.Up, "carrier", ev.Link.Carrier)
				lastUp = up
			}
			for _, g := range d.groups {
				g.deliver(election.LinkChanged{Up: up})
			}
		case ifaddr.AddrAdded, ifaddr.AddrRemoved:
			g := d.byVIP[ev.Addr]
			if g == nil {
				continue
			}
			if ev.Kind == ifaddr.AddrRemoved {
				// A removal we caused ourselves may be reported after the
				// group already claimed the VIP again: only a VIP that is
				// gone now counts.
				if now, err := d.mgr.Present([]netip.Addr{ev.Addr}); err == nil && now[ev.Addr] {
					continue
				}
			}
			g.deliver(election.AddrChanged{Addr: ev.Addr, Present: ev.Kind == ifaddr.AddrAdded})
		case ifaddr.Resync:
			d.log.Warn("netlink subscription was lost and re-established; re-reading the interface")
			link, err := d.mgr.Link()
			if err != nil {
				d.log.Error("re-reading the interface", "err", err)
				continue
			}
			lastUp = link.Up && link.Carrier
			present := map[netip.Addr]bool{}
			for _, p := range link.Addrs {
				present[p.Addr()] = true
			}
			for v, g := range d.byVIP {
				g.deliver(election.AddrChanged{Addr: v, Present: present[v]})
			}
			for _, g := range d.groups {
				g.deliver(election.LinkChanged{Up: lastUp})
			}
		}
	}
}

// group owns one VIP group's state machine; only its run goroutine touches it.
type group struct {
	name   string
	vips   []netip.Addr
	d      *daemon
	log    *slog.Logger
	m      *election.Machine
	events chan election.Event
	added  bool
}

func (d *daemon) newGroup(gc config.Group, mac net.HardwareAddr) *group {
	t := d.cfg.Timing
	policy := election.Yield
	if d.cfg.OnForeignClaim == "defend" {
		policy = election.Defend
	}
	m := election.New(election.Params{
		VIPs:     gc.VIPs,
		MAC:      mac,
		Priority: uint8(gc.Priority),
		NodeID:   nodeID(d.cfg.NodeName),
		Timing: election.Timing{
			CheckInterval: t.CheckInterval, Misses: t.Misses, ClaimSlot: t.ClaimSlot,
			AnnounceCount: t.AnnounceCount, AnnounceInterval: t.AnnounceInterval,
			Lifetime: t.Lifetime, RenewInterval: t.RenewInterval, BeaconInterval: t.BeaconInterval,
		},
		ForeignPolicy: policy,
	})
	return &group{
		name: gc.Name, vips: gc.VIPs, d: d, m: m,
		log:    d.log.With("group", gc.Name),
		events: make(chan election.Event, 256),
	}
}

// deliver queues an event without ever blocking the reader: a group that
// is this far behind loses frames, which the protocol tolerates.
func (g *group) deliver(ev election.Event) {
	select {
	case g.events <- ev:
	default:
		g.log.Warn("event queue full; dropped an event", "event", fmt.Sprintf("%T", ev))
	}
}

func (g *group) run(ctx context.Context, start election.Start) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if g.apply(g.m.Handle(time.Now(), start)) {
		return
	}
	for {
		var tick <-chan time.Time
		if dl := g.m.Deadline(); !dl.IsZero() {
			timer.Reset(time.Until(dl))
			tick = timer.C
		}
		var done bool
		select {
		case <-ctx.Done():
			done = g.apply(g.m.Handle(time.Now(), election.Stop{}))
		case ev := <-g.events:
			done = g.apply(g.m.Handle(time.Now(), ev))
		case <-tick:
			done = g.apply(g.m.Handle(time.Now(), election.Tick{}))
		}
		if done {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// apply carries out the machine's actions in order; it reports whether the
// machine is done.
func (g *group) apply(actions []election.Action) bool {
	done := false
	for i := 0; i < len(actions); i++ {
		switch a := actions[i].(type) {
		case election.Send:
			if err := g.d.conn.Write(a.Packet); err != nil {
				g.log.Warn("sending ARP frame", "err", err)
			}
			g.logSend(a.Packet)
		case election.AddVIPs:
			if err := g.d.mgr.Claim(g.vips, a.Lifetime); err != nil {
				g.log.Error("adding the VIPs", "err", err)
				// Feed the failure back; the machine decides what follows.
				// The rest of this batch (announcements) assumed success.
				actions = append(actions[:i+1], g.m.Handle(time.Now(), election.ClaimFailed{Err: err})...)
				continue
			}
			if !g.added {
				g.added = true
				g.log.Info("vip added", "vips", addrList(g.vips), "lifetime", a.Lifetime.String())
			}
		case election.RemoveVIPs:
			if err := g.d.mgr.Release(g.vips); err != nil {
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
			g.log.Log(context.Background(), lvl, "state changed", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason)
		case election.Note:
			g.log.Log(context.Background(), a.Level, a.Msg, a.Attrs...)
		case election.Done:
			done = true
		}
	}
	return done
}

func (g *group) logSend(p *arp.Packet) {
	if p.Trailer == nil {
		return
	}
	switch p.Trailer.Kind {
	case arp.KindAnnounce, arp.KindDefend:
		if p.SenderIP == g.vips[0] {
			g.log.Info("announced", "kind", p.Trailer.Kind.String(), "vips", addrList(g.vips))
		}
	case arp.KindRelease:
		g.log.Info("release sent")
	default:
		g.log.Debug("probe sent", "kind", p.Trailer.Kind.String(), "to", p.Destination.String())
	}
}

func addrList(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, v := range a {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func nodeID(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// checkOwnAddresses refuses a VIP that is one of the node's own addresses: a
// VIP is configured as /32 by floatip; anything else is the host's own.
func checkOwnAddresses(cfg config.Config, link ifaddr.Link) error {
	for _, p := range link.Addrs {
		if p.Bits() == 32 {
			continue
		}
		for _, gc := range cfg.Groups {
			for _, v := range gc.VIPs {
				if p.Addr() == v {
					return fmt.Errorf("VIP %s (group %s) is this node's own address on %s (%s); a VIP must be an address no host owns", v, gc.Name, cfg.Interface, p)
				}
			}
		}
	}
	return nil
}

// Linux capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// checkPrivileges fails early, with the fix in the message, when the process
// lacks CAP_NET_ADMIN (addresses) or CAP_NET_RAW (ARP socket).
func checkPrivileges() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil // cannot tell; the first privileged call will say
	}
	for _, line := range strings.Split(string(b), "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil
		}
		var missing []string
		if caps&(1<<capNetAdmin) == 0 {
			missing = append(missing, "CAP_NET_ADMIN")
		}
		if caps&(1<<capNetRaw) == 0 {
			missing = append(missing, "CAP_NET_RAW")
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing privileges: needs %s (run as root, or grant them, e.g. AmbientCapabilities= in the systemd unit)", strings.Join(missing, " and "))
		}
	}
	return nil
}
