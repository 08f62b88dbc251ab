//go:build linux

package ifaddr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// LinkChanged: the interface's Up or Carrier changed (Event.Link).
	LinkChanged EventKind = iota + 1
	// AddrAdded: an IPv4 address appeared on the interface (Event.Addr).
	AddrAdded
	// AddrRemoved: an IPv4 address left the interface (Event.Addr), also
	// when the kernel deleted it because its lifetime ran out.
	AddrRemoved
	// Resync: the subscription was lost and re-established; events may have
	// been missed, so re-read the state (Manager.Link, Manager.Present).
	Resync
	// LinkReplaced: an interface with the watched name appeared with
	// another index (the interface was deleted and created again; Event.Link
	// is the new one). Everything bound to the old index (this Manager, an
	// ARP socket) no longer sees it: reopen by name.
	LinkReplaced
)

func (k EventKind) String() string {
	switch k {
	case LinkChanged:
		return "LinkChanged"
	case AddrAdded:
		return "AddrAdded"
	case AddrRemoved:
		return "AddrRemoved"
	case Resync:
		return "Resync"
	case LinkReplaced:
		return "LinkReplaced"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a change on the watched interface.
type Event struct {
	Kind EventKind
	Link Link       // for LinkChanged: Name, Index, MAC, Up, Carrier (no Addrs)
	Addr netip.Addr // for AddrAdded and AddrRemoved
}

const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
	defaultRcvbuf  = 1 << 20
	updateBuffer   = 64
)

// Watch delivers link and IPv4 address events of this interface to out until
// ctx ends; then it returns nil. It closes nothing.
//
// Events are deduplicated against what this subscription has reported: an
// AddrAdded is not repeated while the address is known present (renewing a
// lifetime with Claim makes the kernel announce the address again), and
// LinkChanged is sent only when Up or Carrier differ from the last one sent.
// The first renewal of an address that was there before Watch started is
// therefore reported once as AddrAdded. Addresses that this Manager adds or
// renews in a batch (Claim of more than one address) are not reported as
// AddrAdded at all: a socket filter keeps those events out, since a holder
// of many addresses would otherwise read one event per address and renewal.
// Their removal is reported like any other.
//
// When the subscription fails (for instance the socket buffer overran), Watch
// waits briefly, subscribes again and sends Resync; the receiver must then
// re-read the state. Sends on out block until the caller receives, but a
// cancelled ctx always ends Watch.
//
// Watch returns an error only when the very first subscription fails (a
// setup problem such as missing privileges) or the Manager is closed.
func (m *Manager) Watch(ctx context.Context, out chan<- Event) error {
	s, err := m.subscribe()
	if err != nil {
		return fmt.Errorf("watch %s: %w", m.name, err)
	}
	backoff := resubscribeMin
	for {
		lost := m.pump(ctx, s, out)
		s.stop()
		if !lost {
			return nil
		}
		for {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			backoff = min(2*backoff, resubscribeMax)
			s, err = m.subscribe()
			if errors.Is(err, ErrClosed) {
				return fmt.Errorf("watch %s: %w", m.name, err)
			}
			if err == nil {
				break
			}
		}
		if !send(ctx, out, Event{Kind: Resync}) {
			s.stop()
			return nil
		}
	}
}

// subscription is one pair of netlink subscriptions.
type subscription struct {
	done      chan struct{}      // ends the link subscription
	stopAddrs context.CancelFunc // ends readAddrs
	addrs     chan addrEvent     // closed by readAddrs
	links     chan netlink.LinkUpdate
	errs      chan error // capacity 1, written without blocking
}

func (m *Manager) subscribe() (*subscription, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	s := &subscription{
		done:  make(chan struct{}),
		addrs: make(chan addrEvent, updateBuffer),
		links: make(chan netlink.LinkUpdate, updateBuffer),
		errs:  make(chan error, 1),
	}
	onErr := func(err error) {
		select {
		case s.errs <- err:
		default:
		}
	}
	rcvbuf := m.rcvbuf
	if rcvbuf == 0 {
		rcvbuf = defaultRcvbuf
	}
	lo := netlink.LinkSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: rcvbuf}
	if m.ns.IsOpen() {
		lo.Namespace = &m.ns
	}
	conn, err := m.subscribeAddrs(rcvbuf)
	if err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribe to address events: %w", hint(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopAddrs = cancel
	go readAddrs(ctx, conn, s.addrs, onErr)
	if err := netlink.LinkSubscribeWithOptions(s.links, s.done, lo); err != nil {
		s.links = nil // no goroutine will ever close it
		s.stop()
		return nil, fmt.Errorf("subscribe to link events: %w", hint(err))
	}
	if m.onSubscribed != nil {
		m.onSubscribed()
	}
	return s, nil
}

// stop ends the subscription and waits until its goroutines (readAddrs,
// netlink's for links) have closed their channels (they may be blocked
// sending to them).
func (s *subscription) stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.stopAddrs()
	for s.addrs != nil || s.links != nil {
		select {
		case _, ok := <-s.addrs:
			if !ok {
				s.addrs = nil
			}
		case _, ok := <-s.links:
			if !ok {
				s.links = nil
			}
		}
	}
}

// pump forwards the events of s until ctx ends (lost is false) or the
// subscription fails (lost is true).
func (m *Manager) pump(ctx context.Context, s *subscription, out chan<- Event) (lost bool) {
	present := make(map[netip.Addr]bool)
	var last *Link
	for {
		var ev Event
		select {
		case <-ctx.Done():
			return false
		case <-s.errs:
			return true
		case u, ok := <-s.addrs:
			if !ok {
				return true
			}
			if u.index != m.index {
				continue
			}
			a := u.addr
			if u.added {
				if present[a] {
					continue
				}
				present[a] = true
				ev = Event{Kind: AddrAdded, Addr: a}
			} else {
				delete(present, a)
				ev = Event{Kind: AddrRemoved, Addr: a}
			}
		case u, ok := <-s.links:
			if !ok {
				return true
			}
			if u.Link == nil || u.Link.Attrs() == nil {
				continue
			}
			if int(u.Index) != m.index {
				if u.Header.Type != unix.RTM_NEWLINK || u.Link.Attrs().Name != m.name {
					continue
				}
				ev = Event{Kind: LinkReplaced, Link: linkFrom(u.Link)}
				break
			}
			l := linkFrom(u.Link)
			if u.Header.Type == unix.RTM_DELLINK {
				l.Up, l.Carrier = false, false
			}
			if last != nil && last.Up == l.Up && last.Carrier == l.Carrier {
				continue
			}
			last = &l
			ev = Event{Kind: LinkChanged, Link: l}
		}
		if !send(ctx, out, ev) {
			return false
		}
	}
}

func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
