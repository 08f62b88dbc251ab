//go:build linux

package tcpdiag

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A connection on loopback is open while it is established and not once
// both ends closed; other addresses never count.
func TestOpenConns(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	other := netip.MustParseAddr("127.0.0.2")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A listener alone is no open connection.
	if open, err := OpenConns([]netip.Addr{lo}); err != nil || open {
		t.Fatalf("listener only: open %v, err %v; want false", open, err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if open, err := OpenConns([]netip.Addr{lo}); err != nil || !open {
		t.Fatalf("established: open %v, err %v; want true", open, err)
	}
	if open, err := OpenConns([]netip.Addr{other}); err != nil || open {
		t.Fatalf("another address: open %v, err %v; want false", open, err)
	}
	// The server closes first (as an HTTP server does): its side goes
	// to FIN_WAIT2 then TIME_WAIT once the client closes too.
	s.Close()
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read after the peer closed: no EOF")
	}
	c.Close()
	// (The client's LAST_ACK lasts until the server's ACK.)
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, err := OpenConns([]netip.Addr{lo})
		if err != nil {
			t.Fatal(err)
		}
		if !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("both closed: still open after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
