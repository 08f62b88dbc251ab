package arp

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

func TestRoutineProbeFilter(t *testing.T) {
	us := net.HardwareAddr{2, 0, 0, 0, 0, 0x10}
	peer := net.HardwareAddr{2, 0, 0, 0, 0, 0x20}
	other := net.HardwareAddr{2, 0, 0, 0, 0, 0x30}
	vip := netip.MustParseAddr("198.18.0.100")
	raw, err := routineProbeFilter(us)
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range raw {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    *Packet
		keep bool
	}{
		{"routine probe unicast to us", NewProbe(peer, us, vip, &Trailer{Kind: KindProbe, Priority: 150}), false},
		{"claiming probe unicast to us", NewProbe(peer, us, vip, &Trailer{Kind: KindProbe, Flags: FlagClaiming}), true},
		{"routine probe broadcast", NewProbe(peer, Broadcast, vip, &Trailer{Kind: KindProbe}), true},
		{"routine probe to another node", NewProbe(peer, other, vip, &Trailer{Kind: KindProbe}), true},
		{"beacon", NewProbe(peer, Broadcast, vip, &Trailer{Kind: KindBeacon}), true},
		{"handover release to us", NewProbe(peer, us, vip, &Trailer{Kind: KindRelease}), true},
		{"takeover request to us", NewProbe(peer, us, vip, &Trailer{Kind: KindTakeover}), true},
		{"probe from a host that is not floatip", NewProbe(peer, us, vip, nil), true},
		{"reply to us", NewReply(peer, us, vip, netip.MustParseAddr("198.18.0.11"), nil), true},
		{"announcement", NewAnnouncement(peer, vip, &Trailer{Kind: KindAnnounce}), true},
	}
	for _, tt := range tests {
		b, err := tt.p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := n > 0; got != tt.keep {
			t.Errorf("%s: kept %v, want %v", tt.name, got, tt.keep)
		}
	}
}
