//go:build linux

package auth

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/testutil"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"
)

func runCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// packetIn opens an AF_PACKET socket for ARP on ifname inside the named
// namespace. The goroutine that entered the namespace never unlocks its
// thread, so the thread exits with it.
func packetIn(t *testing.T, ns, ifname string) (*packet.Conn, net.HardwareAddr) {
	t.Helper()
	type result struct {
		c   *packet.Conn
		mac net.HardwareAddr
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: err}
			return
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			ch <- result{err: err}
			return
		}
		c, err := packet.Listen(ifi, packet.Raw, 0x0806, nil)
		ch <- result{c: c, mac: ifi.HardwareAddr, err: err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("packet socket on %s in %s: %v", ifname, ns, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, r.mac
}

// TestSealedARPUpdatesOrdinaryHost is the evidence that the auth block
// costs ordinary hosts nothing: a gratuitous ARP of 88 bytes (54 of ARP and
// floatip trailer, 34 of auth block) sent from one namespace makes the
// kernel of another namespace, which knows nothing of floatip, update its
// neighbour entry for the announced address; and a floatip receiver there
// gets all 88 bytes and authenticates them.
func TestSealedARPUpdatesOrdinaryHost(t *testing.T) {
	testutil.RequireRoot(t)
	nsA := fmt.Sprintf("flauth-%d-a", os.Getpid())
	nsB := fmt.Sprintf("flauth-%d-b", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		runCmd(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	runCmd(t, "ip", "-n", nsA, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", nsB)
	runCmd(t, "ip", "-n", nsA, "link", "set", "va", "up")
	runCmd(t, "ip", "-n", nsB, "link", "set", "vb", "up")
	runCmd(t, "ip", "-n", nsB, "addr", "add", "198.18.98.1/24", "dev", "vb")
	// B believes the VIP is at some other MAC; the announcement must move it.
	const vip, oldMAC = "198.18.98.2", "02:00:00:00:00:99"
	runCmd(t, "ip", "-n", nsB, "neigh", "replace", vip, "lladdr", oldMAC, "dev", "vb", "nud", "stale")

	a, macA := packetIn(t, nsA, "va")
	b, _ := packetIn(t, nsB, "vb")

	// The real clock: the Verifier's window compares with it.
	key := testKey(t, 1)
	seq, err := OpenSequence("", SequenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sig := NewSigner(ring(t, key), seq)
	ver := NewVerifier(ring(t, key), VerifierOptions{})

	frame := arpFrame([6]byte(macA))
	copy(frame[28:32], net.ParseIP(vip).To4()) // sender IP
	copy(frame[38:42], net.ParseIP(vip).To4()) // target IP
	// A veth that was just set up drops frames until its queue is
	// activated (asynchronously), so send again until one arrives; each
	// copy is sealed anew, as the daemon would.
	buf := make([]byte, 1514)
	deadline := time.Now().Add(5 * time.Second)
	for received := false; !received; {
		sealed, err := sig.Seal(bytes.Clone(frame))
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 88 {
			t.Fatalf("sealed frame is %d bytes, want 88", len(sealed))
		}
		if _, err := a.WriteTo(sealed, &packet.Addr{HardwareAddr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}); err != nil {
			t.Fatal(err)
		}
		if err := b.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for {
			n, _, err := b.ReadFrom(buf)
			if err != nil {
				if time.Now().After(deadline) {
					t.Fatalf("no sealed frame from %v reached %s within 5s: %v", macA, nsB, err)
				}
				break // send again
			}
			if !bytes.Equal(buf[6:12], macA) {
				continue
			}
			// The floatip receiver sees the whole frame, unpadded and
			// untrimmed, and it authenticates.
			if n != len(sealed) || !bytes.Equal(buf[:n], sealed) {
				t.Fatalf("received %d bytes % x, want the %d sent", n, buf[:n], len(sealed))
			}
			if _, _, err := ver.Open(buf[:n], [6]byte(macA)); err != nil {
				t.Fatalf("received frame does not authenticate: %v", err)
			}
			received = true
			break
		}
	}

	// The ordinary kernel processed the ARP part.
	deadline = time.Now().Add(5 * time.Second)
	for {
		out := runCmd(t, "ip", "-n", nsB, "neigh", "show", vip, "dev", "vb")
		if strings.Contains(out, "lladdr "+macA.String()) {
			t.Logf("neighbour entry in %s after the 88-byte announcement: %s", nsB, strings.TrimSpace(out))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("neighbour entry for %s in %s still %q 5s after an 88-byte gratuitous ARP from %v: the kernel did not process it", vip, nsB, strings.TrimSpace(out), macA)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
