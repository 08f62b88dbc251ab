package nd

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/net/ipv6"
)

// withExt puts extension headers (each 8 bytes, PadN only, of the given
// types, in order) between the IPv6 header and the ICMPv6 message of b.
// The ICMPv6 checksum stays valid: its pseudo-header has the ICMPv6
// length.
func withExt(b []byte, types ...byte) []byte {
	const ip = ethHeaderLen
	out := append([]byte{}, b[:ip+ipv6.HeaderLen]...)
	next := out[ip+6]
	if len(types) > 0 {
		out[ip+6] = types[0]
	}
	for i := range types {
		nh := next
		if i+1 < len(types) {
			nh = types[i+1]
		}
		out = append(out, nh, 0, 1, 4, 0, 0, 0, 0)
	}
	binary.BigEndian.PutUint16(out[ip+4:ip+6], binary.BigEndian.Uint16(b[ip+4:ip+6])+uint16(8*len(types)))
	return append(out, b[ip+ipv6.HeaderLen:]...)
}

// Linux processes an ND message behind Hop-by-Hop and Destination Options
// headers (an NA behind one moves neighbour entries: the lab test
// TestIPv6ClaimsTheKernelApplies), so the codec decodes it too; it
// refuses a fragment, a routing header, too many headers, and a header cut
// off; such a frame never carries a sealed frame's auth field.
func TestExtensionHeaders(t *testing.T) {
	na, err := NewAdvertisement(macA, vip, false, annc).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error // nil: decodes
	}{
		{"destination options", withExt(na, 60), nil},
		{"hop-by-hop", withExt(na, 0), nil},
		{"hop-by-hop then destination options", withExt(na, 0, 60), nil},
		{"fragment header", withExt(na, 44), ErrNotND},
		{"routing header", withExt(na, 43), ErrNotND},
		{"five headers", withExt(na, 60, 60, 60, 60, 60), ErrNotND},
		{"header length past the end", func() []byte {
			b := withExt(na, 60)
			b[ethHeaderLen+ipv6.HeaderLen+1] = 200
			return b
		}(), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Frame
			err := f.UnmarshalBinary(tc.frame)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !f.ClaimsIP(vip) || f.Option == nil || f.Option.Priority != annc.Priority {
				t.Errorf("decoded %+v (option %+v), want the NA claiming %v with its option", f, f.Option, vip)
			}
			if _, _, ok := AuthField(tc.frame); ok {
				t.Error("AuthField found an auth field behind an extension header: such a frame must read as unsealed")
			}
		})
	}
}

// withOption appends the raw option opt to the ND message of b and fixes
// the lengths and the checksum.
func withOption(b, opt []byte) []byte {
	out := append(append([]byte{}, b...), opt...)
	h := out[ethHeaderLen:]
	binary.BigEndian.PutUint16(h[4:6], binary.BigEndian.Uint16(h[4:6])+uint16(len(opt)))
	m := h[ipv6.HeaderLen:]
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:4], Checksum(netip.AddrFrom16([16]byte(h[8:24])), netip.AddrFrom16([16]byte(h[24:40])), m))
	return out
}

// An NA padded with an unknown option of 256 bytes or more: Linux skips
// the option and applies the NA; github.com/mdlayher/ndp refuses the whole
// message (it computes option lengths in 8 bits), so the codec leaves such
// options out before parsing, and sees the claim. A floatip option that
// long is still refused (this package never sends one).
func TestLongUnknownOption(t *testing.T) {
	na, err := NewAdvertisement(macA, vip, false, annc).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, units := range []byte{32, 33, 255} {
		opt := make([]byte, int(units)*8)
		opt[0], opt[1] = 200, units
		var f Frame
		if err := f.UnmarshalBinary(withOption(na, opt)); err != nil {
			t.Fatalf("NA with an unknown option of %d bytes: %v", len(opt), err)
		}
		if !f.ClaimsIP(vip) || f.Option == nil || f.Option.Priority != annc.Priority || !bytesEqual(f.SenderMAC(), macA) {
			t.Errorf("NA with an unknown option of %d bytes decoded as %+v (option %+v)", len(opt), f, f.Option)
		}
	}
	ours := make([]byte, 33*8)
	ours[0], ours[1] = OptionType, 33
	copy(ours[2:], "FLIP\x01")
	plain, err := NewAdvertisement(macA, vip, false, nil).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := f.UnmarshalBinary(withOption(plain, ours)); !errors.Is(err, ErrMalformed) {
		t.Errorf("NA with a floatip option of %d bytes: %v, want malformed", len(ours), err)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
