package tcpdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TCP states (include/net/tcp_states.h) that still carry data: a
// connection in one of them breaks if its local address goes away.
const (
	stateEstablished = 1
	stateSynRecv     = 3
	stateFinWait1    = 4
	stateCloseWait   = 8
	stateLastAck     = 9
	stateClosing     = 11
)

// BusyStates is the request's state mask.
const BusyStates = 1<<stateEstablished | 1<<stateSynRecv | 1<<stateFinWait1 |
	1<<stateCloseWait | 1<<stateLastAck | 1<<stateClosing

// request is struct inet_diag_req_v2 with a zero socket id (dump all).
type request struct {
	family uint8
	states uint32
}

const (
	sizeofRequest = 56 // family, protocol, ext, pad, states, inet_diag_sockid (48)
	sizeofMsg     = 72 // struct inet_diag_msg
)

func (r request) Len() int { return sizeofRequest }

func (r request) Serialize() []byte {
	b := make([]byte, sizeofRequest)
	b[0] = r.family
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:8], r.states)
	return b
}

// OpenConns is Open for the calling process's network namespace.
func OpenConns(addrs []netip.Addr) (bool, error) {
	var v4, v6 bool
	for _, a := range addrs {
		if a.Unmap().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	for _, f := range []struct {
		on     bool
		family uint8
	}{{v4, unix.AF_INET}, {v6, unix.AF_INET6}} {
		if !f.on {
			continue
		}
		open, err := dump(f.family, addrs)
		if open || err != nil {
			return open, err
		}
	}
	return false, nil
}

func dump(family uint8, addrs []netip.Addr) (bool, error) {
	req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
	req.AddData(request{family: family, states: BusyStates})
	open := false
	var bad error
	err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(msg []byte) bool {
		src, err := source(msg)
		if err != nil {
			bad = err
			return false
		}
		for _, a := range addrs {
			if a.Unmap() == src {
				open = true
				return false
			}
		}
		return true
	})
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, fmt.Errorf("sock_diag TCP dump: %w", err)
	}
	return open, bad
}

// source reads the local address of one struct inet_diag_msg.
func source(msg []byte) (netip.Addr, error) {
	if len(msg) < sizeofMsg {
		return netip.Addr{}, fmt.Errorf("sock_diag: short message (%d bytes)", len(msg))
	}
	// family, state, timer, retrans, then the sockid: sport, dport, src[16].
	src := msg[8:24]
	switch msg[0] {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(src[:4])), nil
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(src)).Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("sock_diag: family %d", msg[0])
}
