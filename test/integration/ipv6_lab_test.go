package integration

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/testutil"
)

// TestLabUpIPv6: `lab up --ipv6` leaves a cluster floating the IPv6 VIP
// alone, with the client requesting [VIP]:8080; status shows the nodes'
// IPv6 addresses and one holder; a graceful stop of the holder moves the
// VIP; down removes everything.
func TestLabUpIPv6(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("v")
	t.Cleanup(func() { lab.Teardown(prefix) })
	out, code := runBinary(t, nil, "lab", "up", "--ipv6", "--nodes", "2", "--prefix", prefix)
	if code != 0 {
		t.Fatalf("lab up --ipv6: exit %d\n%s", code, out)
	}
	for _, want := range []string{"VIP 2001:db8:18::100", "2001:db8:18::11", "to [2001:db8:18::100]:8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab up --ipv6 output lacks %q:\n%s", want, out)
		}
	}
	st := waitStatus(t, prefix, "single holder the client reaches over IPv6", func(st lab.PlayStatus) bool {
		return len(st.Holders) == 1 && st.Client.OK > 0 && st.Client.Running
	})
	if !slices.Equal(st.VIPs, []string{"2001:db8:18::100"}) || st.Target != "[2001:db8:18::100]:8080" {
		t.Errorf("status VIPs %q, client target %q", st.VIPs, st.Target)
	}
	if len(st.VIPHolders) != 1 || !slices.Equal(st.VIPHolders[0], st.Holders) {
		t.Errorf("status holders by VIP %q, holders %q", st.VIPHolders, st.Holders)
	}
	if n := nodeOf(st, "n2"); n.IP6 != "2001:db8:18::12" {
		t.Errorf("n2's IPv6 address %q", n.IP6)
	}
	old := st.Holders[0]
	other := "n1"
	if old == "n1" {
		other = "n2"
	}
	if text, code := runBinary(t, nil, "lab", "fault", "stop", "--prefix", prefix); code != 0 {
		t.Fatalf("lab fault stop: exit %d\n%s", code, text)
	}
	waitStatus(t, prefix, other+" holding, answering the client", func(st lab.PlayStatus) bool {
		return slices.Equal(st.Holders, []string{other}) && st.Client.LastNode == other
	})
	if text, code := runBinary(t, nil, "lab", "down", "--prefix", prefix); code != 0 {
		t.Errorf("lab down: exit %d\n%s", code, text)
	}
	checkGone(t, prefix)
}

// TestDemoDualStack: `floatip lab --dual-stack` floats both addresses as
// one group, prints both in the map, and reports that they were never
// apart while the holder stopped.
func TestDemoDualStack(t *testing.T) {
	testutil.RequireRoot(t)
	prefix := demoPrefix("w")
	t.Cleanup(func() { lab.Cleanup(prefix) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "lab", "--dual-stack", "--fault", "stop", "--nodes", "2", "--prefix", prefix,
		"--svg", t.TempDir()+"/demo.svg").CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("floatip lab --dual-stack: %v\n%s", err, text)
	}
	for _, want := range []string{
		"n1     198.18.0.11   2001:db8:18::11", "VIP    198.18.0.100  2001:db8:18::100", "(one group)",
		"requests http://[2001:db8:18::100]:8080/", "first answer from n2",
		"v4 and v6 apart  0 ms", "tearing down... ok",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	checkLinesAddUp(t, text)
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left after the demo: %v", left)
	}
}
