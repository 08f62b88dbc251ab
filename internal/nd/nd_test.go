package nd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/floatip/floatip/internal/arp"
)

var (
	macA  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	vip   = netip.MustParseAddr("2001:db8::10")
	llA   = netip.MustParseAddr("fe80::a")
	probe = &Option{Trailer: arp.Trailer{Kind: arp.KindProbe, Priority: 100, NodeID: 0xcafe}}
	annc  = &Option{Trailer: arp.Trailer{Kind: arp.KindAnnounce, Priority: 200, Flags: arp.FlagHolder, NodeID: 0xcafe}}
)

// cmpOpts compares netip.Addr by value and ndp's messages field by field.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b net.HardwareAddr) bool { return bytes.Equal(a, b) }),
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden holds one frame of each kind floatip sends. Each was checked once
// by writing it to a pcap file and reading it with `tcpdump -vv`, which
// reported "[icmp6 sum ok]" and decoded the fields as the name says (and
// option 253 as an unknown option of length 16).
var golden = []struct {
	name  string
	frame *Frame
	hex   string
}{
	{
		"DAD probe to solicited-node group, with option",
		NewProbe(macA, nil, vip, probe),
		"3333ff00001002000000000a86dd6000000000283aff00000000000000000000000000000000ff0200000000000000000001ff0000108700901f0000000020010db8000000000000000000000010fd02464c4950010164000000cafe0000",
	},
	{
		"DAD probe unicast to the holder's MAC",
		NewProbe(macA, macB, vip, nil),
		"02000000000b02000000000a86dd6000000000183aff00000000000000000000000000000000ff0200000000000000000001ff00001087004ccf0000000020010db8000000000000000000000010",
	},
	{
		"unicast NS from link-local",
		NewSolicitation(macA, macB, llA, vip, nil),
		"02000000000b02000000000a86dd6000000000203afffe80000000000000000000000000000a20010db800000000000000000000001087001b7d0000000020010db8000000000000000000000010010102000000000a",
	},
	{
		"multicast NS from link-local to solicited-node group, with option",
		NewSolicitation(macA, nil, llA, vip, annc),
		"3333ff00001002000000000a86dd6000000000303afffe80000000000000000000000000000aff0200000000000000000001ff00001087002a7f0000000020010db8000000000000000000000010010102000000000afd02464c49500102c8010000cafe0000",
	},
	{
		"unsolicited NA to all-nodes, with option",
		NewAdvertisement(macA, vip, false, annc),
		"33330000000102000000000a86dd6000000000303aff20010db8000000000000000000000010ff0200000000000000000000000000018800d8512000000020010db8000000000000000000000010020102000000000afd02464c49500102c8010000cafe0000",
	},
	{
		"solicited NA unicast",
		NewReply(macA, macB, vip, llA, false, nil),
		"02000000000b02000000000a86dd6000000000203aff20010db8000000000000000000000010fe80000000000000000000000000000a8800b97c6000000020010db8000000000000000000000010020102000000000a",
	},
}

func TestGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			b, err := g.frame.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != g.hex {
				t.Errorf("MarshalBinary:\n got %s\nwant %s", got, g.hex)
			}
			// The checksum Unmarshal verifies with must agree with the
			// one x/net/icmp computes (through ndp) on send.
			icmpMsg := b[ethHeaderLen+ipv6.HeaderLen:]
			if got, want := Checksum(g.frame.SourceIP, g.frame.DestinationIP, icmpMsg), uint16(icmpMsg[2])<<8|uint16(icmpMsg[3]); got != want {
				t.Errorf("Checksum = %#04x, frame has %#04x", got, want)
			}
			if _, err := icmp.ParseMessage(protoICMPv6, icmpMsg); err != nil {
				t.Errorf("x/net/icmp does not parse the message: %v", err)
			}
			var f Frame
			if err := f.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(g.frame, &f, cmpOpts); diff != "" {
				t.Errorf("round trip (-sent +received):\n%s", diff)
			}
		})
	}
}

// Frames captured from Linux 6.18 in the lab of package afpacket: the
// kernel computed their checksums, so they check Checksum independently of
// the library that computes ours.
const (
	// The kernel's own DAD probe for its link-local address, with the
	// nonce option of RFC 7527 (enhanced DAD).
	kernelDAD = "3333ff1e6de8f2b1031e6de886dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff1e6de88700afdb00000000fe80000000000000f0b103fffe1e6de80e01798379a2fc5d"
	// The kernel's answer to our DAD probe for an address it holds: to
	// all-nodes, Override, Solicited clear, target link-layer option.
	kernelDADAnswer = "333300000001f2b1031e6de886dd6000000000203aff20010db800ff00000000000000000010ff020000000000000000000000000001880095572000000020010db800ff000000000000000000100201f2b1031e6de8"
	// The kernel's answer to our unicast NS: Solicited, but neither the
	// Override flag nor a target link-layer option.
	kernelUnicastAnswer = "e249bbc2ad85f2b1031e6de886dd6000000000183aff20010db800ff00000000000000000010fe80000000000000e049bbfffec2ad85880093094000000020010db800ff00000000000000000010"
)

func TestKernelFrames(t *testing.T) {
	held := netip.MustParseAddr("2001:db8:ff::10")
	kernelMAC := net.HardwareAddr{0xf2, 0xb1, 0x03, 0x1e, 0x6d, 0xe8}

	var f Frame
	if err := f.UnmarshalBinary(mustHex(t, kernelDAD)); err != nil {
		t.Fatalf("kernel's DAD probe: %v", err)
	}
	if !f.IsProbe() || f.Option != nil || f.LinkLayerAddr() != nil {
		t.Errorf("kernel's DAD probe: IsProbe %v option %v LLA %v", f.IsProbe(), f.Option, f.LinkLayerAddr())
	}
	if ns := f.Message.(*ndp.NeighborSolicitation); len(ns.Options) != 1 {
		t.Errorf("kernel's DAD probe: options %v, want the nonce", ns.Options)
	} else if _, ok := ns.Options[0].(*ndp.Nonce); !ok {
		t.Errorf("kernel's DAD probe: option %T, want *ndp.Nonce", ns.Options[0])
	}

	if err := f.UnmarshalBinary(mustHex(t, kernelDADAnswer)); err != nil {
		t.Fatalf("kernel's answer to a DAD probe: %v", err)
	}
	na := f.Message.(*ndp.NeighborAdvertisement)
	if f.DestinationIP != AllNodes || na.Solicited || !na.Override || !f.ClaimsIP(held) || !bytes.Equal(f.LinkLayerAddr(), kernelMAC) {
		t.Errorf("kernel's answer to a DAD probe: %+v %+v", f, na)
	}

	if err := f.UnmarshalBinary(mustHex(t, kernelUnicastAnswer)); err != nil {
		t.Fatalf("kernel's answer to a unicast NS: %v", err)
	}
	na = f.Message.(*ndp.NeighborAdvertisement)
	if !na.Solicited || na.Override || f.LinkLayerAddr() != nil || !f.ClaimsIP(held) || !bytes.Equal(f.SenderMAC(), kernelMAC) {
		t.Errorf("kernel's answer to a unicast NS: %+v %+v", f, na)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good := func() []byte { return mustHex(t, golden[0].hex) } // DAD probe with option
	na := func() []byte { return mustHex(t, golden[4].hex) }   // unsolicited NA with option
	// fix recomputes the checksum after a change that must not be caught
	// by it.
	fix := func(b []byte) []byte {
		h := b[ethHeaderLen:]
		m := h[ipv6.HeaderLen:]
		m[2], m[3] = 0, 0
		s := Checksum(netip.AddrFrom16([16]byte(h[8:24])), netip.AddrFrom16([16]byte(h[24:40])), m)
		m[2], m[3] = byte(s>>8), byte(s)
		return b
	}
	const icmpOff = ethHeaderLen + ipv6.HeaderLen
	for _, tc := range []struct {
		name  string
		frame []byte
		want  []error
	}{
		{"empty", nil, []error{ErrMalformed}},
		{"short Ethernet", good()[:10], []error{ErrMalformed}},
		{"ARP", func() []byte { b := good(); b[12], b[13] = 0x08, 0x06; return b }(), []error{ErrNotND}},
		{"short IPv6 header", good()[:ethHeaderLen+30], []error{ErrMalformed}},
		{"IP version 4", func() []byte { b := good(); b[ethHeaderLen] = 0x40; return b }(), []error{ErrMalformed}},
		{"UDP", func() []byte { b := good(); b[ethHeaderLen+6] = 17; return b }(), []error{ErrNotND}},
		{"payload length past the end", func() []byte { b := good(); b[ethHeaderLen+5]++; return b }(), []error{ErrMalformed}},
		{"echo request", fix(func() []byte { b := good(); b[icmpOff] = 128; return b }()), []error{ErrNotND}},
		{"hop limit 64", func() []byte { b := good(); b[ethHeaderLen+7] = 64; return b }(), []error{ErrMalformed, ErrHopLimit}},
		{"hop limit 254", func() []byte { b := good(); b[ethHeaderLen+7] = 254; return b }(), []error{ErrMalformed, ErrHopLimit}},
		{"bad checksum", func() []byte { b := good(); b[icmpOff+3] ^= 1; return b }(), []error{ErrMalformed, ErrChecksum}},
		{"target changed", func() []byte { b := good(); b[icmpOff+23] ^= 1; return b }(), []error{ErrMalformed, ErrChecksum}},
		{"code 1", fix(func() []byte { b := good(); b[icmpOff+1] = 1; return b }()), []error{ErrMalformed}},
		{"truncated NS", fix(func() []byte {
			b := good()[:icmpOff+20]
			b[ethHeaderLen+5] = 20
			return b
		}()), []error{ErrMalformed}},
		{"option of length 0", fix(func() []byte { b := good(); b[icmpOff+25] = 0; return b }()), []error{ErrMalformed}},
		{"DAD probe to a unicast address", func() []byte {
			f := NewProbe(macA, nil, vip, nil)
			f.DestinationIP = vip
			b, _ := f.MarshalBinary()
			return b
		}(), []error{ErrMalformed}},
		{"DAD probe with source link-layer option", func() []byte {
			f := NewProbe(macA, nil, vip, nil)
			f.Message.(*ndp.NeighborSolicitation).Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macA}}
			b, _ := f.MarshalBinary()
			return b
		}(), []error{ErrMalformed}},
		{"solicited NA to all-nodes", func() []byte {
			f := NewAdvertisement(macA, vip, false, nil)
			f.Message.(*ndp.NeighborAdvertisement).Solicited = true
			b, _ := f.MarshalBinary()
			return b
		}(), []error{ErrMalformed}},
		{"multicast target", fix(func() []byte { b := na(); b[icmpOff+8] = 0xff; return b }()), []error{ErrMalformed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Frame
			err := f.UnmarshalBinary(tc.frame)
			if err == nil {
				t.Fatal("UnmarshalBinary succeeded, want an error")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %q", err, w)
				}
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotND) {
				t.Errorf("error %q matches neither ErrMalformed nor ErrNotND", err)
			}
			t.Log(err)
		})
	}
}

func TestEthernetPaddingIgnored(t *testing.T) {
	b := append(mustHex(t, golden[1].hex), make([]byte, 10)...)
	var f Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(golden[1].frame, &f, cmpOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestForeignOption253Kept(t *testing.T) {
	// Another experiment's option of type 253 is not floatip's: it stays in
	// the message like any unknown option, and the frame has no Option.
	other := &ndp.RawOption{Type: OptionType, Length: 1, Value: []byte("XYZW\x01\x00")}
	f := NewAdvertisement(macA, vip, false, nil)
	na := f.Message.(*ndp.NeighborAdvertisement)
	na.Options = append(na.Options, other)
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Frame
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Option != nil {
		t.Errorf("Option = %+v, want nil", got.Option)
	}
	if diff := cmp.Diff(f, &got, cmpOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *Frame
	}{
		{"empty", &Frame{}},
		{"IPv4 target", NewProbe(macA, nil, netip.MustParseAddr("198.18.0.1"), nil)},
		{"short MAC", NewAdvertisement(macA[:4], vip, false, nil)},
		{"router solicitation", &Frame{Destination: macB, Source: macA, SourceIP: llA, DestinationIP: AllNodes, Message: &ndp.RouterSolicitation{}}},
		{"auth too long", NewAdvertisement(macA, vip, false, &Option{Auth: make([]byte, MaxAuthLen+1)})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tc.f.MarshalBinary(); err == nil {
				t.Errorf("MarshalBinary succeeded: %x", b)
			} else {
				t.Log(err)
			}
		})
	}
}

func TestMarshalDoesNotChangeMessage(t *testing.T) {
	f := NewAdvertisement(macA, vip, false, annc)
	before := len(f.Message.(*ndp.NeighborAdvertisement).Options)
	for range 2 {
		if _, err := f.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	if after := len(f.Message.(*ndp.NeighborAdvertisement).Options); after != before {
		t.Errorf("MarshalBinary changed the message's options from %d to %d", before, after)
	}
}

func TestAddresses(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::12:3456:789a")
	if got, want := SolicitedNode(a), netip.MustParseAddr("ff02::1:ff56:789a"); got != want {
		t.Errorf("SolicitedNode(%v) = %v, want %v", a, got, want)
	}
	if got, err := ndp.SolicitedNodeMulticast(a); err != nil || got != SolicitedNode(a) {
		t.Errorf("ndp.SolicitedNodeMulticast(%v) = %v, %v; ours %v", a, got, err, SolicitedNode(a))
	}
	if got, want := MulticastMAC(SolicitedNode(a)).String(), "33:33:ff:56:78:9a"; got != want {
		t.Errorf("MulticastMAC = %s, want %s", got, want)
	}
	if got, want := MulticastMAC(AllNodes).String(), "33:33:00:00:00:01"; got != want {
		t.Errorf("MulticastMAC(all-nodes) = %s, want %s", got, want)
	}
}

func TestPredicates(t *testing.T) {
	p := NewProbe(macA, nil, vip, nil)
	if !p.IsProbe() || p.ClaimsIP(vip) || p.ClaimsIP(netip.IPv6Unspecified()) {
		t.Errorf("probe: IsProbe %v ClaimsIP(vip) %v ClaimsIP(::) %v", p.IsProbe(), p.ClaimsIP(vip), p.ClaimsIP(netip.IPv6Unspecified()))
	}
	if p.LinkLayerAddr() != nil || !bytes.Equal(p.SenderMAC(), macA) {
		t.Errorf("probe: LinkLayerAddr %v SenderMAC %v", p.LinkLayerAddr(), p.SenderMAC())
	}
	s := NewSolicitation(macA, macB, llA, vip, nil)
	if s.IsProbe() || s.ClaimsIP(vip) || !s.ClaimsIP(llA) || !bytes.Equal(s.LinkLayerAddr(), macA) {
		t.Errorf("solicitation: IsProbe %v ClaimsIP(vip) %v ClaimsIP(ll) %v LLA %v", s.IsProbe(), s.ClaimsIP(vip), s.ClaimsIP(llA), s.LinkLayerAddr())
	}
	na := NewAdvertisement(macB, vip, false, nil)
	if !na.IsAdvertisement() || na.IsSolicitation() || !na.ClaimsIP(vip) || na.Target() != vip || !bytes.Equal(na.LinkLayerAddr(), macB) {
		t.Errorf("advertisement: %+v", na)
	}
}

// A floatip option that does not parse, or two of them, cost floatip its
// data but not the message: Linux skips option 253 and applies an NA
// whatever the option holds, so the NA is read as one without floatip
// data (a claim like any host's), with OptionRejected set.
func TestBrokenOptionDropped(t *testing.T) {
	na := func() []byte { return mustHex(t, golden[4].hex) } // unsolicited NA with option
	fix := func(b []byte) []byte {
		h := b[ethHeaderLen:]
		m := h[ipv6.HeaderLen:]
		m[2], m[3] = 0, 0
		s := Checksum(netip.AddrFrom16([16]byte(h[8:24])), netip.AddrFrom16([16]byte(h[24:40])), m)
		m[2], m[3] = byte(s>>8), byte(s)
		return b
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"two floatip options", func() []byte {
			f := NewAdvertisement(macA, vip, false, annc)
			raw, _ := annc.rawOption()
			f.Message.(*ndp.NeighborAdvertisement).Options = append(f.Message.(*ndp.NeighborAdvertisement).Options, raw)
			b, _ := f.MarshalBinary()
			return b
		}()},
		{"auth length past the option", fix(func() []byte { b := na(); b[len(b)-2] = 3; return b }())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Frame
			if err := f.UnmarshalBinary(tc.frame); err != nil {
				t.Fatal(err)
			}
			if f.Option != nil || !f.OptionRejected || !f.ClaimsIP(vip) || len(f.Message.(*ndp.NeighborAdvertisement).Options) != 1 {
				t.Errorf("got %+v (option %+v), want the NA claiming %v with only its link-layer option and OptionRejected", f, f.Option, vip)
			}
		})
	}
}
