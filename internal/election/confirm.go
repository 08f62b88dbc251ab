package election

import "time"

// Telling loss from death.
//
// A standby's check is a round trip: its probe and the holder's answer
// each cross the holder's link, so with a fraction q of frames lost both
// ways on that link a check goes unanswered with p = 1-(1-q)^2 (0.36 at
// q = 20 %). Misses unanswered checks in a row at CheckInterval happen
// often under such loss (default profile: about 0.6 times a second at
// q = 20 %), and every one was a false failover.
//
// So a standby that knows its holder confirms a miss: after the first
// unanswered check it checks again quickly, confirmPerCheck times per
// CheckInterval, for the (Misses-1) check intervals it would have waited
// anyway, and the holder counts as lost only when every one of these
// 1+(Misses-1)*confirmPerCheck probes went unanswered (an answer to any of
// them, even a late one, ends the confirmation). A dead holder answers
// none of them, so a power-off is detected exactly as fast as with Misses
// plain checks; a holder behind a lossy link needs all N probes lost in a
// row: N = 21 for Misses 3, and a false failover happens at a rate of about
// (1/CheckInterval)*(1-p)*p^N per second (6e-9/s for the default profile at
// q = 20 %, see the README for the table). The probes stay unicast to the
// holder and their count is bounded: at most N per loss episode.
//
// Without a known holder (a starting node probing a free VIP) the plain
// Misses checks remain: nothing answers there, and RFC 5227 spaces probes.

// confirmPerCheck is how many quick checks replace each check interval
// while a miss is being confirmed.
const confirmPerCheck = 10

// confirmInterval is the spacing of the quick checks.
func (m *Machine) confirmInterval() time.Duration {
	return max(m.p.Timing.CheckInterval/confirmPerCheck, 500*time.Microsecond)
}

// confirmChecks is how many quick checks confirm a miss (0: none, the
// plain Misses checks decide).
func (m *Machine) confirmChecks() int {
	return (m.p.Timing.Misses - 1) * confirmPerCheck
}

// countMiss records an unanswered check.
func (m *Machine) countMiss() {
	switch {
	case m.confirmLeft > 0 && m.misses > 0: // (an answer resets misses: a new episode)
		m.confirmLeft--
		if m.confirmLeft == 0 {
			m.misses = m.p.Timing.Misses // every quick check went unanswered
		}
	case m.misses == 0 && m.holder != nil && m.confirmChecks() > 0:
		m.misses = 1
		m.confirmLeft = m.confirmChecks()
	default:
		m.misses++
	}
}

// silentChecks is how many probes in a row the holder left unanswered
// when it is declared lost.
func (m *Machine) silentChecks() int {
	if m.holder != nil && m.confirmChecks() > 0 {
		return 1 + m.confirmChecks()
	}
	return m.misses
}
