package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// Node is one namespace of the lab: a node (n1, n2, ...) or the client (c).
type Node struct {
	Name  string     // "n1"; also the name of its bridge-side veth in Prefix-br
	NS    string     // "flab-n1"
	IP    netip.Addr // 198.18.0.11
	IP6   netip.Addr // 2001:db8:18::11 in a lab with IPv6, else zero
	Index int        // 1-based; 0 for the client

	lab *Lab
	h   *netlink.Handle // inside NS

	mu         sync.Mutex
	procs      []*Proc
	off        bool
	daemon     *Proc               // the last StartDaemon
	daemonArgv []string            // its command, to start it again
	service    *Proc               // the last StartService
	faults     map[FaultKind]Fault // in force (Inject, Heal)
	// quorumStopped are the etcd members FaultQuorumLost killed.
	quorumStopped []*EtcdMember
}

// Start runs name with args inside the node's namespace (`ip netns exec NS
// name args...`) in its own process group, capturing stdout and stderr line
// by line. The process is killed when ctx ends, by Down, and by PowerOff.
func (n *Node) Start(ctx context.Context, name string, args ...string) (*Proc, error) {
	label := n.Name + "/" + name
	if name == n.lab.Binary && len(args) > 0 {
		label = n.Name + "/floatip " + args[0]
		if args[0] == "lab" && len(args) > 1 {
			label += " " + args[1]
		}
	}
	p, err := startProc(ctx, label, n.NS, append([]string{name}, args...))
	if err != nil {
		return nil, err
	}
	if err := n.lab.track(p); err != nil {
		_ = p.Kill()
		return nil, err
	}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p, nil
}

// MAC is the hardware address of the node's eth0 ("02:..."), as a
// floatip peers map names it.
func (n *Node) MAC() (string, error) {
	link, err := n.link()
	if err != nil {
		return "", err
	}
	return link.Attrs().HardwareAddr.String(), nil
}

// FloatipArgs are the arguments StartFloatip passes before its extra ones.
func (n *Node) FloatipArgs() []string {
	args := []string{"run", "--interface", "eth0"}
	for _, v := range n.lab.VIPs {
		args = append(args, "--vip", v.String())
	}
	return append(args, "--node-name", n.Name, "--log-format", "json", "--socket", n.Socket())
}

// Socket is the control socket of the node's daemon. Namespaces share the
// file system, so each node gets its own path.
func (n *Node) Socket() string {
	return filepath.Join(SocketDir, n.NS+".sock")
}

// SocketDir holds the control sockets of the lab's daemons.
const SocketDir = "/run/floatip"

// StartFloatip runs the daemon on the node with StartDaemon: `floatip run
// --interface eth0 --vip VIP --node-name NAME --log-format json --socket
// SOCKET` followed by extraArgs (for example "--priority", "200",
// "--profile", "fast").
func (n *Node) StartFloatip(ctx context.Context, extraArgs ...string) (*Proc, error) {
	return n.StartDaemon(ctx, n.lab.Binary, append(n.FloatipArgs(), extraArgs...)...)
}

// StartDaemon is Start for the node's failover daemon (floatip, keepalived):
// the faults stop, crash and freeze act on it, and healing them (or a power
// off) runs the same command again.
func (n *Node) StartDaemon(ctx context.Context, name string, args ...string) (*Proc, error) {
	p, err := n.Start(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.daemon = p
	n.daemonArgv = append([]string{name}, args...)
	n.mu.Unlock()
	return p, nil
}

// Daemon is the process the last StartDaemon started (nil when none), which
// may have exited.
func (n *Node) Daemon() *Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.daemon
}

// Service is the process the last StartService started (nil when none).
func (n *Node) Service() *Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.service
}

// StartService runs `floatip lab serve --name NAME --listen :8080` on the
// node, an HTTP server answering the node's name, and waits (up to 5 s) until
// it listens.
func (n *Node) StartService(ctx context.Context) (*Proc, error) {
	p, err := n.Start(ctx, n.lab.Binary, "lab", "serve", "--name", n.Name, "--listen", ":"+strconv.Itoa(ServicePort))
	if err != nil {
		return nil, err
	}
	if _, err := p.WaitMsg(ctx, 5*time.Second, "listening", nil); err != nil {
		_ = p.Kill()
		return nil, err
	}
	n.mu.Lock()
	n.service = p
	n.mu.Unlock()
	return p, nil
}

// Procs returns the processes started on this node.
func (n *Node) Procs() []*Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Proc(nil), n.procs...)
}

func (n *Node) link() (netlink.Link, error) {
	if n.h == nil {
		return nil, errors.New("lab: the lab is not up")
	}
	l, err := n.h.LinkByName("eth0")
	if err != nil {
		return nil, fmt.Errorf("lab: %s eth0: %w", n.Name, err)
	}
	return l, nil
}

// Addrs returns the IPv4 addresses on the node's eth0.
func (n *Node) Addrs() ([]netip.Prefix, error) { return n.addrs(netlink.FAMILY_V4) }

// Addrs6 returns the IPv6 addresses on the node's eth0, link-local ones
// included.
func (n *Node) Addrs6() ([]netip.Prefix, error) { return n.addrs(netlink.FAMILY_V6) }

func (n *Node) addrs(family int) ([]netip.Prefix, error) {
	link, err := n.link()
	if err != nil {
		return nil, err
	}
	var addrs []netlink.Addr
	for try := 0; ; try++ {
		addrs, err = n.h.AddrList(link, family)
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lab: %s addresses: %w", n.Name, err)
		}
		break
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// HasVIP reports whether the lab's first VIP (Lab.VIPs[0]) is configured
// on the node's eth0.
func (n *Node) HasVIP() (bool, error) {
	vip := n.lab.VIP
	if len(n.lab.VIPs) > 0 {
		vip = n.lab.VIPs[0]
	}
	return n.HasAddr(vip)
}

// HasAddr reports whether ip (IPv4 or IPv6) is configured on the node's
// eth0.
func (n *Node) HasAddr(ip netip.Addr) (bool, error) {
	var addrs []netip.Prefix
	var err error
	if ip.Is4() {
		addrs, err = n.Addrs()
	} else {
		addrs, err = n.Addrs6()
	}
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if a.Addr() == ip {
			return true, nil
		}
	}
	return false, nil
}

// AddVIP configures the VIP on eth0 by hand (/32), as a daemon would; for
// tests of the lab itself.
func (n *Node) AddVIP() error {
	return n.lab.runIP("-n", n.NS, "addr", "add", n.lab.VIP.String()+"/32", "dev", "eth0")
}

// DelVIP removes the VIP from eth0 if it is there.
func (n *Node) DelVIP() error {
	addrs, err := n.Addrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Addr() == n.lab.VIP {
			if err := n.lab.runIP("-n", n.NS, "addr", "del", a.String(), "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) runIP(args ...string) error {
	return ipCmd(context.Background(), args...)
}

func (n *Node) setCable(up bool) error {
	if n.lab.br == nil {
		return errors.New("lab: the lab is not up")
	}
	link, err := n.lab.br.LinkByName(n.Name)
	if err != nil {
		return fmt.Errorf("lab: bridge port %s: %w", n.Name, err)
	}
	if up {
		err = n.lab.br.LinkSetUp(link)
	} else {
		err = n.lab.br.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("lab: set bridge port %s up=%v: %w", n.Name, up, err)
	}
	return nil
}

// Unplug pulls the node's cable: its bridge-side veth goes down and its eth0
// loses carrier. Its processes keep running. Plug undoes it.
func (n *Node) Unplug() error { return n.setCable(false) }

// Plug puts the node's cable back.
func (n *Node) Plug() error { return n.setCable(true) }

func (n *Node) nftInBridge(script string) error {
	cmd := exec.Command("ip", "netns", "exec", n.lab.Prefix+"-br", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: nft in %s-br: %v: %s", n.lab.Prefix, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// PowerOff simulates pulling the plug. Every process in the node's namespace
// (those the lab started and any other) is first frozen with SIGSTOP, so none
// can react to what follows (a real machine that loses power does not see its
// link go down); then the link is cut (its bridge-side veth goes down); then
// the processes are SIGKILLed and waited for. The link is cut within a few
// milliseconds of the call. The node's namespace and addresses stay, but
// Holders ignores a powered-off node. PowerOn brings it back.
func (n *Node) PowerOff() error {
	n.mu.Lock()
	n.off = true
	procs := append([]*Proc(nil), n.procs...)
	n.mu.Unlock()
	var errs []error
	for _, p := range procs {
		_ = p.Signal(syscall.SIGSTOP)
	}
	// Everything in the namespace, children of lab processes included.
	pids, err := pidsInNamespace(n.NS)
	errs = append(errs, err)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	waitStopped(pids, time.Now().Add(200*time.Millisecond))
	errs = append(errs, n.setCable(false))
	for _, p := range procs {
		_ = p.Signal(syscall.SIGKILL)
	}
	errs = append(errs, killAndWait(pids, time.Now().Add(3*time.Second)))
	for _, p := range procs {
		errs = append(errs, p.Kill())
	}
	errs = append(errs, killNamespaceProcs(n.NS))
	return errors.Join(errs...)
}

// waitStopped waits until each pid is stopped or gone, or until deadline.
func waitStopped(pids []int, deadline time.Time) {
	for _, pid := range pids {
		for processState(pid) == 'R' || processState(pid) == 'S' || processState(pid) == 'D' {
			if time.Now().After(deadline) {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// PowerOn simulates the node booting again: every address on eth0 other
// than the node's own (and its IPv6 link-local) is removed (a rebooted
// machine has lost its VIPs), and the link comes back. No process is
// started.
func (n *Node) PowerOn() error {
	addrs, err := n.Addrs()
	if err != nil {
		return err
	}
	if n.IP6.IsValid() {
		// The IPv6 VIPs too (the link-local stays: the kernel's own).
		a6, err := n.Addrs6()
		if err != nil {
			return err
		}
		for _, a := range a6 {
			if a.Addr() != n.IP6 && !a.Addr().IsLinkLocalUnicast() {
				addrs = append(addrs, a)
			}
		}
	}
	for _, a := range addrs {
		if a.Addr() != n.IP && a.Addr() != n.IP6 {
			if err := n.lab.runIP("-n", n.NS, "addr", "del", a.String(), "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	if err := n.setCable(true); err != nil {
		return err
	}
	if err := n.waitCarrier(3 * time.Second); err != nil {
		return err
	}
	n.mu.Lock()
	n.off = false
	n.mu.Unlock()
	return nil
}

// waitCarrier waits until the node's eth0 is operationally up: the kernel
// reports a carrier change up to a second late, and drops traffic until then.
func (n *Node) waitCarrier(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		link, err := n.link()
		if err != nil {
			return err
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s eth0 still %v %v after it came back", n.Name, link.Attrs().OperState, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PoweredOff reports whether PowerOff was called (and PowerOn not since).
func (n *Node) PoweredOff() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.off
}

func (n *Node) String() string {
	return fmt.Sprintf("%s (%s, %s)", n.Name, n.NS, n.IP)
}

// ServiceURL is a node's own HTTP service as a health check inside the node
// sees it.
var ServiceURL = fmt.Sprintf("http://127.0.0.1:%d/", ServicePort)

// WriteServiceChecks writes a floatip configuration file holding only a
// health check of the node's own service (every 100 ms, unhealthy after 2
// failures), for `floatip run --config FILE` on every node. The caller
// removes the file.
func WriteServiceChecks() (string, error) {
	f, err := os.CreateTemp("", "floatip-lab-checks-*.yaml")
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "checks:\n  - name: http\n    http: {url: %q}\n    interval: 100ms\n    timeout: 100ms\n    fall: 2\n    rise: 2\n", ServiceURL)
	err = errors.Join(err, f.Close(), os.Chmod(f.Name(), 0o644))
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// SetLearning turns MAC learning on the node's bridge port on or off. An
// attacker's port with learning off can send frames with other nodes' MACs
// as source without the bridge moving those MACs to it, so the tests see
// what the daemons do with forged frames, not a switch's confusion (a
// switch with port security behaves the same way).
func (n *Node) SetLearning(on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	return n.lab.runIP("-n", n.lab.brNS, "link", "set", "dev", n.Name, "type", "bridge_slave", "learning", v)
}
