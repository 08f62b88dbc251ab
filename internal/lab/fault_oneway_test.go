package lab

import (
	"os/exec"
	"strings"
	"testing"
)

// arping sends one ARP request from ns to ip and reports whether a reply
// came back (iputils arping exits 0 only then).
func arping(ns, ip string) bool {
	return exec.Command("ip", "netns", "exec", ns, "arping", "-c", "1", "-w", "1", "-I", "eth0", ip).Run() == nil
}

// knows reports whether ns has a neighbour entry with a MAC for ip: the
// kernel makes one when an ARP request for one of its addresses arrives.
func knows(t *testing.T, ns, ip string) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "neigh", "show", ip, "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh in %s: %v: %s", ns, err, out)
	}
	return strings.Contains(string(out), "lladdr")
}

func flushNeigh(t *testing.T, nss ...string) {
	t.Helper()
	for _, ns := range nss {
		if out, err := exec.Command("ip", "-n", ns, "neigh", "flush", "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("flush neighbours of %s: %v: %s", ns, err, out)
		}
	}
}

// TestOneWayPartitions: partition-out drops only what the node sends (it
// still hears the others), partition-in only what is sent to it (the others
// still hear it); each heals to a working link.
func TestOneWayPartitions(t *testing.T) {
	l := upLab(t, 2)
	n1, c := l.Node(1), l.ClientNode()
	n1IP, cIP := n1.IP.String(), c.IP.String()
	if !arping(c.NS, n1IP) || !arping(n1.NS, cIP) {
		t.Fatal("no ARP between the client and n1 before any fault")
	}
	for _, tt := range []struct {
		kind             FaultKind
		rule, notRule    string
		n1HearsC, cHears bool // what gets through
	}{
		{kind: FaultPartitionOut, rule: `iifname "n1"`, notRule: "oifname", n1HearsC: true},
		{kind: FaultPartitionIn, rule: `oifname "n1"`, notRule: "iifname", cHears: true},
	} {
		t.Run(string(tt.kind), func(t *testing.T) {
			if err := n1.Inject(Fault{Kind: tt.kind}); err != nil {
				t.Fatal(err)
			}
			table := "lab_" + strings.ReplaceAll(string(tt.kind), "-", "_") + "_n1"
			out, err := exec.Command("ip", "netns", "exec", l.Prefix+"-br", "nft", "list", "table", "bridge", table).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.rule) || strings.Contains(string(out), tt.notRule) {
				t.Errorf("nft table %s: %v\n%s\nwant a rule on %s only", table, err, out, tt.rule)
			}
			// Both ways fail: an ARP exchange needs both directions.
			flushNeigh(t, n1.NS, c.NS)
			if arping(c.NS, n1IP) {
				t.Error("the client got n1's ARP reply")
			}
			if got := knows(t, n1.NS, cIP); got != tt.n1HearsC {
				t.Errorf("n1 heard the client's request: %v, want %v", got, tt.n1HearsC)
			}
			flushNeigh(t, n1.NS, c.NS)
			if arping(n1.NS, cIP) {
				t.Error("n1 got the client's ARP reply")
			}
			if got := knows(t, c.NS, n1IP); got != tt.cHears {
				t.Errorf("the client heard n1's request: %v, want %v", got, tt.cHears)
			}
			if err := n1.Heal(t.Context(), tt.kind); err != nil {
				t.Fatal(err)
			}
			if len(n1.Faults()) != 0 {
				t.Errorf("faults after the heal: %v", n1.Faults())
			}
			if !arping(c.NS, n1IP) || !arping(n1.NS, cIP) {
				t.Error("no ARP between the client and n1 after the heal")
			}
		})
	}
}
