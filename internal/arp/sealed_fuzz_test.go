package arp_test

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
)

// FuzzSealedFrame feeds the receive path of an authenticated frame, Open
// then UnmarshalBinary, with genuine sealed frames and their mutations: it
// never panics, a frame that opens decodes to what was sealed only if it is
// the sealed frame, and every rejection has a reason or is malformed.
func FuzzSealedFrame(f *testing.F) {
	var secret [auth.KeySize]byte
	secret[0] = 7
	ring, err := auth.NewKeyRing(auth.NewKey(secret))
	if err != nil {
		f.Fatal(err)
	}
	seq, err := auth.OpenSequence("", auth.SequenceOptions{})
	if err != nil {
		f.Fatal(err)
	}
	signer := auth.NewSigner(ring, seq)
	src := []byte{2, 0, 0, 0, 0, 2}
	vip := netip.MustParseAddr("198.18.0.100")
	for _, p := range []*arp.Packet{
		arp.NewAnnouncement(src, vip, &arp.Trailer{Kind: arp.KindAnnounce, Priority: 200, Flags: arp.FlagHolder}),
		arp.NewProbe(src, arp.Broadcast, vip, &arp.Trailer{Kind: arp.KindBeacon, Priority: 100}),
		arp.NewReply(src, []byte{2, 0, 0, 0, 0, 1}, vip, netip.MustParseAddr("198.18.0.1"), &arp.Trailer{Kind: arp.KindAnnounce}),
	} {
		b, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		sealed, err := signer.Seal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
		f.Add(sealed[:len(sealed)-1])
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		// A fresh verifier per input: no replay state between inputs.
		v := auth.NewVerifier(ring, auth.VerifierOptions{Window: -1})
		var sender [6]byte
		if len(frame) >= 12 {
			sender = [6]byte(frame[6:12])
		}
		orig := bytes.Clone(frame)
		payload, _, err := v.Open(frame, sender)
		if !bytes.Equal(frame, orig) {
			t.Fatal("Open modified its input")
		}
		if err != nil {
			if auth.ReasonOf(err) == "" {
				t.Fatalf("rejection without a reason: %v", err)
			}
			return
		}
		if len(payload) != len(frame)-auth.BlockLen {
			t.Fatalf("payload is %d bytes of a %d-byte frame", len(payload), len(frame))
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(payload); err != nil && !errors.Is(err, arp.ErrMalformed) {
			t.Fatalf("UnmarshalBinary error not ErrMalformed: %v", err)
		}
	})
}
