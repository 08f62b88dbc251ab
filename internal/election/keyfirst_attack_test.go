package election

import (
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/quorum"
)

// Attacks on the key-first planned moves by a host on the LAN that forges
// frames without authentication (with AuthRequired none of these frames
// reaches the machine).

func holderBeaconFrom(from []byte, prio uint8) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindBeacon, prio, arp.FlagHolder))
}

// A forger alternating key-first notices and holder beacons in the
// holder's name must not make a standby campaign and resign once per pair
// of frames: that is two referee requests per two forged frames, at line
// rate. At most one campaign per beacon interval.
func TestKeyFirstForgedNoticeFloodCampaignsBounded(t *testing.T) {
	h := newHarness(t, withQuorum(), func(p *Params) { p.QuorumTTL = qTTL })
	h.becomeStandby(macPeerA)
	h.frame(peerAnnounce(macPeerA, 200))
	start := h.now
	var acts []Action
	for range 200 {
		h.advance(time.Millisecond)
		acts = append(acts, h.frame(keyFirstBeacon(macPeerA, 200))...)
		acts = append(acts, h.frame(holderBeaconFrom(macPeerA, 200))...)
	}
	h.wantState(StateStandby)
	elapsed := h.now.Sub(start)
	limit := 1 + int(elapsed/h.p.Timing.BeaconInterval)
	if n := countOf[WantKey](acts); n > limit {
		t.Fatalf("%d forged notice/beacon pairs in %v: %d campaigns (%d resigns), want at most %d",
			200, elapsed, n, countOf[ReleaseKey](acts), limit)
	}
	if h.m.Stats().Ignored == 0 {
		t.Fatalf("the ignored notices were not counted")
	}
}

// A forged key-first notice in the name of a holder that crashes right
// after it (or that a forger repeats after each of the holder's beacons,
// so that one is always the last word) must not hold the standby's claim
// back for a whole TTL after its grant. The holder was alive at the
// notice, so its lease ran out at most a TTL after the notice, and so did
// its VIP's lifetime: the standby, granted then, claims by notice + TTL +
// quorum.KernelSlack, the same bound a real key-first stop gives.
func TestKeyFirstForgedNoticeDoesNotDelayCrashFailover(t *testing.T) {
	h := newHarness(t, withQuorum(), func(p *Params) { p.QuorumTTL = qTTL })
	h.becomeStandby(macPeerA)
	h.frame(peerAnnounce(macPeerA, 200))
	notice := h.now
	if acts := h.frame(keyFirstBeacon(macPeerA, 200)); countOf[WantKey](acts) != 1 {
		t.Fatalf("notice: %s", dump(acts))
	}
	// The holder is gone: nothing more from it. Its lease runs out a TTL
	// after its last keepalive (just before the notice): then the key is
	// ours.
	h.runFor(qTTL)
	h.wantState(StateCandidate)
	h.granted(9)
	bound := notice.Add(qTTL + quorum.KernelSlack)
	for h.m.State() != StateHolder && h.now.Before(bound.Add(time.Minute)) {
		h.tick()
		if h.m.Quorum().Owned {
			h.do(Quorum{Ev: quorum.Extended{Deadline: quorum.LeaseDeadline(h.now, qTTL)}})
		}
	}
	h.wantState(StateHolder)
	if h.now.After(bound) {
		t.Fatalf("claimed at %s, %v after the bound %s that the notice implies", h.rel(h.now), h.now.Sub(bound), h.rel(bound))
	}
}

// A releasing holder keeps its bound whatever frames come: forged ready
// beacons, holder beacons, takeovers, releases and announcements from a
// better node may shorten the wait, never lengthen it.
func TestKeyFirstReleasingBoundHoldsUnderFrames(t *testing.T) {
	h := stoppingKeyFirst(t)
	until := h.now.Add(keyFirstWait)
	frames := []func() *arp.Packet{
		func() *arp.Packet { return keyFirstBeacon(macPeerB, 250) },
		func() *arp.Packet { return holderBeaconFrom(macPeerB, 250) },
		func() *arp.Packet { return peerAnnounce(macPeerB, 250) },
		func() *arp.Packet { return peerRelease(macPeerB, 250) },
		func() *arp.Packet {
			return arp.NewProbe(macPeerB, macSelf, vip1, tr(arp.KindTakeover, 250, 0))
		},
	}
	var acts []Action
	for i := 0; h.m.State() == StateReleasing && i < 10000; i++ {
		h.advance(time.Millisecond)
		acts = append(acts, h.frame(frames[i%len(frames)]())...)
		if h.m.State() == StateReleasing && !h.m.Deadline().After(h.now) {
			acts = append(acts, h.do(Tick{})...)
		}
	}
	h.wantState(StateStopped)
	if h.now.After(until) {
		t.Fatalf("released at %s, after the bound %s", h.rel(h.now), h.rel(until))
	}
	if countOf[AddVIPs](acts) != 0 || countOf[WantKey](acts) != 0 {
		t.Fatalf("frames made a releasing holder claim or campaign: %s", dump(acts))
	}
}

// A maintenance hold that comes while a handover is under way (key
// first: while releasing; without a referee: while waiting for the
// target to claim) is kept: when the target does not take the VIP, the
// held node does not take it back, nor campaign for its key.
func TestHoldDuringHandoverNoTakeBack(t *testing.T) {
	check := func(t *testing.T, h *harness) {
		t.Helper()
		if acts := h.do(Hold{On: true}); countOf[AddVIPs](acts) != 0 {
			t.Fatalf("hold: %s", dump(acts))
		}
		// The target never answers.
		acts := h.runFor(5 * time.Second)
		if countOf[AddVIPs](acts) != 0 || countOf[WantKey](acts) != 0 {
			t.Fatalf("held, the node took the VIP back (or campaigned for it): %s", dump(acts))
		}
		if s := h.m.State(); s.HasVIPs() || s == StateCandidate {
			t.Fatalf("held, state %v", s)
		}
	}
	t.Run("key first", func(t *testing.T) {
		check(t, releasingKeyFirst(t, Handover{Name: "n2"}, macPeerA))
	})
	t.Run("without a referee", func(t *testing.T) {
		h := newHarness(t)
		h.becomeHolder()
		h.frame(named(peerBeacon(macPeerA, 50), "n2"))
		h.do(Handover{Name: "n2"})
		h.wantState(StateStandby)
		check(t, h)
	})
}

// Once the key is ours after a key-first notice, a beacon in the old
// holder's name (forged, or queued from before its stop) no longer makes
// us give the key up: the old holder cannot hold without the key, so its
// release frame still finds us owning it, and the move keeps no gap.
func TestKeyFirstHolderBeaconAfterGrantKeepsKey(t *testing.T) {
	h := quorumStandby(t)
	acts := h.frame(holderBeaconFrom(macPeerA, 200))
	if countOf[ReleaseKey](acts) != 0 || !h.m.Quorum().Owned {
		t.Fatalf("a holder beacon after the grant made the standby give its key up: %s", dump(acts))
	}
	acts = h.frame(peerRelease(macPeerA, 200))
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 || countOf[WantKey](acts) != 0 {
		t.Fatalf("release frame: want a claim with the key held: %s", dump(acts))
	}
}

// A releasing holder whose watch saw another node own the key and that
// hears a node announce the VIP (the new key holder claimed early: a
// release frame forged in our name reached it, so it sent no ready
// beacon) removes its VIPs at once rather than holding them alongside for
// the rest of the grace.
func TestKeyFirstReleasingYieldsToAnnouncingKeyHolder(t *testing.T) {
	h := stoppingKeyFirst(t)
	h.do(Quorum{Ev: quorum.Holder{Name: "n2", Token: 8}})
	acts := h.frame(peerAnnounce(macPeerA, 50))
	wantReleased(t, acts, arp.Broadcast, true)
	h.wantState(StateStopped)
}

// An announcement alone (forged) ends the wait no sooner than a ready
// beacon alone: after the grace, waiting for our own watch.
func TestKeyFirstReleasingAnnouncementAloneWaits(t *testing.T) {
	h := stoppingKeyFirst(t)
	if acts := h.frame(peerAnnounce(macPeerB, 250)); countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("an announcement alone ended the stop: %s", dump(acts))
	}
	if got := h.m.Deadline(); !got.Equal(h.now.Add(keyFirstGrace)) {
		t.Fatalf("after the announcement: Deadline %s, want %s", h.rel(got), h.rel(h.now.Add(keyFirstGrace)))
	}
}
