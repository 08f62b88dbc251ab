package quorum_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/quorum"
	"github.com/floatip/floatip/internal/testutil"
)

// The lifetime VIPLifetime gives makes the kernel remove the address
// before the deadline, even when another address change just before the
// expiry makes the kernel's lifetime check run late (it then waits a whole
// second before it looks again).
func TestKernelRemovesBeforeDeadline(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Prefix: fmt.Sprintf("qk%d", os.Getpid()%1000000), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	ns := l.Node(1).NS
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	has := func(addr string) bool {
		out, err := exec.Command("ip", "-n", ns, "-4", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr show: %v: %s", err, out)
		}
		return strings.Contains(string(out), " "+addr+"/")
	}

	// The worst deadline: just far enough for a one-second lifetime, so
	// the whole-second rounding leaves no extra room.
	deadline := time.Now().Add(quorum.KernelSlack + quorum.CallAllowance + time.Second + 20*time.Millisecond)
	lft, ok := quorum.VIPLifetime(time.Now(), deadline)
	if !ok || lft != time.Second {
		t.Fatalf("VIPLifetime = %v, %v; want 1s", lft, ok)
	}
	secs := fmt.Sprint(int(lft / time.Second))
	ip("addr", "add", "198.18.0.150/32", "dev", "eth0", "valid_lft", secs, "preferred_lft", secs)
	set := time.Now()
	// Another address changes 60 ms before the expiry: the kernel checks
	// lifetimes at once (too early for ours, even with its 20 ms of fuzz)
	// and then not for a second.
	time.Sleep(time.Until(set.Add(lft - 60*time.Millisecond)))
	ip("addr", "add", "198.18.0.151/32", "dev", "eth0", "valid_lft", "30", "preferred_lft", "30")
	for has("198.18.0.150") {
		if time.Now().After(deadline.Add(3 * time.Second)) {
			t.Fatalf("the kernel did not remove the address with a %v lifetime", lft)
		}
		time.Sleep(5 * time.Millisecond)
	}
	gone := time.Now()
	if !gone.Before(deadline) {
		t.Errorf("the kernel removed the address %v after the deadline (lifetime %v set %v before it)",
			gone.Sub(deadline), lft, deadline.Sub(set))
	}
	t.Logf("lifetime %v: removed %v after it ran out, %v before the deadline",
		lft, gone.Sub(set.Add(lft)).Round(time.Millisecond), deadline.Sub(gone).Round(time.Millisecond))
}
