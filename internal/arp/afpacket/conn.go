//go:build linux

package afpacket

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
)

// packetConn is the part of *packet.Conn that Conn uses; tests substitute a
// fake so Read's filtering runs without privileges.
type packetConn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// Conn is an AF_PACKET socket for ARP frames on one interface. Read and
// Write may be called from different goroutines.
type Conn struct {
	pc     packetConn
	ifname string
	mac    net.HardwareAddr
	// bufLen is the read buffer size: one whole frame of the interface's
	// MTU, so a long non-floatip frame is not mistaken for a short one.
	bufLen int
	readMu sync.Mutex // guards buf
	buf    []byte
	// closed is set by Close, so Read and Write can report net.ErrClosed
	// however the socket library words the failure (EBADF after Close,
	// os.ErrClosed for a Read that Close interrupted).
	closed atomic.Bool
	// ownOut says the kernel keeps our own transmissions from the socket
	// (PACKET_IGNORE_OUTGOING), so a frame with our MAC that Read sees
	// came from the wire: someone impersonates us.
	ownOut bool
	// auth seals and verifies frames when set (SetAuth).
	auth atomic.Pointer[authPair]
	// pcFilter installs socket filters (nil in tests with a fake).
	pcFilter filterSetter
}

type authPair struct {
	s *auth.Signer
	v *auth.Verifier
}

// filterSetter is the part of *packet.Conn that installs a socket filter.
type filterSetter interface {
	SetBPF(filter []bpf.RawInstruction) error
}

// ErrSeal is wrapped by Write's error when a frame could not be sealed
// (the sequence number's state file could not be written): the frame was
// not sent.
var ErrSeal = errors.New("frame not sealed")

// Listen opens an AF_PACKET socket that receives and sends ARP frames on
// ifi. It needs CAP_NET_RAW.
func Listen(ifi *net.Interface) (*Conn, error) {
	if ifi == nil {
		return nil, errors.New("arp: listen: nil interface")
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("arp: listen on %q: interface has no Ethernet address (got %q)", ifi.Name, ifi.HardwareAddr)
	}
	pc, err := packet.Listen(ifi, packet.Raw, arp.EtherType, nil)
	if err != nil {
		return nil, listenError(ifi.Name, err)
	}
	own := ignoreOutgoing(pc)
	growReadBuffer(pc)
	if filter, err := routineProbeFilter(ifi.HardwareAddr); err == nil {
		// Best effort: without the filter the daemon reads and drops them.
		_ = pc.SetBPF(filter)
	}
	c := newConn(pc, ifi)
	c.ownOut = own
	c.pcFilter = pc
	return c, nil
}

// SetAuth makes the Conn seal every frame it writes with s and verify
// every frame it reads with v (package auth); nil, nil turns that off.
// With auth the routine-probe filter goes: a holder answers standbys'
// checks itself, sealed, since its kernel's replies carry no tag. Safe to
// call while Read and Write run (a reload's new keys).
func (c *Conn) SetAuth(s *auth.Signer, v *auth.Verifier) error {
	if s == nil || v == nil {
		c.auth.Store(nil)
		return nil
	}
	if c.auth.Swap(&authPair{s, v}) == nil && c.pcFilter != nil {
		// Everything passes: a zero-length filter is refused, so one
		// that keeps whole frames.
		keep, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0x40000}})
		if err != nil {
			return err
		}
		if err := c.pcFilter.SetBPF(keep); err != nil {
			return fmt.Errorf("arp: socket filter on %q: %w", c.ifname, err)
		}
	}
	return nil
}

// ignoreOutgoing asks the kernel (4.20 and later) not to loop our own
// transmissions, and the kernel's ARP replies for our VIPs, back to the
// socket: a holder would otherwise read, and drop, a frame for every probe
// it answers. It reports whether the kernel took the option; on older
// kernels Read drops every frame from our MAC, since it cannot tell our
// own transmissions from a spoofer's.
func ignoreOutgoing(pc *packet.Conn) bool {
	rc, err := pc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// readBuffer is the socket's receive buffer: room for a few thousand
// frames, so that a burst of junk (a flood of forged frames, which each
// cost an HMAC to reject) does not make the kernel drop the peers' genuine
// frames queued behind it. The default (about 200 KiB) holds a few hundred.
const readBuffer = 4 << 20

// growReadBuffer sets readBuffer, past the sysctl limit when floatip may
// (SO_RCVBUFFORCE needs CAP_NET_ADMIN, which the daemon has); best effort.
func growReadBuffer(pc *packet.Conn) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
		}
	})
}

// listenError keeps the errno (for errors.Is) but drops the *net.OpError's
// repetition of the interface name, and says which capability is missing,
// since that is by far the most common reason Listen fails.
func listenError(ifname string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("arp: listen on %q: %w (needs CAP_NET_RAW)", ifname, err)
	}
	return fmt.Errorf("arp: listen on %q: %w", ifname, err)
}

func newConn(pc packetConn, ifi *net.Interface) *Conn {
	bufLen := ifi.MTU + arp.EthernetHeaderLen
	if bufLen < 1514 {
		bufLen = 1514
	}
	return &Conn{
		pc:     pc,
		ifname: ifi.Name,
		mac:    slices.Clone(ifi.HardwareAddr),
		bufLen: bufLen,
	}
}

// HardwareAddr returns the interface's MAC address, the source of the
// frames this Conn sends. The caller must not modify it.
func (c *Conn) HardwareAddr() net.HardwareAddr { return c.mac }

// Read blocks for the next ARP frame from another host.
//
// Our own transmissions and our kernel's replies never reach Read: the
// kernel keeps them from the socket (PACKET_IGNORE_OUTGOING), so a frame
// whose Ethernet source is our own MAC came from the wire, from a host
// impersonating us, and is returned (unverified, never authenticated) for
// the caller to count as spoofing. On a kernel without that option such
// frames are skipped. A frame that does not parse is returned as an error
// wrapping arp.ErrMalformed; the caller should log it and keep reading.
//
// With SetAuth, every other frame is verified before it is decoded: a
// frame without an auth block (an ordinary host, the kernel's replies, a
// peer without auth) is returned with Authenticated false; a frame whose
// block fails (bad tag, unknown key, replay, ...) is dropped and returned
// as an error for which auth.ReasonOf is not "", and a verified one is
// returned with Authenticated true. A deadline set with SetReadDeadline ends a blocked
// Read with an error matching os.ErrDeadlineExceeded; Close ends it (and
// fails any later Read or Write) with an error matching net.ErrClosed.
func (c *Conn) Read() (*arp.Packet, error) {
	// One buffer, reused: the daemon reads from one goroutine, and the
	// Packet copies what it keeps. A large group's standby reads hundreds
	// of frames a second, so a fresh buffer each time would feed the GC.
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.buf == nil {
		c.buf = make([]byte, c.bufLen)
	}
	buf := c.buf
	for {
		n, from, err := c.pc.ReadFrom(buf)
		if err != nil {
			return nil, c.ioError("read", err)
		}
		frame := buf[:n]
		own := len(frame) >= 12 && bytes.Equal(frame[6:12], c.mac)
		if own && !c.ownOut {
			continue
		}
		authed := false
		if a := c.auth.Load(); a != nil && !own && len(frame) >= 12 {
			payload, _, err := a.v.Open(frame, [6]byte(frame[6:12]))
			switch {
			case err == nil:
				frame, authed = payload, true
			case auth.ReasonOf(err) == auth.ReasonMissing:
				// Not sealed: decoded and passed up as such.
			default:
				return nil, fmt.Errorf("arp: read on %q from %v: %w", c.ifname, from, err)
			}
		}
		p := new(arp.Packet)
		if err := p.UnmarshalBinary(frame); err != nil {
			return nil, fmt.Errorf("arp: read on %q from %v: %w", c.ifname, from, err)
		}
		p.Authenticated = authed
		return p, nil
	}
}

// Write marshals p and sends it to p.Destination.
func (c *Conn) Write(p *arp.Packet) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("arp: write on %q: %w", c.ifname, err)
	}
	if a := c.auth.Load(); a != nil {
		// The whole marshalled frame, padding included, is covered: the
		// block goes after it (package auth).
		if b, err = a.s.Seal(b); err != nil {
			return fmt.Errorf("arp: write on %q: %w: %w", c.ifname, ErrSeal, err)
		}
	}
	if _, err := c.pc.WriteTo(b, &packet.Addr{HardwareAddr: p.Destination}); err != nil {
		return c.ioError(fmt.Sprintf("write %v to %v", p.Operation, p.Destination), err)
	}
	return nil
}

// SetReadDeadline sets the deadline for Read; the zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.pc.SetReadDeadline(t); err != nil {
		return fmt.Errorf("arp: set read deadline on %q: %w", c.ifname, err)
	}
	return nil
}

// Close closes the socket, ending any blocked Read.
func (c *Conn) Close() error {
	c.closed.Store(true)
	if err := c.pc.Close(); err != nil {
		return fmt.Errorf("arp: close on %q: %w", c.ifname, err)
	}
	return nil
}

// ioError adds context to a socket error and, once Close was called, makes
// it match net.ErrClosed, so callers have one way to tell shutdown from
// failure.
func (c *Conn) ioError(op string, err error) error {
	if c.closed.Load() && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("arp: %s on %q: %w (%w)", op, c.ifname, net.ErrClosed, err)
	}
	return fmt.Errorf("arp: %s on %q: %w", op, c.ifname, err)
}
