//go:build linux

package ifaddr

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Watch reads address events from a socket of its own, not through
// vishvananda/netlink's AddrSubscribe, for one reason: the kernel announces
// every renewal of an address's lifetime as an RTM_NEWADDR, so a holder of
// 1000 VIPs would read, parse (one 64 kB buffer each in the library) and
// drop 1000 events every renew interval; that was a third of its idle CPU.
// The library gives no access to its socket, and this one carries a socket
// filter (ownRenewalFilter) that keeps those events out. The socket itself
// is mdlayher/socket's, the one mdlayher/packet uses.

// addrEvent is one IPv4 address event of the kernel.
type addrEvent struct {
	index int // interface index
	addr  netip.Addr
	added bool // RTM_NEWADDR (added, or its lifetime renewed); else RTM_DELADDR
}

// ownRenewalFilter is a socket filter for an address subscription that
// drops the RTM_NEWADDR events caused by requests from the netlink port
// batchPort (the kernel puts the requester's port in the event's
// nlmsg_pid): Claim's batches, whose addresses the Manager knows it has.
// Everything else passes: deletions, also the kernel's own when a lifetime
// runs out (port 0), and additions by anyone else. The kernel sends each
// address event in a datagram of its own, so the header is at offset 0.
func ownRenewalFilter(batchPort uint32) ([]bpf.RawInstruction, error) {
	const keep, drop = 0xffff, 0
	// Classic BPF loads in network byte order; netlink headers are in the
	// host's: compare with the host's bytes read big-endian.
	var typ [2]byte
	binary.NativeEndian.PutUint16(typ[:], unix.RTM_NEWADDR)
	var port [4]byte
	binary.NativeEndian.PutUint32(port[:], batchPort)
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: nlmsgTypeOff, Size: 2},                                                  // 0
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(typ[:])), SkipTrue: 3}, // 1 -> keep
		bpf.LoadAbsolute{Off: nlmsgPidOff, Size: 4},                                                   // 2
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(port[:]), SkipTrue: 1},        // 3 -> keep
		bpf.RetConstant{Val: drop},                                                                    // 4
		bpf.RetConstant{Val: keep},                                                                    // 5
	})
}

// subscribeAddrs opens a netlink socket subscribed to IPv4 address events
// in the Manager's namespace, with ownRenewalFilter and a receive buffer of
// rcvbuf bytes. The caller holds m.mu.
func (m *Manager) subscribeAddrs(rcvbuf int) (*socket.Conn, error) {
	var cfg socket.Config
	if m.ns.IsOpen() {
		cfg.NetNS = int(m.ns)
	}
	c, err := socket.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE, "netlink", &cfg)
	if err != nil {
		return nil, err
	}
	filter, err := ownRenewalFilter(m.batchPort)
	if err == nil {
		err = c.SetBPF(filter)
	}
	if err == nil {
		err = c.SetReadBuffer(rcvbuf)
	}
	if err == nil {
		err = c.Bind(&unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_IPV4_IFADDR - 1)})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// readAddrs sends the address events read from c to out until ctx ends or
// the socket fails (then it calls fail first), for instance because its
// receive buffer overran (ENOBUFS). It closes c, then out, when it returns.
func readAddrs(ctx context.Context, c *socket.Conn, out chan<- addrEvent, fail func(error)) {
	defer close(out)
	defer c.Close()
	buf := make([]byte, 64<<10)
	var evs []addrEvent
	for {
		n, from, err := c.Recvfrom(ctx, buf, 0)
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("reading address events: %w", err))
			}
			return
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // only the kernel speaks here
		}
		evs = parseAddrEvents(buf[:n], evs[:0])
		for _, ev := range evs {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// parseAddrEvents appends the IPv4 address events in b, one receive's
// worth of netlink messages, to evs. Other messages, IPv6 and malformed
// ones are skipped; a truncated message ends the parse.
func parseAddrEvents(b []byte, evs []addrEvent) []addrEvent {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[nlmsgLenOff:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		msg := b[:l]
		b = b[min(nlmsgAlign(l), len(b)):]
		typ := ne.Uint16(msg[nlmsgTypeOff:])
		if typ != unix.RTM_NEWADDR && typ != unix.RTM_DELADDR || l < ifaAttrsOff || msg[ifaFamilyOff] != unix.AF_INET {
			continue
		}
		// IFA_LOCAL is the address; IFA_ADDRESS the peer's on a
		// point-to-point link, and the same otherwise.
		var local, address netip.Addr
		for attrs := msg[ifaAttrsOff:]; len(attrs) >= unix.SizeofRtAttr; {
			al := int(ne.Uint16(attrs[0:]))
			if al < unix.SizeofRtAttr || al > len(attrs) {
				break
			}
			data := attrs[unix.SizeofRtAttr:al]
			if len(data) == 4 {
				switch ne.Uint16(attrs[2:]) {
				case unix.IFA_LOCAL:
					local = netip.AddrFrom4([4]byte(data))
				case unix.IFA_ADDRESS:
					address = netip.AddrFrom4([4]byte(data))
				}
			}
			attrs = attrs[min(rtaAlign(al), len(attrs)):]
		}
		if !local.IsValid() {
			local = address
		}
		if !local.IsValid() {
			continue
		}
		evs = append(evs, addrEvent{index: int(ne.Uint32(msg[ifaIndexOff:])), addr: local, added: typ == unix.RTM_NEWADDR})
	}
	return evs
}

// rtaAlign rounds l up to the route attribute alignment (RTA_ALIGN).
func rtaAlign(l int) int {
	return (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
}
