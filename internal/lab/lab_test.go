package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/testutil"
)

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floatip-lab-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// floatipBinary builds the floatip command once per test run.
func floatipBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = Build(binDir) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var prefixSeq int

// testPrefix is a prefix unique to this test process and call: "lt<pid><n>".
func testPrefix() string {
	prefixSeq++
	return fmt.Sprintf("lt%d%c", os.Getpid()%100000, 'a'+rune(prefixSeq%26))
}

// upLab builds a lab for a test and tears it down at the end, checking that
// nothing is left behind.
func upLab(t *testing.T, nodes int) *Lab {
	t.Helper()
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Up(ctx, Options{Prefix: testPrefix(), Nodes: nodes, Binary: floatipBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		procs := l.Procs()
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, l.Prefix, procs)
	})
	return l
}

func assertGone(t *testing.T, prefix string, procs []*Proc) {
	t.Helper()
	left, err := labNamespaces(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("namespaces left after Down: %v", left)
	}
	for _, p := range procs {
		if !p.Exited() || processAlive(p.Pid()) {
			t.Errorf("%s (pid %d) still running after Down", p.Name, p.Pid())
		}
	}
}

// fetch asks target once per 5 ms, count times, from the client namespace.
func fetch(t *testing.T, l *Lab, target netip.Addr, count int) []Sample {
	t.Helper()
	s := fetchAny(t, l, target, count)
	if len(s) != count {
		t.Fatalf("client reported %d samples, want %d", len(s), count)
	}
	return s
}

func allFrom(s []Sample, node string) bool {
	for _, x := range s {
		if !x.OK || x.Node != node {
			return false
		}
	}
	return true
}

func TestLab(t *testing.T) {
	l := upLab(t, 2)
	ctx := context.Background()
	n1, n2 := l.Node(1), l.Node(2)
	if n1.NS != l.Prefix+"-n1" || n1.IP != netip.MustParseAddr("198.18.0.11") || n2.IP != netip.MustParseAddr("198.18.0.12") {
		t.Fatalf("nodes: %v, %v", n1, n2)
	}
	for _, n := range l.Nodes() {
		if _, err := n.StartService(ctx); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("each node answers its name", func(t *testing.T) {
		for _, n := range l.Nodes() {
			if s := fetch(t, l, n.IP, 5); !allFrom(s, n.Name) {
				t.Errorf("from %v: %+v", n.IP, s)
			}
		}
	})

	t.Run("the VIP answers from its holder", func(t *testing.T) {
		if h, err := l.Holders(); err != nil || len(h) != 0 {
			t.Fatalf("Holders before = %v, %v; want none", h, err)
		}
		if err := n2.AddVIP(); err != nil {
			t.Fatal(err)
		}
		defer n2.DelVIP()
		if h, err := l.WaitHolders(ctx, HeldBy("n2"), time.Second); err != nil {
			t.Fatalf("holders %v: %v", h, err)
		}
		if s := fetch(t, l, l.VIP, 5); !allFrom(s, "n2") {
			t.Errorf("from the VIP: %+v", s)
		}
	})

	t.Run("partition and heal", func(t *testing.T) {
		c, err := l.StartClient(ctx, ClientOptions{Target: netip.AddrPortFrom(n1.IP, ServicePort)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		if _, err := c.WaitSample(ctx, 5*time.Second, func(s Sample) bool { return s.OK }); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		if err := n1.Inject(Fault{Kind: FaultPartition}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitSample(ctx, 5*time.Second, func(s Sample) bool { return !s.OK && s.At.After(cut) }); err != nil {
			t.Fatalf("no failure while partitioned: %v", err)
		}
		healAt := time.Now()
		if err := n1.Heal(ctx, FaultPartition); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitSample(ctx, 5*time.Second, func(s Sample) bool { return s.OK && s.At.After(healAt) }); err != nil {
			t.Fatalf("no answer after heal: %v", err)
		}
		samples := c.Stop()
		r := Measure(samples, cut)
		if r.Failed == 0 || !r.Recovered || r.Before != "n1" || r.After != "n1" {
			t.Errorf("Measure = %+v", r)
		}
		t.Logf("partition of %v: %d failed", r.Outage, r.Failed)
	})

	t.Run("power off kills everything in the node", func(t *testing.T) {
		// A process with a child of its own, which must die too.
		p, err := n2.Start(ctx, "sh", "-c", "sleep 1000 & echo $!; wait")
		if err != nil {
			t.Fatal(err)
		}
		line, err := p.WaitLine(ctx, 5*time.Second, func(l Line) bool { _, err := strconv.Atoi(l.Text); return err == nil })
		if err != nil {
			t.Fatal(err)
		}
		child, _ := strconv.Atoi(line.Text)
		if !processAlive(child) {
			t.Fatalf("child %d not running", child)
		}
		if err := n2.AddVIP(); err != nil {
			t.Fatal(err)
		}
		if err := n2.PowerOff(); err != nil {
			t.Fatal(err)
		}
		if processAlive(child) || !p.Exited() {
			t.Errorf("processes survive PowerOff: sh exited=%v, child alive=%v", p.Exited(), processAlive(child))
		}
		for _, q := range n2.Procs() {
			if !q.Exited() {
				t.Errorf("%s still running", q.Name)
			}
		}
		if h, err := l.Holders(); err != nil || len(h) != 0 {
			t.Errorf("Holders after PowerOff = %v, %v; want none (n2 is off)", h, err)
		}
		if s := fetch(t, l, n1.IP, 3); !allFrom(s, "n1") {
			t.Errorf("n1 affected by n2's power-off: %+v", s)
		}
		if err := n2.PowerOn(); err != nil {
			t.Fatal(err)
		}
		if ok, err := n2.HasVIP(); err != nil || ok {
			t.Errorf("VIP still on n2 after PowerOn: %v, %v", ok, err)
		}
		if _, err := n2.StartService(ctx); err != nil {
			t.Fatal(err)
		}
		if s := fetch(t, l, n2.IP, 3); !allFrom(s, "n2") {
			t.Errorf("n2 after PowerOn: %+v", s)
		}
	})

	t.Run("a second lab with the same prefix is refused", func(t *testing.T) {
		_, err := Up(ctx, Options{Prefix: l.Prefix, Nodes: 1, Binary: l.Binary})
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("Up = %v; want ErrExists", err)
		}
		if s := fetch(t, l, n1.IP, 1); !allFrom(s, "n1") {
			t.Errorf("the refused Up broke the running lab: %+v", s)
		}
	})
}

func TestDownIsIdempotent(t *testing.T) {
	l := upLab(t, 1)
	if _, err := l.Node(1).Start(context.Background(), "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	procs := l.Procs()
	for i := range 2 {
		if err := l.Down(); err != nil {
			t.Fatalf("Down #%d: %v", i+1, err)
		}
	}
	assertGone(t, l.Prefix, procs)
	if _, err := l.Node(1).Start(context.Background(), "true"); err == nil {
		t.Error("Start after Down succeeded")
	}
}

// A process started outside the lab's bookkeeping inside a lab namespace
// (as a user of --keep would) is removed by Cleanup.
func TestCleanupKillsStrangers(t *testing.T) {
	l := upLab(t, 1)
	p, err := startProc(context.Background(), "stranger", l.Node(1).NS, []string{"sleep", "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(l.Prefix); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a process in a lab namespace survived Cleanup")
	}
	assertGone(t, l.Prefix, nil)
}

func TestUpFailsCleanly(t *testing.T) {
	testutil.RequireRoot(t)
	bin := floatipBinary(t)
	for _, step := range []string{"creating bridge br0", "wiring n1..n2 and the client", "opening netlink handles"} {
		t.Run("error at "+step, func(t *testing.T) {
			prefix := testPrefix()
			_, err := Up(context.Background(), Options{Prefix: prefix, Nodes: 2, Binary: bin,
				hook: func(s string) error {
					if s == step {
						return errors.New("injected")
					}
					return nil
				}})
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Up = %v; want the injected error", err)
			}
			assertGone(t, prefix, nil)
		})
		t.Run("cancel at "+step, func(t *testing.T) {
			prefix := testPrefix()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := Up(ctx, Options{Prefix: prefix, Nodes: 2, Binary: bin,
				hook: func(s string) error {
					if s == step {
						cancel()
					}
					return nil
				}})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Up = %v; want context.Canceled", err)
			}
			assertGone(t, prefix, nil)
		})
	}
}

// TestFloatip drives the real daemon through the lab: one holder, then a
// takeover when the holder is powered off.
func TestFloatip(t *testing.T) {
	l := upLab(t, 2)
	ctx := context.Background()
	for i, n := range l.Nodes() {
		p, err := n.StartFloatip(ctx, "--priority", strconv.Itoa(200-50*i), "--profile", "fast")
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if t.Failed() {
				for _, line := range p.Lines() {
					t.Logf("%s: %s", p.Name, line.Text)
				}
			}
		}()
	}
	h, err := l.WaitHolders(ctx, ExactlyOne, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old := l.NodeByName(h[0])
	if err := old.PowerOff(); err != nil {
		t.Fatal(err)
	}
	h2, err := l.WaitHolders(ctx, func(h []string) bool { return len(h) == 1 && h[0] != old.Name }, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h2, old.Name) {
		t.Errorf("holders after power-off of %s: %v", old.Name, h2)
	}
}

func TestIPv6Lab(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := Up(ctx, Options{Prefix: testPrefix(), Nodes: 2, IPv6: true, Binary: floatipBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		procs := l.Procs()
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, l.Prefix, procs)
	})
	if l.VIP6 != DefaultVIP6 || !slices.Equal(l.VIPs, []netip.Addr{DefaultVIP6}) {
		t.Fatalf("VIP6 %v, VIPs %v; want %v alone", l.VIP6, l.VIPs, DefaultVIP6)
	}
	if got := NodeIP6(1).String(); got != "2001:db8:18::11" {
		t.Errorf("NodeIP6(1) = %s", got)
	}
	for _, n := range append(l.Nodes(), l.ClientNode()) {
		addrs, err := n.Addrs6()
		if err != nil {
			t.Fatal(err)
		}
		var own, ll bool
		for _, a := range addrs {
			own = own || a == netip.PrefixFrom(n.IP6, 64)
			ll = ll || a.Addr().IsLinkLocalUnicast()
		}
		if !own || !ll {
			t.Errorf("%s: IPv6 addresses %v, want %v/64 and a link-local", n.Name, addrs, n.IP6)
		}
		if ok, err := n.HasVIP(); err != nil || ok {
			t.Errorf("%s: HasVIP = %v, %v before any daemon", n.Name, ok, err)
		}
	}
	out, err := exec.Command("ip", "-n", l.brNS, "-d", "link", "show", "br0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mcast_snooping 1") || !strings.Contains(string(out), "mcast_querier 1") {
		t.Errorf("bridge br0 is not snooping with a querier: %v\n%s", err, out)
	}
	if _, err := l.Node(1).StartService(ctx); err != nil {
		t.Fatal(err)
	}
	s := fetch(t, l, l.Node(1).IP6, 3)
	if !allFrom(s, "n1") {
		t.Errorf("client over IPv6 to n1: %+v", s)
	}
}
