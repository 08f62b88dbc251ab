package integration

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/nd"
)

// A host without floatip on the lab claims the IPv6 VIP with unsolicited
// Neighbor Advertisements (no floatip option, Override, to all-nodes: the
// ND form of a gratuitous ARP). With and without auth, every node counts
// them as foreign claims (over ARP a standby does so too; over ND it read
// them as a kernel's answer and counted nothing), and nothing moves: the
// holder defends, the standby stays.
func TestIPv6ForeignNAClaimCounted(t *testing.T) {
	for _, withAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", withAuth), func(t *testing.T) {
			tag := "fna"
			if withAuth {
				tag = "fnaa"
			}
			c := newLab6(t, tag, 2)
			vip := c.VIP6
			dir := t.TempDir()
			extra := "on_foreign_claim: defend\n"
			if withAuth {
				k, err := auth.GenerateKey(nil)
				if err != nil {
					t.Fatal(err)
				}
				keyFile := filepath.Join(dir, "key")
				if err := auth.WriteKeyFile(keyFile, k, false); err != nil {
					t.Fatal(err)
				}
				extra = fmt.Sprintf("auth:\n  key_file: %s\n", keyFile)
			}
			if err := c.ClientNode().SetLearning(false); err != nil {
				t.Fatalf("attacker port: %v", err)
			}
			c.startAllWithConfig(func(n *lab.Node) string {
				seq := ""
				if withAuth {
					seq = fmt.Sprintf("  sequence_file: %s\n", filepath.Join(dir, "seq-"+n.Name))
				}
				return fmt.Sprintf("interface: eth0\npriority: %s\nvips: [%s]\nlog_level: debug\n%s%s", priority(n), vip, extra, seq)
			})
			const sent = 10
			rogue := randomMAC()
			var frames [][]byte
			for range sent {
				frames = append(frames, forgedND(t, nd.NewAdvertisement(rogue, vip, false, nil), 0, false))
			}
			before := map[string]control.Status{}
			for _, n := range c.Nodes() {
				before[n.Name] = c.waitStatus(n, func(control.Status) bool { return true }, "status")
			}
			c.attack(frames)
			for _, n := range c.Nodes() {
				b := before[n.Name].Groups[0].Counters.ForeignClaims
				s := c.waitStatus(n, func(s control.Status) bool { return s.Groups[0].Counters.ForeignClaims-b >= sent },
					fmt.Sprintf("the %d foreign NAs to be counted", sent))
				t.Logf("%s (%v): %d foreign claims counted", n.Name, s.Groups[0].State, s.Groups[0].Counters.ForeignClaims-b)
				if s.Groups[0].Counters.Transitions != before[n.Name].Groups[0].Counters.Transitions {
					t.Errorf("%s changed state (%d transitions, was %d)", n.Name, s.Groups[0].Counters.Transitions, before[n.Name].Groups[0].Counters.Transitions)
				}
			}
			if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n1" {
				t.Fatalf("holders of %v after the foreign claims: %v, want n1 alone", vip, h)
			}
		})
	}
}
