package nd

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/floatip/floatip/internal/arp"
)

func TestOptionGolden(t *testing.T) {
	o := &Option{
		Trailer: arp.Trailer{Kind: arp.KindRelease, Priority: 42, Flags: arp.FlagHolder | arp.FlagPassive, NodeID: 0x01020304},
		Auth:    []byte{0xaa, 0xbb, 0xcc},
	}
	b, err := o.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// 16 fixed bytes + 3 auth bytes, padded to 24.
	const want = "fd03464c495001032a05010203040300aabbcc0000000000"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("MarshalBinary:\n got %s\nwant %s", got, want)
	}
	var got Option
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(o, &got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// The codec copies: changing the input afterwards changes nothing.
	b[16] = 0
	if got.Auth[0] != 0xaa {
		t.Error("UnmarshalBinary's Auth aliases its input")
	}
}

// The node name rides after the auth block, so learning names from the wire
// works over IPv6 as over ARP, and the tag of a sealed frame covers it.
func TestOptionName(t *testing.T) {
	o := &Option{
		Trailer: arp.Trailer{Kind: arp.KindBeacon, Priority: 7, Flags: arp.FlagHolder, NodeID: 9, Name: "web-1"},
		Auth:    []byte{0xaa, 0xbb},
	}
	b, err := o.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// 16 fixed bytes, 2 auth bytes, 5 name bytes, padded to 24.
	const want = "fd03464c495001040701000000090205aabb7765622d3100"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("MarshalBinary:\n got %s\nwant %s", got, want)
	}
	var got Option
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(o, &got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// An invalid name is not sent.
	bad := *o
	bad.Name = "two words"
	if b, _ := bad.MarshalBinary(); b[15] != 0 {
		t.Errorf("an invalid name was encoded: % x", b)
	}
	// Received: a name with a control character, or one cut off, is
	// dropped and the rest kept.
	for name, mangle := range map[string]func([]byte){
		"control character": func(b []byte) { b[16+2+1] = '\n' },
		"cut off":           func(b []byte) { b[15] = 64 },
	} {
		c := append([]byte(nil), b...)
		mangle(c)
		var g Option
		if err := g.UnmarshalBinary(c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if g.Name != "" || !g.NameRejected || g.Priority != 7 || !bytes.Equal(g.Auth, o.Auth) {
			t.Errorf("%s: got %+v, want the name dropped (NameRejected) and the rest kept", name, g)
		}
	}
	// The longest name beside the longest auth block still fits.
	long := &Option{Trailer: arp.Trailer{Name: strings.Repeat("n", arp.MaxNameLen)}, Auth: make([]byte, MaxAuthLen)}
	if b, err := long.MarshalBinary(); err != nil || len(b) > 248 {
		t.Errorf("longest name and auth: %d bytes, %v", len(b), err)
	}
}

func TestOptionAuthSizes(t *testing.T) {
	for _, n := range []int{0, 1, 8, 24, 32, MaxAuthLen} {
		o := &Option{Trailer: arp.Trailer{Kind: arp.KindBeacon}, Auth: bytes.Repeat([]byte{7}, n)}
		if n == 0 {
			o.Auth = nil
		}
		b, err := o.MarshalBinary()
		if err != nil {
			t.Fatalf("auth of %d bytes: %v", n, err)
		}
		if len(b)%8 != 0 || len(b) > 248 {
			t.Errorf("auth of %d bytes: option is %d bytes", n, len(b))
		}
		// And inside a whole frame, through ndp's option parser.
		f := NewAdvertisement(macA, vip, false, o)
		fb, err := f.MarshalBinary()
		if err != nil {
			t.Fatalf("auth of %d bytes: frame: %v", n, err)
		}
		var g Frame
		if err := g.UnmarshalBinary(fb); err != nil {
			t.Fatalf("auth of %d bytes: frame: %v", n, err)
		}
		if diff := cmp.Diff(o, g.Option); diff != "" {
			t.Errorf("auth of %d bytes (-want +got):\n%s", n, diff)
		}
	}
}

func TestOptionRejects(t *testing.T) {
	good, _ := (&Option{Auth: []byte{1, 2}}).MarshalBinary()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other type", append([]byte{1}, good[1:]...)},
		{"length field too big", append([]byte{OptionType, 4}, good[2:]...)},
		{"too short", []byte{OptionType, 1, 'F', 'L', 'I', 'P', 1, 0}},
		{"bad magic", append([]byte{OptionType, 3, 'F', 'L', 'O', 'P'}, good[6:]...)},
		{"other version", append(append([]byte(nil), good[:6]...), append([]byte{2}, good[7:]...)...)},
		{"auth length past end", func() []byte { b := append([]byte(nil), good...); b[14] = 9; return b }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Option
			if err := o.UnmarshalBinary(tc.b); err == nil {
				t.Errorf("UnmarshalBinary(%x) succeeded: %+v", tc.b, o)
			} else {
				t.Log(err)
			}
		})
	}
}
