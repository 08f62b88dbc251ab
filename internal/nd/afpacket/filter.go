//go:build linux

package afpacket

import (
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// Filter returns the socket filter of Listen: it keeps an Ethernet frame
// (whole) when its ethertype is IPv6 and either its IPv6 next header is
// ICMPv6 with type Neighbor Solicitation (135) or Neighbor Advertisement
// (136), or its next header is Hop-by-Hop or Destination Options (an ND
// message may follow them, and Linux processes it: the codec looks
// further); it drops everything else. Hop limit, checksum and the rest are
// left to the codec, so that rejected frames can be logged and counted.
// (The second kind also passes MLD reports, which carry a Hop-by-Hop
// header: a few frames per group per query interval, which the codec
// drops as not ND.)
func Filter() ([]bpf.RawInstruction, error) {
	const (
		etherTypeOff  = 12
		nextHeaderOff = 14 + 6
		icmpTypeOff   = 14 + ipv6.HeaderLen
		hopByHop      = 0
		destOpts      = 60
		keep          = 0x40000 // whole frame
		drop          = 0
	)
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: etherTypeOff, Size: 2},                                                               // 0
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv6, SkipTrue: 8},                                        // 1 -> drop
		bpf.LoadAbsolute{Off: nextHeaderOff, Size: 1},                                                              // 2
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: hopByHop, SkipTrue: 5},                                                // 3 -> keep
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: destOpts, SkipTrue: 4},                                                // 4 -> keep
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeNeighborSolicitation.Protocol()), SkipTrue: 4}, // 5 -> drop
		bpf.LoadAbsolute{Off: icmpTypeOff, Size: 1},                                                                // 6
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ipv6.ICMPTypeNeighborSolicitation), SkipTrue: 1},               // 7 -> keep
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeNeighborAdvertisement), SkipTrue: 1},           // 8 -> drop
		bpf.RetConstant{Val: keep},                                                                                 // 9
		bpf.RetConstant{Val: drop},                                                                                 // 10
	})
}
