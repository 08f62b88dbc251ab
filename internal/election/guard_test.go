package election

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// Tests of guard.go: what a stranger's frame may cost.

func withAuth() option { return func(p *Params) { p.AuthRequired = true } }

// authed feeds an authenticated frame.
func (h *harness) authed(p *arp.Packet) []Action {
	h.t.Helper()
	return h.do(Frame{Packet: p, Authenticated: true})
}

// A holder does not yield to a better claim that its claimant does not
// confirm: 20 forged frames with priority 254 and a standby's MAC made the
// real holder give the VIP up.
func TestForgedBetterClaimNotYielded(t *testing.T) {
	h := holderWith(t, nil, map[string]uint8{string(macPeerA): 150}) // a real standby
	var all []Action
	for range 20 {
		all = append(all, h.frame(arp.NewAnnouncement(macPeerA, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder)))...)
		all = append(all, h.runFor(5*time.Millisecond)...)
	}
	all = append(all, h.runFor(time.Second)...)
	h.wantState(StateHolder)
	if countOf[RemoveVIPs](all) != 0 {
		t.Fatalf("yielded to forged claims: %s", dump(all))
	}
	// One verification probe per check interval at most: 100ms of forged
	// frames, CheckInterval 50ms.
	var verify int
	for _, p := range sends(all) {
		if p.IsProbe() && bytes.Equal(p.Destination, macPeerA) {
			verify++
		}
	}
	if verify == 0 || verify > 3 {
		t.Fatalf("%d verification probes to the claimant, want 1..3", verify)
	}
	if st := h.m.Stats(); st.Unconfirmed == 0 {
		t.Fatalf("Stats.Unconfirmed = 0")
	}
	// An authenticated claim is believed at once (and the winner told).
	h.wantSeq(h.authed(arp.NewAnnouncement(macPeerA, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder))), "Send beacon+H 02:00:00:00:00:60 198.18.0.10", removeVIPs, "Transition holder->standby", probeBcast)
}

// 100 forged lower-priority holder frames against a 1000-VIP holder cost
// at most maxDefends defends and re-announcements (each one frame per VIP)
// per beacon interval, not 200,000 broadcasts.
func TestConflictHandlingRateLimited(t *testing.T) {
	vips := make([]netip.Addr, 1000)
	for i := range vips {
		vips[i] = netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(i % 250)})
	}
	vips[0] = vip1
	for _, fresh := range []bool{false, true} {
		t.Run(map[bool]string{false: "one offender", true: "a fresh MAC each frame"}[fresh], func(t *testing.T) {
			h := holderWith(t, []option{withVIPs(vips...)}, nil)
			h.runFor(time.Second) // the initial announcements are over
			sent := 0
			for k := range 100 {
				from := macPeerA
				if fresh {
					from = forgedMAC(k)
				}
				sent += len(sends(h.frame(arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindBeacon, 50, arp.FlagHolder)))))
				h.advance(time.Millisecond)
			}
			// The 100 frames came within one beacon interval.
			limit := 2 * len(vips) // one defend and one announcement round
			if fresh {
				limit *= maxDefends
			}
			if sent == 0 || sent > limit {
				t.Fatalf("100 forged frames cost %d frames sent, want 1..%d", sent, limit)
			}
			if h.m.Stats().Throttled == 0 {
				t.Fatalf("Stats.Throttled = 0")
			}
			h.wantState(StateHolder)
			t.Logf("100 forged lower-priority holder frames against %d VIPs: %d frames sent at once", len(vips), sent)
		})
	}
}

// The peer table is bounded: a flood of beacons from fresh MACs does not
// grow it past maxPeers, and does not push out established peers.
func TestPeerTableBounded(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	h.frame(peerBeacon(macPeerB, 200))
	h.runAnswering(100*time.Millisecond, macPeerA)
	h.frame(peerBeacon(macPeerB, 200)) // established: heard twice, apart
	for k := range 50_000 {
		h.frame(peerBeacon(forgedMAC(k), 255))
		if k%1000 == 0 {
			h.frame(peerBeacon(macPeerB, 200))
			h.advance(time.Millisecond)
		}
	}
	if n := len(h.m.peers); n > maxPeers {
		t.Fatalf("%d peers after a flood of 50,000 fresh MACs, want at most %d", n, maxPeers)
	}
	if h.m.peers[string(macPeerB)] == nil {
		t.Fatalf("the flood pushed out an established peer")
	}
	if r := h.m.rank(h.now); r > maxRank {
		t.Fatalf("rank %d, want at most %d", r, maxRank)
	}
	// Peers not heard for peerExpiryBeacons beacon intervals expire.
	h.runAnswering(time.Duration(peerExpiryBeacons+2)*h.p.Timing.BeaconInterval, macPeerA)
	if n := len(h.m.peers); n != 0 {
		t.Fatalf("%d peers left after %d silent beacon intervals, want 0", n, peerExpiryBeacons+2)
	}
}

// A unicast release (handover) from a node that is not the current holder
// makes nobody claim.
func TestHandoverFromNonHolderIgnored(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	h.runAnswering(200*time.Millisecond, macPeerA)
	acts := h.frame(handoverTo(macPeerB, macSelf, 150))
	h.wantState(StateStandby)
	if countOf[AddVIPs](acts) != 0 || h.m.Stats().Ignored != 1 {
		t.Fatalf("handover from a non-holder: %s (ignored %d)", dump(acts), h.m.Stats().Ignored)
	}
	// From the holder it works.
	h.frame(handoverTo(macPeerA, macSelf, 150))
	h.wantState(StateHolder)
}

// Forged frames naming a standby as holder must not get it fenced: fencing
// runs only against a holder that answered our checks.
func TestFenceNotAgainstUnestablishedHolder(t *testing.T) {
	for _, fp := range []FencePolicy{FenceBestEffort, FenceRequired} {
		t.Run(map[FencePolicy]string{FenceBestEffort: "best-effort", FenceRequired: "required"}[fp], func(t *testing.T) {
			// A starting node hears a forged announcement with a
			// standby's MAC; no reply to any check ever comes from it.
			victim := macPeerB
			h := newHarness(t, withFencing(fp))
			h.startFresh()
			h.frame(arp.NewAnnouncement(victim, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder)))
			if !bytes.Equal(h.m.Holder(), victim) {
				t.Fatalf("did not follow the claim: holder %v", h.m.Holder())
			}
			acts := h.runFor(2 * time.Second)
			for _, f := range actionsOf[Fence](acts) {
				t.Fatalf("fenced %v, which never answered a check: %s", f.MAC, dump(acts))
			}
			if len(notes(acts, "never established")) == 0 {
				t.Fatalf("no note about the unestablished holder: %s", dump(acts))
			}
			h.wantState(StateHolder) // nobody answers: the VIP is free

			// A standby of a holder that answers: the forged announcement
			// is not followed.
			h = newHarness(t, withFencing(fp))
			h.becomeStandby(macPeerA)
			h.runAnswering(300*time.Millisecond, macPeerA)
			h.frame(arp.NewAnnouncement(victim, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder)))
			if !bytes.Equal(h.m.Holder(), macPeerA) {
				t.Fatalf("followed a gratuitous claim away from the answering holder: holder %v", h.m.Holder())
			}
			// The holder falls silent, and then the forged announcement
			// comes: followed, but the holder that vanished is the one
			// fenced.
			h.tick()
			h.tick()
			h.frame(arp.NewAnnouncement(victim, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder)))
			acts = h.runFor(2 * time.Second)
			if fs := actionsOf[Fence](acts); len(fs) != 1 || !bytes.Equal(fs[0].MAC, macPeerA) {
				t.Fatalf("Fence actions %+v, want one against the vanished holder %v", fs, macPeerA)
			}
		})
	}
}

// With fencing required, a vanished holder not in FenceAllowed is not
// fenced and we do not take over; we say so at ERROR, again every
// DefendInterval, and resume when it answers.
func TestFenceRequiredNotAllowed(t *testing.T) {
	h := newHarness(t, withFencing(FenceRequired), func(p *Params) { p.FenceAllowed = []net.HardwareAddr{macPeerB} })
	h.becomeStandby(macPeerA)
	h.runAnswering(300*time.Millisecond, macPeerA)
	acts := h.runFor(25 * time.Second) // silent from now on
	if countOf[Fence](acts) != 0 || countOf[AddVIPs](acts) != 0 {
		t.Fatalf("fenced or claimed against a holder not in peers: %s", dump(acts))
	}
	h.wantState(StateStandby)
	errs := 0
	for _, n := range notes(acts, "not in peers") {
		if n.Level == slog.LevelError {
			errs++
		}
	}
	if errs != 3 { // at once, after 10s, after 20s
		t.Fatalf("%d ERROR notes in 25s, want 3", errs)
	}
	if c := countOf[Transition](acts); c > 2 {
		t.Fatalf("%d transitions while waiting (flapping): %s", c, dump(acts))
	}
	// It answers again: normal standby.
	h.frame(kernelReply(macPeerA, macSelf))
	h.runAnswering(time.Second, macPeerA)
	h.wantState(StateStandby)
	if h.m.fenceBlocked != nil {
		t.Fatalf("still blocked after the holder answered")
	}

	// The same holder in FenceAllowed is fenced.
	h2 := newHarness(t, withFencing(FenceRequired), func(p *Params) { p.FenceAllowed = []net.HardwareAddr{macPeerA} })
	h2.becomeStandby(macPeerA)
	h2.runAnswering(300*time.Millisecond, macPeerA)
	if acts := h2.runFor(time.Second); len(actionsOf[Fence](acts)) != 1 {
		t.Fatalf("allowed holder not fenced: %s", dump(acts))
	}
}

// A claim of the VIP by a host that is not floatip is reported
// (ForeignClaim, rate-limited) and counted (every frame).
func TestForeignClaimReported(t *testing.T) {
	h := holderWith(t, []option{withPolicy(Defend)}, nil)
	h.frame(arp.NewAnnouncement(macAlien, vip1, nil))
	if len(h.foreign) != 1 || !bytes.Equal(h.foreign[0].MAC, macAlien) || h.foreign[0].VIP != vip1 {
		t.Fatalf("ForeignClaim reports %+v", h.foreign)
	}
	for k := range 1000 {
		h.frame(arp.NewAnnouncement(forgedMAC(k), vip1, nil))
	}
	if n := h.m.Stats().ForeignClaims; n != 1001 {
		t.Fatalf("Stats.ForeignClaims = %d, want 1001", n)
	}
	if n := len(h.foreign); n > maxForeignReports {
		t.Fatalf("%d ForeignClaim reports in an instant, want at most %d", n, maxForeignReports)
	}
	h.wantState(StateHolder)
	// A standby reports gratuitous claims too.
	s := newHarness(t)
	s.becomeStandby(macPeerA)
	s.frame(arp.NewAnnouncement(macAlien, vip1, nil))
	if len(s.foreign) != 1 || s.m.Stats().ForeignClaims != 1 {
		t.Fatalf("standby: reports %+v, count %d", s.foreign, s.m.Stats().ForeignClaims)
	}
}

// With AuthRequired, unauthenticated frames change nothing: no peer, no
// conflict, no release, no deferral, no reset of misses; the holder
// answers authenticated checks itself.
func TestAuthRequired(t *testing.T) {
	t.Run("holder ignores unauthenticated claims, defends against foreign ones", func(t *testing.T) {
		h := holderWith(t, []option{withAuth(), withPolicy(Defend)}, nil)
		var all []Action
		for range 50 {
			all = append(all, h.frame(arp.NewAnnouncement(macPeerA, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder)))...)
			all = append(all, h.frame(takeoverFrom(macPeerA, macSelf, 254, 0))...)
			h.advance(10 * time.Millisecond)
		}
		h.wantState(StateHolder)
		if len(h.m.peers) != 0 || countOf[RemoveVIPs](all) != 0 {
			t.Fatalf("unauthenticated frames counted: peers %d, %s", len(h.m.peers), dump(all))
		}
		if n := h.m.Stats().ForeignClaims; n != 50 {
			t.Fatalf("Stats.ForeignClaims = %d, want 50", n)
		}
		if d := len(sentKind(all, arp.KindDefend)); d == 0 || d > 2*len(h.p.VIPs) { // 500ms: one beacon interval
			t.Fatalf("%d defend frames, want 1..%d (rate-limited)", d, 2*len(h.p.VIPs))
		}
	})
	t.Run("standby: only authenticated answers of the holder count", func(t *testing.T) {
		h := newHarness(t, withAuth())
		h.startFresh()
		h.authed(kernelReply(macPeerA, macSelf))
		h.authed(holderBeacon(macPeerA, 150))
		h.wantState(StateStandby)
		// Only unauthenticated replies (the kernel's) from now on, plus
		// forged releases: they keep us standby for at most Lifetime
		// after the holder's last authenticated frame (its VIP may still
		// be configured until then), no longer.
		lastAuth := h.now
		var all []Action
		for h.m.State() == StateStandby && h.now.Sub(t0) < 10*time.Second {
			acts := h.tick()
			all = append(all, acts...)
			if len(sends(acts)) > 0 {
				all = append(all, h.frame(kernelReply(macPeerA, macSelf))...)
				all = append(all, h.frame(handoverTo(macPeerA, macSelf, 150))...)
			}
		}
		if h.m.State() == StateStandby {
			t.Fatalf("unauthenticated kernel replies kept us standby")
		}
		if lt := h.p.Timing.Lifetime; h.now.Before(lastAuth.Add(lt)) || h.now.After(lastAuth.Add(lt+time.Duration(h.p.Timing.Misses+1)*h.p.Timing.CheckInterval)) {
			t.Fatalf("left standby at %s, want just after the lifetime (%v) since the last authenticated frame at %s", h.rel(h.now), lt, h.rel(lastAuth))
		}
		if h.m.Stats().Ignored != 0 {
			t.Fatalf("unauthenticated releases reached the release rule")
		}
		// Authenticated answers keep a standby standby.
		s := newHarness(t, withAuth())
		s.startFresh()
		s.authed(kernelReply(macPeerA, macSelf))
		for range 50 {
			if len(sends(s.tick())) > 0 {
				s.authed(arp.NewReply(macPeerA, macSelf, vip1, zeroIP, tr(arp.KindAnnounce, 150, arp.FlagHolder)))
			}
		}
		s.wantState(StateStandby)
	})
	t.Run("holder answers authenticated checks", func(t *testing.T) {
		h := holderWith(t, []option{withAuth()}, nil)
		acts := h.authed(arp.NewProbe(macPeerA, macSelf, vip1, tr(arp.KindProbe, 150, 0)))
		ps := sends(acts)
		if len(ps) != 1 || ps[0].Operation != arp.OperationReply || !bytes.Equal(ps[0].Destination, macPeerA) || ps[0].Trailer == nil || ps[0].Trailer.Flags&arp.FlagHolder == 0 {
			t.Fatalf("answer to an authenticated check: %s", dump(acts))
		}
		// Not to unauthenticated ones.
		h.advance(time.Second)
		if acts := h.frame(arp.NewProbe(macPeerB, macSelf, vip1, tr(arp.KindProbe, 150, 0))); len(sends(acts)) != 0 {
			t.Fatalf("answered an unauthenticated check: %s", dump(acts))
		}
	})
}

// An unauthenticated gratuitous claim with a known peer's MAC is no kernel
// reply: it is reported as foreign (someone borrows the peer's MAC).
func TestAuthRequiredBorrowedPeerMACReported(t *testing.T) {
	h := holderWith(t, []option{withAuth()}, nil)
	h.authed(peerBeacon(macPeerA, 150))
	h.frame(kernelReply(macPeerA, macSelf)) // its kernel: not foreign
	if n := h.m.Stats().ForeignClaims; n != 0 {
		t.Fatalf("a peer's kernel reply counted as foreign (%d)", n)
	}
	h.frame(arp.NewAnnouncement(macPeerA, vip1, tr(arp.KindAnnounce, 254, arp.FlagHolder)))
	if n := h.m.Stats().ForeignClaims; n != 1 || len(h.foreign) != 1 {
		t.Fatalf("borrowed MAC: ForeignClaims %d, reports %d, want 1 and 1", n, len(h.foreign))
	}
	h.wantState(StateHolder)
}

// rank walks a bounded table: the cost of a full one.
func BenchmarkRankFullTable(b *testing.B) {
	m := New(newParams())
	now := t0
	for k := range 10 * maxPeers {
		if pr := m.learn(now, forgedMAC(k)); pr != nil {
			pr.priority = 255
		}
	}
	b.ReportMetric(float64(len(m.peers)), "peers")
	for b.Loop() {
		m.rank(now)
	}
}

// The cost of one beacon from a fresh MAC when the table is full.
func BenchmarkFreshMACFlood(b *testing.B) {
	m := New(newParams())
	now := t0
	m.Handle(now, Start{LinkUp: true})
	m.Handle(now, Frame{Packet: kernelReply(macPeerA, macSelf)})
	k := 0
	b.ReportAllocs()
	for b.Loop() {
		m.Handle(now, Frame{Packet: peerBeacon(forgedMAC(k), 255)})
		k++
	}
	b.ReportMetric(float64(len(m.peers)), "peers")
}

// With fencing on, a better peer known before the VIP was found free may
// defer our claim while it fences, but not past fenceDeferCap.
func TestClaimDeferralCeilingWithFencing(t *testing.T) {
	h := newHarness(t, withFencing(FenceBestEffort))
	h.frame(peerBeacon(macPeerB, 200)) // better standby
	h.becomeStandby(macPeerA)
	h.runAnswering(300*time.Millisecond, macPeerA)
	h.frame(peerBeacon(macPeerB, 200))
	for h.m.State() == StateStandby {
		h.tick()
	}
	h.wantState(StateCandidate)
	free := h.now
	for h.m.State() == StateCandidate && h.now.Sub(free) < time.Minute {
		h.frame(peerProbe(macPeerB, 200, arp.FlagClaiming))
		h.runFor(h.p.Timing.CheckInterval)
	}
	took := h.now.Sub(free)
	if h.m.State() == StateCandidate || took < fenceDeferCap || took > fenceDeferCap+time.Second {
		t.Fatalf("state %v %v after the VIP was found free, want fencing after about %v", h.m.State(), took, fenceDeferCap)
	}
}

// A holder that yields to an authenticated better holder tells it so, by
// a unicast frame flagged holder: the winner then re-announces and the
// clients that followed the loser's announcements (a partition, healed)
// come back. Yielding in silence left them on the loser's MAC.
func TestAuthYieldTellsTheWinner(t *testing.T) {
	h := holderWith(t, []option{withAuth()}, nil)
	acts := h.authed(holderBeacon(macPeerA, 200))
	h.wantState(StateStandby)
	var told bool
	for _, p := range sends(acts) {
		if bytes.Equal(p.Destination, macPeerA) && p.Trailer != nil && p.Trailer.Flags&arp.FlagHolder != 0 {
			told = true
		}
	}
	if !told {
		t.Fatalf("yielded without telling the winner:\n%s", dump(acts))
	}
	// The winner, holding, takes that frame for a conflict it wins and
	// re-announces.
	w := holderWith(t, []option{withAuth(), withPriority(200)}, nil)
	wacts := w.authed(arp.NewProbe(macPeerB, w.p.MAC, vip1, tr(arp.KindBeacon, 150, arp.FlagHolder)))
	w.wantState(StateHolder)
	if len(sentKind(wacts, arp.KindDefend)) == 0 {
		t.Fatalf("the winner did not re-announce:\n%s", dump(wacts))
	}
}
