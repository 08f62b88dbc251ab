package election

import (
	"bytes"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// This file holds the machine's wire hygiene: every frame from the wire is
// hostile, so what a stranger's frame may cost (memory, frames sent, state
// changes, log lines) is bounded here, and what is rejected is counted.
//
// The rules, with or without authentication:
//   - The peer table holds at most maxPeers entries; peers not heard for
//     peerExpiryBeacons beacon intervals are dropped, and a new MAC evicts
//     only a peer that was never established (heard twice, a check
//     interval apart), so a flood of fresh MACs churns among itself.
//   - rank counts at most maxRank better peers, and a candidate's claim is
//     deferred by claiming probes for at most claimDeferSlots slots of
//     ClaimSlot+CheckInterval past its own turn; when fencing is on, an
//     established peer known before the VIP was found free (one that may
//     really be fencing) may defer it up to fenceDeferCap. A probing
//     node lets better peers reset its misses only for a bounded time.
//   - Defends and re-announcements answer each claimant at most once per
//     BeaconInterval, and at most maxDefends claimants per BeaconInterval.
//   - A standby whose holder answers its checks does not follow a
//     gratuitous claim by another MAC: its next check goes broadcast, and
//     it follows whoever answers that. Fencing runs only against a holder
//     that answered a check, so a MAC named only in announcements (a
//     standby's, borrowed by a forger) is never fenced; when we followed
//     such a claimant away from a silent holder that had answered, that
//     holder is the one fenced.
//   - A waiting node follows a new claimant (a different MAC announcing
//     the VIP) at most maxSwitches times until a holder answers one of
//     its checks: otherwise announcements from ever new MACs would reset
//     its misses, or abort its candidacy, for ever.
//   - A holder yields to a better claimant only when the claim is
//     authenticated or the claimant answers a unicast check (see
//     conflict); a Release is obeyed only from the current holder, a
//     Takeover only when this node's own preempt is on (Stats.Ignored).
//   - With AuthRequired the holder's untagged kernel replies keep a
//     standby waiting for at most Lifetime after the holder's last
//     authenticated frame: long enough that a killed daemon's VIP expires
//     first, short enough that forged replies cannot hold the VIP off.
//   - A frame carrying our own MAC is counted (Stats.Spoofed) and logged,
//     at most once per DefendInterval, never acted on.
//   - A peer's node name is at most arp.MaxNameLen bytes of printable
//     UTF-8 (the codec drops any other, and Stats.BadNames counts it);
//     an unauthenticated name never replaces an authenticated one.
//   - Claims by hosts that are not (authenticated) floatip peers are
//     counted (Stats.ForeignClaims) and reported (ForeignClaim), at most
//     maxForeignReports a second.
//
// Without authentication these rules bound the damage; they cannot stop
// a forger that impersonates a peer, frame for frame. With AuthRequired
// only authenticated frames reach the election at all.

const (
	maxPeers          = 256
	peerExpiryBeacons = 20
	maxRank           = 16
	claimDeferSlots   = 4
	fenceDeferCap     = 30 * time.Second
	maxDefends        = 4
	maxForeignReports = 5
	maxSwitches       = 3
)

// guard is the machine's bookkeeping for the rules above.
type guard struct {
	// waiting states
	waitSince     time.Time // when probing or standby began
	holderAnswers int       // our probes the current holder answered
	departedEst   bool      // the departed holder was established (answered enough checks)

	// candidate
	freeAt      time.Time // when we found the VIP free
	claimBase   time.Time // our own turn, before any deferral
	deferCapped bool      // logged that the deferral ceiling was reached

	// holder: a better node's claim waiting for its confirmation
	yieldMAC   net.HardwareAddr
	yieldUntil time.Time

	// fencing required, holder not allowed
	fenceBlocked net.HardwareAddr
	blockedAt    time.Time

	// rate limits
	defWindow    time.Time
	defInWindow  int
	defended     map[string]time.Time
	fcWindow     time.Time
	fcInWindow   int
	fcLast       time.Time
	fcLastMAC    net.HardwareAddr
	fcSuppressed uint64
	spoofNoteAt  time.Time
	spoofUnnoted uint64
	ignoreNoteAt time.Time
	prunedAt     time.Time
	switches     int              // holder changes since a holder last answered a check
	prevHolder   net.HardwareAddr // an answering holder we left for a claimant that has not answered yet
	probeBcast   bool             // make the next check a broadcast: a new claimant appeared
	switchNoteAt time.Time
	badNameAt    time.Time // last note of a peer's invalid name
	nameNoteAt   time.Time // last "holder identified" note
}

func newGuard() guard { return guard{defended: make(map[string]time.Time)} }

// establishAnswers is how many of our checks a holder must have answered
// (a reply to us while a check was outstanding) before we fence it. One:
// a node seen answering once and then lost must be fenced under fencing
// required; what is excluded is a MAC that only ever announced, such as
// a standby's MAC in a forged announcement.
func (m *Machine) establishAnswers() int { return 1 }

// established reports whether a peer was heard at least twice, a check
// interval apart: more than a single (forged) frame.
func (m *Machine) established(p *peer) bool {
	return p.lastSeen.Sub(p.firstSeen) >= m.p.Timing.CheckInterval
}

// learn returns the peer entry for mac, making one if there is room; nil
// when the table is full of established peers.
func (m *Machine) learn(now time.Time, mac net.HardwareAddr) *peer {
	key := string(mac)
	if pr := m.peers[key]; pr != nil {
		return pr
	}
	if len(m.peers) >= maxPeers && (now.Sub(m.prunedAt) >= m.p.Timing.CheckInterval || now.Before(m.prunedAt)) {
		m.prunePeers(now)
	}
	if len(m.peers) >= maxPeers {
		var victim *peer
		for _, p := range m.peers {
			if m.established(p) || victim != nil && !p.lastSeen.Before(victim.lastSeen) || m.protected(p) {
				continue
			}
			victim = p
		}
		if victim == nil {
			return nil
		}
		delete(m.peers, string(victim.mac))
	}
	pr := &peer{mac: slices.Clone(mac), firstSeen: now, lastSeen: now}
	m.peers[key] = pr
	return pr
}

// protected peers are never pruned: the machine refers to them.
func (m *Machine) protected(p *peer) bool {
	return bytes.Equal(p.mac, m.holder) || bytes.Equal(p.mac, m.departed) || bytes.Equal(p.mac, m.fenceTarget)
}

// prunePeers drops peers not heard for peerExpiryBeacons beacon intervals.
func (m *Machine) prunePeers(now time.Time) {
	m.prunedAt = now
	expiry := peerExpiryBeacons * max(m.p.Timing.BeaconInterval, m.p.Timing.CheckInterval)
	for k, p := range m.peers {
		if now.Sub(p.lastSeen) > expiry && !m.protected(p) {
			delete(m.peers, k)
		}
	}
}

// deferClaim moves the candidate's claim to t, asked by the better,
// claiming peer pr, but never past the ceiling.
func (m *Machine) deferClaim(now, t time.Time, pr *peer) {
	ceiling := claimDeferSlots * (m.p.Timing.ClaimSlot + m.p.Timing.CheckInterval)
	if m.p.Fencing != FenceOff && m.established(pr) && pr.firstSeen.Before(m.freeAt) {
		ceiling = fenceDeferCap
	}
	if limit := m.claimBase.Add(ceiling); t.After(limit) {
		t = limit
		if !m.deferCapped {
			m.deferCapped = true
			m.note(slog.LevelWarn, "a better node keeps announcing a claim but does not take the VIP: claiming at the deferral ceiling",
				"claimant", m.who(pr.mac), "ceiling", ceiling.String())
		}
	}
	if t.After(m.claimAt) {
		m.claimAt = t
	}
}

// probeDeferLimit is how long after it began probing a node lets better
// peers reset its misses.
func (m *Machine) probeDeferLimit() time.Duration {
	t := m.p.Timing
	return time.Duration(t.Misses+1)*t.CheckInterval + claimDeferSlots*(t.ClaimSlot+t.CheckInterval)
}

// mayDefend takes one defend (or re-announcement) from the rate limit:
// per claimant mac (nil: not tracked per claimant) and in total.
func (m *Machine) mayDefend(now time.Time, mac net.HardwareAddr) bool {
	iv := max(m.p.Timing.BeaconInterval, time.Millisecond)
	if now.Sub(m.defWindow) >= iv || now.Before(m.defWindow) {
		m.defWindow, m.defInWindow = now, 0
		for k, t := range m.defended {
			if now.Sub(t) >= iv {
				delete(m.defended, k)
			}
		}
	}
	if mac != nil {
		if t, ok := m.defended[string(mac)]; ok && now.Sub(t) < iv {
			m.stats.Throttled++
			return false
		}
	}
	if m.defInWindow >= maxDefends {
		m.stats.Throttled++
		return false
	}
	m.defInWindow++
	if mac != nil {
		m.defended[string(mac)] = now
	}
	return true
}

// confirms reports whether p is the claimant's answer to our verification
// probe: a reply to us, from it, in time.
func (m *Machine) confirms(now time.Time, p *arp.Packet) bool {
	return m.yieldMAC != nil && bytes.Equal(m.yieldMAC, p.SenderHardwareAddr) && now.Before(m.yieldUntil) &&
		p.Operation == arp.OperationReply && bytes.Equal(p.Destination, m.p.MAC)
}

// verifyClaim probes a better claimant by unicast; we yield when it
// answers within a check interval. One verification at a time, but an
// established peer (heard over time) displaces a pending one that is not,
// so that a stream of forged claims from fresh MACs cannot keep a real
// winner from being verified.
func (m *Machine) verifyClaim(now time.Time, pr *peer) {
	mac := pr.mac
	if m.yieldMAC != nil {
		pending := m.peers[string(m.yieldMAC)]
		if bytes.Equal(m.yieldMAC, mac) || !m.established(pr) || pending != nil && m.established(pending) {
			m.stats.Throttled++
			return
		}
	}
	m.yieldMAC = slices.Clone(mac)
	m.yieldUntil = now.Add(max(m.p.Timing.CheckInterval, 2*time.Millisecond))
	m.note(slog.LevelDebug, "a better node claims the VIP: checking that it holds it before yielding", "claimant", m.who(mac))
	m.emit(Send{Packet: arp.NewProbe(m.p.MAC, mac, m.p.VIPs[0], m.trailer(arp.KindBeacon, arp.FlagHolder))})
}

// spoofed counts a frame from the wire that carries our own MAC.
func (m *Machine) spoofed(now time.Time, p *arp.Packet) {
	m.stats.Spoofed++
	m.spoofUnnoted++
	if !m.spoofNoteAt.IsZero() && now.Sub(m.spoofNoteAt) < DefendInterval && !now.Before(m.spoofNoteAt) {
		return
	}
	kind := "no trailer"
	if p.Trailer != nil {
		kind = p.Trailer.Kind.String()
	}
	m.note(slog.LevelWarn, "spoofing: a frame from the wire carries this node's own MAC; ignored (another host impersonates us)",
		"frames", m.spoofUnnoted, "sender_ip", p.SenderIP.String(), "target_ip", p.TargetIP.String(), "kind", kind)
	m.spoofNoteAt, m.spoofUnnoted = now, 0
}

// unauthenticated looks at a frame that failed AuthRequired: it changes no
// state; a claim by a host that is not a peer is reported, and a holder
// with the Defend policy defends (rate-limited).
func (m *Machine) unauthenticated(now time.Time, p *arp.Packet) {
	if p.IsProbe() {
		return
	}
	mac := p.SenderHardwareAddr
	if (m.state == StateProbing || m.state == StateStandby) && m.holder != nil && bytes.Equal(mac, m.holder) {
		// The holder's kernel answering: its replies carry no tag. Its
		// daemon may be dead (kill -9) with the VIP still configured until
		// the lifetime runs out, so the replies keep us standby for at most
		// Lifetime after the holder's last authenticated frame: claiming
		// earlier would put the VIP on two nodes, and a forger cannot hold
		// us longer. Liveness never rests on them alone.
		if h := m.peers[string(mac)]; h != nil && now.Sub(h.lastSeen) < m.p.Timing.Lifetime {
			m.answered, m.misses = true, 0
		}
		return
	}
	if (m.peers[string(mac)] != nil || bytes.Equal(mac, m.holder)) && p.Operation == arp.OperationReply && !bytes.Equal(p.Destination, arp.Broadcast) {
		return // an authenticated peer's kernel answering a probe
	}
	if m.state != StateHolder && p.SenderIP != p.TargetIP {
		// A reply (to our probe, say) before its sender's first
		// authenticated frame: gratuitous claims only, as without auth.
		return
	}
	m.foreignSeen(now, p)
	if m.state == StateHolder && m.p.ForeignPolicy == Defend && m.mayDefend(now, mac) {
		m.defend()
	}
}

// foreignSeen counts a claim of one of our VIPs by a host that is not a
// floatip peer and reports it, rate-limited.
func (m *Machine) foreignSeen(now time.Time, p *arp.Packet) {
	m.stats.ForeignClaims++
	mac := p.SenderHardwareAddr
	if now.Sub(m.fcWindow) >= time.Second || now.Before(m.fcWindow) {
		m.fcWindow, m.fcInWindow = now, 0
	}
	if m.fcInWindow >= maxForeignReports || bytes.Equal(mac, m.fcLastMAC) && now.Sub(m.fcLast) < time.Second {
		m.fcSuppressed++
		return
	}
	m.fcInWindow++
	m.fcLast, m.fcLastMAC = now, slices.Clone(mac)
	m.emit(ForeignClaim{MAC: slices.Clone(mac), VIP: p.SenderIP, Suppressed: m.fcSuppressed})
	m.fcSuppressed = 0
}

// answerProbe: with AuthRequired the holder answers a standby's check
// itself, authenticated, since its kernel's reply no longer counts.
func (m *Machine) answerProbe(now time.Time, p *arp.Packet, pr *peer) {
	if !m.p.AuthRequired || p.TargetIP != m.p.VIPs[0] || p.Trailer == nil || p.Trailer.Kind == arp.KindRelease {
		return
	}
	if !pr.lastAnswer.IsZero() && now.Sub(pr.lastAnswer) < m.p.Timing.CheckInterval/2 {
		m.stats.Throttled++
		return
	}
	pr.lastAnswer = now
	m.emit(Send{Packet: arp.NewReply(m.p.MAC, p.SenderHardwareAddr, m.p.VIPs[0], p.SenderIP, m.trailer(arp.KindAnnounce, arp.FlagHolder))})
}

// ignored counts a command frame not obeyed and logs it now and then.
func (m *Machine) ignored(now time.Time, msg string, attrs ...any) {
	m.stats.Ignored++
	if !m.ignoreNoteAt.IsZero() && now.Sub(m.ignoreNoteAt) < DefendInterval && !now.Before(m.ignoreNoteAt) {
		return
	}
	m.ignoreNoteAt = now
	m.note(slog.LevelWarn, msg, attrs...)
}

func (m *Machine) ignoredRelease(now time.Time, p *arp.Packet) {
	holder := "none known"
	if m.holder != nil {
		holder = m.who(m.holder)
	}
	m.ignored(now, "ignored a release of the VIP from a node that is not the current holder", "from", m.who(p.SenderHardwareAddr), "holder", holder)
}

func (m *Machine) refuseTakeover(now time.Time, pr *peer) {
	m.ignored(now, "ignored a takeover request: preempt is off in this node's configuration", "from", m.who(pr.mac), "priority", pr.priority)
}

// blocked reports whether we may not take over from the current holder
// (fencing required, holder not allowed).
func (m *Machine) blocked() bool {
	return m.fenceBlocked != nil && bytes.Equal(m.holder, m.fenceBlocked)
}

// blockedNote says, loudly and again every DefendInterval, that the VIP
// stays on no node.
func (m *Machine) blockedNote(now time.Time, why string) {
	if !m.blockedAt.IsZero() && now.Sub(m.blockedAt) < DefendInterval && !now.Before(m.blockedAt) {
		return
	}
	m.blockedAt = now
	m.note(slog.LevelError, "not taking over: the vanished holder is not in peers, so fencing (required) may not run against it; the VIP stays on no node until it answers again, another node claims, or an operator acts",
		"holder", m.who(m.fenceBlocked), "why", why)
}

// mayFollow counts a switch to the new claimant of p; false when
// maxSwitches claimants in a row never answered a check: then p is not
// followed (no holder change, no reset of misses, no aborted claim).
func (m *Machine) mayFollow(now time.Time, p *arp.Packet) bool {
	if m.switches < maxSwitches {
		m.switches++
		return true
	}
	m.stats.Throttled++
	if m.switchNoteAt.IsZero() || now.Sub(m.switchNoteAt) >= DefendInterval || now.Before(m.switchNoteAt) {
		m.switchNoteAt = now
		m.note(slog.LevelWarn, "not following another new claimant of the VIP: the last ones never answered a check (forged announcements?)",
			"claimant", m.who(p.SenderHardwareAddr), "holder", m.who(m.holder))
	}
	return false
}

// holderAnswering reports whether the current holder answered a check of
// ours and missed none since: then only an answer to a check (not a
// gratuitous claim) makes us follow another MAC.
func (m *Machine) holderAnswering() bool {
	return m.holder != nil && m.holderAnswers > 0 && m.misses == 0
}
