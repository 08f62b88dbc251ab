package election

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// State is where a group's machine stands.
type State uint8

const (
	StateInit      State = iota // not started
	StateProbing                // checking whether the VIP is in use, no holder known yet
	StateStandby                // another node holds the VIP; we keep checking it
	StateCandidate              // the VIP is free; waiting our turn to claim it
	StateHolder                 // we hold the VIP
	StateFault                  // we cannot hold the VIP (link down, claim failed)
	StateStopped                // stopped for good
	StateFencing                // fencing the vanished holder before claiming
	StateReleasing              // gave the quorum key up, keeping the VIP until another node owns the key (quorum.go)
)

// stateNames spell the states everywhere: logs, the control socket's
// status, metrics labels, hook variables and the configuration's hook
// triggers.
var stateNames = [...]string{"init", "probing", "standby", "candidate", "holder", "fault", "stopped", "fencing", "releasing"}

// States returns every state, in order.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// HasVIPs reports whether a machine in state s keeps the VIPs on this
// node: a holder, and one releasing them key first.
func (s State) HasVIPs() bool { return s == StateHolder || s == StateReleasing }

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// MarshalText spells the state by its name (JSON: a string).
func (s State) MarshalText() ([]byte, error) {
	if int(s) >= len(stateNames) {
		return nil, fmt.Errorf("unknown state %d", s)
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown state %q (want one of %s)", b, strings.Join(stateNames[:], ", "))
}

// FaultCause says why a machine entered StateFault, and so how it leaves.
type FaultCause uint8

const (
	NoFault          FaultCause = iota // the transition is not to StateFault
	FaultLinkDown                      // link down or carrier lost: waits for LinkChanged{Up: true}
	FaultClaimFailed                   // adding the VIPs failed: probes again after faultRetry
	FaultSendFailed                    // frames could not be sent (SendFailed): probes again after faultRetry
	FaultQuorumLost                    // the quorum key was lost or its lease deadline passed (quorum.go): probes again after faultRetry, still wanting the key
)

var faultCauseNames = [...]string{"none", "link-down", "claim-failed", "send-failed", "quorum-lost"}

func (c FaultCause) String() string {
	if int(c) < len(faultCauseNames) {
		return faultCauseNames[c]
	}
	return fmt.Sprintf("fault-cause(%d)", c)
}

// Retries says whether the machine leaves a fault of this cause by itself,
// after faultRetry, rather than on the event that ends the cause.
func (c FaultCause) Retries() bool {
	return c == FaultClaimFailed || c == FaultSendFailed || c == FaultQuorumLost
}

// faultRetry is how long a fault that Retries waits before probing again.
const faultRetry = time.Second

// ForeignPolicy says what a holder does when a host that is not floatip
// keeps claiming the VIP.
type ForeignPolicy uint8

const (
	// Yield follows RFC 5227 section 2.4 (b): defend once, and give the
	// address up if the conflict repeats within DefendInterval.
	Yield ForeignPolicy = iota
	// Defend keeps the VIP and re-announces at most once a second.
	Defend
)

// DefendInterval is RFC 5227's DEFEND_INTERVAL.
const DefendInterval = 10 * time.Second

// defendEvery limits how often the Defend policy answers a foreign claimant.
const defendEvery = time.Second

// Timing holds the protocol's knobs; see the config package for their meaning.
type Timing struct {
	CheckInterval    time.Duration
	Misses           int
	ClaimSlot        time.Duration
	AnnounceCount    int
	AnnounceInterval time.Duration
	Lifetime         time.Duration
	RenewInterval    time.Duration
	BeaconInterval   time.Duration
}

// Params describe one VIP group on one node.
type Params struct {
	VIPs          []netip.Addr // the first one is probed for the whole group
	MAC           net.HardwareAddr
	Priority      uint8
	NodeID        uint32
	Timing        Timing
	ForeignPolicy ForeignPolicy

	// HasChecks says the group has health checks: the node counts as
	// unhealthy (never claims) until the first Health event says otherwise.
	HasChecks bool
	// KeepUnhealthy is the "keep" policy for when every node is unhealthy:
	// an unhealthy holder keeps the VIP while no healthy standby is known,
	// and an unhealthy standby claims a free VIP when no healthy node does.
	// Without it an unhealthy node never holds.
	KeepUnhealthy bool
	// Fencing is the policy for taking over from a holder that vanished.
	Fencing FencePolicy
	// Preempt lets this node, when healthy and better than the holder, ask
	// it for the VIP after PreemptDelay.
	Preempt      bool
	PreemptDelay time.Duration

	// AuthRequired says frames must be authenticated (Frame.Authenticated)
	// to count: an unauthenticated frame never changes state, never counts
	// as a peer, never resets misses or defers a claim. It is only looked
	// at for claims of our VIPs by hosts that are not floatip peers
	// (ForeignClaim), which a holder with the Defend policy defends against
	// (rate-limited); it never yields to one. A holder also answers each
	// authenticated standby's probe with an authenticated reply, since the
	// kernel's own replies carry no tag and no longer count as liveness.
	AuthRequired bool
	// FenceAllowed, when not nil, lists the only MACs that fencing:
	// required may fence (the daemon fills it from peers:). A vanished
	// holder not in it is not fenced, and the node does not take over: it
	// stays standby and says so at ERROR until that holder answers again or
	// another node claims.
	FenceAllowed []net.HardwareAddr
	// Epoch, when set, is the instant the node's routine timers count
	// from, the same for all its groups: a standby probes its holder, and
	// a holder beacons and renews, on whole multiples of the interval after
	// it (see onOrAfter, onOrBefore), so that a node with many groups wakes
	// once for all of them rather than once for each. Zero: each timer
	// counts from the event that set it. Reconfigure keeps it.
	Epoch time.Time

	// Name is this node's name, sent in every frame's trailer (left out
	// when it is not a valid arp name).
	Name string
	// PeerNames names peers by MAC (string of its bytes): the peers: of
	// the configuration. They win over names learned from frames.
	PeerNames map[string]string

	// Quorum says the group has a referee (quorum.go): the node holds
	// only while it owns the group's key (Quorum events), and claims only
	// when granted it.
	Quorum bool
	// QuorumTTL is the referee's lease TTL: a standby granted the key
	// after a key-first stop waits at most this (plus
	// quorum.KernelSlack) for the old holder's VIP to be gone. Zero
	// counts as quorum.MaxTTL.
	QuorumTTL time.Duration
}

// FencePolicy says whether to fence (STONITH) a vanished holder first.
type FencePolicy uint8

const (
	FenceOff        FencePolicy = iota // claim without fencing
	FenceBestEffort                    // fence, then claim whatever the result
	FenceRequired                      // claim only after fencing succeeded
)

// renewMargin is how close to the lifetime's end a renewal may still be sent.
// Past it the daemon was suspended long enough that the kernel may have
// removed the VIP and a standby taken it, so renewing could create a
// duplicate.
const renewMargin = 250 * time.Millisecond

// Machine is one group's state machine. It is not safe for concurrent use:
// one goroutine owns it.
type Machine struct {
	p     Params
	state State
	out   []Action

	peers map[string]*peer // by MAC, learned from trailers

	// waiting states (probing, standby)
	holder      net.HardwareAddr // known holder's MAC, nil if unknown
	departed    net.HardwareAddr // holder we just lost; not a candidate
	misses      int
	confirmLeft int  // quick checks still to go before the holder counts as lost (see confirmChecks)
	outstanding bool // a probe was sent and not yet answered
	answered    bool
	nextProbe   time.Time
	nextBeacon  time.Time
	verifyUntil time.Time // checking the holder after a worse peer's claim intent

	// candidate
	claimAt time.Time

	// holder
	verifyLeft     int // probes left to verify an address found configured at start
	lastRenew      time.Time
	nextRenew      time.Time
	announceLeft   int
	nextAnnounce   time.Time
	foreignMAC     net.HardwareAddr // unknown claimant we are waiting to hear a trailer from
	foreignUntil   time.Time
	lastForeign    time.Time // last time we defended against a non-floatip claimant
	lastForeignMAC net.HardwareAddr

	// fault
	retryAt time.Time

	held      bool      // maintenance hold: never claim
	probeSent time.Time // when the outstanding probe left, for its round trip
	stats     Stats

	healthy        bool      // the local service passes its checks (true without checks)
	keptNoticed    bool      // logged that we keep the VIP while unhealthy
	vanished       bool      // the holder we lost went silent (not released): fence it
	refusing       bool      // logged that we do not claim (hold, unhealthy)
	lastCall       bool      // candidate: the final check before claiming was sent
	holderSilent   bool      // the holder's daemon stopped beaconing
	watchSince     time.Time // when we began waiting on the current holder; its silence counts from then
	relaxed        bool      // another group checks our holder at full pace (Pace)
	handoverUntil  time.Time // after a handover: the target must claim by then
	fenceTarget    net.HardwareAddr
	fenceSeen      time.Time // when the fence target was last heard
	fenceRunning   bool
	fenceAttempt   int // numbers Fence actions; a FenceResult must carry the current one
	fenceRetry     time.Time
	fenceBackoff   time.Duration
	nextClaimProbe time.Time // fencing: repeat our claiming probe
	preemptAt      time.Time
	lastHeard      time.Time // when the holder last answered

	guard             // wire hygiene: see guard.go
	qs    quorumState // the referee's key: see quorum.go
}

// Stats count what the machine did, for status and metrics.
type Stats struct {
	Claims, Releases, Conflicts, ProbesSent, ProbesUnanswered, Transitions uint64
	// Spoofed counts frames from the wire that carried our own MAC as
	// sender: someone impersonates this node. They are never acted on.
	Spoofed uint64
	// ForeignClaims counts claims of our VIPs (announcements, replies) by
	// hosts that are not (authenticated) floatip peers.
	ForeignClaims uint64
	// Throttled counts conflict answers (defends, re-announcements,
	// verification probes) left unsent by the rate limit.
	Throttled uint64
	// Unconfirmed counts claims by a better peer that a holder did not
	// yield to because the claimant did not confirm them (see conflict).
	Unconfirmed uint64
	// Ignored counts Release and Takeover frames not obeyed: a release
	// not from the current holder, a takeover with preempt off; and
	// key-first notices right after their holder beaconed as holder.
	Ignored uint64
	// BadNames counts peers' frames whose node name did not validate.
	BadNames uint64
}

// Stats returns the counters so far.
func (m *Machine) Stats() Stats { return m.stats }

// Priority returns the priority the machine advertises.
func (m *Machine) Priority() uint8 { return m.p.Priority }

// Held reports whether the maintenance hold is on.
func (m *Machine) Held() bool { return m.held }

type peer struct {
	mac        net.HardwareAddr
	priority   uint8
	nodeID     uint32
	holder     bool
	claiming   bool
	passive    bool
	lastSeen   time.Time
	firstSeen  time.Time
	lastAnswer time.Time // AuthRequired holder: when we last answered its probe
	name       string    // node name from its frames (see peers.go)
	nameAuthed bool      // name came in an authenticated frame
}

// New returns a machine in StateInit. Params are assumed validated.
func New(p Params) *Machine {
	return &Machine{p: p, peers: make(map[string]*peer), healthy: !p.HasChecks, guard: newGuard()}
}

// Healthy reports whether the local service passes its checks.
func (m *Machine) Healthy() bool { return m.healthy }

// passive reports whether this node will not claim the VIP now, so its
// frames say so and others do not wait for it.
func (m *Machine) passive() bool { return m.held || !m.healthy }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Holder returns the MAC of the node believed to hold the VIP, our own when
// we hold it, or nil.
func (m *Machine) Holder() net.HardwareAddr {
	if m.state == StateHolder {
		return m.p.MAC
	}
	return m.holder
}

// Deadline returns when the machine next wants a Tick; zero when it waits
// for events only.
func (m *Machine) Deadline() time.Time {
	var d time.Time
	timers := []time.Time{m.nextProbe, m.verifyUntil, m.claimAt, m.nextRenew, m.nextAnnounce, m.foreignUntil, m.retryAt, m.fenceRetry, m.nextClaimProbe, m.preemptAt, m.handoverUntil, m.yieldUntil}
	if m.state == StateHolder {
		// Waiting states send their beacon with the next probe instead.
		timers = append(timers, m.nextBeacon)
	}
	timers = append(timers, m.quorumTimers()...)
	for _, t := range timers {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// Handle feeds one event at time now and returns the actions to carry out,
// in order.
//
// A holder first checks whether it went without a renewal past its
// lifetime (the process was stopped or starved): then the kernel may have
// dropped the VIP and a standby taken it, so it removes the VIP and probes
// again before it looks at the event. A thawed holder's queued frames (the
// new holder's announcements) and timers must never be handled as holder.
func (m *Machine) Handle(now time.Time, ev Event) []Action {
	m.out = nil
	if _, stop := ev.(Stop); !stop {
		m.checkSuspended(now)
		m.checkQuorumDeadline(now)
	}
	switch ev := ev.(type) {
	case Start:
		m.start(now, ev)
	case Tick:
		m.tick(now)
	case Frame:
		m.frame(now, ev.Packet, ev.Authenticated)
	case LinkChanged:
		m.link(now, ev.Up)
	case AddrChanged:
		m.addr(now, ev)
	case ClaimFailed:
		if m.state == StateHolder {
			m.emit(RemoveVIPs{})
			m.toFault(now, FaultClaimFailed, "adding the VIP failed: "+ev.Err.Error())
		}
	case SendFailed:
		m.sendFailed(now, ev)
	case Stop:
		m.stop(now)
	case Release:
		if m.state != StateHolder {
			m.emit(Refused{Reason: "not holding the VIP (state " + m.state.String() + ")"})
			break
		}
		m.release(now, "released on request: "+ev.Reason)
	case Hold:
		if ev.On == m.held {
			break
		}
		m.held = ev.On
		m.note(slog.LevelInfo, "maintenance hold", "on", ev.On)
		if ev.On && m.state == StateHolder {
			m.release(now, "maintenance hold: handing the VIP away")
		}
		if ev.On && (m.state == StateCandidate || m.state == StateFencing) {
			// (Leaving fencing also abandons the fence: its late result
			// is ignored and the daemon cancels the command.)
			m.toWaiting(now, StateStandby, nil, "maintenance hold: not claiming")
		}
	case Reconfigure:
		vips, epoch := m.p.VIPs, m.p.Epoch
		m.p = ev.Params
		m.p.VIPs, m.p.Epoch = vips, epoch
	case Pace:
		m.relaxed = ev.Relaxed
	case PeerLost:
		if m.state == StateStandby && m.holder != nil && bytes.Equal(m.holder, ev.MAC) && !m.held {
			m.vanished, m.fenceSeen = true, m.lastHeard
			m.toCandidate(now, fmt.Sprintf("holder %s silent (found by another group of this node)", m.who(ev.MAC)))
		}
	case Health:
		m.health(now, ev)
	case FenceResult:
		if ev.Attempt == m.fenceAttempt {
			m.fenceResult(now, ev.Err)
		}
	case Handover:
		m.handover(now, ev)
	case Quorum:
		m.quorumEvent(now, ev.Ev)
	}
	return m.out
}

func (m *Machine) emit(a Action) { m.out = append(m.out, a) }

func (m *Machine) note(level slog.Level, msg string, attrs ...any) {
	m.emit(Note{Level: level, Msg: msg, Attrs: attrs})
}

func (m *Machine) transition(to State, reason string) {
	m.transitionCause(to, NoFault, reason)
}

// transitionCause enters to; cause says why when to is StateFault.
func (m *Machine) transitionCause(to State, cause FaultCause, reason string) {
	from := m.state
	m.state = to
	m.stats.Transitions++
	m.quorumTransition(to, cause)
	switch {
	case to == StateHolder:
		m.stats.Claims++
	case from == StateHolder:
		m.stats.Releases++
	}
	m.emit(Transition{From: from, To: to, Cause: cause, Reason: reason})
}

// clearTimers forgets every state-specific deadline.
func (m *Machine) clearTimers() {
	m.nextProbe, m.nextBeacon, m.verifyUntil, m.claimAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	m.nextRenew, m.nextAnnounce, m.foreignUntil, m.retryAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	m.fenceRetry, m.nextClaimProbe, m.preemptAt, m.handoverUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	m.foreignMAC = nil
	m.yieldMAC, m.yieldUntil = nil, time.Time{}
	m.fenceRunning = false
}

func (m *Machine) start(now time.Time, ev Start) {
	if m.state != StateInit {
		return
	}
	switch {
	case !ev.LinkUp:
		m.toFault(now, FaultLinkDown, "link is down")
	case ev.Present && m.p.Quorum:
		// The key is not ours yet (a new lease), so the VIP may not stay.
		m.emit(RemoveVIPs{})
		m.toWaiting(now, StateProbing, nil, "VIP already configured here (daemon restart) but the quorum key is not ours: removed it; checking whether the VIP is in use")
	case ev.Present:
		m.toHolder(now, "VIP already configured here (daemon restart); keeping it while verifying that no other host claims it", true)
	default:
		m.toWaiting(now, StateProbing, nil, "starting: checking whether the VIP is in use")
	}
}

// toWaiting enters probing or standby and probes at once.
func (m *Machine) toWaiting(now time.Time, s State, holder net.HardwareAddr, reason string) {
	m.clearTimers()
	m.holder = holder
	m.holderAnswers = 0
	m.waitSince = now
	m.watchSince = now
	m.misses, m.confirmLeft = 0, 0
	m.refusing = false
	m.outstanding, m.answered = false, false
	m.nextBeacon = now.Add(m.p.Timing.BeaconInterval)
	m.transition(s, reason)
	m.sendProbe(now, true)
}

// sendProbe sends the periodic check: broadcast when no holder is known or a
// beacon is due (so every node learns our priority), unicast to the holder
// otherwise (to spare the LAN broadcasts).
func (m *Machine) sendProbe(now time.Time, broadcast bool) {
	kind := arp.KindProbe
	if !m.nextBeacon.IsZero() && !now.Before(m.nextBeacon) {
		kind = arp.KindBeacon
		broadcast = true
		m.nextBeacon = now.Add(m.p.Timing.BeaconInterval)
		m.prunePeers(now)
	}
	if m.probeBcast {
		broadcast, m.probeBcast = true, false
	}
	dst := arp.Broadcast
	if !broadcast && m.holder != nil {
		dst = m.holder
	}
	if m.holder == nil {
		dst = arp.Broadcast
	}
	var flags uint8
	if m.passive() {
		flags |= arp.FlagPassive
	}
	m.emit(Send{Packet: arp.NewProbe(m.p.MAC, dst, m.p.VIPs[0], m.trailer(kind, flags))})
	m.stats.ProbesSent++
	m.probeSent = now
	m.outstanding, m.answered = true, false
	// Later rather than sooner: an answer gets the whole interval. On the
	// CheckInterval grid, a relaxed group's probes go with the leading
	// group's.
	iv := m.probeInterval(now)
	m.nextProbe = m.onOrAfter(now.Add(iv), min(iv, m.p.Timing.CheckInterval))
}

// onOrAfter returns the first instant at or after t that lies a whole
// number of steps after the epoch; t itself without an epoch.
func (m *Machine) onOrAfter(t time.Time, step time.Duration) time.Time {
	e := m.p.Epoch
	if e.IsZero() || step <= 0 || t.Before(e) {
		return t
	}
	return e.Add((t.Sub(e) + step - 1) / step * step)
}

// onOrBefore returns the last instant at or before now+d that lies a whole
// number of d after the epoch, which is after now; now+d without an epoch.
// For timers that may run early but never late (renewals, a holder's
// beacons).
func (m *Machine) onOrBefore(now time.Time, d time.Duration) time.Time {
	e, t := m.p.Epoch, now.Add(d)
	if e.IsZero() || d <= 0 || now.Before(e) {
		return t
	}
	return e.Add(t.Sub(e) / d * d)
}

// probeInterval is CheckInterval, or a fifth of it while the holder's
// daemon is silent (no beacon for three beacon intervals) but its VIP still
// answers: the daemon died or hangs, the kernel will drop the VIP when its
// lifetime runs out, and checking more often then shortens the gap.
func (m *Machine) probeInterval(now time.Time) time.Duration {
	silent := false
	if m.state == StateStandby && m.holder != nil {
		if h := m.peers[string(m.holder)]; h != nil && h.holder {
			// Not from before we followed it: after a partition heals we
			// yield on its kernel's reply, and last heard its daemon
			// before the partition.
			last := h.lastSeen
			if m.watchSince.After(last) {
				last = m.watchSince
			}
			silent = now.Sub(last) > 3*m.p.Timing.BeaconInterval
		}
	}
	if silent != m.holderSilent {
		m.holderSilent = silent
		if silent {
			m.note(slog.LevelWarn, "the holder's daemon is silent but its VIP answers: it will expire with its lifetime; checking more often", "holder", m.who(m.holder))
		}
	}
	if silent {
		return max(m.p.Timing.CheckInterval/5, 2*time.Millisecond)
	}
	if m.relaxed && m.state == StateStandby && m.holder != nil {
		// Twice the beacon interval: still inside the 3 beacon intervals
		// that peers count a standby as live, and half the broadcasts.
		return max(2*m.p.Timing.BeaconInterval, m.p.Timing.CheckInterval)
	}
	return m.p.Timing.CheckInterval
}

func (m *Machine) trailer(kind arp.Kind, flags uint8) *arp.Trailer {
	t := &arp.Trailer{Kind: kind, Priority: m.p.Priority, Flags: flags, NodeID: m.p.NodeID}
	if arp.ValidName(m.p.Name) {
		t.Name = m.p.Name
	}
	return t
}

func (m *Machine) tick(now time.Time) {
	switch m.state {
	case StateProbing, StateStandby:
		if !m.handoverUntil.IsZero() && !now.Before(m.handoverUntil) {
			m.handoverUntil = time.Time{}
			if !m.answered {
				// The standby we handed the VIP to did not take it (it
				// died a moment ago): the VIP is free and we know it.
				reason := fmt.Sprintf("handover target %s did not take the VIP: taking it back", m.who(m.holder))
				if m.passive() {
					// A hold (or a failed check) that came since the
					// handover: the rules of any other claim apply.
					m.vanished = false
					m.toCandidate(now, reason)
					if m.state != StateProbing && m.state != StateStandby {
						return
					}
				} else {
					m.toHolder(now, reason, false)
					return
				}
			}
		}
		if !m.verifyUntil.IsZero() && !now.Before(m.verifyUntil) {
			m.verifyUntil = time.Time{}
			if !m.answered {
				m.vanished, m.fenceSeen = true, m.lastHeard
				m.toCandidate(now, "a lower-priority node is claiming and the holder did not answer our check")
				if m.state != StateProbing && m.state != StateStandby {
					return
				}
			}
		}
		if !m.nextProbe.IsZero() && !now.Before(m.nextProbe) {
			if m.outstanding && !m.answered {
				m.stats.ProbesUnanswered++
				m.countMiss()
			} else if m.answered {
				m.misses, m.confirmLeft = 0, 0
			}
			if m.misses >= m.p.Timing.Misses && !m.held && m.blocked() {
				m.blockedNote(now, "still silent")
			} else if m.misses >= m.p.Timing.Misses && !m.held {
				m.vanished, m.fenceSeen = true, m.lastHeard
				reason := fmt.Sprintf("%d consecutive probes unanswered: the VIP is free", m.misses)
				if m.holder != nil {
					reason = fmt.Sprintf("holder %s silent for %d consecutive probes", m.who(m.holder), m.silentChecks())
					m.emit(HolderLost{MAC: slices.Clone(m.holder)})
				}
				m.toCandidate(now, reason)
				if m.state != StateProbing && m.state != StateStandby {
					return
				}
				// Not claiming (unhealthy, held): keep checking.
			}
			m.sendProbe(now, false)
			if m.confirmLeft > 0 {
				m.nextProbe = now.Add(m.confirmInterval())
			}
		}
		m.preemptTick(now)
	case StateCandidate:
		if m.qs.awaiting {
			m.claimAt = time.Time{} // a deferral's; the key decides now
			m.awaitTick(now)
			return
		}
		if !m.claimAt.IsZero() && !now.Before(m.claimAt) {
			if !m.lastCall {
				// Better standbys had their turn; ask once more, so that one
				// that claimed a moment ago (a busy machine adding many
				// addresses) answers before we claim too.
				m.lastCall = true
				m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindProbe, arp.FlagClaiming))})
				m.claimAt = now.Add(max(m.p.Timing.ClaimSlot/2, time.Millisecond))
				return
			}
			m.claim(now, "our turn came and nobody claimed the VIP")
		}
	case StateFencing:
		m.fencingTick(now)
	case StateHolder:
		m.holderTick(now)
	case StateFault:
		if !m.retryAt.IsZero() && !now.Before(m.retryAt) {
			m.toWaiting(now, StateProbing, nil, "retrying after a fault")
		}
	case StateReleasing:
		if !now.Before(m.qs.ho.until) {
			m.finishHandoff(now, "no other node took the quorum key in time")
		}
	}
}

// toCandidate starts our turn to claim: at once when no better live standby
// is known, otherwise after rank × ClaimSlot, announcing the intent so that a
// better standby that has not noticed the silence yet checks and claims first.
func (m *Machine) toCandidate(now time.Time, reason string) {
	refuse := func(level slog.Level, msg string) {
		if !m.refusing { // once per episode, not every check interval
			m.refusing = true
			m.note(level, msg, "why", reason)
		}
	}
	if m.held { // (kept for Release frames; the misses path checks held)
		refuse(slog.LevelInfo, "not claiming: maintenance hold")
		return
	}
	if m.fenceBlocked != nil && bytes.Equal(m.holder, m.fenceBlocked) {
		m.blockedNote(now, reason)
		return
	}
	extra := time.Duration(0)
	if !m.healthy {
		if !m.p.KeepUnhealthy {
			refuse(slog.LevelWarn, "not claiming: the local service is unhealthy")
			return
		}
		if m.liveHealthyPeer(now) {
			refuse(slog.LevelWarn, "not claiming: unhealthy, and a healthy standby exists")
			return
		}
		// Every node seems unhealthy: rather a VIP on an unhealthy node than
		// none, but give any healthy node a head start.
		extra = time.Duration(m.p.Timing.Misses) * m.p.Timing.CheckInterval
		reason += "; the local service is unhealthy but no healthy node is known (unhealthy_policy keep)"
	}
	m.departedEst = m.holder != nil && m.holderAnswers >= m.establishAnswers()
	m.departed, m.holder = m.holder, nil
	m.clearTimers()
	m.lastCall = false
	rank := m.rank(now)
	m.transition(StateCandidate, fmt.Sprintf("%s (rank %d among live standbys)", reason, rank))
	m.freeAt, m.deferCapped = now, false
	if rank == 0 && extra == 0 {
		m.claim(now, "highest-priority live standby")
		return
	}
	m.claimAt = now.Add(time.Duration(rank)*m.p.Timing.ClaimSlot + extra)
	m.claimBase = m.claimAt
	// A better peer that is already claiming (fencing, perhaps) repeats its
	// claiming probe every CheckInterval: wait past its next one.
	for _, p := range m.peers {
		if p.claiming && !p.passive && !bytes.Equal(p.mac, m.departed) && m.beats(p.priority, p.mac) {
			m.deferClaim(now, p.lastSeen.Add(m.p.Timing.ClaimSlot+m.p.Timing.CheckInterval), p)
		}
	}
	m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindProbe, arp.FlagClaiming))})
}

// rank counts live peers that would win a claim against us.
func (m *Machine) rank(now time.Time) int {
	live := 3 * m.p.Timing.BeaconInterval
	n := 0
	for _, p := range m.peers {
		if p.holder || p.passive || now.Sub(p.lastSeen) > live || bytes.Equal(p.mac, m.departed) {
			continue
		}
		// A MAC first heard claiming, once, is no live standby yet: a
		// forger sending each claiming probe from a fresh MAC must not push
		// every real node's turn back alike, which would let whoever
		// noticed first claim, not the best.
		if p.claiming && !p.lastSeen.After(p.firstSeen) {
			continue
		}
		if m.beats(p.priority, p.mac) {
			n++
		}
	}
	return min(n, maxRank)
}

// beats reports whether a node with priority prio and MAC mac wins over us:
// higher priority first, then the lower MAC.
func (m *Machine) beats(prio uint8, mac net.HardwareAddr) bool {
	if prio != m.p.Priority {
		return prio > m.p.Priority
	}
	return bytes.Compare(mac, m.p.MAC) < 0
}

func (m *Machine) toHolder(now time.Time, reason string, verify bool) {
	if m.p.Quorum && !m.mayHold(now) {
		m.awaitKey(now, reason)
		return
	}
	m.clearTimers()
	m.switches, m.prevHolder = 0, nil
	m.holder, m.departed = nil, nil
	m.transition(StateHolder, reason)
	if !verify && len(m.p.VIPs) > 1 {
		m.emit(m.addVIPs(true))
		m.emit(Send{Packet: arp.NewAnnouncement(m.p.MAC, m.p.VIPs[0], m.trailer(arp.KindAnnounce, arp.FlagHolder))})
	}
	m.emit(m.addVIPs(false))
	m.lastRenew = now
	m.nextRenew = m.onOrBefore(now, m.p.Timing.RenewInterval)
	m.nextBeacon = m.onOrBefore(now, m.p.Timing.BeaconInterval)
	if verify {
		// Announcing before verifying would pull clients to us while another
		// node may hold the VIP; probe first, announce when nobody answered.
		m.verifyLeft = m.p.Timing.Misses
		m.sendHolderProbe(now)
		m.nextAnnounce = now.Add(m.p.Timing.CheckInterval)
		return
	}
	m.verifyLeft = 0
	m.startAnnouncing(now)
}

func (m *Machine) startAnnouncing(now time.Time) {
	m.announceLeft = m.p.Timing.AnnounceCount
	m.announce(now)
}

func (m *Machine) announce(now time.Time) {
	for _, vip := range m.p.VIPs {
		m.emit(Send{Packet: arp.NewAnnouncement(m.p.MAC, vip, m.trailer(arp.KindAnnounce, arp.FlagHolder))})
	}
	m.announceLeft--
	if m.announceLeft > 0 {
		m.nextAnnounce = now.Add(m.p.Timing.AnnounceInterval)
	} else {
		m.nextAnnounce = time.Time{}
	}
}

// sendHolderProbe asks, without touching any ARP cache, whether another host
// answers for our VIP. Holders send one per beacon interval so that two
// holders (after a partition heals) find each other.
func (m *Machine) sendHolderProbe(now time.Time) {
	m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindBeacon, arp.FlagHolder))})
}

// checkSuspended gives the VIP up when a holder went without a renewal
// past its lifetime's margin (see Handle).
func (m *Machine) checkSuspended(now time.Time) {
	if m.state != StateHolder {
		return
	}
	if overdue := now.Sub(m.lastRenew); overdue > m.p.Timing.Lifetime-renewMargin {
		m.emit(RemoveVIPs{})
		m.toWaiting(now, StateProbing, nil, fmt.Sprintf("no renewal for %s (daemon suspended?): the kernel may have dropped the VIP and another node taken it", overdue.Round(time.Millisecond)))
	}
}

func (m *Machine) holderTick(now time.Time) {
	if !m.nextRenew.IsZero() && !now.Before(m.nextRenew) {
		m.emit(m.addVIPs(false))
		m.lastRenew = now
		m.nextRenew = m.onOrBefore(now, m.p.Timing.RenewInterval)
	}
	if !m.nextAnnounce.IsZero() && !now.Before(m.nextAnnounce) {
		if m.verifyLeft > 0 {
			m.verifyLeft--
			if m.verifyLeft > 0 {
				m.sendHolderProbe(now)
				m.nextAnnounce = now.Add(m.p.Timing.CheckInterval)
			} else {
				m.note(slog.LevelInfo, "verified: no other host claims the VIP")
				m.startAnnouncing(now)
			}
		} else {
			m.announce(now)
		}
	}
	if !m.yieldUntil.IsZero() && !now.Before(m.yieldUntil) {
		m.stats.Unconfirmed++
		m.note(slog.LevelWarn, "a better node's claim of the VIP was not confirmed: keeping the VIP (forged frame?)", "claimant", m.who(m.yieldMAC))
		m.yieldMAC, m.yieldUntil = nil, time.Time{}
	}
	if !m.foreignUntil.IsZero() && !now.Before(m.foreignUntil) {
		mac := m.foreignMAC
		m.foreignUntil, m.foreignMAC = time.Time{}, nil
		m.foreignClaim(now, mac)
		if m.state != StateHolder {
			return
		}
	}
	if !m.nextBeacon.IsZero() && !now.Before(m.nextBeacon) {
		m.sendHolderProbe(now)
		m.nextBeacon = m.onOrBefore(now, m.p.Timing.BeaconInterval)
		m.prunePeers(now)
		m.reviewHealth(now)
	}
}

func (m *Machine) ours(ip netip.Addr) bool { return slices.Contains(m.p.VIPs, ip) }

func (m *Machine) frame(now time.Time, p *arp.Packet, authed bool) {
	if p == nil {
		return
	}
	probe := p.IsProbe()
	if probe && !m.ours(p.TargetIP) || !probe && !m.ours(p.SenderIP) {
		return
	}
	if bytes.Equal(p.SenderHardwareAddr, m.p.MAC) || bytes.Equal(p.Source, m.p.MAC) {
		m.spoofed(now, p)
		return
	}
	if m.p.AuthRequired && !authed {
		m.unauthenticated(now, p)
		return
	}
	if !probe && p.Trailer == nil && m.state != StateHolder && p.SenderIP == p.TargetIP && m.peers[string(p.SenderHardwareAddr)] == nil {
		// A gratuitous claim by a host that never spoke floatip. (The
		// holder's own case goes through conflict.)
		m.foreignSeen(now, p)
	}
	var pr *peer
	if t := p.Trailer; t != nil {
		pr = m.learn(now, p.SenderHardwareAddr)
		if pr != nil {
			pr.priority, pr.nodeID, pr.lastSeen = t.Priority, t.NodeID, now
			pr.holder = t.Flags&arp.FlagHolder != 0 && t.Kind != arp.KindRelease
			pr.claiming = t.Flags&arp.FlagClaiming != 0
			pr.passive = t.Flags&arp.FlagPassive != 0
			m.learnName(now, pr, t, authed)
		}
	}
	switch m.state {
	case StateReleasing:
		m.keyFirstReady(now, p, pr)
	case StateProbing, StateStandby:
		m.waitingFrame(now, p, pr)
	case StateCandidate, StateFencing:
		switch {
		case !probe && !m.mayFollow(now, p):
			// Ever new claimants, none of which answered a check.
		case !probe:
			if m.state == StateFencing && bytes.Equal(p.SenderHardwareAddr, m.fenceTarget) {
				m.note(slog.LevelWarn, "the vanished holder answers again: not fencing it")
			}
			m.toWaiting(now, StateStandby, p.SenderHardwareAddr, fmt.Sprintf("%s claims the VIP", m.who(p.SenderHardwareAddr)))
		case m.state == StateCandidate && pr != nil && pr.claiming && m.beats(pr.priority, pr.mac):
			// A better node is claiming (perhaps fencing first): keep
			// waiting, up to the deferral ceiling.
			m.deferClaim(now, now.Add(m.p.Timing.ClaimSlot+m.p.Timing.CheckInterval), pr)
		}
	case StateHolder:
		switch {
		case !probe || pr != nil && pr.holder:
			// A claim, or another holder's own check for a second holder
			// (after a partition heals, its probe may be all we ever see).
			m.conflict(now, p, pr, authed)
		case p.Trailer != nil && p.Trailer.Kind == arp.KindTakeover && pr != nil && !pr.passive && m.beats(pr.priority, pr.mac):
			if !m.p.Preempt {
				// Only preempting standbys send Takeover; a node
				// configured without preempt does not hand over to one.
				m.refuseTakeover(now, pr)
				break
			}
			m.handTo(now, pr, fmt.Sprintf("preempted by %s (priority %d)", m.who(pr.mac), pr.priority))
		default:
			if pr != nil && !pr.holder {
				m.answerProbe(now, p, pr)
			}
			m.reviewHealth(now)
		}
	}
}

func (m *Machine) waitingFrame(now time.Time, p *arp.Packet, pr *peer) {
	if !p.IsProbe() {
		// Someone answers for the VIP: the holder is alive (or a new one).
		same := bytes.Equal(m.holder, p.SenderHardwareAddr)
		answer := m.outstanding && !m.answered && p.Operation == arp.OperationReply
		if !same && !answer && m.holderAnswering() {
			// A new claimant while we have a holder that answered our
			// checks: ask everyone with our next check rather than believe
			// one frame; whoever holds the VIP answers it.
			m.probeBcast = true
			return
		}
		if !same && !m.mayFollow(now, p) {
			return
		}
		if answer {
			m.emit(ProbeAnswered{RTT: now.Sub(m.probeSent)})
		}
		m.answered = true
		m.lastHeard = now
		m.misses = 0
		if m.fenceBlocked != nil {
			m.note(slog.LevelInfo, "the VIP answers again: no longer waiting for an operator", "from", m.who(p.SenderHardwareAddr))
			m.fenceBlocked = nil
		}
		if !same {
			if m.holderAnswers > 0 {
				m.prevHolder = m.holder
			}
			m.holder = slices.Clone(p.SenderHardwareAddr)
			m.holderAnswers = 0
			m.watchSince = now
			if m.state == StateProbing {
				m.transition(StateStandby, fmt.Sprintf("VIP is held by %s", m.who(p.SenderHardwareAddr)))
			} else {
				m.note(slog.LevelInfo, "holder changed", "holder", m.who(p.SenderHardwareAddr))
			}
		}
		if answer {
			m.holderAnswers++
			m.switches, m.prevHolder = 0, nil
		}
		return
	}
	if pr == nil {
		return
	}
	if p.Trailer.Kind == arp.KindRelease && bytes.Equal(m.holder, p.SenderHardwareAddr) {
		m.qs.firstFrom, m.qs.firstBound = nil, time.Time{} // its VIP is gone
	}
	switch {
	case p.Trailer.Kind == arp.KindBeacon && p.Trailer.Flags&arp.FlagKeyFirst != 0:
		m.keyFirstNotice(now, p, pr)
	case p.Trailer.Kind == arp.KindBeacon && pr.holder && m.qs.firstFrom != nil && bytes.Equal(m.qs.firstFrom, p.SenderHardwareAddr) && !m.qs.have:
		// (Once the key is ours the old holder cannot hold without it: a
		// beacon in its name is forged or stale, and does not cancel.)
		m.keyFirstCancel(now)
	case p.Trailer.Kind == arp.KindRelease && !bytes.Equal(m.holder, p.SenderHardwareAddr):
		// Only the current holder may release the VIP or hand it to us.
		m.ignoredRelease(now, p)
	case p.Trailer.Kind == arp.KindRelease && bytes.Equal(p.Destination, m.p.MAC):
		// Handed over to us by name (handover, preemption): claim at once.
		if m.passive() {
			m.note(slog.LevelWarn, "handed the VIP but we will not claim it (maintenance hold or unhealthy)")
			return
		}
		m.departed, m.holder = m.holder, nil
		m.clearTimers()
		m.transition(StateCandidate, fmt.Sprintf("%s handed the VIP to us", m.who(p.SenderHardwareAddr)))
		m.toHolder(now, "handover", false)
	case p.Trailer.Kind == arp.KindRelease && !bytes.Equal(p.Destination, arp.Broadcast):
		// A handover to another node that reached us by flooding: that
		// node claims; we follow its announcement.
	case p.Trailer.Kind == arp.KindRelease:
		// (From the current holder, checked above.) It departs: not a candidate.
		m.vanished = false // released, not vanished: nothing to fence
		m.toCandidate(now, fmt.Sprintf("holder %s released the VIP", m.who(p.SenderHardwareAddr)))
	case pr.claiming && !m.beats(pr.priority, pr.mac):
		// A worse standby found the holder silent. Check the holder ourselves,
		// briefly, and claim first if it is really gone.
		if m.verifyUntil.IsZero() {
			m.sendProbe(now, false)
			m.verifyUntil = now.Add(max(m.p.Timing.ClaimSlot/2, time.Millisecond))
		}
	case m.state == StateProbing && !pr.holder && !pr.passive && m.beats(pr.priority, pr.mac) && now.Before(m.waitSince.Add(m.probeDeferLimit())):
		// (A passive node will not claim: waiting for it would leave the
		// VIP on no node.)
		// Simultaneous start: let the better node claim first, for a
		// bounded time: a better node claims within Misses checks of its
		// start, and frames forged as one must not keep us probing.
		m.misses = 0
	}
}

// conflict handles another MAC claiming one of our VIPs while we hold it.
//
// A better floatip node wins, but only a believed claim makes us yield: an
// authenticated one, or, without authentication, one from a MAC known as
// a floatip peer that its kernel confirms: we probe the claimant by
// unicast and yield when it answers (a node that really holds the VIP
// answers; a standby whose MAC a forger borrowed does not). Without
// authentication a forger that also forges that answer still wins: only
// authentication stops impersonation.
//
// Answers to worse claimants (defend, re-announce) are rate-limited per
// claimant and in total (see guard.go), so that no frame costs more than a
// bounded number of frames sent.
func (m *Machine) conflict(now time.Time, p *arp.Packet, pr *peer, authed bool) {
	mac := p.SenderHardwareAddr
	if pr == nil {
		pr = m.peers[string(mac)]
	}
	if pr == nil {
		m.foreignSeen(now, p)
		if bytes.Equal(mac, m.lastForeignMAC) && now.Sub(m.lastForeign) < DefendInterval {
			// Known not to be floatip, and it claims again.
			m.foreignClaim(now, mac)
			return
		}
		// Not known as a floatip node yet: tell it who we are and give it a
		// moment to answer with its own trailer before treating it as foreign.
		if m.foreignMAC == nil {
			if !m.mayDefend(now, nil) {
				return
			}
			m.note(slog.LevelWarn, "conflict: another host claims the VIP; announcing ours", "claimant", m.who(mac), "vip", p.SenderIP.String())
			m.defend()
			m.foreignMAC = slices.Clone(mac)
			m.foreignUntil = now.Add(max(5*m.p.Timing.CheckInterval, 200*time.Millisecond))
		}
		return
	}
	if bytes.Equal(m.foreignMAC, mac) {
		m.foreignMAC, m.foreignUntil = nil, time.Time{}
	}
	m.stats.Conflicts++
	// A better node that really holds the VIP (confirmed as below) wins
	// even over a holder that owns the quorum key: two holders exist
	// already, and yielding can only end that. Under a referee it happens
	// only when our key is stale (its Lost still on the way) or when the
	// claimant does not ask the referee (a rolling reload that adds or
	// removes quorum:); keeping the VIP then left both nodes holding for
	// good.
	if m.beats(pr.priority, pr.mac) {
		if !authed && !m.confirms(now, p) {
			m.verifyClaim(now, pr)
			return
		}
		if authed {
			// Tell the winner we held the VIP too (as verifyClaim's check
			// does without auth): it then re-announces, so clients that
			// followed our announcements come back to it. Yielding in
			// silence left them on our MAC (after a partition's heal the
			// winner's beacon is all we hear, and it never learns of us).
			m.emit(Send{Packet: arp.NewProbe(m.p.MAC, mac, m.p.VIPs[0], m.trailer(arp.KindBeacon, arp.FlagHolder))})
		}
		m.emit(RemoveVIPs{})
		m.toWaiting(now, StateStandby, mac, fmt.Sprintf("conflict with %s (priority %d) which wins over us (priority %d): releasing", m.who(mac), pr.priority, m.p.Priority))
		m.holderAnswers = 1 // it answered our check (or is authenticated)
		return
	}
	if !m.mayDefend(now, mac) {
		return
	}
	m.note(slog.LevelWarn, "conflict: we win, re-announcing", "claimant", m.who(mac), "claimant_priority", pr.priority)
	m.defend()
	m.startAnnouncing(now)
}

func (m *Machine) defend() {
	for _, vip := range m.p.VIPs {
		m.emit(Send{Packet: arp.NewAnnouncement(m.p.MAC, vip, m.trailer(arp.KindDefend, arp.FlagHolder))})
	}
}

// foreignClaim decides about a claimant that never identified as floatip.
func (m *Machine) foreignClaim(now time.Time, mac net.HardwareAddr) {
	window := DefendInterval
	if m.p.ForeignPolicy == Defend {
		window = defendEvery
	}
	recent := !m.lastForeign.IsZero() && now.Sub(m.lastForeign) < window
	if recent {
		if m.p.ForeignPolicy == Yield {
			m.emit(RemoveVIPs{})
			m.toWaiting(now, StateStandby, mac, fmt.Sprintf("host %s (not floatip) keeps claiming the VIP: yielding (RFC 5227 2.4b; set on_foreign_claim: defend to keep it)", mac))
		}
		// Defend: we defended a moment ago; do not storm the LAN.
		return
	}
	if !m.mayDefend(now, nil) {
		return
	}
	m.lastForeign, m.lastForeignMAC = now, slices.Clone(mac)
	m.note(slog.LevelError, "host that is not floatip claims the VIP: defending", "claimant", m.who(mac))
	m.defend()
	m.startAnnouncing(now)
}

func (m *Machine) link(now time.Time, up bool) {
	switch {
	case !up && m.state == StateReleasing:
		m.abortHandoff(now, FaultLinkDown, "link down or carrier lost")
	case !up && m.state != StateFault && m.state != StateStopped && m.state != StateInit:
		if m.state == StateHolder {
			m.emit(RemoveVIPs{})
		}
		m.toFault(now, FaultLinkDown, "link down or carrier lost")
	case up && m.state == StateFault:
		m.toWaiting(now, StateProbing, nil, "link is up again")
	}
}

// sendFailed leaves every active state: a holder that cannot announce
// leaves clients on a stale MAC, and a standby that cannot check the holder
// would count its own silence as the holder's and claim.
func (m *Machine) sendFailed(now time.Time, ev SendFailed) {
	reason := "frames cannot be sent"
	if ev.Err != nil {
		reason += ": " + ev.Err.Error()
	}
	switch m.state {
	case StateInit, StateFault, StateStopped:
		return
	case StateReleasing:
		m.abortHandoff(now, FaultSendFailed, reason)
		return
	case StateHolder:
		m.emit(RemoveVIPs{})
	}
	m.toFault(now, FaultSendFailed, reason)
}

func (m *Machine) toFault(now time.Time, cause FaultCause, reason string) {
	m.clearTimers()
	m.holder = nil
	m.transitionCause(StateFault, cause, reason)
	if cause.Retries() {
		m.retryAt = now.Add(faultRetry)
	}
}

func (m *Machine) addr(now time.Time, ev AddrChanged) {
	if ev.Present || m.state != StateHolder || !m.ours(ev.Addr) {
		return
	}
	m.emit(RemoveVIPs{})
	m.toWaiting(now, StateProbing, nil, fmt.Sprintf("VIP %s disappeared from the interface (removed by hand or expired): releasing the group and probing again", ev.Addr))
}

// release hands the VIP away: delete it, tell the standbys (the best one
// claims at once), and wait as a standby. With no standby to take it, our
// own checks find the VIP free again and we reclaim it (unless held), so a
// release never leaves the VIP on no node.
func (m *Machine) release(now time.Time, reason string) {
	m.clearTimers()
	if m.keyFirstHandoff(now, nil, StateStandby, reason) {
		return
	}
	m.emit(m.drainAndRemove(now))
	m.sendRelease()
	m.toWaiting(now, StateStandby, nil, reason)
}

func (m *Machine) sendRelease() {
	m.releaseKey() // the VIPs are gone; the key next, then tell the standbys
	for range 2 {
		m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindRelease, arp.FlagPassive))})
	}
}

func (m *Machine) stop(now time.Time) {
	if m.state == StateStopped {
		return
	}
	if m.state == StateReleasing {
		// A key-first handover is under way: stop when it ends.
		m.qs.ho.then = StateStopped
		return
	}
	held := m.state == StateHolder
	m.clearTimers()
	if held && m.keyFirstHandoff(now, nil, StateStopped, "stopping") {
		return
	}
	if held {
		// Delete first, then tell the standbys: the best one claims at once.
		m.emit(m.drainAndRemove(now))
		m.sendRelease()
		m.transition(StateStopped, "stopping: released the VIP and told the standbys")
	} else {
		if m.state != StateInit && m.state != StateFault {
			// Say goodbye: a holder must not hand the VIP to us any more,
			// and standbys must not wait a claim slot for us.
			m.emit(Send{Packet: arp.NewProbe(m.p.MAC, arp.Broadcast, m.p.VIPs[0], m.trailer(arp.KindBeacon, arp.FlagPassive))})
		}
		m.transition(StateStopped, "stopping")
	}
	m.emit(Done{})
}
