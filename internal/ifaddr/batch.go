//go:build linux

package ifaddr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// claimBatch adds or renews every address with one sendmsg per chunk and
// reads the answers in bulk: for a large group the per-address round trip
// of one request per address dominates the holder's idle CPU. Every failed
// address is reported: errs, which holds those found before, gets one
// error for each address the kernel refused (see claimErrors.err).
func (m *Manager) claimBatch(addrs []netip.Addr, secs uint32, errs claimErrors) error {
	// One batch at a time: the answers of two would interleave.
	m.batchMu.Lock()
	defer m.batchMu.Unlock()
	// Chunks keep the answers within the socket's receive buffer.
	for len(addrs) > 0 {
		n := min(len(addrs), batchSize)
		if err := m.claimChunk(m.batch, addrs[:n], secs, &errs); err != nil {
			// The socket failed: the rest would fail the same way.
			return errors.Join(errs.err(), err)
		}
		addrs = addrs[n:]
	}
	return errs.err()
}

const batchSize = 64

// claimChunk encodes one RTM_NEWADDR per address by hand into a reused
// buffer, sends them with one sendmsg and reads the answers into a reused
// buffer: a holder of a thousand VIPs renews them every second, and the
// library's per-request allocations showed up as GC work. Only the last
// request asks for an acknowledgement; the kernel answers a failing
// request with an error whether asked or not, and handles the requests of
// one send in order, so the last acknowledgement comes after every error.
// That is one answer to read per chunk instead of one per address.
//
// Addresses the kernel refused are added to errs; the error returned is
// the socket's.
func (m *Manager) claimChunk(s *nl.NetlinkSocket, addrs []netip.Addr, secs uint32, errs *claimErrors) error {
	buf := m.batchBuf[:0]
	first := m.batchSeq + 1
	for i, a := range addrs {
		buf = appendNewAddr(buf, first+uint32(i), m.index, a.As4(), secs, i == len(addrs)-1)
	}
	m.batchBuf = buf
	m.batchSeq += uint32(len(addrs))
	return m.exchange(s, buf, first, addrs, errs)
}

// exchange sends the requests in buf, numbered from first, one for each
// of addrs, the last of them asking for an acknowledgement, and reads the
// answers until that acknowledgement. Each error the kernel sends is added
// to errs, naming its address.
func (m *Manager) exchange(s *nl.NetlinkSocket, buf []byte, first uint32, addrs []netip.Addr, errs *claimErrors) error {
	if err := unix.Sendto(s.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("claim on %s: %w", m.name, hint(err))
	}
	if m.ackBuf == nil {
		m.ackBuf = make([]byte, 64<<10)
	}
	for {
		// read, not recvfrom: the sender is the kernel, and Recvfrom
		// allocates the address it returns.
		n, err := unix.Read(s.GetFd(), m.ackBuf)
		m.reads++
		if err != nil {
			return fmt.Errorf("claim on %s: reading the answers: %w", m.name, hint(err))
		}
		refused, done := scanAnswers(m.ackBuf[:n], first, len(addrs), m.refused[:0])
		for _, r := range refused {
			errs.add(fmt.Errorf("claim %v/32 on %s: %w", addrs[r.i], m.name, hint(r.errno)))
		}
		m.refused = refused
		if done {
			return nil
		}
	}
}

// claimErrors collects the addresses a batched Claim could not add or
// renew, one error each, in the order found.
type claimErrors []error

func (e *claimErrors) add(err error) { *e = append(*e, err) }

// err is nil without errors, else an error that unwraps to every one of
// them (errors.Is and errors.As see each) and reads as the first, with
// the count of the others.
func (e claimErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return &multiError{errs: e}
}

type multiError struct{ errs []error }

func (e *multiError) Error() string {
	if len(e.errs) == 1 {
		return e.errs[0].Error()
	}
	return fmt.Sprintf("%v (and %d more addresses)", e.errs[0], len(e.errs)-1)
}

func (e *multiError) Unwrap() []error { return e.errs }

// The request claimChunk sends for each address is what the library's
// AddrReplace sends for a /32 with a lifetime (TestAppendNewAddr checks
// that byte for byte), laid out as in the kernel's uapi headers, native
// endian, every part already 4-byte aligned:
//
//	[0:16]  struct nlmsghdr: len 60, type RTM_NEWADDR,
//	        flags REQUEST|ACK|CREATE|REPLACE (ACK only on the last
//	        request of a send), seq, pid 0 (the kernel's)
//	[16:24] struct ifaddrmsg: family AF_INET, prefixlen 32, flags 0,
//	        scope 0 (universe), interface index
//	[24:32] struct rtattr IFA_LOCAL, then the address
//	[32:40] struct rtattr IFA_ADDRESS, then the address
//	[40:60] struct rtattr IFA_CACHEINFO, then struct ifa_cacheinfo:
//	        preferred and valid lifetime in seconds, cstamp and tstamp 0
const (
	// Fields of struct nlmsghdr.
	nlmsgLenOff   = 0  // uint32
	nlmsgTypeOff  = 4  // uint16
	nlmsgFlagsOff = 6  // uint16
	nlmsgSeqOff   = 8  // uint32
	nlmsgPidOff   = 12 // uint32

	// Fields of struct ifaddrmsg, which follows the header.
	ifaFamilyOff    = unix.SizeofNlMsghdr     // uint8
	ifaPrefixlenOff = unix.SizeofNlMsghdr + 1 // uint8
	ifaIndexOff     = unix.SizeofNlMsghdr + 4 // uint32

	// The attributes follow struct ifaddrmsg.
	ifaAttrsOff  = unix.SizeofNlMsghdr + unix.SizeofIfAddrmsg
	ipv4AttrLen  = unix.SizeofRtAttr + 4
	cacheAttrLen = unix.SizeofRtAttr + unix.SizeofIfaCacheinfo

	newAddrLen   = ifaAttrsOff + 2*ipv4AttrLen + cacheAttrLen
	newAddrFlags = unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_REPLACE
)

// appendNewAddr appends to b the RTM_NEWADDR request numbered seq that adds,
// or renews the lifetime of, ip/32 on the interface index, valid and
// preferred for secs seconds; with ack it asks for an acknowledgement.
func appendNewAddr(b []byte, seq uint32, index int, ip [4]byte, secs uint32, ack bool) []byte {
	ne := binary.NativeEndian
	var m [newAddrLen]byte
	flags := uint16(newAddrFlags)
	if ack {
		flags |= unix.NLM_F_ACK
	}
	ne.PutUint32(m[nlmsgLenOff:], newAddrLen)
	ne.PutUint16(m[nlmsgTypeOff:], unix.RTM_NEWADDR)
	ne.PutUint16(m[nlmsgFlagsOff:], flags)
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

// refusal is a request the kernel refused: its index in the batch and the
// errno.
type refusal struct {
	i     int
	errno unix.Errno
}

// scanAnswers reads one receive's worth of netlink messages, b, for the
// answers (NLMSG_ERROR) to the n requests numbered from first, of which
// only the last asked for an acknowledgement. It appends each request the
// kernel refused to refused, and reports whether the answer to the last
// request was among them: the kernel sends no answer after it. Messages
// about other sequence numbers are skipped; a truncated message ends the
// scan.
func scanAnswers(b []byte, first uint32, n int, refused []refusal) (_ []refusal, done bool) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[nlmsgLenOff:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		typ, seq := ne.Uint16(b[nlmsgTypeOff:]), ne.Uint32(b[nlmsgSeqOff:])
		// struct nlmsgerr starts with the negative errno, 0 for success.
		if typ == unix.NLMSG_ERROR && seq-first < uint32(n) && l >= unix.NLMSG_HDRLEN+4 {
			i := int(seq - first)
			if e := int32(ne.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
				refused = append(refused, refusal{i, unix.Errno(-e)})
			}
			if i == n-1 {
				done = true
			}
		}
		b = b[min(nlmsgAlign(l), len(b)):]
	}
	return refused, done
}

// nlmsgAlign rounds l up to the netlink message alignment (NLMSG_ALIGN).
func nlmsgAlign(l int) int {
	return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
}
