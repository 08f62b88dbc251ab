package election

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// Event is something the machine reacts to.
type Event interface{ event() }

// Start begins the machine with what the daemon found on the interface.
type Start struct {
	LinkUp  bool // admin up with carrier
	Present bool // at least one of the group's VIPs is already configured
}

// Tick tells the machine that its Deadline has passed.
type Tick struct{}

// Frame is an ARP frame seen on the interface. Authenticated says the
// codec verified its tag (with Params.AuthRequired, only such frames count).
// A frame that carries our own MAC must still be passed (our own
// transmissions and our kernel's replies must not): the machine counts it
// as spoofing.
type Frame struct {
	Packet        *arp.Packet
	Authenticated bool
}

// LinkChanged reports the interface going down (or losing carrier) or up.
type LinkChanged struct{ Up bool }

// AddrChanged reports one of the group's VIPs appearing on or disappearing
// from the interface, whoever caused it.
type AddrChanged struct {
	Addr    netip.Addr
	Present bool
}

// ClaimFailed reports that adding or renewing the VIPs failed.
type ClaimFailed struct{ Err error }

// SendFailed reports that frames could not be sent, retries included, and
// the failures persist (the daemon decides when): the machine goes to
// StateFault with FaultSendFailed (a holder removes the VIP first) and
// probes again after a while.
type SendFailed struct{ Err error }

// Stop asks for an orderly stop: release the VIP and tell the standbys.
type Stop struct{}

// Release asks the holder to hand the VIP to a standby and stay standby
// (`floatip release`). Not holding, it does nothing.
type Release struct{ Reason string }

// Hold turns the maintenance hold on or off (`floatip hold`): while on, the
// node never claims, and a holder hands the VIP away first.
type Hold struct{ On bool }

// Reconfigure replaces priority, timing and policy without leaving the
// current state (a reload that kept the group's VIPs).
type Reconfigure struct{ Params Params }

func (Start) event()       {}
func (Tick) event()        {}
func (Frame) event()       {}
func (LinkChanged) event() {}
func (AddrChanged) event() {}
func (ClaimFailed) event() {}
func (SendFailed) event()  {}
func (Stop) event()        {}
func (Release) event()     {}
func (Hold) event()        {}
func (Reconfigure) event() {}

// Action is something the daemon must carry out for the machine.
type Action interface{ action() }

// Send transmits an ARP frame.
type Send struct{ Packet *arp.Packet }

// AddVIPs adds every VIP of the group as /32 with this lifetime, or renews it.
type AddVIPs struct {
	Lifetime time.Duration
	// Until, when set (quorum), is the lease deadline the VIPs must not
	// outlive: the daemon computes the kernel lifetime from it at the
	// netlink call (quorum.VIPLifetime), never longer than Lifetime.
	Until time.Time
	// FirstOnly adds just the group's first VIP: a large group claims
	// that one and announces it before adding the rest, so that other
	// candidates learn of the claim without waiting for every address.
	FirstOnly bool
}

// RemoveVIPs deletes every VIP of the group from the interface.
//
// Drain, set for a planned move (stop, release, handover), lets the daemon
// first wait, until at most Drain, for a moment with no TCP connection open
// to the VIPs: a connection whose local address goes away mid-request loses
// its answer. Zero (a fault, a conflict, a lost key) removes them at once.
type RemoveVIPs struct{ Drain time.Time }

// DrainMax bounds how long a planned move waits for the VIPs' open
// connections (RemoveVIPs.Drain). The VIPs are still served meanwhile.
const DrainMax = 100 * time.Millisecond

// Transition reports a change of state and why; the daemon logs it (and
// later runs hooks and counts it).
type Transition struct {
	From, To State
	Cause    FaultCause // why, when To is StateFault; NoFault otherwise
	Reason   string
}

// Note is a log line worth writing that is not a transition (conflicts).
type Note struct {
	Level slog.Level
	Msg   string
	Attrs []any
}

// Done says the machine stopped; the owner goroutine may exit.
type Done struct{}

// ProbeAnswered reports the round trip of an answered probe (for metrics).
type ProbeAnswered struct{ RTT time.Duration }

func (Send) action()          {}
func (AddVIPs) action()       {}
func (RemoveVIPs) action()    {}
func (Transition) action()    {}
func (Note) action()          {}
func (Done) action()          {}
func (ProbeAnswered) action() {}

// Health reports that the local service's checks changed verdict.
type Health struct {
	Healthy bool
	Detail  string
}

// FenceResult reports how the fence command ended (nil: fenced).
type FenceResult struct {
	Err     error
	Attempt int // the Fence action's Attempt
}

// Handover asks the holder to hand the VIP to a standby now: the one whose
// node ID is To or whose name (from peers: or its frames) is Name, or the
// best live one when both are zero (`floatip handover`).
type Handover struct {
	To   uint32
	Name string
}

// Pace tells a standby whether another group of this node already checks
// the same holder at full pace (Relaxed): then this one checks only once per
// beacon interval, and learns of the holder's loss from PeerLost. A node
// with many groups on one holder so sends a fraction of the probes.
type Pace struct{ Relaxed bool }

// PeerLost says another group of this node found the holder with this MAC
// silent (it emitted HolderLost).
type PeerLost struct{ MAC net.HardwareAddr }

func (Pace) event()        {}
func (PeerLost) event()    {}
func (Health) event()      {}
func (FenceResult) event() {}
func (Handover) event()    {}

// Fence asks the daemon to run the fence command against the vanished
// holder, and to report back with FenceResult.
type Fence struct {
	MAC      net.HardwareAddr
	LastSeen time.Time
	Attempt  int // to be echoed in FenceResult; an old attempt's result is ignored
}

// Refused says a command (Handover) could not be carried out, and why.
type Refused struct{ Reason string }

// HolderLost says this group found its holder silent; the daemon tells the
// node's other groups (PeerLost), which share that holder.
type HolderLost struct{ MAC net.HardwareAddr }

func (HolderLost) action() {}
func (Fence) action()      {}
func (Refused) action()    {}

// ForeignClaim reports a claim of one of the group's VIPs (an announcement
// or a reply) by a host that is not an (authenticated) floatip peer: the
// daemon logs it at WARN, counts it (Stats.ForeignClaims counts every such
// frame; this action is rate-limited), shows it in status and passes it to
// hooks. Suppressed is how many such frames went unreported since the
// previous ForeignClaim.
type ForeignClaim struct {
	MAC        net.HardwareAddr
	VIP        netip.Addr
	Suppressed uint64
}

func (ForeignClaim) action() {}
