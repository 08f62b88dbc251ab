package keepalived

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// The exec check made from track_interface fails while the link has no
// carrier (down, or its peer down) and passes once it has one: run on a
// veth pair in a network namespace of its own.
func TestLinkCheckCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (a network namespace)")
		}
		t.Skip("needs root (a network namespace)")
	}
	ns := fmt.Sprintf("kaimp%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")

	c := &converter{}
	k, ok := c.linkCheck(&outGroup{}, &instance{iface: "eth0"}, &Node{Key: "va", File: "t.conf", Line: 1})
	if !ok {
		t.Fatal("no check made for track_interface va")
	}
	healthy := func() bool {
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, k.command...)...)
		return cmd.Run() == nil
	}
	if healthy() {
		t.Error("check passes while va is down")
	}
	ip("-n", ns, "link", "set", "va", "up")
	if healthy() {
		t.Error("check passes while va's peer is down (no carrier)")
	}
	ip("-n", ns, "link", "set", "vb", "up")
	deadline := time.Now().Add(5 * time.Second)
	for !healthy() {
		if time.Now().After(deadline) {
			t.Fatal("check still fails 5s after both ends of the veth are up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
