package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// KeepalivedConfig is the configuration of keepalived on one node: one VRRPv3
// instance on eth0, everyone starting as BACKUP (preemption on, the default),
// the VIPs as host routes (/32, /128).
//
// The first VIP's family is the instance's: an IPv6 one makes it a VRRPv3
// instance over IPv6 (adverts from the link-local to ff02::12; keepalived
// 2.2.7 needs no native_ipv6 for that, it is deprecated). keepalived wants
// every address of virtual_ipaddress in one family, so the others (the
// IPv6 VIP of a dual-stack group) go under virtual_ipaddress_excluded: added
// and removed with the instance, left out of the adverts, as keepalived's
// manual suggests for a mixture.
//
// check, when not empty, is a command that tests the node's service: it
// becomes a vrrp_script at keepalived's shortest interval (1 s, whole
// seconds only) with fall 2 and rise 2, tracked by the instance.
func KeepalivedConfig(node string, priority int, advert time.Duration, vips []netip.Addr, check string) string {
	script, track := "", ""
	if check != "" {
		script = fmt.Sprintf(`
vrrp_script chk_service {
    script "%s"
    interval 1
    timeout 1
    fall 2
    rise 2
}
`, check)
		track = `
    track_script {
        chk_service
    }`
	}
	return fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_version 3
}
%s
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    virtual_ipaddress {
%s    }%s
}
`, node, script, priority, seconds(advert), keepalivedAddrs(vips), track)
}

// keepalivedAddrs renders the VIPs: those of the first one's family in
// virtual_ipaddress (the caller's block), the rest in an excluded block.
func keepalivedAddrs(vips []netip.Addr) string {
	var in, out strings.Builder
	for _, v := range vips {
		line := fmt.Sprintf("        %s dev eth0\n", netip.PrefixFrom(v, v.BitLen()))
		if v.Is4() == vips[0].Is4() {
			in.WriteString(line)
		} else {
			out.WriteString(line)
		}
	}
	if out.Len() > 0 {
		in.WriteString("    }\n    virtual_ipaddress_excluded {\n")
		in.WriteString(out.String())
	}
	return in.String()
}

// seconds renders d as keepalived's advert_int: "1", "0.1".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// startKeepalived writes the node's configuration into dir/NODE and runs
// keepalived in the node's namespace, in the foreground, VRRP only, logging
// to the console, with pid files of its own (a stale shared pid file makes
// keepalived refuse to start).
func startKeepalived(ctx context.Context, bin, dir string, nd *lab.Node, advert time.Duration, vips []netip.Addr, check string) (*lab.Proc, error) {
	nodeDir := filepath.Join(dir, nd.Name)
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(nodeDir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(KeepalivedConfig(nd.Name, Priority(nd.Index), advert, vips, check)), 0o644); err != nil {
		return nil, err
	}
	return nd.StartDaemon(ctx, bin, KeepalivedArgs(conf, nodeDir)...)
}

// KeepalivedArgs are keepalived's arguments for a configuration file and a
// directory of its own for the pid files.
func KeepalivedArgs(conf, pidDir string) []string {
	return []string{
		"--dont-fork", "--log-console", "--vrrp",
		"-f", conf,
		"-p", filepath.Join(pidDir, "keepalived.pid"),
		"-r", filepath.Join(pidDir, "vrrp.pid"),
		"-c", filepath.Join(pidDir, "checkers.pid"),
	}
}

// procStat returns a process's command name and process group from
// /proc/PID/stat; ok is false when it is gone or a zombie.
func procStat(pid int) (comm string, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	comm = s[open+1 : end]
	// After ") ": state ppid pgrp ...
	f := strings.Fields(s[end+1:])
	if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
		return "", 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return comm, pgrp, true
}

func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupPids returns the live processes of process group pgid.
func groupPids(pgid int) []int {
	var out []int
	for _, pid := range allPids() {
		if _, g, ok := procStat(pid); ok && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// keepalivedPids returns the live processes called keepalived.
func keepalivedPids() map[int]bool {
	out := map[int]bool{}
	for _, pid := range allPids() {
		if isKeepalived(pid) {
			out[pid] = true
		}
	}
	return out
}

func isKeepalived(pid int) bool {
	comm, _, ok := procStat(pid)
	return ok && comm == "keepalived"
}

// killPid SIGKILLs pid and waits up to 2 s for it to be gone.
func killPid(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, _, ok := procStat(pid); !ok {
			return
		}
	}
}

// waitGone waits up to d for pid to be gone (or to be something else than
// keepalived) and reports whether it is.
func waitGone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		if !isKeepalived(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
