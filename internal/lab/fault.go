package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FaultKind names a fault the lab can inject on a node (Node.Inject) and
// undo (Node.Heal). Its text is the name the demo, the benchmark and the
// command line use.
type FaultKind string

// The faults. "The daemon" is the process Node.StartDaemon (or StartFloatip)
// started last on the node, "the service" the one StartService started.
const (
	// FaultPowerOff pulls the plug (Node.PowerOff): link cut, every process
	// in the node killed. Heal boots it (Node.PowerOn) and starts its service
	// and daemon again with their old arguments.
	FaultPowerOff FaultKind = "poweroff"
	// FaultStop sends SIGTERM to the daemon's main process, as `systemctl
	// stop` or `kill PID` would. Heal starts the daemon again.
	FaultStop FaultKind = "stop"
	// FaultCrash sends SIGKILL to the daemon's process group (kill -9; for
	// keepalived its VRRP child too); the service stays up. Heal starts the
	// daemon again.
	FaultCrash FaultKind = "crash"
	// FaultPartition cuts the node off every other lab host while its link
	// stays up: the bridge drops its frames (nftables in the bridge
	// namespace), so its daemon cannot tell. Heal removes the rules.
	FaultPartition FaultKind = "partition"
	// FaultPartitionOut is a one-way partition: the bridge drops the frames
	// the node sends, and still delivers the frames sent to it, so it hears
	// everyone and nobody hears it. Heal removes the rules.
	FaultPartitionOut FaultKind = "partition-out"
	// FaultPartitionIn is the other one-way partition: the bridge drops the
	// frames sent to the node, and still forwards the ones it sends, so
	// everyone hears it and it hears nobody. Heal removes the rules.
	FaultPartitionIn FaultKind = "partition-in"
	// FaultService kills the node's HTTP service; the daemon stays up. Heal
	// starts the service again.
	FaultService FaultKind = "service"
	// FaultFreeze stops the daemon's process group with SIGSTOP (a hung or
	// swapped-out daemon); Heal sends SIGCONT.
	FaultFreeze FaultKind = "freeze"
	// FaultLoss drops Fault.LossPercent % of the frames to and from the node
	// at random on the bridge (nftables `numgen random mod 100 < N drop`).
	// Heal removes the rules.
	FaultLoss FaultKind = "loss"
	// FaultLinkDown takes the node's eth0 down (the daemon sees the carrier
	// go); Heal brings it up again. Inject then Heal is a link flap. Linux
	// deletes an interface's global IPv6 addresses when it goes down
	// (keep_addr_on_down 0, the default): the node's own ones and any IPv6
	// VIP. Heal puts the node's own back, as the network configuration of
	// a real machine does when the link comes up (ifup); the VIP is the
	// daemon's business.
	FaultLinkDown FaultKind = "linkdown"
	// FaultEtcdCut cuts the node off etcd only: its namespace drops what it
	// sends to etcd's client port (Node.BlockEtcdClient), while it still
	// talks to the other nodes and the etcd members to each other. Heal
	// removes the rule. Needs the lab's etcd (Lab.StartEtcd).
	FaultEtcdCut FaultKind = "etcd-cut"
	// FaultQuorumLost kills two members of the lab's etcd, the first two
	// that are not on the node (its own member, if it has one, stays up
	// alone, without quorum). Heal starts them again. Needs a cluster of at
	// least three members (Lab.StartEtcd).
	FaultQuorumLost FaultKind = "quorum-lost"
)

// FaultKinds lists every fault kind.
var FaultKinds = []FaultKind{FaultPowerOff, FaultStop, FaultCrash, FaultPartition, FaultPartitionOut, FaultPartitionIn, FaultService, FaultFreeze, FaultLoss, FaultLinkDown, FaultEtcdCut, FaultQuorumLost}

// FaultKindNames is the names of FaultKinds, comma-separated.
func FaultKindNames() string {
	s := make([]string, len(FaultKinds))
	for i, k := range FaultKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ParseFaultKind returns the kind called s.
func ParseFaultKind(s string) (FaultKind, error) {
	k := FaultKind(s)
	if !slices.Contains(FaultKinds, k) {
		return "", fmt.Errorf("unknown fault %q (want one of %s)", s, FaultKindNames())
	}
	return k, nil
}

// UnmarshalText accepts the kind's name only.
func (k *FaultKind) UnmarshalText(b []byte) error {
	v, err := ParseFaultKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Fault is a fault to inject: its kind and, for FaultLoss, how much.
type Fault struct {
	Kind FaultKind
	// LossPercent is the share of frames FaultLoss drops, 1..100; ignored by
	// the other kinds.
	LossPercent int
}

// ParseFault reads a fault as the command line writes it: a kind name, and
// for loss its percentage after a colon ("loss:20").
func ParseFault(s string) (Fault, error) {
	name, arg, hasArg := strings.Cut(s, ":")
	k, err := ParseFaultKind(name)
	if err != nil {
		return Fault{}, err
	}
	f := Fault{Kind: k}
	switch {
	case k == FaultLoss && !hasArg:
		return Fault{}, fmt.Errorf("fault %q: loss needs a percentage, as in loss:20", s)
	case k == FaultLoss:
		n, err := strconv.Atoi(arg)
		if err != nil {
			return Fault{}, fmt.Errorf("fault %q: %q is not a whole percentage", s, arg)
		}
		f.LossPercent = n
	case hasArg:
		return Fault{}, fmt.Errorf("fault %q: %s takes no argument", s, k)
	}
	return f, f.validate()
}

func (f Fault) validate() error {
	if !slices.Contains(FaultKinds, f.Kind) {
		return fmt.Errorf("lab: unknown fault %q (want one of %s)", f.Kind, FaultKindNames())
	}
	if f.Kind == FaultLoss && (f.LossPercent < 1 || f.LossPercent > 100) {
		return fmt.Errorf("lab: loss of %d%%: want 1 to 100", f.LossPercent)
	}
	return nil
}

// String is the fault as ParseFault reads it: "crash", "loss:20".
func (f Fault) String() string {
	if f.Kind == FaultLoss {
		return fmt.Sprintf("%s:%d", f.Kind, f.LossPercent)
	}
	return string(f.Kind)
}

// Inject puts the fault in force on the node. A node carries at most one
// fault of each kind: injecting a kind already in force is an error, as is a
// fault on a process the node has not started (stop, crash and freeze need
// a daemon, service a service).
func (n *Node) Inject(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	if _, on := n.faults[f.Kind]; on {
		n.mu.Unlock()
		return fmt.Errorf("lab: %s already has a %s fault; heal it first", n.Name, f.Kind)
	}
	daemon, service := n.daemon, n.service
	n.mu.Unlock()
	var err error
	switch f.Kind {
	case FaultPowerOff:
		err = n.PowerOff()
	case FaultStop:
		if err = needProc(n, "daemon", daemon); err == nil {
			// The main process only: a daemon with children (keepalived's
			// VRRP child) stops them itself.
			err = daemon.SignalMain(syscall.SIGTERM)
		}
	case FaultCrash:
		if err = needProc(n, "daemon", daemon); err == nil {
			err = daemon.Signal(syscall.SIGKILL)
		}
	case FaultFreeze:
		if err = needProc(n, "daemon", daemon); err == nil {
			err = daemon.Signal(syscall.SIGSTOP)
		}
	case FaultService:
		if err = needProc(n, "service", service); err == nil {
			err = service.Kill()
		}
	case FaultPartition:
		err = n.nftInBridge(n.dropRules("partition", ""))
	case FaultPartitionOut:
		err = n.nftInBridge(n.dropRulesDir("partition_out", "", true, false))
	case FaultPartitionIn:
		err = n.nftInBridge(n.dropRulesDir("partition_in", "", false, true))
	case FaultLoss:
		err = n.nftInBridge(n.dropRules("loss", fmt.Sprintf("numgen random mod 100 < %d ", f.LossPercent)))
	case FaultLinkDown:
		err = n.setLink(false)
	case FaultEtcdCut:
		if n.lab.Etcd() == nil {
			err = errors.New("the lab runs no etcd")
		} else {
			err = n.BlockEtcdClient()
		}
	case FaultQuorumLost:
		err = n.loseQuorum()
	}
	if err != nil {
		return fmt.Errorf("lab: inject %s on %s: %w", f, n.Name, err)
	}
	n.mu.Lock()
	n.faults[f.Kind] = f
	n.mu.Unlock()
	return nil
}

func needProc(n *Node, role string, p *Proc) error {
	if p == nil {
		return fmt.Errorf("no %s was started on %s", role, n.Name)
	}
	return nil
}

// Heal undoes the node's fault of that kind (see the kinds for what each
// heal does). Processes it starts again run until ctx ends, like those of
// Start. Healing a kind that is not in force is an error.
func (n *Node) Heal(ctx context.Context, kind FaultKind) error {
	n.mu.Lock()
	f, on := n.faults[kind]
	daemon, service := n.daemon, n.service
	n.mu.Unlock()
	if !on {
		return fmt.Errorf("lab: %s has no %s fault to heal", n.Name, kind)
	}
	var err error
	switch kind {
	case FaultPowerOff:
		err = n.PowerOn()
		// The node's etcd member was killed with everything else: boot it.
		if c := n.lab.Etcd(); err == nil && c != nil {
			if m := c.Member(n.Name); m != nil && !m.Running() {
				err = m.Start()
			}
		}
		if err == nil && service != nil {
			_, err = n.StartService(ctx)
		}
		if err == nil && daemon != nil {
			err = n.restartDaemon(ctx)
		}
	case FaultStop, FaultCrash:
		// A stopped daemon may still be shutting down: let it finish.
		select {
		case <-daemon.Done():
		case <-time.After(5 * time.Second):
		}
		if err = daemon.Kill(); err == nil {
			err = n.restartDaemon(ctx)
		}
	case FaultFreeze:
		err = daemon.Signal(syscall.SIGCONT)
	case FaultService:
		_, err = n.StartService(ctx)
	case FaultPartition, FaultLoss, FaultPartitionOut, FaultPartitionIn:
		err = n.nftInBridge("delete table bridge " + n.faultTable(strings.ReplaceAll(string(kind), "-", "_")) + "\n")
	case FaultLinkDown:
		if err = n.setLink(true); err == nil {
			err = n.restoreIP6()
		}
		if err == nil {
			err = n.waitCarrier(3 * time.Second)
		}
	case FaultEtcdCut:
		err = n.UnblockEtcdClient()
	case FaultQuorumLost:
		n.mu.Lock()
		stopped := n.quorumStopped
		n.quorumStopped = nil
		n.mu.Unlock()
		var errs []error
		for _, m := range stopped {
			errs = append(errs, m.Start())
		}
		err = errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("lab: heal %s on %s: %w", f, n.Name, err)
	}
	n.mu.Lock()
	delete(n.faults, kind)
	n.mu.Unlock()
	return nil
}

// Faults returns the faults Inject put in force on the node and Heal has not
// undone, in the order of FaultKinds.
func (n *Node) Faults() []Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Fault
	for _, k := range FaultKinds {
		if f, on := n.faults[k]; on {
			out = append(out, f)
		}
	}
	return out
}

func (n *Node) faultTable(what string) string { return "lab_" + what + "_" + n.Name }

// dropRules is an nftables script for the bridge namespace that drops the
// frames from and to the node's port that match cond ("" for all).
func (n *Node) dropRules(what, cond string) string {
	return n.dropRulesDir(what, cond, true, true)
}

// dropRulesDir is dropRules for one direction or both: from drops the
// frames the node sends (they enter the bridge on its port), to the frames
// sent to it (they leave the bridge on its port, flooded ones included).
func (n *Node) dropRulesDir(what, cond string, from, to bool) string {
	table := n.faultTable(what)
	s := "add table bridge " + table + "\n" +
		"add chain bridge " + table + " forward { type filter hook forward priority 0; policy accept; }\n"
	if from {
		s += "add rule bridge " + table + " forward iifname \"" + n.Name + "\" " + cond + "drop\n"
	}
	if to {
		s += "add rule bridge " + table + " forward oifname \"" + n.Name + "\" " + cond + "drop\n"
	}
	return s
}

// restoreIP6 adds the node's own IPv6 address again if the kernel deleted
// it (see FaultLinkDown).
func (n *Node) restoreIP6() error {
	if !n.IP6.IsValid() {
		return nil
	}
	if ok, err := n.HasAddr(n.IP6); err != nil || ok {
		return err
	}
	return n.lab.runIP("-n", n.NS, "addr", "add", netip.PrefixFrom(n.IP6, Subnet6.Bits()).String(), "dev", "eth0", "nodad")
}

// setLink sets the node's own eth0 up or down.
func (n *Node) setLink(up bool) error {
	link, err := n.link()
	if err != nil {
		return err
	}
	if up {
		err = n.h.LinkSetUp(link)
	} else {
		err = n.h.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("set %s eth0 up=%v: %w", n.Name, up, err)
	}
	return nil
}

func (n *Node) restartDaemon(ctx context.Context) error {
	n.mu.Lock()
	argv := n.daemonArgv
	n.mu.Unlock()
	if len(argv) == 0 {
		return errors.New("no daemon was started")
	}
	_, err := n.StartDaemon(ctx, argv[0], argv[1:]...)
	return err
}

// loseQuorum kills the first two etcd members not on the node and keeps
// them for Heal.
func (n *Node) loseQuorum() error {
	c := n.lab.Etcd()
	if c == nil {
		return errors.New("the lab runs no etcd")
	}
	if len(c.members) < 3 {
		return fmt.Errorf("the lab's etcd has %d members; losing quorum by stopping two needs three", len(c.members))
	}
	var stop []*EtcdMember
	for _, m := range c.members {
		if m.Name != n.Name && len(stop) < 2 {
			stop = append(stop, m)
		}
	}
	var errs []error
	for _, m := range stop {
		errs = append(errs, m.Kill())
	}
	n.mu.Lock()
	n.quorumStopped = stop
	n.mu.Unlock()
	return errors.Join(errs...)
}
