//go:build linux

// Package ifaddr is floatip's thin adapter to the kernel for one network
// interface: it reads the link state, adds ("claims") and deletes
// ("releases") IPv4 /32 addresses with a finite lifetime, and watches link
// and address changes over rtnetlink.
//
// A claimed address carries a valid and preferred lifetime that the holder
// keeps renewing with Claim; if the daemon dies, the kernel deletes the
// address by itself when the lifetime runs out, and Watch reports that as
// AddrRemoved.
//
// Claim of more than one address does not go through vishvananda/netlink,
// which sends one request and waits for its answer per address: batch.go
// encodes the RTM_NEWADDR requests by hand (the same bytes as the library's
// AddrReplace, which a test checks) and sends up to 64 with one sendto,
// only the last of them asking for an acknowledgement (the kernel answers
// a refused request anyway). No maintained library batches netlink
// requests this way. Renewing 1000 addresses on a veth (BenchmarkRenew1000,
// as root, -benchtime 50x -count 3, on a shared and loaded 2-core machine)
// took 2.3-3.9 ms of CPU batched against 19.7-20.7 ms with one request per
// address, and 16 allocations (384 B) against 23,000 (1 MB); syscalls are
// 16 sendto and 16 read against 1000 sendto and 1000 recvfrom. (With an
// acknowledgement for every request, the batch read 1000 answers and took
// 4.1-5.2 ms.)
//
// The kernel announces each renewal as an address event; Watch reads them
// from a socket of its own whose filter drops those of the batches
// (addrsub.go). A holder of 1000 VIPs in 10 groups used about a third of
// its idle CPU reading and dropping them.
//
// Only IPv4 is handled; IPv6 addresses are ignored everywhere. The package
// is Linux only.
package ifaddr

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Link is a snapshot of an interface's state.
type Link struct {
	Name    string
	Index   int
	MAC     net.HardwareAddr
	Up      bool           // administratively up (IFF_UP)
	Carrier bool           // lower layer up: IFF_RUNNING (oper state up or unknown)
	Addrs   []netip.Prefix // IPv4 addresses on the interface
}

// ErrClosed is returned by the methods of a Manager after Close.
var ErrClosed = errors.New("ifaddr: manager closed")

const (
	// socketTimeout bounds every netlink request, so a stuck kernel call
	// cannot hang the daemon forever.
	socketTimeout = 10 * time.Second
	// dumpRetries is how often a dump that returned ErrDumpInterrupted is
	// tried again.
	dumpRetries = 5
	// maxLifetimeSecs is the largest finite lifetime the kernel accepts;
	// 0xFFFFFFFF means "forever".
	maxLifetimeSecs = math.MaxUint32 - 1
)

// Manager changes and watches addresses on one interface. Its methods are
// safe for concurrent use.
type Manager struct {
	name  string
	index int

	mu     sync.RWMutex // write-locked by Close only
	closed bool
	h      *netlink.Handle
	// ns is the namespace the subscriptions of Watch are opened in; when it
	// is not open, they are opened in the namespace of whatever thread runs
	// Watch (the process's own namespace), which needs no setns.
	ns netns.NsHandle
	// batch carries Claim's batched renewals (batch.go); batchMu makes one
	// batch at a time use it.
	batchMu sync.Mutex
	batch   *nl.NetlinkSocket
	// batchPort is batch's netlink port: Watch keeps out the address
	// events caused by its requests (addrsub.go).
	batchPort uint32
	batchBuf  []byte    // reused request buffer
	ackBuf    []byte    // reused answer buffer
	refused   []refusal // reused list of refused requests
	batchSeq  uint32    // sequence numbers of batched requests
	reads     int       // receives of answers so far (tests count them)

	// Test hooks.
	rcvbuf       int    // receive buffer of the subscription sockets (0: 1 MiB)
	onSubscribed func() // called by Watch after each (re)subscription
}

// Open opens the interface name in the network namespace of the calling
// thread.
//
// The error for a missing interface reads `interface "eth9" not found` and
// wraps a netlink.LinkNotFoundError.
func Open(name string) (*Manager, error) {
	// Pin the goroutine so that "the calling thread's namespace" means the
	// same thing for every call below.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	h, err := netlink.NewHandleAt(netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", hint(err))
	}
	// If the caller runs in another namespace than the process (a test, or
	// code that switched a locked thread), Watch must subscribe there too.
	// Otherwise avoid setns: it needs CAP_SYS_ADMIN, more than the daemon
	// should have.
	ns := netns.None()
	if cur, err := netns.Get(); err == nil {
		if proc, err := netns.GetFromPid(os.Getpid()); err == nil {
			if !cur.Equal(proc) {
				ns, cur = cur, netns.None()
			}
			proc.Close()
		}
		cur.Close()
	}
	m, err := newManager(name, h, ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	return m, nil
}

// OpenInNamespace opens the interface name in the network namespace ns.
// Manager keeps its own duplicate of ns: the caller may close ns afterwards.
// Working in another namespace needs CAP_SYS_ADMIN (setns).
func OpenInNamespace(name string, ns netns.NsHandle) (*Manager, error) {
	if !ns.IsOpen() {
		return nil, errors.New("ifaddr: namespace handle is not open")
	}
	fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate namespace handle: %w", err)
	}
	own := netns.NsHandle(fd)
	h, err := netlink.NewHandleAt(own, unix.NETLINK_ROUTE)
	if err != nil {
		own.Close()
		return nil, fmt.Errorf("open netlink socket in namespace %s: %w", ns, hint(err))
	}
	m, err := newManager(name, h, own)
	if err != nil {
		own.Close()
		return nil, err
	}
	return m, nil
}

// newManager looks the interface up with h; on error it closes h.
func newManager(name string, h *netlink.Handle, ns netns.NsHandle) (*Manager, error) {
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		h.Close()
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, &notFoundError{name: name, err: err}
		}
		return nil, fmt.Errorf("look up interface %q: %w", name, hint(err))
	}
	// The batch socket is made here, in the right namespace, once: making
	// it per renewal would need setns (CAP_SYS_ADMIN) for a namespaced
	// Manager.
	batch, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open netlink socket: %w", hint(err))
	}
	// Acknowledgements without a copy of each request: a batch's fit in
	// the receive buffer. (Best effort; older kernels echo the request.)
	_ = unix.SetsockoptInt(batch.GetFd(), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := errors.Join(batch.SetReceiveTimeout(&tv), batch.SetSendTimeout(&tv)); err != nil {
		batch.Close()
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	port, err := batch.GetPid()
	if err != nil {
		batch.Close()
		h.Close()
		return nil, fmt.Errorf("read the netlink socket's port: %w", err)
	}
	return &Manager{name: name, index: l.Attrs().Index, h: h, ns: ns, batch: batch, batchPort: port}, nil
}

// notFoundError reads `interface "eth9" not found` and wraps the
// netlink.LinkNotFoundError.
type notFoundError struct {
	name string
	err  error
}

func (e *notFoundError) Error() string { return fmt.Sprintf("interface %q not found", e.name) }
func (e *notFoundError) Unwrap() error { return e.err }

// hint adds "(needs CAP_NET_ADMIN)" to permission errors.
func hint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (needs CAP_NET_ADMIN)", err)
	}
	return err
}

// Close releases the netlink socket. A running Watch keeps its subscription
// until its context ends, but cannot re-subscribe any more.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.h.Close()
	m.batchMu.Lock()
	m.batch.Close()
	m.batchMu.Unlock()
	if m.ns.IsOpen() {
		return m.ns.Close()
	}
	return nil
}

// Name is the interface name given to Open.
func (m *Manager) Name() string { return m.name }

// Index is the interface index found by Open.
func (m *Manager) Index() int { return m.index }

// Link reads the current state of the interface and its IPv4 addresses.
func (m *Manager) Link() (Link, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Link{}, ErrClosed
	}
	nl, err := m.h.LinkByIndex(m.index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return Link{}, &notFoundError{name: m.name, err: err}
		}
		return Link{}, fmt.Errorf("read interface %s: %w", m.name, err)
	}
	l := linkFrom(nl)
	addrs, err := m.addrs()
	if err != nil {
		return Link{}, err
	}
	for _, a := range addrs {
		if p, ok := prefixFrom(a.IPNet); ok {
			l.Addrs = append(l.Addrs, p)
		}
	}
	return l, nil
}

func linkFrom(nl netlink.Link) Link {
	a := nl.Attrs()
	up := a.RawFlags&unix.IFF_UP != 0
	return Link{
		Name:  a.Name,
		Index: a.Index,
		MAC:   append(net.HardwareAddr(nil), a.HardwareAddr...),
		Up:    up,
		Carrier: a.RawFlags&unix.IFF_RUNNING != 0 ||
			(up && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)),
	}
}

// prefixFrom converts an IPv4 net.IPNet; ok is false for IPv6 and garbage.
func prefixFrom(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip4 := n.IP.To4()
	if ip4 == nil {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		// A 16-byte mask for an IPv4 address.
		if bits == 128 && ones >= 96 {
			ones -= 96
		} else {
			return netip.Prefix{}, false
		}
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(ip4)), ones), true
}

// addrs lists the IPv4 addresses of the interface, retrying an interrupted
// dump. The caller holds m.mu.
func (m *Manager) addrs() ([]netlink.Addr, error) {
	var err error
	for range dumpRetries {
		var all []netlink.Addr
		all, err = m.h.AddrList(nil, netlink.FAMILY_V4)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", m.name, err)
		}
		var res []netlink.Addr
		for _, a := range all {
			if a.LinkIndex == m.index {
				res = append(res, a)
			}
		}
		return res, nil
	}
	return nil, fmt.Errorf("list addresses of %s: %w (%d tries)", m.name, err, dumpRetries)
}

// lifetimeSecs rounds d up to whole seconds, as the kernel wants them.
func lifetimeSecs(d time.Duration) (int, error) {
	if d <= 0 {
		return 0, fmt.Errorf("lifetime %v is not positive", d)
	}
	s := (d + time.Second - 1) / time.Second
	if s > maxLifetimeSecs {
		return 0, fmt.Errorf("lifetime %v is too long (at most %d s)", d, uint32(maxLifetimeSecs))
	}
	return int(s), nil
}

// ipv4 returns a as a plain IPv4 address, or an error if it is none.
func ipv4(a netip.Addr) (netip.Addr, error) {
	a = a.Unmap()
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%v is not an IPv4 address", a)
	}
	return a, nil
}

func (m *Manager) addr32(a netip.Addr) (*netlink.Addr, error) {
	a, err := ipv4(a)
	if err != nil {
		return nil, err
	}
	b := a.As4()
	return &netlink.Addr{
		IPNet:     &net.IPNet{IP: net.IP(b[:]), Mask: net.CIDRMask(32, 32)},
		LinkIndex: m.index,
		Scope:     unix.RT_SCOPE_UNIVERSE,
	}, nil
}

// Claim adds each address as a /32 of global scope with valid and preferred
// lifetime set to lifetime rounded up to whole seconds, or renews the
// lifetime of an address that is already there. It tries every address. The
// error names the first address that failed; for more than one address it
// unwraps (errors.Is, errors.As) to one error per address that failed, each
// naming its address.
func (m *Manager) Claim(addrs []netip.Addr, lifetime time.Duration) error {
	secs, err := lifetimeSecs(lifetime)
	if err != nil {
		return fmt.Errorf("claim on %s: %w", m.name, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	if len(addrs) > 1 {
		if !slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !a.Is4() }) {
			// No copy in the common case, a renewal.
			return m.claimBatch(addrs, uint32(secs), nil)
		}
		valid := make([]netip.Addr, 0, len(addrs))
		var bad claimErrors
		for _, a := range addrs {
			v, err := ipv4(a)
			if err != nil {
				bad.add(fmt.Errorf("claim %v/32 on %s: %w", a, m.name, err))
				continue
			}
			valid = append(valid, v)
		}
		return m.claimBatch(valid, uint32(secs), bad)
	}
	var first error
	for _, a := range addrs {
		na, err := m.addr32(a)
		if err == nil {
			na.ValidLft, na.PreferedLft = secs, secs
			// link nil: addrHandle takes the index from na.LinkIndex.
			err = m.h.AddrReplace(nil, na)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("claim %v/32 on %s: %w", a, m.name, hint(err))
		}
	}
	return first
}

// Release deletes each /32 address. An address that is already gone (also
// with the whole interface) is not an error. An address configured with
// another prefix length is left alone. It tries every address and returns
// the first error, which names the address.
func (m *Manager) Release(addrs []netip.Addr) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	var first error
	for _, a := range addrs {
		na, err := m.addr32(a)
		if err == nil {
			err = m.h.AddrDel(nil, na)
			if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL) ||
				errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
				err = nil
			}
		}
		if err != nil && first == nil {
			first = fmt.Errorf("release %v/32 on %s: %w", a, m.name, hint(err))
		}
	}
	return first
}

// Present reports which of addrs are configured on the interface now, with
// any prefix length. Every address in addrs is a key of the result.
func (m *Manager) Present(addrs []netip.Addr) (map[netip.Addr]bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	list, err := m.addrs()
	if err != nil {
		return nil, err
	}
	have := make(map[netip.Addr]bool, len(list))
	for _, a := range list {
		if p, ok := prefixFrom(a.IPNet); ok {
			have[p.Addr()] = true
		}
	}
	res := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		res[a] = have[a.Unmap()]
	}
	return res, nil
}
