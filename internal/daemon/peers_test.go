package daemon

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/election"
)

func peersOf(t *testing.T, n *testNode) (control.Group, map[string]control.Peer) {
	t.Helper()
	s, err := n.d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g := s.Groups[0]
	out := map[string]control.Peer{}
	for _, p := range g.Peers {
		out[p.Name] = p
	}
	return g, out
}

// The status lists the peers a node hears by the names their frames
// carry (peers: first), marks one that went silent lost as of the status
// request, and drops it once it expires from the table.
func TestStatusPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		cfgA := testConfig("a", 200, grp("web", vip1.String()))
		cfgA.Peers = map[string]net.HardwareAddr{"db-c": {0x02, 0, 0, 0, 0, 3}} // c's MAC
		a := lan.newTestNode(t, cfgA, nil).start()
		waitFor(t, "a to hold", func() bool { return a.state("web") == "holder" })
		b := lan.newTestNode(t, testConfig("b", 150, grp("web", vip1.String())), nil).start()
		c := lan.newTestNode(t, testConfig("c", 100, grp("web", vip1.String())), nil).start()
		soleHolder(t, "web", vip1, a, b, c)

		waitFor(t, "a to list b and c", func() bool {
			_, ps := peersOf(t, a)
			return ps["b"].Priority == 150 && ps["db-c"].Priority == 100
		})
		_, ps := peersOf(t, a)
		if p := ps["b"]; p.MAC != b.mac.String() || p.NameSource != "frames" || p.Role != election.RoleStandby || !p.Healthy || p.Lost {
			t.Errorf("b: %+v", p)
		}
		if p := ps["db-c"]; p.MAC != c.mac.String() || p.NameSource != "peers" || p.Lost {
			t.Errorf("c (named in peers:): %+v", p)
		}
		waitFor(t, "b to name the holder a", func() bool {
			g, ps := peersOf(t, b)
			return g.HolderNode == "a" && ps["a"].Role == election.RoleHolder
		})

		c.cut.Store(true)
		cutAt := time.Now()
		waitFor(t, "a to mark c lost", func() bool { _, ps := peersOf(t, a); return ps["db-c"].Lost })
		if d := time.Since(cutAt); d < 3*a.cfg.Timing.BeaconInterval {
			t.Errorf("c marked lost %v after it went silent, before three beacon intervals", d)
		}
		if _, ps := peersOf(t, a); ps["b"].Lost {
			t.Error("b marked lost too")
		}
		waitFor(t, "c to expire from a's list", func() bool { _, ps := peersOf(t, a); _, ok := ps["db-c"]; return !ok })
	})
}
