//go:build linux

package ifaddr

import (
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
// buffer (60 bytes each: header, ifaddrmsg, IFA_LOCAL, IFA_ADDRESS,
// IFA_CACHEINFO), sends them with one sendmsg and reads the acknowledgements
// into a reused buffer: a holder of a thousand VIPs renews them every
// second, and the library's per-request allocations showed up as GC work.
func (m *Manager) claimChunk(s *nl.NetlinkSocket, addrs []netip.Addr, secs uint32) error {
	const msgLen = 60
	ne := nl.NativeEndian()
	buf := m.batchBuf[:0]
	first := m.batchSeq + 1
	for i, a := range addrs {
		var b [msgLen]byte
		ne.PutUint32(b[0:], msgLen)
		ne.PutUint16(b[4:], unix.RTM_NEWADDR)
		ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
		ne.PutUint32(b[8:], first+uint32(i))
		b[16], b[17] = unix.AF_INET, 32 // family, prefix length; flags and scope (global) 0
		ne.PutUint32(b[20:], uint32(m.index))
		ip := a.As4()
		for j, typ := range []uint16{unix.IFA_LOCAL, unix.IFA_ADDRESS} {
			o := 24 + 8*j
			ne.PutUint16(b[o:], 8)
			ne.PutUint16(b[o+2:], typ)
			copy(b[o+4:], ip[:])
		}
		ne.PutUint16(b[40:], 20)
		ne.PutUint16(b[42:], unix.IFA_CACHEINFO)
		ne.PutUint32(b[44:], secs) // preferred
		ne.PutUint32(b[48:], secs) // valid
		buf = append(buf, b[:]...)
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
		n, _, err := unix.Recvfrom(s.GetFd(), m.ackBuf, 0)
		if err != nil {
			return fmt.Errorf("claim on %s: reading acknowledgements: %w", m.name, hint(err))
		}
		for b := m.ackBuf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(ne.Uint32(b[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ, seq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
			if typ == unix.NLMSG_ERROR && seq >= first && seq < first+uint32(len(addrs)) && l >= unix.NLMSG_HDRLEN+4 {
				acked++
				if errno := int32(ne.Uint32(b[unix.NLMSG_HDRLEN:])); errno != 0 && firstErr == nil {
					firstErr = fmt.Errorf("claim %v/32 on %s: %w", addrs[seq-first], m.name, hint(unix.Errno(-errno)))
				}
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
	return firstErr
}
