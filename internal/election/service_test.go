package election

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// Tests of service.go: health, fencing, planned handover and preemption.

func withChecks() option { return func(p *Params) { p.HasChecks = true } }
func withKeep() option   { return func(p *Params) { p.KeepUnhealthy = true } }
func withFencing(f FencePolicy) option {
	return func(p *Params) { p.Fencing = f }
}
func withPreempt(delay time.Duration) option {
	return func(p *Params) { p.Preempt, p.PreemptDelay = true, delay }
}

// beaconFrom is a peer's beacon with explicit flags and node ID.
func beaconFrom(from net.HardwareAddr, prio, flags uint8, id uint32) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, &arp.Trailer{Kind: arp.KindBeacon, Priority: prio, Flags: flags, NodeID: id})
}

// holderBeacon is a holder's periodic check for a second holder: it tells
// standbys the holder's priority.
func holderBeacon(from net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindBeacon, prio, arp.FlagHolder))
}

// handoverTo is a holder's release sent unicast to one standby.
func handoverTo(from, to net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewProbe(from, to, vip1, tr(arp.KindRelease, prio, arp.FlagPassive))
}

func takeoverFrom(from, to net.HardwareAddr, prio, flags uint8) *arp.Packet {
	return arp.NewProbe(from, to, vip1, tr(arp.KindTakeover, prio, flags))
}

// notes returns the Notes whose message contains substr.
func notes(acts []Action, substr string) []Note {
	var ns []Note
	for _, a := range acts {
		if n, ok := a.(Note); ok && strings.Contains(n.Msg, substr) {
			ns = append(ns, n)
		}
	}
	return ns
}

func actionsOf[T Action](acts []Action) []T {
	var ts []T
	for _, a := range acts {
		if t, ok := a.(T); ok {
			ts = append(ts, t)
		}
	}
	return ts
}

// sentKind returns the frames of one kind.
func sentKind(acts []Action, kind arp.Kind) []*arp.Packet {
	var ps []*arp.Packet
	for _, p := range sends(acts) {
		if p.Trailer != nil && p.Trailer.Kind == kind {
			ps = append(ps, p)
		}
	}
	return ps
}

func isBroadcast(p *arp.Packet) bool { return bytes.Equal(p.Destination, arp.Broadcast) }

// indexOf returns the index of the first action for which f is true, or -1.
func indexOf(acts []Action, f func(Action) bool) int {
	for i, a := range acts {
		if f(a) {
			return i
		}
	}
	return -1
}

func isRemove(a Action) bool { _, ok := a.(RemoveVIPs); return ok }
func isRelease(a Action) bool {
	s, ok := a.(Send)
	return ok && s.Packet.Trailer != nil && s.Packet.Trailer.Kind == arp.KindRelease
}

// wantHandedAway checks that acts delete the VIP first and then send
// KindRelease frames, broadcast when to is nil, unicast to to otherwise.
func wantHandedAway(t *testing.T, acts []Action, to net.HardwareAddr) {
	t.Helper()
	ri, li := indexOf(acts, isRemove), indexOf(acts, isRelease)
	if ri < 0 || li < 0 || ri > li {
		t.Fatalf("want RemoveVIPs then release frames, got %s", dump(acts))
	}
	if countOf[AddVIPs](acts) != 0 {
		t.Fatalf("handing away re-added the VIP: %s", dump(acts))
	}
	for _, p := range sentKind(acts, arp.KindRelease) {
		switch {
		case to == nil && !isBroadcast(p):
			t.Fatalf("release sent to %v, want broadcast", p.Destination)
		case to != nil && !bytes.Equal(p.Destination, to):
			t.Fatalf("release sent to %v, want unicast to %v", p.Destination, to)
		}
		if !p.IsProbe() {
			t.Fatalf("release is not a probe: %+v", p)
		}
	}
}

// runAnswering runs the machine for d; the holder's kernel answers every
// probe we send at once.
func (h *harness) runAnswering(d time.Duration, holder net.HardwareAddr) []Action {
	h.t.Helper()
	end := h.now.Add(d)
	var all []Action
	for {
		dl := h.m.Deadline()
		if dl.IsZero() || dl.After(end) {
			break
		}
		acts := h.tick()
		all = append(all, acts...)
		if len(sends(acts)) > 0 {
			all = append(all, h.frame(kernelReply(holder, h.p.MAC))...)
		}
		if ndl := h.m.Deadline(); !ndl.IsZero() && !ndl.After(h.now) {
			h.t.Fatalf("state %v: Tick at %s left Deadline at %s", h.m.State(), h.rel(h.now), h.rel(ndl))
		}
	}
	h.now = end
	return all
}

// timedActs is what one event did, and when.
type timedActs struct {
	at   time.Time
	acts []Action
}

// runTimed is runFor keeping the time of each Tick's actions.
func (h *harness) runTimed(d time.Duration) []timedActs {
	h.t.Helper()
	end := h.now.Add(d)
	var all []timedActs
	for {
		dl := h.m.Deadline()
		if dl.IsZero() || dl.After(end) {
			break
		}
		acts := h.tick()
		all = append(all, timedActs{h.now, acts})
		if ndl := h.m.Deadline(); !ndl.IsZero() && !ndl.After(h.now) {
			h.t.Fatalf("state %v: Tick at %s left Deadline at %s", h.m.State(), h.rel(h.now), h.rel(ndl))
		}
	}
	h.now = end
	return all
}

// claimTime returns when a transition to holder happened, or zero.
func claimTime(ta []timedActs) time.Time {
	for _, e := range ta {
		for _, tr := range transitions(e.acts) {
			if tr.To == StateHolder {
				return e.at
			}
		}
	}
	return time.Time{}
}

func flatten(ta []timedActs) []Action {
	var all []Action
	for _, e := range ta {
		all = append(all, e.acts...)
	}
	return all
}

// healthyHolder returns a harness that holds the VIP (checks passing when
// the options include withChecks) and knows the given live peers.
func healthyHolder(t *testing.T, opts ...option) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	if h.p.HasChecks {
		h.do(Health{Healthy: true, Detail: "ok"})
	}
	h.becomeHolder()
	for range 2 { // the initial announcements
		h.tick()
	}
	h.advance(time.Millisecond)
	return h
}

// ---------------------------------------------------------------- health

func TestHealthFreshStartUnhealthyNeverClaims(t *testing.T) {
	h := newHarness(t, withChecks())
	if h.m.Healthy() {
		t.Fatal("a machine with checks starts healthy")
	}
	acts := h.do(Start{LinkUp: true})
	h.wantState(StateProbing)
	for _, p := range sends(acts) {
		if p.Trailer.Flags&arp.FlagPassive == 0 {
			t.Fatalf("first probe while unhealthy lacks FlagPassive: %+v", p.Trailer)
		}
	}
	// runFor fails if a Tick leaves the Deadline in the past (busy loop).
	ta := h.runTimed(5 * time.Second)
	all := flatten(ta)
	h.wantState(StateProbing)
	if n := countOf[AddVIPs](all); n != 0 {
		t.Fatalf("claimed while unhealthy: %s", dump(all))
	}
	if tr := transitions(all); len(tr) != 0 {
		t.Fatalf("transitions while unhealthy: %v", tr)
	}
	// It keeps probing, every CheckInterval, each probe passive.
	probes := sends(all)
	if want := int(5 * time.Second / h.p.Timing.CheckInterval); len(probes) < want-1 {
		t.Fatalf("%d probes in 5s, want about %d", len(probes), want)
	}
	for _, p := range probes {
		if p.Trailer.Flags&arp.FlagPassive == 0 || p.Trailer.Flags&arp.FlagClaiming != 0 {
			t.Fatalf("probe flags %#x while unhealthy, want passive only", p.Trailer.Flags)
		}
	}
	// The refusal is logged once, not every interval.
	if ns := notes(all, "not claiming"); len(ns) != 1 {
		t.Fatalf("%d 'not claiming' notes in 5s, want 1", len(ns))
	}
	// Ticks come one CheckInterval apart: the Deadline keeps moving.
	for i := 1; i < len(ta); i++ {
		if d := ta[i].at.Sub(ta[i-1].at); d <= 0 || d > h.p.Timing.CheckInterval {
			t.Fatalf("ticks %s and %s: gap %v", h.rel(ta[i-1].at), h.rel(ta[i].at), d)
		}
	}
}

func TestHealthKeepUnhealthyClaimsLate(t *testing.T) {
	// The normal time: no checks.
	base := newHarness(t)
	base.startFresh()
	normal := claimTime(base.runTimed(2 * time.Second))
	if normal.IsZero() {
		t.Fatal("baseline never claimed")
	}

	h := newHarness(t, withChecks(), withKeep())
	h.startFresh()
	ta := h.runTimed(2 * time.Second)
	at := claimTime(ta)
	// The extra wait, then the last check before a delayed claim (half a
	// claim slot).
	want := normal.Add(time.Duration(h.p.Timing.Misses)*h.p.Timing.CheckInterval + h.p.Timing.ClaimSlot/2)
	if !at.Equal(want) {
		t.Fatalf("unhealthy (keep) node claimed at %s, want %s (normal %s + Misses x CheckInterval + ClaimSlot/2)", h.rel(at), h.rel(want), h.rel(normal))
	}
	h.wantState(StateHolder)
	// It held on to it: nobody healthy is around.
	if n := countOf[RemoveVIPs](flatten(ta)); n != 0 {
		t.Fatalf("released with no healthy standby known: %s", dump(flatten(ta)))
	}
}

func TestHealthHealthyClaimsNormally(t *testing.T) {
	h := newHarness(t, withChecks())
	h.startFresh()
	h.runFor(time.Second)
	h.wantState(StateProbing)
	acts := h.do(Health{Healthy: true, Detail: "ok"})
	if !h.m.Healthy() || len(notes(acts, "healthy")) != 1 {
		t.Fatalf("Health{true}: healthy %v, actions %s", h.m.Healthy(), dump(acts))
	}
	from := h.now
	at := claimTime(h.runTimed(time.Second))
	if at.IsZero() || at.Sub(from) > h.p.Timing.CheckInterval {
		t.Fatalf("healthy again at %s, claimed at %s: want within a CheckInterval (misses already counted)", h.rel(from), h.rel(at))
	}
	h.wantState(StateHolder)

	// A fresh node whose checks pass before it starts claims at the normal time.
	h2 := newHarness(t, withChecks())
	h2.do(Health{Healthy: true})
	h2.startFresh()
	if at := claimTime(h2.runTimed(time.Second)); at.Sub(t0) != time.Duration(h2.p.Timing.Misses)*h2.p.Timing.CheckInterval {
		t.Fatalf("healthy from the start: claimed at %s", h2.rel(at))
	}
}

func TestHealthPassiveFlag(t *testing.T) {
	passive := func(acts []Action) (yes, no int) {
		for _, p := range sends(acts) {
			if p.Trailer.Flags&arp.FlagPassive != 0 {
				yes++
			} else {
				no++
			}
		}
		return
	}
	h := newHarness(t, withChecks())
	h.becomeStandby(macPeerA)
	if yes, no := passive(h.runAnswering(2*time.Second, macPeerA)); yes == 0 || no != 0 {
		t.Fatalf("unhealthy standby: %d passive and %d non-passive probes, want all passive", yes, no)
	}
	h.do(Health{Healthy: true})
	if yes, no := passive(h.runAnswering(2*time.Second, macPeerA)); yes != 0 || no == 0 {
		t.Fatalf("healthy standby: %d passive and %d non-passive probes, want none passive", yes, no)
	}
	h.do(Hold{On: true})
	if yes, no := passive(h.runAnswering(2*time.Second, macPeerA)); yes == 0 || no != 0 {
		t.Fatalf("held standby: %d passive and %d non-passive probes, want all passive", yes, no)
	}
	h.do(Hold{On: false})
	if yes, no := passive(h.runAnswering(2*time.Second, macPeerA)); yes != 0 || no == 0 {
		t.Fatalf("hold off: %d passive and %d non-passive probes, want none passive", yes, no)
	}
	h.wantState(StateStandby)
}

func TestHealthUnhealthyHolderReleasesToHealthyStandby(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "release policy", true: "keep policy"}[keep], func(t *testing.T) {
			opts := []option{withChecks()}
			if keep {
				opts = append(opts, withKeep())
			}
			h := healthyHolder(t, opts...)
			h.frame(beaconFrom(macPeerA, 50, 0, 7))  // a live, healthy, worse standby
			h.advance(2 * h.p.Timing.BeaconInterval) // still live: within 3 beacon intervals
			acts := h.do(Health{Healthy: false, Detail: "http check failed"})
			wantHandedAway(t, acts, nil)
			h.wantState(StateStandby)
			if len(sentKind(acts, arp.KindRelease)) == 0 {
				t.Fatalf("no release frame: %s", dump(acts))
			}
			if h.m.Holder() != nil {
				t.Fatalf("Holder() = %v after releasing", h.m.Holder())
			}
		})
	}
}

func TestHealthUnhealthyHolderKeepsWithoutHealthyStandby(t *testing.T) {
	h := healthyHolder(t, withChecks(), withKeep())
	// Known peers that do not count: a passive one, and a healthy one heard
	// more than 3 beacon intervals ago.
	h.frame(beaconFrom(macPeerB, 50, 0, 8))
	h.runFor(3*h.p.Timing.BeaconInterval + time.Millisecond)
	h.frame(beaconFrom(macPeerC, 60, arp.FlagPassive, 9))
	renew := h.p.Timing.RenewInterval
	acts := h.do(Health{Healthy: false, Detail: "down"})
	acts = append(acts, h.runFor(5*renew)...)
	h.frame(beaconFrom(macPeerC, 60, arp.FlagPassive, 9))
	acts = append(acts, h.runFor(2*renew)...)
	h.wantState(StateHolder)
	if n := countOf[RemoveVIPs](acts); n != 0 {
		t.Fatalf("released with no healthy standby known: %s", dump(acts))
	}
	if countOf[AddVIPs](acts) < 5 { // of 6 or 7 due in 7 renew intervals
		t.Fatalf("stopped renewing while keeping the VIP: %s", dump(acts))
	}
	var errs []Note
	for _, n := range actionsOf[Note](acts) {
		if n.Level == slog.LevelError {
			errs = append(errs, n)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "keeping the VIP") {
		t.Fatalf("error notes %+v, want exactly one about keeping the VIP", errs)
	}

	t.Run("healthy standby's beacon frame", func(t *testing.T) {
		h := *h
		h.m = cloneMachine(h.m)
		h.t = t
		h.advance(3 * time.Millisecond)
		acts := h.frame(beaconFrom(macPeerA, 40, 0, 7))
		acts = append(acts, h.runFor(h.p.Timing.BeaconInterval)...)
		if countOf[RemoveVIPs](acts) == 0 {
			t.Fatalf("healthy standby appeared, VIP kept: %s", dump(acts))
		}
		wantHandedAway(t, acts, nil)
		if h.m.State() == StateHolder {
			t.Fatalf("still holder")
		}
	})

	t.Run("healthy again", func(t *testing.T) {
		h := *h
		h.m = cloneMachine(h.m)
		h.t = t
		acts := h.do(Health{Healthy: true})
		acts = append(acts, h.runFor(3*time.Second)...)
		h.wantState(StateHolder)
		if countOf[RemoveVIPs](acts) != 0 {
			t.Fatalf("released after turning healthy: %s", dump(acts))
		}
	})
}

// cloneMachine copies a machine for sub-scenarios (the peer table is the
// only shared reference that changes).
func cloneMachine(m *Machine) *Machine {
	c := *m
	c.peers = make(map[string]*peer, len(m.peers))
	for k, p := range m.peers {
		pc := *p
		c.peers[k] = &pc
	}
	return &c
}

func TestHealthUnhealthyHolderReleasesWithoutKeep(t *testing.T) {
	h := healthyHolder(t, withChecks())
	acts := h.do(Health{Healthy: false})
	wantHandedAway(t, acts, nil)
	h.wantState(StateStandby)
	// Nobody takes it, and we do not take it back while unhealthy.
	acts = h.runFor(5 * time.Second)
	if countOf[AddVIPs](acts) != 0 || h.m.State() == StateHolder {
		t.Fatalf("an unhealthy node took the VIP back: %s", dump(acts))
	}
	if ns := notes(acts, "not claiming"); len(ns) != 1 {
		t.Fatalf("%d refusal notes, want 1", len(ns))
	}
}

func TestHealthUnhealthyStandbyDoesNotClaimWithHealthyPeer(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "release policy", true: "keep policy"}[keep], func(t *testing.T) {
			opts := []option{withChecks(), withPriority(200)}
			if keep {
				opts = append(opts, withKeep())
			}
			h := newHarness(t, opts...)
			h.becomeStandby(macPeerA)
			h.frame(holderBeacon(macPeerA, 100))
			h.frame(beaconFrom(macPeerB, 50, 0, 8)) // healthy, worse than us
			h.runAnswering(500*time.Millisecond, macPeerA)
			// The holder vanishes; B keeps beaconing.
			var acts []Action
			for range 8 {
				acts = append(acts, h.runFor(500*time.Millisecond)...)
				h.frame(beaconFrom(macPeerB, 50, 0, 8))
			}
			if countOf[AddVIPs](acts) != 0 || countOf[Fence](acts) != 0 {
				t.Fatalf("unhealthy standby claimed with a healthy peer around: %s", dump(acts))
			}
			for _, tr := range transitions(acts) {
				t.Fatalf("unhealthy standby made transition %v->%v: %s", tr.From, tr.To, tr.Reason)
			}
			for _, p := range sends(acts) {
				if p.Trailer.Flags&arp.FlagClaiming != 0 {
					t.Fatalf("unhealthy standby sent a claiming probe")
				}
			}
			if ns := notes(acts, "not claiming"); len(ns) != 1 {
				t.Fatalf("%d refusal notes in 4s, want 1", len(ns))
			}
		})
	}
}

// ---------------------------------------------------------------- fencing

// silentHolder returns a standby of macPeerA that heard it answer last at
// the returned time, then lets it go silent until the state changes.
func silentHolder(t *testing.T, opts ...option) (h *harness, lastSeen time.Time, acts []Action) {
	t.Helper()
	h = newHarness(t, opts...)
	h.becomeStandby(macPeerA)
	h.frame(holderBeacon(macPeerA, 150))
	for range 5 {
		h.tick()
		h.advance(2 * time.Millisecond)
		h.frame(kernelReply(macPeerA, macSelf))
	}
	lastSeen = h.now
	for h.m.State() == StateStandby {
		if h.now.Sub(lastSeen) > time.Second {
			t.Fatalf("standby never noticed the silence")
		}
		acts = h.tick()
	}
	return h, lastSeen, acts
}

func TestFenceRequiredSilentHolder(t *testing.T) {
	h, lastSeen, acts := silentHolder(t, withFencing(FenceRequired))
	h.wantState(StateFencing)
	fences := actionsOf[Fence](acts)
	if len(fences) != 1 || !bytes.Equal(fences[0].MAC, macPeerA) || !fences[0].LastSeen.Equal(lastSeen) {
		t.Fatalf("Fence actions %+v, want one for %v last seen %s: %s", fences, macPeerA, h.rel(lastSeen), dump(acts))
	}
	if countOf[AddVIPs](acts) != 0 {
		t.Fatalf("added the VIP before fencing: %s", dump(acts))
	}
	if want := int(h.p.Timing.Misses) * int(h.p.Timing.CheckInterval); h.now.Sub(lastSeen) > time.Duration(want)+h.p.Timing.CheckInterval {
		t.Fatalf("noticed the silence at %s, last answer at %s", h.rel(h.now), h.rel(lastSeen))
	}
	claims := func(acts []Action) int {
		n := 0
		for _, p := range sends(acts) {
			if p.Trailer.Flags&arp.FlagClaiming != 0 && p.IsProbe() && isBroadcast(p) {
				n++
			}
		}
		return n
	}
	if claims(acts) != 1 {
		t.Fatalf("no claiming probe on entering fencing: %s", dump(acts))
	}
	// While the fence runs: a claiming probe every CheckInterval, nothing else.
	ta := h.runTimed(500 * time.Millisecond)
	all := flatten(ta)
	if n := claims(all); n != 10 {
		t.Fatalf("%d claiming probes in 500ms, want 10: %s", n, dump(all))
	}
	for _, e := range ta {
		if claims(e.acts) != 1 {
			t.Fatalf("tick at %s: %s", h.rel(e.at), dump(e.acts))
		}
	}
	if countOf[AddVIPs](all) != 0 || countOf[Fence](all) != 0 || len(transitions(all)) != 0 {
		t.Fatalf("while fencing: %s", dump(all))
	}
	h.wantState(StateFencing)

	acts = h.do(FenceResult{Attempt: h.m.fenceAttempt})
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 || len(sentKind(acts, arp.KindAnnounce)) == 0 {
		t.Fatalf("fenced: %s", dump(acts))
	}
	if tr := transitions(acts); len(tr) != 1 || tr[0].From != StateFencing {
		t.Fatalf("transitions %v", tr)
	}
	// A late duplicate result does nothing.
	if acts := h.do(FenceResult{Attempt: h.m.fenceAttempt}); len(acts) != 0 {
		t.Fatalf("second FenceResult: %s", dump(acts))
	}
}

func TestFenceRequiredFailureBacksOff(t *testing.T) {
	h, _, acts := silentHolder(t, withFencing(FenceRequired))
	h.wantState(StateFencing)
	boom := errors.New("pdu unreachable")
	var fenceAt []time.Time
	if countOf[Fence](acts) == 1 {
		fenceAt = append(fenceAt, h.now)
	}
	var all []Action
	for len(fenceAt) < 5 {
		if h.now.Sub(t0) > time.Minute {
			t.Fatalf("fence retries stopped: %v", fenceAt)
		}
		h.advance(30 * time.Millisecond) // the fence command takes a while
		acts := h.do(FenceResult{Attempt: h.m.fenceAttempt, Err: boom})
		if len(notes(acts, "fencing failed")) != 1 {
			t.Fatalf("failure not logged: %s", dump(acts))
		}
		all = append(all, acts...)
		h.wantState(StateFencing)
		for {
			acts := h.tick()
			all = append(all, acts...)
			h.wantState(StateFencing)
			if countOf[Fence](acts) > 0 {
				fenceAt = append(fenceAt, h.now)
				break
			}
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := fenceAt[i+1].Sub(fenceAt[i]) - 30*time.Millisecond; got != want {
			t.Errorf("retry %d came %v after the failure, want %v", i+1, got, want)
		}
	}
	if countOf[AddVIPs](all) != 0 {
		t.Fatalf("added the VIP while fencing kept failing")
	}
	// Claiming probes went on all along.
	if n := len(sends(all)); n < int(fenceAt[4].Sub(fenceAt[0])/h.p.Timing.CheckInterval)-1 {
		t.Fatalf("only %d claiming probes in %v", n, fenceAt[4].Sub(fenceAt[0]))
	}
	// Eventually it works.
	h.advance(time.Millisecond)
	h.do(FenceResult{Attempt: h.m.fenceAttempt})
	h.wantState(StateHolder)
}

func TestFenceOldHolderAnswers(t *testing.T) {
	h, _, _ := silentHolder(t, withFencing(FenceRequired))
	h.wantState(StateFencing)
	h.runFor(120 * time.Millisecond)
	// Our claiming probe is answered by the old holder's kernel.
	acts := h.frame(kernelReply(macPeerA, macSelf))
	h.wantState(StateStandby)
	if countOf[AddVIPs](acts) != 0 || len(notes(acts, "answers again")) != 1 {
		t.Fatalf("old holder answered: %s", dump(acts))
	}
	if !bytes.Equal(h.m.Holder(), macPeerA) {
		t.Fatalf("Holder() = %v", h.m.Holder())
	}
	// The fence, still running, succeeds late: ignored.
	if acts := h.do(FenceResult{Attempt: h.m.fenceAttempt}); countOf[AddVIPs](acts) != 0 || h.m.State() != StateStandby {
		t.Fatalf("late fence result: %s", dump(acts))
	}
	acts = h.runAnswering(2*time.Second, macPeerA)
	h.wantState(StateStandby)
	if countOf[AddVIPs](acts) != 0 || countOf[Fence](acts) != 0 {
		t.Fatalf("%s", dump(acts))
	}
}

func TestFenceBestEffortFailureTakesOver(t *testing.T) {
	h, _, acts := silentHolder(t, withFencing(FenceBestEffort))
	h.wantState(StateFencing)
	if countOf[Fence](acts) != 1 {
		t.Fatalf("best-effort did not fence: %s", dump(acts))
	}
	h.advance(100 * time.Millisecond)
	acts = h.do(FenceResult{Attempt: h.m.fenceAttempt, Err: errors.New("timeout")})
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 || len(notes(acts, "fencing failed")) != 1 {
		t.Fatalf("best-effort failure: %s", dump(acts))
	}
}

func TestFenceOffNoFence(t *testing.T) {
	h, _, acts := silentHolder(t)
	h.wantState(StateHolder)
	if countOf[Fence](acts) != 0 || countOf[AddVIPs](acts) == 0 {
		t.Fatalf("fencing off: %s", dump(acts))
	}
}

func TestFenceReleasedHolderNotFenced(t *testing.T) {
	t.Run("rank 0", func(t *testing.T) {
		h := newHarness(t, withFencing(FenceRequired))
		h.becomeStandby(macPeerA)
		h.runAnswering(300*time.Millisecond, macPeerA)
		h.advance(5 * time.Millisecond)
		acts := h.frame(peerRelease(macPeerA, 150))
		h.wantState(StateHolder)
		if countOf[Fence](acts) != 0 || countOf[AddVIPs](acts) == 0 {
			t.Fatalf("released holder: %s", dump(acts))
		}
	})
	t.Run("after waiting our slot", func(t *testing.T) {
		h := newHarness(t, withFencing(FenceRequired))
		h.frame(peerBeacon(macPeerB, 200)) // a better standby, which never claims
		h.becomeStandby(macPeerA)
		h.runAnswering(300*time.Millisecond, macPeerA)
		h.frame(peerBeacon(macPeerB, 200))
		acts := h.frame(peerRelease(macPeerA, 150))
		h.wantState(StateCandidate)
		acts = append(acts, h.runFor(time.Second)...)
		h.wantState(StateHolder)
		if countOf[Fence](acts) != 0 {
			t.Fatalf("released holder fenced: %s", dump(acts))
		}
	})
	t.Run("an earlier silence does not stick", func(t *testing.T) {
		// The holder went silent once (we were held then), came back, and
		// now releases: nothing to fence.
		h := newHarness(t, withFencing(FenceRequired))
		h.becomeStandby(macPeerA)
		h.do(Hold{On: true})
		h.runFor(500 * time.Millisecond)
		h.do(Hold{On: false})
		h.runAnswering(300*time.Millisecond, macPeerA)
		acts := h.frame(peerRelease(macPeerA, 150))
		if countOf[Fence](acts) != 0 || h.m.State() != StateHolder {
			t.Fatalf("released holder: %s", dump(acts))
		}
	})
}

// A worse candidate waits while a better node fences: the better one's
// claiming probes keep pushing its claim time.
func TestFenceWorseCandidateWaitsForFencingPeer(t *testing.T) {
	setup := func(t *testing.T) *harness {
		h := newHarness(t, withFencing(FenceRequired))
		h.frame(peerBeacon(macPeerB, 200)) // better standby
		h.becomeStandby(macPeerA)
		h.frame(holderBeacon(macPeerA, 150))
		h.runAnswering(300*time.Millisecond, macPeerA)
		h.frame(peerBeacon(macPeerB, 200))
		return h
	}
	// feed sends B's claiming probe every CheckInterval from now, for d,
	// ticking in between; it returns everything we did.
	feed := func(h *harness, d time.Duration) []Action {
		var all []Action
		end := h.now.Add(d)
		for h.now.Before(end) {
			all = append(all, h.frame(peerProbe(macPeerB, 200, arp.FlagClaiming))...)
			all = append(all, h.runFor(h.p.Timing.CheckInterval)...)
		}
		return all
	}
	wantNoClaim := func(t *testing.T, h *harness, acts []Action) {
		t.Helper()
		if countOf[AddVIPs](acts) != 0 || countOf[Fence](acts) != 0 {
			var at []string
			for _, tr := range transitions(acts) {
				at = append(at, tr.From.String()+"->"+tr.To.String())
			}
			t.Fatalf("BUG: claimed (or fenced) while a better node is fencing and sending claiming probes every %v: transitions %v, actions %s",
				h.p.Timing.CheckInterval, at, dump(acts))
		}
	}

	t.Run("already candidate", func(t *testing.T) {
		h := setup(t)
		var acts []Action
		for h.m.State() == StateStandby {
			acts = append(acts, h.tick()...)
		}
		h.wantState(StateCandidate)
		if !strings.Contains(transitions(acts)[0].Reason, "rank 1") {
			t.Fatalf("reason %q", transitions(acts)[0].Reason)
		}
		h.advance(5 * time.Millisecond)
		acts = feed(h, 3*time.Second)
		wantNoClaim(t, h, acts)
		h.wantState(StateCandidate)
		// The better one took over: we follow.
		h.frame(peerAnnounce(macPeerB, 200))
		h.wantState(StateStandby)
		// Had the claiming probes stopped, we would have claimed.
		h2 := setup(t)
		for h2.m.State() == StateStandby {
			h2.tick()
		}
		h2.frame(peerProbe(macPeerB, 200, arp.FlagClaiming))
		h2.runFor(time.Second)
		h2.wantState(StateFencing)
	})

	t.Run("claiming probe seen while still standby", func(t *testing.T) {
		// B noticed the silence first and is fencing; its claiming probe
		// reaches us just before our own last unanswered check. B's next
		// claiming probe comes a CheckInterval (50ms) later, but our slot is
		// ClaimSlot (20ms).
		h := setup(t)
		for h.m.misses == 0 || h.m.confirmLeft > 1 { // the holder no longer answers
			h.tick()
		}
		h.wantState(StateStandby)
		h.now = h.m.Deadline().Add(-h.m.confirmInterval() / 2)
		acts := feed(h, 3*time.Second)
		wantNoClaim(t, h, acts)
	})
}

// ---------------------------------------------------------------- handover

func TestHandoverToBestLiveStandby(t *testing.T) {
	h := healthyHolder(t)
	h.frame(beaconFrom(macPeerA, 50, 0, 7))
	h.frame(beaconFrom(macPeerB, 80, 0, 8))
	h.frame(beaconFrom(macPeerC, 250, arp.FlagPassive, 9)) // better but passive
	h.advance(10 * time.Millisecond)
	acts := h.do(Handover{})
	wantHandedAway(t, acts, macPeerB)
	if n := len(sentKind(acts, arp.KindRelease)); n == 0 {
		t.Fatalf("no release frame")
	}
	h.wantState(StateStandby)
	if !bytes.Equal(h.m.Holder(), macPeerB) {
		t.Fatalf("Holder() = %v, want %v", h.m.Holder(), macPeerB)
	}
	if countOf[Refused](acts) != 0 {
		t.Fatalf("refused: %s", dump(acts))
	}
}

func TestHandoverToNamedNode(t *testing.T) {
	h := healthyHolder(t)
	h.frame(beaconFrom(macPeerA, 50, 0, 7))
	h.frame(beaconFrom(macPeerB, 80, 0, 8))
	acts := h.do(Handover{To: 7})
	wantHandedAway(t, acts, macPeerA)
	h.wantState(StateStandby)
}

func TestHandoverRefused(t *testing.T) {
	t.Run("no standby at all", func(t *testing.T) {
		h := healthyHolder(t)
		acts := h.do(Handover{})
		wantRefused(t, h, acts)
	})
	t.Run("standby not live", func(t *testing.T) {
		h := healthyHolder(t)
		h.frame(beaconFrom(macPeerA, 50, 0, 7))
		h.runFor(3*h.p.Timing.BeaconInterval + time.Millisecond)
		wantRefused(t, h, h.do(Handover{}))
	})
	t.Run("only passive standbys", func(t *testing.T) {
		h := healthyHolder(t)
		h.frame(beaconFrom(macPeerA, 50, arp.FlagPassive, 7))
		wantRefused(t, h, h.do(Handover{}))
	})
	t.Run("unknown node ID", func(t *testing.T) {
		h := healthyHolder(t)
		h.frame(beaconFrom(macPeerA, 50, 0, 7))
		wantRefused(t, h, h.do(Handover{To: 99}))
	})
	t.Run("named node passive", func(t *testing.T) {
		h := healthyHolder(t)
		h.frame(beaconFrom(macPeerA, 50, 0, 7))
		h.frame(beaconFrom(macPeerB, 80, arp.FlagPassive, 8))
		wantRefused(t, h, h.do(Handover{To: 8}))
	})
	t.Run("not holder", func(t *testing.T) {
		h := newHarness(t)
		h.becomeStandby(macPeerA)
		h.frame(beaconFrom(macPeerB, 80, 0, 8))
		acts := h.do(Handover{})
		if r := actionsOf[Refused](acts); len(r) != 1 || r[0].Reason == "" || len(acts) != 1 {
			t.Fatalf("handover as standby: %s", dump(acts))
		}
		h.wantState(StateStandby)
	})
}

func wantRefused(t *testing.T, h *harness, acts []Action) {
	t.Helper()
	if r := actionsOf[Refused](acts); len(r) != 1 || r[0].Reason == "" {
		t.Fatalf("want one Refused with a reason: %s", dump(acts))
	}
	if countOf[RemoveVIPs](acts) != 0 || len(sends(acts)) != 0 || len(transitions(acts)) != 0 {
		t.Fatalf("refused handover still did %s", dump(acts))
	}
	h.wantState(StateHolder)
}

func TestHandoverReceived(t *testing.T) {
	t.Run("to us: claim at once regardless of rank", func(t *testing.T) {
		h := newHarness(t, withFencing(FenceRequired))
		h.frame(peerBeacon(macPeerB, 250)) // a better live standby
		h.becomeStandby(macPeerA)
		h.frame(holderBeacon(macPeerA, 150))
		h.runAnswering(200*time.Millisecond, macPeerA)
		h.frame(peerBeacon(macPeerB, 250))
		h.advance(3 * time.Millisecond)
		acts := h.frame(handoverTo(macPeerA, macSelf, 150))
		h.wantState(StateHolder)
		if countOf[AddVIPs](acts) == 0 || countOf[Fence](acts) != 0 {
			t.Fatalf("handover to us: %s", dump(acts))
		}
		if idx := indexOf(acts, func(a Action) bool { _, ok := a.(AddVIPs); return ok }); idx > 2 {
			t.Fatalf("AddVIPs not first: %s", dump(acts))
		}
		// The second copy of the release changes nothing.
		h.advance(time.Millisecond)
		if acts := h.frame(handoverTo(macPeerA, macSelf, 150)); countOf[RemoveVIPs](acts) != 0 || len(transitions(acts)) != 0 {
			t.Fatalf("second copy: %s", dump(acts))
		}
		h.wantState(StateHolder)
	})
	t.Run("to another node, flooded to us", func(t *testing.T) {
		h := newHarness(t, withPriority(250))
		h.becomeStandby(macPeerA)
		h.frame(holderBeacon(macPeerA, 150))
		h.runAnswering(200*time.Millisecond, macPeerA)
		acts := h.frame(handoverTo(macPeerA, macPeerB, 150))
		h.wantState(StateStandby)
		if len(acts) != 0 {
			t.Fatalf("flooded handover to another node: %s", dump(acts))
		}
		// The new holder announces; we follow it.
		h.advance(time.Millisecond)
		h.frame(peerAnnounce(macPeerB, 50))
		acts = h.runAnswering(time.Second, macPeerB)
		h.wantState(StateStandby)
		if len(transitions(acts)) != 0 || !bytes.Equal(h.m.Holder(), macPeerB) {
			t.Fatalf("after the handover: holder %v, %s", h.m.Holder(), dump(acts))
		}
	})
	for _, c := range []struct {
		name string
		opts []option
		prep func(h *harness)
	}{
		{"held", nil, func(h *harness) { h.do(Hold{On: true}) }},
		{"unhealthy", []option{withChecks()}, nil},
	} {
		t.Run("passive ("+c.name+") standby does not claim", func(t *testing.T) {
			h := newHarness(t, c.opts...)
			h.becomeStandby(macPeerA)
			if c.prep != nil {
				c.prep(h)
			}
			acts := h.frame(handoverTo(macPeerA, macSelf, 150))
			if countOf[AddVIPs](acts) != 0 || len(transitions(acts)) != 0 {
				t.Fatalf("passive standby handed the VIP: %s", dump(acts))
			}
			h.wantState(StateStandby)
			if acts := h.runFor(2 * time.Second); countOf[AddVIPs](acts) != 0 {
				t.Fatalf("passive standby claimed later: %s", dump(acts))
			}
		})
	}
}

// ---------------------------------------------------------------- preemption

// preemptStandby is a standby with Preempt (delay 2s) and priority 200
// whose holder has priority holderPrio.
func preemptStandby(t *testing.T, holder net.HardwareAddr, holderPrio uint8, opts ...option) *harness {
	t.Helper()
	h := newHarness(t, append([]option{withPriority(200), withPreempt(2 * time.Second)}, opts...)...)
	h.becomeStandby(holder)
	h.frame(holderBeacon(holder, holderPrio))
	return h
}

// takeoverTimes runs for d, the holder answering every frame we send, and
// returns when we sent a takeover request (each checked to go unicast to
// the holder).
func takeoverTimes(t *testing.T, h *harness, d time.Duration, holder net.HardwareAddr) []time.Time {
	t.Helper()
	var at []time.Time
	end := h.now.Add(d)
	for {
		dl := h.m.Deadline()
		if dl.After(end) {
			break
		}
		acts := h.tick()
		for _, p := range sentKind(acts, arp.KindTakeover) {
			if !bytes.Equal(p.Destination, holder) || !p.IsProbe() || p.Trailer.Flags != 0 {
				t.Fatalf("takeover frame to %v: %+v %+v", p.Destination, p, p.Trailer)
			}
			at = append(at, h.now)
		}
		if len(sends(acts)) > 0 {
			h.frame(kernelReply(holder, h.p.MAC))
		}
		if ndl := h.m.Deadline(); !ndl.After(h.now) {
			t.Fatalf("Tick at %s left Deadline at %s", h.rel(h.now), h.rel(ndl))
		}
	}
	h.now = end
	return at
}

func TestPreemptAsksWorseHolder(t *testing.T) {
	h := preemptStandby(t, macPeerA, 100)
	at := takeoverTimes(t, h, 5*time.Second, macPeerA)
	if len(at) < 3 {
		t.Fatalf("takeover requests at %v, want from about t0+2s every 1s", at)
	}
	if first := at[0].Sub(t0); first < 2*time.Second || first > 2*time.Second+h.p.Timing.CheckInterval {
		t.Fatalf("first takeover at %s, want 2s after becoming standby (within a CheckInterval)", h.rel(at[0]))
	}
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d != time.Second {
			t.Fatalf("takeover %d came %v after the previous one, want 1s", i, d)
		}
	}
	h.wantState(StateStandby)
}

func TestPreemptNot(t *testing.T) {
	for _, c := range []struct {
		name       string
		holder     net.HardwareAddr
		holderPrio uint8
		opts       []option
		prep       func(h *harness)
	}{
		{"holder better", macPeerA, 250, nil, nil},
		{"holder equal priority, lower MAC", macLow, 200, nil, nil},
		{"held", macPeerA, 100, nil, func(h *harness) { h.do(Hold{On: true}) }},
		{"unhealthy", macPeerA, 100, []option{withChecks()}, nil},
		{"without Preempt", macPeerA, 100, []option{func(p *Params) { p.Preempt = false }}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := preemptStandby(t, c.holder, c.holderPrio, c.opts...)
			if c.prep != nil {
				c.prep(h)
			}
			if at := takeoverTimes(t, h, 5*time.Second, c.holder); len(at) != 0 {
				t.Fatalf("takeover requests at %v", at)
			}
		})
	}
	t.Run("holder turns out better later", func(t *testing.T) {
		h := preemptStandby(t, macPeerA, 100)
		h.runAnswering(1500*time.Millisecond, macPeerA)
		h.frame(holderBeacon(macPeerA, 255)) // reconfigured
		if at := takeoverTimes(t, h, 4*time.Second, macPeerA); len(at) != 0 {
			t.Fatalf("takeover requests at %v", at)
		}
	})
	t.Run("unhealthy stops requests", func(t *testing.T) {
		h := preemptStandby(t, macPeerA, 100, withChecks())
		h.do(Health{Healthy: true})
		if at := takeoverTimes(t, h, 3*time.Second, macPeerA); len(at) == 0 {
			t.Fatalf("healthy: no takeover request")
		}
		h.do(Health{Healthy: false})
		if at := takeoverTimes(t, h, 3*time.Second, macPeerA); len(at) != 0 {
			t.Fatalf("unhealthy: takeover requests at %v", at)
		}
	})
}

// PreemptDelay 0 is valid config ("0 or more"). The Tick that arms the
// preemption timer must not leave the Deadline at the Tick itself: the
// daemon would wake up again at once (the invariant of
// TestDeadlineMovesPastTick).
func TestPreemptZeroDelayDeadlineMoves(t *testing.T) {
	h := preemptStandby(t, macPeerA, 100, withPreempt(0))
	for range 20 {
		acts := h.tick()
		if ndl := h.m.Deadline(); !ndl.After(h.now) {
			t.Fatalf("BUG (minor): with PreemptDelay 0 the Tick at %s (%s) left Deadline at %s: preemptTick arms preemptAt = now + 0 "+
				"and only acts on it at the next Tick, so the daemon wakes up again at once", h.rel(h.now), dump(acts), h.rel(ndl))
		}
		if len(sends(acts)) > 0 {
			h.frame(kernelReply(macPeerA, macSelf))
		}
	}
}

func TestPreemptHolderHandsOver(t *testing.T) {
	t.Run("preempt off here: ignored", func(t *testing.T) {
		// Only preempting standbys send Takeover; a holder configured
		// without preempt does not obey one (forged or not).
		h := healthyHolder(t)
		acts := h.frame(takeoverFrom(macPeerA, macSelf, 120, 0))
		h.wantState(StateHolder)
		if countOf[RemoveVIPs](acts) != 0 || len(sends(acts)) != 0 || len(notes(acts, "preempt is off")) != 1 || h.m.Stats().Ignored != 1 {
			t.Fatalf("takeover with preempt off: %s, ignored %d", dump(acts), h.m.Stats().Ignored)
		}
	})
	t.Run("better peer", func(t *testing.T) {
		h := healthyHolder(t, withPreempt(time.Second))
		h.frame(beaconFrom(macPeerB, 150, 0, 8)) // another, better, live standby
		acts := h.frame(takeoverFrom(macPeerA, macSelf, 120, 0))
		wantHandedAway(t, acts, macPeerA)
		h.wantState(StateStandby)
		if !bytes.Equal(h.m.Holder(), macPeerA) {
			t.Fatalf("Holder() = %v", h.m.Holder())
		}
	})
	for _, c := range []struct {
		name        string
		prio, flags uint8
	}{
		{"worse peer", 50, 0},
		{"equal priority, higher MAC", 100, 0},
		{"passive better peer", 200, arp.FlagPassive},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := healthyHolder(t, withPreempt(time.Second))
			from := macPeerA
			acts := h.frame(takeoverFrom(from, macSelf, c.prio, c.flags))
			h.wantState(StateHolder)
			if countOf[RemoveVIPs](acts) != 0 || len(sentKind(acts, arp.KindRelease)) != 0 {
				t.Fatalf("handed over to a %s: %s", c.name, dump(acts))
			}
			if acts := h.runFor(2 * time.Second); countOf[RemoveVIPs](acts) != 0 {
				t.Fatalf("released later: %s", dump(acts))
			}
		})
	}
}

// ---------------------------------------------------------------- simulated LAN

// configure rebuilds every node's machine with changed parameters.
func (l *lan) configure(f func(i int, p *Params)) {
	for i, n := range l.nodes {
		p := n.m.p
		f(i, &p)
		n.m = New(p)
	}
}

func (l *lan) wantNoDoubleKernel() {
	l.t.Helper()
	if l.maxKernels > 1 {
		l.t.Fatalf("two kernels had the VIP at once at %v\n%s", l.doubleKernelAt, l.dumpTrace(60))
	}
}

// claimedAfter returns n's transitions to fencing or holder (claiming, not
// just waiting its turn as a candidate) at or after from.
func (n *simNode) claimedAfter(from time.Time) []simTrans {
	var ts []simTrans
	for _, tr := range n.transitionsAfter(from) {
		if tr.To == StateFencing || tr.To == StateHolder {
			ts = append(ts, tr)
		}
	}
	return ts
}

// (1) A better node with preemption joins: it takes the VIP over after
// PreemptDelay, and never do two kernels have it.
func TestSimPreempt(t *testing.T) {
	tm := defaultTiming()
	for _, join := range []time.Duration{2100 * time.Millisecond, 2500 * time.Millisecond, 3 * time.Second} {
		t.Run("join at "+join.String(), func(t *testing.T) {
			l := newLAN(t, tm, 100, 200)
			// preempt is a cluster-wide setting: the holder must allow it too.
			l.configure(func(i int, p *Params) { p.Preempt, p.PreemptDelay = true, time.Second })
			l.delay = func(from, to int) time.Duration { return 200 * time.Microsecond }
			l.start(0, 0)
			l.start(1, join)
			l.runUntil(join - time.Millisecond)
			l.wantSoleHolder(l.nodes[0])
			l.runUntil(join + 6*time.Second)
			l.wantSoleHolder(l.nodes[1])
			l.wantNoDoubleHolder()
			l.wantNoDoubleKernel()
			n, at := l.firstHolder(t0.Add(join))
			if n != l.nodes[1] {
				t.Fatalf("first holder after the join: %s", n)
			}
			took := at.Sub(t0.Add(join))
			// Its PreemptDelay, after learning the holder's priority from
			// the holder's next beacon (up to BeaconInterval).
			if lo, hi := time.Second, time.Second+tm.BeaconInterval+2*tm.CheckInterval; took < lo || took > hi {
				t.Fatalf("n1 took over %v after joining, want between %v and %v\n%s", took, lo, hi, l.dumpTrace(30))
			}
			if tr := l.nodes[0].transitionsAfter(at.Add(time.Millisecond)); len(tr) != 0 {
				t.Fatalf("n0 flapped after the takeover: %v", tr)
			}
			l.report("preempt: n1 joined at %v, holds %v later", join, took)
		})
	}
}

// (2) Handover by node ID to the lowest-priority standby.
func TestSimHandoverToLowest(t *testing.T) {
	l := settled(t, defaultTiming(), 300*time.Microsecond)
	at := 2*time.Second + 123*time.Millisecond
	l.at(at, func() { l.handle(l.nodes[0], Handover{To: l.nodes[2].m.p.NodeID}) })
	l.runUntil(at + 3*time.Second)
	if r := l.nodes[0].refused; len(r) != 0 {
		t.Fatalf("handover refused: %+v", r)
	}
	l.wantSoleHolder(l.nodes[2])
	l.wantNoDoubleHolder()
	l.wantNoDoubleKernel()
	if ts := l.nodes[1].transitionsAfter(t0.Add(at)); len(ts) != 0 {
		t.Fatalf("the middle node moved (it should just follow the new holder): %v\n%s", ts, l.dumpTrace(30))
	}
	n, when := l.firstHolder(t0.Add(at))
	if n != l.nodes[2] || when.Sub(t0.Add(at)) > 5*time.Millisecond {
		t.Fatalf("first holder %s at %s", n, l.rel(when))
	}
	l.report("handover to the lowest: %s holds %v after the request", n, when.Sub(t0.Add(at)))
}

// (3) The holder turns unhealthy with two healthy standbys: the best one
// holds at once.
func TestSimUnhealthyHolder(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "release policy", true: "keep policy"}[keep], func(t *testing.T) {
			l := newLAN(t, defaultTiming(), 200, 150, 100)
			l.configure(func(i int, p *Params) { p.HasChecks, p.KeepUnhealthy = true, keep })
			l.delay = func(from, to int) time.Duration { return 300 * time.Microsecond }
			for i, n := range l.nodes {
				l.start(i, 0)
				l.at(0, func() { l.handle(n, Health{Healthy: true, Detail: "ok"}) })
			}
			l.runUntil(2 * time.Second)
			l.wantSoleHolder(l.nodes[0])
			sick := 2*time.Second + 77*time.Millisecond
			l.at(sick, func() { l.handle(l.nodes[0], Health{Healthy: false, Detail: "check failed"}) })
			l.runUntil(sick + 3*time.Second)
			l.wantSoleHolder(l.nodes[1])
			l.wantNoDoubleHolder()
			l.wantNoDoubleKernel()
			n, at := l.firstHolder(t0.Add(sick))
			if took := at.Sub(t0.Add(sick)); n != l.nodes[1] || took > 3*time.Millisecond {
				t.Fatalf("%s holds %v after the holder turned unhealthy, want n1 within 3ms\n%s", n, took, l.dumpTrace(30))
			}
			if l.nodes[2].becameHolderAfter(t0.Add(sick)) {
				t.Fatalf("the 100 node claimed\n%s", l.dumpTrace(30))
			}
			if l.nodes[0].becameHolderAfter(t0.Add(sick + time.Millisecond)) {
				t.Fatalf("the unhealthy node reclaimed\n%s", l.dumpTrace(30))
			}
			l.report("unhealthy holder: n1 holds %v later", at.Sub(t0.Add(sick)))
		})
	}
}

// (4) Required fencing: the fence fails twice, then succeeds (for each
// node that runs it); the best standby holds only after its third fence,
// and the other never claims. start2 is when n2 starts, which sets the
// phase of its probes against n1's.
func TestSimFenceRequired(t *testing.T) {
	for _, start2 := range []time.Duration{0, 10 * time.Millisecond, 25 * time.Millisecond} {
		for _, ph := range []time.Duration{0, 17 * time.Millisecond, 41 * time.Millisecond} {
			t.Run(fmt.Sprintf("n2 starts at %v, power-off phase %v", start2, ph), func(t *testing.T) {
				l := newLAN(t, defaultTiming(), 200, 150, 100)
				l.configure(func(i int, p *Params) { p.Fencing = FenceRequired })
				l.delay = func(from, to int) time.Duration { return 200 * time.Microsecond }
				calls := map[*simNode]int{}
				var targets []net.HardwareAddr
				l.fence = func(n *simNode, f Fence) error {
					calls[n]++
					targets = append(targets, f.MAC)
					if calls[n] <= 2 {
						return errors.New("pdu unreachable")
					}
					return nil
				}
				l.start(0, 0)
				l.start(1, 0)
				l.start(2, start2)
				l.runUntil(2 * time.Second)
				l.wantSoleHolder(l.nodes[0])
				off := 2*time.Second + ph
				l.at(off, func() { l.powerOff(l.nodes[0]) })
				l.runUntil(off + 8*time.Second)
				l.wantSoleHolder(l.nodes[1])
				l.wantNoDoubleHolder()
				l.wantNoDoubleKernel()
				for _, m := range targets {
					if !bytes.Equal(m, l.nodes[0].mac) {
						t.Fatalf("fenced %v, want the old holder %v", m, l.nodes[0].mac)
					}
				}
				if ts := l.nodes[2].claimedAfter(t0.Add(off)); len(ts) != 0 || len(l.nodes[2].fences) != 0 {
					var s []string
					for _, tr := range ts {
						s = append(s, fmt.Sprintf("%s %v->%v", l.rel(tr.at), tr.From, tr.To))
					}
					t.Errorf("BUG: the 100 node claimed while n1 was fencing: transitions %v, Fence actions at %v (n1 fences at %v)\n%s",
						s, relAll(l, l.nodes[2].fences), relAll(l, l.nodes[1].fences), l.dumpTrace(14))
				}
				f := l.nodes[1].fences
				if len(f) != 3 {
					t.Fatalf("n1 fenced %d times (%v), want 3\n%s", len(f), relAll(l, f), l.dumpTrace(40))
				}
				_, at := l.firstHolder(t0.Add(off))
				if want := f[2].Add(simFenceDelay); !at.Equal(want) {
					t.Fatalf("n1 holds at %s, want when its third fence succeeded %s", l.rel(at), l.rel(want))
				}
				// 1s, then 2s of backoff after each failure.
				if d := f[1].Sub(f[0]); d != simFenceDelay+time.Second {
					t.Errorf("second fence %v after the first", d)
				}
				if d := f[2].Sub(f[1]); d != simFenceDelay+2*time.Second {
					t.Errorf("third fence %v after the second", d)
				}
				l.report("fencing: n1 holds %v after the power-off, fences at %v", at.Sub(t0.Add(off)), relAll(l, f))
			})
		}
	}
}

func relAll(l *lan, ts []time.Time) []string {
	var s []string
	for _, t := range ts {
		s = append(s, l.rel(t))
	}
	return s
}

func TestHandoverTargetThatDoesNotClaimIsTakenBack(t *testing.T) {
	h := healthyHolder(t)
	h.frame(beaconFrom(macPeerB, 80, 0, 8))
	h.advance(10 * time.Millisecond)
	wantHandedAway(t, h.do(Handover{}), macPeerB)
	// peer B died a moment ago: it never announces. Within two check
	// intervals we take the VIP back, without probing for it first.
	acts := h.runFor(2*h.p.Timing.CheckInterval + time.Millisecond)
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("did not take the VIP back: %s", dump(acts))
	}
}

func TestHandoverTargetThatClaimsKeepsIt(t *testing.T) {
	h := healthyHolder(t)
	h.frame(beaconFrom(macPeerB, 80, 0, 8))
	h.advance(10 * time.Millisecond)
	h.do(Handover{})
	h.advance(time.Millisecond)
	h.frame(peerAnnounce(macPeerB, 80))
	for range 20 {
		h.tick()
		h.frame(kernelReply(macPeerB, macSelf))
	}
	h.wantState(StateStandby)
}

func TestStoppedStandbyIsNotAHandoverTarget(t *testing.T) {
	h := healthyHolder(t)
	h.frame(beaconFrom(macPeerB, 80, 0, 8))
	// B stops: its goodbye is a passive beacon.
	h.frame(beaconFrom(macPeerB, 80, arp.FlagPassive, 8))
	acts := h.do(Handover{})
	if countOf[Refused](acts) != 1 || h.m.State() != StateHolder {
		t.Fatalf("handover to a standby that said goodbye: %s", dump(acts))
	}
}

// A planned move (release, handover, stop) lets the daemon drain the VIPs'
// connections for at most DrainMax; a fault removes them at once.
func TestPlannedMovesDrain(t *testing.T) {
	drainOf := func(t *testing.T, acts []Action) time.Time {
		t.Helper()
		for _, a := range acts {
			if r, ok := a.(RemoveVIPs); ok {
				return r.Drain
			}
		}
		t.Fatalf("no RemoveVIPs: %s", dump(acts))
		return time.Time{}
	}
	for name, ev := range map[string]Event{"release": Release{Reason: "test"}, "handover": Handover{}, "stop": Stop{}} {
		h := holderWith(t, nil, nil)
		h.frame(peerBeacon(macPeerA, 90))
		if got, want := drainOf(t, h.do(ev)), h.now.Add(DrainMax); !got.Equal(want) {
			t.Errorf("%s: Drain %s, want %s", name, h.rel(got), h.rel(want))
		}
	}
	h := holderWith(t, nil, nil)
	if got := drainOf(t, h.do(LinkChanged{Up: false})); !got.IsZero() {
		t.Errorf("link down: Drain %s, want zero (at once)", h.rel(got))
	}
}
