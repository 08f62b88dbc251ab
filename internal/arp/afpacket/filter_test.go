package afpacket

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
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
	ring := testRing(t)
	seq, err := auth.OpenSequence("", auth.SequenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    *arp.Packet
		keep bool
	}{
		{"routine probe unicast to us", arp.NewProbe(peer, us, vip, &arp.Trailer{Kind: arp.KindProbe, Priority: 150}), false},
		{"claiming probe unicast to us", arp.NewProbe(peer, us, vip, &arp.Trailer{Kind: arp.KindProbe, Flags: arp.FlagClaiming}), true},
		{"routine probe broadcast", arp.NewProbe(peer, arp.Broadcast, vip, &arp.Trailer{Kind: arp.KindProbe}), true},
		{"routine probe to another node", arp.NewProbe(peer, other, vip, &arp.Trailer{Kind: arp.KindProbe}), true},
		{"beacon", arp.NewProbe(peer, arp.Broadcast, vip, &arp.Trailer{Kind: arp.KindBeacon}), true},
		{"handover release to us", arp.NewProbe(peer, us, vip, &arp.Trailer{Kind: arp.KindRelease}), true},
		{"takeover request to us", arp.NewProbe(peer, us, vip, &arp.Trailer{Kind: arp.KindTakeover}), true},
		{"probe from a host that is not floatip", arp.NewProbe(peer, us, vip, nil), true},
		{"reply to us", arp.NewReply(peer, us, vip, netip.MustParseAddr("198.18.0.11"), nil), true},
		{"announcement", arp.NewAnnouncement(peer, vip, &arp.Trailer{Kind: arp.KindAnnounce}), true},
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
		// The same frame sealed (94 bytes, a peer with auth while this
		// node has none yet: the rollout): same verdict, and a kept frame is
		// kept whole (the filter returns at least its length).
		sealed, err := auth.NewSigner(ring, seq).Seal(b)
		if err != nil {
			t.Fatal(err)
		}
		n, err = vm.Run(sealed)
		if err != nil {
			t.Fatalf("%s sealed: %v", tt.name, err)
		}
		if got := n > 0; got != tt.keep || got && n < len(sealed) {
			t.Errorf("%s sealed: kept %d of %d bytes, want keep %v (whole)", tt.name, n, len(sealed), tt.keep)
		}
	}
}
