package daemon

import (
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/nd"
)

var (
	ndUs     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	ndPeer   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	ndVIP    = netip.MustParseAddr("2001:db8::10")
	ndLL     = netip.MustParseAddr("fe80::1")
	ndPeerLL = netip.MustParseAddr("fe80::2")
)

func trailer(k arp.Kind, flags uint8) *arp.Trailer {
	return &arp.Trailer{Kind: k, Priority: 100, Flags: flags, NodeID: 7, Name: "n1"}
}

// TestToND is the send half of the table in ndwire.go.
func TestToND(t *testing.T) {
	snMAC := nd.MulticastMAC(nd.SolicitedNode(ndVIP))
	allMAC := nd.MulticastMAC(nd.AllNodes)
	type want struct {
		ns          bool
		dst         net.HardwareAddr
		srcIP       netip.Addr
		dstIP       netip.Addr
		solicited   bool
		override    bool
		router      bool
		sourceLLA   bool
		kind        arp.Kind
		withTrailer bool
	}
	tests := []struct {
		name   string
		p      *arp.Packet
		ll     netip.Addr
		router bool
		want   want
	}{
		{"broadcast probe: DAD", arp.NewProbe(ndUs, arp.Broadcast, ndVIP, trailer(arp.KindProbe, arp.FlagClaiming)), ndLL, false,
			want{ns: true, dst: snMAC, srcIP: netip.IPv6Unspecified(), dstIP: nd.SolicitedNode(ndVIP), kind: arp.KindProbe, withTrailer: true}},
		{"broadcast probe without floatip data: DAD", arp.NewProbe(ndUs, arp.Broadcast, ndVIP, nil), ndLL, false,
			want{ns: true, dst: snMAC, srcIP: netip.IPv6Unspecified(), dstIP: nd.SolicitedNode(ndVIP)}},
		{"unicast check: NS from the link-local to the VIP", arp.NewProbe(ndUs, ndPeer, ndVIP, trailer(arp.KindProbe, 0)), ndLL, false,
			want{ns: true, dst: ndPeer, srcIP: ndLL, dstIP: ndVIP, sourceLLA: true, kind: arp.KindProbe, withTrailer: true}},
		{"unicast check without link-local: DAD form, unicast", arp.NewProbe(ndUs, ndPeer, ndVIP, trailer(arp.KindProbe, 0)), netip.Addr{}, false,
			want{ns: true, dst: ndPeer, srcIP: netip.IPv6Unspecified(), dstIP: nd.SolicitedNode(ndVIP), kind: arp.KindProbe, withTrailer: true}},
		{"beacon: NS from the link-local to the group", arp.NewProbe(ndUs, arp.Broadcast, ndVIP, trailer(arp.KindBeacon, arp.FlagHolder)), ndLL, false,
			want{ns: true, dst: snMAC, srcIP: ndLL, dstIP: nd.SolicitedNode(ndVIP), sourceLLA: true, kind: arp.KindBeacon, withTrailer: true}},
		{"release to all", arp.NewProbe(ndUs, arp.Broadcast, ndVIP, trailer(arp.KindRelease, arp.FlagPassive)), ndLL, false,
			want{ns: true, dst: snMAC, srcIP: ndLL, dstIP: nd.SolicitedNode(ndVIP), sourceLLA: true, kind: arp.KindRelease, withTrailer: true}},
		{"handover to one", arp.NewProbe(ndUs, ndPeer, ndVIP, trailer(arp.KindRelease, arp.FlagPassive)), ndLL, false,
			want{ns: true, dst: ndPeer, srcIP: ndLL, dstIP: ndVIP, sourceLLA: true, kind: arp.KindRelease, withTrailer: true}},
		{"takeover", arp.NewProbe(ndUs, ndPeer, ndVIP, trailer(arp.KindTakeover, 0)), ndLL, false,
			want{ns: true, dst: ndPeer, srcIP: ndLL, dstIP: ndVIP, sourceLLA: true, kind: arp.KindTakeover, withTrailer: true}},
		{"announcement: unsolicited NA", arp.NewAnnouncement(ndUs, ndVIP, trailer(arp.KindAnnounce, arp.FlagHolder)), ndLL, false,
			want{dst: allMAC, srcIP: ndVIP, dstIP: nd.AllNodes, override: true, kind: arp.KindAnnounce, withTrailer: true}},
		{"defend with the router flag", arp.NewAnnouncement(ndUs, ndVIP, trailer(arp.KindDefend, arp.FlagHolder)), ndLL, true,
			want{dst: allMAC, srcIP: ndVIP, dstIP: nd.AllNodes, override: true, router: true, kind: arp.KindDefend, withTrailer: true}},
		{"reply to a link-local: solicited NA", arp.NewReply(ndUs, ndPeer, ndVIP, ndPeerLL, trailer(arp.KindAnnounce, arp.FlagHolder)), ndLL, false,
			want{dst: ndPeer, srcIP: ndVIP, dstIP: ndPeerLL, solicited: true, override: true, kind: arp.KindAnnounce, withTrailer: true}},
		{"reply to ::: NA to all-nodes, unicast frame", arp.NewReply(ndUs, ndPeer, ndVIP, netip.IPv6Unspecified(), trailer(arp.KindAnnounce, arp.FlagHolder)), ndLL, false,
			want{dst: ndPeer, srcIP: ndVIP, dstIP: nd.AllNodes, override: true, kind: arp.KindAnnounce, withTrailer: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := toND(tt.p, tt.ll, tt.router)
			if f == nil {
				t.Fatal("no frame")
			}
			w := tt.want
			if f.Source.String() != ndUs.String() || f.Destination.String() != w.dst.String() || f.SourceIP != w.srcIP || f.DestinationIP != w.dstIP {
				t.Errorf("frame %v -> %v, %v -> %v; want %v -> %v, %v -> %v", f.Source, f.Destination, f.SourceIP, f.DestinationIP, ndUs, w.dst, w.srcIP, w.dstIP)
			}
			if f.IsSolicitation() != w.ns || f.Target() != ndVIP {
				t.Errorf("NS %v target %v; want NS %v target %v", f.IsSolicitation(), f.Target(), w.ns, ndVIP)
			}
			if na, ok := f.Message.(*ndp.NeighborAdvertisement); ok {
				if na.Solicited != w.solicited || na.Override != w.override || na.Router != w.router {
					t.Errorf("NA flags S %v O %v R %v; want %v %v %v", na.Solicited, na.Override, na.Router, w.solicited, w.override, w.router)
				}
				if f.LinkLayerAddr().String() != ndUs.String() {
					t.Errorf("NA target link-layer option %v, want %v", f.LinkLayerAddr(), ndUs)
				}
			}
			if ns, ok := f.Message.(*ndp.NeighborSolicitation); ok && (len(ns.Options) > 0) != w.sourceLLA {
				t.Errorf("NS options %v; want a source link-layer option: %v", ns.Options, w.sourceLLA)
			}
			if (f.Option != nil) != w.withTrailer || f.Option != nil && (f.Option.Kind != w.kind || f.Option.NodeID != 7 || f.Option.Priority != 100) {
				t.Errorf("option %+v; want kind %v (present %v)", f.Option, w.kind, w.withTrailer)
			}
			// Every frame must encode, and decode again as valid ND.
			b, err := f.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back nd.Frame
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatalf("the frame does not decode: %v", err)
			}
		})
	}
	if f := toND(arp.NewProbe(ndUs, arp.Broadcast, netip.MustParseAddr("198.18.0.1"), nil), ndLL, false); f != nil {
		t.Errorf("an IPv4 probe became ND: %+v", f)
	}
}

// TestFromND is the receive half: each kind of frame the machine may see,
// and what the machine reads in it.
func TestFromND(t *testing.T) {
	opt := func(k arp.Kind, flags uint8) *nd.Option {
		return &nd.Option{Trailer: arp.Trailer{Kind: k, Priority: 150, Flags: flags, NodeID: 9}}
	}
	unicastNS := nd.NewSolicitation(ndPeer, ndUs, ndPeerLL, ndVIP, nil)
	kernelUnicastNA := nd.NewReply(ndPeer, ndUs, ndVIP, ndLL, false, nil)
	na := kernelUnicastNA.Message.(*ndp.NeighborAdvertisement)
	na.Override, na.Options = false, nil // as Linux answers a unicast NS
	floatipReplyAll := nd.NewAdvertisement(ndPeer, ndVIP, false, opt(arp.KindAnnounce, arp.FlagHolder))
	floatipReplyAll.Destination = ndUs
	tests := []struct {
		name    string
		f       *nd.Frame
		probe   bool
		reply   bool
		sender  netip.Addr
		target  netip.Addr
		dst     net.HardwareAddr
		mac     net.HardwareAddr
		kind    arp.Kind // 0: no trailer
		claimed bool     // sender IP == target IP: a gratuitous claim
	}{
		{name: "DAD probe from a peer", f: nd.NewProbe(ndPeer, nil, ndVIP, opt(arp.KindProbe, arp.FlagClaiming)),
			probe: true, sender: netip.IPv6Unspecified(), target: ndVIP, dst: arp.Broadcast, mac: ndPeer, kind: arp.KindProbe},
		{name: "a peer's beacon from its link-local", f: nd.NewSolicitation(ndPeer, nil, ndPeerLL, ndVIP, opt(arp.KindBeacon, arp.FlagHolder)),
			probe: true, sender: netip.IPv6Unspecified(), target: ndVIP, dst: arp.Broadcast, mac: ndPeer, kind: arp.KindBeacon},
		{name: "a handover to us", f: nd.NewSolicitation(ndPeer, ndUs, ndPeerLL, ndVIP, opt(arp.KindRelease, arp.FlagPassive)),
			probe: true, sender: netip.IPv6Unspecified(), target: ndVIP, dst: ndUs, mac: ndPeer, kind: arp.KindRelease},
		{name: "a client's NS", f: unicastNS,
			probe: true, sender: netip.IPv6Unspecified(), target: ndVIP, dst: ndUs, mac: ndPeer},
		{name: "a peer's announcement", f: nd.NewAdvertisement(ndPeer, ndVIP, false, opt(arp.KindAnnounce, arp.FlagHolder)),
			sender: ndVIP, target: ndVIP, dst: arp.Broadcast, mac: ndPeer, kind: arp.KindAnnounce, claimed: true},
		{name: "a kernel's answer to a DAD probe (to all-nodes)", f: nd.NewAdvertisement(ndPeer, ndVIP, false, nil),
			reply: true, sender: ndVIP, target: netip.IPv6Unspecified(), dst: arp.Broadcast, mac: ndPeer},
		{name: "a kernel's answer to our unicast NS (no link-layer option)", f: kernelUnicastNA,
			reply: true, sender: ndVIP, target: ndLL, dst: ndUs, mac: ndPeer},
		{name: "a holder's own answer to our check", f: nd.NewReply(ndPeer, ndUs, ndVIP, ndLL, false, opt(arp.KindAnnounce, arp.FlagHolder)),
			reply: true, sender: ndVIP, target: ndLL, dst: ndUs, mac: ndPeer, kind: arp.KindAnnounce},
		{name: "a holder's own answer to a DAD probe (all-nodes, unicast frame)", f: floatipReplyAll,
			reply: true, sender: ndVIP, target: netip.IPv6Unspecified(), dst: ndUs, mac: ndPeer, kind: arp.KindAnnounce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Through the codec, as from the wire.
			b, err := tt.f.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var f nd.Frame
			if err := f.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			p := fromND(&f)
			if p == nil {
				t.Fatal("no packet")
			}
			if p.IsProbe() != tt.probe || (p.Operation == arp.OperationReply) != tt.reply {
				t.Errorf("probe %v reply %v; want %v %v", p.IsProbe(), p.Operation == arp.OperationReply, tt.probe, tt.reply)
			}
			if p.SenderIP != tt.sender || p.TargetIP != tt.target {
				t.Errorf("sender %v target %v; want %v %v", p.SenderIP, p.TargetIP, tt.sender, tt.target)
			}
			if (p.SenderIP == p.TargetIP) != tt.claimed {
				t.Errorf("gratuitous claim %v, want %v", p.SenderIP == p.TargetIP, tt.claimed)
			}
			if p.Destination.String() != tt.dst.String() || p.SenderHardwareAddr.String() != tt.mac.String() || p.Source.String() != ndPeer.String() {
				t.Errorf("dst %v sender MAC %v source %v; want %v %v %v", p.Destination, p.SenderHardwareAddr, p.Source, tt.dst, tt.mac, ndPeer)
			}
			switch {
			case tt.kind == 0 && p.Trailer != nil:
				t.Errorf("trailer %+v, want none", p.Trailer)
			case tt.kind != 0 && (p.Trailer == nil || p.Trailer.Kind != tt.kind || p.Trailer.Priority != 150 || p.Trailer.NodeID != 9):
				t.Errorf("trailer %+v, want kind %v priority 150 node 9", p.Trailer, tt.kind)
			}
		})
	}
}

// TestNDRoundTrip: what one node's machine sends, the other's reads as the
// same kind of packet.
func TestNDRoundTrip(t *testing.T) {
	for _, p := range []*arp.Packet{
		arp.NewProbe(ndUs, arp.Broadcast, ndVIP, trailer(arp.KindProbe, arp.FlagClaiming)),
		arp.NewProbe(ndUs, ndPeer, ndVIP, trailer(arp.KindBeacon, arp.FlagHolder)),
		arp.NewProbe(ndUs, arp.Broadcast, ndVIP, trailer(arp.KindRelease, arp.FlagPassive)),
		arp.NewProbe(ndUs, ndPeer, ndVIP, trailer(arp.KindRelease, arp.FlagPassive)),
		arp.NewAnnouncement(ndUs, ndVIP, trailer(arp.KindAnnounce, arp.FlagHolder)),
		arp.NewReply(ndUs, ndPeer, ndVIP, netip.IPv6Unspecified(), trailer(arp.KindAnnounce, arp.FlagHolder)),
	} {
		b, err := toND(p, ndLL, false).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var f nd.Frame
		if err := f.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		got := fromND(&f)
		if got.IsProbe() != p.IsProbe() || got.Operation != p.Operation || got.Destination.String() != p.Destination.String() ||
			got.SenderHardwareAddr.String() != ndUs.String() || got.Trailer == nil || got.Trailer.Kind != p.Trailer.Kind ||
			got.Trailer.Flags != p.Trailer.Flags || (got.SenderIP == got.TargetIP) != (p.SenderIP == p.TargetIP) {
			t.Errorf("%v %v kind %v -> %+v (trailer %+v)", p.Operation, p.Destination, p.Trailer.Kind, got, got.Trailer)
		}
	}
}
