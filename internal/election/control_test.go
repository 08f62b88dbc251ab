package election

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

func countKind(acts []Action, kind arp.Kind) int {
	n := 0
	for _, a := range acts {
		if s, ok := a.(Send); ok && s.Packet.Trailer != nil && s.Packet.Trailer.Kind == kind {
			n++
		}
	}
	return n
}

func TestProbeAnsweredReportsRTT(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	h.advance(700 * time.Microsecond)
	h.frame(kernelReply(macPeerA, macSelf))
	if len(h.rtts) != 1 || h.rtts[0] != 700*time.Microsecond {
		t.Fatalf("RTT reports %v, want [700µs]", h.rtts)
	}
	// A second answer to the same probe reports nothing.
	h.frame(kernelReply(macPeerA, macSelf))
	if len(h.rtts) != 0 {
		t.Fatalf("second answer reported %v", h.rtts)
	}
}

func TestReleaseHandsAwayAndStaysStandby(t *testing.T) {
	h := holderWith(t, nil, nil)
	acts := h.do(Release{Reason: "operator"})
	if countOf[RemoveVIPs](acts) != 1 || countKind(acts, arp.KindRelease) == 0 {
		t.Fatalf("release did not remove the VIP and tell the standbys: %s", dump(acts))
	}
	h.wantState(StateStandby)
	// A standby takes over: we follow it.
	h.advance(time.Millisecond)
	h.frame(peerAnnounce(macPeerA, 50))
	for range 40 { // 2 s of probes, each answered by the new holder
		h.tick()
		h.frame(kernelReply(macPeerA, macSelf))
	}
	h.wantState(StateStandby)
	if st := h.m.Stats(); st.Releases != 1 || st.Claims != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReleaseWithoutStandbyReclaims(t *testing.T) {
	// Nobody takes the VIP: our own checks find it free and we claim it
	// again, so a release never leaves the VIP on no node.
	h := holderWith(t, nil, nil)
	h.do(Release{Reason: "operator"})
	h.runFor(time.Second)
	h.wantState(StateHolder)
}

func TestReleaseRefusedWhenNotHolding(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	if acts := h.do(Release{}); len(acts) != 1 || countOf[Refused](acts) != 1 {
		t.Fatalf("release as standby did %s, want only a refusal", dump(acts))
	}
	h.wantState(StateStandby)
}

// A better node on maintenance hold keeps probing; a worse node probing for
// a free VIP must not wait for it, or no node would ever hold the VIP.
func TestPassiveBetterProberDoesNotBlockClaim(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	for range 10 {
		h.frame(arp.NewProbe(macPeerA, arp.Broadcast, vip1, tr(arp.KindProbe, 250, arp.FlagPassive)))
		h.tick()
		if h.m.State() == StateHolder {
			return
		}
	}
	t.Fatalf("never claimed while a passive better node kept probing: state %v", h.m.State())
}

func TestHoldWhileFencingAbandonsTheFence(t *testing.T) {
	h := newHarness(t, func(p *Params) { p.Fencing = FenceRequired })
	h.becomeStandby(macPeerA)
	h.runAnswering(200*time.Millisecond, macPeerA) // established as holder
	for h.m.State() != StateFencing {
		h.tick()
	}
	attempt := h.m.fenceAttempt
	h.do(Hold{On: true})
	h.wantState(StateStandby)
	// The fence's late success must not make the held node claim.
	if acts := h.do(FenceResult{Attempt: attempt}); countOf[AddVIPs](acts) != 0 {
		t.Fatalf("claimed after a hold during fencing: %s", dump(acts))
	}
	h.wantState(StateStandby)
}

func TestHoldNeverClaims(t *testing.T) {
	h := holderWith(t, nil, nil)
	acts := h.do(Hold{On: true})
	if countOf[RemoveVIPs](acts) != 1 || countKind(acts, arp.KindRelease) == 0 {
		t.Fatalf("hold as holder did not hand the VIP away: %s", dump(acts))
	}
	// Nobody else holds it; still we never claim while held, and our probes
	// say we are passive so others do not wait for us.
	acts = h.runFor(3 * time.Second)
	if h.m.State() == StateHolder || countOf[AddVIPs](acts) != 0 {
		t.Fatalf("claimed while held: %s", dump(acts))
	}
	for _, a := range acts {
		if s, ok := a.(Send); ok && s.Packet.Trailer.Flags&arp.FlagPassive == 0 {
			t.Fatalf("probe without the passive flag while held: %+v", s.Packet.Trailer)
		}
	}
	// Released from the hold, we claim the free VIP.
	h.do(Hold{On: false})
	h.runFor(time.Second)
	h.wantState(StateHolder)
}

func TestPassivePeerIsNotWaitedFor(t *testing.T) {
	// A better peer that says it will not claim does not delay us.
	h := newHarness(t)
	h.startFresh()
	h.frame(arp.NewProbe(macPeerA, arp.Broadcast, vip1, tr(arp.KindBeacon, 250, arp.FlagPassive)))
	acts := h.runFor(time.Second)
	var reasons []string
	for _, tr := range transitions(acts) {
		reasons = append(reasons, tr.Reason)
	}
	if !strings.Contains(strings.Join(reasons, "|"), "rank 0") {
		t.Fatalf("a passive better peer delayed the claim: %v", reasons)
	}
	h.wantState(StateHolder)
}

func TestReconfigureKeepsState(t *testing.T) {
	h := holderWith(t, nil, nil)
	p := h.p
	p.Priority = 10
	p.Timing.RenewInterval = p.Timing.RenewInterval / 3 // override: a reload that renews more often
	if acts := h.do(Reconfigure{Params: p}); len(acts) != 0 {
		t.Fatalf("reconfigure did %s", dump(acts))
	}
	h.wantState(StateHolder)
	// The new renewal interval applies from the next renewal on.
	h.runFor(3 * time.Second)
	h.wantState(StateHolder)
	// The new priority is what we now advertise.
	h.runFor(time.Second)
	for _, a := range h.runFor(time.Second) {
		if s, ok := a.(Send); ok && s.Packet.Trailer.Priority != 10 {
			t.Fatalf("advertises priority %d after reconfigure, want 10", s.Packet.Trailer.Priority)
		}
	}
}

func TestSilentHolderDaemonProbedFaster(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	holderBeacon := func() { h.frame(peerProbe(macPeerA, 200, arp.FlagHolder)) }
	holderBeacon()
	// While the holder's daemon beacons and its kernel answers, probes
	// stay CheckInterval apart.
	gap := func() time.Duration {
		h.tick()
		h.frame(kernelReply(macPeerA, macSelf))
		at := h.now
		h.tick()
		h.frame(kernelReply(macPeerA, macSelf))
		return h.now.Sub(at)
	}
	if g := gap(); g != h.p.Timing.CheckInterval {
		t.Fatalf("probe gap %v with a live holder daemon, want %v", g, h.p.Timing.CheckInterval)
	}
	// The daemon stops beaconing (killed), its VIP still answers: after
	// three beacon intervals the standby checks five times as often.
	deadline := h.now.Add(3*h.p.Timing.BeaconInterval + 2*h.p.Timing.CheckInterval)
	for h.now.Before(deadline) {
		h.tick()
		h.frame(kernelReply(macPeerA, macSelf))
	}
	if g := gap(); g != h.p.Timing.CheckInterval/5 {
		t.Fatalf("probe gap %v with a silent holder daemon, want %v", g, h.p.Timing.CheckInterval/5)
	}
	h.wantState(StateStandby)
	// It beacons again: back to the normal pace.
	holderBeacon()
	gap()
	if g := gap(); g != h.p.Timing.CheckInterval {
		t.Fatalf("probe gap %v after the beacons resumed, want %v", g, h.p.Timing.CheckInterval)
	}
}

func TestHolderLostAndPace(t *testing.T) {
	// The group that checks the holder at full pace reports its loss.
	lead := newHarness(t)
	lead.becomeStandby(macPeerA)
	for lead.m.State() == StateStandby {
		lead.tick()
	}
	if len(lead.lost) != 1 || !bytes.Equal(lead.lost[0], macPeerA) {
		t.Fatalf("HolderLost reports %v, want [%v]", lead.lost, macPeerA)
	}

	// A relaxed group probes once per beacon interval...
	f := newHarness(t)
	f.becomeStandby(macPeerA)
	f.do(Pace{Relaxed: true})
	f.tick()
	f.frame(kernelReply(macPeerA, macSelf))
	at := f.now
	f.tick()
	if g := f.now.Sub(at); g != 2*f.p.Timing.BeaconInterval {
		t.Fatalf("relaxed probe gap %v, want twice the beacon interval %v", g, 2*f.p.Timing.BeaconInterval)
	}
	f.frame(kernelReply(macPeerA, macSelf))
	// ...and goes for the VIP at once when the leading group lost the holder.
	acts := f.do(PeerLost{MAC: macPeerA})
	if f.m.State() != StateHolder || countOf[AddVIPs](acts) == 0 {
		t.Fatalf("PeerLost did not make the relaxed standby claim: state %v, %s", f.m.State(), dump(acts))
	}
	// PeerLost about another holder changes nothing.
	o := newHarness(t)
	o.becomeStandby(macPeerA)
	if acts := o.do(PeerLost{MAC: macPeerB}); len(acts) != 0 || o.m.State() != StateStandby {
		t.Fatalf("PeerLost for another MAC: %s", dump(acts))
	}
	// Not relaxed any more: back to CheckInterval.
	f2 := newHarness(t)
	f2.becomeStandby(macPeerA)
	f2.do(Pace{Relaxed: true})
	f2.do(Pace{Relaxed: false})
	f2.tick()
	f2.frame(kernelReply(macPeerA, macSelf))
	at = f2.now
	f2.tick()
	if g := f2.now.Sub(at); g != f2.p.Timing.CheckInterval {
		t.Fatalf("probe gap %v after Pace{false}, want %v", g, f2.p.Timing.CheckInterval)
	}
}
