package election

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/quorum"
)

// This file holds what a referee (Params.Quorum, package quorum) changes:
// the node holds the group only while it owns the group's key under a live
// lease, and ARP decides only when to ask for the key.
//
// Where the ARP rules would claim (our claim slot came, the VIP was free,
// a handover), the machine asks for the key (WantKey) and claims only once
// a Granted arrived and the VIPs can still get a kernel lifetime before the
// lease deadline. It gives the key back (ReleaseKey) whenever it goes back
// to plain standby (a holder answered), stops, or faults for a cause other
// than the key itself, so that the referee's first-come queue follows the
// ARP claim order. A holder keeps renewing the VIPs with the deadline as
// their bound (AddVIPs.Until), removes them at quorum.DropBy(deadline)
// when no Extended came, and at once on Lost, and then faults with
// FaultQuorumLost (probing again after faultRetry while still wanting the
// key). A holder with the key yields only to a better node that really
// holds the VIP (two holders exist already: yielding ends it). After a
// successful fence the machine deletes the vanished holder's key
// (FenceKey) with the token of the last Holder event that named it.

// Quorum carries an event of the group's Elector (quorum.Granted,
// Extended, Lost, Holder, Fenced) to the machine.
type Quorum struct{ Ev quorum.Event }

func (Quorum) event() {}

// WantKey asks the daemon to campaign for the group's key
// (Elector.Campaign); the answer comes as Quorum{Granted}.
type WantKey struct{}

// ReleaseKey asks the daemon to give the key up or stop waiting for it
// (Elector.Resign). The VIPs are already removed.
type ReleaseKey struct{}

// FenceKey asks the daemon to delete the key of a holder that fencing
// confirmed dead, guarded by its Token (Elector.Fence).
type FenceKey struct{ Token quorum.Token }

func (WantKey) action()    {}
func (ReleaseKey) action() {}
func (FenceKey) action()   {}

// quorumState is the machine's view of the group's key.
type quorumState struct {
	want     bool         // WantKey emitted, no ReleaseKey since
	have     bool         // Granted, no Lost since
	token    quorum.Token // ours while have
	deadline time.Time    // the lease deadline while have
	holder   quorum.Holder
	awaiting bool      // candidate: would claim, waiting for the key
	reason   string    // why we would claim
	nextCall time.Time // awaiting: the next claiming probe
	lost     uint64    // keys lost or run out while holding
	releases uint64    // ReleaseKey actions emitted (the elector's Resign calls)

	// ho is our key-first handover while in StateReleasing.
	ho handoff
	// The standby's side: firstFrom is the holder whose key-first notice
	// we heard and whose release frame has not come; while it is set we
	// add no VIP before firstBound (set when the key is granted, from
	// firstAt, when the notice came).
	firstFrom  net.HardwareAddr
	firstAt    time.Time
	firstBound time.Time
	// firstCancelAt is when we last forgot a notice because its holder
	// still beaconed as holder (keyFirstCancel): notices from it are
	// ignored for a beacon interval after that.
	firstCancelAt time.Time
}

// handoff is a key-first handover (keyFirstHandoff): we gave the key up
// and keep the VIPs until another node owns it, then release them.
type handoff struct {
	until  time.Time        // release by then, whatever happens
	to     net.HardwareAddr // the standby we hand to by unicast; nil: the best one, by broadcast
	then   State            // StateStandby (release, handover) or StateStopped (stop)
	reason string           // why we hand over
	ready  bool             // the new key holder's ready beacon came
	seen   bool             // our own watch saw another node own the key (a Holder event)
}

// keyFirstWait bounds how long a holder that gave its key up keeps its
// VIPs waiting for another node to own the key.
const keyFirstWait = time.Second

// keyFirstGrace is how long a releasing holder still waits for the other
// half of the proof that another node owns the key (the ready beacon, or
// our own watch's Holder event) once one half came.
const keyFirstGrace = 200 * time.Millisecond

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// keyFirstReady takes the beacon of a standby that owns the key now
// (FlagKeyFirst without FlagHolder), one half of the proof that ends a
// key-first handover; our own watch's Holder event is the other. Both
// halves mean that the referee's change has reached both nodes, so the
// new holder is not busy with it when our release frame comes. A forged
// beacon alone only shortens the wait to keyFirstGrace: the standbys
// still claim only with the key. A peer's claim of the VIP (an
// announcement) counts as that half too: the new key holder claimed
// without a ready beacon (a release frame forged in our name reached it
// first), and keeping the VIP alongside it helps nobody.
func (m *Machine) keyFirstReady(now time.Time, p *arp.Packet, pr *peer) {
	t := p.Trailer
	if pr == nil || t == nil {
		return
	}
	ready := t.Kind == arp.KindBeacon && t.Flags&arp.FlagKeyFirst != 0 && t.Flags&arp.FlagHolder == 0
	claim := !p.IsProbe() && t.Flags&arp.FlagHolder != 0
	if !ready && !claim {
		return
	}
	m.qs.ho.ready = true
	if m.qs.ho.seen {
		m.finishHandoff(now, m.who(pr.mac)+" owns the quorum key now")
		return
	}
	m.qs.ho.until = minTime(m.qs.ho.until, now.Add(keyFirstGrace))
}

// QuorumView is the key as the machine sees it, for the status.
type QuorumView struct {
	Wanting, Owned bool
	Token          quorum.Token
	Deadline       time.Time // zero unless Owned
	Holder         string    // the key's holder by the last Holder event, "" for none
	Lost           uint64    // times the key was lost (or ran out) while holding
}

// Quorum returns the machine's view of the key (zero without Params.Quorum).
func (m *Machine) Quorum() QuorumView {
	v := QuorumView{Wanting: m.qs.want, Owned: m.qs.have, Token: m.qs.token, Holder: m.qs.holder.Name, Lost: m.qs.lost}
	if m.qs.have {
		v.Deadline = m.qs.deadline
	}
	return v
}

// keyHeld reports whether we own the key and may still hold the VIPs now.
func (m *Machine) keyHeld(now time.Time) bool {
	return m.p.Quorum && m.qs.have && now.Before(quorum.DropBy(m.qs.deadline))
}

// mayHold reports whether we may claim now: we own the key and the VIPs
// can still be given a kernel lifetime that ends before its deadline.
func (m *Machine) mayHold(now time.Time) bool {
	if !m.keyHeld(now) {
		return false
	}
	if m.qs.firstFrom != nil && (m.qs.firstBound.IsZero() || now.Before(m.qs.firstBound)) {
		// The old holder may still have the VIP (key-first stop).
		return false
	}
	_, ok := quorum.VIPLifetime(now, m.qs.deadline)
	return ok
}

// addVIPs is the AddVIPs action for a claim or a renewal.
func (m *Machine) addVIPs(firstOnly bool) AddVIPs {
	a := AddVIPs{Lifetime: m.p.Timing.Lifetime, FirstOnly: firstOnly}
	if m.p.Quorum {
		a.Until = m.qs.deadline
	}
	return a
}

func (m *Machine) wantKey() {
	if m.p.Quorum && !m.qs.want {
		m.qs.want = true
		m.emit(WantKey{})
	}
}

// releaseKey gives the key up (or stops waiting for it); the VIPs must be
// gone already.
func (m *Machine) releaseKey() {
	if !m.p.Quorum || !m.qs.want && !m.qs.have {
		return
	}
	m.qs.want, m.qs.have, m.qs.token = false, false, 0
	m.qs.releases++
	m.emit(ReleaseKey{})
}

// quorumTimers are the machine's referee deadlines for Deadline.
func (m *Machine) quorumTimers() []time.Time {
	if !m.p.Quorum {
		return nil
	}
	var ts []time.Time
	if m.state == StateHolder && m.qs.have {
		ts = append(ts, quorum.DropBy(m.qs.deadline))
	}
	if m.state == StateCandidate && m.qs.awaiting {
		ts = append(ts, m.qs.nextCall)
		if !m.qs.firstBound.IsZero() {
			ts = append(ts, m.qs.firstBound)
		}
	}
	if m.state == StateReleasing {
		ts = append(ts, m.qs.ho.until)
	}
	return ts
}

// quorumTransition keeps the key in step with the state: plain standby,
// stopped and faults for other causes give it up; the other states keep
// wanting it.
func (m *Machine) quorumTransition(to State, cause FaultCause) {
	if !m.p.Quorum {
		return
	}
	if to != StateCandidate {
		m.qs.awaiting, m.qs.nextCall = false, time.Time{}
	}
	switch {
	case to == StateStandby, to == StateStopped, to == StateFault && cause != FaultQuorumLost:
		m.releaseKey()
	}
}

// checkQuorumDeadline drops the VIPs of a holder whose key ran out (no
// Extended before quorum.DropBy), before the event is looked at.
func (m *Machine) checkQuorumDeadline(now time.Time) {
	if !m.p.Quorum || !m.qs.have || now.Before(quorum.DropBy(m.qs.deadline)) {
		return
	}
	m.qs.have, m.qs.token = false, 0
	if m.state == StateHolder {
		m.qs.lost++
		m.emit(RemoveVIPs{})
		m.toFault(now, FaultQuorumLost, fmt.Sprintf("quorum lease deadline %s passed without a renewal (referee unreachable or without quorum): removed the VIP", m.qs.deadline.Format("15:04:05.000")))
	}
}

// awaitKey is toHolder without the key: wait for it as a candidate.
func (m *Machine) awaitKey(now time.Time, reason string) {
	m.clearTimers()
	m.wantKey()
	if m.state != StateCandidate {
		m.transition(StateCandidate, "waiting for the quorum key: "+reason)
	} else {
		m.note(slog.LevelInfo, "waiting for the quorum key before claiming", "why", reason)
	}
	m.qs.awaiting, m.qs.reason = true, reason
	m.claimingCall(now)
}

// claimingCall repeats our claiming probe while we wait for the key: the
// worse standbys keep deferring, and a holder that is still there answers
// (then we follow it and give the key up).
func (m *Machine) claimingCall(now time.Time) {
	m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindProbe, arp.FlagClaiming))})
	m.qs.nextCall = now.Add(m.p.Timing.CheckInterval)
}

func (m *Machine) awaitTick(now time.Time) {
	if !m.qs.firstBound.IsZero() && !now.Before(m.qs.firstBound) {
		m.tryClaimWithKey(now)
		if m.state != StateCandidate {
			return
		}
	}
	if !m.qs.nextCall.IsZero() && !now.Before(m.qs.nextCall) {
		m.claimingCall(now)
	}
}

// quorumEvent takes one event of the group's elector.
func (m *Machine) quorumEvent(now time.Time, ev quorum.Event) {
	if !m.p.Quorum {
		return
	}
	switch ev := ev.(type) {
	case quorum.Granted:
		if !m.qs.want || ev.Resigns < m.qs.releases {
			// Given up meanwhile (even if wanted again since): the
			// elector resigns that key, and grants again if we want it.
			return
		}
		m.qs.have, m.qs.token, m.qs.deadline = true, ev.Token, ev.Deadline
		if m.qs.firstFrom != nil && m.qs.firstBound.IsZero() {
			// The old holder's VIP lifetime ends before its lease
			// deadline, at most a TTL after its last keepalive, which
			// was before its resign and so before its notice. (Counted
			// from the notice, not from this grant: a forged notice in
			// the name of a holder that then crashed must not hold our
			// claim back for a TTL after its lease ran out.)
			ttl := m.p.QuorumTTL
			if ttl <= 0 {
				ttl = quorum.MaxTTL
			}
			m.qs.firstBound = m.qs.firstAt.Add(ttl + quorum.KernelSlack)
			if m.state == StateStandby {
				// Tell the stopping holder we own the key: it releases now.
				for range 2 {
					m.emit(Send{Packet: arp.NewProbe(m.p.MAC, m.qs.firstFrom, m.p.VIPs[0], m.trailer(arp.KindBeacon, arp.FlagKeyFirst))})
				}
			}
		}
		m.note(slog.LevelInfo, "quorum key granted", "token", int64(ev.Token), "deadline_in", ev.Deadline.Sub(now).Round(time.Millisecond).String())
		m.tryClaimWithKey(now)
	case quorum.Extended:
		if !m.qs.have || !ev.Deadline.After(m.qs.deadline) {
			return
		}
		m.qs.deadline = ev.Deadline
		switch {
		case m.state == StateHolder && m.keyHeld(now):
			m.emit(m.addVIPs(false))
			m.lastRenew = now
		case m.state == StateCandidate:
			m.tryClaimWithKey(now)
		}
	case quorum.Lost:
		had := m.qs.have
		m.qs.have, m.qs.token = false, 0
		if m.state == StateHolder && had {
			m.qs.lost++
			m.emit(RemoveVIPs{})
			m.toFault(now, FaultQuorumLost, "quorum key lost ("+lostWhy(ev)+"): removed the VIP")
		}
	case quorum.Holder:
		m.qs.holder = ev
		if m.state == StateReleasing && ev.Name != "" && !ev.Self {
			m.keyElsewhere(now, ev.Name)
		}
	case quorum.Fenced:
		if ev.Err != nil {
			lvl := slog.LevelWarn
			if errors.Is(ev.Err, quorum.ErrStaleToken) {
				lvl = slog.LevelInfo
			}
			m.note(lvl, "deleting the fenced holder's quorum key failed; waiting for its lease to expire", "token", int64(ev.Token), "err", ev.Err.Error())
		}
	}
}

func lostWhy(ev quorum.Lost) string {
	if ev.Err != nil {
		return ev.Cause.String() + ": " + ev.Err.Error()
	}
	return ev.Cause.String()
}

// tryClaimWithKey claims when we wait for the key and may hold now.
func (m *Machine) tryClaimWithKey(now time.Time) {
	if m.state != StateCandidate || !m.qs.awaiting || !m.mayHold(now) {
		return
	}
	if m.qs.firstFrom != nil {
		// mayHold passed: the bound passed without the release frame.
		m.note(slog.LevelInfo, "the old holder's VIP lifetime has run out: claiming", "old_holder", m.who(m.qs.firstFrom))
		m.qs.firstFrom, m.qs.firstBound = nil, time.Time{}
	}
	m.qs.awaiting = false
	m.toHolder(now, m.qs.reason+"; quorum key granted", false)
}

// keyFirstHandoff moves the VIPs under a referee key first, VIPs second:
// it gives the key up, tells the standbys (FlagKeyFirst; by unicast to
// the one we hand to, if named) and keeps the VIPs (StateReleasing) until
// another node owns the key (keyFirstReady, keyElsewhere) or keyFirstWait,
// never past the lease's drop time. Then it removes them and sends the
// release frame (finishHandoff), and the new key holder claims at once, as
// without a referee, instead of campaigning only after it: stop, release,
// handover, a maintenance hold and preemption all move the VIP this way.
// It returns false (move as without a referee) when we do not own the key
// or, for the best standby (to nil), know no live one.
func (m *Machine) keyFirstHandoff(now time.Time, to *peer, then State, reason string) bool {
	if !m.p.Quorum || !m.keyHeld(now) || to == nil && !m.liveStandby(now) {
		return false
	}
	m.releaseKey()
	dst := arp.Broadcast
	m.qs.ho = handoff{until: minTime(now.Add(keyFirstWait), quorum.DropBy(m.qs.deadline)), then: then, reason: reason}
	if to != nil {
		dst = to.mac
		m.qs.ho.to = slices.Clone(to.mac)
	}
	for range 2 {
		m.emit(Send{Packet: arp.NewProbe(m.p.MAC, dst, m.p.VIPs[0], m.trailer(arp.KindBeacon, arp.FlagHolder|arp.FlagKeyFirst))})
	}
	m.transition(StateReleasing, reason+": gave the quorum key up; keeping the VIP until another node owns the key")
	return true
}

// keyElsewhere is our own watch naming the key's new holder during a
// key-first handover.
func (m *Machine) keyElsewhere(now time.Time, name string) {
	if to := m.qs.ho.to; to != nil && m.PeerName(to) != "" && m.PeerName(to) != name {
		// Not the node we hand to (it campaigned first): the release goes
		// to every standby, and the key holder claims.
		m.note(slog.LevelInfo, "the quorum key went to another node than the handover target: releasing to every standby", "target", m.who(to), "key_holder", name)
		m.qs.ho.to = nil
	}
	m.qs.ho.seen = true
	if m.qs.ho.ready {
		m.finishHandoff(now, name+" owns the quorum key now")
		return
	}
	// Its Campaign may still be on the way (etcd answers it later): wait
	// for its ready beacon, briefly.
	m.qs.ho.until = minTime(m.qs.ho.until, now.Add(keyFirstGrace))
}

// drainAndRemove is the RemoveVIPs of a planned move: it may wait
// DrainMax for the VIPs' open connections, never past the quorum lease's
// drop time.
func (m *Machine) drainAndRemove(now time.Time) RemoveVIPs {
	until := now.Add(DrainMax)
	if m.p.Quorum && !m.qs.deadline.IsZero() {
		until = minTime(until, quorum.DropBy(m.qs.deadline))
	}
	return RemoveVIPs{Drain: until}
}

// finishHandoff ends a key-first handover: the VIPs go, then the release
// frame, then the state the handover was for.
func (m *Machine) finishHandoff(now time.Time, why string) {
	ho := m.qs.ho
	m.qs.ho = handoff{}
	m.emit(m.drainAndRemove(now))
	dst := arp.Broadcast
	if ho.to != nil {
		dst = ho.to
	}
	for range 2 {
		m.emit(Send{Packet: arp.NewProbe(m.p.MAC, dst, m.p.VIPs[0], m.trailer(arp.KindRelease, arp.FlagPassive))})
	}
	m.note(slog.LevelInfo, "released the VIP and told the standbys", "why", why)
	m.endHandoff(now, ho, NoFault, ho.reason+": released the VIP ("+why+")")
}

// abortHandoff ends a key-first handover that cannot go on (the link went
// down, frames cannot be sent): the VIPs go at once.
func (m *Machine) abortHandoff(now time.Time, cause FaultCause, why string) {
	ho := m.qs.ho
	m.qs.ho = handoff{}
	m.emit(RemoveVIPs{})
	m.endHandoff(now, ho, cause, why+": removed the VIP")
}

func (m *Machine) endHandoff(now time.Time, ho handoff, cause FaultCause, reason string) {
	switch {
	case ho.then == StateStopped:
		m.transition(StateStopped, reason)
		m.emit(Done{})
	case cause != NoFault:
		m.toFault(now, cause, reason)
	default:
		m.toWaiting(now, StateStandby, ho.to, reason)
		if ho.to != nil {
			m.handoverUntil = now.Add(max(2*m.p.Timing.CheckInterval, 20*time.Millisecond))
		}
	}
}

// liveStandby reports whether a live standby that would claim is known.
func (m *Machine) liveStandby(now time.Time) bool {
	for _, p := range m.peers {
		if !p.holder && !p.passive && now.Sub(p.lastSeen) <= 3*m.p.Timing.BeaconInterval {
			return true
		}
	}
	return false
}

// keyFirstCancel: the holder whose key-first notice we heard beacons as
// a holder again (the notice was forged, or it kept running): forget the
// notice and give the key up, as a standby does.
func (m *Machine) keyFirstCancel(now time.Time) {
	m.note(slog.LevelInfo, "the holder still beacons as holder after its key-first notice: not taking the key", "holder", m.who(m.qs.firstFrom))
	m.qs.firstFrom, m.qs.firstAt, m.qs.firstBound = nil, time.Time{}, time.Time{}
	m.qs.firstCancelAt = now
	if m.state == StateStandby {
		m.releaseKey()
	}
}

// keyFirstNotice is a standby hearing its holder's key-first handover: the
// best live standby (or the one it hands to by name) campaigns now, so
// that the key is ours by the time the holder's release frame comes. A
// forged notice costs one campaign, and notices alternating with the
// holder's beacons (keyFirstCancel) at most one per beacon interval: a
// releasing holder sends no holder beacon, so a notice right after one
// is forged (Stats.Ignored).
func (m *Machine) keyFirstNotice(now time.Time, p *arp.Packet, pr *peer) {
	toUs := bytes.Equal(p.Destination, m.p.MAC) // a handover to us by name
	if !m.p.Quorum || m.state != StateStandby || m.passive() || !bytes.Equal(m.holder, p.SenderHardwareAddr) || !toUs && m.rank(now) != 0 {
		return
	}
	if c := m.qs.firstCancelAt; !c.IsZero() && now.Sub(c) < m.p.Timing.BeaconInterval && !now.Before(c) {
		m.ignored(now, "ignored a key-first notice: its holder beaconed as holder after its last one (forged notices?)", "holder", m.who(pr.mac))
		return
	}
	if !bytes.Equal(m.qs.firstFrom, pr.mac) { // (it comes twice)
		m.note(slog.LevelInfo, "the holder gave its quorum key up before releasing the VIP: campaigning now", "holder", m.who(pr.mac))
		m.qs.firstFrom, m.qs.firstAt, m.qs.firstBound = slices.Clone(pr.mac), now, time.Time{}
	}
	m.wantKey()
}

// fenceKey deletes the key of the holder that fencing confirmed dead, when
// the last Holder event named it.
func (m *Machine) fenceKey(target net.HardwareAddr) {
	if !m.p.Quorum {
		return
	}
	h := m.qs.holder
	name := m.PeerName(target)
	if h.Self || h.Token == 0 || h.Name == "" || h.Name != name {
		m.note(slog.LevelInfo, "fenced, but the quorum key's holder is not known to be that node: waiting for its lease to expire",
			"fenced", m.who(target), "key_holder", h.Name)
		return
	}
	m.emit(FenceKey{Token: h.Token})
}
