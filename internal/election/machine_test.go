package election

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

const (
	probeBcast    = "Send probe bcast 198.18.0.10"
	claimBcast    = "Send probe+C bcast 198.18.0.10"
	beaconBcast   = "Send beacon bcast 198.18.0.10"
	holderProbe   = "Send beacon+H bcast 198.18.0.10"
	announce1     = "Send announce+H bcast 198.18.0.10"
	announce2     = "Send announce+H bcast 198.18.0.11"
	defend1       = "Send defend+H bcast 198.18.0.10"
	defend2       = "Send defend+H bcast 198.18.0.11"
	releaseBcast  = "Send release bcast 198.18.0.10"
	addVIPs       = "AddVIPs 3s"
	addFirst      = "AddVIPs 3s first" // a multi-VIP group claims its first VIP before the rest
	removeVIPs    = "RemoveVIPs"
	actionDone    = "Done"
	toProbing     = "Transition init->probing"
	probingToCand = "Transition probing->candidate"
	candToHolder  = "Transition candidate->holder"
)

// verifyProbe is a holder checking, by unicast, that a better claimant
// really holds the VIP before yielding to it.
func verifyProbe(to net.HardwareAddr) string {
	return "Send beacon+H " + to.String() + " 198.18.0.10"
}

func unicastProbe(to net.HardwareAddr) string {
	return "Send probe " + to.String() + " 198.18.0.10"
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateInit: "init", StateProbing: "probing", StateStandby: "standby", StateCandidate: "candidate",
		StateHolder: "holder", StateFault: "fault", StateStopped: "stopped", State(42): "state(42)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestNewIsInit(t *testing.T) {
	h := newHarness(t)
	h.wantState(StateInit)
	if !h.m.Deadline().IsZero() || h.m.Holder() != nil {
		t.Fatalf("new machine: Deadline %v Holder %v, want zero and nil", h.m.Deadline(), h.m.Holder())
	}
	// Nothing but Start and Stop does anything before Start.
	for _, ev := range []Event{Tick{}, Frame{Packet: peerAnnounce(macPeerA, 200)}, LinkChanged{Up: false},
		LinkChanged{Up: true}, AddrChanged{Addr: vip1}, ClaimFailed{Err: errors.New("x")}} {
		if acts := h.do(ev); len(acts) != 0 {
			t.Fatalf("%T before Start: %s, want nothing", ev, dump(acts))
		}
		h.wantState(StateInit)
	}
}

func TestStartLinkDownFaults(t *testing.T) {
	h := newHarness(t)
	h.wantSeq(h.do(Start{LinkUp: false, Present: true}), "Transition init->fault")
	h.wantState(StateFault)
	if !h.m.Deadline().IsZero() {
		t.Fatalf("fault waiting for the link: Deadline %s, want zero", h.rel(h.m.Deadline()))
	}
	if acts := h.tickAt(time.Hour); len(acts) != 0 {
		t.Fatalf("tick while waiting for the link: %s", dump(acts))
	}
	// A second Start is ignored.
	if acts := h.do(Start{LinkUp: true}); len(acts) != 0 {
		t.Fatalf("second Start: %s", dump(acts))
	}
	h.wantSeq(h.do(LinkChanged{Up: true}), "Transition fault->probing", probeBcast)
	h.wantDeadline(50 * time.Millisecond)
}

func TestStartFreshProbesBroadcast(t *testing.T) {
	h := newHarness(t, withPriority(123), withNodeID(77))
	acts := h.do(Start{LinkUp: true})
	h.wantSeq(acts, toProbing, probeBcast)
	h.wantState(StateProbing)
	h.wantDeadline(50 * time.Millisecond)

	p := sends(acts)[0]
	if p.Operation != arp.OperationRequest || !p.IsProbe() || p.SenderIP != zeroIP || p.TargetIP != vip1 {
		t.Errorf("probe: op %v sender IP %v target IP %v, want a request from 0.0.0.0 for %v", p.Operation, p.SenderIP, p.TargetIP, vip1)
	}
	if !bytes.Equal(p.Destination, arp.Broadcast) || !bytes.Equal(p.Source, macSelf) || !bytes.Equal(p.SenderHardwareAddr, macSelf) {
		t.Errorf("probe: dst %v src %v sha %v", p.Destination, p.Source, p.SenderHardwareAddr)
	}
	if !bytes.Equal(p.TargetHardwareAddr, make([]byte, 6)) {
		t.Errorf("probe: target MAC %v, want zero", p.TargetHardwareAddr)
	}
	want := arp.Trailer{Kind: arp.KindProbe, Priority: 123, Flags: 0, NodeID: 77}
	if p.Trailer == nil || *p.Trailer != want {
		t.Errorf("probe trailer %+v, want %+v", p.Trailer, want)
	}
	// The frame must be encodable.
	if _, err := p.MarshalBinary(); err != nil {
		t.Errorf("probe does not marshal: %v", err)
	}
}

func TestStartPresentVerifiesBeforeAnnouncing(t *testing.T) {
	h := newHarness(t)
	h.wantSeq(h.do(Start{LinkUp: true, Present: true}), "Transition init->holder", addVIPs, holderProbe)
	h.wantState(StateHolder)
	if !bytes.Equal(h.m.Holder(), macSelf) {
		t.Fatalf("Holder() = %v, want our MAC", h.m.Holder())
	}
	tm := h.p.Timing
	// Misses verification probes in all, CheckInterval apart, no announcement.
	for i := 1; i < tm.Misses; i++ {
		acts := h.tick()
		if h.now.Sub(t0) != time.Duration(i)*tm.CheckInterval {
			t.Fatalf("verify probe %d at %s", i, h.rel(h.now))
		}
		h.wantSeq(acts, holderProbe)
	}
	acts := h.tick()
	if want := time.Duration(tm.Misses) * tm.CheckInterval; h.now.Sub(t0) != want {
		t.Fatalf("announcing at %s, want t0+%v", h.rel(h.now), want)
	}
	h.wantSeq(acts, announce1, announce2)
	for _, p := range sends(acts) {
		if p.IsProbe() || p.SenderIP != p.TargetIP || !bytes.Equal(p.Destination, arp.Broadcast) {
			t.Errorf("announcement %+v is not a gratuitous ARP", p)
		}
	}
	h.wantSeq(h.tick(), announce1, announce2)
	h.wantSeq(h.tick(), announce1, announce2)
	if want := time.Duration(tm.Misses)*tm.CheckInterval + 2*tm.AnnounceInterval; h.now.Sub(t0) != want {
		t.Fatalf("third announcement at %s, want t0+%v", h.rel(h.now), want)
	}
	// Then only the holder's routine, counted from the start, up to and
	// including the first renewal.
	for h.now.Before(t0.Add(tm.RenewInterval)) {
		acts := h.tick()
		h.wantSeq(acts, holderRoutine(tm, h.now.Sub(t0))...)
	}
	if h.now.Sub(t0) != tm.RenewInterval {
		t.Fatalf("renewal at %s, want t0+%v", h.rel(h.now), tm.RenewInterval)
	}
}

// holderRoutine is what a quiet holder does d after it claimed: renew every
// RenewInterval, send its holder beacon every BeaconInterval. Empty when
// neither is due at d.
func holderRoutine(tm Timing, d time.Duration) []string {
	var want []string
	if d%tm.RenewInterval == 0 {
		want = append(want, addVIPs)
	}
	if d%tm.BeaconInterval == 0 {
		want = append(want, holderProbe)
	}
	return want
}

func TestStartPresentConflictDuringVerification(t *testing.T) {
	// A floatip node that wins over us answers the verification probe with
	// its announcement: we give the VIP up before ever announcing.
	h := newHarness(t)
	h.do(Start{LinkUp: true, Present: true})
	// Without authentication we first check that it holds the VIP.
	h.wantSeq(h.frame(peerAnnounce(macPeerA, 200)), verifyProbe(macPeerA))
	acts := h.frame(kernelReply(macPeerA, macSelf))
	h.wantSeq(acts, removeVIPs, "Transition holder->standby", probeBcast)
	if !bytes.Equal(h.m.Holder(), macPeerA) {
		t.Fatalf("Holder() = %v, want %v", h.m.Holder(), macPeerA)
	}
}

func TestProbingAnsweredBecomesStandby(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	h.advance(time.Millisecond)
	h.wantSeq(h.frame(kernelReply(macPeerA, macSelf)), "Transition probing->standby")
	h.wantState(StateStandby)
	if !bytes.Equal(h.m.Holder(), macPeerA) {
		t.Fatalf("Holder() = %v, want %v", h.m.Holder(), macPeerA)
	}
	// Stays standby for a long time while the holder answers: unicast
	// probes every CheckInterval, a broadcast beacon every BeaconInterval.
	tm := h.p.Timing
	var beacons []time.Duration
	for h.now.Before(t0.Add(5*time.Second + time.Millisecond)) {
		acts := h.tick()
		at := h.now.Sub(t0)
		if at%tm.CheckInterval != 0 {
			t.Fatalf("probe at %v, not a multiple of CheckInterval", at)
		}
		switch got := strings.Join(fmtActions(acts), ","); got {
		case unicastProbe(macPeerA):
		case beaconBcast:
			beacons = append(beacons, at)
		default:
			t.Fatalf("at %v: %s, want one unicast probe or a beacon", at, got)
		}
		h.advance(time.Millisecond)
		h.frame(kernelReply(macPeerA, macSelf))
		h.wantState(StateStandby)
	}
	var want []time.Duration
	for d := tm.BeaconInterval; d <= 5*time.Second; d += tm.BeaconInterval {
		want = append(want, d)
	}
	if len(beacons) != len(want) {
		t.Fatalf("beacons at %v, want %v", beacons, want)
	}
	for i := range want {
		if beacons[i] != want[i] {
			t.Fatalf("beacons at %v, want %v", beacons, want)
		}
	}
}

func TestHolderAnnouncementAlsoAnswers(t *testing.T) {
	// Any frame claiming the VIP (here a gratuitous ARP from a plain host)
	// proves it is in use.
	h := newHarness(t)
	h.startFresh()
	h.wantSeq(h.frame(arp.NewAnnouncement(macAlien, vip1, nil)), "Transition probing->standby")
	// A second answer from another MAC changes the holder without a transition.
	acts := h.frame(kernelReply(macPeerB, macSelf))
	h.wantSeq(acts)
	if countOf[Note](acts) != 1 || !bytes.Equal(h.m.Holder(), macPeerB) {
		t.Fatalf("holder change: %s holder %v", dump(acts), h.m.Holder())
	}
	h.wantSeq(h.tick(), unicastProbe(macPeerB))
}

func TestUnansweredProbesClaim(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	tm := h.p.Timing
	h.wantSeq(h.tick(), probeBcast)
	h.wantSeq(h.tick(), probeBcast)
	acts := h.tick()
	if want := time.Duration(tm.Misses) * tm.CheckInterval; h.now.Sub(t0) != want {
		t.Fatalf("claimed at %s, want t0+%v (Misses x CheckInterval)", h.rel(h.now), want)
	}
	h.wantSeq(acts, probingToCand, candToHolder, addFirst, announce1, addVIPs, announce1, announce2)
	for i, p := range sends(acts)[1:] { // after the early first-VIP announcement
		want := h.p.VIPs[i]
		if p.SenderIP != want || p.TargetIP != want || p.Operation != arp.OperationRequest || p.Trailer.Priority != 100 {
			t.Errorf("announcement %d: %+v", i, p)
		}
	}
	if a := acts[2].(AddVIPs); a.Lifetime != tm.Lifetime {
		t.Errorf("AddVIPs lifetime %v", a.Lifetime)
	}
	claimed := h.now
	// The remaining AnnounceCount-1 announcements, AnnounceInterval apart.
	for i := 1; i < tm.AnnounceCount; i++ {
		h.wantSeq(h.tick(), announce1, announce2)
		if got := h.now.Sub(claimed); got != time.Duration(i)*tm.AnnounceInterval {
			t.Fatalf("announcement %d at claim+%v", i, got)
		}
	}
	// Then renewals every RenewInterval and holder beacons every
	// BeaconInterval, and nothing else, for a long time.
	renewals := 0
	for renewals < 10 {
		acts := h.tick()
		d := h.now.Sub(claimed)
		want := holderRoutine(tm, d)
		if len(want) == 0 {
			t.Fatalf("tick at claim+%v, neither a renewal nor a beacon is due: %s", d, dump(acts))
		}
		h.wantSeq(acts, want...)
		renewals += countOf[AddVIPs](acts)
	}
	if got, want := h.now.Sub(claimed), 10*tm.RenewInterval; got != want {
		t.Fatalf("10th renewal at claim+%v, want %v", got, want)
	}
	h.wantState(StateHolder)
}

func TestOneAnswerResetsMisses(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	h.tick()
	h.tick() // two misses
	h.advance(time.Millisecond)
	h.frame(kernelReply(macPeerA, macSelf))
	h.wantState(StateStandby)
	h.tick() // answered: misses reset
	// A miss, confirmed by quick checks: all but the last unanswered.
	for range 1 + h.m.confirmChecks() - 1 {
		h.tick()
	}
	h.wantState(StateStandby)
	acts := h.tick()
	h.wantSeq(acts, "Transition standby->candidate", candToHolder, addFirst, announce1, addVIPs, announce1, announce2)
}

func TestBetterProbingPeerDefers(t *testing.T) {
	// Simultaneous start: hearing a better node's probe restarts our count,
	// so the better node claims first.
	h := newHarness(t)
	h.startFresh()
	for range 10 {
		h.tick()
		h.frame(peerProbe(macPeerA, 200, 0))
	}
	h.wantState(StateProbing)
	// A worse node's probes do not hold us back.
	h2 := newHarness(t)
	h2.startFresh()
	for range 2 {
		h2.tick()
		h2.frame(peerProbe(macPeerA, 50, 0))
	}
	h2.tick()
	h2.wantState(StateHolder)
}

func TestRenewal(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	tm := h.p.Timing
	claimed := h.now
	renewals := 0
	for h.now.Before(claimed.Add(10 * tm.RenewInterval)) {
		acts := h.tick()
		if n := countOf[AddVIPs](acts); n > 0 {
			renewals += n
			if d := h.now.Sub(claimed); d%tm.RenewInterval != 0 {
				t.Fatalf("renewal at claim+%v, not a multiple of RenewInterval", d)
			}
		}
	}
	if renewals != 10 {
		t.Fatalf("%d renewals in 10 x RenewInterval, want 10", renewals)
	}
}

func TestLateRenewalWithinMargin(t *testing.T) {
	// A tick late by less than lifetime-250ms still renews.
	h := newHarness(t)
	h.becomeHolder()
	h.wantSeq(h.tickAt(2500*time.Millisecond), addVIPs, announce1, announce2, holderProbe)
	h.wantState(StateHolder)
	h.wantDeadline(100 * time.Millisecond) // the next announcement
}

func TestOverdueRenewalReleases(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	// The daemon was suspended: the first tick comes 2.8s after the claim,
	// past lifetime (3s) - 250ms.
	acts := h.tickAt(2800 * time.Millisecond)
	h.wantSeq(acts, removeVIPs, "Transition holder->probing", probeBcast)
	if countOf[AddVIPs](acts) != 0 {
		t.Fatalf("renewed an overdue VIP: %s", dump(acts))
	}
	h.wantDeadline(50 * time.Millisecond)

	// Same after a renewal: the margin counts from the last renewal.
	h = newHarness(t)
	h.becomeHolder()
	h.tickAt(time.Second) // renews
	h.wantSeq(h.tickAt(2760*time.Millisecond), removeVIPs, "Transition holder->probing", probeBcast)
}

// A holder stopped (SIGSTOP) past its lifetime finds, on thawing, the new
// holder's announcements queued before its timer: it must give the VIP up
// before it looks at them, not answer them as holder ("we win") and take
// the VIP back.
func TestThawedHolderHandlesQueuedFramesAsProber(t *testing.T) {
	for _, ev := range []struct {
		name string
		ev   Event
	}{
		{"worse holder's announcement", Frame{Packet: peerAnnounce(macPeerA, 50)}},
		{"worse holder's beacon", Frame{Packet: holderBeacon(macPeerA, 50)}},
		{"health report", Health{Healthy: true}},
	} {
		t.Run(ev.name, func(t *testing.T) {
			h := newHarness(t)
			h.becomeHolder()
			h.advance(2 * h.p.Timing.Lifetime) // frozen for two lifetimes
			acts := h.do(ev.ev)
			if len(acts) == 0 {
				t.Fatal("no action")
			}
			if _, ok := acts[0].(RemoveVIPs); !ok {
				t.Fatalf("first action %s, want RemoveVIPs before anything else", fmtAction(acts[0]))
			}
			for _, p := range sends(acts) {
				if p.Trailer != nil && p.Trailer.Flags&arp.FlagHolder != 0 {
					t.Fatalf("sent a holder's frame after a freeze past the lifetime: %s", dump(acts))
				}
			}
			if countOf[AddVIPs](acts) != 0 || h.m.State() == StateHolder {
				t.Fatalf("kept or renewed the VIP after a freeze past the lifetime: state %v, %s", h.m.State(), dump(acts))
			}
		})
	}
}

func TestAddrGoneWhileHolder(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	for _, ev := range []AddrChanged{{Addr: otherIP}, {Addr: vip1, Present: true}} {
		if acts := h.do(ev); len(acts) != 0 {
			t.Fatalf("%+v: %s, want nothing", ev, dump(acts))
		}
	}
	h.advance(time.Millisecond)
	acts := h.do(AddrChanged{Addr: vip2, Present: false})
	h.wantSeq(acts, removeVIPs, "Transition holder->probing", probeBcast)
	h.wantDeadline(50 * time.Millisecond)
	// Not a holder any more: further removals change nothing.
	if acts := h.do(AddrChanged{Addr: vip1}); len(acts) != 0 {
		t.Fatalf("AddrChanged while probing: %s", dump(acts))
	}
}

func TestAddrGoneWhileStandbyIgnored(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	if acts := h.do(AddrChanged{Addr: vip1}); len(acts) != 0 {
		t.Fatalf("AddrChanged while standby: %s", dump(acts))
	}
	h.wantState(StateStandby)
}

func TestLinkDownWhileHolder(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	h.wantSeq(h.do(LinkChanged{Up: false}), removeVIPs, "Transition holder->fault")
	if !h.m.Deadline().IsZero() {
		t.Fatalf("fault waiting for the link: Deadline %s", h.rel(h.m.Deadline()))
	}
	if h.m.Holder() != nil {
		t.Fatalf("Holder() = %v in fault", h.m.Holder())
	}
	// Repeated link-down and frames change nothing.
	if acts := h.do(LinkChanged{Up: false}); len(acts) != 0 {
		t.Fatalf("second link down: %s", dump(acts))
	}
	if acts := h.frame(peerRelease(macPeerA, 200)); len(acts) != 0 {
		t.Fatalf("frame in fault: %s", dump(acts))
	}
	h.advance(10 * time.Second)
	h.wantSeq(h.do(LinkChanged{Up: true}), "Transition fault->probing", probeBcast)
	h.wantDeadline(50 * time.Millisecond)
}

func TestLinkDownWhileStandby(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	h.wantSeq(h.do(LinkChanged{Up: false}), "Transition standby->fault")
	if acts := h.do(LinkChanged{Up: true}); strings.Join(fmtActions(acts), ",") != "Transition fault->probing,"+probeBcast {
		t.Fatalf("link up: %s", dump(acts))
	}
	// Link up while not in fault changes nothing.
	if acts := h.do(LinkChanged{Up: true}); len(acts) != 0 {
		t.Fatalf("link up while probing: %s", dump(acts))
	}
}

func TestClaimFailedFaultsThenRetries(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	acts := h.do(ClaimFailed{Err: errors.New("permission denied")})
	h.wantSeq(acts, removeVIPs, "Transition holder->fault")
	if tr := transitions(acts)[0]; !strings.Contains(tr.Reason, "permission denied") {
		t.Errorf("fault reason %q does not carry the error", tr.Reason)
	}
	h.wantDeadline(time.Second)
	if acts := h.tickAt(999 * time.Millisecond); len(acts) != 0 {
		t.Fatalf("tick before the retry: %s", dump(acts))
	}
	h.wantSeq(h.tick(), "Transition fault->probing", probeBcast)
	// And it can claim again.
	for h.m.State() != StateHolder {
		h.tick()
	}

	// ClaimFailed outside the holder state is ignored.
	h = newHarness(t)
	h.becomeStandby(macPeerA)
	if acts := h.do(ClaimFailed{Err: errors.New("x")}); len(acts) != 0 {
		t.Fatalf("ClaimFailed while standby: %s", dump(acts))
	}
}

func TestStopHolder(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	acts := h.do(Stop{})
	h.wantSeq(acts, removeVIPs, releaseBcast, releaseBcast, "Transition holder->stopped", actionDone)
	for _, p := range sends(acts) {
		if !p.IsProbe() || p.TargetIP != vip1 || p.Trailer.Kind != arp.KindRelease || p.Trailer.Flags&arp.FlagHolder != 0 {
			t.Errorf("release frame %+v %+v", p, p.Trailer)
		}
	}
	h.wantState(StateStopped)
	if h.m.Holder() != nil {
		t.Errorf("Holder() = %v after stop", h.m.Holder())
	}
	// Stopped for good.
	for _, ev := range []Event{Stop{}, Tick{}, Start{LinkUp: true}, LinkChanged{Up: false}, LinkChanged{Up: true},
		Frame{Packet: peerRelease(macPeerA, 200)}, Frame{Packet: peerAnnounce(macPeerA, 1)}, AddrChanged{Addr: vip1}, ClaimFailed{Err: errors.New("x")}} {
		h.advance(time.Second)
		if acts := h.do(ev); len(acts) != 0 {
			t.Fatalf("%T after stop: %s", ev, dump(acts))
		}
	}
}

func TestStopNotHolder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
		from  State
	}{
		{"standby", func(h *harness) { h.becomeStandby(macPeerA) }, StateStandby},
		{"probing", func(h *harness) { h.startFresh() }, StateProbing},
		{"fault", func(h *harness) { h.do(Start{}) }, StateFault},
		{"init", func(h *harness) {}, StateInit},
		{"candidate", func(h *harness) {
			h.frame(peerBeacon(macPeerB, 200))
			h.becomeStandby(macPeerA)
			for h.m.State() != StateCandidate {
				h.tick()
			}
		}, StateCandidate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			h.wantState(tc.from)
			want := []string{"Transition " + tc.from.String() + "->stopped", actionDone}
			if tc.from != StateInit && tc.from != StateFault {
				// A goodbye: passive, so nobody hands the VIP to us now.
				want = append([]string{"Send beacon bcast 198.18.0.10"}, want...)
			}
			acts := h.do(Stop{})
			h.wantSeq(acts, want...)
			if p := sends(acts); len(p) > 0 && p[0].Trailer.Flags&arp.FlagPassive == 0 {
				t.Fatalf("goodbye without the passive flag: %+v", p[0].Trailer)
			}
		})
	}
}

func TestReleaseFromHolderClaimsAtOnce(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	h.advance(20 * time.Millisecond)
	// A release from someone who is not our holder is ignored (logged
	// and counted).
	if acts := h.frame(peerRelease(macPeerB, 50)); len(fmtActions(acts)) != 0 || len(notes(acts, "not the current holder")) != 1 {
		t.Fatalf("release from a non-holder: %s", dump(acts))
	}
	if n := h.m.Stats().Ignored; n != 1 {
		t.Fatalf("Stats.Ignored = %d, want 1", n)
	}
	h.wantState(StateStandby)
	acts := h.frame(peerRelease(macPeerA, 200))
	h.wantSeq(acts, "Transition standby->candidate", candToHolder, addFirst, announce1, addVIPs, announce1, announce2)
	// The second release frame changes nothing.
	if acts := h.frame(peerRelease(macPeerA, 200)); len(acts) != 0 {
		t.Fatalf("second release: %s", dump(acts))
	}
}

func TestReleaseWhileProbingIgnored(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	// Holder unknown yet (no answer so far): a release is obeyed only from
	// the current holder, so this one (perhaps forged) changes nothing; we
	// claim when our own checks find the VIP free.
	if acts := h.frame(peerRelease(macPeerA, 50)); len(fmtActions(acts)) != 0 {
		t.Fatalf("release while probing: %s", dump(acts))
	}
	h.wantState(StateProbing)
	h.becomeHolder()
}

func TestReleaseWithBetterStandbyWaitsItsSlot(t *testing.T) {
	h := newHarness(t)
	h.frame(peerBeacon(macPeerB, 150)) // a better standby we know
	h.becomeStandby(macPeerA)
	h.frame(peerAnnounce(macPeerA, 200))
	h.advance(5 * time.Millisecond)
	acts := h.frame(peerRelease(macPeerA, 200))
	h.wantSeq(acts, "Transition standby->candidate", claimBcast)
	if tr := transitions(acts)[0]; !strings.Contains(tr.Reason, "rank 1") {
		t.Errorf("reason %q, want rank 1", tr.Reason)
	}
	h.wantDeadline(h.p.Timing.ClaimSlot) // rank 1
	// The better standby claims first: we abort.
	h.advance(time.Millisecond)
	h.wantSeq(h.frame(peerAnnounce(macPeerB, 150)), "Transition candidate->standby", probeBcast)
	if !bytes.Equal(h.m.Holder(), macPeerB) {
		t.Fatalf("Holder() = %v, want %v", h.m.Holder(), macPeerB)
	}
}

func TestCandidateRank(t *testing.T) {
	setup := func(t *testing.T, opts ...option) *harness {
		h := newHarness(t, opts...)
		h.frame(peerBeacon(macPeerB, 200))                 // better
		h.frame(peerBeacon(macPeerC, 180))                 // better
		h.frame(peerBeacon(macPeerA, 50))                  // worse
		h.frame(peerBeacon(macLow, 100))                   // same priority, lower MAC: better
		h.frame(peerBeacon(macHigh, 100))                  // same priority, higher MAC: worse
		h.becomeStandby(mac(0x01))                         // holder, no trailer seen
		h.frame(peerAnnounce(mac(0x01), 250))              // now known as holder
		h.frame(peerProbe(mac(0x02), 255, arp.FlagHolder)) // another holder: not a candidate
		return h
	}
	silence := func(h *harness) []Action {
		for {
			acts := h.tick()
			if h.m.State() != StateStandby {
				return acts
			}
		}
	}

	t.Run("waits rank x ClaimSlot", func(t *testing.T) {
		h := setup(t)
		acts := silence(h)
		h.wantSeq(acts, "Transition standby->candidate", claimBcast)
		if tr := transitions(acts)[0]; !strings.Contains(tr.Reason, "rank 3") {
			t.Fatalf("reason %q, want rank 3", tr.Reason)
		}
		p := sends(acts)[0]
		if p.Trailer.Flags != arp.FlagClaiming || p.Trailer.Kind != arp.KindProbe || !p.IsProbe() {
			t.Fatalf("claiming probe %+v %+v", p, p.Trailer)
		}
		slot := h.p.Timing.ClaimSlot
		h.wantDeadline(3 * slot)
		if acts := h.tickAt(3*slot - time.Millisecond); len(acts) != 0 {
			t.Fatalf("tick before our slot: %s", dump(acts))
		}
		// Probes (even claiming ones) do not abort a candidate.
		if acts := h.frame(peerProbe(macPeerC, 180, arp.FlagClaiming)); len(acts) != 0 {
			t.Fatalf("claiming probe while candidate: %s", dump(acts))
		}
		// Our turn: one last check, then the claim half a slot later.
		h.wantSeq(h.tick(), claimBcast)
		h.wantDeadline(slot / 2)
		h.wantSeq(h.tick(), candToHolder, addFirst, announce1, addVIPs, announce1, announce2)
	})

	t.Run("a better node that claimed late answers the last check", func(t *testing.T) {
		h := setup(t)
		silence(h)
		h.wantSeq(h.tick(), claimBcast)
		h.advance(2 * time.Millisecond)
		h.wantSeq(h.frame(kernelReply(macPeerB, macSelf)), "Transition candidate->standby", probeBcast)
	})

	t.Run("aborts when another node announces", func(t *testing.T) {
		h := setup(t)
		silence(h)
		h.advance(10 * time.Millisecond)
		h.wantSeq(h.frame(peerAnnounce(macPeerB, 200)), "Transition candidate->standby", probeBcast)
		if !bytes.Equal(h.m.Holder(), macPeerB) {
			t.Fatalf("Holder() = %v", h.m.Holder())
		}
		if acts := h.tickAt(time.Second); countOf[AddVIPs](acts) != 0 {
			t.Fatalf("claimed after aborting: %s", dump(acts))
		}
	})

	t.Run("aborts when the old holder answers", func(t *testing.T) {
		h := setup(t)
		silence(h)
		h.wantSeq(h.frame(kernelReply(mac(0x01), macSelf)), "Transition candidate->standby", probeBcast)
	})

	t.Run("stale peers do not count", func(t *testing.T) {
		h := setup(t)
		// 3 x BeaconInterval without hearing from anyone but the holder.
		for h.now.Before(t0.Add(3*h.p.Timing.BeaconInterval + 100*time.Millisecond)) {
			h.tick()
			h.frame(kernelReply(mac(0x01), macSelf))
		}
		h.frame(peerBeacon(macPeerC, 180)) // only this one is live
		h.wantSeq(silence(h), "Transition standby->candidate", claimBcast)
		h.wantDeadline(h.p.Timing.ClaimSlot) // rank 1
	})
}

func TestBetterStandbyChecksOnClaimingProbe(t *testing.T) {
	setup := func(t *testing.T) *harness {
		h := newHarness(t, withPriority(200))
		h.becomeStandby(macPeerA)
		h.tick()
		h.frame(kernelReply(macPeerA, macSelf))
		h.advance(7 * time.Millisecond)
		// A worse standby found the holder silent and announces its intent.
		acts := h.frame(peerProbe(macPeerB, 100, arp.FlagClaiming))
		h.wantSeq(acts, unicastProbe(macPeerA))
		h.wantDeadline(h.p.Timing.ClaimSlot / 2)
		// A repeat does not restart the check.
		h.advance(time.Millisecond)
		if acts := h.frame(peerProbe(macPeerB, 100, arp.FlagClaiming)); len(acts) != 0 {
			t.Fatalf("second claiming probe: %s", dump(acts))
		}
		return h
	}

	t.Run("unanswered: claims", func(t *testing.T) {
		h := setup(t)
		acts := h.tick()
		if tm := h.p.Timing; h.now.Sub(t0) != tm.CheckInterval+7*time.Millisecond+tm.ClaimSlot/2 {
			t.Fatalf("claimed at %s", h.rel(h.now))
		}
		h.wantSeq(acts, "Transition standby->candidate", candToHolder, addFirst, announce1, addVIPs, announce1, announce2)
	})

	t.Run("answered: stays standby", func(t *testing.T) {
		h := setup(t)
		h.advance(time.Millisecond)
		h.frame(kernelReply(macPeerA, macSelf))
		if acts := h.tick(); len(acts) != 0 {
			t.Fatalf("check answered: %s", dump(acts))
		}
		h.wantState(StateStandby)
		// And the regular probing goes on.
		for range 5 {
			h.tick()
			h.frame(kernelReply(macPeerA, macSelf))
		}
		h.wantState(StateStandby)
	})

	t.Run("better claimant: no check", func(t *testing.T) {
		h := newHarness(t, withPriority(200))
		h.becomeStandby(macPeerA)
		if acts := h.frame(peerProbe(macPeerB, 201, arp.FlagClaiming)); len(acts) != 0 {
			t.Fatalf("claiming probe from a better node: %s", dump(acts))
		}
		h.wantDeadline(50 * time.Millisecond)
	})
}

// holderWith returns a harness holding the VIP that knows the given peers.
func holderWith(t *testing.T, opts []option, peers map[string]uint8) *harness {
	h := newHarness(t, opts...)
	for m, prio := range peers {
		h.frame(peerBeacon(net.HardwareAddr(m), prio))
	}
	h.becomeHolder()
	// Let the initial announcements finish.
	for range 2 {
		h.tick()
	}
	h.advance(time.Millisecond)
	return h
}

func TestConflictWhileHolder(t *testing.T) {
	t.Run("higher priority wins", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		h.wantSeq(h.frame(peerAnnounce(macPeerA, 101)), verifyProbe(macPeerA))
		h.wantSeq(h.frame(kernelReply(macPeerA, macSelf)), removeVIPs, "Transition holder->standby", probeBcast)
		if !bytes.Equal(h.m.Holder(), macPeerA) {
			t.Fatalf("Holder() = %v", h.m.Holder())
		}
		// And it stays standby while that node answers.
		for range 30 {
			h.tick()
			h.frame(kernelReply(macPeerA, macSelf))
		}
		h.wantState(StateStandby)
	})

	t.Run("lower priority: defend and re-announce", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		acts := h.frame(peerAnnounce(macPeerA, 99))
		h.wantSeq(acts, defend1, defend2, announce1, announce2)
		if countOf[Note](acts) == 0 {
			t.Errorf("no Note about the conflict")
		}
		for _, p := range sends(acts)[:2] {
			if p.IsProbe() || p.SenderIP != p.TargetIP || p.Trailer.Kind != arp.KindDefend {
				t.Errorf("defend frame %+v is not a gratuitous ARP", p)
			}
		}
		h.wantState(StateHolder)
		h.wantDeadline(100 * time.Millisecond)
		h.wantSeq(h.tick(), announce1, announce2)
		h.wantSeq(h.tick(), announce1, announce2)
	})

	t.Run("equal priority lower MAC wins", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		h.wantSeq(h.frame(peerAnnounce(macLow, 100)), verifyProbe(macLow))
		h.wantSeq(h.frame(kernelReply(macLow, macSelf)), removeVIPs, "Transition holder->standby", probeBcast)
	})

	t.Run("equal priority higher MAC loses", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		h.wantSeq(h.frame(peerAnnounce(macHigh, 100)), defend1, defend2, announce1, announce2)
	})

	t.Run("kernel reply from a known better peer", func(t *testing.T) {
		// Two holders after a partition: our holder probe is answered by the
		// other holder's kernel, without a trailer; we know its priority.
		h := holderWith(t, nil, map[string]uint8{string(macPeerA): 200})
		h.wantSeq(h.frame(kernelReply(macPeerA, macSelf)), verifyProbe(macPeerA))
		h.wantSeq(h.frame(kernelReply(macPeerA, macSelf)), removeVIPs, "Transition holder->standby", probeBcast)
	})

	t.Run("kernel reply from a known worse peer", func(t *testing.T) {
		h := holderWith(t, nil, map[string]uint8{string(macPeerA): 50})
		h.wantSeq(h.frame(kernelReply(macPeerA, macSelf)), defend1, defend2, announce1, announce2)
	})

	t.Run("probes are no conflict", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		// (A holder probe of another holder is left out: see
		// TestHolderReannouncesOnWorseHolderProbe.)
		for _, p := range []*arp.Packet{peerProbe(macPeerA, 255, 0),
			peerProbe(macPeerA, 255, arp.FlagClaiming), peerRelease(macPeerA, 255), arp.NewProbe(macAlien, arp.Broadcast, vip1, nil)} {
			if acts := h.frame(p); len(acts) != 0 {
				t.Fatalf("probe %+v: %s", p.Trailer, dump(acts))
			}
		}
		h.wantState(StateHolder)
	})
}

func TestForeignClaimant(t *testing.T) {
	alienClaim := func() *arp.Packet { return arp.NewAnnouncement(macAlien, vip1, nil) }

	// firstConflict: an unknown host claims; we defend and wait for a trailer.
	firstConflict := func(h *harness) {
		h.t.Helper()
		acts := h.frame(alienClaim())
		h.wantSeq(acts, defend1, defend2)
		if countOf[Note](acts) != 1 {
			h.t.Fatalf("no warning: %s", dump(acts))
		}
		h.wantDeadline(250 * time.Millisecond) // max(5 x CheckInterval, 200ms)
		// More claims from it while we wait change nothing.
		h.advance(10 * time.Millisecond)
		if acts := h.frame(alienClaim()); len(acts) != 0 {
			h.t.Fatalf("claim while waiting: %s", dump(acts))
		}
		if acts := h.frame(kernelReply(macAlien, macSelf)); len(acts) != 0 {
			h.t.Fatalf("reply while waiting: %s", dump(acts))
		}
		// No trailer came: it is foreign; first time, defend and re-announce.
		acts = h.tick()
		h.wantSeq(acts, defend1, defend2, announce1, announce2)
		h.wantState(StateHolder)
	}

	t.Run("yield on second conflict", func(t *testing.T) {
		h := holderWith(t, []option{withPolicy(Yield)}, nil)
		firstConflict(h)
		h.runFor(2 * time.Second)
		// Known not to be floatip: the second claim within DefendInterval
		// is not defended (RFC 5227 2.4 b); we yield at once.
		h.wantSeq(h.frame(alienClaim()), removeVIPs, "Transition holder->standby", probeBcast)
		if !bytes.Equal(h.m.Holder(), macAlien) {
			t.Fatalf("Holder() = %v", h.m.Holder())
		}
	})

	t.Run("defend again after DefendInterval", func(t *testing.T) {
		h := holderWith(t, []option{withPolicy(Yield)}, nil)
		firstConflict(h)
		h.runFor(DefendInterval + time.Millisecond)
		h.wantState(StateHolder)
		h.wantSeq(h.frame(alienClaim()), defend1, defend2)
		acts := h.runFor(250 * time.Millisecond)
		h.wantState(StateHolder)
		if got := strings.Join(fmtActions(acts), ","); !strings.Contains(got, defend1+","+defend2+","+announce1) {
			t.Fatalf("did not defend and re-announce after DefendInterval: %s", got)
		}
	})

	t.Run("defend policy keeps the VIP", func(t *testing.T) {
		h := holderWith(t, []option{withPolicy(Defend)}, nil)
		firstConflict(h)
		for range 10 {
			h.runFor(2 * time.Second)
			h.wantSeq(h.frame(alienClaim()), defend1, defend2, announce1, announce2)
			// Within a second of a defence, further claims are not answered.
			h.advance(10 * time.Millisecond)
			if acts := h.frame(alienClaim()); len(acts) != 0 {
				t.Fatalf("defended twice within a second: %s", dump(acts))
			}
			h.runFor(250 * time.Millisecond)
			h.wantState(StateHolder)
		}
	})

	t.Run("claimant turns out to be floatip and better", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		h.wantSeq(h.frame(arp.NewAnnouncement(macPeerA, vip1, nil)), defend1, defend2)
		h.advance(time.Millisecond)
		h.wantSeq(h.frame(arp.NewAnnouncement(macPeerA, vip1, tr(arp.KindDefend, 200, arp.FlagHolder))), verifyProbe(macPeerA))
		h.wantSeq(h.frame(kernelReply(macPeerA, macSelf)), removeVIPs, "Transition holder->standby", probeBcast)
	})

	t.Run("claimant turns out to be floatip and worse", func(t *testing.T) {
		h := holderWith(t, nil, nil)
		h.frame(arp.NewAnnouncement(macPeerA, vip1, nil))
		h.advance(time.Millisecond)
		h.wantSeq(h.frame(arp.NewAnnouncement(macPeerA, vip1, tr(arp.KindAnnounce, 50, arp.FlagHolder))),
			defend1, defend2, announce1, announce2)
		// The foreign timer is cancelled: the next deadline is the announcement.
		h.wantDeadline(100 * time.Millisecond)
		h.tick()
		h.tick()
		h.wantState(StateHolder)
		// No foreign verdict ever comes.
		for range 3 {
			for _, a := range h.tick() {
				if n, ok := a.(Note); ok && n.Level > 0 {
					t.Fatalf("unexpected note %q", n.Msg)
				}
			}
		}
	})
}

func TestIgnoresOwnFrames(t *testing.T) {
	own := []*arp.Packet{
		arp.NewAnnouncement(macSelf, vip1, tr(arp.KindAnnounce, 100, arp.FlagHolder)),
		arp.NewReply(macSelf, macPeerA, vip1, zeroIP, nil),
		arp.NewProbe(macSelf, arp.Broadcast, vip1, tr(arp.KindRelease, 100, 0)),
		arp.NewProbe(macSelf, arp.Broadcast, vip1, tr(arp.KindProbe, 100, arp.FlagClaiming)),
		// Sender hardware address differs but the Ethernet source is ours.
		{Destination: arp.Broadcast, Source: macSelf, Operation: arp.OperationRequest, SenderHardwareAddr: macPeerA,
			SenderIP: vip1, TargetHardwareAddr: make(net.HardwareAddr, 6), TargetIP: vip1},
	}
	h := newHarness(t)
	h.startFresh()
	for _, p := range own {
		if acts := h.frame(p); len(fmtActions(acts)) != 0 {
			t.Fatalf("own frame while probing: %s", dump(acts))
		}
	}
	// Someone impersonates us: counted, logged at WARN (once per
	// DefendInterval), never acted on.
	if n := h.m.Stats().Spoofed; n != uint64(len(own)) {
		t.Fatalf("Stats.Spoofed = %d, want %d", n, len(own))
	}
	h.wantState(StateProbing)
	h.tick()
	h.tick()
	h.wantSeq(h.tick(), probingToCand, candToHolder, addFirst, announce1, addVIPs, announce1, announce2)
	h.runFor(DefendInterval) // (ticking: a holder without renewals past its lifetime gives up)
	for i, p := range own {
		acts := h.frame(p)
		if len(fmtActions(acts)) != 0 {
			t.Fatalf("own frame while holder: %s", dump(acts))
		}
		if ns := notes(acts, "spoofing"); i == 0 && (len(ns) != 1 || ns[0].Level != slog.LevelWarn) || i > 0 && len(ns) != 0 {
			t.Fatalf("frame %d: spoofing notes %+v, want one WARN for the first frame after DefendInterval only", i, ns)
		}
	}
	if n := h.m.Stats().Spoofed; n != 2*uint64(len(own)) {
		t.Fatalf("Stats.Spoofed = %d, want %d", n, 2*len(own))
	}
	if acts := h.frame(nil); len(acts) != 0 {
		t.Fatalf("nil packet: %s", dump(acts))
	}
	h.wantState(StateHolder)
}

func TestIgnoresOtherIPs(t *testing.T) {
	other := []*arp.Packet{
		arp.NewAnnouncement(macPeerA, otherIP, tr(arp.KindAnnounce, 255, arp.FlagHolder)),
		arp.NewAnnouncement(macPeerA, otherIP, nil),
		arp.NewReply(macPeerA, macSelf, otherIP, zeroIP, nil),
		arp.NewProbe(macPeerA, arp.Broadcast, otherIP, tr(arp.KindRelease, 255, 0)),
		arp.NewProbe(macPeerA, arp.Broadcast, otherIP, tr(arp.KindProbe, 1, arp.FlagClaiming)),
		// A client asking for our VIP claims nothing.
		{Destination: arp.Broadcast, Source: macAlien, Operation: arp.OperationRequest, SenderHardwareAddr: macAlien,
			SenderIP: otherIP, TargetHardwareAddr: make(net.HardwareAddr, 6), TargetIP: vip1},
		// A probe for the second VIP is not ours to answer: only vip1 is probed.
	}
	h := newHarness(t)
	h.startFresh()
	for _, p := range other {
		if acts := h.frame(p); len(acts) != 0 {
			t.Fatalf("frame about another IP while probing: %s", dump(acts))
		}
	}
	h.wantState(StateProbing)
	for h.m.State() != StateHolder {
		h.tick()
	}
	for _, p := range other {
		if acts := h.frame(p); len(acts) != 0 {
			t.Fatalf("frame about another IP while holder: %s", dump(acts))
		}
	}
	h.wantState(StateHolder)
	// An announcement for the group's second VIP is a conflict.
	h.frame(arp.NewAnnouncement(macPeerA, vip2, tr(arp.KindAnnounce, 200, arp.FlagHolder)))
	if acts := h.frame(kernelReply(macPeerA, macSelf)); countOf[RemoveVIPs](acts) != 1 {
		t.Fatalf("conflict on the second VIP: %s", dump(acts))
	}
}

func TestHolderBeacons(t *testing.T) {
	// A holder broadcasts a holder probe every BeaconInterval, so that two
	// holders (after a partition) find each other.
	h := newHarness(t)
	h.becomeHolder()
	claimed := h.now
	var at []time.Duration
	for h.m.Deadline().Before(claimed.Add(5*time.Second + time.Millisecond)) {
		for _, p := range sends(h.tick()) {
			if p.IsProbe() {
				if p.Trailer.Kind != arp.KindBeacon || p.Trailer.Flags != arp.FlagHolder || !bytes.Equal(p.Destination, arp.Broadcast) {
					t.Fatalf("holder probe %+v %+v", p, p.Trailer)
				}
				at = append(at, h.now.Sub(claimed))
			}
		}
	}
	beacon := h.p.Timing.BeaconInterval
	n := int(5 * time.Second / beacon)
	if len(at) != n || at[0] != beacon || at[n-1] != time.Duration(n)*beacon {
		t.Fatalf("holder probes at %v, want every %v", at, beacon)
	}
}

// TestHolderReannouncesOnWorseHolderProbe: two holders after a partition
// heals. When the worse one's holder probe is answered by our kernel, it
// yields silently; we must announce, or the clients that followed it during
// the partition keep its MAC for the VIP. The only frame of its we see is
// its holder probe (a broadcast probe with FlagHolder), which a holder
// ignores today. See also TestSimPartitionHealClientsFollowWinner.
func TestHolderReannouncesOnWorseHolderProbe(t *testing.T) {
	h := holderWith(t, []option{withPriority(200)}, nil)
	acts := h.frame(arp.NewProbe(macPeerA, arp.Broadcast, vip1, tr(arp.KindBeacon, 150, arp.FlagHolder)))
	if n := len(sends(acts)); n == 0 || countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("BUG: holder (priority 200) saw the holder probe of another holder (priority 150) and did %s; want it to keep the VIP and announce it (defend + re-announce)", dump(acts))
	}
	h.wantState(StateHolder)
}

func TestPlainHostProbeIsNoAnswer(t *testing.T) {
	// Another host checking whether the VIP is free (RFC 5227 probe, no
	// trailer) claims nothing: it neither answers our probes nor defers us.
	h := newHarness(t)
	h.startFresh()
	for range 2 {
		h.tick()
		if acts := h.frame(arp.NewProbe(macAlien, arp.Broadcast, vip1, nil)); len(acts) != 0 {
			t.Fatalf("plain probe: %s", dump(acts))
		}
	}
	h.wantState(StateProbing)
	h.tick()
	h.wantState(StateHolder)
}
