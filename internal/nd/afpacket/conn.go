//go:build linux

// Package afpacket sends and receives the ND frames of package nd on an
// AF_PACKET socket (github.com/mdlayher/packet), so that floatip writes the
// whole frame itself: an ICMPv6 socket would replace the unspecified source
// of a DAD probe with one of the node's addresses.
//
// A socket filter passes only IPv6 frames carrying an ICMPv6 Neighbor
// Solicitation or Advertisement directly after the IPv6 header, so a busy
// IPv6 segment costs the daemon nothing but ND. The hop limit and checksum
// are not checked in the filter, so that the codec rejects, and the caller
// can log and count, what a stranger forged.
//
// With SetAuth every frame that carries floatip's option is sealed (the
// auth block of package auth in the option's Auth, see nd.SealFrame) and
// every such frame read is verified; the kernel's own messages carry no
// option and pass unauthenticated.
//
// Multicast groups are joined at the IPv6 layer (IPV6_JOIN_GROUP on a
// helper UDP socket that is never read), not only as a link-layer
// membership: the kernel then also sends MLD reports for the group, which a
// switch with MLD snooping needs before it forwards the group to this port.
package afpacket

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/nd"
)

const etherTypeIPv6 = 0x86dd

// packetConn is the part of *packet.Conn that Conn uses; tests substitute a
// fake so Read's filtering runs without privileges.
type packetConn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// groupJoiner joins and leaves IPv6 multicast groups on the interface; a
// *ipv6.PacketConn in production.
type groupJoiner interface {
	JoinGroup(ifi *net.Interface, group net.Addr) error
	LeaveGroup(ifi *net.Interface, group net.Addr) error
	Close() error
}

// Conn is an AF_PACKET socket for ND frames on one interface. Read and Write
// may be called from different goroutines; so may JoinGroup and LeaveGroup.
type Conn struct {
	pc     packetConn
	ifi    net.Interface
	mac    net.HardwareAddr
	bufLen int

	readMu sync.Mutex // guards buf
	buf    []byte

	groupMu sync.Mutex
	joiner  groupJoiner
	groups  map[netip.Addr]int // joins per group

	auth atomic.Pointer[authPair] // SetAuth
	// ownOut: the kernel keeps our own transmissions from the socket
	// (PACKET_IGNORE_OUTGOING), so a frame with our MAC that Read sees
	// came from the wire: someone impersonates us.
	ownOut bool

	closed atomic.Bool
}

type authPair struct {
	s *auth.Signer
	v *auth.Verifier
}

// ErrSeal is wrapped by Write's error when a frame could not be sealed
// (the sequence number's state file could not be written): the frame was
// not sent.
var ErrSeal = errors.New("frame not sealed")

// SetAuth makes the Conn seal every frame with floatip's option it writes
// with s and verify every such frame it reads with v; nil, nil turns that
// off. Safe to call while Read and Write run (a reload's new keys).
func (c *Conn) SetAuth(s *auth.Signer, v *auth.Verifier) error {
	if s == nil || v == nil {
		c.auth.Store(nil)
		return nil
	}
	c.auth.Store(&authPair{s, v})
	return nil
}

// Listen opens an AF_PACKET socket that receives and sends ND frames on ifi
// and joins the all-nodes group ff02::1. It needs CAP_NET_RAW, and IPv6
// enabled on the interface.
func Listen(ifi *net.Interface) (*Conn, error) {
	if ifi == nil {
		return nil, errors.New("nd: listen: nil interface")
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("nd: listen on %q: interface has no Ethernet address (got %q)", ifi.Name, ifi.HardwareAddr)
	}
	filter, err := Filter()
	if err != nil {
		return nil, fmt.Errorf("nd: listen on %q: assemble socket filter: %w", ifi.Name, err)
	}
	// The filter is given to Listen, so it is attached before the socket
	// is bound and no frame of another kind slips in first.
	pc, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: filter})
	if err != nil {
		return nil, listenError(ifi.Name, err)
	}
	ownOut := ignoreOutgoing(pc)
	u, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("nd: listen on %q: socket for multicast groups: %w", ifi.Name, err)
	}
	c := newConn(pc, ipv6.NewPacketConn(u), ifi)
	c.ownOut = ownOut
	if err := c.JoinGroup(nd.AllNodes); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ignoreOutgoing asks the kernel not to loop our own transmissions, and its
// own NAs for our VIPs, back to the socket, and reports whether it took the
// option. Read drops frames from our MAC on kernels older than 4.20, which
// do not.
func ignoreOutgoing(pc *packet.Conn) bool {
	rc, err := pc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1) == nil
	})
	return ok
}

func listenError(ifname string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("nd: listen on %q: %w (needs CAP_NET_RAW)", ifname, err)
	}
	return fmt.Errorf("nd: listen on %q: %w", ifname, err)
}

func newConn(pc packetConn, j groupJoiner, ifi *net.Interface) *Conn {
	bufLen := ifi.MTU + 14
	if bufLen < 1514 {
		bufLen = 1514
	}
	return &Conn{
		pc:     pc,
		ifi:    *ifi,
		mac:    append(net.HardwareAddr(nil), ifi.HardwareAddr...),
		bufLen: bufLen,
		joiner: j,
		groups: make(map[netip.Addr]int),
	}
}

// HardwareAddr returns the interface's MAC address, the source of the
// frames this Conn sends. The caller must not modify it.
func (c *Conn) HardwareAddr() net.HardwareAddr { return c.mac }

// JoinGroup joins the IPv6 multicast group g on the interface (normally
// nd.SolicitedNode of a VIP, so that DAD probes for it reach this node also
// behind an MLD-snooping switch). Joins are counted: the group is left when
// LeaveGroup was called as often as JoinGroup. The kernel bounds the groups
// one socket joins by net.core.optmem_max (about 2300 with 128 KiB): past
// that, JoinGroup fails with ENOMEM.
func (c *Conn) JoinGroup(g netip.Addr) error {
	if !g.Is6() || !g.IsMulticast() {
		return fmt.Errorf("nd: join %v on %q: not an IPv6 multicast group", g, c.ifi.Name)
	}
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("nd: join %v on %q: %w", g, c.ifi.Name, net.ErrClosed)
	}
	if c.groups[g] == 0 {
		if err := c.joiner.JoinGroup(&c.ifi, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
			return fmt.Errorf("nd: join %v on %q: %w", g, c.ifi.Name, err)
		}
	}
	c.groups[g]++
	return nil
}

// LeaveGroup undoes one JoinGroup of g.
func (c *Conn) LeaveGroup(g netip.Addr) error {
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	switch c.groups[g] {
	case 0:
		return fmt.Errorf("nd: leave %v on %q: not joined", g, c.ifi.Name)
	case 1:
		delete(c.groups, g)
		if err := c.joiner.LeaveGroup(&c.ifi, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
			return fmt.Errorf("nd: leave %v on %q: %w", g, c.ifi.Name, err)
		}
	default:
		c.groups[g]--
	}
	return nil
}

// Read blocks for the next ND frame from another host.
//
// Our own transmissions and our kernel's NAs never reach Read
// (PACKET_IGNORE_OUTGOING), so a frame whose Ethernet source is our MAC
// came from a host impersonating us: it is returned, never authenticated,
// for the caller to count (on a kernel without that option such frames
// are skipped). Frames that are not an NS or NA (nd.ErrNotND; none pass
// the socket filter) are skipped. With SetAuth, a frame whose
// floatip option carries an auth block is verified: a good one is returned
// with Authenticated set, a bad one (tag, key, replay, ...) dropped and
// returned as an error for which auth.ReasonOf is not ""; frames without a
// block are returned unauthenticated. A frame that does not parse or
// fails the RFC 4861 checks is returned as an error wrapping nd.ErrMalformed
// (and nd.ErrHopLimit or nd.ErrChecksum where those apply); the caller
// should log and count it and keep reading. A deadline ends a blocked Read
// with an error matching os.ErrDeadlineExceeded; Close ends it with one
// matching net.ErrClosed.
func (c *Conn) Read() (*nd.Frame, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.buf == nil {
		c.buf = make([]byte, c.bufLen)
	}
	for {
		n, from, err := c.pc.ReadFrom(c.buf)
		if err != nil {
			return nil, c.ioError("read", err)
		}
		frame := c.buf[:n]
		own := len(frame) >= 12 && bytes.Equal(frame[6:12], c.mac)
		if own && !c.ownOut {
			continue
		}
		f := new(nd.Frame)
		if err := f.UnmarshalBinary(frame); err != nil {
			if errors.Is(err, nd.ErrNotND) {
				continue
			}
			return nil, fmt.Errorf("nd: read on %q from %v: %w", c.ifi.Name, from, err)
		}
		if a := c.auth.Load(); a != nil && f.Option != nil && !own {
			sealed, err := nd.OpenFrame(frame, auth.BlockLen, func(b []byte) error {
				_, _, err := a.v.Open(b, [6]byte(frame[6:12]))
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("nd: read on %q from %v: %w", c.ifi.Name, from, err)
			}
			f.Authenticated = sealed
		}
		return f, nil
	}
}

// Write marshals f and sends it to f.Destination; with SetAuth a frame
// with floatip's option is sealed.
func (c *Conn) Write(f *nd.Frame) error {
	var b []byte
	var err error
	if a := c.auth.Load(); a != nil && f.Option != nil {
		b, err = nd.SealFrame(f, auth.BlockLen, a.s.Seal)
		if err != nil {
			return fmt.Errorf("nd: write on %q: %w: %w", c.ifi.Name, ErrSeal, err)
		}
	} else if b, err = f.MarshalBinary(); err != nil {
		return fmt.Errorf("nd: write on %q: %w", c.ifi.Name, err)
	}
	if _, err := c.pc.WriteTo(b, &packet.Addr{HardwareAddr: f.Destination}); err != nil {
		return c.ioError(fmt.Sprintf("write %T to %v", f.Message, f.Destination), err)
	}
	return nil
}

// SetReadDeadline sets the deadline for Read; the zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.pc.SetReadDeadline(t); err != nil {
		return fmt.Errorf("nd: set read deadline on %q: %w", c.ifi.Name, err)
	}
	return nil
}

// Close closes the socket, ending any blocked Read, and leaves every group
// (closing the helper socket leaves them).
func (c *Conn) Close() error {
	c.groupMu.Lock()
	c.closed.Store(true)
	c.groups = map[netip.Addr]int{}
	jerr := c.joiner.Close()
	c.groupMu.Unlock()
	if err := c.pc.Close(); err != nil {
		return fmt.Errorf("nd: close on %q: %w", c.ifi.Name, err)
	}
	if jerr != nil {
		return fmt.Errorf("nd: close on %q: group socket: %w", c.ifi.Name, jerr)
	}
	return nil
}

func (c *Conn) ioError(op string, err error) error {
	if c.closed.Load() && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("nd: %s on %q: %w (%w)", op, c.ifi.Name, net.ErrClosed, err)
	}
	return fmt.Errorf("nd: %s on %q: %w", op, c.ifi.Name, err)
}
