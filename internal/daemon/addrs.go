package daemon

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/ifaddr"
)

// Addrs6 changes the interface's IPv6 VIPs (ifaddr6.Addrs: /128, no DAD,
// preferred lifetime 0, the valid lifetime renewed by claiming again).
type Addrs6 interface {
	Claim(vips []netip.Addr, lifetime time.Duration) error
	Release(vips []netip.Addr) error
	Present(vips []netip.Addr) (map[netip.Addr]bool, error)
	// Prefixes lists the interface's IPv6 addresses, link-locals too.
	Prefixes() ([]netip.Prefix, error)
	Close() error
}

// dualAddrs is the Addrs of a daemon with IPv6 VIPs: IPv4 VIPs go to the
// IPv4 manager as /32s, IPv6 VIPs to v6 as /128s, with the same lifetime
// and renewal. Link reports the addresses of both families, and Watch the
// removal of IPv6 addresses besides the IPv4 events.
type dualAddrs struct {
	Addrs // IPv4, and the link
	v6    Addrs6
	// watchFailed is told when watching the IPv6 addresses fails (the
	// IPv4 watch goes on); nil ignores it.
	watchFailed func(error)
}

// removedWatcher is an Addrs6 that reports the IPv6 addresses deleted from
// the interface (ifaddr6.Addrs.WatchRemoved).
type removedWatcher interface {
	WatchRemoved(ctx context.Context, removed func(netip.Addr)) error
}

// split returns the IPv4 and the IPv6 addresses of vips, in order.
func split(vips []netip.Addr) (v4, v6 []netip.Addr) {
	for _, v := range vips {
		if v.Is6() {
			v6 = append(v6, v)
		} else {
			v4 = append(v4, v)
		}
	}
	return v4, v6
}

// Claim claims both families' VIPs and returns the errors of both.
func (a dualAddrs) Claim(vips []netip.Addr, lifetime time.Duration) error {
	v4, v6 := split(vips)
	var e4, e6 error
	if len(v4) > 0 {
		e4 = a.Addrs.Claim(v4, lifetime)
	}
	if len(v6) > 0 {
		e6 = a.v6.Claim(v6, lifetime)
	}
	return errors.Join(e4, e6)
}

func (a dualAddrs) Release(vips []netip.Addr) error {
	v4, v6 := split(vips)
	var e4, e6 error
	if len(v4) > 0 {
		e4 = a.Addrs.Release(v4)
	}
	if len(v6) > 0 {
		e6 = a.v6.Release(v6)
	}
	return errors.Join(e4, e6)
}

func (a dualAddrs) Present(vips []netip.Addr) (map[netip.Addr]bool, error) {
	v4, v6 := split(vips)
	out := map[netip.Addr]bool{}
	if len(v4) > 0 {
		m, err := a.Addrs.Present(v4)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	if len(v6) > 0 {
		m, err := a.v6.Present(v6)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// Link is the IPv4 manager's link with the IPv6 addresses added.
func (a dualAddrs) Link() (ifaddr.Link, error) {
	l, err := a.Addrs.Link()
	if err != nil {
		return l, err
	}
	p6, err := a.v6.Prefixes()
	if err != nil {
		return l, err
	}
	l.Addrs = append(l.Addrs, p6...)
	return l, nil
}

// Watch is the IPv4 manager's Watch plus an AddrRemoved event for every
// IPv6 address deleted; it returns when both watches ended.
func (a dualAddrs) Watch(ctx context.Context, events chan<- ifaddr.Event) error {
	w, ok := a.v6.(removedWatcher)
	if !ok {
		return a.Addrs.Watch(ctx, events)
	}
	wctx, cancel := context.WithCancel(ctx)
	var v6 sync.WaitGroup
	defer func() { cancel(); v6.Wait() }()
	v6.Go(func() {
		err := w.WatchRemoved(wctx, func(v netip.Addr) {
			select {
			case events <- ifaddr.Event{Kind: ifaddr.AddrRemoved, Addr: v}:
			case <-wctx.Done():
			}
		})
		if err != nil && a.watchFailed != nil {
			a.watchFailed(err)
		}
	})
	return a.Addrs.Watch(ctx, events)
}

func (a dualAddrs) Close() error { return errors.Join(a.Addrs.Close(), a.v6.Close()) }

// hasIPv6VIPs reports whether any of groups has an IPv6 VIP.
func hasIPv6VIPs(groups []config.Group) bool {
	for _, g := range groups {
		for _, v := range g.VIPs {
			if v.Is6() {
				return true
			}
		}
	}
	return false
}

// probeOrder returns vips with the IPv4 ones first, each family in its
// configured order: the machine probes and checks its group's first VIP,
// and in a dual-stack group that is an IPv4 one (ARP, as before IPv6
// existed); the IPv6 VIPs move with it.
func probeOrder(vips []netip.Addr) []netip.Addr {
	v4, v6 := split(vips)
	return append(v4, v6...)
}

// hostBits is the prefix length floatip adds a VIP like ip with: 32 or 128.
func hostBits(ip netip.Addr) int { return ip.BitLen() }
