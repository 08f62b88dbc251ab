//go:build linux

package afpacket

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/nd"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
	vip  = netip.MustParseAddr("2001:db8::10")
)

func marshal(t *testing.T, f interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFilter(t *testing.T) {
	raw, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range raw {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	echo := marshal(t, nd.NewProbe(macA, nil, vip, nil))
	echo[14+40] = 128 // ICMPv6 echo request
	udp := marshal(t, nd.NewProbe(macA, nil, vip, nil))
	udp[14+6] = 17
	hop64 := marshal(t, nd.NewProbe(macA, nil, vip, nil))
	hop64[14+7] = 64
	for _, tc := range []struct {
		name  string
		frame []byte
		keep  bool
	}{
		{"DAD probe", marshal(t, nd.NewProbe(macA, nil, vip, nil)), true},
		{"unicast NS", marshal(t, nd.NewSolicitation(macA, macB, netip.MustParseAddr("fe80::a"), vip, nil)), true},
		{"unsolicited NA", marshal(t, nd.NewAdvertisement(macA, vip, false, nil)), true},
		{"NS with hop limit 64 (left to the codec)", hop64, true},
		{"ICMPv6 echo", echo, false},
		{"UDP over IPv6", udp, false},
		{"ARP", marshal(t, arp.NewAnnouncement(macA, netip.MustParseAddr("198.18.0.1"), nil)), false},
		{"runt", []byte{0x33, 0x33}, false},
	} {
		n, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if keep := n > 0; keep != tc.keep {
			t.Errorf("%s: filter keeps %d bytes, want keep=%v", tc.name, n, tc.keep)
		}
		if tc.keep && n < len(tc.frame) {
			t.Errorf("%s: filter truncates to %d of %d bytes", tc.name, n, len(tc.frame))
		}
	}
}

type fakePacketConn struct {
	frames  [][]byte
	written [][]byte
	to      []net.Addr
}

func (f *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if len(f.frames) == 0 {
		return 0, nil, os.ErrDeadlineExceeded
	}
	n := copy(b, f.frames[0])
	f.frames = f.frames[1:]
	return n, &packet.Addr{HardwareAddr: macB}, nil
}

func (f *fakePacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	f.written = append(f.written, append([]byte(nil), b...))
	f.to = append(f.to, addr)
	return len(b), nil
}

func (f *fakePacketConn) SetReadDeadline(time.Time) error { return nil }
func (f *fakePacketConn) Close() error                    { return nil }

type fakeJoiner struct {
	joined map[string]int
	closed bool
}

func (j *fakeJoiner) JoinGroup(_ *net.Interface, g net.Addr) error {
	j.joined[g.(*net.UDPAddr).IP.String()]++
	return nil
}

func (j *fakeJoiner) LeaveGroup(_ *net.Interface, g net.Addr) error {
	j.joined[g.(*net.UDPAddr).IP.String()]--
	return nil
}

func (j *fakeJoiner) Close() error { j.closed = true; return nil }

func TestConnRead(t *testing.T) {
	own := marshal(t, nd.NewAdvertisement(macA, vip, false, nil))
	notND := marshal(t, arp.NewAnnouncement(macB, netip.MustParseAddr("198.18.0.1"), nil))
	bad := marshal(t, nd.NewAdvertisement(macB, vip, false, nil))
	bad[14+7] = 1
	peer := nd.NewAdvertisement(macB, vip, false, &nd.Option{Trailer: arp.Trailer{Kind: arp.KindAnnounce, NodeID: 2}})
	fake := &fakePacketConn{frames: [][]byte{own, notND, bad, own, marshal(t, peer)}}
	c := newConn(fake, &fakeJoiner{joined: map[string]int{}}, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})

	if _, err := c.Read(); !errors.Is(err, nd.ErrHopLimit) || !errors.Is(err, nd.ErrMalformed) {
		t.Fatalf("first Read: err = %v, want ErrHopLimit and ErrMalformed (own frame and ARP skipped)", err)
	}
	got, err := c.Read()
	if err != nil {
		t.Fatalf("second Read: %v", err)
	}
	if got.Target() != vip || got.Option == nil || got.Option.NodeID != 2 {
		t.Errorf("second Read = %+v, want the peer's NA", got)
	}
	if _, err := c.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on empty queue: err = %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestConnWrite(t *testing.T) {
	fake := &fakePacketConn{}
	c := newConn(fake, &fakeJoiner{joined: map[string]int{}}, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})
	f := nd.NewProbe(macA, nil, vip, nil)
	if err := c.Write(f); err != nil {
		t.Fatal(err)
	}
	if len(fake.written) != 1 || string(fake.written[0]) != string(marshal(t, f)) {
		t.Errorf("written %x, want %x", fake.written, marshal(t, f))
	}
	if to := fake.to[0].(*packet.Addr); to.HardwareAddr.String() != "33:33:ff:00:00:10" {
		t.Errorf("sent to %v, want the solicited-node MAC", to)
	}
	if err := c.Write(&nd.Frame{}); err == nil {
		t.Error("Write of an empty Frame succeeded")
	}
}

func TestConnGroups(t *testing.T) {
	j := &fakeJoiner{joined: map[string]int{}}
	c := newConn(&fakePacketConn{}, j, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})
	g := nd.SolicitedNode(vip)
	for range 2 {
		if err := c.JoinGroup(g); err != nil {
			t.Fatal(err)
		}
	}
	if j.joined[g.String()] != 1 {
		t.Errorf("two JoinGroup calls joined %d times, want once", j.joined[g.String()])
	}
	if err := c.LeaveGroup(g); err != nil || j.joined[g.String()] != 1 {
		t.Errorf("first LeaveGroup: %v, joined %d; want still joined", err, j.joined[g.String()])
	}
	if err := c.LeaveGroup(g); err != nil || j.joined[g.String()] != 0 {
		t.Errorf("second LeaveGroup: %v, joined %d; want left", err, j.joined[g.String()])
	}
	if err := c.LeaveGroup(g); err == nil {
		t.Error("LeaveGroup of a group not joined succeeded")
	}
	if err := c.JoinGroup(vip); err == nil {
		t.Error("JoinGroup of a unicast address succeeded")
	}
	if err := c.Close(); err != nil || !j.closed {
		t.Errorf("Close: %v, group socket closed %v", err, j.closed)
	}
	if err := c.JoinGroup(g); !errors.Is(err, net.ErrClosed) {
		t.Errorf("JoinGroup after Close: %v, want net.ErrClosed", err)
	}
}

type seq struct{ n uint64 }

func (s *seq) Next() (uint64, error) { s.n++; return uint64(time.Now().UnixNano()) + s.n, nil }

func TestConnAuth(t *testing.T) {
	ring, err := auth.NewKeyRing(auth.NewKey([auth.KeySize]byte{0: 7}))
	if err != nil {
		t.Fatal(err)
	}
	// B seals what it writes; A reads it.
	out := &fakePacketConn{}
	b := newConn(out, &fakeJoiner{joined: map[string]int{}}, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macB})
	b.SetAuth(auth.NewSigner(ring, &seq{}), auth.NewVerifier(ring, auth.VerifierOptions{}))
	opt := &nd.Option{Trailer: arp.Trailer{Kind: arp.KindAnnounce, Priority: 150, NodeID: 2}}
	for _, f := range []*nd.Frame{nd.NewAdvertisement(macB, vip, false, opt), nd.NewAdvertisement(macB, vip, false, nil)} {
		if err := b.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	sealed, kernel := out.written[0], out.written[1]
	forged := append([]byte(nil), sealed...)
	var fr nd.Frame
	if err := fr.UnmarshalBinary(forged); err != nil {
		t.Fatal(err)
	}
	off, _, _ := nd.AuthField(forged)
	forged[off-16+8] = 254 // the priority
	// A forger recomputes the checksum too: fix it with the codec.
	fr.Option.Priority, fr.Option.Auth = 254, append([]byte(nil), fr.Option.Auth...)
	forged = marshal(t, &fr)

	in := &fakePacketConn{frames: [][]byte{sealed, sealed, forged, kernel}}
	a := newConn(in, &fakeJoiner{joined: map[string]int{}}, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})
	a.SetAuth(auth.NewSigner(ring, &seq{}), auth.NewVerifier(ring, auth.VerifierOptions{}))
	got, err := a.Read()
	if err != nil || !got.Authenticated || got.Option.Priority != 150 {
		t.Fatalf("sealed frame: %+v, %v; want it authenticated", got, err)
	}
	if _, err := a.Read(); auth.ReasonOf(err) != auth.ReasonReplay {
		t.Errorf("the same frame again: %v, want a replay", err)
	}
	if _, err := a.Read(); auth.ReasonOf(err) != auth.ReasonBadTag {
		t.Errorf("an edited frame: %v, want a bad tag", err)
	}
	if got, err := a.Read(); err != nil || got.Authenticated {
		t.Errorf("the kernel's NA: %+v, %v; want it unauthenticated, no error", got, err)
	}
}
