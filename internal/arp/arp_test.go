package arp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

var (
	macA = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
	vip  = netip.MustParseAddr("198.18.99.1")
	ipB  = netip.MustParseAddr("198.18.99.2")

	trailer = &Trailer{Kind: KindProbe, Priority: 100, Flags: 0, NodeID: 0xdeadbeef}
)

// addrComparer lets cmp compare netip.Addr, whose fields are unexported.
var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    *Packet
	}{
		{"probe broadcast without trailer", NewProbe(macA, Broadcast, vip, nil)},
		{"probe unicast with trailer", NewProbe(macA, macB, vip, trailer)},
		{"announcement", NewAnnouncement(macB, vip, &Trailer{Kind: KindAnnounce, Priority: 200, Flags: FlagHolder, NodeID: 7})},
		{"reply", NewReply(macB, macA, vip, ipB, &Trailer{Kind: KindDefend, Priority: 1, Flags: FlagHolder, NodeID: 1})},
		{"reply without trailer", NewReply(macB, macA, vip, ipB, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.p.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if len(b) != minFrameLen {
				t.Errorf("frame is %d bytes, want %d", len(b), minFrameLen)
			}
			var got Packet
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.p, &got, addrComparer); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarshalLayout(t *testing.T) {
	p := NewAnnouncement(macA, vip, &Trailer{Kind: KindAnnounce, Priority: 150, Flags: FlagHolder, NodeID: 0x01020304})
	want := []byte{
		// Ethernet: destination, source, ethertype ARP.
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x0a,
		0x08, 0x06,
		// ARP: htype 1, ptype IPv4, hlen 6, plen 4, op request.
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
		// sender MAC, sender IP.
		0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 198, 18, 99, 1,
		// target MAC (zero), target IP.
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 99, 1,
		// Trailer: "FLIP", version 1, kind announce, priority 150, flags holder, node ID.
		'F', 'L', 'I', 'P', 0x01, 0x02, 150, 0x01, 0x01, 0x02, 0x03, 0x04,
		// Padding to 60 bytes.
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	got, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frame mismatch (-want +got):\n%s", diff)
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(p *Packet)
	}{
		{"short destination", func(p *Packet) { p.Destination = p.Destination[:5] }},
		{"nil source", func(p *Packet) { p.Source = nil }},
		{"8-byte sender MAC", func(p *Packet) { p.SenderHardwareAddr = make(net.HardwareAddr, 8) }},
		{"nil target MAC", func(p *Packet) { p.TargetHardwareAddr = nil }},
		{"IPv6 sender", func(p *Packet) { p.SenderIP = netip.MustParseAddr("2001:db8::1") }},
		{"IPv4-mapped target", func(p *Packet) { p.TargetIP = netip.MustParseAddr("::ffff:198.18.99.1") }},
		{"zero target IP", func(p *Packet) { p.TargetIP = netip.Addr{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProbe(macA, Broadcast, vip, nil)
			tt.modify(p)
			if b, err := p.MarshalBinary(); err == nil {
				t.Fatalf("MarshalBinary succeeded (% x), want error", b)
			}
		})
	}
}

func mustMarshal(t testing.TB, p *Packet) []byte {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

func TestUnmarshalTruncated(t *testing.T) {
	full := mustMarshal(t, NewProbe(macA, Broadcast, vip, trailer))
	for n := 0; n < len(full); n++ {
		var p Packet
		err := p.UnmarshalBinary(full[:n])
		switch {
		case n < EthernetHeaderLen+PayloadLen:
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("length %d: err = %v, want ErrMalformed", n, err)
			}
		case err != nil:
			t.Errorf("length %d: %v, want success", n, err)
		case n < EthernetHeaderLen+PayloadLen+TrailerLen && p.Trailer != nil:
			t.Errorf("length %d: got trailer %+v from a cut-off trailer", n, p.Trailer)
		case n >= EthernetHeaderLen+PayloadLen+TrailerLen && p.Trailer == nil:
			t.Errorf("length %d: trailer missing", n)
		}
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(b []byte)
	}{
		{"ethertype IPv4", func(b []byte) { b[12], b[13] = 0x08, 0x00 }},
		{"ethertype VLAN", func(b []byte) { b[12], b[13] = 0x81, 0x00 }},
		{"htype 6 (IEEE 802)", func(b []byte) { b[15] = 6 }},
		{"ptype IPv6", func(b []byte) { b[16], b[17] = 0x86, 0xdd }},
		{"hlen 8", func(b []byte) { b[18] = 8 }},
		{"plen 16", func(b []byte) { b[19] = 16 }},
		{"operation 0", func(b []byte) { b[21] = 0 }},
		{"operation 3 (RARP request)", func(b []byte) { b[21] = 3 }},
		{"operation 0x0101", func(b []byte) { b[20] = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustMarshal(t, NewProbe(macA, Broadcast, vip, trailer))
			tt.modify(b)
			var p Packet
			if err := p.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestUnmarshalTrailerIgnored(t *testing.T) {
	tests := []struct {
		name   string
		modify func(b []byte)
	}{
		{"bad magic", func(b []byte) { b[42] = 'X' }},
		{"lowercase magic", func(b []byte) { copy(b[42:46], "flip") }},
		{"version 0", func(b []byte) { b[46] = 0 }},
		{"version 2", func(b []byte) { b[46] = 2 }},
		{"arbitrary padding", func(b []byte) {
			for i := 42; i < len(b); i++ {
				b[i] = byte(i)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := NewProbe(macA, Broadcast, vip, trailer)
			b := mustMarshal(t, want)
			tt.modify(b)
			var got Packet
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			want.Trailer = nil
			if diff := cmp.Diff(want, &got, addrComparer); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshalLongFrame(t *testing.T) {
	// Frames longer than the minimum (NICs may add more padding) parse,
	// and the trailer is still found right after the ARP payload.
	want := NewAnnouncement(macB, vip, &Trailer{Kind: KindRelease, Priority: 9, NodeID: 42})
	b := append(mustMarshal(t, want), make([]byte, 100)...)
	var got Packet
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if diff := cmp.Diff(want, &got, addrComparer); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestUnmarshalDoesNotAlias(t *testing.T) {
	b := mustMarshal(t, NewReply(macB, macA, vip, ipB, nil))
	var p Packet
	if err := p.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	for i := range b {
		b[i] = 0x55
	}
	for name, got := range map[string]net.HardwareAddr{
		"Destination":        p.Destination,
		"Source":             p.Source,
		"SenderHardwareAddr": p.SenderHardwareAddr,
		"TargetHardwareAddr": p.TargetHardwareAddr,
	} {
		if bytes.Contains(got, []byte{0x55}) {
			t.Errorf("%s = %v changed with the input buffer", name, got)
		}
	}
}

func TestPredicates(t *testing.T) {
	other := netip.MustParseAddr("198.18.99.3")
	tests := []struct {
		name      string
		p         *Packet
		isProbe   bool
		claimsVIP bool
	}{
		{"probe", NewProbe(macA, Broadcast, vip, nil), true, false},
		{"announcement", NewAnnouncement(macA, vip, nil), false, true},
		{"reply from vip", NewReply(macB, macA, vip, ipB, nil), false, true},
		{"reply from other", NewReply(macB, macA, other, ipB, nil), false, false},
		{"ordinary request from vip", &Packet{Operation: OperationRequest, SenderIP: vip, TargetIP: other}, false, true},
		{"ordinary request for vip", &Packet{Operation: OperationRequest, SenderIP: other, TargetIP: vip}, false, false},
		{"reply with unspecified sender", &Packet{Operation: OperationReply, SenderIP: netip.IPv4Unspecified()}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.IsProbe(); got != tt.isProbe {
				t.Errorf("IsProbe() = %v, want %v", got, tt.isProbe)
			}
			if got := tt.p.ClaimsIP(vip); got != tt.claimsVIP {
				t.Errorf("ClaimsIP(%v) = %v, want %v", vip, got, tt.claimsVIP)
			}
		})
	}
	// A probe's unspecified sender IP claims nothing, not even 0.0.0.0.
	if NewProbe(macA, Broadcast, vip, nil).ClaimsIP(netip.IPv4Unspecified()) {
		t.Error("probe ClaimsIP(0.0.0.0) = true, want false")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindProbe: "probe", KindAnnounce: "announce", KindRelease: "release",
		KindBeacon: "beacon", KindDefend: "defend", 0: "Kind(0)", 99: "Kind(99)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, p := range []*Packet{
		NewProbe(macA, Broadcast, vip, nil),
		NewProbe(macA, macB, vip, trailer),
		NewAnnouncement(macB, vip, &Trailer{Kind: KindAnnounce, Flags: FlagHolder, NodeID: 3}),
		NewReply(macB, macA, vip, ipB, nil),
		NewAnnouncement(macB, vip, &Trailer{Kind: KindBeacon, Priority: 5, NodeID: 9, Name: "n2"}),
		NewProbe(macA, Broadcast, vip, &Trailer{Kind: KindProbe, Name: strings.Repeat("é", MaxNameLen/2)}),
	} {
		f.Add(mustMarshal(f, p))
	}
	named := mustMarshal(f, NewProbe(macA, Broadcast, vip, &Trailer{Kind: KindProbe, Name: "web-1"}))
	named[57] = 0x1b // ESC inside the name
	f.Add(named)
	f.Add(mustMarshal(f, NewProbe(macA, Broadcast, vip, nil))[:42])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		var p Packet
		if err := p.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("UnmarshalBinary modified its input")
		}
		if tr := p.Trailer; tr != nil {
			if tr.Name != "" && (!ValidName(tr.Name) || strings.ContainsFunc(tr.Name, unicode.IsControl)) {
				t.Fatalf("decoded name %q is not a valid name", tr.Name)
			}
			if tr.Name != "" && tr.NameRejected {
				t.Fatalf("name %q both kept and rejected", tr.Name)
			}
			tr.NameRejected = false // not carried by MarshalBinary
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a parsed frame: %v", err)
		}
		var again Packet
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-parsing marshalled frame: %v", err)
		}
		if diff := cmp.Diff(&p, &again, addrComparer); diff != "" {
			t.Fatalf("re-parse mismatch (-first +second):\n%s", diff)
		}
	})
}

// A name field after the trailer: the golden bytes, and frames stay the
// minimum size when the name fits in the padding.
func TestNameLayout(t *testing.T) {
	p := NewAnnouncement(macA, vip, &Trailer{Kind: KindAnnounce, Priority: 150, Flags: FlagHolder, NodeID: 0x01020304, Name: "n1"})
	b := mustMarshal(t, p)
	if len(b) != minFrameLen {
		t.Errorf("frame is %d bytes, want %d", len(b), minFrameLen)
	}
	want := []byte{'F', 'L', 'I', 'P', 1, byte(KindAnnounce), 150, FlagHolder, 1, 2, 3, 4, fieldName, 2, 'n', '1', 0, 0}
	if got := b[TrailerOffset:]; !bytes.Equal(got, want) {
		t.Errorf("trailer bytes\n got % x\nwant % x", got, want)
	}

	long := strings.Repeat("x", MaxNameLen)
	b = mustMarshal(t, NewProbe(macA, Broadcast, vip, &Trailer{Kind: KindBeacon, Name: long}))
	if wantLen := TrailerOffset + TrailerLen + 2 + MaxNameLen; len(b) != wantLen {
		t.Errorf("frame with a %d-byte name is %d bytes, want %d", MaxNameLen, len(b), wantLen)
	}
	var got Packet
	if err := got.UnmarshalBinary(b); err != nil || got.Trailer == nil || got.Trailer.Name != long {
		t.Fatalf("long name did not round-trip: %v %+v", err, got.Trailer)
	}
}

func TestNameRoundTrip(t *testing.T) {
	for _, name := range []string{"n2", "web-1.example.com", "höst-ß", strings.Repeat("é", MaxNameLen/2)} {
		want := NewProbe(macA, Broadcast, vip, &Trailer{Kind: KindBeacon, Priority: 7, NodeID: 9, Name: name})
		var got Packet
		if err := got.UnmarshalBinary(mustMarshal(t, want)); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if diff := cmp.Diff(want, &got, addrComparer); diff != "" {
			t.Errorf("%q: mismatch (-want +got):\n%s", name, diff)
		}
	}
}

func TestMarshalBadName(t *testing.T) {
	for _, name := range []string{"a b", "x\ny", "\x1b[31mred", strings.Repeat("x", MaxNameLen+1), "\xff"} {
		if b, err := NewProbe(macA, Broadcast, vip, &Trailer{Name: name}).MarshalBinary(); err == nil {
			t.Errorf("name %q: marshalled (% x), want error", name, b)
		}
	}
}

// A name field that is cut off, overlong, not UTF-8 or not printable is
// dropped and flagged; the rest of the trailer stays. A version-1 frame
// without the field (zero padding) has no name and nothing rejected.
func TestNameRejected(t *testing.T) {
	base := func() []byte {
		return mustMarshal(t, NewProbe(macA, Broadcast, vip, &Trailer{Kind: KindBeacon, Priority: 3, NodeID: 5, Name: "abcd"}))
	}
	f := TrailerOffset + TrailerLen // the name field
	tests := []struct {
		name   string
		modify func(b []byte) []byte
	}{
		{"newline", func(b []byte) []byte { b[f+3] = '\n'; return b }},
		{"escape", func(b []byte) []byte { b[f+2] = 0x1b; return b }},
		{"space", func(b []byte) []byte { b[f+2] = ' '; return b }},
		{"NUL", func(b []byte) []byte { b[f+4] = 0; return b }},
		{"invalid UTF-8", func(b []byte) []byte { b[f+2] = 0xc3; return b }},
		{"length 0", func(b []byte) []byte { b[f+1] = 0; return b }},
		{"length past the frame", func(b []byte) []byte { b[f+1] = 200; return b }},
		{"length over the maximum", func(b []byte) []byte {
			b = append(b[:f+1], byte(MaxNameLen+1))
			return append(b, bytes.Repeat([]byte{'x'}, MaxNameLen+1)...)
		}},
		{"cut off", func(b []byte) []byte { return b[:f+3] }},
		{"type only", func(b []byte) []byte { return b[:f+1] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Packet
			if err := got.UnmarshalBinary(tt.modify(base())); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			want := &Trailer{Kind: KindBeacon, Priority: 3, NodeID: 5, NameRejected: true}
			if diff := cmp.Diff(want, got.Trailer); diff != "" {
				t.Errorf("trailer mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Mixed versions during an upgrade: a frame of a node that predates the
// name field (12-byte trailer, zero padding) decodes with no name, and a
// decoder that predates it (reading only the first 12 bytes) still finds
// the trailer of a named frame.
func TestNameMixedVersions(t *testing.T) {
	old := mustMarshal(t, NewProbe(macA, Broadcast, vip, trailer))
	var got Packet
	if err := got.UnmarshalBinary(old); err != nil || got.Trailer == nil || got.Trailer.Name != "" || got.Trailer.NameRejected {
		t.Fatalf("version-1 frame without a name: %v %+v", err, got.Trailer)
	}
	named := mustMarshal(t, NewProbe(macA, Broadcast, vip, &Trailer{Kind: KindProbe, Priority: 100, NodeID: 0xdeadbeef, Name: "n3"}))
	if !bytes.Equal(named[:TrailerOffset+TrailerLen], old[:TrailerOffset+TrailerLen]) {
		t.Errorf("the first %d bytes differ with a name:\n% x\n% x", TrailerOffset+TrailerLen, named, old)
	}
	// An auth block (or anything else that is not the name field) after
	// the trailer is not taken for a name.
	sealed := append(bytes.Clone(old[:TrailerOffset+TrailerLen]), "FLAU\x01\x00rest-of-block"...)
	if err := got.UnmarshalBinary(sealed); err != nil || got.Trailer == nil || got.Trailer.Name != "" || got.Trailer.NameRejected {
		t.Fatalf("trailer followed by another block: %v %+v", err, got.Trailer)
	}
}
