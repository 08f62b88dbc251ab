//go:build linux

package ifaddr

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// addrMessage is an address event as the kernel sends it, serialized by
// vishvananda/netlink (a request has the same layout): ifaddrmsg, then
// IFA_ADDRESS and IFA_LOCAL when given.
func addrMessage(typ uint16, port uint32, family, index int, address, local net.IP) []byte {
	req := nl.NewNetlinkRequest(int(typ), 0)
	req.Pid = port
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(index)
	msg.Prefixlen = 32
	req.AddData(msg)
	if address != nil {
		req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, address))
	}
	if local != nil {
		req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, local))
	}
	req.AddData(nl.NewRtAttr(unix.IFA_LABEL, []byte("fip0\x00")))
	return req.Serialize()
}

func TestOwnRenewalFilter(t *testing.T) {
	const batch, other = 0x80001234, 4242
	raw, err := ownRenewalFilter(batch)
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range raw {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.IPv4(198, 18, 98, 1).To4()
	for _, tc := range []struct {
		name string
		typ  uint16
		port uint32
		keep bool
	}{
		{"our batch's addition or renewal", unix.RTM_NEWADDR, batch, false},
		{"another socket's addition", unix.RTM_NEWADDR, other, true},
		{"the kernel's addition", unix.RTM_NEWADDR, 0, true},
		{"our batch's deletion", unix.RTM_DELADDR, batch, true},
		{"expired: the kernel's deletion", unix.RTM_DELADDR, 0, true},
	} {
		n, err := vm.Run(addrMessage(tc.typ, tc.port, unix.AF_INET, 3, ip, ip))
		if err != nil {
			t.Fatal(err)
		}
		if keep := n > 0; keep != tc.keep {
			t.Errorf("%s: kept %v, want %v", tc.name, keep, tc.keep)
		}
	}
}

func TestParseAddrEvents(t *testing.T) {
	a := net.IPv4(198, 18, 98, 1).To4()
	b := net.IPv4(198, 18, 98, 2).To4()
	peer := net.IPv4(198, 18, 98, 254).To4()
	v6 := net.ParseIP("2001:db8::1")
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	ev := func(index int, addr string, added bool) addrEvent {
		return addrEvent{index: index, addr: netip.MustParseAddr(addr), added: added}
	}
	link := nl.NewNetlinkRequest(unix.RTM_NEWLINK, 0)
	link.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	for _, tc := range []struct {
		name string
		b    []byte
		want []addrEvent
	}{
		{"empty", nil, nil},
		{"added and deleted in one receive",
			cat(addrMessage(unix.RTM_NEWADDR, 0, unix.AF_INET, 3, a, a), addrMessage(unix.RTM_DELADDR, 0, unix.AF_INET, 4, b, b)),
			[]addrEvent{ev(3, "198.18.98.1", true), ev(4, "198.18.98.2", false)}},
		{"IFA_LOCAL over a point-to-point peer's IFA_ADDRESS", addrMessage(unix.RTM_NEWADDR, 0, unix.AF_INET, 3, peer, a),
			[]addrEvent{ev(3, "198.18.98.1", true)}},
		{"IFA_ADDRESS without IFA_LOCAL", addrMessage(unix.RTM_NEWADDR, 0, unix.AF_INET, 3, a, nil),
			[]addrEvent{ev(3, "198.18.98.1", true)}},
		{"IPv6 and other messages skipped",
			cat(addrMessage(unix.RTM_NEWADDR, 0, unix.AF_INET6, 3, v6, v6), link.Serialize(), addrMessage(unix.RTM_DELADDR, 0, unix.AF_INET, 3, a, a)),
			[]addrEvent{ev(3, "198.18.98.1", false)}},
		{"no address skipped", addrMessage(unix.RTM_NEWADDR, 0, unix.AF_INET, 3, nil, nil), nil},
		{"truncated message ends the parse",
			cat(addrMessage(unix.RTM_NEWADDR, 0, unix.AF_INET, 3, a, a), addrMessage(unix.RTM_DELADDR, 0, unix.AF_INET, 3, b, b)[:30]),
			[]addrEvent{ev(3, "198.18.98.1", true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseAddrEvents(tc.b, nil); !slices.Equal(got, tc.want) {
				t.Errorf("parseAddrEvents = %v, want %v", got, tc.want)
			}
		})
	}
}
