// Package arp encodes and decodes Ethernet II frames carrying ARP for IPv4
// over Ethernet (htype 1, ptype 0x0800, hlen 6, plen 4), with an optional
// floatip trailer carried in the Ethernet padding. It is pure and builds on
// every OS; the Linux socket that sends and receives these frames is in
// package afpacket.
//
// The codec is our own rather than github.com/mdlayher/arp because floatip
// needs the bytes after the 28-byte ARP payload (the trailer) and RFC 5227
// probes with sender IP 0.0.0.0, and because only a 2022 snapshot of that
// module is available.
package arp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Operation is the ARP opcode.
type Operation uint16

// ARP opcodes (RFC 826).
const (
	OperationRequest Operation = 1
	OperationReply   Operation = 2
)

// String returns "request", "reply" or the number, for logs.
func (o Operation) String() string {
	switch o {
	case OperationRequest:
		return "request"
	case OperationReply:
		return "reply"
	default:
		return "Operation(" + strconv.Itoa(int(o)) + ")"
	}
}

// Kind says why a floatip node sent a frame; carried in the trailer.
type Kind uint8

// Kinds of floatip frames.
const (
	// KindProbe is a standby's or a starting node's RFC 5227 probe.
	KindProbe Kind = 1
	// KindAnnounce is the holder's gratuitous ARP.
	KindAnnounce Kind = 2
	// KindRelease says the holder gives the VIP up (graceful stop), so
	// standbys can take over without waiting for probes to time out.
	KindRelease Kind = 3
	// KindBeacon is a standby's periodic broadcast of its presence.
	KindBeacon Kind = 4
	// KindDefend is the holder defending the VIP against a conflicting claim.
	KindDefend Kind = 5
	// KindTakeover is a better standby asking the holder to hand the VIP
	// over (preemption); sent unicast to the holder.
	KindTakeover Kind = 6
)

// String returns the kind's name, or "Kind(N)" for a value this version
// does not know (a newer peer may send one).
func (k Kind) String() string {
	switch k {
	case KindProbe:
		return "probe"
	case KindAnnounce:
		return "announce"
	case KindRelease:
		return "release"
	case KindBeacon:
		return "beacon"
	case KindDefend:
		return "defend"
	case KindTakeover:
		return "takeover"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// FlagHolder in Trailer.Flags says the sender currently holds the VIP.
const FlagHolder uint8 = 1 << 0

// FlagClaiming in Trailer.Flags says the sender found the VIP free and is
// waiting its turn to claim it; a better standby that sees it checks the
// holder at once and claims first.
const FlagClaiming uint8 = 1 << 1

// FlagPassive in Trailer.Flags says the sender will not claim the VIP (a
// maintenance hold, or later an unhealthy service), so other standbys do not
// wait for it.
const FlagPassive uint8 = 1 << 2

// FlagKeyFirst, on a holder's beacon, says the holder gave its quorum key
// up and will release the VIP as soon as another node owns the key (a
// graceful stop): the best standby campaigns at once, but adds the VIP
// only after the holder's release frame. A node that predates the flag
// takes the frame for an ordinary beacon.
const FlagKeyFirst uint8 = 1 << 3

// Trailer is floatip's own data, placed right after the 28-byte ARP payload
// inside the padding of a minimum-size Ethernet frame (or past it: hosts
// ignore what follows the ARP payload), so ordinary hosts process the ARP
// normally and floatip peers learn each other's priority, intent and name.
// Layout (big endian), 12 bytes, then an optional name field:
//
//	[0:4]    magic "FLIP"
//	[4]      version (1)
//	[5]      kind
//	[6]      priority
//	[7]      flags
//	[8:12]   node ID (uint32, a hash of the node name)
//	[12]     field type: 1 = node name (0, the padding, ends the trailer)
//	[13]     name length N, 1..MaxNameLen
//	[14:14+N] node name, UTF-8 without whitespace or control characters
//
// The name field keeps version 1: a decoder that predates it reads the
// first 12 bytes and takes the rest for padding, so nodes of both kinds
// work together during an upgrade. A name that is cut off, too long, not
// UTF-8 or not printable is dropped (NameRejected) and the rest of the
// trailer kept: a hostile frame cannot put a line break or an escape
// sequence into a log line or the status.
type Trailer struct {
	Kind     Kind
	Priority uint8
	Flags    uint8
	NodeID   uint32
	// Name is the sender's node name; "" when the frame carries none.
	Name string
	// NameRejected says the frame carried a name field that did not
	// validate (set by UnmarshalBinary only).
	NameRejected bool
}

// MaxNameLen is the longest node name a trailer carries, in bytes: the
// configuration's limit for node names (a host name is at most 64 too).
const MaxNameLen = 64

// fieldName is the type byte of the trailer's name field.
const fieldName = 1

// ValidName reports whether s may travel as a node name: 1..MaxNameLen
// bytes of UTF-8, every rune printable and none whitespace, the rule the
// configuration applies to node_name.
func ValidName(s string) bool {
	return s != "" && len(s) <= MaxNameLen && utf8.ValidString(s) &&
		!strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) })
}

// Packet is one Ethernet II frame carrying an IPv4-over-Ethernet ARP
// message and, when a floatip node sent it, a Trailer.
type Packet struct {
	// Ethernet header.
	Destination net.HardwareAddr
	Source      net.HardwareAddr

	Operation          Operation
	SenderHardwareAddr net.HardwareAddr
	SenderIP           netip.Addr
	TargetHardwareAddr net.HardwareAddr
	TargetIP           netip.Addr

	// Trailer is nil when the frame carries none (any non-floatip host, or
	// the kernel's own replies).
	Trailer *Trailer

	// Authenticated is set by a reader that verified the frame's auth
	// block (package auth) before decoding it; the codec itself neither
	// sets nor reads it.
	Authenticated bool
}

// Broadcast is the Ethernet broadcast address.
var Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ErrMalformed is wrapped by every error UnmarshalBinary returns, so callers
// that read from the wire can tell junk (log it, keep reading) from a broken
// socket.
var ErrMalformed = errors.New("malformed ARP frame")

// Frame layout, exported for code that inspects raw frames without decoding
// them (the socket filter of package afpacket).
const (
	// EtherType is the Ethernet type of ARP frames.
	EtherType = 0x0806
	// EthernetHeaderLen is the length of the Ethernet II header.
	EthernetHeaderLen = 14
	// PayloadLen is the length of an IPv4-over-Ethernet ARP payload.
	PayloadLen = 28
	// TrailerOffset is where the Trailer starts in a frame.
	TrailerOffset = EthernetHeaderLen + PayloadLen
	// TrailerLen is the length of the Trailer without its name field.
	TrailerLen = 12
)

const (
	etherTypeIPv4 = 0x0800
	htypeEthernet = 1

	// minFrameLen is the minimum Ethernet frame without the FCS; shorter
	// frames are padded by us, as some NICs and switches drop runts.
	minFrameLen = 60

	trailerVersion = 1
)

var trailerMagic = [4]byte{'F', 'L', 'I', 'P'}

// zeroMAC is the target hardware address of requests, which RFC 5227 asks
// to be zero.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// MarshalBinary encodes p as an Ethernet frame of at least 60 bytes (the
// minimum frame size, zero padded). All four MACs must be 6 bytes and both
// IPs IPv4.
func (p *Packet) MarshalBinary() ([]byte, error) {
	for _, m := range []struct {
		name string
		addr net.HardwareAddr
	}{
		{"destination", p.Destination},
		{"source", p.Source},
		{"sender hardware address", p.SenderHardwareAddr},
		{"target hardware address", p.TargetHardwareAddr},
	} {
		if len(m.addr) != 6 {
			return nil, fmt.Errorf("marshal ARP frame: %s %q is not a 6-byte Ethernet address", m.name, m.addr)
		}
	}
	if !p.SenderIP.Is4() {
		return nil, fmt.Errorf("marshal ARP frame: sender IP %v is not IPv4", p.SenderIP)
	}
	if !p.TargetIP.Is4() {
		return nil, fmt.Errorf("marshal ARP frame: target IP %v is not IPv4", p.TargetIP)
	}

	n := minFrameLen
	if t := p.Trailer; t != nil && t.Name != "" {
		if !ValidName(t.Name) {
			return nil, fmt.Errorf("marshal ARP frame: node name %q is not 1..%d bytes of printable UTF-8 without whitespace", t.Name, MaxNameLen)
		}
		n = max(n, TrailerOffset+TrailerLen+2+len(t.Name))
	}
	b := make([]byte, n)
	copy(b[0:6], p.Destination)
	copy(b[6:12], p.Source)
	binary.BigEndian.PutUint16(b[12:14], EtherType)

	a := b[EthernetHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], htypeEthernet)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4] = 6
	a[5] = 4
	binary.BigEndian.PutUint16(a[6:8], uint16(p.Operation))
	copy(a[8:14], p.SenderHardwareAddr)
	sip := p.SenderIP.As4()
	copy(a[14:18], sip[:])
	copy(a[18:24], p.TargetHardwareAddr)
	tip := p.TargetIP.As4()
	copy(a[24:28], tip[:])

	if t := p.Trailer; t != nil {
		tr := a[PayloadLen : PayloadLen+TrailerLen]
		copy(tr[0:4], trailerMagic[:])
		tr[4] = trailerVersion
		tr[5] = uint8(t.Kind)
		tr[6] = t.Priority
		tr[7] = t.Flags
		binary.BigEndian.PutUint32(tr[8:12], t.NodeID)
		if t.Name != "" {
			f := a[PayloadLen+TrailerLen:]
			f[0] = fieldName
			f[1] = uint8(len(t.Name))
			copy(f[2:], t.Name)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes an Ethernet frame into p. Every error wraps
// ErrMalformed. The trailer is parsed only when its magic and version match;
// any other bytes after the ARP payload are Ethernet padding and ignored.
// p does not alias b.
func (p *Packet) UnmarshalBinary(b []byte) error {
	if len(b) < EthernetHeaderLen+PayloadLen {
		return fmt.Errorf("%w: %d bytes, need at least %d", ErrMalformed, len(b), EthernetHeaderLen+PayloadLen)
	}
	if et := binary.BigEndian.Uint16(b[12:14]); et != EtherType {
		return fmt.Errorf("%w: ethertype %#04x is not ARP", ErrMalformed, et)
	}
	a := b[EthernetHeaderLen:]
	htype := binary.BigEndian.Uint16(a[0:2])
	ptype := binary.BigEndian.Uint16(a[2:4])
	if htype != htypeEthernet || ptype != etherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return fmt.Errorf("%w: htype %d ptype %#04x hlen %d plen %d is not IPv4 over Ethernet",
			ErrMalformed, htype, ptype, a[4], a[5])
	}
	op := Operation(binary.BigEndian.Uint16(a[6:8]))
	if op != OperationRequest && op != OperationReply {
		return fmt.Errorf("%w: unknown operation %d", ErrMalformed, uint16(op))
	}

	*p = Packet{
		Destination:        cloneMAC(b[0:6]),
		Source:             cloneMAC(b[6:12]),
		Operation:          op,
		SenderHardwareAddr: cloneMAC(a[8:14]),
		SenderIP:           netip.AddrFrom4([4]byte(a[14:18])),
		TargetHardwareAddr: cloneMAC(a[18:24]),
		TargetIP:           netip.AddrFrom4([4]byte(a[24:28])),
	}

	if tr := a[PayloadLen:]; len(tr) >= TrailerLen && [4]byte(tr[0:4]) == trailerMagic && tr[4] == trailerVersion {
		p.Trailer = &Trailer{
			Kind:     Kind(tr[5]),
			Priority: tr[6],
			Flags:    tr[7],
			NodeID:   binary.BigEndian.Uint32(tr[8:12]),
		}
		if f := tr[TrailerLen:]; len(f) > 0 && f[0] == fieldName {
			var name string
			if len(f) >= 2 && int(f[1]) <= len(f)-2 {
				name = string(f[2 : 2+int(f[1])])
			}
			if ValidName(name) {
				p.Trailer.Name = name
			} else {
				p.Trailer.NameRejected = true
			}
		}
	}
	return nil
}

func cloneMAC(b []byte) net.HardwareAddr {
	return append(net.HardwareAddr(nil), b...)
}

// NewProbe returns an RFC 5227 probe for vip: a request with sender IP
// 0.0.0.0, so it does not pollute other hosts' ARP caches, and target IP
// vip. dst is Broadcast, or the holder's MAC for a unicast probe that does
// not disturb the rest of the segment.
func NewProbe(src, dst net.HardwareAddr, vip netip.Addr, t *Trailer) *Packet {
	return &Packet{
		Destination:        dst,
		Source:             src,
		Operation:          OperationRequest,
		SenderHardwareAddr: src,
		SenderIP:           netip.IPv4Unspecified(),
		TargetHardwareAddr: zeroMAC,
		TargetIP:           vip,
		Trailer:            t,
	}
}

// NewAnnouncement returns an RFC 5227 announcement (gratuitous ARP) for vip:
// a broadcast request with sender IP and target IP both vip, which makes
// every host on the segment update its cache entry for vip to src.
func NewAnnouncement(src net.HardwareAddr, vip netip.Addr, t *Trailer) *Packet {
	return &Packet{
		Destination:        Broadcast,
		Source:             src,
		Operation:          OperationRequest,
		SenderHardwareAddr: src,
		SenderIP:           vip,
		TargetHardwareAddr: zeroMAC,
		TargetIP:           vip,
		Trailer:            t,
	}
}

// NewReply returns a unicast reply to dst (at dstIP) saying vip is at src.
func NewReply(src, dst net.HardwareAddr, vip netip.Addr, dstIP netip.Addr, t *Trailer) *Packet {
	return &Packet{
		Destination:        dst,
		Source:             src,
		Operation:          OperationReply,
		SenderHardwareAddr: src,
		SenderIP:           vip,
		TargetHardwareAddr: dst,
		TargetIP:           dstIP,
		Trailer:            t,
	}
}

// IsProbe reports whether p is an RFC 5227 probe: a request with the
// unspecified sender IP, which claims nothing. The unspecified address of
// either family counts: the daemon maps IPv6 Neighbor Solicitations, which
// claim nothing about their target, to requests from :: (the election
// machine reads both families as packets).
func (p *Packet) IsProbe() bool {
	return p.Operation == OperationRequest && p.SenderIP.IsValid() && p.SenderIP.IsUnspecified()
}

// ClaimsIP reports whether the sender of p claims to own ip: its sender IP
// is ip, as in an announcement, a reply, or any request sent from ip. The
// unspecified address is never claimed: that is what a probe sends.
func (p *Packet) ClaimsIP(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && p.SenderIP == ip
}
