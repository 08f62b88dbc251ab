package daemon

import (
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/nd"
)

// The election machine speaks arp.Packet for both families. This file maps
// its packets to IPv6 Neighbor Discovery frames and back (docs/ipv6.md has
// the design); the machine needs no other change than arp.Packet.IsProbe
// taking the unspecified address of either family.
//
// Sent (toND), by the packet the machine emits for an IPv6 VIP:
//
//	machine's packet                            ND frame
//	probe (sender ::), broadcast, kind probe    DAD probe: NS from :: to the solicited-node group (RFC 4862 5.4)
//	  or without floatip data
//	any other probe (unicast check, beacon,     NS from our link-local (NewSolicitation), unicast to the MAC
//	  release, takeover)                          or to the solicited-node group; without a usable
//	                                              link-local, the DAD form (NewProbe) to the same MAC
//	announcement (sender = target = VIP)        unsolicited NA to all-nodes, Override, Router per ipv6.na_router
//	reply to a unicast IPv6 address             solicited NA to that address (NewReply)
//	reply to :: (an NS maps to sender ::)       NA to all-nodes at the IPv6 layer, unicast to the asker's MAC,
//	                                              Solicited clear (RFC 4861 7.2.4 for an NS from ::)
//
// Received (fromND):
//
//	ND frame                                    machine's packet
//	NS (any source)                             probe: request from :: for the target; it claims nothing
//	NA with floatip's option, to a group        announcement: request with sender = target = the NA's target
//	  MAC and Solicited clear
//	NA with floatip's option otherwise          reply from the target (a holder answering a check itself)
//	NA without the option                       reply from the target: a kernel answering a solicitation.
//	                                              A host without floatip that claims the VIP with an
//	                                              unsolicited NA looks the same, so only a holder (for
//	                                              which any answer is a conflict) reports it as foreign.
//
// In both directions SenderHardwareAddr is nd.Frame.SenderMAC (the
// link-layer option, else the Ethernet source: Linux answers a unicast NS
// without one), and a group Ethernet destination (33:33:...) is
// arp.Broadcast: what the machine calls broadcast (a release to all, a
// probe to all) is the solicited-node or all-nodes group here.

// toND returns the ND frame for p, a packet the machine emits for an IPv6
// VIP. ll is the node's usable (non-tentative) link-local address, or the
// zero Addr; router is the NA Router flag. nil when p is nothing the
// machine sends (the caller reports it).
func toND(p *arp.Packet, ll netip.Addr, router bool) *nd.Frame {
	var opt *nd.Option
	if p.Trailer != nil {
		opt = &nd.Option{Trailer: *p.Trailer}
		opt.Name, opt.NameRejected = "", false // the ND option carries no name
	}
	group := isGroupMAC(p.Destination)
	switch {
	case p.Operation == arp.OperationReply:
		vip := p.SenderIP
		if !vip.Is6() {
			return nil
		}
		if dst := p.TargetIP; dst.Is6() && !dst.IsUnspecified() && !dst.IsMulticast() {
			return nd.NewReply(p.Source, p.Destination, vip, dst, router, opt)
		}
		f := nd.NewAdvertisement(p.Source, vip, router, opt)
		f.Destination = p.Destination
		return f
	case p.Operation != arp.OperationRequest:
		return nil
	case p.IsProbe():
		vip := p.TargetIP
		if !vip.Is6() {
			return nil
		}
		var dst net.HardwareAddr // nil: the solicited-node group
		if !group {
			dst = p.Destination
		}
		if group && (p.Trailer == nil || p.Trailer.Kind == arp.KindProbe) {
			return nd.NewProbe(p.Source, nil, vip, opt)
		}
		if !ll.IsValid() {
			return nd.NewProbe(p.Source, dst, vip, opt)
		}
		return nd.NewSolicitation(p.Source, dst, ll, vip, opt)
	case p.SenderIP == p.TargetIP && p.SenderIP.Is6():
		f := nd.NewAdvertisement(p.Source, p.SenderIP, router, opt)
		if !group {
			f.Destination = p.Destination
		}
		return f
	}
	return nil
}

// fromND returns the machine's view of f (see the table above); nil for a
// frame that is neither NS nor NA.
func fromND(f *nd.Frame) *arp.Packet {
	target := f.Target()
	if !target.IsValid() {
		return nil
	}
	p := &arp.Packet{
		Destination:        f.Destination,
		Source:             f.Source,
		Operation:          arp.OperationRequest,
		SenderHardwareAddr: f.SenderMAC(),
		TargetHardwareAddr: zeroMAC,
		Authenticated:      f.Authenticated,
	}
	if isGroupMAC(f.Destination) {
		p.Destination = arp.Broadcast
	}
	if f.Option != nil {
		t := f.Option.Trailer
		p.Trailer = &t
	}
	switch m := f.Message.(type) {
	case *ndp.NeighborSolicitation:
		p.SenderIP, p.TargetIP = netip.IPv6Unspecified(), target
	case *ndp.NeighborAdvertisement:
		if f.Option != nil && !m.Solicited && isGroupMAC(f.Destination) {
			p.SenderIP, p.TargetIP = target, target
			break
		}
		p.Operation = arp.OperationReply
		p.SenderIP, p.TargetIP = target, netip.IPv6Unspecified()
		if d := f.DestinationIP; !d.IsMulticast() {
			p.TargetIP = d
		}
	default:
		return nil
	}
	return p
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// isGroupMAC reports whether mac is a broadcast or multicast address.
func isGroupMAC(mac net.HardwareAddr) bool { return len(mac) == 6 && mac[0]&1 != 0 }
