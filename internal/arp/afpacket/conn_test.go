//go:build linux

package afpacket

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/testutil"
)

// fakePacketConn hands out queued frames and records written ones.
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

func TestConnReadFiltersAndReportsMalformed(t *testing.T) {
	own := mustMarshal(t, arp.NewAnnouncement(macA, vip, &arp.Trailer{Kind: arp.KindAnnounce}))
	peer := arp.NewReply(macB, macA, vip, ipB, nil)
	bad := mustMarshal(t, peer)
	bad[12] = 0x86 // ethertype 0x86 06: not ARP
	fake := &fakePacketConn{frames: [][]byte{own, bad, own, mustMarshal(t, peer)}}
	c := newConn(fake, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})

	if _, err := c.Read(); !errors.Is(err, arp.ErrMalformed) {
		t.Fatalf("first Read: err = %v, want arp.ErrMalformed (own frame skipped, then the bad one)", err)
	}
	got, err := c.Read()
	if err != nil {
		t.Fatalf("second Read: %v", err)
	}
	if diff := cmp.Diff(peer, got, addrComparer); diff != "" {
		t.Errorf("Read mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on empty queue: err = %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestConnWrite(t *testing.T) {
	fake := &fakePacketConn{}
	c := newConn(fake, &net.Interface{Name: "test0", MTU: 1500, HardwareAddr: macA})
	p := arp.NewProbe(macA, macB, vip, trailer)
	if err := c.Write(p); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if diff := cmp.Diff([][]byte{mustMarshal(t, p)}, fake.written); diff != "" {
		t.Errorf("written frames (-want +got):\n%s", diff)
	}
	if to, ok := fake.to[0].(*packet.Addr); !ok || to.HardwareAddr.String() != macB.String() {
		t.Errorf("sent to %v, want %v", fake.to[0], macB)
	}
	if err := c.Write(&arp.Packet{}); err == nil {
		t.Error("Write of an empty arp.Packet succeeded, want error")
	}
}

func TestListenErrorHint(t *testing.T) {
	err := listenError("eth0", &net.OpError{Op: "listen", Net: "packet", Err: os.NewSyscallError("socket", syscall.EPERM)})
	if want := `arp: listen on "eth0": operation not permitted (needs CAP_NET_RAW)`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, os.ErrPermission) {
		t.Error("error does not match os.ErrPermission")
	}
	err = listenError("eth0", &net.OpError{Op: "listen", Net: "packet", Err: os.NewSyscallError("bind", syscall.ENODEV)})
	if want := `arp: listen on "eth0": no such device`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// run runs a command for test setup, failing the test with its output.
func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// listenIn opens a Conn on ifname inside the named network namespace. The
// socket stays in that namespace after creation, so the Conn can be used
// from any goroutine. The goroutine that switched namespaces never unlocks
// its thread, so the thread exits with it and no other code runs there.
func listenIn(t *testing.T, ns, ifname string) *Conn {
	t.Helper()
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			ch <- result{err: fmt.Errorf("open netns %s: %w", ns, err)}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: fmt.Errorf("enter netns %s: %w", ns, err)}
			return
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			ch <- result{err: fmt.Errorf("in netns %s: %w", ns, err)}
			return
		}
		c, err := Listen(ifi)
		ch <- result{c: c, err: err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// readUntil reads from c until match accepts a packet or the deadline
// passes. Other hosts' ARP traffic is skipped, but a frame from c's own MAC
// fails the test: Read must filter those.
func readUntil(t *testing.T, c *Conn, what string, match func(*arp.Packet) bool) *arp.Packet {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := c.Read()
		if errors.Is(err, arp.ErrMalformed) {
			t.Logf("skipping: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if p.Source.String() == c.HardwareAddr().String() {
			t.Fatalf("Read returned our own frame: %+v", p)
		}
		if match(p) {
			return p
		}
		t.Logf("skipping unrelated frame: %+v", p)
	}
}

func TestConnVeth(t *testing.T) {
	testutil.RequireRoot(t)

	nsA := fmt.Sprintf("flarp-%d-a", os.Getpid())
	nsB := fmt.Sprintf("flarp-%d-b", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	// Made directly inside the namespaces, so nothing appears in the
	// host's namespace even for a moment; deleting a namespace deletes its
	// veth end and so the pair.
	run(t, "ip", "-n", nsA, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", nsB)
	run(t, "ip", "-n", nsA, "link", "set", "va", "up")
	run(t, "ip", "-n", nsB, "link", "set", "vb", "up")
	run(t, "ip", "-n", nsB, "addr", "add", "198.18.99.1/32", "dev", "vb")

	a := listenIn(t, nsA, "va")
	b := listenIn(t, nsB, "vb")

	t.Run("announcement with trailer", func(t *testing.T) {
		tr := &arp.Trailer{Kind: arp.KindAnnounce, Priority: 200, Flags: arp.FlagHolder, NodeID: 0xcafe}
		want := arp.NewAnnouncement(a.HardwareAddr(), vip, tr)
		if err := a.Write(want); err != nil {
			t.Fatal(err)
		}
		got := readUntil(t, b, "announcement", func(p *arp.Packet) bool { return p.Trailer != nil })
		if diff := cmp.Diff(want, got, addrComparer); diff != "" {
			t.Errorf("received announcement mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("kernel answers probe", func(t *testing.T) {
		holder := netip.MustParseAddr("198.18.99.1")
		probe := arp.NewProbe(a.HardwareAddr(), arp.Broadcast, holder, &arp.Trailer{Kind: arp.KindProbe, Priority: 100, NodeID: 1})
		if err := a.Write(probe); err != nil {
			t.Fatal(err)
		}
		got := readUntil(t, a, "kernel's reply", func(p *arp.Packet) bool { return p.Operation == arp.OperationReply })
		if !got.ClaimsIP(holder) {
			t.Errorf("reply sender IP %v, want it to claim %v", got.SenderIP, holder)
		}
		if got.Trailer != nil {
			t.Errorf("kernel reply has trailer %+v, want none", got.Trailer)
		}
		if got.SenderHardwareAddr.String() != b.HardwareAddr().String() || got.Source.String() != b.HardwareAddr().String() {
			t.Errorf("reply from %v (sender MAC %v), want %v", got.Source, got.SenderHardwareAddr, b.HardwareAddr())
		}
		if got.Destination.String() != a.HardwareAddr().String() {
			t.Errorf("reply to %v, want unicast to %v", got.Destination, a.HardwareAddr())
		}
	})

	t.Run("read and write after close", func(t *testing.T) {
		c := listenIn(t, nsA, "va")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: err = %v, want net.ErrClosed", err)
		}
		if err := c.Write(arp.NewAnnouncement(c.HardwareAddr(), vip, nil)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: err = %v, want net.ErrClosed", err)
		}
	})

	t.Run("close ends blocked read", func(t *testing.T) {
		c := listenIn(t, nsA, "va")
		done := make(chan error, 1)
		go func() {
			_, err := c.Read()
			done <- err
		}()
		// Not an assertion: gives Read time to block in the poller, so
		// this usually covers the interrupted path rather than the
		// already-closed one above. Both must give net.ErrClosed.
		time.Sleep(20 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Logf("Read ended with: %v", err)
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: err = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still blocked 5s after Close")
		}
	})

	t.Run("deadline ends blocked read", func(t *testing.T) {
		c := listenIn(t, nsA, "va")
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read past deadline: err = %v, want os.ErrDeadlineExceeded", err)
		}
	})
}

var (
	macA = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
	vip  = netip.MustParseAddr("198.18.99.1")
	ipB  = netip.MustParseAddr("198.18.99.2")

	trailer = &arp.Trailer{Kind: arp.KindProbe, Priority: 100, Flags: 0, NodeID: 0xdeadbeef}
)

// addrComparer lets cmp compare netip.Addr, whose fields are unexported.
var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func mustMarshal(t *testing.T, p *arp.Packet) []byte {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
