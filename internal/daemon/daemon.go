// Package daemon runs floatip: it owns the interface's ARP socket and netlink
// handle, starts one goroutine per VIP group that owns that group's election
// state machine, routes frames and interface events to the groups through
// channels, and carries out their actions.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/arp/afpacket"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/ifaddr"
	"github.com/floatip/floatip/internal/ifcheck"
	"github.com/floatip/floatip/internal/metrics"
)

// Options are what the daemon needs besides the configuration.
type Options struct {
	Version string
	// Load re-reads the configuration (file plus command-line flags) for a
	// reload; nil disables reloading.
	Load func() (config.Config, error)
	// SetLogLevel applies a reloaded log_level; nil keeps the first one.
	SetLogLevel func(level string) error
	// Warnings are logged once at start, after the "starting" line (the
	// likely mistakes that `floatip check` also prints).
	Warnings []string
}

// Run runs the daemon until ctx ends, then releases every VIP it holds,
// tells the standbys, and returns nil. Errors found before anything was
// changed (privileges, interface, addresses, control socket) are returned
// at once. SIGHUP reloads the configuration.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) error {
	// From the first moment: SIGHUP's default action would kill us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
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
	gid, err := socketGroup(cfg.Control.Group)
	if err != nil {
		return err
	}
	ctl, err := control.Listen(cfg.Control.Socket, gid)
	if err != nil {
		return err
	}
	defer ctl.Close()
	ctl.SetLogger(log)
	var m *metrics.Metrics
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		m = metrics.New(opts.Version)
		if metricsLn, err = m.Listen(cfg.Metrics.Listen); err != nil {
			return err
		}
	}
	conn, err := afpacket.Listen(ifi)
	if err != nil {
		return err
	}

	d := &daemon{cfg: cfg, ifname: cfg.Interface, log: log, conn: conn, mgr: mgr, mac: link.MAC, metrics: m, opts: opts, started: time.Now()}
	d.routes.Store(&map[netip.Addr]*group{})
	log.Info("starting", "interface", cfg.Interface, "mac", link.MAC.String(), "node", cfg.NodeName,
		"groups", len(cfg.Groups), "control", cfg.Control.Socket, "metrics", cfg.Metrics.Listen, "version", opts.Version)
	for _, w := range opts.Warnings {
		log.Warn("configuration warning: " + w)
	}

	// Groups live until ctx ends or a reload removes them; their own
	// contexts come from groupsCtx.
	groupsCtx, stopGroups := context.WithCancel(context.Background())
	defer stopGroups()
	d.groupsCtx = groupsCtx
	d.startGroups(cfg.Groups, link)

	auxCtx, stopAux := context.WithCancel(context.Background())
	var aux sync.WaitGroup
	run := func(f func()) { aux.Add(1); go func() { defer aux.Done(); f() }() }
	run(d.readFrames)
	run(func() { d.watch(auxCtx) })
	run(func() {
		if err := ctl.Serve(auxCtx, d); err != nil {
			log.Error("control socket stopped", "err", err)
		}
	})
	if metricsLn != nil {
		run(func() {
			if err := m.ServeListener(auxCtx, metricsLn); err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		})
	}
	run(func() { d.systemd(auxCtx) })
	run(func() { d.pace(auxCtx) })

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if err := d.Reload(ctx); err != nil {
				log.Error("reload rejected; the running configuration stays", "err", err)
			}
		}
	}

	notifyStopping()
	d.reloadMu.Lock()
	d.closing = true
	// Every group releases at once; then wait for all (their hooks, too).
	stopAll(d.groups)
	d.reloadMu.Unlock()
	stopAux()
	conn.Close()
	aux.Wait()
	log.Info("stopped")
	return nil
}

type daemon struct {
	cfg     config.Config
	log     *slog.Logger
	conn    *afpacket.Conn
	mgr     *ifaddr.Manager
	mac     net.HardwareAddr
	metrics *metrics.Metrics
	opts    Options
	started time.Time

	ifname    string // cfg.Interface, which a reload cannot change
	groupsCtx context.Context
	reloadMu  sync.Mutex // serialises reloads and shutdown; guards groups, cfg and closing
	closing   bool
	groups    []*group
	// routes maps each VIP to its group for the frame reader and the
	// watcher; replaced whole on reload.
	routes atomic.Pointer[map[netip.Addr]*group]
}

// route returns the group a VIP belongs to, or nil.
func (d *daemon) route(ip netip.Addr) *group { return (*d.routes.Load())[ip] }

// startGroups starts a goroutine for each group and adds it to the routes.
func (d *daemon) startGroups(gcs []config.Group, link ifaddr.Link) {
	present := map[netip.Addr]bool{}
	for _, p := range link.Addrs {
		if p.Bits() == 32 {
			present[p.Addr()] = true
		}
	}
	routes := maps.Clone(*d.routes.Load())
	cfg := d.cfg // a copy for these groups, never written after
	for _, gc := range gcs {
		g := d.newGroup(&cfg, gc)
		d.groups = append(d.groups, g)
		for _, v := range gc.VIPs {
			routes[v] = g
		}
		start := election.Start{LinkUp: link.Up && link.Carrier}
		for _, v := range gc.VIPs {
			start.Present = start.Present || present[v]
		}
		go g.run(start)
	}
	d.routes.Store(&routes)
}

// readFrames hands every ARP frame about one of our VIPs to its group.
func (d *daemon) readFrames() {
	var malformed int
	var lastReport time.Time
	seen := announceSeen{}
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
		g := d.route(ip)
		if g == nil || seen.repeat(g, p, ip) {
			continue
		}
		g.deliver(election.Frame{Packet: p})
	}
}

// announceSeen drops the bulk of a large group's announcements: a holder
// announces every VIP of its group at once, and the group's machine learns
// all it needs from the first of them. Claims for the group's other VIPs
// from another sender (a conflict) still get through.
type announceSeen map[*group]struct {
	mac string
	at  time.Time
}

const announceBurst = 100 * time.Millisecond

func (s announceSeen) repeat(g *group, p *arp.Packet, ip netip.Addr) bool {
	if p.IsProbe() || ip == g.vips[0] || len(g.vips) == 1 {
		return false
	}
	mac, now := string(p.SenderHardwareAddr), time.Now()
	last, ok := s[g]
	if ok && last.mac == mac && now.Sub(last.at) < announceBurst {
		return true
	}
	s[g] = struct {
		mac string
		at  time.Time
	}{mac, now}
	return false
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
				d.log.Info("link changed", "interface", d.ifname, "admin_up", ev.Link.Up, "carrier", ev.Link.Carrier)
				lastUp = up
			}
			for _, g := range d.allGroups() {
				g.must(ctx, election.LinkChanged{Up: up})
			}
		case ifaddr.AddrAdded, ifaddr.AddrRemoved:
			g := d.route(ev.Addr)
			if g == nil {
				continue
			}
			if ev.Kind == ifaddr.AddrRemoved && g.snap.Load().State == "holder" {
				// A removal we caused ourselves may be reported after the
				// group already claimed the VIP again: only a VIP that is
				// gone now counts. (Only a holder cares, so a large group's
				// release costs no dumps.)
				if now, err := d.mgr.Present([]netip.Addr{ev.Addr}); err == nil && now[ev.Addr] {
					continue
				}
			}
			g.must(ctx, election.AddrChanged{Addr: ev.Addr, Present: ev.Kind == ifaddr.AddrAdded})
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
			for v, g := range *d.routes.Load() {
				if !present[v] {
					g.must(ctx, election.AddrChanged{Addr: v, Present: false})
				}
			}
			for _, g := range d.allGroups() {
				g.must(ctx, election.LinkChanged{Up: lastUp})
			}
		}
	}
}

// pace lets one standby group per holder check it at full pace and relaxes
// the node's other groups on that holder (election.Pace): with many groups
// one node sends a fraction of the probes, and the leading group's
// HolderLost still moves every group at once. Roles are reviewed every
// quarter second from the groups' status snapshots.
func (d *daemon) pace(ctx context.Context) {
	relaxed := map[*group]bool{}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.reloadMu.Lock()
		gs := slices.Clone(d.groups)
		d.reloadMu.Unlock()
		leader := map[string]bool{}
		for _, g := range gs { // configuration order: the first is the leader
			s := g.snap.Load()
			want := false
			if s.State == "standby" && s.Holder != "" {
				want = leader[s.Holder]
				leader[s.Holder] = true
			}
			if relaxed[g] != want {
				relaxed[g] = want
				g.must(ctx, election.Pace{Relaxed: want})
			}
		}
	}
}

// peerName names a MAC from the configured peer table, or "".
func peerName(cfg *config.Config, mac net.HardwareAddr) string {
	if mac == nil {
		return ""
	}
	for name, m := range cfg.Peers {
		if bytes.Equal(m, mac) {
			return name
		}
	}
	return ""
}

// allGroups returns the groups currently routed to.
func (d *daemon) allGroups() []*group {
	seen := map[*group]bool{}
	var gs []*group
	for _, g := range *d.routes.Load() {
		if !seen[g] {
			seen[g] = true
			gs = append(gs, g)
		}
	}
	return gs
}

// socketGroup resolves control.group to a gid; -1 when unset.
func socketGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("control.group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
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

// checkOwnAddresses refuses a VIP that is unsafe on the interface: one of
// the node's own addresses (a permanent /32 included), or the network or
// broadcast address of one of its subnets; see package ifcheck.
func checkOwnAddresses(cfg config.Config, _ ifaddr.Link) error {
	ifc, err := ifcheck.Read(cfg.Interface)
	if err != nil {
		return err
	}
	return ifcheck.Check(cfg, ifc).Err()
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
