// Package ifcheck checks a configuration against the live interface it
// names: the checks that a file alone cannot answer. A VIP must not be one of
// the host's own addresses, nor the network or broadcast address of a subnet
// on the interface, and should lie inside one of its subnets. `floatip check`
// prints the findings; the daemon refuses to start (or reload) on an error.
//
// A /32 on the interface that equals a VIP is ambiguous: floatip adds its
// VIPs as /32s with a finite lifetime, while a cloud host's primary address
// is often a permanent /32. The kernel marks an address without expiry
// IFA_F_PERMANENT, so a permanent /32 (or any address with a shorter prefix)
// equal to a VIP is the host's own; a finite /32 is taken as floatip's.
// (A /32 that DHCP assigns with a finite lease cannot be told apart.)
//
// IPv6 VIPs are checked against the interface's IPv6 addresses the same way
// (floatip adds them as /128s with a finite lifetime); an IPv6 subnet has no
// broadcast address, and its all-zero host address is the subnet-router
// anycast address (RFC 4291 2.6.1), which no VIP may be.
package ifcheck

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/floatip/floatip/internal/config"
)

// Addr is one IPv4 or IPv6 address of the interface.
type Addr struct {
	Prefix    netip.Prefix
	Permanent bool // no expiry (IFA_F_PERMANENT): not one that floatip added
}

// Interface is what the checks need to know of the live interface.
type Interface struct {
	Name  string
	Addrs []Addr
	// OnLink are the destinations of the scope-link routes through the
	// interface besides its subnets (like "ip route add 198.18.4.0/22 dev
	// eth0"): VIPs there are reachable on the segment too.
	OnLink []netip.Prefix
}

// ErrNotFound is returned by Read when no interface has the name.
var ErrNotFound = errors.New("interface not found")

// Read reads the IPv4 and IPv6 addresses of the interface called name (and
// its IPv4 on-link routes).
func Read(name string) (Interface, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return Interface{}, fmt.Errorf("interface %q: %w", name, ErrNotFound)
		}
		return Interface{}, fmt.Errorf("read interface %q: %w", name, err)
	}
	var list []netlink.Addr
	for range 5 { // a dump interrupted by a concurrent change is retried
		if list, err = netlink.AddrList(link, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return Interface{}, fmt.Errorf("list addresses of %q: %w", name, err)
	}
	routes, err := netlink.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		return Interface{}, fmt.Errorf("list routes of %q: %w", name, err)
	}
	ifc := Interface{Name: name}
	for _, r := range routes {
		if r.Scope != netlink.SCOPE_LINK || r.Dst == nil {
			continue
		}
		if p, ok := prefix(r.Dst); ok {
			ifc.OnLink = append(ifc.OnLink, p)
		}
	}
	for _, a := range list {
		p, ok := prefix(a.IPNet)
		if !ok {
			continue
		}
		ifc.Addrs = append(ifc.Addrs, Addr{
			Prefix:    p,
			Permanent: a.Flags&unix.IFA_F_PERMANENT != 0 || uint64(uint32(a.ValidLft)) == math.MaxUint32,
		})
	}
	return ifc, nil
}

func prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	ip = ip.Unmap()
	ones, bits := n.Mask.Size()
	if !ok || bits != ip.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones), true
}

// Report is what Check found: errors make a VIP unsafe (the daemon refuses
// it), warnings are likely mistakes.
type Report struct {
	Errors   []string
	Warnings []string
}

// Err returns the errors as one error (one line each), or nil.
func (r Report) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	return errors.New(strings.Join(r.Errors, "\n"))
}

// Check checks every VIP of cfg against the addresses of ifc. VIPs outside
// every subnet make one warning per group.
func Check(cfg config.Config, ifc Interface) Report {
	var r Report
	var subnets, subnets6 []string // the interface's subnets, for messages
	for _, a := range ifc.Addrs {
		switch {
		case a.Prefix.Addr().Is4() && a.Prefix.Bits() < 32:
			subnets = append(subnets, a.Prefix.Masked().String())
		case a.Prefix.Addr().Is6() && a.Prefix.Bits() < 128 && !a.Prefix.Addr().IsLinkLocalUnicast():
			subnets6 = append(subnets6, a.Prefix.Masked().String())
		}
	}
	subnets = slices.Compact(slices.Sorted(slices.Values(subnets)))
	subnets6 = slices.Compact(slices.Sorted(slices.Values(subnets6)))
	for _, g := range cfg.Groups {
		var outside, outside6 []string
		for _, v := range g.VIPs {
			what := fmt.Sprintf("VIP %s (group %s)", v, g.Name)
			onLink := slices.ContainsFunc(ifc.OnLink, func(p netip.Prefix) bool { return p.Contains(v) })
			host := v.BitLen() // 32 or 128: the prefix length floatip adds a VIP with
			for _, a := range ifc.Addrs {
				p := a.Prefix
				if p.Addr().BitLen() != host {
					continue
				}
				switch {
				case p.Addr() == v && (p.Bits() < host || a.Permanent):
					hint := ""
					if p.Bits() == 32 {
						hint = " (a /32 without expiry: a cloud host's primary address, or one added by hand or by keepalived; remove it first if it is a VIP)"
					}
					if p.Bits() == 128 {
						hint = " (a /128 without expiry: added by hand or by another program; remove it first if it is a VIP)"
					}
					r.Errors = append(r.Errors, fmt.Sprintf("%s is this node's own address on %s (%s); a VIP must be an address no host owns%s", what, ifc.Name, p, hint))
				case v.Is6() && p.Bits() < 128 && v == p.Masked().Addr():
					r.Errors = append(r.Errors, fmt.Sprintf("%s is the subnet-router anycast address of %s on %s", what, p.Masked(), ifc.Name))
				case v.Is6():
				case p.Bits() <= 30 && v == p.Masked().Addr():
					r.Errors = append(r.Errors, fmt.Sprintf("%s is the network address of %s on %s", what, p.Masked(), ifc.Name))
				case p.Bits() <= 30 && v == last(p):
					r.Errors = append(r.Errors, fmt.Sprintf("%s is the broadcast address of %s on %s", what, p.Masked(), ifc.Name))
				}
				if p.Bits() < host && p.Contains(v) {
					onLink = true
				}
			}
			switch {
			case onLink:
			case v.Is6():
				outside6 = append(outside6, v.String())
			default:
				outside = append(outside, v.String())
			}
		}
		if w := outsideWarning(outside, g.Name, ifc.Name, subnets, "IPv4", "ARP"); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
		if w := outsideWarning(outside6, g.Name, ifc.Name, subnets6, "IPv6", "send Neighbor Solicitations"); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
	}
	return r
}

// outsideWarning is the warning for a group's VIPs of one family that no
// subnet of the interface contains; "" when there are none.
func outsideWarning(outside []string, group, ifname string, subnets []string, family, resolve string) string {
	if len(outside) == 0 {
		return ""
	}
	where := "it has no " + family + " subnet"
	if len(subnets) > 0 {
		where = "its subnets are " + strings.Join(subnets, ", ")
	}
	what, them := fmt.Sprintf("VIP %s (group %s) is", outside[0], group), "it"
	if n := len(outside); n > 1 {
		them = "them"
		more := ""
		if n > 3 {
			outside, more = outside[:3], fmt.Sprintf(" and %d more", n-3)
		}
		what = fmt.Sprintf("VIPs %s%s (group %s) are", strings.Join(outside, ", "), more, group)
	}
	return fmt.Sprintf("%s outside every subnet of %s (%s) and no on-link route covers %s: hosts on the segment will not %s for %s", what, ifname, where, them, resolve, them)
}

// last returns the highest address of p: the subnet's broadcast address.
func last(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
