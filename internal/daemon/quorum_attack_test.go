package daemon

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/quorum"
)

// overlapWatch samples the nodes' addresses every millisecond of the
// bubble's clock and counts the samples in which more than one node has
// the VIP. stop ends it and returns the count.
func overlapWatch(nodes ...*testNode) (stop func() int) {
	var n atomic.Int64
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			held := 0
			for _, x := range nodes {
				if x.addrs.has(vip1) {
					held++
				}
			}
			if held > 1 {
				n.Add(1)
			}
			select {
			case <-quit:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() int { close(quit); <-done; return int(n.Load()) }
}

// A reload on the holder that changes its quorum (TTL, endpoints) or
// removes it: the group restarts on a new backend (a new lease) or on ARP
// alone, and the old backend is closed. The VIP must never stay on both
// nodes, and one node holds after. Removing quorum: used to leave both
// holding for good: the standby, granted the key the holder resigned,
// claimed, and as a key holder never yielded to the better node's ARP
// claim, which, without a referee, never yielded to a worse one.
func TestQuorumReloadChangingQuorumOnHolder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*quorum.EtcdConfig)
	}{
		{"ttl", func(c *quorum.EtcdConfig) { c.TTL = 6 * time.Second }},
		{"endpoints", func(c *quorum.EtcdConfig) { c.Endpoints = []string{"198.18.0.12:2379"} }},
		{"removed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ref, _, a, b := quorumPair(t)
				stop := overlapWatch(a, b)
				next := quorumConfig("a", 200)
				if tc.change != nil {
					ec := next.Quorum.Etcd
					tc.change(&ec)
					q := &config.Quorum{Etcd: ec}
					next.Quorum, next.Groups[0].Quorum = q, q
				} else {
					next.Quorum, next.Groups[0].Quorum = nil, nil
				}
				a.next = next
				if err := a.d.Reload(context.Background()); err != nil {
					t.Fatal(err)
				}
				soleHolder(t, "web", vip1, a, b)
				time.Sleep(4 * fakeTTL)
				h := soleHolder(t, "web", vip1, a, b)
				if n := stop(); n > 0 {
					t.Fatalf("the VIP was on both nodes in %d samples (1 ms apart) around the reload", n)
				}
				t.Logf("%s holds after the reload", h.name)
				ref.mu.Lock()
				defer ref.mu.Unlock()
				if !ref.backends[0].closed {
					t.Fatalf("the holder's old backend is still open after the reload")
				}
				if tc.change == nil {
					return // a holds on ARP alone now; b still asks the referee
				}
				if q := ref.queues["web"]; len(q) == 0 || !q[0].holding || q[0].b.name != h.name {
					t.Fatalf("%s holds the VIP without the key", h.name)
				}
			})
		})
	}
}

// A reload that removes a quorum group whose node holds it moves the key
// first (as a stop does) and hears the new key holder's ready beacon: the
// stopping group stays routed until it is done, so the beacon (and a link
// change) still reaches it, and it releases on the beacon instead of
// waiting out the grace its own watch alone allows.
func TestQuorumReloadRemovingHeldGroupHearsReadyBeacon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, a, b := quorumPair(t)
		time.Sleep(time.Second) // a hears b's beacons: a live standby
		next := quorumConfig("a", 200)
		next.Groups[0].Name, next.Groups[0].VIPs = "other", []netip.Addr{vip2}
		a.next = next
		start := time.Now()
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if a.addrs.has(vip1) {
			t.Fatal("a kept the VIP of the group the reload removed")
		}
		// The fake LAN and referee take no time: the ready beacon came at
		// once, and the release with it.
		if took := time.Since(start); took > 0 {
			t.Fatalf("the reload's key-first stop took %v: the stopping group did not hear the new key holder's ready beacon", took)
		}
		waitFor(t, "b to hold", func() bool { return b.addrs.has(vip1) && b.state("web") == "holder" })
	})
}

// A node that holds many quorum groups stops them all key first at once:
// each waits for its own new key holder, none for another group's wait,
// and a group whose standby never answers (here none of them, with the
// standby cut off after it was heard) keeps the VIP no longer than the
// key-first bound.
func TestQuorumStopManyGroupsKeyFirstInParallel(t *testing.T) {
	cfgFor := func(node string, prio int) config.Config {
		c := quorumConfig(node, prio)
		q := c.Groups[0].Quorum
		c.Groups = append(c.Groups, grp("db", vip2.String()), grp("mail", vip3.String()))
		for i := range c.Groups {
			c.Groups[i].Quorum = q
		}
		return c
	}
	for _, cut := range []bool{false, true} {
		name := "standby answers"
		if cut {
			name = "standby cut off"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ref := newFakeReferee()
				lan := &fakeLAN{}
				start := func(node string, prio int) *testNode {
					n := lan.newTestNode(t, cfgFor(node, prio), func(d *Deps) { d.NewQuorum = ref.newBackend })
					if err := n.d.openQuorums(n.cfg); err != nil {
						t.Fatal(err)
					}
					return n.start()
				}
				a := start("a", 200)
				b := start("b", 100)
				for _, g := range []struct {
					name string
					vip  netip.Addr
				}{{"web", vip1}, {"db", vip2}, {"mail", vip3}} {
					if h := soleHolder(t, g.name, g.vip, a, b); h != a {
						t.Fatalf("%s: holder %s, want a", g.name, h.name)
					}
				}
				time.Sleep(time.Second) // a hears b: a live standby
				if cut {
					b.cut.Store(true)
				}
				began := time.Now()
				a.stop()
				took := time.Since(began)
				// Serial waits would take three times the bound.
				if bound := time.Second + 100*time.Millisecond; took > bound {
					t.Fatalf("stopping three key-first groups took %v, more than one group's bound %v", took, bound)
				}
				// (The fake LAN and referee take no time; the timer grid a
				// millisecond. A wait for a ready beacon would be 200 ms.)
				if !cut && took >= 100*time.Millisecond {
					t.Fatalf("stopping with the standby answering took %v: some group waited out its grace", took)
				}
				for _, v := range []netip.Addr{vip1, vip2, vip3} {
					if a.addrs.has(v) {
						t.Fatalf("a kept %s after stopping", v)
					}
				}
			})
		})
	}
}
