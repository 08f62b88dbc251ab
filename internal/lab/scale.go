package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ScaleRange holds the VIPs of a Scale lab. The lab's own subnet is too
// small for 1000 addresses, but /32 VIPs only need the same L2 segment and
// a route: StartScale routes this range onto eth0 in every namespace.
var ScaleRange = netip.MustParsePrefix("198.18.4.0/22")

// ScaleVIPs returns n consecutive addresses of ScaleRange from its second on,
// skipping those ending in .0 or .255; n at most 1016.
func ScaleVIPs(n int) ([]netip.Addr, error) {
	var out []netip.Addr
	for a := ScaleRange.Addr().Next(); len(out) < n; a = a.Next() {
		if !ScaleRange.Contains(a) {
			return nil, fmt.Errorf("lab: %d VIPs do not fit in %v", n, ScaleRange)
		}
		if b := a.As4(); b[3] == 0 || b[3] == 255 {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// ScaleConfig is a floatip configuration for eth0 at priority prio with one
// group per element of groups, named g0, g1, ...
func ScaleConfig(prio int, groups [][]netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface: eth0\npriority: %d\ngroups:\n", prio)
	for i, g := range groups {
		s := make([]string, len(g))
		for j, a := range g {
			s[j] = a.String()
		}
		fmt.Fprintf(&b, "  - name: g%d\n    vips: [%s]\n", i, strings.Join(s, ", "))
	}
	return b.String()
}

// ScaleOptions configures StartScale; zero fields take the defaults.
type ScaleOptions struct {
	Groups       int           // default 10
	VIPsPerGroup int           // default 100
	StartLimit   time.Duration // for each daemon to take up its role; default 15 s
	// Settle is how long StartScale lets the daemons run once every one
	// has its role, for the standbys' start-up and pacing to settle;
	// default 2 s.
	Settle time.Duration
}

// Scale is a lab where every node runs floatip with many groups of many
// VIPs: n1 (priority 200) holds every group, the others (150, 100, ...) are
// standbys of every group.
type Scale struct {
	Lab    *Lab
	Groups [][]netip.Addr
	VIPs   []netip.Addr

	set map[netip.Addr]bool
	dir string
}

// StartScale routes ScaleRange in every namespace of l, then starts floatip
// with every group on each node (its HTTP service must run already): n1
// first, until its log shows it holding every group and every VIP is on its
// eth0, then the others one by one, each until it runs every group as a
// standby; then it lets them settle (ScaleOptions.Settle). Close removes
// the configuration files.
func StartScale(ctx context.Context, l *Lab, o ScaleOptions) (_ *Scale, err error) {
	if o.Groups == 0 {
		o.Groups = 10
	}
	if o.VIPsPerGroup == 0 {
		o.VIPsPerGroup = 100
	}
	if o.StartLimit == 0 {
		o.StartLimit = 15 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 2 * time.Second
	}
	if len(l.Nodes()) < 2 {
		return nil, errors.New("lab: a scale lab needs at least 2 nodes")
	}
	vips, err := ScaleVIPs(o.Groups * o.VIPsPerGroup)
	if err != nil {
		return nil, err
	}
	s := &Scale{Lab: l, VIPs: vips, set: map[netip.Addr]bool{}}
	for i := range o.Groups {
		s.Groups = append(s.Groups, vips[i*o.VIPsPerGroup:(i+1)*o.VIPsPerGroup])
	}
	for _, a := range vips {
		s.set[a] = true
	}
	if s.dir, err = os.MkdirTemp("", "floatip-lab-scale-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return nil, err
	}
	for _, n := range append(l.Nodes(), l.ClientNode()) {
		if err := ipCmd(ctx, "-n", n.NS, "route", "add", ScaleRange.String(), "dev", "eth0"); err != nil {
			return nil, fmt.Errorf("lab: route on %s: %w", n.Name, err)
		}
	}
	for i, n := range l.Nodes() {
		path := filepath.Join(s.dir, n.Name+".yaml")
		if err := os.WriteFile(path, []byte(ScaleConfig(max(200-50*i, 1), s.Groups)), 0o644); err != nil {
			return nil, err
		}
		p, err := n.StartDaemon(ctx, l.Binary, "run", "--config", path, "--node-name", n.Name, "--log-format", "json", "--socket", n.Socket())
		if err != nil {
			return nil, err
		}
		state := "standby"
		if i == 0 {
			state = "holder"
		}
		if err := waitGroups(ctx, p, o.Groups, state, o.StartLimit); err != nil {
			return nil, err
		}
		if i == 0 {
			if err := s.waitVIPs(ctx, n, o.StartLimit); err != nil {
				return nil, err
			}
		}
	}
	return s, Sleep(ctx, o.Settle)
}

// waitGroups waits until the daemon's log shows every one of its groups in
// state.
func waitGroups(ctx context.Context, p *Proc, groups int, state string, timeout time.Duration) error {
	states := map[string]string{}
	_, err := p.WaitMsg(ctx, timeout, "state changed", func(l Line) bool {
		states[l.Str("group")] = l.Str("to")
		in := 0
		for _, st := range states {
			if st == state {
				in++
			}
		}
		return in == groups
	})
	if err != nil {
		return fmt.Errorf("lab: waiting for %s to run all %d groups as %s (now %v): %w", p.Name, groups, state, states, err)
	}
	return nil
}

func (s *Scale) waitVIPs(ctx context.Context, n *Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		have, err := s.VIPsOn(n)
		if err == nil && len(have) == len(s.VIPs) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s configured %d of %d VIPs after %v (err %v)", n.Name, len(have), len(s.VIPs), timeout, err)
		}
		if err := Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// Sleep waits d (nothing for d <= 0) or until ctx ends, and returns ctx's
// error in that case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close removes the configuration files.
func (s *Scale) Close() error { return os.RemoveAll(s.dir) }

// VIPsOn returns which of the scale VIPs are configured on the node's eth0.
func (s *Scale) VIPsOn(n *Node) (map[netip.Addr]bool, error) {
	addrs, err := n.Addrs()
	if err != nil {
		return nil, err
	}
	have := map[netip.Addr]bool{}
	for _, p := range addrs {
		if s.set[p.Addr()] {
			have[p.Addr()] = true
		}
	}
	return have, nil
}

// ScaleFailover is what PowerOffFailover saw.
type ScaleFailover struct {
	FaultAt time.Time
	// AllOnNext is from the fault until every VIP was on n2; Settled until
	// moreover none was on any other node.
	AllOnNext, Settled time.Duration
	// MaxOnOthers is the most VIPs seen on the nodes after n2 at once (they
	// must not claim while n2, of a higher priority, is alive), MaxOnTwo the
	// most seen on two live nodes at once, OthersClaimed how often their logs
	// show a group becoming holder.
	MaxOnOthers, MaxOnTwo, OthersClaimed int
	// Reference is the single-VIP reference client (the first VIP of g0,
	// every 5 ms); Sampled the clients of the first and last VIP of every
	// group (every 25 ms), by "g0 198.18.4.1".
	Reference Result
	Sampled   map[string]Result
	// Worst names the sampled client with the longest outage.
	Worst string
}

// Ratio is the worst sampled VIP's outage over the single-VIP reference
// outage; 0 when the reference saw none.
func (f ScaleFailover) Ratio() float64 {
	if f.Reference.Outage <= 0 {
		return 0
	}
	return float64(f.Sampled[f.Worst].Outage) / float64(f.Reference.Outage)
}

// PowerOffFailover starts the clients (see ScaleFailover), waits until each
// is served by n1, powers n1 off and follows the VIPs until all are on n2 and
// none elsewhere (at most timeout), then until every client was served by n2
// after that. It returns an error when the VIPs did not settle or a client
// was not served by n2; the figures it measured come back either way.
func (s *Scale) PowerOffFailover(ctx context.Context, timeout time.Duration) (ScaleFailover, error) {
	l := s.Lab
	n1, n2 := l.Node(1), l.Node(2)
	others := l.Nodes()[2:]
	f := ScaleFailover{Sampled: map[string]Result{}}
	port := uint16(ServicePort)
	ref, err := l.StartClient(ctx, ClientOptions{Target: netip.AddrPortFrom(s.Groups[0][0], port), Every: 5 * time.Millisecond})
	if err != nil {
		return f, err
	}
	clients := map[string]*Client{}
	for i, g := range s.Groups {
		for _, a := range []netip.Addr{g[0], g[len(g)-1]} {
			c, err := l.StartClient(ctx, ClientOptions{Target: netip.AddrPortFrom(a, port), Every: 25 * time.Millisecond})
			if err != nil {
				return f, err
			}
			clients[fmt.Sprintf("g%d %v", i, a)] = c
		}
	}
	all := map[string]*Client{"reference": ref}
	for name, c := range clients {
		all[name] = c
	}
	for name, c := range all {
		if _, err := c.WaitSample(ctx, 5*time.Second, func(x Sample) bool { return x.OK && x.Node == n1.Name }); err != nil {
			return f, fmt.Errorf("client %s never reached %s: %w", name, n1.Name, err)
		}
	}

	f.FaultAt = time.Now()
	if err := n1.Inject(Fault{Kind: FaultPowerOff}); err != nil {
		return f, err
	}
	deadline := f.FaultAt.Add(timeout)
	for {
		on2, err := s.VIPsOn(n2)
		now := time.Since(f.FaultAt)
		onOthers, both := 0, 0
		seen := map[netip.Addr]bool{}
		for a := range on2 {
			seen[a] = true
		}
		for _, n := range others {
			on, oerr := s.VIPsOn(n)
			err = errors.Join(err, oerr)
			onOthers += len(on)
			for a := range on {
				if seen[a] {
					both++
				}
				seen[a] = true
			}
		}
		if err == nil {
			f.MaxOnOthers = max(f.MaxOnOthers, onOthers)
			f.MaxOnTwo = max(f.MaxOnTwo, both)
			if f.AllOnNext == 0 && len(on2) == len(s.VIPs) {
				f.AllOnNext = now
			}
			if len(on2) == len(s.VIPs) && onOthers == 0 {
				f.Settled = now
				break
			}
		}
		if time.Now().After(deadline) {
			return f, fmt.Errorf("%v after powering off %s: %s has %d and the others %d of %d VIPs, want all on %s and none elsewhere (err %v)",
				timeout, n1.Name, n2.Name, len(on2), onOthers, len(s.VIPs), n2.Name, err)
		}
		if err := Sleep(ctx, 5*time.Millisecond); err != nil {
			return f, err
		}
	}
	var errs []error
	settledAt := f.FaultAt.Add(f.Settled)
	for name, c := range all {
		// A success from n2 sent once the VIPs settled: the client's last
		// failure (if any) lies before it, so Measure sees the whole outage.
		if _, err := c.WaitSample(ctx, 10*time.Second, func(x Sample) bool {
			return x.OK && x.Node == n2.Name && x.At.After(settledAt)
		}); err != nil {
			errs = append(errs, fmt.Errorf("client %s never reached %s after the VIPs settled: %w", name, n2.Name, err))
		}
	}
	for _, n := range others {
		for _, line := range n.Daemon().Lines() {
			if line.Msg() == "state changed" && line.Str("to") == "holder" {
				f.OthersClaimed++
			}
		}
	}
	f.Reference = Measure(ref.Stop(), f.FaultAt)
	for name, c := range clients {
		r := Measure(c.Stop(), f.FaultAt)
		f.Sampled[name] = r
		if f.Worst == "" || r.Outage > f.Sampled[f.Worst].Outage {
			f.Worst = name
		}
	}
	return f, errors.Join(errs...)
}
