package lab

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFault(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Fault
		err  string
	}{
		{in: "poweroff", want: Fault{Kind: FaultPowerOff}},
		{in: "freeze", want: Fault{Kind: FaultFreeze}},
		{in: "loss:20", want: Fault{Kind: FaultLoss, LossPercent: 20}},
		{in: "loss", err: "loss needs a percentage"},
		{in: "loss:0", err: "want 1 to 100"},
		{in: "loss:101", err: "want 1 to 100"},
		{in: "loss:x", err: `"x" is not a whole percentage`},
		{in: "crash:3", err: "crash takes no argument"},
		{in: "meteor", err: `unknown fault "meteor"`},
	} {
		got, err := ParseFault(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseFault(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
	var k FaultKind
	if err := k.UnmarshalText([]byte("partition")); err != nil || k != FaultPartition {
		t.Errorf("UnmarshalText(partition) = %q, %v", k, err)
	}
	if err := k.UnmarshalText([]byte("nope")); err == nil {
		t.Error("UnmarshalText(nope) succeeded")
	}
}

// failures counts the failed samples.
func failures(s []Sample) int { return FailedCount(s, time.Time{}) }

// fetchAny asks target once per 5 ms, count times, from the client
// namespace, with a timeout of 200 ms per request.
func fetchAny(t *testing.T, l *Lab, target netip.Addr, count int) []Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := l.StartClient(ctx, ClientOptions{Target: netip.AddrPortFrom(target, ServicePort), Count: count, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFaults injects and heals each fault on a node whose "daemon" is a
// sleep and whose service is the lab's HTTP service, and checks what each
// does to the processes and to the traffic.
func TestFaults(t *testing.T) {
	l := upLab(t, 2)
	ctx := context.Background()
	n1, n2 := l.Node(1), l.Node(2)
	for _, n := range l.Nodes() {
		if _, err := n.StartService(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.Inject(Fault{Kind: FaultStop}); err == nil || !strings.Contains(err.Error(), "no daemon") {
		t.Errorf("stop without a daemon: %v; want an error saying there is none", err)
	}
	if _, err := n1.StartDaemon(ctx, "sleep", "1000"); err != nil {
		t.Fatal(err)
	}

	for _, kind := range []FaultKind{FaultStop, FaultCrash} {
		t.Run(string(kind), func(t *testing.T) {
			old := n1.Daemon()
			if err := n1.Inject(Fault{Kind: kind}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-old.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("the daemon still runs 5 s after %s", kind)
			}
			if f := n1.Faults(); !slices.Equal(f, []Fault{{Kind: kind}}) {
				t.Errorf("Faults = %v", f)
			}
			if err := n1.Heal(ctx, kind); err != nil {
				t.Fatal(err)
			}
			if d := n1.Daemon(); d == old || d.Exited() || !strings.HasSuffix(d.Name, "/sleep") {
				t.Errorf("after the heal the daemon is %s (exited %v), want a new sleep", d.Name, d.Exited())
			}
			if f := n1.Faults(); len(f) != 0 {
				t.Errorf("Faults after the heal = %v", f)
			}
		})
	}

	t.Run("freeze", func(t *testing.T) {
		d := n1.Daemon()
		if err := n1.Inject(Fault{Kind: FaultFreeze}); err != nil {
			t.Fatal(err)
		}
		if err := n1.Inject(Fault{Kind: FaultFreeze}); err == nil || !strings.Contains(err.Error(), "already") {
			t.Errorf("a second freeze: %v; want an error", err)
		}
		waitState(t, d.Pid(), 'T')
		if err := n1.Heal(ctx, FaultFreeze); err != nil {
			t.Fatal(err)
		}
		waitState(t, d.Pid(), 'S')
		if n1.Daemon() != d || d.Exited() {
			t.Error("thawing restarted or ended the daemon")
		}
		if err := n1.Heal(ctx, FaultFreeze); err == nil {
			t.Error("healing a freeze twice succeeded")
		}
	})

	t.Run("service", func(t *testing.T) {
		if err := n1.Inject(Fault{Kind: FaultService}); err != nil {
			t.Fatal(err)
		}
		if s := fetchAny(t, l, n1.IP, 3); failures(s) != 3 {
			t.Errorf("with the service killed: %+v, want every request to fail", s)
		}
		if err := n1.Heal(ctx, FaultService); err != nil {
			t.Fatal(err)
		}
		waitServed(t, l, n1)
	})

	t.Run("loss", func(t *testing.T) {
		if err := n1.Inject(Fault{Kind: FaultLoss, LossPercent: 25}); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ip", "netns", "exec", l.Prefix+"-br", "nft", "list", "table", "bridge", "lab_loss_n1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "numgen random mod 100 < 25") {
			t.Errorf("nft rules for loss:25: %v\n%s", err, out)
		}
		// Each request crosses n1's port in several frames (handshake,
		// request, answer, close) and has 200 ms: some fail, some get through.
		s := fetchAny(t, l, n1.IP, 80)
		if f := failures(s); f == 0 || f == len(s) {
			t.Errorf("with 25%% loss %d of %d requests failed; want some but not all", f, len(s))
		}
		if s := fetch(t, l, n2.IP, 10); !allFrom(s, "n2") {
			t.Errorf("n2 affected by n1's loss: %+v", s)
		}
		if err := n1.Heal(ctx, FaultLoss); err != nil {
			t.Fatal(err)
		}
		waitServed(t, l, n1)
		if s := fetch(t, l, n1.IP, 20); !allFrom(s, "n1") {
			t.Errorf("after the heal: %+v", s)
		}
	})

	t.Run("linkdown", func(t *testing.T) {
		if err := n1.Inject(Fault{Kind: FaultLinkDown}); err != nil {
			t.Fatal(err)
		}
		if s := fetchAny(t, l, n1.IP, 3); failures(s) != 3 {
			t.Errorf("with eth0 down: %+v, want every request to fail", s)
		}
		if err := n1.Heal(ctx, FaultLinkDown); err != nil {
			t.Fatal(err)
		}
		waitServed(t, l, n1)
	})

	t.Run("poweroff", func(t *testing.T) {
		d, svc := n1.Daemon(), n1.Service()
		if err := n1.Inject(Fault{Kind: FaultPowerOff}); err != nil {
			t.Fatal(err)
		}
		if !d.Exited() || !svc.Exited() {
			t.Errorf("after power off: daemon exited %v, service exited %v", d.Exited(), svc.Exited())
		}
		if err := n1.Heal(ctx, FaultPowerOff); err != nil {
			t.Fatal(err)
		}
		if n1.PoweredOff() || n1.Daemon() == d || n1.Daemon().Exited() {
			t.Errorf("after the heal: powered off %v, daemon restarted %v", n1.PoweredOff(), n1.Daemon() != d)
		}
		waitServed(t, l, n1)
	})

	t.Run("partition", func(t *testing.T) {
		if err := n1.Inject(Fault{Kind: FaultPartition}); err != nil {
			t.Fatal(err)
		}
		if s := fetchAny(t, l, n1.IP, 3); failures(s) != 3 {
			t.Errorf("partitioned: %+v, want every request to fail", s)
		}
		if err := n1.Heal(ctx, FaultPartition); err != nil {
			t.Fatal(err)
		}
		waitServed(t, l, n1)
	})
}

// waitServed waits (up to 5 s) until the node's service answers the client
// again: after a fault the client's ARP entry for the node may be failed, and
// the kernel asks again only after a second.
func waitServed(t *testing.T, l *Lab, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.StartClient(ctx, ClientOptions{Target: netip.AddrPortFrom(n.IP, ServicePort)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := c.WaitSample(ctx, 5*time.Second, func(s Sample) bool { return s.OK && s.Node == n.Name }); err != nil {
		t.Fatalf("%s's service does not answer after the heal: %v", n.Name, err)
	}
}

// waitState waits (up to 2 s) until pid's state letter is want.
func waitState(t *testing.T, pid int, want byte) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for processState(pid) != want {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d in state %q, want %q", pid, processState(pid), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHolderRecorder records the holders while the VIP moves by hand, and
// WaitHolders gives up when a watched process exits.
func TestHolderRecorder(t *testing.T) {
	l := upLab(t, 2)
	ctx := context.Background()
	n1, n2 := l.Node(1), l.Node(2)
	r := l.RecordHolders(ctx)
	step := func(f func() error, want ...string) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.WaitHolders(ctx, HeldBy(want...), 2*time.Second); err != nil {
			t.Fatal(err)
		}
		// Wait until the recorder has seen it too.
		deadline := time.Now().Add(2 * time.Second)
		for obs := r.Observations(); !slices.Equal(obs[len(obs)-1].Holders, want); obs = r.Observations() {
			if time.Now().After(deadline) {
				t.Fatalf("recorder still at %v, want %v", obs[len(obs)-1].Holders, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	step(n1.AddVIP, "n1")
	step(n2.AddVIP, "n1", "n2")
	step(n1.DelVIP, "n2")
	obs := r.Stop()
	r.Stop() // idempotent
	var got []string
	for _, c := range r.Changes() {
		got = append(got, c.String())
	}
	want := []string{"VIP holders: none -> n1", "VIP holders: n1 -> n1,n2", "VIP holders: n1,n2 -> n2"}
	if !slices.Equal(got, want) || len(obs) != 4 {
		t.Errorf("changes %q (%d observations), want %q (4)", got, len(obs), want)
	}

	p, err := n1.StartDaemon(ctx, "sh", "-c", "echo about to fail; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.WaitHolders(ctx, HeldBy("n1"), 10*time.Second, p)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "about to fail") {
		t.Errorf("WaitHolders with a daemon that exits: %v; want its exit and last output", err)
	}
}
