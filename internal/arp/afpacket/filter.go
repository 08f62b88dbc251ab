package afpacket

import (
	"encoding/binary"
	"net"

	"golang.org/x/net/bpf"

	"github.com/floatip/floatip/internal/arp"
)

// routineProbeFilter is a socket filter that keeps from the socket the
// standbys' routine checks of a holder: RFC 5227 probes unicast to our MAC
// that carry a floatip trailer of kind probe without the claiming flag. The
// kernel still answers them; the daemon learns nothing from them that the
// broadcast beacons do not tell it, and with many groups they are most of
// what a holder would read. Everything else passes: broadcasts, replies,
// claiming probes, releases, takeover requests, any frame from a host that
// is not floatip.
func routineProbeFilter(mac net.HardwareAddr) ([]bpf.RawInstruction, error) {
	const (
		dstMAC   = 0
		senderIP = arp.EthernetHeaderLen + 14 // ARP payload [14:18]
		kindOff  = arp.TrailerOffset + 5      // see arp.Trailer's layout
		flagsOff = arp.TrailerOffset + 7
		keep     = 0x40000 // whole frame
		drop     = 0
	)
	hi := binary.BigEndian.Uint32(mac[0:4])
	lo := uint32(binary.BigEndian.Uint16(mac[4:6]))
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: dstMAC, Size: 4},                                        // 0
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: hi, SkipTrue: 9},                      // 1 -> keep
		bpf.LoadAbsolute{Off: dstMAC + 4, Size: 2},                                    // 2
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: lo, SkipTrue: 7},                      // 3 -> keep
		bpf.LoadAbsolute{Off: senderIP, Size: 4},                                      // 4
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 5},                       // 5 -> keep
		bpf.LoadAbsolute{Off: kindOff, Size: 1},                                       // 6
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(arp.KindProbe), SkipTrue: 3},   // 7 -> keep
		bpf.LoadAbsolute{Off: flagsOff, Size: 1},                                      // 8
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: uint32(arp.FlagClaiming), SkipTrue: 1}, // 9 -> keep
		bpf.RetConstant{Val: drop},                                                    // 10
		bpf.RetConstant{Val: keep},                                                    // 11
	})
}
