package daemon

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/nd"
)

// Attacks on the IPv6 path by a hostile host on the LAN, without auth
// (the fake LAN carries no auth). Each test names the attack and asserts
// the rule that must hold for ND exactly as for ARP.

// A host without floatip that claims the VIP with unsolicited Neighbor
// Advertisements (no floatip option, Override, to all-nodes: the ND
// counterpart of a gratuitous ARP). Over ARP a standby logs such a claim
// at WARN and counts it (floatip_foreign_claims_total); over ND it must
// too, rather than read the NA as a kernel's answer to a check. The holder
// keeps the VIP in both.
func TestIPv6UnsolicitedNAIsAForeignClaim(t *testing.T) {
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				vip := vip1
				if family == "ipv6" {
					vip = vip6a
				}
				lan := &fakeLAN{}
				a := lan.newTestNode(t, testConfig("a", 200, grp("web", vip.String())), nil).start()
				b := lan.newTestNode(t, testConfig("b", 100, grp("web", vip.String())), nil).start()
				if soleHolder(t, "web", vip, a, b) != a {
					t.Fatal("a (priority 200) should hold")
				}
				rogue := net.HardwareAddr{2, 0x66, 0, 0, 0, 1}
				var claim []byte
				var err error
				if family == "ipv6" {
					claim, err = nd.NewAdvertisement(rogue, vip, false, nil).MarshalBinary()
				} else {
					claim, err = arp.NewAnnouncement(rogue, vip, nil).MarshalBinary()
				}
				if err != nil {
					t.Fatal(err)
				}
				for range 10 {
					lan.send(nil, claim)
					time.Sleep(100 * time.Millisecond)
				}
				for _, n := range []*testNode{a, b} {
					s, _ := n.d.Status(context.Background())
					if s.Groups[0].Counters.ForeignClaims == 0 {
						t.Errorf("%s (%s) did not count the rogue's claims: %+v", n.name, s.Groups[0].State, s.Groups[0].Counters)
					}
				}
				if soleHolder(t, "web", vip, a, b) != a {
					t.Fatal("the rogue's claims moved the VIP")
				}
			})
		})
	}
}
