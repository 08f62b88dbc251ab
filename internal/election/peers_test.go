package election

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// named returns p with the trailer carrying name.
func named(p *arp.Packet, name string) *arp.Packet {
	p.Trailer.Name = name
	return p
}

func peerInfo(t *testing.T, h *harness, mac net.HardwareAddr) PeerInfo {
	t.Helper()
	for _, p := range h.m.Peers(h.now) {
		if p.MAC.String() == mac.String() {
			return p
		}
	}
	t.Fatalf("peer %s not in Peers(): %+v", mac, h.m.Peers(h.now))
	return PeerInfo{}
}

func TestNamesLearnedFromFrames(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	h.frame(named(peerBeacon(macPeerB, 90), "n3"))
	acts := h.frame(named(peerAnnounce(macPeerA, 150), "n1"))
	h.wantState(StateStandby)
	var reason string
	for _, tr := range transitions(acts) {
		reason = tr.Reason
	}
	if want := "VIP is held by n1 (" + macPeerA.String() + ")"; reason != want {
		t.Errorf("reason %q, want %q", reason, want)
	}
	if p := peerInfo(t, h, macPeerA); p.Name != "n1" || p.Configured || p.Role != RoleHolder || p.Priority != 150 {
		t.Errorf("holder entry %+v, want n1, learned, holder, priority 150", p)
	}
	if p := peerInfo(t, h, macPeerB); p.Name != "n3" || p.Role != RoleStandby {
		t.Errorf("standby entry %+v, want n3, standby", p)
	}
	// Our own frames carry our name.
	h2 := newHarness(t, func(p *Params) { p.Name = "self-1" })
	for _, p := range sends(h2.do(Start{LinkUp: true})) {
		if p.Trailer == nil || p.Trailer.Name != "self-1" {
			t.Fatalf("sent trailer %+v, want name self-1", p.Trailer)
		}
	}
	// An invalid own name is left out rather than stopping every frame.
	h3 := newHarness(t, func(p *Params) { p.Name = "has space" })
	for _, p := range sends(h3.do(Start{LinkUp: true})) {
		if p.Trailer.Name != "" {
			t.Fatalf("sent an invalid name %q", p.Trailer.Name)
		}
		if _, err := p.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPeerRoles(t *testing.T) {
	h := newHarness(t)
	h.startFresh()
	h.frame(peerProbe(macPeerA, 90, arp.FlagPassive))
	h.frame(peerProbe(macPeerB, 80, arp.FlagClaiming))
	h.frame(peerBeacon(macPeerC, 70))
	for mac, want := range map[string]PeerRole{macPeerA.String(): RolePassive, macPeerB.String(): RoleClaiming, macPeerC.String(): RoleStandby} {
		m, _ := net.ParseMAC(mac)
		if got := peerInfo(t, h, m); got.Role != want {
			t.Errorf("%s: role %v, want %v", mac, got.Role, want)
		}
	}
	if p := peerInfo(t, h, macPeerA); !p.Passive {
		t.Errorf("passive peer: Passive false")
	}
	// Best priority first.
	ps := h.m.Peers(h.now)
	if len(ps) != 3 || ps[0].Priority != 90 || ps[2].Priority != 70 {
		t.Errorf("order %+v, want priorities 90, 80, 70", ps)
	}
	// Expired peers leave the list (the table keeps them until pruned).
	h.advance(h.m.peerExpiry() + time.Millisecond)
	if ps := h.m.Peers(h.now); len(ps) != 0 {
		t.Errorf("after the expiry: %d peers listed, want 0", len(ps))
	}
}

// peers: names win over names learned from frames; an unauthenticated
// name never replaces an authenticated one; with AuthRequired no name is
// learned from an unauthenticated frame.
func TestNamesTrust(t *testing.T) {
	t.Run("configured wins", func(t *testing.T) {
		h := newHarness(t, func(p *Params) { p.PeerNames = map[string]string{string(macPeerA): "db-primary"} })
		h.startFresh()
		h.frame(named(peerAnnounce(macPeerA, 150), "forged"))
		if p := peerInfo(t, h, macPeerA); p.Name != "db-primary" || !p.Configured {
			t.Errorf("entry %+v, want the configured name", p)
		}
		if got := h.m.who(macPeerA); got != "db-primary ("+macPeerA.String()+")" {
			t.Errorf("who = %q", got)
		}
	})
	t.Run("authenticated not replaced by unauthenticated", func(t *testing.T) {
		h := newHarness(t)
		h.startFresh()
		h.authed(named(peerBeacon(macPeerA, 90), "n2"))
		h.frame(named(peerBeacon(macPeerA, 90), "evil"))
		if p := peerInfo(t, h, macPeerA); p.Name != "n2" {
			t.Errorf("name %q after an unauthenticated frame, want n2", p.Name)
		}
		h.authed(named(peerBeacon(macPeerA, 90), "n2-renamed"))
		if p := peerInfo(t, h, macPeerA); p.Name != "n2-renamed" {
			t.Errorf("name %q, want the authenticated rename", p.Name)
		}
	})
	t.Run("auth required", func(t *testing.T) {
		h := newHarness(t, withAuth())
		h.startFresh()
		h.frame(named(peerBeacon(macPeerA, 90), "evil"))
		if ps := h.m.Peers(h.now); len(ps) != 0 {
			t.Fatalf("unauthenticated frame made peers %+v", ps)
		}
		h.authed(named(peerBeacon(macPeerA, 90), "n2"))
		h.frame(named(peerBeacon(macPeerA, 90), "evil"))
		if p := peerInfo(t, h, macPeerA); p.Name != "n2" {
			t.Errorf("name %q, want n2", p.Name)
		}
	})
	t.Run("rejected name counted, old name kept", func(t *testing.T) {
		h := newHarness(t)
		h.startFresh()
		h.frame(named(peerBeacon(macPeerA, 90), "n2"))
		p := peerBeacon(macPeerA, 90)
		p.Trailer.NameRejected = true
		var notes int
		for range 3 {
			for _, a := range h.frame(p) {
				if n, ok := a.(Note); ok && strings.Contains(n.Msg, "node name") {
					notes++
				}
			}
		}
		if got := h.m.Stats().BadNames; got != 3 {
			t.Errorf("BadNames = %d, want 3", got)
		}
		if notes != 1 {
			t.Errorf("%d notes for 3 bad names at once, want 1 (rate-limited)", notes)
		}
		if got := peerInfo(t, h, macPeerA); got.Name != "n2" {
			t.Errorf("name %q, want n2 kept", got.Name)
		}
	})
}

// `floatip handover --to NAME` finds a standby by the name it sends, even
// when the node ID (a hash of the name) does not match.
func TestHandoverByLearnedName(t *testing.T) {
	h := holderWith(t, nil, nil)
	h.frame(named(peerBeacon(macPeerA, 90), "n2"))
	h.frame(named(peerBeacon(macPeerB, 95), "n3"))
	acts := h.do(Handover{Name: "n2"})
	h.wantState(StateStandby)
	var reason string
	for _, tr := range transitions(acts) {
		reason = tr.Reason
	}
	if !strings.Contains(reason, "handover to n2 ("+macPeerA.String()+")") {
		t.Errorf("reason %q, want the handover to n2", reason)
	}
	h2 := holderWith(t, nil, nil)
	h2.frame(named(peerBeacon(macPeerA, 90), "n2"))
	acts = h2.do(Handover{Name: "nobody"})
	if countOf[Refused](acts) != 1 {
		t.Errorf("handover to an unknown name: %s, want Refused", dump(acts))
	}
}

// A standby that followed the holder on its kernel's reply (no trailer, no
// name) says who the holder is once its frames name it; a holder whose
// name flips frame by frame (forged) logs at most once per DefendInterval.
func TestHolderIdentified(t *testing.T) {
	h := newHarness(t)
	h.becomeStandby(macPeerA)
	notes := func(acts []Action) (out []string) {
		for _, a := range acts {
			if n, ok := a.(Note); ok && n.Msg == "holder identified" {
				out = append(out, n.Attrs[1].(string))
			}
		}
		return out
	}
	got := notes(h.frame(named(holderBeacon(macPeerA, 150), "n1")))
	if want := "n1 (" + macPeerA.String() + ")"; len(got) != 1 || got[0] != want {
		t.Fatalf("notes %q, want one naming %q", got, want)
	}
	var n int
	for i := range 10 {
		h.advance(10 * time.Millisecond)
		n += len(notes(h.frame(named(holderBeacon(macPeerA, 150), []string{"x", "y"}[i%2]))))
	}
	if n != 0 {
		t.Errorf("%d more notes within DefendInterval, want 0", n)
	}
	// A peer that is not the holder is not announced.
	if got := notes(h.frame(named(peerBeacon(macPeerB, 90), "n3"))); len(got) != 0 {
		t.Errorf("a standby's name was announced: %q", got)
	}
}
