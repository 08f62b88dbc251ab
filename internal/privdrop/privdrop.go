//go:build linux

// Package privdrop starts the commands floatip runs for others (notify
// hooks, the fence command, exec health checks) without floatip's network
// capabilities.
//
// floatip needs CAP_NET_ADMIN (to add and remove the VIPs) and CAP_NET_RAW
// (for the ARP socket). Under the shipped systemd unit it runs as a
// non-root user that holds them as ambient capabilities, and ambient
// capabilities pass to every child and grandchild across execve: a hook
// could then take any address, sniff the LAN or send forged frames. Run as
// plain root, a child gets every capability.
//
// [Start] starts an [exec.Cmd] with these two capabilities removed from the
// child's ambient, inheritable, permitted and effective sets and, when
// floatip may change it (it holds CAP_SETPCAP, i.e. runs as root), from its
// bounding set, so that nothing the child executes later gets them back
// either. What the child keeps:
//   - floatip run as a non-root user (the systemd unit): nothing; the child
//     is an ordinary process of that user. The bounding set cannot be
//     changed without CAP_SETPCAP, so a program with file capabilities
//     (ping's cap_net_raw) works as it would for any user; the unit's
//     NoNewPrivileges=yes stops even that.
//   - floatip run as root: the child runs as root, by the operator's
//     choice, with every capability except these two. That is not a
//     sandbox: root with CAP_SYS_ADMIN, CAP_SYS_MODULE or CAP_SYS_PTRACE
//     can regain anything. It only keeps a hook from holding the network
//     capabilities by accident. Use the systemd unit to confine floatip
//     and its children.
//
// # How
//
// Capabilities are per thread in Linux, and a child created with fork
// inherits those of the thread that forked it. Start therefore forks from
// a disposable OS thread: it changes that thread's capabilities, starts the
// command there, and the thread is then ended by the Go runtime (a
// goroutine that exits while locked to its thread takes the thread with
// it), so no other goroutine ever runs with the reduced set and floatip
// keeps its own. The Go runtime creates new threads from a clean template
// thread when the creating thread is locked, so the change does not leak
// into new threads either. This is what the libcap Go package
// (kernel.org/pub/linux/libs/security/libcap/cap, maintained with libcap
// by its author) calls a launcher; we use its FuncLauncher so that the
// command is still an ordinary exec.Cmd (pipes, process group, context,
// WaitDelay) rather than a bare ForkExec. os/exec alone cannot do it:
// SysProcAttr.AmbientCaps can only add ambient capabilities, and there is
// no hook between fork and exec.
package privdrop

import (
	"fmt"
	"os/exec"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Dropped are the capabilities a child never gets.
var Dropped = []cap.Value{cap.NET_ADMIN, cap.NET_RAW}

// Start starts cmd, as cmd.Start does, with the [Dropped] capabilities
// removed from the child (see the package doc). If they cannot be removed
// the command is not started and the error says why.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr != nil && len(cmd.SysProcAttr.AmbientCaps) > 0 {
		return fmt.Errorf("start %s: ambient capabilities requested for a child", cmd.Path)
	}
	var startErr error
	l := cap.FuncLauncher(func(any) error {
		if err := dropOnThisThread(); err != nil {
			return fmt.Errorf("start %s: drop capabilities: %w", cmd.Path, err)
		}
		startErr = cmd.Start()
		return nil
	})
	if _, err := l.Launch(nil); err != nil {
		return err
	}
	return startErr
}

// Run is Start followed by cmd.Wait.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// dropOnThisThread removes Dropped from the calling thread, which is the
// launcher's disposable one (the cap package then changes only it).
func dropOnThisThread() error {
	iab := cap.IABGetProc()
	canBound := false
	if c := cap.GetProc(); c != nil {
		canBound, _ = c.GetFlag(cap.Effective, cap.SETPCAP)
	}
	for _, v := range Dropped {
		if err := iab.SetVector(cap.Amb, false, v); err != nil {
			return err
		}
		if err := iab.SetVector(cap.Inh, false, v); err != nil {
			return err
		}
		if in, _ := cap.GetBound(v); in && canBound {
			// For the IAB, a raised Bound bit means "not in the
			// bounding set".
			if err := iab.SetVector(cap.Bound, true, v); err != nil {
				return err
			}
		}
	}
	if err := iab.SetProc(); err != nil {
		return fmt.Errorf("inheritable/ambient/bounding: %w", err)
	}
	c := cap.GetProc()
	if err := c.SetFlag(cap.Effective, false, Dropped...); err != nil {
		return err
	}
	if err := c.SetFlag(cap.Permitted, false, Dropped...); err != nil {
		return err
	}
	if err := c.SetProc(); err != nil {
		return fmt.Errorf("permitted/effective: %w", err)
	}
	return nil
}
