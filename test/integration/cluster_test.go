package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/lab"
)

// macOf reads the node's eth0 MAC inside its namespace.
func (c *cluster) macOf(n *lab.Node) string {
	c.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.NS, "cat", "/sys/class/net/eth0/address").Output()
	if err != nil {
		c.t.Fatalf("%s: reading its MAC: %v", n.Name, err)
	}
	return strings.TrimSpace(string(out))
}

// statusCmd runs the floatip binary's status command against the node's
// daemon, as an operator would.
func (c *cluster) statusCmd(n *lab.Node, args ...string) string {
	c.t.Helper()
	out, err := exec.CommandContext(c.ctx, binary, append([]string{"status", "--socket", n.Socket()}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s: floatip status %v: %v\n%s", n.Name, args, err, out)
	}
	return string(out)
}

// waitPeers polls `floatip status --json` on n until ok accepts the first
// group's peers.
func (c *cluster) waitPeers(n *lab.Node, timeout time.Duration, what string, ok func(map[string]control.Peer) bool) map[string]control.Peer {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var st control.Status
		out := c.statusCmd(n, "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			c.t.Fatalf("%s: status --json does not parse: %v\n%s", n.Name, err, out)
		}
		peers := map[string]control.Peer{}
		if len(st.Groups) > 0 {
			for _, p := range st.Groups[0].Peers {
				peers[p.Name] = p
			}
		}
		if ok(peers) {
			return peers
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: waiting for %s; last status:\n%s", n.Name, what, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The cluster in one view: each node lists the peers it hears by the
// names they send, with priority and role; a powered-off node shows as
// lost; logs and handover use the learned names.
func TestStatusListsPeersByName(t *testing.T) {
	c := newLab(t, 3)
	c.startAll()
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	mac := map[string]string{"n1": c.macOf(n1), "n2": c.macOf(n2), "n3": c.macOf(n3)}

	want := func(name string, prio int, role election.PeerRole) func(map[string]control.Peer) bool {
		return func(ps map[string]control.Peer) bool {
			p, ok := ps[name]
			return ok && p.MAC == mac[name] && p.NameSource == "frames" && p.Priority == prio && p.Role == role && p.Healthy && !p.Lost
		}
	}
	both := func(a, b func(map[string]control.Peer) bool) func(map[string]control.Peer) bool {
		return func(ps map[string]control.Peer) bool { return a(ps) && b(ps) }
	}
	c.waitPeers(n1, 5*time.Second, "n2 (150) and n3 (100) as live standbys",
		both(want("n2", 150, election.RoleStandby), want("n3", 100, election.RoleStandby)))
	c.waitPeers(n2, 5*time.Second, "n1 (200) as holder", want("n1", 200, election.RoleHolder))
	// n2 followed n1 on its kernel's reply (no name in it), then named it
	// from its frames.
	if _, err := c.daemons["n2"].WaitMsg(c.ctx, 5*time.Second, "holder identified", func(l lab.Line) bool {
		return l.Str("holder") == "n1 ("+mac["n1"]+")"
	}); err != nil {
		t.Errorf("n2 never logged the holder as n1 (%s): %v", mac["n1"], err)
	}
	if out := c.statusCmd(n2); !strings.Contains(out, "holder         n1 ("+mac["n1"]+")") {
		t.Errorf("n2's status does not name the holder n1 (%s):\n%s", mac["n1"], out)
	}

	// A handover by the name n2 sends; n1's log names it, MAC beside.
	if out, err := exec.CommandContext(c.ctx, binary, "handover", "--socket", n1.Socket(), "--to", "n2").CombinedOutput(); err != nil {
		t.Fatalf("handover --to n2: %v\n%s", err, out)
	}
	c.waitHolders(lab.HeldBy("n2"), 5*time.Second, "n2 to hold after the handover")
	l := c.waitState("n1", "standby", 5*time.Second)
	if reason, wantR := l.Str("reason"), "handover to n2 ("+mac["n2"]+")"; !strings.Contains(reason, wantR) {
		t.Errorf("n1's reason %q lacks %q", reason, wantR)
	}
	c.waitPeers(n1, 5*time.Second, "n2 as holder", want("n2", 150, election.RoleHolder))

	// n3 powered off: n1 keeps listing it, as lost.
	if err := n3.PowerOff(); err != nil {
		t.Fatal(err)
	}
	c.waitPeers(n1, 8*time.Second, "n3 lost", func(ps map[string]control.Peer) bool {
		p, ok := ps["n3"]
		return ok && p.Lost && p.MAC == mac["n3"] && !ps["n2"].Lost
	})
	if out := c.statusCmd(n1); !strings.Contains(out, "n3 ("+mac["n3"]+")  prio 100  standby  LOST, heard ") {
		t.Errorf("n1's status does not show n3 as lost:\n%s", out)
	}
}
