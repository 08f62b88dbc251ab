// Package daemon runs floatip: it owns the interface's ARP socket and netlink
// handle, starts one goroutine per VIP group that owns that group's election
// state machine, routes frames and interface events to the groups through
// channels, and carries out their actions.
//
// Run (os.go) is a thin OS layer: privileges, signals, the real sockets, the
// control socket and metrics endpoint. The rest, the core, sees the world
// only through FrameConn, Addrs, Notifier and an injected clock, so tests
// build several cores on a fake LAN without root. Every goroutine the core
// starts has an owner that stops it and waits for it; stop returns after
// all of them.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/floatip/floatip/internal/tcpdiag"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/hooks"
	"github.com/floatip/floatip/internal/ifaddr"
	"github.com/floatip/floatip/internal/metrics"
	"github.com/floatip/floatip/internal/nd"
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

// FrameConn sends and receives the interface's ARP frames (in the style of
// net.PacketConn). Read blocks until a frame arrives; it returns an error
// wrapping arp.ErrMalformed for a frame that does not decode (the next Read
// goes on) and one wrapping net.ErrClosed once Close was called.
type FrameConn interface {
	Read() (*arp.Packet, error)
	Write(p *arp.Packet) error
	Close() error
}

// Addrs puts the VIPs on the interface and reports the interface's link and
// addresses (ifaddr.Manager).
type Addrs interface {
	// Claim adds (or renews) the VIPs as /32 with the given lifetime.
	Claim(vips []netip.Addr, lifetime time.Duration) error
	// Release removes the VIPs.
	Release(vips []netip.Addr) error
	// Present says which of the VIPs are on the interface now.
	Present(vips []netip.Addr) (map[netip.Addr]bool, error)
	// Link reads the interface's state and addresses.
	Link() (ifaddr.Link, error)
	// Watch sends link and address changes to events until ctx ends.
	Watch(ctx context.Context, events chan<- ifaddr.Event) error
	Close() error
}

// Notifier runs the notify hooks (hooks.Notifier). Close waits for the
// hooks already queued.
type Notifier interface {
	Notify(e hooks.Event)
	Close()
}

// Deps are the daemon core's ties to the world. The core owns Conn and
// Addrs from newDaemon on and closes them when it stops.
type Deps struct {
	Conn    FrameConn
	Addrs   Addrs
	MAC     net.HardwareAddr // the interface's Ethernet address
	Metrics *metrics.Metrics // nil: no metrics
	// Now is the clock; nil means time.Now. The core's timers are the
	// runtime's, so tests run it in a testing/synctest bubble, which fakes
	// both.
	Now func() time.Time
	// NewNotifier makes a group's hook runner; nil means hooks.NewNotifier.
	NewNotifier func(hs []hooks.Hook, log *slog.Logger, onResult func(hook string, err error)) Notifier
	// Stopping is called once when the shutdown begins (systemd's
	// STOPPING=1); nil does nothing.
	Stopping func()
	// Auth is frame authentication, nil when it is off: Conn seals and
	// verifies (Frame.Authenticated comes from arp.Packet.Authenticated).
	Auth *AuthDeps
	// CheckVIPs refuses VIPs that are unsafe on the live interface (the
	// host's own address, a permanent /32 included, or a subnet's network
	// or broadcast address; package ifcheck), at start and on reload; nil
	// checks only the addresses that Addrs.Link reports.
	CheckVIPs func(cfg config.Config) error
	// IPv6 says Conn speaks Neighbor Discovery too (the OS layer's wire,
	// made when the configuration has IPv6 VIPs at start): without it a
	// reload that adds IPv6 VIPs is refused.
	IPv6 bool
	// NewQuorum makes the referee backend of a quorum: configuration
	// (quorum.go); nil: a configuration with quorum: is refused.
	NewQuorum NewQuorum
	// OpenConns tells whether TCP connections to the VIPs are open, for
	// draining them before a planned move (election.RemoveVIPs.Drain);
	// nil removes at once.
	OpenConns tcpdiag.Open
}

// AuthDeps are the OS layer's keys, as far as the core needs them.
type AuthDeps struct {
	// KeyIDs are the keys in use, the first signs.
	KeyIDs []auth.KeyID
	// Reload reads the new configuration's key files and puts them in use
	// (the replay table stays); on error nothing changed.
	Reload func(cfg config.Config) ([]auth.KeyID, error)
	// Stats reads the replay table's size; nil: unknown.
	Stats func() auth.VerifierStats
}

// daemon is the core: the groups, the frame reader, the interface watcher
// and the pacer, reloads and the shutdown. It serves the control socket
// (control.Handler).
type daemon struct {
	cfg     config.Config
	log     *slog.Logger
	conn    FrameConn
	addrs   Addrs
	mac     net.HardwareAddr
	metrics *metrics.Metrics
	// fatal carries an error that ends serve (and Run, non-zero).
	fatal   chan error
	opts    Options
	deps    Deps
	now     func() time.Time
	started time.Time

	ifname string // cfg.Interface, which a reload cannot change
	// ctx lives until stop: the groups' own contexts come from it, and it
	// ends watch and pace.
	ctx      context.Context
	cancel   context.CancelFunc
	aux      sync.WaitGroup // readFrames, watch, pace
	reloadMu sync.Mutex     // serialises reloads and shutdown; guards groups, cfg and closing
	closing  bool
	groups   []*group
	// ordered is groups for the pacer, which must not wait for reloadMu (a
	// shutdown holds it while groups drain their hooks); replaced whole.
	ordered atomic.Pointer[[]*group]
	// routes maps each VIP to its group for the frame reader and the
	// watcher; replaced whole on reload.
	routes atomic.Pointer[map[netip.Addr]*group]
	// stopping maps the VIPs of the groups a reload is stopping to them
	// until they are done, for route only: a key-first stop under a
	// referee still hears the new key holder's ready beacon (without it
	// the group waited out the grace its own watch allows). They have
	// left routes, and so the watchdog's view.
	stopping atomic.Pointer[map[netip.Addr]*group]

	// Hostile frames, counted by the frame reader (the groups count what
	// their machines see).
	spoofed      atomic.Uint64
	junk         map[junk]*atomic.Uint64        // malformed frames by reason (every junkReasons entry)
	authFailures map[auth.Reason]*atomic.Uint64 // every auth.Reasons entry; the map is never written after newDaemon
	keyIDs       atomic.Pointer[[]auth.KeyID]

	quorums quorums // referee backends (quorum.go)
}

// newDaemon makes the core; nothing runs before start.
func newDaemon(cfg config.Config, log *slog.Logger, opts Options, deps Deps) *daemon {
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	if deps.NewNotifier == nil {
		deps.NewNotifier = func(hs []hooks.Hook, log *slog.Logger, onResult func(string, error)) Notifier {
			return hooks.NewNotifier(hs, log, onResult)
		}
	}
	d := &daemon{cfg: cfg, ifname: cfg.Interface, log: log, conn: deps.Conn, addrs: deps.Addrs, mac: deps.MAC,
		metrics: deps.Metrics, opts: opts, deps: deps, now: now, started: now()}
	d.fatal = make(chan error, 1)
	d.routes.Store(&map[netip.Addr]*group{})
	d.junk = map[junk]*atomic.Uint64{}
	for _, r := range junkReasons {
		d.junk[r] = new(atomic.Uint64)
	}
	d.authFailures = map[auth.Reason]*atomic.Uint64{}
	for _, r := range auth.Reasons {
		d.authFailures[r] = new(atomic.Uint64)
	}
	if deps.Auth != nil {
		ids := slices.Clone(deps.Auth.KeyIDs)
		d.keyIDs.Store(&ids)
	}
	d.ordered.Store(&[]*group{})
	// Groups live until the daemon stops or a reload removes them.
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// since is the time passed since t on the daemon's clock.
func (d *daemon) since(t time.Time) time.Duration { return d.now().Sub(t) }

// start starts the groups (link is the interface as read at startup) and
// the goroutines that feed them.
func (d *daemon) start(link ifaddr.Link) {
	d.reloadMu.Lock()
	d.startGroups(d.cfg.Groups, link)
	d.reloadMu.Unlock()
	d.aux.Go(d.readFrames)
	d.aux.Go(func() { d.watch(d.ctx) })
	d.aux.Go(func() { d.pace(d.ctx) })
}

// serve reloads the configuration on every signal from reload (SIGHUP)
// until ctx ends.
func (d *daemon) serve(ctx context.Context, reload <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.fatal:
			return err
		case <-reload:
			if err := d.Reload(ctx); err != nil {
				d.log.Error("reload rejected; the running configuration stays", "err", err)
			}
		}
	}
}

// stop releases every group's VIPs, all at once, and returns after every
// goroutine the core started ended (the groups' hooks and fence commands,
// too) and Conn and Addrs are closed.
func (d *daemon) stop() {
	if d.deps.Stopping != nil {
		d.deps.Stopping()
	}
	d.reloadMu.Lock()
	d.closing = true
	// Every group releases at once; then wait for all (their hooks, too).
	stopAll(d.groups)
	d.reloadMu.Unlock()
	d.closeQuorums() // after the groups resigned: revokes the leases
	d.cancel()
	d.conn.Close() // ends readFrames
	d.aux.Wait()
	d.addrs.Close() // after watch, which uses it, ended
}

// route returns the group a VIP belongs to (or a stopping one it belonged
// to), or nil.
func (d *daemon) route(ip netip.Addr) *group {
	if g := (*d.routes.Load())[ip]; g != nil {
		return g
	}
	if s := d.stopping.Load(); s != nil {
		return (*s)[ip]
	}
	return nil
}

// startGroups starts a goroutine for each group and adds it to the routes.
func (d *daemon) startGroups(gcs []config.Group, link ifaddr.Link) {
	present := map[netip.Addr]bool{}
	for _, p := range link.Addrs {
		if p.Bits() == hostBits(p.Addr()) {
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
	d.publishGroups()
}

// publishGroups makes the current groups (under reloadMu) the pacer's.
func (d *daemon) publishGroups() {
	gs := slices.Clone(d.groups)
	d.ordered.Store(&gs)
}

// readFrames hands every ARP or ND frame about one of our VIPs to its group.
// Frames that fail authentication are dropped here, counted by reason and
// logged at most every 10 s; frames carrying our own MAC are counted as
// spoofing and still go to the group, whose machine counts and ignores
// them.
func (d *daemon) readFrames() {
	var malformed int
	junkSince := map[junk]int{}
	var lastReport time.Time
	rejected := map[auth.Reason]int{}
	var lastReject time.Time
	var lastRejectErr error // stringified only when logged: a flood must not cost a string per frame
	seen := announceSeen{now: d.now, last: map[*group]lastAnnounce{}}
	for {
		p, err := d.conn.Read()
		if r := auth.ReasonOf(err); r != "" {
			d.authFailure(r)
			rejected[r]++
			lastRejectErr = err
			if d.since(lastReject) > 10*time.Second {
				d.rejectedLog(rejected, lastRejectErr.Error())
				clear(rejected)
				lastReject = d.now()
			}
			continue
		}
		switch {
		case errors.Is(err, arp.ErrMalformed), errors.Is(err, nd.ErrMalformed):
			// Anyone on the LAN can send junk; note it without flooding the log.
			malformed++
			r := junkReason(err)
			d.junk[r].Add(1)
			d.metrics.Malformed(string(r))
			junkSince[r]++
			if d.since(lastReport) > 10*time.Second {
				attrs := []any{"count", malformed, "last_error", err.Error()}
				for _, r := range junkReasons {
					if junkSince[r] > 0 {
						attrs = append(attrs, string(r), junkSince[r])
					}
				}
				d.log.Warn("ignored malformed frames", attrs...)
				malformed, lastReport = 0, d.now()
				clear(junkSince)
			}
			continue
		case errors.Is(err, net.ErrClosed):
			return
		case err != nil:
			d.log.Error("reading ARP frames", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		own := bytes.Equal(p.Source, d.mac) || bytes.Equal(p.SenderHardwareAddr, d.mac)
		if own {
			d.spoofed.Add(1)
			d.metrics.Spoofed()
		} else if d.deps.Auth != nil && p.Trailer != nil && !p.Authenticated {
			// A floatip frame without an auth block: counted; it still
			// goes up, unauthenticated (with require: false it counts as
			// before, otherwise only as a possible foreign claim).
			d.authFailure(auth.ReasonMissing)
			rejected[auth.ReasonMissing]++
			if d.since(lastReject) > 10*time.Second {
				d.rejectedLog(rejected, "a floatip frame from "+p.Source.String()+" without an auth block")
				clear(rejected)
				lastReject = d.now()
			}
		}
		ip := p.SenderIP
		if p.IsProbe() {
			ip = p.TargetIP
		}
		g := d.route(ip)
		if g == nil || seen.repeat(g, p, ip) {
			continue
		}
		g.deliver(election.Frame{Packet: p, Authenticated: p.Authenticated})
	}
}

// junk is why a frame from the wire was malformed.
type junk string

const (
	junkMalformed junk = "malformed" // does not decode (ARP or ND)
	junkHopLimit  junk = "hop_limit" // ND with a hop limit other than 255: forwarded or forged off-link
	junkChecksum  junk = "checksum"  // ND with a bad ICMPv6 checksum
)

var junkReasons = []junk{junkMalformed, junkHopLimit, junkChecksum}

func junkReason(err error) junk {
	switch {
	case errors.Is(err, nd.ErrHopLimit):
		return junkHopLimit
	case errors.Is(err, nd.ErrChecksum):
		return junkChecksum
	}
	return junkMalformed
}

// authFailure counts a frame that failed authentication.
func (d *daemon) authFailure(r auth.Reason) {
	if c := d.authFailures[r]; c != nil {
		c.Add(1)
	}
	d.metrics.AuthFailure(r)
}

func (d *daemon) rejectedLog(n map[auth.Reason]int, last string) {
	attrs := []any{"last", last}
	for _, r := range auth.Reasons {
		if n[r] > 0 {
			attrs = append(attrs, string(r), n[r])
		}
	}
	d.log.Warn("frames failed authentication", attrs...)
}

// announceSeen drops the bulk of a large group's announcements: a holder
// announces every VIP of its group at once, and the group's machine learns
// all it needs from the first of them. Claims for the group's other VIPs
// from another sender (a conflict) still get through.
type announceSeen struct {
	now  func() time.Time
	last map[*group]lastAnnounce
}

type lastAnnounce struct {
	mac string
	at  time.Time
}

const announceBurst = 100 * time.Millisecond

func (s announceSeen) repeat(g *group, p *arp.Packet, ip netip.Addr) bool {
	if p.IsProbe() || ip == g.vips[0] || len(g.vips) == 1 {
		return false
	}
	mac, now := string(p.SenderHardwareAddr), s.now()
	last, ok := s.last[g]
	if ok && last.mac == mac && now.Sub(last.at) < announceBurst {
		return true
	}
	s.last[g] = lastAnnounce{mac, now}
	return false
}

// watch turns netlink link and address events into group events.
func (d *daemon) watch(ctx context.Context) {
	events := make(chan ifaddr.Event, 64)
	var watcher sync.WaitGroup
	defer watcher.Wait() // Watch ends with ctx
	watcher.Go(func() {
		if err := d.addrs.Watch(ctx, events); err != nil && ctx.Err() == nil {
			d.log.Error("watching the interface failed; link and address changes will go unnoticed", "err", err)
		}
	})
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
				g.enqueue(ctx, election.LinkChanged{Up: up})
			}
		case ifaddr.AddrAdded, ifaddr.AddrRemoved:
			g := d.route(ev.Addr)
			if g == nil {
				continue
			}
			if ev.Kind == ifaddr.AddrRemoved && g.snap.Load().State == election.StateHolder {
				// A removal we caused ourselves may be reported after the
				// group already claimed the VIP again: only a VIP that is
				// gone now counts. (Only a holder cares, so a large group's
				// release costs no dumps.)
				if now, err := d.addrs.Present([]netip.Addr{ev.Addr}); err == nil && now[ev.Addr] {
					continue
				}
			}
			g.enqueue(ctx, election.AddrChanged{Addr: ev.Addr, Present: ev.Kind == ifaddr.AddrAdded})
		case ifaddr.LinkReplaced:
			// The interface was deleted and created again: the netlink
			// watch, the ARP socket and the address calls are bound to
			// the old index. Exit non-zero; the service manager
			// (Restart=on-failure) starts us again on the new one, through
			// the same checks as any start.
			err := fmt.Errorf("interface %s was deleted and created again (index %d now): restarting to bind to it", d.ifname, ev.Link.Index)
			d.log.Error("interface re-created; exiting so that the service manager restarts floatip on it", "interface", d.ifname, "index", ev.Link.Index)
			select {
			case d.fatal <- err:
			default:
			}
		case ifaddr.Resync:
			d.log.Warn("netlink subscription was lost and re-established; re-reading the interface")
			link, err := d.addrs.Link()
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
					g.enqueue(ctx, election.AddrChanged{Addr: v, Present: false})
				}
			}
			for _, g := range d.allGroups() {
				g.enqueue(ctx, election.LinkChanged{Up: lastUp})
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
		gs := *d.ordered.Load()
		leader := map[string]bool{}
		for _, g := range gs { // configuration order: the first is the leader
			s := g.snap.Load()
			want := false
			if s.State == election.StateStandby && s.Holder != "" {
				want = leader[s.Holder]
				leader[s.Holder] = true
			}
			if relaxed[g] != want {
				relaxed[g] = want
				g.enqueue(ctx, election.Pace{Relaxed: want})
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

// checkOwnAddresses refuses a VIP that is one of the node's own addresses
// as Link reports them: a VIP is configured as /32 (IPv6: /128) by floatip; anything else
// is the host's own. Deps.CheckVIPs looks closer (a permanent /32 too).
func checkOwnAddresses(cfg config.Config, link ifaddr.Link) error {
	for _, p := range link.Addrs {
		if p.Bits() == hostBits(p.Addr()) {
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
