package election

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// Names: every floatip frame carries its sender's node name (arp.Trailer's
// name field), and the peer table keeps the last one heard. Logs and the
// status name a peer "n2 (a2:11:44:fd:65:39)": by the name configured for
// its MAC under peers: (Params.PeerNames) when there is one, since the
// operator wrote it and a frame cannot change it; else by the name learned
// from its frames. A learned name from an unauthenticated frame never
// replaces one from an authenticated frame (and with AuthRequired no
// unauthenticated frame reaches the table at all). A name that does not
// validate is dropped by the codec and counted (Stats.BadNames).

// PeerRole is what a peer says it does, from its latest frame's kind and
// flags.
type PeerRole uint8

const (
	RoleStandby  PeerRole = iota // waiting, willing to claim
	RoleHolder                   // holds the VIP (FlagHolder)
	RoleClaiming                 // found the VIP free, claiming it (FlagClaiming)
	RolePassive                  // will not claim: maintenance hold or unhealthy (FlagPassive)
)

// roleNames spell the roles in the status (text and JSON).
var roleNames = [...]string{"standby", "holder", "claiming", "passive"}

func (r PeerRole) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", r)
}

// MarshalText spells the role by its name (JSON: a string).
func (r PeerRole) MarshalText() ([]byte, error) {
	if int(r) >= len(roleNames) {
		return nil, fmt.Errorf("unknown peer role %d", r)
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText reads a role's name.
func (r *PeerRole) UnmarshalText(b []byte) error {
	for i, n := range roleNames {
		if n == string(b) {
			*r = PeerRole(i)
			return nil
		}
	}
	return fmt.Errorf("unknown peer role %q (want one of %s)", b, strings.Join(roleNames[:], ", "))
}

// PeerInfo is one entry of the peer table, for the status.
type PeerInfo struct {
	MAC net.HardwareAddr
	// Name is the peer's node name: from peers: when configured for its
	// MAC, else learned from its frames; "" when neither.
	Name string
	// Configured says Name comes from peers:.
	Configured bool
	Priority   uint8
	Role       PeerRole
	// Passive says the peer's frames say it will not claim (unhealthy or
	// held; the wire does not tell which).
	Passive  bool
	LastSeen time.Time
}

// Peers lists the peers heard for the group and not yet expired from the
// table (peerExpiryBeacons beacon intervals), best priority first.
func (m *Machine) Peers(now time.Time) []PeerInfo {
	expiry := m.peerExpiry()
	out := make([]PeerInfo, 0, len(m.peers))
	for _, p := range m.peers {
		if now.Sub(p.lastSeen) > expiry {
			continue
		}
		name, configured := m.nameOf(p.mac)
		role := RoleStandby
		switch {
		case p.holder:
			role = RoleHolder
		case p.claiming:
			role = RoleClaiming
		case p.passive:
			role = RolePassive
		}
		out = append(out, PeerInfo{MAC: slices.Clone(p.mac), Name: name, Configured: configured,
			Priority: p.priority, Role: role, Passive: p.passive, LastSeen: p.lastSeen})
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), strings.Compare(a.MAC.String(), b.MAC.String()))
	})
	return out
}

// LostAfter is how long a peer may go unheard before the status calls it
// lost: three beacon intervals, as the handover counts a standby live.
func (m *Machine) LostAfter() time.Duration {
	return 3 * max(m.p.Timing.BeaconInterval, m.p.Timing.CheckInterval)
}

func (m *Machine) peerExpiry() time.Duration {
	return peerExpiryBeacons * max(m.p.Timing.BeaconInterval, m.p.Timing.CheckInterval)
}

// nameOf names mac: by peers: first, then by what its frames said.
func (m *Machine) nameOf(mac net.HardwareAddr) (name string, configured bool) {
	if n := m.p.PeerNames[string(mac)]; n != "" {
		return n, true
	}
	if p := m.peers[string(mac)]; p != nil {
		return p.name, false
	}
	return "", false
}

// who names mac for a log line or a reason: "n2 (a2:11:44:fd:65:39)", or
// the MAC alone when no name is known.
func (m *Machine) who(mac net.HardwareAddr) string {
	if mac == nil {
		return "none"
	}
	if n, _ := m.nameOf(mac); n != "" {
		return n + " (" + mac.String() + ")"
	}
	return mac.String()
}

// learnName keeps the name a peer's trailer carries. An unauthenticated
// name never replaces an authenticated one.
func (m *Machine) learnName(now time.Time, pr *peer, t *arp.Trailer, authed bool) {
	if t.NameRejected {
		m.stats.BadNames++
		if m.badNameAt.IsZero() || now.Sub(m.badNameAt) >= DefendInterval || now.Before(m.badNameAt) {
			m.badNameAt = now
			m.note(slog.LevelWarn, "a peer's frame carries a node name that is not printable UTF-8 of at most 64 bytes: name ignored",
				"from", pr.mac.String())
		}
		return
	}
	if t.Name == "" || pr.nameAuthed && !authed || t.Name == pr.name && pr.nameAuthed == authed {
		return
	}
	pr.name, pr.nameAuthed = t.Name, authed
	if (m.state == StateProbing || m.state == StateStandby) && bytes.Equal(pr.mac, m.holder) && m.p.PeerNames[string(pr.mac)] == "" &&
		(m.nameNoteAt.IsZero() || now.Sub(m.nameNoteAt) >= DefendInterval || now.Before(m.nameNoteAt)) {
		// We followed the holder on its kernel's reply, which has no
		// name: say who it is now that its frames told us.
		m.nameNoteAt = now
		m.note(slog.LevelInfo, "holder identified", "holder", m.who(pr.mac))
	}
}

// PeerName names mac as logs and the status do (peers: first, then its
// frames); "" when no name is known.
func (m *Machine) PeerName(mac net.HardwareAddr) string {
	n, _ := m.nameOf(mac)
	return n
}
