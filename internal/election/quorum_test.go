package election

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/quorum"
)

// Tests of quorum.go: the referee's key gates every claim.

func withQuorum() option { return func(p *Params) { p.Quorum = true } }

const qTTL = 5 * time.Second

// granted is the Granted a keepalive sent now would give.
func (h *harness) granted(tok quorum.Token) []Action {
	h.t.Helper()
	return h.do(Quorum{Ev: quorum.Granted{Token: tok, Deadline: quorum.LeaseDeadline(h.now, qTTL), Resigns: h.m.qs.releases}})
}

// index returns the position of the first action of type T, -1 if none.
func index[T Action](acts []Action) int {
	for i, a := range acts {
		if _, ok := a.(T); ok {
			return i
		}
	}
	return -1
}

// quorumHolder starts fresh with a quorum and lets the probes go
// unanswered: the machine waits for the key, then holds once granted.
func quorumHolder(t *testing.T, opts ...option) *harness {
	t.Helper()
	h := newHarness(t, append(opts, withQuorum())...)
	h.startFresh()
	for h.m.State() == StateProbing {
		h.tick()
	}
	h.wantState(StateCandidate)
	acts := h.granted(7)
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("granted: no AddVIPs: %s", dump(acts))
	}
	return h
}

func TestQuorumNoClaimWithoutGranted(t *testing.T) {
	h := newHarness(t, withQuorum())
	h.startFresh()
	var all []Action
	for h.m.State() == StateProbing {
		all = append(all, h.tick()...)
	}
	h.wantState(StateCandidate)
	if n := countOf[WantKey](all); n != 1 {
		t.Fatalf("%d WantKey, want 1: %s", n, dump(all))
	}
	if countOf[AddVIPs](all) != 0 {
		t.Fatalf("added the VIPs without the key: %s", dump(all))
	}
	// Nobody answers for a long time: the machine keeps waiting (with
	// claiming probes), never adds the VIPs, never asks twice.
	acts := h.runFor(time.Minute)
	h.wantState(StateCandidate)
	if countOf[AddVIPs](acts) != 0 || countOf[WantKey](acts) != 0 {
		t.Fatalf("while waiting for the key: %s", dump(acts))
	}
	calls := 0
	for _, p := range sends(acts) {
		if p.Trailer != nil && p.Trailer.Flags&arp.FlagClaiming != 0 {
			calls++
		}
	}
	if calls == 0 {
		t.Fatalf("no claiming probes while waiting for the key")
	}
	// Another node's Holder event or an Extended without the key change
	// nothing.
	if acts := h.do(Quorum{Ev: quorum.Holder{Name: "n2", Token: 3}}); countOf[AddVIPs](acts) != 0 {
		t.Fatalf("Holder event: %s", dump(acts))
	}
	if acts := h.do(Quorum{Ev: quorum.Extended{Deadline: h.now.Add(qTTL)}}); countOf[AddVIPs](acts) != 0 {
		t.Fatalf("Extended without the key: %s", dump(acts))
	}
	// Granted: claim, with the VIPs bounded by the lease deadline.
	acts = h.granted(7)
	h.wantState(StateHolder)
	adds := actionsOf[AddVIPs](acts)
	if len(adds) == 0 {
		t.Fatalf("granted: %s", dump(acts))
	}
	for _, a := range adds {
		if want := quorum.LeaseDeadline(h.now, qTTL); !a.Until.Equal(want) {
			t.Fatalf("AddVIPs.Until %s, want the lease deadline %s", h.rel(a.Until), h.rel(want))
		}
	}
	if v := h.m.Quorum(); !v.Owned || v.Token != 7 {
		t.Fatalf("Quorum() %+v", v)
	}
}

func TestQuorumGrantedTooLateWaitsForExtended(t *testing.T) {
	h := newHarness(t, withQuorum())
	h.startFresh()
	for h.m.State() == StateProbing {
		h.tick()
	}
	// A deadline too close for a one-second kernel lifetime: no claim.
	acts := h.do(Quorum{Ev: quorum.Granted{Token: 1, Deadline: h.now.Add(2 * time.Second)}})
	h.wantState(StateCandidate)
	if countOf[AddVIPs](acts) != 0 {
		t.Fatalf("claimed with 2 s left: %s", dump(acts))
	}
	acts = h.do(Quorum{Ev: quorum.Extended{Deadline: quorum.LeaseDeadline(h.now, qTTL)}})
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("extended: %s", dump(acts))
	}
}

func TestQuorumDropAtDropBy(t *testing.T) {
	h := quorumHolder(t)
	deadline := quorum.LeaseDeadline(h.now, qTTL)
	dropBy := quorum.DropBy(deadline)
	// Renewals before DropBy carry the deadline; at DropBy the VIPs go.
	var all []Action
	for h.m.State() == StateHolder {
		if !h.now.Before(dropBy) {
			t.Fatalf("still holder at %s, DropBy %s", h.rel(h.now), h.rel(dropBy))
		}
		acts := h.tick()
		for _, a := range actionsOf[AddVIPs](acts) {
			if !a.Until.Equal(deadline) {
				t.Fatalf("renewal Until %s, want %s", h.rel(a.Until), h.rel(deadline))
			}
		}
		all = append(all, acts...)
	}
	if !h.now.Equal(dropBy) {
		t.Fatalf("dropped at %s, want DropBy %s", h.rel(h.now), h.rel(dropBy))
	}
	h.wantState(StateFault)
	trs := transitions(all)
	if last := trs[len(trs)-1]; last.Cause != FaultQuorumLost || last.Cause.String() != "quorum-lost" || !last.Cause.Retries() {
		t.Fatalf("transition %+v, want cause quorum-lost", last)
	}
	if countOf[RemoveVIPs](all) != 1 || countOf[ReleaseKey](all) != 0 {
		t.Fatalf("drop: want one RemoveVIPs and no ReleaseKey (keep wanting): %s", dump(all))
	}
	// After the fault's retry it probes again, still wanting the key, and
	// claims again once granted.
	h.runFor(2 * time.Second)
	for h.m.State() == StateProbing {
		h.tick()
	}
	h.wantState(StateCandidate)
	h.granted(9)
	h.wantState(StateHolder)
}

func TestQuorumExtendedRenewsAndMovesDropBy(t *testing.T) {
	h := quorumHolder(t)
	for range 10 { // 10 keepalives a second apart: never a drop
		h.runFor(time.Second)
		acts := h.do(Quorum{Ev: quorum.Extended{Deadline: quorum.LeaseDeadline(h.now, qTTL)}})
		h.wantState(StateHolder)
		adds := actionsOf[AddVIPs](acts)
		if len(adds) != 1 || !adds[0].Until.Equal(quorum.LeaseDeadline(h.now, qTTL)) {
			t.Fatalf("Extended: %s", dump(acts))
		}
	}
}

func TestQuorumLostDropsAtOnce(t *testing.T) {
	h := quorumHolder(t)
	h.runFor(time.Second)
	acts := h.do(Quorum{Ev: quorum.Lost{Cause: quorum.CauseKeyDeleted}})
	h.wantState(StateFault)
	if i := index[RemoveVIPs](acts); i != 0 {
		t.Fatalf("Lost: RemoveVIPs at %d: %s", i, dump(acts))
	}
	if countOf[ReleaseKey](acts) != 0 {
		t.Fatalf("Lost: released the key (should keep wanting): %s", dump(acts))
	}
	if tr := transitions(acts); len(tr) != 1 || tr[0].Cause != FaultQuorumLost {
		t.Fatalf("Lost: %+v", tr)
	}
	if v := h.m.Quorum(); v.Owned || !v.Wanting || v.Lost != 1 {
		t.Fatalf("Quorum() %+v", v)
	}
}

// A better node that really holds the VIP (its kernel confirms) wins
// even over a holder with the key: two holders exist already (our key is
// stale, or the other node does not ask the referee: a rolling reload
// that removes quorum:), and only yielding ends that. The VIPs go first,
// then the key.
func TestQuorumHolderWithKeyYieldsToConfirmedBetterHolder(t *testing.T) {
	h := quorumHolder(t, withPriority(100))
	acts := h.frame(peerAnnounce(macPeerA, 200))
	h.wantState(StateHolder)
	if countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("yielded to an unconfirmed claim: %s", dump(acts))
	}
	acts = h.frame(kernelReply(macPeerA, macSelf))
	h.wantState(StateStandby)
	rm, rel := index[RemoveVIPs](acts), index[ReleaseKey](acts)
	if rm < 0 || rel < 0 || rm > rel {
		t.Fatalf("yielding: want RemoveVIPs, then ReleaseKey: %s", dump(acts))
	}
}

// A claim that is not confirmed (a forged frame) does not make a holder
// with the key yield.
func TestQuorumHolderWithKeyKeepsVIPOnUnconfirmedClaim(t *testing.T) {
	h := quorumHolder(t, withPriority(100))
	h.frame(peerAnnounce(macPeerA, 200))
	acts := h.runFor(h.p.Timing.CheckInterval * 3)
	h.wantState(StateHolder)
	if countOf[RemoveVIPs](acts) != 0 || countOf[ReleaseKey](acts) != 0 {
		t.Fatalf("an unconfirmed claim made it yield: %s", dump(acts))
	}
}

func TestQuorumResignWhenBackToStandby(t *testing.T) {
	h := newHarness(t, withQuorum())
	h.startFresh()
	for h.m.State() == StateProbing {
		h.tick()
	}
	h.wantState(StateCandidate)
	// The holder was there after all: its kernel answers our claiming probe.
	h.runFor(h.p.Timing.CheckInterval)
	acts := h.frame(kernelReply(macPeerA, macSelf))
	h.wantState(StateStandby)
	if countOf[ReleaseKey](acts) != 1 {
		t.Fatalf("back to standby: want one ReleaseKey: %s", dump(acts))
	}
	// A Granted that crossed the ReleaseKey is not taken.
	acts = h.granted(4)
	h.wantState(StateStandby)
	if countOf[AddVIPs](acts) != 0 || h.m.Quorum().Owned {
		t.Fatalf("took a key it gave up: %s", dump(acts))
	}
}

// Without a live standby (nobody could take the key) a stop removes the
// VIPs first, as before; with one it hands the key over first
// (TestQuorumStopKeyFirstThenVIP).
func TestQuorumStopOrder(t *testing.T) {
	h := quorumHolder(t)
	acts := h.do(Stop{})
	h.wantState(StateStopped)
	rm, rel := index[RemoveVIPs](acts), index[ReleaseKey](acts)
	frame := -1
	for i, a := range acts {
		if s, ok := a.(Send); ok && s.Packet.Trailer != nil && s.Packet.Trailer.Kind == arp.KindRelease {
			frame = i
			break
		}
	}
	if rm < 0 || rel < 0 || frame < 0 || !(rm < rel && rel < frame) {
		t.Fatalf("stop: want RemoveVIPs, then ReleaseKey, then the release frame: %s", dump(acts))
	}
	if countOf[ReleaseKey](acts) != 1 {
		t.Fatalf("stop: %d ReleaseKey: %s", countOf[ReleaseKey](acts), dump(acts))
	}
}

func TestQuorumReleaseOrder(t *testing.T) {
	h := quorumHolder(t)
	acts := h.do(Release{Reason: "test"})
	rm, rel := index[RemoveVIPs](acts), index[ReleaseKey](acts)
	if rm < 0 || rel < 0 || rm > rel {
		t.Fatalf("release: %s", dump(acts))
	}
	for _, a := range acts[:rel] {
		if s, ok := a.(Send); ok && s.Packet.Trailer != nil && s.Packet.Trailer.Kind == arp.KindRelease {
			t.Fatalf("release frame before ReleaseKey: %s", dump(acts))
		}
	}
}

func TestQuorumRestartWithVIPPresentRemovesIt(t *testing.T) {
	h := newHarness(t, withQuorum())
	acts := h.do(Start{LinkUp: true, Present: true})
	h.wantState(StateProbing)
	if countOf[RemoveVIPs](acts) != 1 || countOf[AddVIPs](acts) != 0 {
		t.Fatalf("start with the VIP present: %s", dump(acts))
	}
}

func TestQuorumFenceDeletesHolderKey(t *testing.T) {
	h, _, _ := silentHolder(t, withFencing(FenceRequired), withQuorum())
	h.wantState(StateFencing)
	h.do(Quorum{Ev: quorum.Holder{Name: "n1", Token: 42}})
	h.m.p.PeerNames = map[string]string{string(macPeerA): "n1"}
	acts := h.do(FenceResult{Attempt: h.m.fenceAttempt})
	fk := actionsOf[FenceKey](acts)
	if len(fk) != 1 || fk[0].Token != 42 {
		t.Fatalf("fenced: want FenceKey{42}: %s", dump(acts))
	}
	h.wantState(StateCandidate)
	if countOf[AddVIPs](acts) != 0 {
		t.Fatalf("claimed before the key: %s", dump(acts))
	}
	h.do(Quorum{Ev: quorum.Fenced{Token: 42}})
	h.granted(43)
	h.wantState(StateHolder)
}

func TestQuorumFenceUnknownHolderNoFenceKey(t *testing.T) {
	h, _, _ := silentHolder(t, withFencing(FenceRequired), withQuorum())
	h.do(Quorum{Ev: quorum.Holder{Name: "someone-else", Token: 42}})
	acts := h.do(FenceResult{Attempt: h.m.fenceAttempt})
	if countOf[FenceKey](acts) != 0 {
		t.Fatalf("deleted the key of a node that was not fenced: %s", dump(acts))
	}
}

// Without Params.Quorum the key actions never appear and Quorum events
// are ignored.
func TestQuorumOffUnchanged(t *testing.T) {
	h := newHarness(t)
	h.becomeHolder()
	acts := h.do(Quorum{Ev: quorum.Lost{Cause: quorum.CauseExpired}})
	h.wantState(StateHolder)
	acts = append(acts, h.runFor(time.Minute)...)
	acts = append(acts, h.do(Stop{})...)
	if countOf[WantKey](acts)+countOf[ReleaseKey](acts)+countOf[FenceKey](acts) != 0 {
		t.Fatalf("key actions without a quorum: %s", dump(acts))
	}
	for _, a := range actionsOf[AddVIPs](acts) {
		if !a.Until.IsZero() {
			t.Fatalf("AddVIPs.Until set without a quorum")
		}
	}
}

// The stale-Granted race: the machine wants the key, gives it up (a holder
// answered), and wants it again before the elector's events caught up. A
// Granted the elector sent before it saw the Resign names a key the
// elector is now deleting (its Lost follows, once the delete is done, and
// by then a standby may hold the key): the machine must not claim on it.
func TestQuorumStaleGrantedAfterReleaseAndWantAgain(t *testing.T) {
	h := newHarness(t, withQuorum())
	h.startFresh()
	for h.m.State() == StateProbing {
		h.tick()
	}
	h.wantState(StateCandidate)
	h.runFor(h.p.Timing.CheckInterval)
	acts := h.frame(kernelReply(macPeerA, macSelf))
	h.wantState(StateStandby)
	if countOf[ReleaseKey](acts) != 1 {
		t.Fatalf("back to standby: want one ReleaseKey: %s", dump(acts))
	}
	// The holder vanishes again: the machine wants the key again.
	var all []Action
	for i := 0; countOf[WantKey](all) == 0 && i < 10000; i++ {
		all = append(all, h.tick()...)
	}
	h.wantState(StateCandidate)
	if countOf[WantKey](all) != 1 {
		t.Fatalf("holder gone again: want one WantKey: %s", dump(all))
	}
	// The Granted of the first campaign arrives now (the elector granted
	// before it saw one Resign).
	acts = h.do(Quorum{Ev: quorum.Granted{Token: 4, Deadline: quorum.LeaseDeadline(h.now, qTTL), Resigns: 0}})
	if countOf[AddVIPs](acts) != 0 || h.m.Quorum().Owned {
		t.Fatalf("claimed on a Granted from before its ReleaseKey: %s", dump(acts))
	}
	h.wantState(StateCandidate)
	// The elector's Lost for the resigned key, then the new campaign's
	// Granted (after the one Resign): now it claims.
	h.do(Quorum{Ev: quorum.Lost{Cause: quorum.CauseResigned}})
	acts = h.do(Quorum{Ev: quorum.Granted{Token: 9, Deadline: quorum.LeaseDeadline(h.now, qTTL), Resigns: 1}})
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("fresh Granted after the Resign: %s", dump(acts))
	}
}

// A host that is not floatip claims the VIP while the holder owns the key
// (ARP says one thing, etcd another). With the default policy (yield,
// RFC 5227) the holder removes the VIPs first and only then gives the key
// up, so the next floatip holder never overlaps it; with defend it keeps
// both.
func TestQuorumForeignClaimWhileHoldingTheKey(t *testing.T) {
	alien := func() *arp.Packet { return arp.NewAnnouncement(macAlien, vip1, nil) }
	conflict := func(h *harness) {
		h.t.Helper()
		h.frame(alien())
		h.advance(10 * time.Millisecond)
		h.tick()
		h.wantState(StateHolder)
		h.runFor(time.Second)
		h.do(Quorum{Ev: quorum.Extended{Deadline: quorum.LeaseDeadline(h.now, qTTL)}})
	}
	t.Run("yield", func(t *testing.T) {
		h := quorumHolder(t, withPolicy(Yield))
		conflict(h)
		h.runFor(300 * time.Millisecond)
		acts := h.frame(alien())
		h.wantState(StateStandby)
		rm, rel := index[RemoveVIPs](acts), index[ReleaseKey](acts)
		if rm < 0 || rel < 0 || rm > rel {
			t.Fatalf("yielding to a foreign host: want RemoveVIPs, then ReleaseKey: %s", dump(acts))
		}
		if h.m.Quorum().Owned || h.m.Quorum().Wanting {
			t.Fatalf("still owns or wants the key after yielding: %+v", h.m.Quorum())
		}
	})
	t.Run("defend", func(t *testing.T) {
		h := quorumHolder(t, withPolicy(Defend))
		conflict(h)
		for range 5 {
			h.runFor(time.Second)
			h.do(Quorum{Ev: quorum.Extended{Deadline: quorum.LeaseDeadline(h.now, qTTL)}})
			acts := h.frame(alien())
			if countOf[RemoveVIPs](acts) != 0 || countOf[ReleaseKey](acts) != 0 {
				t.Fatalf("defend policy gave the VIP or the key up: %s", dump(acts))
			}
		}
		h.wantState(StateHolder)
		if !h.m.Quorum().Owned {
			t.Fatalf("lost the key while defending: %+v", h.m.Quorum())
		}
	})
}

// keyFirstBeacon is a stopping holder's notice that it gave the key up.
func keyFirstBeacon(from net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindBeacon, prio, arp.FlagHolder|arp.FlagKeyFirst))
}

// readyBeacon is a standby's word that it owns the key after a key-first
// notice.
func readyBeacon(from net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewProbe(from, macSelf, vip1, tr(arp.KindBeacon, prio, arp.FlagKeyFirst))
}

func releaseFrameAt(acts []Action) int {
	for i, a := range acts {
		if s, ok := a.(Send); ok && s.Packet.Trailer != nil && s.Packet.Trailer.Kind == arp.KindRelease {
			return i
		}
	}
	return -1
}

// keyFirstNotices counts the key-first notices in acts and checks that
// they go to dst.
func keyFirstNotices(t *testing.T, acts []Action, dst net.HardwareAddr) int {
	t.Helper()
	n := 0
	for _, p := range sends(acts) {
		if p.Trailer != nil && p.Trailer.Kind == arp.KindBeacon && p.Trailer.Flags&arp.FlagKeyFirst != 0 {
			if !bytes.Equal(p.Destination, dst) {
				t.Fatalf("key-first notice to %s, want %s", p.Destination, dst)
			}
			n++
		}
	}
	return n
}

// releasingKeyFirst is a quorum holder that knows a live standby (named
// n2) and was told to move the VIPs by ev: it gave the key up and still
// has the VIPs.
func releasingKeyFirst(t *testing.T, ev Event, dst net.HardwareAddr) *harness {
	t.Helper()
	h := quorumHolder(t)
	h.frame(named(peerBeacon(macPeerA, 50), "n2"))
	acts := h.do(ev)
	h.wantState(StateReleasing)
	if countOf[ReleaseKey](acts) != 1 || countOf[RemoveVIPs](acts) != 0 || countOf[Done](acts) != 0 || releaseFrameAt(acts) >= 0 {
		t.Fatalf("key-first %T: want ReleaseKey and the VIPs kept, no release frame, not done: %s", ev, dump(acts))
	}
	if keyFirstNotices(t, acts, dst) == 0 {
		t.Fatalf("key-first %T: no FlagKeyFirst beacon: %s", ev, dump(acts))
	}
	return h
}

func stoppingKeyFirst(t *testing.T) *harness {
	t.Helper()
	return releasingKeyFirst(t, Stop{}, arp.Broadcast)
}

// wantReleased checks a key-first handover's end: the VIPs removed, then
// the release frame to dst, then Done for a stop.
func wantReleased(t *testing.T, acts []Action, dst net.HardwareAddr, done bool) {
	t.Helper()
	rm, frame := index[RemoveVIPs](acts), releaseFrameAt(acts)
	if rm < 0 || frame < 0 || rm > frame {
		t.Fatalf("want RemoveVIPs, then the release frame: %s", dump(acts))
	}
	for _, p := range sends(acts) {
		if p.Trailer != nil && p.Trailer.Kind == arp.KindRelease && !bytes.Equal(p.Destination, dst) {
			t.Fatalf("release frame to %s, want %s: %s", p.Destination, dst, dump(acts))
		}
	}
	if d := index[Done](acts); done != (d > frame) {
		t.Fatalf("Done: want %v after the release frame: %s", done, dump(acts))
	}
	if countOf[ReleaseKey](acts) != 0 {
		t.Fatalf("released the key twice: %s", dump(acts))
	}
}

func TestQuorumStopKeyFirstThenVIP(t *testing.T) {
	h := stoppingKeyFirst(t)
	// Our own key's Holder event changes nothing.
	if acts := h.do(Quorum{Ev: quorum.Holder{Name: "self", Token: 7, Self: true}}); countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("own Holder event: %s", dump(acts))
	}
	// Another node's key, by our own watch (its Campaign may not have
	// returned yet), only shortens the wait.
	if acts := h.do(Quorum{Ev: quorum.Holder{Name: "n2", Token: 8}}); countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("Holder event before the ready beacon: %s", dump(acts))
	}
	if got := h.m.Deadline(); !got.Equal(h.now.Add(keyFirstGrace)) {
		t.Fatalf("after the Holder event: Deadline %s, want %s", h.rel(got), h.rel(h.now.Add(keyFirstGrace)))
	}
	// A holder's beacon is no ready beacon.
	if acts := h.frame(keyFirstBeacon(macPeerA, 50)); countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("a holder's key-first beacon ended the stop: %s", dump(acts))
	}
	acts := h.frame(readyBeacon(macPeerA, 50))
	wantReleased(t, acts, arp.Broadcast, true)
	h.wantState(StateStopped)
	h.checkDeadlineZero()
}

// The ready beacon alone (a forged one, or our watch is slow) does not end
// the handover at once: it waits for our own watch, for keyFirstGrace.
func TestQuorumKeyFirstReadyBeaconAloneWaits(t *testing.T) {
	h := stoppingKeyFirst(t)
	if acts := h.frame(readyBeacon(macPeerA, 50)); countOf[RemoveVIPs](acts) != 0 {
		t.Fatalf("the ready beacon alone ended the stop: %s", dump(acts))
	}
	beacon := h.now
	if got := h.m.Deadline(); !got.Equal(beacon.Add(keyFirstGrace)) {
		t.Fatalf("after the ready beacon: Deadline %s, want %s", h.rel(got), h.rel(beacon.Add(keyFirstGrace)))
	}
	var acts []Action
	for countOf[Done](acts) == 0 && h.now.Sub(beacon) < time.Minute {
		acts = append(acts, h.tick()...)
	}
	if h.now.Before(beacon.Add(keyFirstGrace)) {
		t.Fatalf("released %v after the ready beacon, before the grace", h.now.Sub(beacon))
	}
	wantReleased(t, acts, arp.Broadcast, true)
}

func TestQuorumStopKeyFirstTimeout(t *testing.T) {
	h := stoppingKeyFirst(t)
	start := h.now
	var acts []Action
	for countOf[Done](acts) == 0 && h.now.Sub(start) < time.Minute {
		acts = append(acts, h.tick()...)
	}
	if h.now.Sub(start) < keyFirstWait {
		t.Fatalf("gave the VIPs up after %v, before the wait ran out", h.now.Sub(start))
	}
	wantReleased(t, acts, arp.Broadcast, true)
	h.wantState(StateStopped)
}

// `floatip release` under a referee moves the key first too, and the node
// stays as a standby.
func TestQuorumReleaseKeyFirst(t *testing.T) {
	h := releasingKeyFirst(t, Release{Reason: "test"}, arp.Broadcast)
	h.do(Quorum{Ev: quorum.Holder{Name: "n2", Token: 8}})
	acts := h.frame(readyBeacon(macPeerA, 50))
	wantReleased(t, acts, arp.Broadcast, false)
	h.wantState(StateStandby)
}

// `floatip handover` tells its target alone, and hands it the VIP by
// unicast once it owns the key.
func TestQuorumHandoverKeyFirst(t *testing.T) {
	h := releasingKeyFirst(t, Handover{Name: "n2"}, macPeerA)
	acts := append(h.frame(readyBeacon(macPeerA, 50)), h.do(Quorum{Ev: quorum.Holder{Name: "n2", Token: 8}})...)
	wantReleased(t, acts, macPeerA, false)
	h.wantState(StateStandby)
}

// When our watch shows another node than the target owning the key, the
// release goes to every standby: the key holder claims.
func TestQuorumHandoverKeyElsewhereBroadcasts(t *testing.T) {
	h := releasingKeyFirst(t, Handover{Name: "n2"}, macPeerA)
	acts := append(h.do(Quorum{Ev: quorum.Holder{Name: "n3", Token: 8}}), h.frame(readyBeacon(macPeerB, 50))...)
	wantReleased(t, acts, arp.Broadcast, false)
}

// A stop during a key-first release waits for it, then stops.
func TestQuorumStopDuringKeyFirstRelease(t *testing.T) {
	h := releasingKeyFirst(t, Release{Reason: "test"}, arp.Broadcast)
	if acts := h.do(Stop{}); countOf[RemoveVIPs](acts) != 0 || countOf[Done](acts) != 0 {
		t.Fatalf("stop while releasing: %s", dump(acts))
	}
	h.wantState(StateReleasing)
	acts := append(h.do(Quorum{Ev: quorum.Holder{Name: "n2", Token: 8}}), h.frame(readyBeacon(macPeerA, 50))...)
	wantReleased(t, acts, arp.Broadcast, true)
	h.wantState(StateStopped)
}

// The link going down while releasing removes the VIPs at once.
func TestQuorumLinkDownDuringKeyFirst(t *testing.T) {
	for _, ev := range []Event{Stop{}, Release{Reason: "test"}} {
		h := releasingKeyFirst(t, ev, arp.Broadcast)
		acts := h.do(LinkChanged{Up: false})
		if countOf[RemoveVIPs](acts) != 1 {
			t.Fatalf("%T, link down: no RemoveVIPs: %s", ev, dump(acts))
		}
		_, stop := ev.(Stop)
		if want := StateFault; stop {
			h.wantState(StateStopped)
			if countOf[Done](acts) != 1 {
				t.Fatalf("stop, link down: not done: %s", dump(acts))
			}
		} else {
			h.wantState(want)
		}
	}
}

// quorumStandby follows holder macPeerA (priority 200) under a referee.
func quorumStandby(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, withQuorum(), func(p *Params) { p.QuorumTTL = qTTL })
	h.becomeStandby(macPeerA)
	h.frame(peerAnnounce(macPeerA, 200))
	h.wantState(StateStandby)
	acts := h.frame(keyFirstBeacon(macPeerA, 200))
	if countOf[WantKey](acts) != 1 {
		t.Fatalf("key-first notice: want WantKey: %s", dump(acts))
	}
	acts = append(h.frame(keyFirstBeacon(macPeerA, 200)), h.granted(9)...)
	h.wantState(StateStandby)
	if countOf[AddVIPs](acts) != 0 {
		t.Fatalf("granted while the old holder has the VIP: added it: %s", dump(acts))
	}
	ready := 0
	for _, p := range sends(acts) {
		if p.Trailer != nil && p.Trailer.Kind == arp.KindBeacon && p.Trailer.Flags == arp.FlagKeyFirst && p.Destination.String() == macPeerA.String() {
			ready++
		}
	}
	if ready == 0 {
		t.Fatalf("granted: no ready beacon to the old holder: %s", dump(acts))
	}
	return h
}

func TestQuorumKeyFirstStandbyClaimsOnRelease(t *testing.T) {
	h := quorumStandby(t)
	acts := h.frame(peerRelease(macPeerA, 200))
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("release frame with the key: no AddVIPs: %s", dump(acts))
	}
}

// Without the old holder's release frame (it died after its notice) the
// standby claims only once the old holder's VIP must be gone: grant time
// + TTL + quorum.KernelSlack.
func TestQuorumKeyFirstStandbyWaitsForBound(t *testing.T) {
	h := quorumStandby(t)
	bound := h.now.Add(qTTL + quorum.KernelSlack)
	var acts []Action
	for h.m.State() != StateHolder && h.now.Before(bound.Add(time.Minute)) {
		a := h.tick()
		if h.m.Quorum().Owned {
			a = append(a, h.do(Quorum{Ev: quorum.Extended{Deadline: quorum.LeaseDeadline(h.now, qTTL)}})...)
		}
		if countOf[AddVIPs](a) != 0 && h.now.Before(bound) {
			t.Fatalf("added the VIPs at %s, before the bound %s: %s", h.rel(h.now), h.rel(bound), dump(a))
		}
		acts = append(acts, a...)
	}
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("no AddVIPs: %s", dump(acts))
	}
}

// A key-first notice followed by the holder's ordinary beacon (forged, or
// the holder kept running) is forgotten: the standby gives the key up and
// a later claim is not held back by the old notice.
func TestQuorumKeyFirstNoticeCancelledByHolderBeacon(t *testing.T) {
	h := newHarness(t, withQuorum(), func(p *Params) { p.QuorumTTL = qTTL })
	h.becomeStandby(macPeerA)
	h.frame(peerAnnounce(macPeerA, 200))
	if acts := h.frame(keyFirstBeacon(macPeerA, 200)); countOf[WantKey](acts) != 1 {
		t.Fatalf("notice: %s", dump(acts))
	}
	acts := h.frame(arp.NewProbe(macPeerA, arp.Broadcast, vip1, tr(arp.KindBeacon, 200, arp.FlagHolder)))
	if countOf[ReleaseKey](acts) != 1 || h.m.qs.firstFrom != nil {
		t.Fatalf("holder beacon after the notice: want ReleaseKey and the notice forgotten: %s", dump(acts))
	}
	h.wantState(StateStandby)
}

// A handover's notice by unicast makes its target campaign even when a
// better standby exists (the broadcast notice moves only the best one).
func TestQuorumKeyFirstUnicastNoticeToWorseStandby(t *testing.T) {
	h := newHarness(t, withQuorum(), func(p *Params) { p.QuorumTTL = qTTL })
	h.becomeStandby(macPeerA)
	h.frame(peerAnnounce(macPeerA, 200))
	h.frame(peerBeacon(macPeerB, 250)) // a better standby
	if acts := h.frame(keyFirstBeacon(macPeerA, 200)); countOf[WantKey](acts) != 0 {
		t.Fatalf("broadcast notice, not the best standby: campaigned: %s", dump(acts))
	}
	notice := arp.NewProbe(macPeerA, macSelf, vip1, tr(arp.KindBeacon, 200, arp.FlagHolder|arp.FlagKeyFirst))
	if acts := h.frame(notice); countOf[WantKey](acts) != 1 {
		t.Fatalf("unicast notice to us: want WantKey: %s", dump(acts))
	}
	acts := append(h.granted(9), h.frame(handoverTo(macPeerA, macSelf, 200))...)
	h.wantState(StateHolder)
	if countOf[AddVIPs](acts) == 0 {
		t.Fatalf("handed the VIP with the key: no AddVIPs: %s", dump(acts))
	}
}
