//go:build linux

package afpacket

import (
	"errors"
	"net"
	"testing"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
)

func testRing(t *testing.T) *auth.KeyRing {
	t.Helper()
	k, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := auth.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type failSeq struct{}

func (failSeq) Next() (uint64, error) { return 0, errors.New("disk full") }

// TestConnAuth: with SetAuth, Write seals (or sends nothing), and Read
// authenticates sealed frames, passes unsealed ones up as unauthenticated,
// drops a frame whose block fails with its reason, and passes a frame with
// our own MAC up unverified when the kernel keeps our own transmissions
// away.
func TestConnAuth(t *testing.T) {
	ring := testRing(t)
	seq, err := auth.OpenSequence("", auth.SequenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// B's conn seals what A's conn will read.
	fb := &fakePacketConn{}
	b := newConn(fb, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macB})
	if err := b.SetAuth(auth.NewSigner(ring, seq), auth.NewVerifier(ring, auth.VerifierOptions{})); err != nil {
		t.Fatal(err)
	}
	ann := arp.NewAnnouncement(macB, vip, &arp.Trailer{Kind: arp.KindAnnounce, Priority: 150})
	if err := b.Write(ann); err != nil {
		t.Fatal(err)
	}
	sealed := fb.written[0]
	if len(sealed) != 60+auth.BlockLen {
		t.Fatalf("sealed frame is %d bytes, want %d", len(sealed), 60+auth.BlockLen)
	}
	edited := append([]byte(nil), sealed...)
	edited[arp.TrailerOffset+6] = 254 // priority
	plain := mustMarshal(t, arp.NewReply(macB, macA, vip, ipB, nil))
	spoof := mustMarshal(t, arp.NewAnnouncement(macA, vip, &arp.Trailer{Kind: arp.KindAnnounce}))

	fa := &fakePacketConn{frames: [][]byte{sealed, sealed, edited, plain, spoof}}
	a := newConn(fa, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})
	a.ownOut = true
	if err := a.SetAuth(auth.NewSigner(ring, seq), auth.NewVerifier(ring, auth.VerifierOptions{})); err != nil {
		t.Fatal(err)
	}
	p, err := a.Read()
	if err != nil || !p.Authenticated || p.Trailer == nil || p.Trailer.Priority != 150 {
		t.Fatalf("sealed frame: %+v, %v; want it authenticated", p, err)
	}
	if _, err := a.Read(); auth.ReasonOf(err) != auth.ReasonReplay {
		t.Fatalf("the same frame again: err %v, want reason replay", err)
	}
	if _, err := a.Read(); auth.ReasonOf(err) != auth.ReasonBadTag {
		t.Fatalf("edited frame: err %v, want reason bad_tag", err)
	}
	if p, err := a.Read(); err != nil || p.Authenticated {
		t.Fatalf("plain reply: %+v, %v; want it passed up unauthenticated", p, err)
	}
	if p, err := a.Read(); err != nil || p.Authenticated || p.Source.String() != macA.String() {
		t.Fatalf("frame with our MAC: %+v, %v; want it passed up unauthenticated", p, err)
	}

	fs := &fakePacketConn{}
	s := newConn(fs, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})
	if err := s.SetAuth(auth.NewSigner(ring, failSeq{}), auth.NewVerifier(ring, auth.VerifierOptions{})); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ann); !errors.Is(err, ErrSeal) || len(fs.written) != 0 {
		t.Fatalf("Write with a failing sequence: %v, %d frames sent; want ErrSeal and none", err, len(fs.written))
	}
}
