package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
)

// Scale target: 1000 VIPs in 10 groups on 3 nodes; after the holder of every
// group is powered off each VIP answers again within 2x the single-VIP
// outage, and an idle daemon uses under 1% of a core and under 30 MB RSS.
const (
	scaleGroups       = 10
	scaleVIPsPerGroup = 100
	scaleMaxCPU       = 1.0 // percent of one core, idle
	scaleBusyCPU      = 3.0 // percent of one core: a busy loop, not noise
	scaleMaxRSSMB     = 30.0
	scaleIdleWindow   = 10 * time.Second
)

// scaleRange holds the VIPs. The lab's own subnet (198.18.0.0/24) is too
// small for 1000 addresses, but /32 VIPs only need the same L2 segment and a
// route: every namespace gets "198.18.4.0/22 dev eth0" (scope link).
var scaleRange = netip.MustParsePrefix("198.18.4.0/22")

// scaleVIPs returns n consecutive addresses from 198.18.4.1 on, skipping those
// ending in .0 or .255.
func scaleVIPs(n int) []netip.Addr {
	var out []netip.Addr
	for a := scaleRange.Addr().Next(); len(out) < n; a = a.Next() {
		if !scaleRange.Contains(a) {
			panic("scale VIP range exhausted")
		}
		if b := a.As4(); b[3] == 0 || b[3] == 255 {
			continue
		}
		out = append(out, a)
	}
	return out
}

func scaleConfig(prio int, groups [][]netip.Addr) string {
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

// vipSet returns which of vips are configured on the node's eth0.
func vipSet(n *lab.Node, vips map[netip.Addr]bool) (map[netip.Addr]bool, error) {
	addrs, err := n.Addrs()
	if err != nil {
		return nil, err
	}
	have := map[netip.Addr]bool{}
	for _, p := range addrs {
		if vips[p.Addr()] {
			have[p.Addr()] = true
		}
	}
	return have, nil
}

// waitStatusFor is waitStatus with a longer deadline, for a daemon with 1000
// VIPs.
func (c *cluster) waitStatusFor(n *lab.Node, timeout time.Duration, ok func(control.Status) bool, what string) control.Status {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.status(n)
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: waiting for %s: %d groups, states %v, err %v", n.Name, what, len(s.Groups), groupStates(s), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func groupStates(s control.Status) map[string]string {
	m := map[string]string{}
	for _, g := range s.Groups {
		m[g.Name] = g.State.String()
	}
	return m
}

func allGroups(state string) func(control.Status) bool {
	return func(s control.Status) bool {
		if len(s.Groups) != scaleGroups {
			return false
		}
		for _, g := range s.Groups {
			if g.State.String() != state {
				return false
			}
		}
		return true
	}
}

// procUsage is a process's CPU time so far and its resident set size.
type procUsage struct {
	cpu time.Duration
	rss float64 // MB (MiB)
}

var clockTicks = func() int {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100 // USER_HZ is 100 on every Linux architecture we run on
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n <= 0 {
		return 100
	}
	return n
}()

func readUsage(pid int) (procUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, err
	}
	// comm (field 2) may contain spaces; the fields after it start past the
	// last ')'. Field 3 is then index 0, so utime (14) is 11, stime (15) 12.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return procUsage{}, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procUsage{}, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	u := procUsage{cpu: time.Duration(utime+stime) * time.Second / time.Duration(clockTicks)}
	// The scheduler's own count (ns of every thread) is exact where the
	// tick-sampled utime/stime are not; use it when there.
	if tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
		var ns uint64
		ok := true
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
			f := strings.Fields(string(b))
			if err != nil || len(f) == 0 {
				ok = false
				break
			}
			v, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				ok = false
				break
			}
			ns += v
		}
		if ok {
			u.cpu = time.Duration(ns)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procUsage{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return procUsage{}, fmt.Errorf("/proc/%d/status: %q", pid, line)
			}
			u.rss = kb / 1024
		}
	}
	return u, nil
}

func TestManyVIPs(t *testing.T) {
	c := newLab(t, 3)
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)

	vips := scaleVIPs(scaleGroups * scaleVIPsPerGroup)
	groups := make([][]netip.Addr, scaleGroups)
	all := map[netip.Addr]bool{}
	for i := range groups {
		groups[i] = vips[i*scaleVIPsPerGroup : (i+1)*scaleVIPsPerGroup]
	}
	for _, a := range vips {
		all[a] = true
	}

	// The VIPs lie outside the lab's /24: route them onto the segment.
	for _, n := range append(c.Nodes(), c.ClientNode()) {
		p, err := n.Start(c.ctx, "ip", "route", "add", scaleRange.String(), "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("route on %s: %v %v", n.Name, err, p.Lines())
		}
	}

	// n1 first: it must claim all ten groups and configure every VIP.
	started := time.Now()
	c.startWithConfig(n1, scaleConfig(200, groups))
	c.waitStatusFor(n1, 15*time.Second, allGroups("holder"), "all groups holder")
	deadline := time.Now().Add(10 * time.Second)
	for {
		have, err := vipSet(n1, all)
		if err == nil && len(have) == len(vips) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n1 configured %d of %d VIPs (err %v)", len(have), len(vips), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("n1 holds %d groups, %d VIPs configured, %v after start", scaleGroups, len(vips), time.Since(started).Round(time.Millisecond))
	c.startWithConfig(n2, scaleConfig(150, groups))
	c.startWithConfig(n3, scaleConfig(100, groups))
	c.waitStatusFor(n2, 15*time.Second, allGroups("standby"), "all groups standby")
	c.waitStatusFor(n3, 15*time.Second, allGroups("standby"), "all groups standby")

	// Idle: nothing happens but probes, beacons and renewals.
	nodes := []*lab.Node{n1, n2, n3}
	pids := make([]int, len(nodes))
	for i, n := range nodes {
		// The lab runs `ip netns exec NS floatip ...`, which execs floatip,
		// so the process it started is the daemon itself.
		pids[i] = c.daemons[n.Name].Pid()
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pids[i]))
		if err != nil || strings.TrimSpace(string(comm)) != "floatip" {
			t.Fatalf("%s: pid %d is %q (err %v), want the floatip daemon", n.Name, pids[i], strings.TrimSpace(string(comm)), err)
		}
	}
	time.Sleep(2 * time.Second) // let the standbys' start-up and pacing settle
	before := make([]procUsage, len(nodes))
	for i, pid := range pids {
		u, err := readUsage(pid)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = u
	}
	idleFrom := time.Now()
	time.Sleep(scaleIdleWindow)
	window := time.Since(idleFrom)
	for i, n := range nodes {
		after, err := readUsage(pids[i])
		if err != nil {
			t.Fatal(err)
		}
		cpu := 100 * float64(after.cpu-before[i].cpu) / float64(window)
		role := "standby of 10 groups"
		if n == n1 {
			role = fmt.Sprintf("holder of %d VIPs", len(vips))
		}
		t.Logf("%s (%s): idle CPU %.2f%% of a core, RSS %.1f MB (over %v, CLK_TCK %d)", n.Name, role, cpu, after.rss, window.Round(time.Millisecond), clockTicks)
		// The figure is the measurement (target: under scaleMaxCPU); the
		// test fails only far above it, on a busy loop or a runaway timer,
		// not on the noise of a shared 2-core machine.
		if cpu >= scaleBusyCPU {
			t.Errorf("%s: idle CPU %.2f%% of a core: something spins (target under %.0f%%)", n.Name, cpu, scaleMaxCPU)
		} else if cpu >= scaleMaxCPU {
			t.Logf("%s: idle CPU %.2f%% of a core is above the %.0f%% target", n.Name, cpu, scaleMaxCPU)
		}
		if after.rss >= scaleMaxRSSMB {
			t.Errorf("%s: RSS %.1f MB, target under %.0f MB", n.Name, after.rss, scaleMaxRSSMB)
		}
	}

	// Clients: the first and last VIP of every group, every 25 ms each
	// (800 requests/s in all), plus the first VIP of g0 every 5 ms as the
	// single-VIP reference.
	port := uint16(lab.ServicePort)
	ref, err := c.StartClient(c.ctx, lab.ClientOptions{Target: netip.AddrPortFrom(groups[0][0], port), Every: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type sampled struct {
		name   string
		client *lab.Client
	}
	var clients []sampled
	for i, g := range groups {
		for _, a := range []netip.Addr{g[0], g[len(g)-1]} {
			cl, err := c.StartClient(c.ctx, lab.ClientOptions{Target: netip.AddrPortFrom(a, port), Every: 25 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, sampled{fmt.Sprintf("g%d %v", i, a), cl})
		}
	}
	for _, cl := range append(clients, sampled{"reference", ref}) {
		if _, err := cl.client.WaitSample(c.ctx, 5*time.Second, func(s lab.Sample) bool { return s.OK && s.Node == "n1" }); err != nil {
			t.Fatalf("client %s never reached n1: %v", cl.name, err)
		}
	}

	fault := time.Now()
	if err := n1.PowerOff(); err != nil {
		t.Fatal(err)
	}
	// Follow the VIPs until n2 has all of them and n3 none, noting whether
	// n3 (priority 100) claimed any while n2 (150) was alive.
	deadline = fault.Add(10 * time.Second)
	var allOnN2, settled time.Duration
	var maxOnN3, maxBoth int
	var firstOnN3, lastOnN3 time.Duration
	for {
		onN2, err2 := vipSet(n2, all)
		onN3, err3 := vipSet(n3, all)
		now := time.Since(fault)
		if err2 == nil && err3 == nil {
			if len(onN3) > 0 {
				if maxOnN3 == 0 {
					firstOnN3 = now
				}
				lastOnN3 = now
			}
			maxOnN3 = max(maxOnN3, len(onN3))
			both := 0
			for a := range onN3 {
				if onN2[a] {
					both++
				}
			}
			maxBoth = max(maxBoth, both)
			if allOnN2 == 0 && len(onN2) == len(vips) {
				allOnN2 = now
			}
			if len(onN2) == len(vips) && len(onN3) == 0 {
				settled = now
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after powering off n1: n2 has %d and n3 has %d of %d VIPs, want all on n2 and none on n3 (errors %v, %v)", len(onN2), len(onN3), len(vips), err2, err3)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, cl := range append(clients, sampled{"reference", ref}) {
		// A success from n2 sent once the VIPs settled: the client's last
		// failure (if any) lies before it, so Measure sees the whole outage.
		if _, err := cl.client.WaitSample(c.ctx, 10*time.Second, func(s lab.Sample) bool {
			return s.OK && s.Node == "n2" && s.At.After(fault.Add(settled))
		}); err != nil {
			t.Errorf("client %s never reached n2 after the VIPs settled: %v", cl.name, err)
		}
	}
	n3Groups := 0
	for _, l := range c.daemons["n3"].Lines() {
		if l.Msg() == "state changed" && l.Str("to") == "holder" {
			n3Groups++
		}
	}
	if maxOnN3 > 0 || n3Groups > 0 {
		t.Errorf("n3 (priority 100) claimed while n2 (priority 150) was alive: became holder %d times, had up to %d VIPs (up to %d also on n2) from %v to %v after the power-off",
			n3Groups, maxOnN3, maxBoth, firstOnN3.Round(time.Millisecond), lastOnN3.Round(time.Millisecond))
	}

	refResult := lab.Measure(ref.Stop(), fault)
	var worst lab.Result
	var worstName string
	for _, cl := range clients {
		r := lab.Measure(cl.client.Stop(), fault)
		if !r.Recovered || r.After != "n2" {
			t.Errorf("client %s did not recover on n2: %+v", cl.name, r)
		}
		if worstName == "" || r.Outage > worst.Outage {
			worst, worstName = r, cl.name
		}
	}
	if !refResult.Recovered || refResult.After != "n2" {
		t.Errorf("reference client did not recover on n2: %+v", refResult)
	}
	t.Logf("single-VIP reference (g0 %v, every 5ms): outage %v, %d failed", groups[0][0], refResult.Outage.Round(time.Millisecond), refResult.Failed)
	t.Logf("sampled VIPs (%d, every 25ms): max outage %v (%s), %d failed", len(clients), worst.Outage.Round(time.Millisecond), worstName, worst.Failed)
	t.Logf("all %d VIPs configured on n2 %v after the power-off (and none on n3 after %v)", len(vips), allOnN2.Round(time.Millisecond), settled.Round(time.Millisecond))
	if refResult.Outage > 0 {
		ratio := float64(worst.Outage) / float64(refResult.Outage)
		t.Logf("max/reference outage ratio: %.2f (target at most 2)", ratio)
		if ratio > 2 {
			t.Errorf("max outage over the sampled VIPs %v is %.2fx the single-VIP reference %v, target at most 2x", worst.Outage, ratio, refResult.Outage)
		}
	} else {
		t.Errorf("the reference client saw no outage; cannot compare (max sampled outage %v)", worst.Outage)
	}
}
