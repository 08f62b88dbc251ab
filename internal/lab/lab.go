// Package lab builds a network-namespace lab for floatip: a bridge, N node
// namespaces and a client namespace on one L2 segment inside 198.18.0.0/24
// (the benchmark range), and runs processes in them, injects faults and
// measures outages.
//
// Layout for prefix "flab" and 3 nodes:
//
//	flab-br   bridge br0 with ports n1, n2, n3, c (veths)
//	flab-n1   eth0 198.18.0.11/24   (peer of n1 in flab-br)
//	flab-n2   eth0 198.18.0.12/24
//	flab-n3   eth0 198.18.0.13/24
//	flab-c    eth0 198.18.0.200/24  (the client)
//
// The VIP defaults to 198.18.0.100. With Options.IPv6, every namespace also
// has IPv6 (DAD off, so addresses are usable at once): node i gets
// 2001:db8:18::(10+i)/64 (hexadecimal digits spelled like the IPv4 ones:
// 2001:db8:18::11 for n1), the client 2001:db8:18::200/64, the IPv6 VIP
// defaults to 2001:db8:18::100, and the bridge snoops MLD with a querier
// (mcast_snooping 1, mcast_querier 1), as a managed switch would. Nothing is created in the host's own
// network namespace, and every process the lab starts runs inside a lab
// namespace, so lab traffic cannot reach the host's network.
//
// The lab is a test harness: it shells out to `ip` for setup and to `ip
// netns exec` to run processes, and uses netlink handles opened inside the
// namespaces for the fast paths (polling the VIP, cutting links).
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// DefaultPrefix names the demo's namespaces: flab-br, flab-n1, ...
const DefaultPrefix = "flab"

// Addresses of the lab, all inside 198.18.0.0/24 (RFC 2544 benchmark range).
var (
	Subnet     = netip.MustParsePrefix("198.18.0.0/24")
	DefaultVIP = netip.MustParseAddr("198.18.0.100")
	ClientIP   = netip.MustParseAddr("198.18.0.200")

	// IPv6 (Options.IPv6): 2001:db8::/32 is the documentation range.
	Subnet6     = netip.MustParsePrefix("2001:db8:18::/64")
	DefaultVIP6 = netip.MustParseAddr("2001:db8:18::100")
	ClientIP6   = netip.MustParseAddr("2001:db8:18::200")
)

// ServicePort is the port every node's HTTP service listens on.
const ServicePort = 8080

// MaxNodes bounds Options.Nodes: node i gets 198.18.0.(10+i), below the VIP.
const MaxNodes = 80

// Priority is the floatip priority of node i (1-based) in a lab of n
// nodes: 200, 150, 100, 50 for up to four nodes, as the demo prints them;
// for more, evenly spaced from 200 down so that every node's differs (10
// nodes: 200, 178, ... 2).
func Priority(i, n int) int {
	step := 50
	if n > 4 {
		step = 198 / (n - 1)
	}
	return max(200-step*(i-1), 1)
}

// NodeIP is the address of node i (1-based): 198.18.0.(10+i).
func NodeIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}) }

// NodeIP6 is the IPv6 address of node i (1-based) in a lab with IPv6:
// 2001:db8:18::1X, written with the same digits as NodeIP's last byte.
func NodeIP6(i int) netip.Addr {
	n := 10 + i
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x18, 14: byte((n / 100) % 10), 15: byte((n/10)%10<<4 | n%10)})
}

// Options configures Up.
type Options struct {
	// Prefix names the namespaces (Prefix-br, Prefix-n1, ..., Prefix-c).
	// Lower-case letters and digits, at most 10; default "flab".
	Prefix string
	// Nodes is the number of node namespaces, 1..80; default 2.
	Nodes int
	// VIP is the floating address; default 198.18.0.100. It must be inside
	// 198.18.0.0/24 and not a node's or the client's address.
	VIP netip.Addr
	// IPv6 gives every namespace IPv6 addresses of its own (see the package
	// doc) and the bridge an MLD querier. Off, the lab has no IPv6 at all.
	IPv6 bool
	// VIP6 is the IPv6 floating address (with IPv6); default
	// 2001:db8:18::100, inside 2001:db8:18::/64.
	VIP6 netip.Addr
	// VIPs are the addresses the nodes' daemons float, one group, in this
	// order (Node.FloatipArgs passes one --vip each); default [VIP], or with
	// IPv6 [VIP6] (an IPv6-only group). For a dual-stack group pass both,
	// e.g. []netip.Addr{lab.DefaultVIP, lab.DefaultVIP6}. Holders and
	// Node.HasVIP look at the first.
	VIPs []netip.Addr
	// Binary is the floatip executable run inside the namespaces (daemon,
	// `lab serve`, `lab client`); default os.Executable(). Tests must set it
	// (see Build): a test binary is not floatip.
	Binary string
	// Progress receives human progress lines ("creating namespaces... ok");
	// nil discards them.
	Progress io.Writer

	// hook, when set (tests only), runs before each setup step; an error
	// from it fails Up at that step.
	hook func(step string) error
}

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	Prefix string
	VIP    netip.Addr
	// IPv6 and VIP6 are Options.IPv6 and the IPv6 VIP (zero without IPv6).
	IPv6 bool
	VIP6 netip.Addr
	// VIPs are the daemons' VIPs (Options.VIPs); VIPs[0] is the one
	// Holders and Node.HasVIP look at.
	VIPs   []netip.Addr
	Binary string

	nodes  []*Node
	client *Node
	brNS   string
	br     *netlink.Handle // handle inside Prefix-br, for cutting links

	progress io.Writer

	mu      sync.Mutex
	procs   []*Proc
	handles []*netlink.Handle
	downed  bool
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// checkPrefix refuses a prefix that is not a lab's.
func checkPrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("lab: prefix %q: want 1 to 10 lower-case letters and digits, starting with a letter", prefix)
	}
	return nil
}

func (o *Options) setDefaults() error {
	if err := o.setLayout(); err != nil {
		return err
	}
	return o.setBinary()
}

// setLayout defaults and checks the prefix, nodes and VIP.
func (o *Options) setLayout() error {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := checkPrefix(o.Prefix); err != nil {
		return err
	}
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return fmt.Errorf("lab: %d nodes: want 1 to %d (one address each, %v to %v, below the VIP)", o.Nodes, MaxNodes, NodeIP(1), NodeIP(MaxNodes))
	}
	if !o.VIP.IsValid() {
		o.VIP = DefaultVIP
	}
	if !o.VIP.Is4() || !Subnet.Contains(o.VIP) || o.VIP == Subnet.Addr() || o.VIP.As4()[3] == 255 {
		return fmt.Errorf("lab: VIP %v: want a host address inside %v", o.VIP, Subnet)
	}
	if o.VIP == ClientIP {
		return fmt.Errorf("lab: VIP %v is the client's address", o.VIP)
	}
	for i := 1; i <= o.Nodes; i++ {
		if o.VIP == NodeIP(i) {
			return fmt.Errorf("lab: VIP %v is node n%d's address", o.VIP, i)
		}
	}
	if !o.IPv6 {
		if o.VIP6.IsValid() {
			return fmt.Errorf("lab: IPv6 VIP %v given, but the lab has no IPv6 (set IPv6)", o.VIP6)
		}
	} else {
		if !o.VIP6.IsValid() {
			o.VIP6 = DefaultVIP6
		}
		if !o.VIP6.Is6() || o.VIP6.Is4In6() || !Subnet6.Contains(o.VIP6) || o.VIP6 == Subnet6.Addr() {
			return fmt.Errorf("lab: IPv6 VIP %v: want a host address inside %v", o.VIP6, Subnet6)
		}
		if o.VIP6 == ClientIP6 {
			return fmt.Errorf("lab: IPv6 VIP %v is the client's address", o.VIP6)
		}
		for i := 1; i <= o.Nodes; i++ {
			if o.VIP6 == NodeIP6(i) {
				return fmt.Errorf("lab: IPv6 VIP %v is node n%d's address", o.VIP6, i)
			}
		}
	}
	if len(o.VIPs) == 0 {
		o.VIPs = []netip.Addr{o.VIP}
		if o.IPv6 {
			o.VIPs = []netip.Addr{o.VIP6}
		}
	}
	for _, v := range o.VIPs {
		if v != o.VIP && (!o.IPv6 || v != o.VIP6) {
			return fmt.Errorf("lab: VIPs: %v is neither the lab's VIP %v nor its IPv6 VIP", v, o.VIP)
		}
	}
	return nil
}

// setBinary defaults and checks the binary.
func (o *Options) setBinary() error {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("lab: find the floatip executable: %w", err)
		}
		o.Binary = exe
	}
	abs, err := filepath.Abs(o.Binary)
	if err != nil {
		return err
	}
	o.Binary = abs
	if fi, err := os.Stat(o.Binary); err != nil {
		return fmt.Errorf("lab: floatip binary: %w", err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("lab: floatip binary %s is not an executable file", o.Binary)
	}
	return nil
}

// ErrExists matches (errors.Is) Up's error when namespaces with the prefix
// already exist.
var ErrExists = errors.New("lab already running")

type existsError struct{ msg string }

func (e existsError) Error() string        { return e.msg }
func (e existsError) Is(target error) bool { return target == ErrExists }

// Up builds the lab: namespaces, bridge, veths, addresses. It starts no
// process. On any error (including ctx ending) it tears down whatever it made
// and returns the error.
//
// Up refuses to run when not root, when `ip netns` does not work, and when
// namespaces with the prefix already exist.
func Up(ctx context.Context, o Options) (_ *Lab, err error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (it creates network namespaces): run it with sudo")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("the lab needs the `ip` command (iproute2)")
	}
	existing, err := labNamespaces(o.Prefix)
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return nil, existsError{fmt.Sprintf("a lab named %s is already running (namespaces %s); `floatip lab --cleanup%s` removes it",
			o.Prefix, strings.Join(existing, ", "), prefixFlag(o.Prefix))}
	}

	l := &Lab{
		Prefix:   o.Prefix,
		VIP:      o.VIP,
		IPv6:     o.IPv6,
		VIP6:     o.VIP6,
		VIPs:     append([]netip.Addr(nil), o.VIPs...),
		Binary:   o.Binary,
		brNS:     o.Prefix + "-br",
		progress: o.Progress,
	}
	for i := 1; i <= o.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		n := &Node{Name: name, NS: o.Prefix + "-" + name, IP: NodeIP(i), Index: i, lab: l, faults: map[FaultKind]Fault{}}
		if o.IPv6 {
			n.IP6 = NodeIP6(i)
		}
		l.nodes = append(l.nodes, n)
	}
	l.client = &Node{Name: "c", NS: o.Prefix + "-c", IP: ClientIP, lab: l, faults: map[FaultKind]Fault{}}
	if o.IPv6 {
		l.client.IP6 = ClientIP6
	}
	defer func() {
		if err != nil {
			if derr := l.Down(); derr != nil {
				err = fmt.Errorf("%w (and tearing down: %v)", err, derr)
			}
		}
	}()

	step := func(name string, f func() error) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lab: %s: %w", name, err)
		}
		l.printf("%s... ", name)
		if o.hook != nil {
			if err := o.hook(name); err != nil {
				l.printf("failed\n")
				return fmt.Errorf("lab: %s: %w", name, err)
			}
		}
		if err := ctx.Err(); err != nil {
			l.printf("interrupted\n")
			return fmt.Errorf("lab: %s: %w", name, err)
		}
		if err := f(); err != nil {
			l.printf("failed\n")
			return fmt.Errorf("lab: %s: %w", name, err)
		}
		l.printf("ok\n")
		return nil
	}

	all := append([]*Node{l.client}, l.nodes...)
	if err := step("creating namespaces", func() error {
		for _, ns := range append([]string{l.brNS}, nsNames(all)...) {
			if err := ipCmd(ctx, "netns", "add", ns); err != nil {
				return err
			}
			if err := ipCmd(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
				return err
			}
			if o.IPv6 {
				// IPv6 without DAD, so every address (link-locals too,
				// which the bridge's MLD querier and floatip's
				// solicitations need) is usable at once; no router
				// solicitations or autoconfiguration: there is no router.
				if err := setSysctls(ns, map[string]string{
					"ipv6/conf/all/disable_ipv6":             "0",
					"ipv6/conf/default/disable_ipv6":         "0",
					"ipv6/conf/all/accept_dad":               "0",
					"ipv6/conf/default/accept_dad":           "0",
					"ipv6/conf/default/router_solicitations": "0",
					"ipv6/conf/default/accept_ra":            "0",
				}); err != nil {
					return fmt.Errorf("IPv6 sysctls in %s: %w", ns, err)
				}
				continue
			}
			// No IPv6 in the lab: no DAD, no router solicitations, less noise.
			_ = setSysctls(ns, map[string]string{
				"ipv6/conf/all/disable_ipv6":     "1",
				"ipv6/conf/default/disable_ipv6": "1",
			})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step("creating bridge br0", func() error {
		args := []string{"-n", l.brNS, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"}
		if o.IPv6 {
			// MLD snooping with a querier, like a managed switch: a
			// solicited-node group reaches only the ports that joined it.
			args = append(args, "mcast_snooping", "1", "mcast_querier", "1")
		}
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
		return ipCmd(ctx, "-n", l.brNS, "link", "set", "br0", "up")
	}); err != nil {
		return nil, err
	}
	if err := step(fmt.Sprintf("wiring %s and the client", nodeRange(l.nodes)), func() error {
		for _, n := range all {
			if err := n.wire(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step("opening netlink handles", func() error {
		h, err := l.handleIn(l.brNS)
		if err != nil {
			return err
		}
		l.br = h
		for _, n := range all {
			if n.h, err = l.handleIn(n.NS); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return l, nil
}

func prefixFlag(prefix string) string {
	if prefix == DefaultPrefix {
		return ""
	}
	return " --prefix " + prefix
}

func nsNames(ns []*Node) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.NS)
	}
	return s
}

func nodeRange(nodes []*Node) string {
	if len(nodes) == 1 {
		return nodes[0].Name
	}
	return nodes[0].Name + ".." + nodes[len(nodes)-1].Name
}

// wire creates the node's veth pair (bridge side named after the node, node
// side eth0), attaches it to br0 and configures the node's address.
func (n *Node) wire(ctx context.Context) error {
	br := n.lab.brNS
	steps := [][]string{
		{"-n", br, "link", "add", n.Name, "type", "veth", "peer", "name", "eth0", "netns", n.NS},
		{"-n", br, "link", "set", n.Name, "master", "br0", "up"},
		{"-n", n.NS, "addr", "add", netip.PrefixFrom(n.IP, Subnet.Bits()).String(), "dev", "eth0"},
	}
	if n.IP6.IsValid() {
		steps = append(steps, []string{"-n", n.NS, "addr", "add", netip.PrefixFrom(n.IP6, Subnet6.Bits()).String(), "dev", "eth0", "nodad"})
	}
	steps = append(steps, []string{"-n", n.NS, "link", "set", "eth0", "up"})
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// Rewire deletes the node's interface (both ends of its veth pair) and
// creates it again as wire did: same names and address, a new index, as
// when an operator or a network manager re-creates an interface.
func (n *Node) Rewire(ctx context.Context) error {
	if err := ipCmd(ctx, "-n", n.NS, "link", "del", "eth0"); err != nil {
		return err
	}
	return n.wire(ctx)
}

func (l *Lab) handleIn(ns string) (*netlink.Handle, error) {
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns, err)
	}
	l.mu.Lock()
	l.handles = append(l.handles, h)
	l.mu.Unlock()
	return h, nil
}

func (l *Lab) printf(format string, args ...any) {
	if l.progress != nil {
		fmt.Fprintf(l.progress, format, args...)
	}
}

// Node returns node i, 1-based; nil when out of range.
func (l *Lab) Node(i int) *Node {
	if i < 1 || i > len(l.nodes) {
		return nil
	}
	return l.nodes[i-1]
}

// Nodes returns the nodes in order n1, n2, ...
func (l *Lab) Nodes() []*Node { return append([]*Node(nil), l.nodes...) }

// NodeByName returns the node called name ("n2"), or nil.
func (l *Lab) NodeByName(name string) *Node {
	for _, n := range l.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ClientNode is the client namespace (Prefix-c, 198.18.0.200) as a Node, to
// run commands there; it is not among Nodes and never holds the VIP.
func (l *Lab) ClientNode() *Node { return l.client }

func (l *Lab) track(p *Proc) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.downed {
		return errors.New("lab: the lab is down")
	}
	l.procs = append(l.procs, p)
	return nil
}

// Procs returns every process the lab has started, running or not.
func (l *Lab) Procs() []*Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Proc(nil), l.procs...)
}

// StopProcs kills every process the lab started (their whole process
// groups) and waits for them, keeping the namespaces.
func (l *Lab) StopProcs() error {
	var errs []error
	for _, p := range l.Procs() {
		if err := p.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Down kills every process the lab started (process groups, then anything
// else left inside its namespaces) and deletes its namespaces. It is
// idempotent and safe after a partial Up.
func (l *Lab) Down() error {
	l.mu.Lock()
	l.downed = true
	handles := l.handles
	l.handles = nil
	l.mu.Unlock()
	errs := []error{l.StopProcs()}
	for _, h := range handles {
		h.Close()
	}
	errs = append(errs, Cleanup(l.Prefix))
	// A daemon that was killed (power off, crash) left its control socket.
	for _, n := range l.Nodes() {
		os.Remove(n.Socket())
	}
	return errors.Join(errs...)
}

// Cleanup removes a lab's leftovers by name: it SIGKILLs every process inside
// the namespaces Prefix-br, Prefix-c and Prefix-n<N>, then deletes those
// namespaces (which deletes their veths and the bridge) and the nodes'
// control sockets (SocketDir/Prefix-n<N>.sock). Nothing else is touched
// (Teardown also stops a `lab up` supervisor). Removing nothing is not an
// error.
func Cleanup(prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	names, err := labNamespaces(prefix)
	if err != nil {
		return err
	}
	// Nodes and client first, the bridge last.
	sort.SliceStable(names, func(i, j int) bool { return !strings.HasSuffix(names[i], "-br") && strings.HasSuffix(names[j], "-br") })
	var errs []error
	for _, ns := range names {
		if err := killNamespaceProcs(ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range names {
		if err := ipCmd(context.Background(), "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	// A daemon that was killed left its control socket (Node.Socket).
	socks, _ := filepath.Glob(filepath.Join(SocketDir, prefix+"-n*.sock"))
	for _, s := range socks {
		if isLabNamespace(prefix, strings.TrimSuffix(filepath.Base(s), ".sock")) {
			if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CleanupReport is Cleanup that also returns the namespaces it removed.
func CleanupReport(prefix string) ([]string, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, Cleanup(prefix)
	}
	names, err := labNamespaces(prefix)
	if err != nil {
		return nil, err
	}
	return names, Cleanup(prefix)
}

// Holders returns the names of the nodes holding the VIP on eth0, skipping
// powered-off nodes (a machine that is off holds nothing; its namespace keeps
// the address only because the lab cannot really switch it off).
func (l *Lab) Holders() ([]string, error) {
	var holders []string
	for _, n := range l.nodes {
		if n.PoweredOff() {
			continue
		}
		ok, err := n.HasVIP()
		if err != nil {
			return nil, err
		}
		if ok {
			holders = append(holders, n.Name)
		}
	}
	return holders, nil
}

// ExactlyOne is a WaitHolders condition: exactly one node holds the VIP.
func ExactlyOne(h []string) bool { return len(h) == 1 }

// HeldBy returns a WaitHolders condition: the holders are exactly names.
func HeldBy(names ...string) func([]string) bool {
	return func(h []string) bool {
		if len(h) != len(names) {
			return false
		}
		for i := range h {
			if h[i] != names[i] {
				return false
			}
		}
		return true
	}
}

// Build compiles the floatip command into dir and returns the path of the
// executable. It runs `go build` from the current directory, which must be
// inside the floatip module (true for any test in it).
func Build(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("lab: build floatip: %w", err)
	}
	out := filepath.Join(dir, "floatip")
	cmd := exec.Command(goTool, "build", "-o", out, "github.com/floatip/floatip/cmd/floatip")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: go build floatip: %v\n%s", err, b)
	}
	return out, nil
}
