package election

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// This file holds what makes failover service-aware: health, fencing,
// planned handover and preemption.

// health takes the checks' verdict.
func (m *Machine) health(now time.Time, ev Health) {
	if ev.Healthy == m.healthy && m.p.HasChecks {
		return
	}
	m.healthy = ev.Healthy
	m.keptNoticed, m.refusing = false, false
	if ev.Healthy {
		m.note(slog.LevelInfo, "local service healthy", "detail", ev.Detail)
	} else {
		m.note(slog.LevelWarn, "local service unhealthy", "detail", ev.Detail)
	}
	switch m.state {
	case StateHolder:
		m.reviewHealth(now)
	case StateCandidate, StateFencing:
		if !ev.Healthy && !m.p.KeepUnhealthy {
			m.toWaiting(now, StateStandby, nil, "local service unhealthy: not claiming")
		}
	}
}

// reviewHealth makes an unhealthy holder hand the VIP away, at once, when a
// healthy standby can take it; with the keep policy and no healthy standby
// known it keeps the VIP (and says so, loudly, once).
func (m *Machine) reviewHealth(now time.Time) {
	if m.state != StateHolder || m.healthy {
		return
	}
	if m.p.KeepUnhealthy && !m.liveHealthyPeer(now) {
		if !m.keptNoticed {
			m.keptNoticed = true
			m.note(slog.LevelError, "local service unhealthy and no healthy standby known: keeping the VIP (unhealthy_policy keep)")
		}
		return
	}
	m.release(now, "local service unhealthy: releasing to a healthy standby")
}

// liveHealthyPeer reports whether a standby that would claim is known.
func (m *Machine) liveHealthyPeer(now time.Time) bool {
	for _, p := range m.peers {
		if !p.holder && !p.passive && now.Sub(p.lastSeen) <= 3*m.p.Timing.BeaconInterval {
			return true
		}
	}
	return false
}

// claim takes the VIP, fencing a vanished holder first when configured.
//
// Fencing runs only against a holder established by observation: one that
// answered one of our checks (a reply to us while a check was outstanding;
// with AuthRequired, an authenticated one), not a MAC that announcements
// named. A holder that was
// never established proves nothing about who had the VIP: we check the
// VIP afresh, as a starting node does, and claim without fencing if
// nobody answers. With fencing required, a holder not in FenceAllowed is
// never fenced, and we do not take over without fencing: we stay standby
// and say so at ERROR until it answers again or another node claims.
func (m *Machine) claim(now time.Time, reason string) {
	if m.p.Quorum {
		m.wantKey() // queue for the key while fencing, too
	}
	if m.p.Fencing == FenceOff || !m.vanished || m.departed == nil {
		m.toHolder(now, reason, false)
		return
	}
	if !m.departedEst && m.prevHolder != nil {
		// We followed a claimant that never answered away from a holder
		// that had: that one vanished, and is the one to fence.
		m.note(slog.LevelWarn, "the last claimant never answered a check: fencing the holder that did", "claimant", m.who(m.departed), "holder", m.who(m.prevHolder))
		m.departed, m.departedEst = m.prevHolder, true
	}
	if !m.departedEst {
		m.note(slog.LevelWarn, "not fencing the vanished holder: it was never established as holder (too few answers to our checks); checking the VIP afresh",
			"holder", m.who(m.departed), "needed_answers", m.establishAnswers())
		m.vanished = false
		m.toWaiting(now, StateProbing, nil, fmt.Sprintf("holder %s was never established: checking whether the VIP is in use", m.who(m.departed)))
		return
	}
	if m.p.Fencing == FenceRequired && m.p.FenceAllowed != nil && !slices.ContainsFunc(m.p.FenceAllowed, func(a net.HardwareAddr) bool { return bytes.Equal(a, m.departed) }) {
		m.fenceBlocked = slices.Clone(m.departed)
		m.blockedAt = time.Time{}
		m.toWaiting(now, StateStandby, m.departed, fmt.Sprintf("vanished holder %s is not in peers: not fencing it, and not taking over without fencing (fencing required)", m.who(m.departed)))
		m.blockedNote(now, reason)
		return
	}
	m.fenceTarget = m.departed
	m.clearTimers()
	m.transition(StateFencing, fmt.Sprintf("fencing vanished holder %s before taking over", m.who(m.fenceTarget)))
	m.fenceBackoff = time.Second
	m.startFence(now)
}

func (m *Machine) startFence(now time.Time) {
	m.fenceRunning = true
	m.fenceRetry = time.Time{}
	m.fenceAttempt++
	m.emit(Fence{MAC: m.fenceTarget, LastSeen: m.fenceSeen, Attempt: m.fenceAttempt})
	m.claimingProbe(now)
}

// claimingProbe keeps lower standbys waiting while we fence.
func (m *Machine) claimingProbe(now time.Time) {
	m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindProbe, arp.FlagClaiming))})
	m.nextClaimProbe = now.Add(m.p.Timing.CheckInterval)
}

func (m *Machine) fencingTick(now time.Time) {
	if !m.nextClaimProbe.IsZero() && !now.Before(m.nextClaimProbe) {
		m.claimingProbe(now)
	}
	if !m.fenceRetry.IsZero() && !now.Before(m.fenceRetry) {
		m.startFence(now)
	}
}

func (m *Machine) fenceResult(now time.Time, err error) {
	if m.state != StateFencing || !m.fenceRunning {
		return
	}
	m.fenceRunning = false
	switch {
	case err == nil:
		m.fenceKey(m.fenceTarget)
		m.toHolder(now, fmt.Sprintf("fenced %s; taking over", m.who(m.fenceTarget)), false)
	case m.p.Fencing == FenceBestEffort:
		m.note(slog.LevelError, "fencing failed; taking over anyway (fencing policy best-effort)", "target", m.who(m.fenceTarget), "err", err.Error())
		m.toHolder(now, fmt.Sprintf("fencing %s failed (best-effort): taking over", m.who(m.fenceTarget)), false)
	default:
		m.note(slog.LevelError, "fencing failed; not taking over (fencing policy required), retrying", "target", m.who(m.fenceTarget), "err", err.Error(), "retry_in", m.fenceBackoff.String())
		m.fenceRetry = now.Add(m.fenceBackoff)
		m.fenceBackoff = min(2*m.fenceBackoff, 30*time.Second)
	}
}

// handover hands the VIP to a named or the best live standby.
func (m *Machine) handover(now time.Time, ev Handover) {
	if m.state != StateHolder {
		m.emit(Refused{Reason: "not holding the VIP (state " + m.state.String() + ")"})
		return
	}
	var best *peer
	for _, p := range m.peers {
		if p.holder || p.passive || now.Sub(p.lastSeen) > 3*m.p.Timing.BeaconInterval {
			continue
		}
		if (ev.To != 0 || ev.Name != "") && p.nodeID != ev.To && (ev.Name == "" || p.name != ev.Name && m.p.PeerNames[string(p.mac)] != ev.Name) {
			continue
		}
		if best == nil || p.priority > best.priority || p.priority == best.priority && bytes.Compare(p.mac, best.mac) < 0 {
			best = p
		}
	}
	if best == nil {
		if ev.To != 0 {
			m.emit(Refused{Reason: "that node is not a live standby willing to take the VIP"})
		} else {
			m.emit(Refused{Reason: "no live standby willing to take the VIP"})
		}
		return
	}
	m.handTo(now, best, fmt.Sprintf("handover to %s (priority %d) on request", m.who(best.mac), best.priority))
}

// handTo deletes the VIP and tells one standby, by unicast, to claim it at
// once: the gap is one frame and one netlink call, and there is never a
// moment with two holders.
func (m *Machine) handTo(now time.Time, to *peer, reason string) {
	m.clearTimers()
	if m.keyFirstHandoff(now, to, StateStandby, reason) {
		return
	}
	m.emit(m.drainAndRemove(now))
	m.releaseKey()
	for range 2 {
		m.emit(Send{Packet: arp.NewProbe(m.p.MAC, to.mac, m.p.VIPs[0], m.trailer(arp.KindRelease, arp.FlagPassive))})
	}
	m.toWaiting(now, StateStandby, to.mac, reason)
	m.handoverUntil = now.Add(max(2*m.p.Timing.CheckInterval, 20*time.Millisecond))
}

// preemptTick, in standby with preemption on, asks a worse holder to hand
// over once we have been ready for PreemptDelay, and again each second
// until it does.
func (m *Machine) preemptTick(now time.Time) {
	if m.state != StateStandby || !m.p.Preempt || m.passive() || m.holder == nil || !m.answered && m.misses > 0 {
		m.preemptAt = time.Time{}
		return
	}
	h := m.peers[string(m.holder)]
	if h == nil || m.beatsUs(h) {
		m.preemptAt = time.Time{}
		return
	}
	if m.preemptAt.IsZero() {
		m.preemptAt = now.Add(m.p.PreemptDelay)
	}
	if !now.Before(m.preemptAt) {
		m.note(slog.LevelInfo, "asking the lower-priority holder to hand over (preempt)", "holder", m.who(h.mac), "holder_priority", h.priority)
		m.emit(Send{Packet: arp.NewProbe(m.p.MAC, h.mac, m.p.VIPs[0], m.trailer(arp.KindTakeover, 0))})
		m.preemptAt = now.Add(time.Second)
	}
}

// beatsUs reports whether peer p wins over us.
func (m *Machine) beatsUs(p *peer) bool { return m.beats(p.priority, p.mac) }
