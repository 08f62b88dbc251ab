// Package nd encodes and decodes whole Ethernet frames carrying IPv6
// Neighbor Discovery (RFC 4861) Neighbor Solicitations and Advertisements,
// with floatip's own data in an experimental ND option, so that floatip can
// do for an IPv6 VIP what package arp does for an IPv4 one: probe whether an
// address is in use (RFC 4862 5.4 duplicate address detection), check a
// holder, and announce a new holder with unsolicited advertisements.
//
// The ND message bodies and their standard options are github.com/mdlayher/ndp's
// (which also computes the ICMPv6 checksum on send, through
// golang.org/x/net/icmp); the protocol numbers and ICMPv6 types are
// golang.org/x/net/ipv6's. Written here by hand is only what those lack,
// because floatip sends over AF_PACKET rather than an ICMPv6 socket (a raw
// ICMPv6 socket replaces the unspecified source address a DAD probe needs
// with one of the node's own, and fills in the hop limit and checksum itself):
//   - the Ethernet and IPv6 headers (x/net/ipv6 parses a header but does
//     not marshal one, and its parser allocates two slices per frame; the
//     40 fixed bytes are decoded here without allocation),
//   - the verification of the ICMPv6 checksum over the RFC 8200 8.1
//     pseudo-header on receive (ndp.ParseMessage does not verify it), and
//     the RFC 4861 7.1 validity checks (hop limit 255, code 0, ...),
//   - floatip's option (type 253, RFC 4727 experimental), see Option. An
//     option of type 253 without floatip's magic and version (another
//     experiment, a newer floatip) stays in the message's options, as
//     unknown options do; one with them that does not parse makes the
//     frame malformed.
//
// Only frames whose IPv6 next header is ICMPv6 directly are ND frames here:
// RFC 4861 messages are never sent with extension headers in practice, and
// the socket filter in package afpacket passes no others.
package nd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// Errors of UnmarshalBinary. Every error for a frame that is ND but broken
// wraps ErrMalformed (so callers that read from the wire can tell junk from a
// broken socket); the hop limit and checksum failures also wrap their own
// sentinel, so they can be counted apart.
var (
	// ErrMalformed is wrapped by every error for a broken ND frame.
	ErrMalformed = errors.New("malformed ND frame")
	// ErrHopLimit: the IPv6 hop limit is not 255, so the message was
	// forwarded by a router or forged off-link (RFC 4861 7.1.1, 7.1.2).
	// Also wraps ErrMalformed.
	ErrHopLimit = errors.New("ND hop limit is not 255")
	// ErrChecksum: the ICMPv6 checksum does not match. Also wraps
	// ErrMalformed.
	ErrChecksum = errors.New("bad ICMPv6 checksum")
	// ErrNotND: a well-formed frame that is not an IPv6 Neighbor
	// Solicitation or Advertisement (another ethertype, another ICMPv6 type,
	// an extension header). Not ErrMalformed: it is simply not ours.
	ErrNotND = errors.New("not an ND solicitation or advertisement")
)

const (
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
	// HopLimit is the hop limit of every ND message (RFC 4861 4.3, 4.4).
	HopLimit = 255
	// icmpNSLen and icmpNALen are the ICMPv6 lengths of an NS and an NA
	// without options (RFC 4861 7.1.1, 7.1.2).
	icmpNSLen = 24
	icmpNALen = 24
)

// protoICMPv6 is the IPv6 next header value of ICMPv6 (58).
var protoICMPv6 = ipv6.ICMPTypeNeighborSolicitation.Protocol()

// AllNodes is the link-local all-nodes multicast group ff02::1, the
// destination of unsolicited advertisements.
var AllNodes = netip.MustParseAddr("ff02::1")

// Frame is one Ethernet II frame carrying an IPv6 Neighbor Solicitation or
// Advertisement and, when a floatip node sent it, an Option.
type Frame struct {
	// Ethernet header.
	Destination net.HardwareAddr
	Source      net.HardwareAddr

	// IPv6 header. MarshalBinary always sends hop limit 255; UnmarshalBinary
	// accepts only 255, so neither has a field for it.
	SourceIP      netip.Addr
	DestinationIP netip.Addr

	// Message is a *ndp.NeighborSolicitation or *ndp.NeighborAdvertisement.
	// On receive, floatip's option is taken out of its Options into
	// Option; any other option stays.
	Message ndp.Message

	// Option is nil when the frame carries none (any non-floatip host,
	// or the kernel's own messages).
	Option *Option

	// Authenticated is set by a reader that verified the auth block in
	// Option.Auth (package auth, see Seal); the codec neither sets nor
	// reads it.
	Authenticated bool
}

// MarshalBinary encodes f as an Ethernet frame: Ethernet header, IPv6
// header with hop limit 255, and the ICMPv6 message with f.Option appended
// to its options and the checksum over the pseudo-header filled in.
func (f *Frame) MarshalBinary() ([]byte, error) {
	if len(f.Destination) != 6 || len(f.Source) != 6 {
		return nil, fmt.Errorf("marshal ND frame: Ethernet addresses %q -> %q are not 6 bytes", f.Source, f.Destination)
	}
	if !f.SourceIP.Is6() || f.SourceIP.Is4In6() || !f.DestinationIP.Is6() || f.DestinationIP.Is4In6() {
		return nil, fmt.Errorf("marshal ND frame: addresses %v -> %v are not both IPv6", f.SourceIP, f.DestinationIP)
	}
	// Zones are not on the wire, and a zone would change nothing here.
	src, dst := f.SourceIP.WithZone(""), f.DestinationIP.WithZone("")
	m := f.Message
	if f.Option != nil {
		raw, err := f.Option.rawOption()
		if err != nil {
			return nil, fmt.Errorf("marshal ND frame: %w", err)
		}
		switch msg := m.(type) {
		case *ndp.NeighborSolicitation:
			c := *msg
			c.Options = append(append([]ndp.Option(nil), msg.Options...), raw)
			m = &c
		case *ndp.NeighborAdvertisement:
			c := *msg
			c.Options = append(append([]ndp.Option(nil), msg.Options...), raw)
			m = &c
		}
	}
	switch m.(type) {
	case *ndp.NeighborSolicitation, *ndp.NeighborAdvertisement:
	default:
		return nil, fmt.Errorf("marshal ND frame: message %T is not a neighbor solicitation or advertisement", f.Message)
	}
	icmp, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, fmt.Errorf("marshal ND frame: %w", err)
	}
	if len(icmp) > 0xffff {
		return nil, fmt.Errorf("marshal ND frame: ICMPv6 message of %d bytes is too long", len(icmp))
	}

	b := make([]byte, ethHeaderLen+ipv6.HeaderLen+len(icmp))
	copy(b[0:6], f.Destination)
	copy(b[6:12], f.Source)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	h := b[ethHeaderLen:]
	h[0] = ipv6.Version << 4 // traffic class 0, flow label 0
	binary.BigEndian.PutUint16(h[4:6], uint16(len(icmp)))
	h[6] = byte(protoICMPv6)
	h[7] = HopLimit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	copy(h[ipv6.HeaderLen:], icmp)
	return b, nil
}

// UnmarshalBinary decodes an Ethernet frame into f and checks it as RFC
// 4861 7.1.1 and 7.1.2 ask: hop limit 255 (ErrHopLimit), a valid ICMPv6
// checksum (ErrChecksum), code 0, at least 24 bytes, options of nonzero
// length, a target that is not multicast, no source link-layer option in an
// NS from the unspecified address, whose destination must be a
// solicited-node group, and no Solicited flag in an NA to a multicast group.
// Bytes after the IPv6 payload (Ethernet padding) are ignored. A frame that
// is not an NS or NA gives ErrNotND. f does not alias b.
func (f *Frame) UnmarshalBinary(b []byte) error {
	if len(b) < ethHeaderLen {
		return fmt.Errorf("%w: %d bytes, shorter than an Ethernet header", ErrMalformed, len(b))
	}
	if et := binary.BigEndian.Uint16(b[12:14]); et != etherTypeIPv6 {
		return fmt.Errorf("%w: ethertype %#04x is not IPv6", ErrNotND, et)
	}
	h := b[ethHeaderLen:]
	if len(h) < ipv6.HeaderLen {
		return fmt.Errorf("%w: %d bytes after the Ethernet header, need an IPv6 header of %d", ErrMalformed, len(h), ipv6.HeaderLen)
	}
	if v := h[0] >> 4; v != ipv6.Version {
		return fmt.Errorf("%w: IP version %d in an IPv6 frame", ErrMalformed, v)
	}
	if nh := int(h[6]); nh != protoICMPv6 {
		return fmt.Errorf("%w: IPv6 next header %d is not ICMPv6", ErrNotND, nh)
	}
	plen := int(binary.BigEndian.Uint16(h[4:6]))
	if plen > len(h)-ipv6.HeaderLen {
		return fmt.Errorf("%w: IPv6 payload length %d, but only %d bytes follow", ErrMalformed, plen, len(h)-ipv6.HeaderLen)
	}
	src := netip.AddrFrom16([16]byte(h[8:24]))
	dst := netip.AddrFrom16([16]byte(h[24:40]))
	icmp := h[ipv6.HeaderLen : ipv6.HeaderLen+plen]
	if len(icmp) < 4 {
		return fmt.Errorf("%w: ICMPv6 message of %d bytes", ErrMalformed, len(icmp))
	}
	typ := ipv6.ICMPType(icmp[0])
	if typ != ipv6.ICMPTypeNeighborSolicitation && typ != ipv6.ICMPTypeNeighborAdvertisement {
		return fmt.Errorf("%w: ICMPv6 type %d", ErrNotND, icmp[0])
	}
	if hl := h[7]; hl != HopLimit {
		return fmt.Errorf("%w: %w: %v from %v has hop limit %d", ErrMalformed, ErrHopLimit, typ, src, hl)
	}
	if icmp[1] != 0 {
		return fmt.Errorf("%w: %v from %v has ICMPv6 code %d, want 0", ErrMalformed, typ, src, icmp[1])
	}
	if len(icmp) < icmpNSLen { // NS and NA both need 24
		return fmt.Errorf("%w: %v from %v is %d bytes, need at least %d", ErrMalformed, typ, src, len(icmp), icmpNSLen)
	}
	if got, want := binary.BigEndian.Uint16(icmp[2:4]), Checksum(src, dst, icmp); got != want {
		return fmt.Errorf("%w: %w: %v from %v has checksum %#04x, want %#04x", ErrMalformed, ErrChecksum, typ, src, got, want)
	}
	msg, err := ndp.ParseMessage(icmp)
	if err != nil {
		return fmt.Errorf("%w: %v from %v: %v", ErrMalformed, typ, src, err)
	}

	var opts *[]ndp.Option
	var target netip.Addr
	switch m := msg.(type) {
	case *ndp.NeighborSolicitation:
		opts, target = &m.Options, m.TargetAddress
		if src.IsUnspecified() {
			if !isSolicitedNode(dst) {
				return fmt.Errorf("%w: NS from :: to %v, not a solicited-node group", ErrMalformed, dst)
			}
			if hasLLA(m.Options, ndp.Source) {
				return fmt.Errorf("%w: NS from :: with a source link-layer address option", ErrMalformed)
			}
		}
	case *ndp.NeighborAdvertisement:
		opts, target = &m.Options, m.TargetAddress
		if dst.IsMulticast() && m.Solicited {
			return fmt.Errorf("%w: NA to multicast %v with the Solicited flag", ErrMalformed, dst)
		}
	default:
		return fmt.Errorf("%w: ICMPv6 type %d", ErrNotND, icmp[0])
	}
	if target.IsMulticast() {
		return fmt.Errorf("%w: %v from %v has multicast target %v", ErrMalformed, typ, src, target)
	}
	var own *Option
	kept := (*opts)[:0]
	for _, o := range *opts {
		if r, ok := o.(*ndp.RawOption); ok && r.Type == OptionType && isOurs(r.Value) {
			if own != nil {
				return fmt.Errorf("%w: %v from %v has two floatip options", ErrMalformed, typ, src)
			}
			own = new(Option)
			if err := own.fromRaw(r); err != nil {
				return fmt.Errorf("%w: %v from %v: %v", ErrMalformed, typ, src, err)
			}
			continue
		}
		kept = append(kept, o)
	}
	if len(kept) == 0 {
		kept = nil
	}
	*opts = kept

	*f = Frame{
		Destination:   cloneMAC(b[0:6]),
		Source:        cloneMAC(b[6:12]),
		SourceIP:      src,
		DestinationIP: dst,
		Message:       msg,
		Option:        own,
	}
	return nil
}

// Checksum returns the ICMPv6 checksum of msg (with its checksum field
// taken as zero) over the RFC 8200 8.1 pseudo-header of src and dst.
func Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	n := uint32(len(msg))
	sum += n>>16 + n&0xffff
	sum += uint32(protoICMPv6)
	if len(msg) >= 4 {
		add(msg[0:2])
		add(msg[4:])
	} else {
		add(msg)
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func hasLLA(opts []ndp.Option, d ndp.Direction) bool {
	for _, o := range opts {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == d {
			return true
		}
	}
	return false
}

func linkLayerAddr(opts []ndp.Option, d ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == d {
			return l.Addr
		}
	}
	return nil
}

func isSolicitedNode(a netip.Addr) bool {
	if !a.Is6() {
		return false
	}
	b := a.As16()
	return b[0] == 0xff && b[1] == 0x02 && [9]byte(b[2:11]) == [9]byte{} && b[11] == 0x01 && b[12] == 0xff
}

func cloneMAC(b []byte) net.HardwareAddr {
	return append(net.HardwareAddr(nil), b...)
}

// SolicitedNode returns the solicited-node multicast group ff02::1:ffXX:XXXX
// of ip (RFC 4291 2.7.1). ip must be IPv6.
func SolicitedNode(ip netip.Addr) netip.Addr {
	b := ip.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// MulticastMAC returns the Ethernet address 33:33:XX:XX:XX:XX of the IPv6
// multicast group g (RFC 2464 7): 33:33 and the group's low 32 bits.
func MulticastMAC(g netip.Addr) net.HardwareAddr {
	b := g.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// Target returns the target address of f's message, or the zero Addr.
func (f *Frame) Target() netip.Addr {
	switch m := f.Message.(type) {
	case *ndp.NeighborSolicitation:
		return m.TargetAddress
	case *ndp.NeighborAdvertisement:
		return m.TargetAddress
	}
	return netip.Addr{}
}

// LinkLayerAddr returns the MAC f carries for its sender: the source
// link-layer option of an NS, the target link-layer option of an NA; nil
// when there is none.
func (f *Frame) LinkLayerAddr() net.HardwareAddr {
	switch m := f.Message.(type) {
	case *ndp.NeighborSolicitation:
		return linkLayerAddr(m.Options, ndp.Source)
	case *ndp.NeighborAdvertisement:
		return linkLayerAddr(m.Options, ndp.Target)
	}
	return nil
}

// IsSolicitation reports whether f is a Neighbor Solicitation.
func (f *Frame) IsSolicitation() bool {
	_, ok := f.Message.(*ndp.NeighborSolicitation)
	return ok
}

// IsAdvertisement reports whether f is a Neighbor Advertisement.
func (f *Frame) IsAdvertisement() bool {
	_, ok := f.Message.(*ndp.NeighborAdvertisement)
	return ok
}

// IsProbe reports whether f is a DAD probe: an NS from the unspecified
// address, which claims nothing (the counterpart of an RFC 5227 ARP probe).
func (f *Frame) IsProbe() bool {
	return f.IsSolicitation() && f.SourceIP.IsUnspecified()
}

// ClaimsIP reports whether the sender of f claims to own ip: an NA whose
// target is ip, or any message sent from ip. The unspecified address is
// never claimed: that is what a probe sends.
func (f *Frame) ClaimsIP(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsUnspecified() {
		return false
	}
	ip = ip.WithZone("")
	if f.SourceIP == ip {
		return true
	}
	na, ok := f.Message.(*ndp.NeighborAdvertisement)
	return ok && na.TargetAddress == ip
}

// NewProbe returns an RFC 4862 5.4 DAD probe for vip: an NS from the
// unspecified address to vip's solicited-node group, without a source
// link-layer option, so it changes no neighbour cache. dst is nil for the
// group's multicast MAC (every host that joined the group sees it), or the
// holder's MAC for a routine check that no other host has to process.
//
// Linux answers both alike, as long as it holds vip and vip is not
// tentative: it looks at the IPv6 destination (which must be a
// solicited-node group, RFC 4861 7.1.1), not the Ethernet one, and sends an
// NA from vip to all-nodes with Override set, Solicited clear and a target
// link-layer option. So the answer to even a unicast check reaches every
// host on the link; that is what floatip uses, because a probe from :: is
// the only question that leaves no state behind on the holder (see
// NewSolicitation).
func NewProbe(src, dst net.HardwareAddr, vip netip.Addr, o *Option) *Frame {
	g := SolicitedNode(vip)
	if dst == nil {
		dst = MulticastMAC(g)
	}
	return &Frame{
		Destination:   dst,
		Source:        src,
		SourceIP:      netip.IPv6Unspecified(),
		DestinationIP: g,
		Message:       &ndp.NeighborSolicitation{TargetAddress: vip},
		Option:        o,
	}
}

// NewSolicitation returns an address-resolution NS for vip from srcIP (an
// address of the sender, normally its link-local one) with a source
// link-layer option. dst is the holder's MAC for a unicast NS to vip itself
// (RFC 4861 7.2.2 neighbour unreachability detection), or nil for the
// multicast form of address resolution: to vip's solicited-node group and
// its multicast MAC, which every floatip peer that joined the group sees.
//
// Linux answers either with a Solicited NA unicast to srcIP, which no other
// host sees; it adds or refreshes srcIP in its neighbour cache as a side
// effect. Its answer to the unicast form has neither the Override flag nor
// a target link-layer option (RFC 4861 7.2.4 allows that when the NS was
// unicast: use Frame.SenderMAC); its answer to the multicast form has both.
func NewSolicitation(src, dst net.HardwareAddr, srcIP, vip netip.Addr, o *Option) *Frame {
	dstIP := vip
	if dst == nil {
		dstIP = SolicitedNode(vip)
		dst = MulticastMAC(dstIP)
	}
	return &Frame{
		Destination:   dst,
		Source:        src,
		SourceIP:      srcIP,
		DestinationIP: dstIP,
		Message: &ndp.NeighborSolicitation{
			TargetAddress: vip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: src}},
		},
		Option: o,
	}
}

// NewAdvertisement returns an unsolicited NA for vip (RFC 4861 7.2.6): from
// vip to all-nodes, Override set, Solicited clear, Router as given, with a
// target link-layer option src. Every host that has vip in its neighbour
// cache moves it to src (unless it drops unsolicited NAs).
func NewAdvertisement(src net.HardwareAddr, vip netip.Addr, router bool, o *Option) *Frame {
	return &Frame{
		Destination:   MulticastMAC(AllNodes),
		Source:        src,
		SourceIP:      vip,
		DestinationIP: AllNodes,
		Message: &ndp.NeighborAdvertisement{
			Router:        router,
			Override:      true,
			TargetAddress: vip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: src}},
		},
		Option: o,
	}
}

// NewReply returns a solicited NA for vip, unicast to dstIP at dst, Override
// set: the answer to an NS from dstIP (RFC 4861 7.2.4).
func NewReply(src, dst net.HardwareAddr, vip, dstIP netip.Addr, router bool, o *Option) *Frame {
	return &Frame{
		Destination:   dst,
		Source:        src,
		SourceIP:      vip,
		DestinationIP: dstIP,
		Message: &ndp.NeighborAdvertisement{
			Router:        router,
			Solicited:     true,
			Override:      true,
			TargetAddress: vip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: src}},
		},
		Option: o,
	}
}

// SenderMAC returns the MAC of the sender of f: the link-layer option if f
// has one, else the Ethernet source. Linux answers a unicast NS with an NA
// that has no target link-layer option.
func (f *Frame) SenderMAC() net.HardwareAddr {
	if m := f.LinkLayerAddr(); m != nil {
		return m
	}
	return f.Source
}
