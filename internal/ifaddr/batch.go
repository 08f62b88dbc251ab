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

func (m *Manager) claimChunk(s *nl.NetlinkSocket, addrs []netip.Addr, secs uint32) error {
	var buf []byte
	seqs := make(map[uint32]netip.Addr, len(addrs))
	for _, a := range addrs {
		req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
		msg := nl.NewIfAddrmsg(unix.AF_INET)
		msg.Index = uint32(m.index)
		msg.Prefixlen = 32
		msg.Scope = unix.RT_SCOPE_UNIVERSE
		req.AddData(msg)
		b := a.As4()
		req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, b[:]))
		req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, b[:]))
		ci := nl.IfaCacheInfo{IfaCacheinfo: unix.IfaCacheinfo{Prefered: secs, Valid: secs}}
		req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci.Serialize()))
		seqs[req.Seq] = a
		buf = append(buf, req.Serialize()...)
	}
	if err := unix.Sendto(s.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("claim on %s: %w", m.name, hint(err))
	}
	var first error
	for len(seqs) > 0 {
		msgs, _, err := s.Receive()
		if err != nil {
			return fmt.Errorf("claim on %s: reading acknowledgements: %w", m.name, hint(err))
		}
		for _, msg := range msgs {
			a, ok := seqs[msg.Header.Seq]
			if !ok || msg.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			delete(seqs, msg.Header.Seq)
			if len(msg.Data) >= 4 {
				if errno := int32(nl.NativeEndian().Uint32(msg.Data[0:4])); errno != 0 && first == nil {
					first = fmt.Errorf("claim %v/32 on %s: %w", a, m.name, hint(unix.Errno(-errno)))
				}
			}
		}
	}
	return first
}
