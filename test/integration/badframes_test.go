package integration

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/floatip/floatip/internal/lab"
)

// TestMalformedFramesAreIgnored sends the holder truncated and nonsense ARP
// frames from the client's namespace: the daemon logs them and keeps the
// VIP, and the client keeps being served.
func TestMalformedFramesAreIgnored(t *testing.T) {
	c := newLab(t, 2)
	c.startAll()
	client := c.servedClient()
	from := time.Now()
	// The test binary itself sends them, run inside the client's namespace
	// (see TestMain), so no thread of this process changes namespace.
	junk := exec.Command("ip", "netns", "exec", c.ClientNode().NS, os.Args[0])
	junk.Env = append(os.Environ(), sendJunkEnv+"=1")
	if out, err := junk.CombinedOutput(); err != nil {
		t.Fatalf("sending junk frames: %v\n%s", err, out)
	}
	if _, err := c.daemons["n1"].WaitMsg(c.ctx, 15*time.Second, "ignored malformed frames", nil); err != nil {
		t.Fatalf("n1 did not log the malformed frames: %v", err)
	}
	c.holdsFor([]string{"n1"}, time.Second, "after junk frames")
	r := lab.Measure(client.Stop(), from)
	if r.Failed > 0 {
		t.Errorf("the client saw %d failed requests while junk frames arrived: %+v", r.Failed, r)
	}
	for _, d := range c.daemons {
		for _, l := range d.Lines() {
			if strings.Contains(l.Text, "panic") {
				t.Errorf("a daemon panicked: %s", l.Text)
			}
		}
	}
}

// sendJunkEnv makes the test binary send junk frames and exit (TestMain).
const sendJunkEnv = "FLOATIP_TEST_SEND_JUNK"

// sendJunk broadcasts malformed ARP frames on eth0 of the namespace it runs
// in: cut short, a wrong hardware type, a wrong protocol length, an unknown
// operation, and a truncated floatip trailer.
func sendJunk() error {
	errc := make(chan error, 1)
	go func() {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			errc <- err
			return
		}
		conn, err := packet.Listen(ifi, packet.Raw, 0x0806, nil)
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		header := append(append(append([]byte{}, bcast...), ifi.HardwareAddr...), 0x08, 0x06)
		arpBody := []byte{0, 1, 8, 0, 6, 4, 0, 1}
		arpBody = append(arpBody, ifi.HardwareAddr...)
		arpBody = append(arpBody, 198, 18, 0, 200, 0, 0, 0, 0, 0, 0, 198, 18, 0, 100)
		frames := [][]byte{
			append(append([]byte{}, header...), arpBody[:10]...),                                                                    // cut short
			append(append([]byte{}, header...), append([]byte{0, 9}, arpBody[2:]...)...),                                            // hardware type 9
			append(append([]byte{}, header...), append(append([]byte{}, arpBody[:5]...), append([]byte{16}, arpBody[6:]...)...)...), // plen 16
			append(append([]byte{}, header...), append(append([]byte{}, arpBody[:7]...), append([]byte{7}, arpBody[8:]...)...)...),  // op 7
			append(append(append([]byte{}, header...), arpBody...), 'F', 'L', 'I', 'P', 1, 2),                                       // trailer cut off
		}
		for range 50 {
			for _, f := range frames {
				if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: bcast}); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	return <-errc
}
