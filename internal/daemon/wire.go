package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/nd"
)

// NDConn sends and receives the interface's IPv6 Neighbor Discovery frames
// (nd/afpacket.Conn). Read returns an error wrapping nd.ErrMalformed for a
// frame that fails the codec's checks (the next Read goes on), one for
// which auth.ReasonOf is not "" for a frame that fails authentication, and
// one wrapping net.ErrClosed once Close was called. JoinGroup and
// LeaveGroup are counted per group.
type NDConn interface {
	Read() (*nd.Frame, error)
	Write(f *nd.Frame) error
	JoinGroup(g netip.Addr) error
	LeaveGroup(g netip.Addr) error
	Close() error
}

// wire is the FrameConn the machines see when IPv6 is in use: the ARP conn
// for IPv4 VIPs and an NDConn for IPv6 ones, with the packets of IPv6 VIPs
// mapped to ND frames and back (ndwire.go). One goroutine per socket reads
// into a shared channel; Read takes from it. Close closes both sockets and
// waits for the readers.
type wire struct {
	arp FrameConn
	nd  NDConn
	// linkLocal returns the interface's usable link-local address (the
	// source of solicitations), or the zero Addr.
	linkLocal func() netip.Addr
	router    atomic.Bool // the NA Router flag (ipv6.na_router)

	results   chan readResult
	done      chan struct{}
	closeOnce sync.Once
	readers   sync.WaitGroup

	groupMu sync.Mutex
	joined  map[netip.Addr]int // solicited-node group -> VIPs joined for it
	joins   atomic.Uint64      // JoinGroup calls that succeeded (counted)
	leaves  atomic.Uint64
}

type readResult struct {
	p   *arp.Packet
	err error
}

func newWire(a FrameConn, n NDConn, linkLocal func() netip.Addr) *wire {
	w := &wire{arp: a, nd: n, linkLocal: linkLocal, results: make(chan readResult), done: make(chan struct{}),
		joined: map[netip.Addr]int{}}
	w.readers.Go(func() { w.pump(a.Read) })
	w.readers.Go(func() {
		w.pump(func() (*arp.Packet, error) {
			for {
				f, err := n.Read()
				if err != nil {
					return nil, err
				}
				if p := fromND(f); p != nil {
					return p, nil
				}
			}
		})
	})
	return w
}

// pump hands what read returns to Read until the socket is closed.
func (w *wire) pump(read func() (*arp.Packet, error)) {
	for {
		p, err := read()
		select {
		case w.results <- readResult{p, err}:
		case <-w.done:
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Read returns the next frame from either socket, as FrameConn.Read.
func (w *wire) Read() (*arp.Packet, error) {
	select {
	case <-w.done:
		return nil, fmt.Errorf("read: %w", net.ErrClosed)
	case r := <-w.results:
		return r.p, r.err
	}
}

// Write sends p: on the ND socket when it is about an IPv6 VIP, else on
// the ARP one.
func (w *wire) Write(p *arp.Packet) error {
	if !p.SenderIP.Is6() && !p.TargetIP.Is6() {
		return w.arp.Write(p)
	}
	var ll netip.Addr
	if w.linkLocal != nil {
		ll = w.linkLocal()
	}
	f := toND(p, ll, w.router.Load())
	if f == nil {
		return fmt.Errorf("nd: no Neighbor Discovery frame for %v %v -> %v", p.Operation, p.SenderIP, p.TargetIP)
	}
	return w.nd.Write(f)
}

// Close closes both sockets and waits for the readers.
func (w *wire) Close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.done)
		err = errors.Join(w.arp.Close(), w.nd.Close())
		w.readers.Wait()
	})
	return err
}

// JoinVIPs joins the solicited-node group of every IPv6 VIP in vips, so
// that this node sees the probes and beacons for them behind a switch that
// snoops MLD (the kernel sends the MLD reports). Every VIP counts once; a
// group several VIPs share is joined once.
func (w *wire) JoinVIPs(vips []netip.Addr) error {
	w.groupMu.Lock()
	defer w.groupMu.Unlock()
	var errs []error
	for _, v := range vips {
		if !v.Is6() {
			continue
		}
		g := nd.SolicitedNode(v)
		if w.joined[g] == 0 {
			if err := w.nd.JoinGroup(g); err != nil {
				errs = append(errs, fmt.Errorf("VIP %v: %w", v, err))
				continue
			}
			w.joins.Add(1)
		}
		w.joined[g]++
	}
	return errors.Join(errs...)
}

// LeaveVIPs undoes JoinVIPs for vips (those joined).
func (w *wire) LeaveVIPs(vips []netip.Addr) error {
	w.groupMu.Lock()
	defer w.groupMu.Unlock()
	var errs []error
	for _, v := range vips {
		if !v.Is6() {
			continue
		}
		g := nd.SolicitedNode(v)
		switch w.joined[g] {
		case 0:
			continue
		case 1:
			delete(w.joined, g)
			if err := w.nd.LeaveGroup(g); err != nil {
				errs = append(errs, fmt.Errorf("VIP %v: %w", v, err))
				continue
			}
			w.leaves.Add(1)
		default:
			w.joined[g]--
		}
	}
	return errors.Join(errs...)
}

// Groups is the number of solicited-node groups joined now.
func (w *wire) Groups() int {
	w.groupMu.Lock()
	defer w.groupMu.Unlock()
	return len(w.joined)
}

// vipMember is a FrameConn that joins a multicast group per IPv6 VIP.
type vipMember interface {
	JoinVIPs(vips []netip.Addr) error
	LeaveVIPs(vips []netip.Addr) error
	// Groups is the number of multicast groups joined now.
	Groups() int
}

// routerFlag is a FrameConn whose NA Router flag a reload sets.
type routerFlag interface{ SetRouter(on bool) }

// SetRouter sets the Router flag of the Neighbor Advertisements sent.
func (w *wire) SetRouter(on bool) { w.router.Store(on) }
