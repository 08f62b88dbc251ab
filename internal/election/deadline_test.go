package election

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// TestDeadlineIsEarliestTimer checks, in every state, that nothing is due
// before Deadline (a Tick just before it does nothing and moves nothing) and
// that Deadline is zero only when no timer can fire.
func TestDeadlineIsEarliestTimer(t *testing.T) {
	tm := defaultTiming() // newHarness's
	for _, tc := range []struct {
		name     string
		setup    func(h *harness)
		state    State
		wantZero bool
		want     time.Duration // from now, when not zero
	}{
		{"init", func(h *harness) {}, StateInit, true, 0},
		{"fault link down", func(h *harness) { h.do(Start{}) }, StateFault, true, 0},
		{"fault retry", func(h *harness) { h.becomeHolder(); h.do(ClaimFailed{Err: errors.New("x")}) }, StateFault, false, time.Second},
		{"probing", func(h *harness) { h.startFresh() }, StateProbing, false, tm.CheckInterval},
		{"standby", func(h *harness) { h.becomeStandby(macPeerA) }, StateStandby, false, tm.CheckInterval},
		{"standby verifying", func(h *harness) {
			h.becomeStandby(macPeerA)
			h.advance(3 * time.Millisecond)
			h.frame(peerProbe(macPeerB, 1, arp.FlagClaiming))
		}, StateStandby, false, tm.ClaimSlot / 2}, // the claimant's check of the holder
		{"candidate", func(h *harness) {
			h.frame(peerBeacon(macPeerB, 200))
			h.frame(peerBeacon(macPeerC, 201))
			h.becomeStandby(macPeerA)
			h.frame(peerRelease(macPeerA, 250))
		}, StateCandidate, false, 2 * tm.ClaimSlot}, // rank 2: two better standbys
		{"holder announcing", func(h *harness) { h.becomeHolder() }, StateHolder, false, tm.AnnounceInterval},
		{"holder verifying", func(h *harness) { h.do(Start{LinkUp: true, Present: true}) }, StateHolder, false, tm.CheckInterval},
		{"holder quiet", func(h *harness) { h.becomeHolder(); h.tick(); h.tick() }, StateHolder, false,
			// The next renewal or beacon, counted from the claim, two
			// announcements ago.
			min(tm.RenewInterval, tm.BeaconInterval) - 2*tm.AnnounceInterval},
		{"holder waiting for a claimant's trailer", func(h *harness) {
			h.becomeHolder()
			h.tick()
			h.tick()
			h.advance(time.Millisecond)
			h.frame(arp.NewAnnouncement(macAlien, vip1, nil))
		}, StateHolder, false, max(5*tm.CheckInterval, 200*time.Millisecond)},
		{"stopped", func(h *harness) { h.becomeHolder(); h.do(Stop{}) }, StateStopped, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			h.wantState(tc.state)
			dl := h.m.Deadline()
			if tc.wantZero {
				if !dl.IsZero() {
					t.Fatalf("Deadline %s, want zero", h.rel(dl))
				}
				if acts := h.tickAt(time.Hour); len(acts) != 0 {
					t.Fatalf("Deadline zero but a Tick an hour later did %s", dump(acts))
				}
				return
			}
			h.wantDeadline(tc.want)
			h.now = dl.Add(-time.Nanosecond)
			if acts := h.do(Tick{}); len(acts) != 0 {
				t.Fatalf("Tick 1ns before Deadline did %s", dump(acts))
			}
			if got := h.m.Deadline(); !got.Equal(dl) {
				t.Fatalf("Tick before Deadline moved it from %s to %s", h.rel(dl), h.rel(got))
			}
			h.now = dl
			acts := h.do(Tick{})
			if ndl := h.m.Deadline(); len(acts) == 0 && !ndl.After(h.now) {
				t.Fatalf("Tick at Deadline %s did nothing and left Deadline at %s", h.rel(dl), h.rel(ndl))
			}
		})
	}
}

// TestDeadlineMovesPastTick: after a Tick at or after Deadline, the next
// Deadline must be later than that Tick (or zero). Otherwise the daemon's
// timer fires at once, again and again: a busy loop until the real timer is
// due. In the waiting states nextBeacon is part of Deadline but only acted
// upon at the next probe, so whenever a beacon falls due between two probes
// Deadline stays in the past.
func TestDeadlineMovesPastTick(t *testing.T) {
	misaligned := defaultTiming()
	// Override: the beacon interval is no multiple of this check interval,
	// which no profile ships but config allows.
	misaligned.CheckInterval = 30 * time.Millisecond

	for _, tc := range []struct {
		name   string
		timing Timing
		late   time.Duration // each Tick comes this late, as real timers do
		setup  func(h *harness)
	}{
		{"check interval not dividing beacon interval", misaligned, 0, nil},
		{"ticks 1ms late", defaultTiming(), time.Millisecond, nil},
		{"after checking the holder on a claiming probe", defaultTiming(), 0, func(h *harness) {
			// The check probe is sent when the frame arrives, which moves the
			// probe schedule off the beacon schedule.
			h.advance(7 * time.Millisecond)
			h.frame(peerProbe(macPeerB, 1, arp.FlagClaiming))
			h.advance(time.Millisecond)
			h.frame(kernelReply(macPeerA, macSelf))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withTiming(tc.timing), withPriority(200))
			h.becomeStandby(macPeerA)
			if tc.setup != nil {
				tc.setup(h)
			}
			for h.now.Before(t0.Add(3 * time.Second)) {
				dl := h.m.Deadline()
				h.now = dl.Add(tc.late)
				acts := h.do(Tick{})
				if ndl := h.m.Deadline(); !ndl.After(h.now) {
					t.Fatalf("BUG: standby Tick at %s (Deadline was %s) did %s and left Deadline at %s, in the past: the daemon would spin until the next probe",
						h.rel(h.now), h.rel(dl), dump(acts), h.rel(ndl))
				}
				// The holder answers every probe.
				if len(sends(acts)) > 0 {
					h.frame(kernelReply(macPeerA, macSelf))
				}
			}
		})
	}
}

// TestRandomWalkInvariants feeds random events at random times and checks
// what must hold after any of them.
func TestRandomWalkInvariants(t *testing.T) {
	peers := []struct {
		mac  net.HardwareAddr
		prio uint8
	}{{macPeerA, 200}, {macPeerB, 100}, {macPeerC, 50}, {macLow, 100}, {macHigh, 100}}
	for seed := range uint64(30) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			tm := defaultTiming()
			if seed%2 == 1 {
				tm = fastTiming()
			}
			pol := Yield
			if seed%3 == 0 {
				pol = Defend
			}
			h := newHarness(t, withTiming(tm), withPolicy(pol))
			h.do(Start{LinkUp: rng.IntN(5) > 0, Present: rng.IntN(3) == 0})
			for step := range 3000 {
				before := h.m.State()
				var ev Event
				p := peers[rng.IntN(len(peers))]
				switch r := rng.IntN(100); {
				case r < 55:
					// Tick at (or a little after) the Deadline, or just before it.
					dl := h.m.Deadline()
					if dl.IsZero() {
						h.advance(time.Duration(rng.IntN(100)) * time.Millisecond)
						ev = LinkChanged{Up: true}
						break
					}
					if rng.IntN(10) == 0 && dl.After(h.now) {
						h.now = dl.Add(-time.Nanosecond)
						if acts := h.do(Tick{}); len(acts) != 0 || !h.m.Deadline().Equal(dl) {
							t.Fatalf("step %d: Tick before Deadline did %s", step, dump(acts))
						}
						continue
					}
					if dl.After(h.now) {
						h.now = dl
					}
					h.advance(time.Duration(rng.IntN(3)) * time.Millisecond)
					ev = Tick{}
				case r < 65:
					ev = Frame{Packet: kernelReply(p.mac, macSelf)}
				case r < 70:
					ev = Frame{Packet: peerAnnounce(p.mac, p.prio)}
				case r < 75:
					ev = Frame{Packet: peerProbe(p.mac, p.prio, arp.FlagClaiming)}
				case r < 80:
					ev = Frame{Packet: peerBeacon(p.mac, p.prio)}
				case r < 83:
					ev = Frame{Packet: peerRelease(p.mac, p.prio)}
				case r < 86:
					ev = Frame{Packet: arp.NewAnnouncement(macAlien, vip1, nil)}
				case r < 88:
					ev = LinkChanged{Up: rng.IntN(2) == 0}
				case r < 90:
					ev = AddrChanged{Addr: vip2, Present: rng.IntN(2) == 0}
				case r < 92:
					ev = ClaimFailed{Err: errors.New("boom")}
				case r < 93:
					ev = Stop{}
				default:
					h.advance(time.Duration(rng.IntN(20)) * time.Millisecond)
					continue
				}
				if _, ok := ev.(Frame); ok {
					h.advance(time.Duration(rng.IntN(5)) * time.Millisecond)
				}
				acts := h.do(ev)
				checkStep(t, h, step, ev, before, acts)
				if h.m.State() == StateStopped {
					return
				}
			}
		})
	}
}

func checkStep(t *testing.T, h *harness, step int, ev Event, before State, acts []Action) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d at %s, %T in %v: %s\n  actions %s", step, h.rel(h.now), ev, before, fmt.Sprintf(format, args...), dump(acts))
	}
	after := h.m.State()
	// Transitions chain from the state before to the state after.
	s := before
	for _, tr := range transitions(acts) {
		if tr.From != s {
			fail("transition from %v, machine was in %v", tr.From, s)
		}
		if tr.From == tr.To {
			fail("transition to the same state %v", tr.To)
		}
		if tr.Reason == "" {
			fail("transition without a reason")
		}
		s = tr.To
	}
	if s != after {
		fail("transitions end in %v, State() is %v", s, after)
	}
	// VIP bookkeeping: added exactly when (re)becoming or staying holder,
	// removed exactly when leaving the holder state.
	adds, removes := countOf[AddVIPs](acts), countOf[RemoveVIPs](acts)
	if before != StateHolder && after == StateHolder && adds == 0 {
		fail("became holder without AddVIPs")
	}
	if adds > 0 && after != StateHolder && removes == 0 {
		fail("AddVIPs but not holder")
	}
	if before == StateHolder && after != StateHolder && removes == 0 {
		fail("left holder without RemoveVIPs")
	}
	if removes > 0 && before != StateHolder {
		fail("RemoveVIPs while not holding")
	}
	if (after == StateHolder) != bytes.Equal(h.m.Holder(), macSelf) {
		fail("Holder() %v in state %v", h.m.Holder(), after)
	}
	// Every frame is ours and encodable; only a holder sends claims.
	for _, p := range sends(acts) {
		if !bytes.Equal(p.Source, macSelf) || !bytes.Equal(p.SenderHardwareAddr, macSelf) {
			fail("frame from %v/%v", p.Source, p.SenderHardwareAddr)
		}
		if p.Trailer == nil || p.Trailer.Priority != h.p.Priority || p.Trailer.NodeID != h.p.NodeID {
			fail("frame trailer %+v", p.Trailer)
		}
		if _, err := p.MarshalBinary(); err != nil {
			fail("frame does not marshal: %v", err)
		}
		if !p.IsProbe() && (after != StateHolder || p.Trailer.Flags&arp.FlagHolder == 0) {
			fail("claim %v sent in state %v", p.Trailer.Kind, after)
		}
		if p.IsProbe() && p.TargetIP != vip1 {
			fail("probe for %v", p.TargetIP)
		}
	}
	if n := countOf[Done](acts); n > 0 && (after != StateStopped || n != 1 || fmtAction(acts[len(acts)-1]) != "Done") {
		fail("Done misplaced")
	}
}
