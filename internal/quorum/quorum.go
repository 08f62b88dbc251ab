// Package quorum is floatip's seam to an external referee (etcd) that
// decides which node may hold a group, so that no two nodes hold it even
// when the network splits.
//
// It is independent of any backend: the daemon talks to a Backend, one
// Elector per group, and the election machine only ever sees the Events
// defined here. The etcd implementation lives in internal/quorum/etcd.
//
// The shape fits a pure state machine. The machine emits "want the key",
// "release the key" and "fence that holder" actions, which the daemon turns
// into the Elector's non-blocking Campaign, Resign and Fence calls; the
// Elector answers with events: Granted (this node owns the key, with a
// fencing Token and a Deadline), Extended (the Deadline moved later), Lost
// (it owns the key no more), Holder (who owns it now) and Fenced (how a
// Fence ended).
//
// Safety rests on one number only, the Deadline: the instant, on this
// node's monotonic clock, before which the referee cannot give the key to
// anyone else. A late or lost event can only make this node hold less,
// never longer. See docs/quorum.md for the argument and the margins.
package quorum

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Token is a fencing token: the etcd revision at which a holder's key was
// created. A later holder always has a larger token, and a guarded delete
// with a stale token fails.
type Token int64

// Event is what a group's Elector tells the group's state machine.
type Event interface{ quorumEvent() }

// Granted says this node owns the group's key now. It may hold the group
// (add the VIPs) until Deadline, unless an Extended moves it later.
//
// Resigns is how many Resign calls the elector had acted on when it
// granted. A consumer that called Resign more often than that gave this
// key up after it was granted, even if it called Campaign again since: the
// elector is deleting that key (its Lost comes once the delete is done,
// when another node may already hold it), so the consumer must ignore
// this Granted and wait for the next one.
type Granted struct {
	Token    Token
	Deadline time.Time
	Resigns  uint64
}

// Extended says the lease of a held key was renewed: the node may hold
// until the new Deadline (always later than the previous one).
type Extended struct{ Deadline time.Time }

// Lost says this node no longer owns the key (or can no longer know that it
// does). The machine must drop the VIPs at once if it still has them. A
// Lost after Resign confirms the release.
type Lost struct {
	Cause Cause
	Err   error // detail, may be nil
}

// Holder reports who owns the group's key, as last observed: Name is the
// holder's node name ("" when nobody holds it), Token its fencing token,
// Self whether it is this node. A standby fences the holder with this
// Token.
type Holder struct {
	Name  string
	Token Token
	Self  bool
}

// Fenced reports how a Fence request ended: Err is nil when the holder's
// key was deleted, ErrStaleToken when the token no longer names a key.
type Fenced struct {
	Token Token
	Err   error
}

func (Granted) quorumEvent()  {}
func (Extended) quorumEvent() {}
func (Lost) quorumEvent()     {}
func (Holder) quorumEvent()   {}
func (Fenced) quorumEvent()   {}

// Cause says why a key was lost.
type Cause int

const (
	// CauseExpired: the lease deadline passed without a successful
	// keepalive (the referee unreachable or without quorum).
	CauseExpired Cause = iota + 1
	// CauseLeaseGone: the referee said the lease no longer exists.
	CauseLeaseGone
	// CauseKeyDeleted: the key was deleted by someone else (fenced).
	CauseKeyDeleted
	// CauseResigned: this node resigned (Resign, Close).
	CauseResigned
)

func (c Cause) String() string {
	switch c {
	case CauseExpired:
		return "lease deadline passed"
	case CauseLeaseGone:
		return "lease gone"
	case CauseKeyDeleted:
		return "key deleted by another node"
	case CauseResigned:
		return "resigned"
	}
	return fmt.Sprintf("cause(%d)", int(c))
}

// ErrStaleToken is Fenced's error when the token names no current key.
var ErrStaleToken = errors.New("quorum: stale fencing token: no key with that revision")

// Elector campaigns for one group's key. Its methods never block (they
// record what is wanted and wake the elector's goroutine), so the daemon
// may call them from the group's loop. Events arrive on Events in order.
type Elector interface {
	// Campaign asks for the key and keeps asking until Resign: the
	// elector waits its turn, re-campaigns after a loss and answers with
	// Granted. Calling it while campaigning or holding does nothing.
	Campaign()
	// Resign gives the key up (the VIPs must already be removed) or stops
	// campaigning. A holder gets Lost{CauseResigned} once the key is
	// deleted or the attempt failed (then the elector deletes the key
	// again until etcd answers or the lease ends: the backend keeps the
	// lease alive, so its expiry alone would never free the key).
	// Resign followed at once by Campaign still gives the key up first.
	Resign()
	// Fence deletes the key of the holder with this token, guarded by the
	// token, so that this node (if campaigning) gets the key at once. Only
	// for a holder known to be dead (the fence command confirmed it):
	// the old holder may keep its VIP until its own Deadline otherwise.
	// The result comes as Fenced.
	Fence(Token)
	// Events delivers the elector's events. The consumer must keep
	// reading until Close returns.
	Events() <-chan Event
	// Close resigns (when holding), stops the elector and waits for it.
	Close()
}

// Backend is a referee connection shared by a node's groups (one lease for
// all of them).
type Backend interface {
	// Elector returns the elector for a group; one per group name.
	Elector(group string) (Elector, error)
	// Status is the backend's state, for `floatip status` and metrics.
	Status() Status
	// Close closes every elector (resigning), revokes the lease so that
	// the standbys get the keys at once, and closes the connection. ctx
	// bounds the revoke.
	Close(ctx context.Context) error
}

// State is the backend's view of its lease.
type State int

const (
	// StateConnecting: no lease yet (starting, or after losing one).
	StateConnecting State = iota
	// StateLive: the lease is live and the last keepalive succeeded.
	StateLive
	// StateDegraded: keepalives fail, but the lease deadline has not
	// passed yet: the holders keep their VIPs until it does.
	StateDegraded
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateLive:
		return "live"
	case StateDegraded:
		return "degraded"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Status is a snapshot of a backend, ready for metrics.
type Status struct {
	State State
	// Reachable: the last request to the referee succeeded.
	Reachable bool
	// Deadline of the current lease (zero without one).
	Deadline time.Time
	// LastKeepAlive is when the last successful keepalive was sent.
	LastKeepAlive time.Time
	// Lease identifies the current lease (0 without one).
	Lease int64
	// Err is the last error talking to the referee ("" after a success).
	Err    string
	Groups []GroupStatus
}

// Role is what a group's elector is doing.
type Role int

const (
	RoleIdle        Role = iota // not campaigning
	RoleCampaigning             // waiting for the key
	RoleHolding                 // owns the key
)

func (r Role) String() string {
	switch r {
	case RoleIdle:
		return "idle"
	case RoleCampaigning:
		return "campaigning"
	case RoleHolding:
		return "holding"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// GroupStatus is one elector's state.
type GroupStatus struct {
	Group  string
	Role   Role
	Token  Token  // this node's token while holding
	Holder string // the holder's node name as last observed, "" for none
}

// MaxClockDrift bounds how much faster than the referee's clock this
// node's monotonic clock may run, relative to the lease TTL (1000 ppm: ten
// times what NTP lets a clock slew, and more than an unsynchronised
// crystal drifts). A lease of TTL is counted as TTL x (1 - MaxClockDrift).
const MaxClockDrift = 1e-3

// LeaseDeadline is the deadline a successful keepalive (or grant) sent at
// sent with ttl gives: the referee refreshes the lease only after receiving
// the request, so it cannot expire before sent + ttl on its clock.
func LeaseDeadline(sent time.Time, ttl time.Duration) time.Time {
	return sent.Add(ttl - time.Duration(float64(ttl)*MaxClockDrift))
}

// KernelSlack bounds how late the kernel removes an IPv4 address whose
// valid lifetime ran out. Linux checks lifetimes from delayed work
// (check_lifetime in net/ipv4/devinet.c) that never runs sooner than one
// second (HZ) after it last ran and rounds its timer up to a whole second
// when that costs less than HZ/4. Any address change on the node (another
// group renewing its VIPs) runs the check at once, so an address expiring
// just after that is removed up to a second late: measured here 0.93 to
// 1.04 s late with a second address added 0.1 s before the expiry, 20 to
// 30 ms late without. One second plus scheduling, with room to spare.
const KernelSlack = 1500 * time.Millisecond

// DropMargin is how long before the deadline the daemon removes the VIPs
// itself when the deadline was not extended (its own netlink call is
// immediate; the margin covers a late timer).
const DropMargin = 250 * time.Millisecond

// CallAllowance is room left for the netlink call that sets the lifetime:
// the daemon checks after the call that now + lifetime + KernelSlack is
// still before the deadline and removes the VIPs if not (the process
// stalled). Without this room the whole-second rounding could leave a few
// milliseconds, and an ordinary call on a loaded machine would trip that
// check and drop a healthy holder's VIPs.
const CallAllowance = 250 * time.Millisecond

// VIPLifetime is the kernel lifetime to give the VIPs at now so that the
// kernel removes them before deadline even if this process freezes or
// dies right after: whole seconds (the kernel counts lifetimes in
// seconds), rounded down, leaving KernelSlack and CallAllowance. ok is false when that is
// less than one second (the kernel takes no shorter lifetime): then the
// VIPs must not be added, nor their lifetime renewed; VIPs already there
// keep the earlier, shorter bound, and the daemon removes them at DropBy.
func VIPLifetime(now, deadline time.Time) (lifetime time.Duration, ok bool) {
	left := deadline.Sub(now) - KernelSlack - CallAllowance
	if left < time.Second {
		return 0, false
	}
	return left.Truncate(time.Second), true
}

// DropBy is when the daemon must remove the VIPs itself if the deadline
// has not been extended by then.
func DropBy(deadline time.Time) time.Time { return deadline.Add(-DropMargin) }
