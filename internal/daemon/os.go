package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/floatip/floatip/internal/tcpdiag"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/arp/afpacket"
	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/ifaddr"
	"github.com/floatip/floatip/internal/ifaddr6"
	"github.com/floatip/floatip/internal/ifcheck"
	"github.com/floatip/floatip/internal/metrics"
	"github.com/floatip/floatip/internal/nd"
	ndafpacket "github.com/floatip/floatip/internal/nd/afpacket"
)

// This file is the daemon's thin OS layer: privileges, signals, the real
// ARP socket and netlink handle, the control socket and the metrics
// endpoint. Everything else (the daemon core) works on the FrameConn and
// Addrs interfaces and runs in tests with fakes.

// Run runs the daemon until ctx ends, then releases every VIP it holds,
// tells the standbys, and returns nil. Errors found before anything was
// changed (privileges, interface, addresses, control socket) are returned
// at once. SIGHUP reloads the configuration.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) error {
	// From the first moment: SIGHUP's default action would kill us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	processors(cfg)
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
	var addrs Addrs = mgr
	ipv6 := hasIPv6VIPs(cfg.Groups)
	var addrs6 *ifaddr6Addrs
	if ipv6 {
		if err := checkIPv6(cfg.Interface); err != nil {
			mgr.Close()
			return err
		}
		a6, err := ifaddr6.Open(cfg.Interface, netns.None())
		if err != nil {
			mgr.Close()
			return err
		}
		addrs6 = &ifaddr6Addrs{Addrs: a6}
		addrs = dualAddrs{Addrs: mgr, v6: addrs6, watchFailed: func(err error) {
			log.Error("watching the IPv6 addresses failed; an IPv6 VIP removed by hand comes back only at the next renewal", "err", err)
		}}
	}
	handedOver := false // once the core owns addrs, it closes it
	defer func() {
		if !handedOver {
			addrs.Close()
		}
	}()
	link, err := checkLink(cfg, addrs)
	if err != nil {
		return err
	}
	if err := checkVIPs(cfg); err != nil {
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
	ctl.SetLogger(log)
	defer ctl.Close()
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
		if metricsLn != nil {
			metricsLn.Close()
		}
		return err
	}
	var frames FrameConn = conn
	sealers := []sealer{conn}
	var ndc *ndafpacket.Conn
	if ipv6 {
		if ndc, err = ndafpacket.Listen(ifi); err != nil {
			conn.Close()
			if metricsLn != nil {
				metricsLn.Close()
			}
			return fmt.Errorf("IPv6 VIPs: %w", err)
		}
		sealers = append(sealers, ndc)
	}
	authDeps, seq, err := setupAuth(cfg, sealers, m)
	if err != nil {
		conn.Close()
		if ndc != nil {
			ndc.Close()
		}
		if metricsLn != nil {
			metricsLn.Close()
		}
		return err
	}
	if authDeps != nil {
		frames = sealCounter{conn, m}
	}
	if ndc != nil {
		var nds NDConn = ndc
		if authDeps != nil {
			nds = ndSealCounter{ndc, m}
		}
		w := newWire(frames, nds, addrs6.linkLocal)
		w.SetRouter(cfg.IPv6.NARouter)
		frames = w
	}

	handedOver = true
	d := newDaemon(cfg, log, opts, Deps{Conn: frames, Addrs: addrs, MAC: link.MAC, Metrics: m, Stopping: notifyStopping, CheckVIPs: checkVIPs, Auth: authDeps, IPv6: ipv6, NewQuorum: etcdQuorum, OpenConns: tcpdiag.OpenConns})
	if err := d.openQuorums(cfg); err != nil {
		d.stop()
		if metricsLn != nil {
			metricsLn.Close()
		}
		return err
	}
	log.Info("starting", "interface", cfg.Interface, "mac", link.MAC.String(), "node", cfg.NodeName,
		"groups", len(cfg.Groups), "control", cfg.Control.Socket, "metrics", cfg.Metrics.Listen, "version", opts.Version)
	for _, w := range opts.Warnings {
		log.Warn("configuration warning: " + w)
	}
	d.start(link)

	// The control socket, the metrics endpoint and systemd's watchdog
	// outlive the core by a moment: they stop after it stopped.
	auxCtx, stopAux := context.WithCancel(context.Background())
	var aux sync.WaitGroup
	aux.Go(func() {
		if err := ctl.Serve(auxCtx, d); err != nil {
			log.Error("control socket stopped", "err", err)
		}
	})
	if metricsLn != nil {
		aux.Go(func() {
			if err := m.ServeListener(auxCtx, metricsLn); err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		})
	}
	aux.Go(func() { d.systemd(auxCtx) })
	if seq != nil {
		aux.Go(func() { refreshSequence(auxCtx, seq, log) })
	}

	err = d.serve(ctx, hup)
	d.stop()
	stopAux()
	aux.Wait()
	log.Info("stopped")
	return err
}

// sealer is a socket that seals and verifies frames (the ARP and the ND
// afpacket.Conn).
type sealer interface {
	SetAuth(s *auth.Signer, v *auth.Verifier) error
}

// setupAuth reads the keys and the sequence state and makes the conns seal
// and verify, with one signer and one verifier (one replay table for both
// families); nil without auth. Errors name the configuration entry or file.
func setupAuth(cfg config.Config, conns []sealer, m *metrics.Metrics) (*AuthDeps, *auth.Sequence, error) {
	ring, err := cfg.LoadKeys()
	if err != nil || ring == nil {
		return nil, nil, err
	}
	seq, err := auth.OpenSequence(cfg.Auth.SequenceFile, auth.SequenceOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("auth.sequence_file: %w", err)
	}
	v := auth.NewVerifier(ring, auth.VerifierOptions{})
	s := auth.NewSigner(ring, seq)
	for _, c := range conns {
		if err := c.SetAuth(s, v); err != nil {
			return nil, nil, err
		}
	}
	m.AuthTable(v.Stats)
	return &AuthDeps{
		KeyIDs: ring.IDs(),
		Reload: func(next config.Config) ([]auth.KeyID, error) {
			r, err := next.LoadKeys()
			if err != nil {
				return nil, err
			}
			v.SetRing(r) // keeps the replay table
			s := auth.NewSigner(r, seq)
			for _, c := range conns {
				if err := c.SetAuth(s, v); err != nil {
					return nil, err
				}
			}
			return r.IDs(), nil
		},
		Stats: v.Stats,
	}, seq, nil
}

// refreshInterval is how often the sequence's state file is written ahead
// of need, so that sealing on the failover path never waits for a disk.
const refreshInterval = 10 * time.Second

func refreshSequence(ctx context.Context, seq *auth.Sequence, log *slog.Logger) {
	t := time.NewTicker(refreshInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := seq.Refresh()
		switch {
		case err != nil && !failing:
			log.Error("writing the auth sequence state file; frames will not be sent once the reserve is used up", "err", err)
		case err == nil && failing:
			log.Info("auth sequence state file written again")
		}
		failing = err != nil
	}
}

// sealCounter counts the frames Conn could not seal (and so did not send).
type sealCounter struct {
	*afpacket.Conn
	m *metrics.Metrics
}

func (c sealCounter) Write(p *arp.Packet) error {
	err := c.Conn.Write(p)
	if errors.Is(err, afpacket.ErrSeal) {
		c.m.SealFailure()
	}
	return err
}

// ndSealCounter counts the ND frames Conn could not seal (and so did not
// send).
type ndSealCounter struct {
	*ndafpacket.Conn
	m *metrics.Metrics
}

func (c ndSealCounter) Write(f *nd.Frame) error {
	err := c.Conn.Write(f)
	if errors.Is(err, ndafpacket.ErrSeal) {
		c.m.SealFailure()
	}
	return err
}

// checkLink reads the interface and refuses one floatip cannot work on.
func checkLink(cfg config.Config, addrs Addrs) (ifaddr.Link, error) {
	link, err := addrs.Link()
	if err != nil {
		return link, fmt.Errorf("read interface %q: %w", cfg.Interface, err)
	}
	if !link.Up {
		return link, fmt.Errorf("interface %q is down (administratively); bring it up first", cfg.Interface)
	}
	if len(link.MAC) != 6 {
		return link, fmt.Errorf("interface %q has no Ethernet address; ARP mode needs an Ethernet interface", cfg.Interface)
	}
	if err := checkOwnAddresses(cfg, link); err != nil {
		return link, err
	}
	return link, nil
}

// checkIPv6 refuses IPv6 VIPs on an interface without IPv6: the kernel
// would refuse every claim, and the group would fault forever.
func checkIPv6(ifname string) error {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6")
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("IPv6 VIPs configured, but this host has no IPv6 on %q (no /proc/sys/net/ipv6/conf/%s)", ifname, ifname)
	case err != nil:
		return nil // cannot tell; the first claim will say
	case strings.TrimSpace(string(b)) != "0":
		return fmt.Errorf("IPv6 VIPs configured, but IPv6 is disabled on %q: set net.ipv6.conf.%s.disable_ipv6=0", ifname, ifname)
	}
	return nil
}

// checkVIPs is Deps.CheckVIPs on the real interface: see package ifcheck.
func checkVIPs(cfg config.Config) error {
	ifc, err := ifcheck.Read(cfg.Interface)
	if err != nil {
		return err
	}
	return ifcheck.Check(cfg, ifc).Err()
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
	return missingCaps(string(b))
}

// missingCaps reads the CapEff line of /proc/self/status.
func missingCaps(status string) error {
	for _, line := range strings.Split(status, "\n") {
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

// processors runs the daemon's goroutines on one processor unless
// GOMAXPROCS says otherwise. The daemon waits on timers, sockets and
// netlink; it never has two goroutines' worth of computing at once, and with
// one P the runtime's scheduler threads and sysmon wake far less often. With
// 1000 VIPs (floatip bench --scale, 3 trials each) an idle standby went from
// 1.12 % to 0.77 % of a core and the holder from 0.64 % to 0.45 %, with the
// failover ratio unchanged (1.46 and 1.43).
//
// With a quorum the etcd client's gRPC streams are that second goroutine:
// right after a key changes hands they decode watch events and responses
// while the new holder must answer the old one's release frame, and on one
// P the frame waited behind them. The quorum stop benchmark (3 nodes,
// 10-12 trials each) measured the new holder's machine getting the release
// frame 0.06-3.2 ms after it was on the wire on one P (3 trials over 1.5
// ms), 0.06-0.29 ms on two; so a node with a quorum runs on two (when it has
// them). A reload that adds the first quorum keeps the number.
func processors(cfg config.Config) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := 1
	if usesQuorum(cfg) {
		n = min(2, runtime.NumCPU())
	}
	runtime.GOMAXPROCS(n)
}

func usesQuorum(cfg config.Config) bool {
	if cfg.Quorum != nil {
		return true
	}
	for _, g := range cfg.Groups {
		if g.Quorum != nil {
			return true
		}
	}
	return false
}

// ifaddr6Addrs is ifaddr6.Addrs as the daemon's Addrs6, and the source of
// the link-local address that solicitations are sent from.
type ifaddr6Addrs struct {
	*ifaddr6.Addrs

	llMu   sync.Mutex // held by the one refreshing ll
	ll     atomic.Pointer[netip.Addr]
	llRead atomic.Int64 // unix nanoseconds of the last read; 0: never
}

// Prefixes lists the interface's IPv6 addresses.
func (a *ifaddr6Addrs) Prefixes() ([]netip.Prefix, error) {
	list, err := a.List()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, x := range list {
		out = append(out, x.Prefix)
	}
	return out, nil
}

// linkLocalTTL is how long a link-local address read is used before it is
// read again.
const linkLocalTTL = 10 * time.Second

// linkLocal returns the interface's link-local address if one is usable
// (neither tentative nor dadfailed), else the zero Addr. It is read again
// at most every linkLocalTTL, by one caller while the others use the last
// value: a write never waits for a netlink dump another one is doing.
func (a *ifaddr6Addrs) linkLocal() netip.Addr {
	last := a.ll.Load()
	if last != nil && time.Since(time.Unix(0, a.llRead.Load())) < linkLocalTTL {
		return *last
	}
	if !a.llMu.TryLock() {
		if last != nil {
			return *last
		}
		a.llMu.Lock()
	}
	defer a.llMu.Unlock()
	var ll netip.Addr
	if list, err := a.List(); err == nil {
		for _, x := range list {
			if x.Prefix.Addr().IsLinkLocalUnicast() && x.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
				ll = x.Prefix.Addr()
				break
			}
		}
	}
	a.ll.Store(&ll)
	a.llRead.Store(time.Now().UnixNano())
	return ll
}
