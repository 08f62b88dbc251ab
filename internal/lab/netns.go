package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// ipCmd runs `ip args...` and returns an error carrying its output.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ip %s: %w", strings.Join(args, " "), ctx.Err())
		}
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("ip %s: %s", strings.Join(args, " "), msg)
	}
	return nil
}

// listNamespaces returns the names of the named network namespaces (`ip
// netns list`).
func listNamespaces() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("`ip netns list` failed (network namespaces unsupported here?): %s", strings.TrimSpace(string(out)))
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// labNamespaces returns the existing namespaces that belong to a lab with
// this prefix: prefix-br, prefix-c and prefix-n<number>.
func labNamespaces(prefix string) ([]string, error) {
	all, err := listNamespaces()
	if err != nil {
		return nil, err
	}
	var mine []string
	for _, n := range all {
		if isLabNamespace(prefix, n) {
			mine = append(mine, n)
		}
	}
	return mine, nil
}

func isLabNamespace(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return false
	}
	if rest == "br" || rest == "c" {
		return true
	}
	num, ok := strings.CutPrefix(rest, "n")
	if !ok || num == "" {
		return false
	}
	_, err := strconv.ParseUint(num, 10, 16)
	return err == nil
}

// netnsPath is where `ip netns` keeps the namespace's bind mount.
func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// ownNetns is this process's network namespace, taken at start-up while
// every thread is still in it.
var ownNetns, _ = os.Stat("/proc/self/ns/net")

// pidsInNamespace returns the live processes whose network namespace is the
// named one. It refuses to answer for a file that is the host's own
// namespace, so a mistake can never make the lab kill host processes.
func pidsInNamespace(name string) ([]int, error) {
	target, err := os.Stat(netnsPath(name))
	if err != nil {
		return nil, err
	}
	if host, err := os.Stat("/proc/1/ns/net"); err == nil && os.SameFile(host, target) {
		return nil, fmt.Errorf("lab: %s is the host's network namespace; refusing to touch its processes", name)
	}
	if ownNetns != nil && os.SameFile(ownNetns, target) {
		return nil, fmt.Errorf("lab: %s is this process's own network namespace; refusing to touch its processes", name)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fi, err := os.Stat(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil {
			continue // gone, a zombie, or a kernel thread
		}
		if os.SameFile(fi, target) && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNamespaceProcs SIGKILLs every process in the named namespace and waits
// (up to 3 s) until each is gone (exited, not merely leaving the namespace).
// It repeats until the namespace is empty, to catch processes forked while
// it was killing.
func killNamespaceProcs(name string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids, err := pidsInNamespace(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if err := killAndWait(pids, deadline); err != nil {
			return fmt.Errorf("%w (in %s)", err, name)
		}
	}
}

// killAndWait SIGKILLs pids and waits until none is alive.
func killAndWait(pids []int, deadline time.Time) error {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		for processAlive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("lab: pid %d survives SIGKILL", pid)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// setSysctls writes net sysctls (paths under /proc/sys/net, "ipv6/conf/all/
// disable_ipv6") inside the named namespace, from a goroutine locked to its
// OS thread that enters the namespace and returns to the original one. If it
// cannot return, the thread stays locked and dies with the goroutine, so no
// other code ever runs in the lab namespace by accident.
func setSysctls(name string, kv map[string]string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		var errs []error
		for k, v := range kv {
			p := filepath.Join("/proc/sys/net", k)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				errs = append(errs, err)
				continue
			}
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(bytes.TrimSpace(got), []byte(v)) {
				errs = append(errs, fmt.Errorf("%s: reads back %q", p, got))
			}
		}
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else: stay locked; the thread ends with this goroutine
		errc <- errors.Join(errs...)
	}()
	return <-errc
}
