//go:build linux

package ifaddr

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// claimBatch adds or renews every address with one sendmsg and reads the
// acknowledgements in bulk: for a large group the per-address round trip of
// one request per address dominates the holder's idle CPU.
func (m *Manager) claimBatch(addrs []netip.Addr, secs uint32) error {
	// One batch at a time: the acknowledgements of two would interleave.
	m.batchMu.Lock()
	defer m.batchMu.Unlock()
	s := m.batch
	var first error
	// Chunks keep the acknowledgements within the socket's receive buffer.
	for len(addrs) > 0 {
		n := min(len(addrs), batchSize)
		if err := m.claimChunk(s, addrs[:n], secs); err != nil && first == nil {
			first = err
		}
		addrs = addrs[n:]
	}
	return first
}

const batchSize = 64

// claimChunk encodes one RTM_NEWADDR per address by hand into a reused
// buffer, sends them with one sendmsg and reads the acknowledgements into a
// reused buffer: a holder of a thousand VIPs renews them every second, and
// the library's per-request allocations showed up as GC work.
func (m *Manager) claimChunk(s *nl.NetlinkSocket, addrs []netip.Addr, secs uint32) error {
	buf := m.batchBuf[:0]
	first := m.batchSeq + 1
	for i, a := range addrs {
		buf = appendNewAddr(buf, first+uint32(i), m.index, a.As4(), secs)
	}
	m.batchBuf = buf
	m.batchSeq += uint32(len(addrs))
	if err := unix.Sendto(s.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("claim on %s: %w", m.name, hint(err))
	}
	if m.ackBuf == nil {
		m.ackBuf = make([]byte, 64<<10)
	}
	var firstErr error
	for acked := 0; acked < len(addrs); {
		// read, not recvfrom: the sender is the kernel, and Recvfrom
		// allocates the address it returns.
		n, err := unix.Read(s.GetFd(), m.ackBuf)
		if err != nil {
			return fmt.Errorf("claim on %s: reading acknowledgements: %w", m.name, hint(err))
		}
		got, failed, errno := scanAcks(m.ackBuf[:n], first, len(addrs))
		acked += got
		if failed >= 0 && firstErr == nil {
			firstErr = fmt.Errorf("claim %v/32 on %s: %w", addrs[failed], m.name, hint(errno))
		}
	}
	return firstErr
}

// The request claimChunk sends for each address is what the library's
// AddrReplace sends for a /32 with a lifetime (TestAppendNewAddr checks
// that byte for byte), laid out as in the kernel's uapi headers, native
// endian, every part already 4-byte aligned:
//
//	[0:16]  struct nlmsghdr: len 60, type RTM_NEWADDR,
//	        flags REQUEST|ACK|CREATE|REPLACE, seq, pid 0 (the kernel's)
//	[16:24] struct ifaddrmsg: family AF_INET, prefixlen 32, flags 0,
//	        scope 0 (universe), interface index
//	[24:32] struct rtattr IFA_LOCAL, then the address
//	[32:40] struct rtattr IFA_ADDRESS, then the address
//	[40:60] struct rtattr IFA_CACHEINFO, then struct ifa_cacheinfo:
//	        preferred and valid lifetime in seconds, cstamp and tstamp 0
const (
	// Fields of struct nlmsghdr.
	nlmsgLenOff   = 0 // uint32
	nlmsgTypeOff  = 4 // uint16
	nlmsgFlagsOff = 6 // uint16
	nlmsgSeqOff   = 8 // uint32

	// Fields of struct ifaddrmsg, which follows the header.
	ifaFamilyOff    = unix.SizeofNlMsghdr     // uint8
	ifaPrefixlenOff = unix.SizeofNlMsghdr + 1 // uint8
	ifaIndexOff     = unix.SizeofNlMsghdr + 4 // uint32

	// The attributes follow struct ifaddrmsg.
	ifaAttrsOff  = unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg
	ipv4AttrLen  = unix.SizeofRtAttr + 4
	cacheAttrLen = unix.SizeofRtAttr + unix.SizeofIfaCacheinfo

	newAddrLen   = ifaAttrsOff + 2*ipv4AttrLen + cacheAttrLen
	newAddrFlags = unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE
)

// appendNewAddr appends to b the RTM_NEWADDR request numbered seq that adds,
// or renews the lifetime of, ip/32 on the interface index, valid and
// preferred for secs seconds.
func appendNewAddr(b []byte, seq uint32, index int, ip [4]byte, secs uint32) []byte {
	ne := binary.NativeEndian
	var m [newAddrLen]byte
	ne.PutUint32(m[nlmsgLenOff:], newAddrLen)
	ne.PutUint16(m[nlmsgTypeOff:], unix.RTM_NEWADDR)
	ne.PutUint16(m[nlmsgFlagsOff:], newAddrFlags)
	ne.PutUint32(m[nlmsgSeqOff:], seq)
	m[ifaFamilyOff] = unix.AF_INET
	m[ifaPrefixlenOff] = 32
	ne.PutUint32(m[ifaIndexOff:], uint32(index))
	attrs := m[ifaAttrsOff:]
	attrs = putAttr(attrs, unix.IFA_LOCAL, ip[:])
	attrs = putAttr(attrs, unix.IFA_ADDRESS, ip[:])
	var ci [unix.SizeofIfaCacheinfo]byte // struct ifa_cacheinfo
	ne.PutUint32(ci[0:], secs)           // ifa_prefered
	ne.PutUint32(ci[4:], secs)           // ifa_valid
	putAttr(attrs, unix.IFA_CACHEINFO, ci[:])
	return append(b, m[:]...)
}

// putAttr writes a struct rtattr of type typ holding data at the start of
// b and returns the rest of b. len(data) must be a multiple of 4.
func putAttr(b []byte, typ uint16, data []byte) []byte {
	ne := binary.NativeEndian
	n := unix.SizeofRtAttr + len(data)
	ne.PutUint16(b[0:], uint16(n)) // rta_len
	ne.PutUint16(b[2:], typ)       // rta_type
	copy(b[unix.SizeofRtAttr:], data)
	return b[n:]
}

// scanAcks reads one receive's worth of netlink messages, b, for the
// acknowledgements (NLMSG_ERROR) of the n requests numbered from first.
// It returns how many it found and, for the first that carries an error,
// the index of its request and the errno; failed is -1 when none does.
// Messages about other sequence numbers are skipped; a truncated message
// ends the scan.
func scanAcks(b []byte, first uint32, n int) (acked, failed int, errno unix.Errno) {
	ne := binary.NativeEndian
	failed = -1
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[nlmsgLenOff:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		typ, seq := ne.Uint16(b[nlmsgTypeOff:]), ne.Uint32(b[nlmsgSeqOff:])
		// struct nlmsgerr starts with the negative errno, 0 for success.
		if typ == unix.NLMSG_ERROR && seq-first < uint32(n) && l >= unix.NLMSG_HDRLEN+4 {
			acked++
			if e := int32(ne.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 && failed < 0 {
				failed, errno = int(seq-first), unix.Errno(-e)
			}
		}
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return acked, failed, errno
}

// nlmsgAlign rounds l up to the netlink message alignment (NLMSG_ALIGN).
func nlmsgAlign(l int) int {
	return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
}
