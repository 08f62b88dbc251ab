package nd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzUnmarshal feeds arbitrary frames to the codec. It must never panic;
// every error must be ErrMalformed or ErrNotND; a frame it accepts must
// marshal again (with a fresh checksum) to a frame that decodes and marshals
// to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, g := range golden {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	for _, s := range []string{kernelDAD, kernelDADAnswer, kernelUnicastAnswer} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	withAuth, _ := NewAdvertisement(macA, vip, false, &Option{Trailer: annc.Trailer, Auth: bytes.Repeat([]byte{9}, 24)}).MarshalBinary()
	f.Add(withAuth)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFrame(t, b)
		// The checksum would stop the fuzzer at the door: try each input
		// also with a correct one, so the rest of the decoder is explored.
		const icmpOff = ethHeaderLen + 40
		if len(b) >= icmpOff+4 {
			c := append([]byte(nil), b...)
			m := c[icmpOff:]
			if plen := int(c[ethHeaderLen+4])<<8 | int(c[ethHeaderLen+5]); plen <= len(m) {
				m = m[:plen]
			}
			if len(m) >= 4 {
				s := Checksum(netip.AddrFrom16([16]byte(c[ethHeaderLen+8:ethHeaderLen+24])), netip.AddrFrom16([16]byte(c[ethHeaderLen+24:ethHeaderLen+40])), m)
				m[2], m[3] = byte(s>>8), byte(s)
				checkFrame(t, c)
			}
		}
	})
}

func checkFrame(t *testing.T, b []byte) {
	// The auth field's locator reads raw bytes from the wire too: it must
	// stay inside the frame whatever it is given.
	if off, n, ok := AuthField(b); ok && (off < 0 || off+n > len(b)) {
		t.Fatalf("AuthField %d+%d outside a frame of %d bytes", off, n, len(b))
	}
	var fr Frame
	err := fr.UnmarshalBinary(b)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotND) {
			t.Fatalf("error %q is neither ErrMalformed nor ErrNotND", err)
		}
		return
	}
	again, err := fr.MarshalBinary()
	if err != nil {
		// ndp re-marshals some options it parsed differently; a
		// frame we only read need not be one we can send.
		return
	}
	var fr2 Frame
	if err := fr2.UnmarshalBinary(again); err != nil {
		t.Fatalf("re-marshalled frame does not decode: %v\n%x", err, again)
	}
	// Compared as bytes: ndp's option types hold values go-cmp cannot see
	// into.
	again2, err := fr2.MarshalBinary()
	if err != nil {
		t.Fatalf("second marshal: %v", err)
	}
	if !bytes.Equal(again, again2) {
		t.Fatalf("marshal(decode(marshal(decode(b)))) differs:\n%x\n%x", again, again2)
	}
}

// FuzzOption feeds arbitrary bytes to the option's own decoder; accepted
// options must round-trip exactly up to padding.
func FuzzOption(f *testing.F) {
	for _, o := range []*Option{probe, annc, {Auth: bytes.Repeat([]byte{1}, MaxAuthLen)}} {
		b, _ := o.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{OptionType, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var o Option
		if err := o.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := o.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted option does not marshal: %v", err)
		}
		var o2 Option
		if err := o2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-marshalled option does not decode: %v", err)
		}
		if diff := cmp.Diff(&o, &o2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
