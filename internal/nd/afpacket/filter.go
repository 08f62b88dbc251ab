//go:build linux

package afpacket

import (
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// Filter returns the socket filter of Listen: it keeps an Ethernet frame
// (whole) when its ethertype is IPv6, its IPv6 next header is ICMPv6, and
// the ICMPv6 type is Neighbor Solicitation (135) or Neighbor Advertisement
// (136); it drops everything else. Hop limit, checksum and the rest are left
// to the codec, so that rejected frames can be logged and counted.
func Filter() ([]bpf.RawInstruction, error) {
	const (
		etherTypeOff  = 12
		nextHeaderOff = 14 + 6
		icmpTypeOff   = 14 + ipv6.HeaderLen
		keep          = 0x40000 // whole frame
		drop          = 0
	)
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: etherTypeOff, Size: 2},                                                               // 0
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv6, SkipTrue: 6},                                        // 1 -> drop
		bpf.LoadAbsolute{Off: nextHeaderOff, Size: 1},                                                              // 2
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeNeighborSolicitation.Protocol()), SkipTrue: 4}, // 3 -> drop
		bpf.LoadAbsolute{Off: icmpTypeOff, Size: 1},                                                                // 4
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ipv6.ICMPTypeNeighborSolicitation), SkipTrue: 1},               // 5 -> keep
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeNeighborAdvertisement), SkipTrue: 1},           // 6 -> drop
		bpf.RetConstant{Val: keep}, // 7
		bpf.RetConstant{Val: drop}, // 8
	})
}
