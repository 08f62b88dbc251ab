package nd

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
)

type counter struct{ n uint64 }

func (c *counter) Next() (uint64, error) {
	c.n++
	return uint64(time.Now().UnixNano()) + c.n, nil
}

func sealers(t *testing.T, secret byte) (*auth.Signer, *auth.Verifier) {
	t.Helper()
	ring, err := auth.NewKeyRing(auth.NewKey([auth.KeySize]byte{0: secret}))
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(ring, &counter{}), auth.NewVerifier(ring, auth.VerifierOptions{})
}

func TestSealOpen(t *testing.T) {
	src := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("2001:db8::10")
	opt := &Option{Trailer: arp.Trailer{Kind: arp.KindAnnounce, Priority: 200, Flags: arp.FlagHolder, NodeID: 5}}
	s, v := sealers(t, 1)
	_, other := sealers(t, 2)
	open := func(v *auth.Verifier) func([]byte) error {
		return func(sealed []byte) error {
			_, _, err := v.Open(sealed, [6]byte(src))
			return err
		}
	}
	for _, f := range []*Frame{
		NewAdvertisement(src, vip, false, opt),
		NewProbe(src, nil, vip, opt),
		NewSolicitation(src, net.HardwareAddr{2, 0, 0, 0, 0, 2}, netip.MustParseAddr("fe80::1"), vip, opt),
	} {
		b, err := SealFrame(f, auth.BlockLen, s.Seal)
		if err != nil {
			t.Fatal(err)
		}
		var back Frame
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("a sealed frame does not decode (checksum after the tag?): %v", err)
		}
		if back.Option == nil || len(back.Option.Auth) != auth.BlockLen || back.Option.Priority != 200 {
			t.Fatalf("sealed option %+v", back.Option)
		}
		if ok, err := OpenFrame(b, auth.BlockLen, open(v)); !ok || err != nil {
			t.Fatalf("open: sealed %v, %v", ok, err)
		}
		if _, err := OpenFrame(b, auth.BlockLen, open(v)); auth.ReasonOf(err) != auth.ReasonReplay {
			t.Errorf("the same frame again: %v, want a replay", err)
		}
		if _, err := OpenFrame(b, auth.BlockLen, open(other)); auth.ReasonOf(err) != auth.ReasonUnknownKey {
			t.Errorf("another ring: %v, want an unknown key", err)
		}
		// A forger edits the priority and fixes the checksum: the tag fails.
		forged := append([]byte(nil), b...)
		off, _, _ := AuthField(forged)
		forged[off-optionFixedLen+8] = 254
		setChecksum(forged)
		if err := back.UnmarshalBinary(forged); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenFrame(forged, auth.BlockLen, open(v)); auth.ReasonOf(err) != auth.ReasonBadTag {
			t.Errorf("an edited frame: %v, want a bad tag", err)
		}
	}
	plain, err := NewAdvertisement(src, vip, false, opt).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := OpenFrame(plain, auth.BlockLen, open(v)); ok {
		t.Error("an unsealed frame was taken as sealed")
	}
	kernel, _ := NewAdvertisement(src, vip, false, nil).MarshalBinary()
	if ok, _ := OpenFrame(kernel, auth.BlockLen, open(v)); ok {
		t.Error("a frame without the option was taken as sealed")
	}
	if _, err := SealFrame(NewAdvertisement(src, vip, false, nil), auth.BlockLen, s.Seal); err == nil {
		t.Error("sealed a frame without an option")
	}
}
