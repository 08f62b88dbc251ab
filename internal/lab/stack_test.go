package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/testutil"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		name string
		per  [][]string
		want bool
	}{
		{"both on n1", [][]string{{"n1"}, {"n1"}}, false},
		{"nobody", [][]string{nil, nil}, false},
		{"v4 on n2, v6 not yet", [][]string{{"n2"}, nil}, false},
		{"v4 on n2, v6 on n1", [][]string{{"n2"}, {"n1"}}, true},
		{"v4 on n1,n2, v6 on n1: n1 answers for both", [][]string{{"n1", "n2"}, {"n1"}}, false},
		{"v4 on n1, v6 on n2,n3", [][]string{{"n1"}, {"n2", "n3"}}, true},
		{"partition: both on n1 and n2", [][]string{{"n1", "n2"}, {"n1", "n2"}}, false},
		{"one VIP", [][]string{{"n1", "n2"}}, false},
	}
	for _, c := range cases {
		if got := Split(c.per); got != c.want {
			t.Errorf("%s: Split(%v) = %v, want %v", c.name, c.per, got, c.want)
		}
	}
}

func TestWhole(t *testing.T) {
	if got := whole([][]string{{"n1", "n2"}, {"n2"}}); len(got) != 1 || got[0] != "n2" {
		t.Errorf("whole = %v, want [n2]", got)
	}
	if got := whole([][]string{{"n1"}, nil}); len(got) != 0 {
		t.Errorf("whole = %v, want none", got)
	}
}

func TestSplitTimeAndGoneAt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	obs := []GroupObs{
		{At: at(-500), Holders: [][]string{{"n1"}, {"n1"}}},
		{At: at(100), Holders: [][]string{{"n2"}, {"n1"}}}, // split for 30 ms
		{At: at(130), Holders: [][]string{{"n2"}, nil}},
		{At: at(140), Holders: [][]string{{"n2"}, {"n2"}}},
	}
	if got := SplitTime(obs, t0, at(1000)); got != 30*time.Millisecond {
		t.Errorf("SplitTime = %v, want 30ms", got)
	}
	if got := SplitTime(obs, at(120), at(1000)); got != 10*time.Millisecond {
		t.Errorf("SplitTime from 120 ms = %v, want 10ms", got)
	}
	if g, ok := GoneAt(obs, "n1", t0); !ok || !g.Equal(at(130)) {
		t.Errorf("GoneAt n1 = %v %v, want +130ms", g.Sub(t0), ok)
	}
	if _, ok := GoneAt(obs, "n2", at(140)); ok {
		t.Error("GoneAt n2 from +140ms: n2 holds from then to the end")
	}
	if g, ok := GoneAt(obs, "n3", t0); !ok || !g.Equal(t0) {
		t.Errorf("GoneAt n3 = %v %v, want the start", g.Sub(t0), ok)
	}
	s := Series(obs, 1)
	if len(s) != 3 || len(WholeSeries(obs)) != 3 {
		t.Errorf("Series(1) %v, WholeSeries %v", s, WholeSeries(obs))
	}
}

// TestDualStackRecorder moves a dual-stack group's addresses by hand and
// checks what the group recorder, HoldersOf and the client see, and that a
// powered-on node has lost its IPv6 VIP.
func TestDualStackRecorder(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, err := StackOptions(Options{Prefix: testPrefix(), Nodes: 2, Binary: floatipBinary(t)}, StackDual)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(ctx, o)
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
	vips, err := l.StackVIPs(StackDual)
	if err != nil || !slices.Equal(vips, []netip.Addr{DefaultVIP, DefaultVIP6}) || !slices.Equal(l.VIPs, vips) {
		t.Fatalf("StackVIPs %v (%v), lab VIPs %v", vips, err, l.VIPs)
	}
	n1, n2 := l.Node(1), l.Node(2)
	for _, n := range []*Node{n1, n2} {
		if _, err := n.StartService(ctx); err != nil {
			t.Fatal(err)
		}
	}
	add := func(n *Node, v netip.Addr) {
		t.Helper()
		args := []string{"-n", n.NS, "addr", "add", netip.PrefixFrom(v, v.BitLen()).String(), "dev", "eth0"}
		if v.Is6() {
			args = append(args, "nodad")
		}
		if err := l.runIP(args...); err != nil {
			t.Fatal(err)
		}
	}
	del := func(n *Node, v netip.Addr) {
		t.Helper()
		if err := l.runIP("-n", n.NS, "addr", "del", netip.PrefixFrom(v, v.BitLen()).String(), "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	add(n1, DefaultVIP)
	add(n1, DefaultVIP6)
	if per, err := l.HoldersOf(vips); err != nil || !sameHolders(per, [][]string{{"n1"}, {"n1"}}) {
		t.Fatalf("HoldersOf = %v, %v; want n1 for both", per, err)
	}
	if target, _ := l.Target(StackDual); target != netip.AddrPortFrom(DefaultVIP6, ServicePort) {
		t.Errorf("dual-stack target %v", target)
	}
	if s := fetch(t, l, DefaultVIP6, 3); !allFrom(s, "n1") {
		t.Errorf("client to the IPv6 VIP on n1: %+v", s)
	}

	rec := l.RecordGroup(ctx, vips)
	waitObs := func(what string, ok func(GroupObs) bool) time.Time {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(HolderPoll) {
			obs := rec.Observations()
			if len(obs) > 0 && ok(obs[len(obs)-1]) {
				return obs[len(obs)-1].At
			}
		}
		t.Fatalf("the recorder never saw %s: %v", what, rec.Observations())
		return time.Time{}
	}
	start := waitObs("n1 holding both", func(o GroupObs) bool { return sameHolders(o.Holders, [][]string{{"n1"}, {"n1"}}) })
	// The IPv6 VIP moves alone: the group is apart until IPv4 follows.
	del(n1, DefaultVIP6)
	add(n2, DefaultVIP6)
	waitObs("the group apart", func(o GroupObs) bool { return Split(o.Holders) })
	del(n1, DefaultVIP)
	add(n2, DefaultVIP)
	end := waitObs("n2 holding both", func(o GroupObs) bool { return sameHolders(o.Holders, [][]string{{"n2"}, {"n2"}}) })
	obs := rec.Stop()
	if apart := SplitTime(obs, start, end); apart <= 0 {
		t.Errorf("SplitTime %v over %v, want the time the group was apart", apart, obs)
	}
	if _, ok := GoneAt(obs, "n1", start); !ok {
		t.Errorf("GoneAt n1: not seen gone in %v", obs)
	}
	// Nobody announced the move (a daemon would send a Neighbor
	// Advertisement): the client forgets n1's MAC instead.
	if err := l.runIP("-n", l.ClientNode().NS, "neigh", "flush", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if s := fetch(t, l, DefaultVIP6, 3); !allFrom(s, "n2") {
		t.Errorf("client to the IPv6 VIP on n2: %+v", s)
	}
	if err := n2.PowerOff(); err != nil {
		t.Fatal(err)
	}
	if err := n2.PowerOn(); err != nil {
		t.Fatal(err)
	}
	if ok, err := n2.HasAddr(DefaultVIP6); err != nil || ok {
		t.Errorf("after power on n2 still has %v (%v)", DefaultVIP6, err)
	}
	if ok, err := n2.HasAddr(NodeIP6(2)); err != nil || !ok {
		t.Errorf("after power on n2 lost its own %v (%v)", NodeIP6(2), err)
	}
	// A link flap: the kernel drops the global IPv6 addresses of a link
	// that goes down; the heal gives the node its own back.
	if err := n1.Inject(Fault{Kind: FaultLinkDown}); err != nil {
		t.Fatal(err)
	}
	if err := n1.Heal(ctx, FaultLinkDown); err != nil {
		t.Fatal(err)
	}
	if ok, err := n1.HasAddr(NodeIP6(1)); err != nil || !ok {
		t.Errorf("after a link flap n1 lacks its own %v (%v)", NodeIP6(1), err)
	}
}

// TestServeAndClientIPv6: `lab serve --listen :8080` listens on both
// families, and `lab client` takes an IPv6 literal target ("[::1]:PORT").
func TestServeAndClientIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "n7", ":"+strconv.Itoa(port), pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	if !strings.Contains(line, `"addr":"[::]:`) {
		t.Errorf("serve listens on %s, want [::] (both families)", line)
	}
	for _, target := range []string{"[::1]:" + strconv.Itoa(port), "127.0.0.1:" + strconv.Itoa(port)} {
		var out strings.Builder
		if err := RunClient(ctx, ClientConfig{Target: target, Every: 5 * time.Millisecond, Timeout: 2 * time.Second, Count: 3}, &out); err != nil {
			t.Fatalf("client to %s: %v", target, err)
		}
		var s []Sample
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("client line %q: %v", l, err)
			}
			if x, ok := ParseSample(Line{Text: l, Fields: m}); ok {
				s = append(s, x)
			}
		}
		if len(s) != 3 || !allFrom(s, "n7") {
			t.Errorf("client to %s: %+v\n%s", target, s, out.String())
		}
	}
	cancel()
	pw.Close()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
