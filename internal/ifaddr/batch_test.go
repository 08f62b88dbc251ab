//go:build linux

package ifaddr

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The last request of a send claimChunk makes for 198.18.98.1/32 on
// interface index 7, sequence number 0x01020304, lifetime 3 s, on a
// little-endian machine, checked field by field against the kernel's uapi
// headers (linux/netlink.h, linux/if_addr.h, linux/rtnetlink.h). The others
// differ in the flags only (goldenNoAck).
var golden198_18_98_1 = []byte{
	// struct nlmsghdr
	0x3c, 0x00, 0x00, 0x00, // nlmsg_len 60
	0x14, 0x00, // nlmsg_type RTM_NEWADDR (20)
	0x05, 0x05, // nlmsg_flags REQUEST 0x1 | ACK 0x4 | REPLACE 0x100 | CREATE 0x400
	0x04, 0x03, 0x02, 0x01, // nlmsg_seq
	0x00, 0x00, 0x00, 0x00, // nlmsg_pid: the kernel's
	// struct ifaddrmsg
	0x02,                   // ifa_family AF_INET
	0x20,                   // ifa_prefixlen 32
	0x00,                   // ifa_flags
	0x00,                   // ifa_scope RT_SCOPE_UNIVERSE
	0x07, 0x00, 0x00, 0x00, // ifa_index
	// struct rtattr IFA_LOCAL (2), 8 bytes with the address
	0x08, 0x00, 0x02, 0x00,
	198, 18, 98, 1,
	// struct rtattr IFA_ADDRESS (1): the same address (no peer)
	0x08, 0x00, 0x01, 0x00,
	198, 18, 98, 1,
	// struct rtattr IFA_CACHEINFO (6), 20 bytes with struct ifa_cacheinfo
	0x14, 0x00, 0x06, 0x00,
	0x03, 0x00, 0x00, 0x00, // ifa_prefered 3 s
	0x03, 0x00, 0x00, 0x00, // ifa_valid 3 s
	0x00, 0x00, 0x00, 0x00, // cstamp: set by the kernel
	0x00, 0x00, 0x00, 0x00, // tstamp: set by the kernel
}

// goldenNoAck is golden198_18_98_1 without NLM_F_ACK, as every request of
// a send but the last goes out.
var goldenNoAck = func() []byte {
	b := slices.Clone(golden198_18_98_1)
	b[6] = 0x01 // nlmsg_flags REQUEST 0x1 | REPLACE 0x100 | CREATE 0x400
	return b
}()

func TestAppendNewAddrGolden(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the golden bytes are little endian; TestAppendNewAddrMatchesLibrary covers this machine")
	}
	for _, tc := range []struct {
		ack  bool
		want []byte
	}{{true, golden198_18_98_1}, {false, goldenNoAck}} {
		got := appendNewAddr(nil, 0x01020304, 7, [4]byte{198, 18, 98, 1}, 3, tc.ack)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("RTM_NEWADDR request with ack %v (-want +got):\n%s", tc.ack, diff)
		}
	}
}

// libraryNewAddr is the request vishvananda/netlink's Handle.AddrReplace
// sends for a netlink.Addr of ip/32 on index with ValidLft and PreferedLft
// secs and no peer, broadcast, flags or label: the same header flags, the
// same attributes in the same order (addrHandle in its addr_linux.go,
// v1.3.1), serialized by the library's own code. Without ack, it leaves
// out NLM_F_ACK, which the library always sets.
func libraryNewAddr(seq uint32, index int, ip net.IP, secs uint32, ack bool) []byte {
	flags := unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	if ack {
		flags |= unix.NLM_F_ACK
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, flags)
	req.Seq = seq
	msg := nl.NewIfAddrmsg(nl.FAMILY_V4)
	msg.Scope = unix.RT_SCOPE_UNIVERSE
	msg.Index = uint32(index)
	msg.Prefixlen = 32
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip.To4()))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip.To4()))
	// prefixlen 32: no IFA_BROADCAST; no label: no IFA_LABEL.
	ci := nl.IfaCacheInfo{IfaCacheinfo: unix.IfaCacheinfo{Valid: secs, Prefered: secs}}
	req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci.Serialize()))
	return req.Serialize()
}

func TestAppendNewAddrMatchesLibrary(t *testing.T) {
	for _, tc := range []struct {
		seq   uint32
		index int
		addr  string
		secs  uint32
	}{
		{1, 1, "198.18.98.1", 3},
		{0xfffffffe, 4242, "10.255.0.254", 2},
		{77, 0x7fffffff, "255.255.255.255", 0xfffffffe},
	} {
		ip := netip.MustParseAddr(tc.addr)
		for _, ack := range []bool{true, false} {
			want := libraryNewAddr(tc.seq, tc.index, net.IP(ip.AsSlice()), tc.secs, ack)
			got := appendNewAddr(nil, tc.seq, tc.index, ip.As4(), tc.secs, ack)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s seq %d index %d %d s ack %v: hand-encoded request differs from the library's (-library +ours):\n%s",
					tc.addr, tc.seq, tc.index, tc.secs, ack, diff)
			}
		}
	}
	// Appending keeps what is there: a batch is the requests back to back.
	a := appendNewAddr(nil, 1, 1, [4]byte{198, 18, 98, 1}, 3, false)
	b := appendNewAddr(a, 2, 1, [4]byte{198, 18, 98, 2}, 3, true)
	if len(b) != 2*newAddrLen || string(b[:newAddrLen]) != string(a) {
		t.Errorf("second request did not follow the first: % x", b)
	}
}

// ack is the kernel's acknowledgement of request seq with NETLINK_CAP_ACK
// set: a header, then struct nlmsgerr with the negative errno and the
// request's header only.
func ack(seq uint32, errno unix.Errno) []byte {
	ne := binary.NativeEndian
	b := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofNlMsgerr)
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_ERROR)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[unix.NLMSG_HDRLEN:], uint32(-int32(errno)))
	return b
}

func TestScanAnswers(t *testing.T) {
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	other := ack(5, 0)   // another request's
	notErr := ack(12, 0) // right sequence number, not an answer
	binary.NativeEndian.PutUint16(notErr[4:], unix.NLMSG_DONE)
	// Requests 10, 11 and 12; only 12 asked for an acknowledgement.
	for _, tc := range []struct {
		name    string
		b       []byte
		refused []refusal
		done    bool
	}{
		{"empty", nil, nil, false},
		{"all fine: the last one's acknowledgement", ack(12, 0), nil, true},
		{"every error, then the acknowledgement", cat(ack(10, unix.EINVAL), ack(11, unix.ENODEV), ack(12, 0)),
			[]refusal{{0, unix.EINVAL}, {1, unix.ENODEV}}, true},
		{"an error without the acknowledgement: read on", ack(11, unix.ENODEV), []refusal{{1, unix.ENODEV}}, false},
		{"the last one refused answers it", cat(ack(10, unix.EPERM), ack(12, unix.ENODEV)),
			[]refusal{{0, unix.EPERM}, {2, unix.ENODEV}}, true},
		{"others skipped", cat(other, notErr), nil, false},
		{"before first skipped", cat(ack(9, unix.EPERM), ack(13, unix.EPERM)), nil, false},
		{"truncated message ends the scan", cat(ack(10, unix.EPERM), ack(12, 0)[:20]), []refusal{{0, unix.EPERM}}, false},
		{"length below the header ends the scan", cat([]byte{4, 0, 0, 0}, make([]byte, 12), ack(12, 0)), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused, done := scanAnswers(tc.b, 10, 3, nil)
			if !slices.Equal(refused, tc.refused) || done != tc.done {
				t.Errorf("scanAnswers = %v, %v; want %v, %v", refused, done, tc.refused, tc.done)
			}
		})
	}
}
