// Package tcpdiag tells whether a TCP connection to some local addresses
// is open, for draining a VIP before a planned move: a connection whose
// local address goes away mid-request loses its answer (the kernel no
// longer sends from an address it does not have), so a stop, release or
// handover waits, briefly, for a moment with none open.
//
// It asks the kernel's sock_diag (NETLINK_INET_DIAG) for the sockets in
// the states that can still carry data, with a state mask and no
// extensions. vishvananda/netlink's SocketDiagTCP dumps every state
// (TIME_WAIT too, thousands on a busy server) with TCP info for each and
// takes no mask, so the few lines of request live here, on its nl package.
package tcpdiag

import "net/netip"

// Open reports whether a TCP connection with a local address in addrs is
// in a state that can still carry data (established, half-open or
// closing with data unsent).
type Open func(addrs []netip.Addr) (bool, error)
