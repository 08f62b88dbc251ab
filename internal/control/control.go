// Package control is the running daemon's control socket: `floatip status`,
// `release`, `hold` and `reload` talk to the daemon through it.
//
// It is a unix socket rather than a TCP port: it is reachable only from the
// machine itself, the filesystem says who may connect (mode 0660, owned by
// the daemon's user and optionally an operator group), the kernel says who
// connected (SO_PEERCRED), and there is no port to choose, firewall or
// collide with.
//
// # Who may do what
//
// Anyone who can connect may ask for "status". "release", "hold",
// "handover" and "reload" change the daemon's state and are refused
// ("permission denied: ...", logged at Warn and counted in
// [Server.Stats]) unless the peer has uid 0, the daemon's own uid, or the
// control group (control.group) as its primary or a supplementary group,
// as the kernel recorded them when it connected (SO_PEERCRED and
// SO_PEERGROUPS; nothing is read from /proc). At most [MaxConns]
// connections are served at once; more are answered "busy" and closed at
// once (the Client tries again until its timeout), and counted.
//
// The socket is created with its final mode and group (see [Listen]): it
// never exists at its path with a wider mode, whatever the umask.
//
// # Protocol
//
// One JSON request per connection, answered by one JSON response, after
// which the server closes the connection:
//
//	{"cmd":"status"}                         -> {"ok":true,"status":{...}}
//	{"cmd":"release","group":"web"}          -> {"ok":true}
//	{"cmd":"hold","group":"web","on":true}   -> {"ok":true}
//	{"cmd":"reload"}                         -> {"ok":true}
//	anything that fails                      -> {"ok":false,"error":"..."}
//
// An empty or missing "group" means every group. "on" is required for
// "hold", so that a forgotten field never ends a maintenance hold. Unknown
// fields are rejected rather than ignored (a misspelt "group" must not
// release every group). The server waits at most 5 s for the request.
//
// The "status" object is [Status]; its JSON field names are stable. Any
// unix-socket client works, e.g.
//
//	echo '{"cmd":"status"}' | socat - UNIX-CONNECT:/run/floatip/floatip.sock
package control

import (
	"context"
	"time"

	"github.com/floatip/floatip/internal/election"
)

// DefaultSocket is where the daemon listens and the commands connect unless
// told otherwise.
const DefaultSocket = "/run/floatip/floatip.sock"

// Status is the daemon's state as `floatip status --json` prints it. Field
// names are part of floatip's interface: new fields may be added, existing
// ones are not renamed or removed.
type Status struct {
	Node      string    `json:"node"`      // this node's name (--node-name, default the hostname)
	Interface string    `json:"interface"` // the interface the VIPs live on
	Version   string    `json:"version"`   // the daemon's version
	PID       int       `json:"pid"`       // the daemon's process ID
	Started   time.Time `json:"started"`   // when the daemon started
	Groups    []Group   `json:"groups"`    // one per VIP group, in configuration order; never null
	// Control counts what the control socket refused; the server fills
	// it in (left out when the Status did not come through a server).
	Control *Stats `json:"control,omitempty"`
	// Auth is the state of frame authentication; left out when auth is off.
	Auth *Auth `json:"auth,omitempty"`
	// SpoofedFrames counts frames from the wire that carried this node's
	// own MAC: another host impersonates it.
	SpoofedFrames uint64 `json:"spoofed_frames"`
	// MalformedFrames counts frames from the wire dropped as malformed,
	// by reason: malformed (does not decode), hop_limit (ND with a hop
	// limit other than 255), checksum (ND with a bad ICMPv6 checksum).
	MalformedFrames map[string]uint64 `json:"malformed_frames,omitempty"`
}

// Auth is the node's frame authentication (config auth:).
type Auth struct {
	Require bool     `json:"require"` // false: rollout mode, unauthenticated peers still count
	KeyIDs  []string `json:"key_ids"` // the keys accepted; the first signs
	// Failures counts the frames that failed authentication, by reason
	// (auth.Reasons; missing: a floatip frame without an auth block).
	Failures map[string]uint64 `json:"failures"`
	Senders  int               `json:"senders"` // entries in the replay table
}

// ForeignClaim is the last claim of one of a group's VIPs by a host that is
// not an (authenticated) floatip peer.
type ForeignClaim struct {
	MAC  string    `json:"mac"`
	VIP  string    `json:"vip"`
	Time time.Time `json:"time"`
}

// Group is one VIP group's state on this node.
type Group struct {
	Name string   `json:"name"` // the group's name ("default" for --vip or "vips:")
	VIPs []string `json:"vips"` // the group's addresses, which move together; never null
	// State is the group's election state, in the JSON a string: one of
	// init, probing, standby, candidate, holder, fault, stopped, fencing,
	// releasing (election.States).
	State election.State `json:"state"`
	// Since is when the group entered State, and Reason why.
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	// Holder is the MAC address of the node holding the VIPs ("" when
	// unknown or free); ours when State is holder. HolderNode is that
	// node's name when known.
	Holder     string `json:"holder"`
	HolderNode string `json:"holder_node,omitempty"`
	Priority   int    `json:"priority"` // this node's priority for the group
	// Held is true during a maintenance hold (`floatip hold`): this node
	// never claims the group's VIPs while it lasts.
	Held bool `json:"maintenance_hold"`
	// LastProbe is when this node last sent an ARP probe for the group,
	// LastAnnounce when it last sent a gratuitous ARP; both are left out
	// of the JSON when never.
	LastProbe    time.Time `json:"last_probe,omitzero"`
	LastAnnounce time.Time `json:"last_announce,omitzero"`
	Counters     Counters  `json:"counters"`
	Health       []Check   `json:"health"` // health checks; empty (never null) until there are any
	// LastForeignClaim is the last foreign claim reported (rate-limited;
	// Counters.ForeignClaims counts them all); left out when none.
	LastForeignClaim *ForeignClaim `json:"last_foreign_claim,omitempty"`
	// Peers are the other floatip nodes this node hears for the group,
	// best priority first, until they expire from the peer table (20
	// beacon intervals unheard); empty (never null) when none.
	Peers []Peer `json:"peers"`
	// Quorum is the group's referee; left out without quorum:.
	Quorum *Quorum `json:"quorum,omitempty"`
}

// Peer is another floatip node as this node hears it for one group.
type Peer struct {
	// Name is the peer's node name, "" when unknown: the one peers:
	// gives its MAC, else the one its frames carry (with auth on, only
	// authenticated frames); NameSource says which ("peers", "frames").
	Name       string `json:"name"`
	NameSource string `json:"name_source,omitempty"`
	MAC        string `json:"mac"`
	Priority   int    `json:"priority"`
	// Role is what the peer's latest frame says: holder, standby,
	// claiming or passive (election.PeerRole).
	Role election.PeerRole `json:"role"`
	// Healthy is false when the peer's frames say it will not claim
	// (FlagPassive: its checks fail or it is in a maintenance hold; the
	// wire does not tell which).
	Healthy   bool      `json:"healthy"`
	LastHeard time.Time `json:"last_heard"`
	// Lost says the peer has not been heard for more than three beacon
	// intervals, when the status was taken: this node no longer hears it.
	Lost bool `json:"lost"`
}

// Counters count events since the daemon started.
type Counters struct {
	Claims           uint64 `json:"claims"`            // this node took the VIPs
	Releases         uint64 `json:"releases"`          // this node gave them up
	Conflicts        uint64 `json:"conflicts"`         // another host claimed a VIP while we held it
	ProbesUnanswered uint64 `json:"probes_unanswered"` // probes nobody answered within one check interval
	Transitions      uint64 `json:"transitions"`       // state changes
	// Hostile frames (election.Stats): claims by hosts that are not
	// (authenticated) floatip peers, frames carrying our own MAC, conflict
	// answers left unsent by the rate limit, better claims not confirmed,
	// release and takeover frames not obeyed.
	ForeignClaims uint64 `json:"foreign_claims"`
	Spoofed       uint64 `json:"spoofed"`
	Throttled     uint64 `json:"throttled"`
	Unconfirmed   uint64 `json:"unconfirmed"`
	Ignored       uint64 `json:"ignored"`
}

// Check is the result of one health check.
type Check struct {
	Name    string    `json:"name"`
	Healthy bool      `json:"healthy"`
	Detail  string    `json:"detail"`        // e.g. the failure's message
	Last    time.Time `json:"last,omitzero"` // when it last ran; left out when never
}

// Handler carries out the commands; the daemon implements it. Each call
// gets a context that ends when the daemon stops serving or after 10 s.
// An error's message is shown to the operator as it is, so it should say
// what went wrong in their terms (e.g. `no group "web"`).
type Handler interface {
	// Status reports the daemon's current state.
	Status(ctx context.Context) (Status, error)
	// Release hands the group's VIPs away if this node holds them and
	// stays standby; "" means every group.
	Release(ctx context.Context, group string) error
	// Hold starts (on) or ends a maintenance hold: while it lasts this
	// node never claims the group; "" means every group.
	Hold(ctx context.Context, group string, on bool) error
	// Reload re-reads the configuration.
	Reload(ctx context.Context) error
	// Handover hands the group's VIPs, held here, to the standby named to
	// (its node name), or to the best live standby when to is ""; "" group
	// means every group this node holds.
	Handover(ctx context.Context, group, to string) error
}

// Commands of the protocol.
const (
	cmdStatus   = "status"
	cmdRelease  = "release"
	cmdHold     = "hold"
	cmdReload   = "reload"
	cmdHandover = "handover"
)

// request is what a client sends.
type request struct {
	Cmd   string `json:"cmd"`
	Group string `json:"group,omitempty"`
	On    *bool  `json:"on,omitempty"`
	To    string `json:"to,omitempty"`
}

// response is what the server answers.
type response struct {
	OK     bool    `json:"ok"`
	Status *Status `json:"status,omitempty"`
	Error  string  `json:"error,omitempty"`
	// Busy is set when the server refused the connection because it was
	// serving MaxConns others; the client may try again.
	Busy bool `json:"busy,omitempty"`
}

// normalize makes the JSON of s stable: empty lists as [] rather than null.
func normalize(s Status) Status {
	groups := make([]Group, len(s.Groups))
	for i, g := range s.Groups {
		if g.VIPs == nil {
			g.VIPs = []string{}
		}
		if g.Health == nil {
			g.Health = []Check{}
		}
		if g.Peers == nil {
			g.Peers = []Peer{}
		}
		groups[i] = g
	}
	s.Groups = groups
	return s
}
