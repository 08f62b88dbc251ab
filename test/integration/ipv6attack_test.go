package integration

import (
	"bytes"
	bin "encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"

	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/nd"
)

// captureNDEnv=FILE,DURATION,VIP makes this test binary, run in the
// attacker's namespace, join the VIP's solicited-node group (as any host
// may: the kernel sends the MLD report, so a snooping bridge forwards the
// group to it) and record the sealed floatip ND frames it sees.
const captureNDEnv = "FLOATIP_TEST_CAPTURE_ND"

func init() {
	if v := os.Getenv(captureNDEnv); v != "" {
		exitWith(captureND(v))
	}
}

func captureND(spec string) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return fmt.Errorf("capture spec %q: want FILE,DURATION,VIP", spec)
	}
	d, err := time.ParseDuration(parts[1])
	if err != nil {
		return err
	}
	vip, err := netip.ParseAddr(parts[2])
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	udp, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		return err
	}
	defer udp.Close()
	if err := ipv6.NewPacketConn(udp).JoinGroup(ifi, &net.UDPAddr{IP: nd.SolicitedNode(vip).AsSlice()}); err != nil {
		return err
	}
	conn, err := packet.Listen(ifi, packet.Raw, 0x86dd, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := os.Create(parts[0])
	if err != nil {
		return err
	}
	defer out.Close()
	conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1514)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			break // the deadline
		}
		f := buf[:n]
		if off, l, ok := nd.AuthField(f); ok && l == auth.BlockLen && string(f[off:off+4]) == "FLAU" {
			fmt.Fprintln(out, hex.EncodeToString(f))
		}
	}
	return out.Sync()
}

// captureND records the sealed ND frames the attacker sees for d.
func (c *cluster) captureND(d time.Duration, vip netip.Addr) [][]byte {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), "captured")
	cmd := exec.Command("ip", "netns", "exec", c.ClientNode().NS, os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%s", captureNDEnv, path, d, vip))
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("capturing: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	var frames [][]byte
	for _, l := range strings.Fields(string(data)) {
		f, err := hex.DecodeString(l)
		if err != nil {
			c.t.Fatal(err)
		}
		frames = append(frames, f)
	}
	return frames
}

// A host without floatip on the lab claims the IPv6 VIP with unsolicited
// Neighbor Advertisements (no floatip option, Override, to all-nodes: the
// ND form of a gratuitous ARP). With and without auth, every node counts
// them as foreign claims (over ARP a standby does so too; over ND it read
// them as a kernel's answer and counted nothing), and nothing moves: the
// holder defends, the standby stays.
func TestIPv6ForeignNAClaimCounted(t *testing.T) {
	for _, withAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", withAuth), func(t *testing.T) {
			tag := "fna"
			if withAuth {
				tag = "fnaa"
			}
			c := newLab6(t, tag, 2)
			vip := c.VIP6
			dir := t.TempDir()
			extra := "on_foreign_claim: defend\n"
			if withAuth {
				k, err := auth.GenerateKey(nil)
				if err != nil {
					t.Fatal(err)
				}
				keyFile := filepath.Join(dir, "key")
				if err := auth.WriteKeyFile(keyFile, k, false); err != nil {
					t.Fatal(err)
				}
				extra = fmt.Sprintf("auth:\n  key_file: %s\n", keyFile)
			}
			if err := c.ClientNode().SetLearning(false); err != nil {
				t.Fatalf("attacker port: %v", err)
			}
			c.startAllWithConfig(func(n *lab.Node) string {
				seq := ""
				if withAuth {
					seq = fmt.Sprintf("  sequence_file: %s\n", filepath.Join(dir, "seq-"+n.Name))
				}
				return fmt.Sprintf("interface: eth0\npriority: %s\nvips: [%s]\nlog_level: debug\n%s%s", priority(n), vip, extra, seq)
			})
			const sent = 10
			rogue := randomMAC()
			var frames [][]byte
			for range sent {
				frames = append(frames, forgedND(t, nd.NewAdvertisement(rogue, vip, false, nil), 0, false))
			}
			before := map[string]control.Status{}
			for _, n := range c.Nodes() {
				before[n.Name] = c.waitStatus(n, func(control.Status) bool { return true }, "status")
			}
			c.attack(frames)
			for _, n := range c.Nodes() {
				b := before[n.Name].Groups[0].Counters.ForeignClaims
				s := c.waitStatus(n, func(s control.Status) bool { return s.Groups[0].Counters.ForeignClaims-b >= sent },
					fmt.Sprintf("the %d foreign NAs to be counted", sent))
				t.Logf("%s (%v): %d foreign claims counted", n.Name, s.Groups[0].State, s.Groups[0].Counters.ForeignClaims-b)
				if s.Groups[0].Counters.Transitions != before[n.Name].Groups[0].Counters.Transitions {
					t.Errorf("%s changed state (%d transitions, was %d)", n.Name, s.Groups[0].Counters.Transitions, before[n.Name].Groups[0].Counters.Transitions)
				}
			}
			if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n1" {
				t.Fatalf("holders of %v after the foreign claims: %v, want n1 alone", vip, h)
			}
		})
	}
}

// Replays and edits of genuine sealed ND frames, captured by a host on the
// LAN that joined the VIP's solicited-node group: every replay is counted
// as one (the replay table is shared with ARP), every frame edited (the
// priority in floatip's option set to 254, the ICMPv6 checksum fixed up,
// as an attacker would) as a bad tag, frames in a node's own MAC as
// spoofed; no node changes state.
func TestIPv6AuthReplays(t *testing.T) {
	c := newLab6(t, "rpl", 2)
	vip := c.VIP6
	dir := t.TempDir()
	k, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := auth.WriteKeyFile(keyFile, k, false); err != nil {
		t.Fatal(err)
	}
	if err := c.ClientNode().SetLearning(false); err != nil {
		t.Fatalf("attacker port: %v", err)
	}
	c.startAllWithConfig(func(n *lab.Node) string {
		return fmt.Sprintf("interface: eth0\npriority: %s\nvips: [%s]\nlog_level: debug\nauth:\n  key_file: %s\n  sequence_file: %s\n",
			priority(n), vip, keyFile, filepath.Join(dir, "seq-"+n.Name))
	})
	genuine := c.captureND(3*time.Second, vip)
	if len(genuine) < 4 {
		t.Fatalf("captured %d sealed ND frames, want some", len(genuine))
	}
	if len(genuine) > 40 {
		genuine = genuine[:40]
	}
	var edited [][]byte
	for _, f := range genuine {
		e := bytes.Clone(f)
		off, _, _ := nd.AuthField(e)
		e[off-16+8] = 254 // the priority: byte 8 of the option, whose Auth starts at byte 16
		const icmp = 14 + ipv6.HeaderLen
		plen := int(bin.BigEndian.Uint16(e[14+4 : 14+6]))
		e[icmp+2], e[icmp+3] = 0, 0
		sum := nd.Checksum(netip.AddrFrom16([16]byte(e[14+8:14+24])), netip.AddrFrom16([16]byte(e[14+24:14+40])), e[icmp:icmp+plen])
		bin.BigEndian.PutUint16(e[icmp+2:icmp+4], sum)
		edited = append(edited, e)
	}
	macs := map[string]net.HardwareAddr{}
	before := map[string]control.Status{}
	for _, n := range c.Nodes() {
		macs[n.Name] = hwAddr(t, n)
		before[n.Name] = c.waitStatus(n, func(control.Status) bool { return true }, "status")
	}
	c.attack(genuine)
	c.attack(edited)
	for _, n := range c.Nodes() {
		b := before[n.Name]
		own := fromMAC(genuine, macs[n.Name])
		wantReplay, wantBad := uint64(len(genuine)-own), uint64(len(edited)-fromMAC(edited, macs[n.Name]))
		wantSpoofed := uint64(own + fromMAC(edited, macs[n.Name]))
		s := c.waitStatus(n, func(s control.Status) bool {
			return s.Auth.Failures["replay"]-b.Auth.Failures["replay"] >= wantReplay && s.Auth.Failures["bad_tag"]-b.Auth.Failures["bad_tag"] >= wantBad &&
				s.SpoofedFrames-b.SpoofedFrames >= wantSpoofed
		}, "the replays and edits to be counted")
		got := map[string]uint64{}
		for _, r := range auth.Reasons {
			got[string(r)] = s.Auth.Failures[string(r)] - b.Auth.Failures[string(r)]
		}
		t.Logf("%s: %d genuine frames replayed, %d edited; auth failures %v, spoofed %d", n.Name, len(genuine), len(edited), got, s.SpoofedFrames-b.SpoofedFrames)
		if got["replay"] != wantReplay || got["bad_tag"] != wantBad || s.SpoofedFrames-b.SpoofedFrames != wantSpoofed {
			t.Errorf("%s: want replay %d, bad_tag %d, spoofed %d", n.Name, wantReplay, wantBad, wantSpoofed)
		}
		for _, r := range []string{"missing", "malformed", "unknown_key", "stale"} {
			if got[r] != 0 {
				t.Errorf("%s: %d frames failed with %s, want none", n.Name, got[r], r)
			}
		}
		if s.Groups[0].Counters.Transitions != b.Groups[0].Counters.Transitions {
			t.Errorf("%s changed state (%d transitions, was %d)", n.Name, s.Groups[0].Counters.Transitions, b.Groups[0].Counters.Transitions)
		}
	}
	if h := c.holdersOf(vip); len(h) != 1 || h[0] != "n1" {
		t.Fatalf("holders of %v after the replays: %v, want n1 alone", vip, h)
	}
}

// mldFrames is an MLDv1 Done and an MLDv2 report leaving group g
// (CHANGE_TO_INCLUDE_MODE with no sources), or with join an MLDv2 report
// joining it (CHANGE_TO_EXCLUDE_MODE, no sources), from src (MAC, IPv6),
// with the Router Alert hop-by-hop option and hop limit 1 (RFC 2710,
// RFC 3810).
func mldFrames(mac net.HardwareAddr, src, g netip.Addr, join bool) [][]byte {
	frame := func(dst netip.Addr, icmp []byte) []byte {
		hbh := []byte{58, 0, 5, 2, 0, 0, 1, 0} // next ICMPv6; Router Alert (MLD); PadN
		bin.BigEndian.PutUint16(icmp[2:4], nd.Checksum(src, dst, icmp))
		b := append([]byte{}, nd.MulticastMAC(dst)...)
		b = append(b, mac...)
		b = append(b, 0x86, 0xdd)
		h := make([]byte, ipv6.HeaderLen)
		h[0] = 6 << 4
		bin.BigEndian.PutUint16(h[4:6], uint16(len(hbh)+len(icmp)))
		h[6], h[7] = 0, 1 // hop-by-hop options; hop limit 1
		s16, d16 := src.As16(), dst.As16()
		copy(h[8:24], s16[:])
		copy(h[24:40], d16[:])
		b = append(b, h...)
		b = append(b, hbh...)
		return append(b, icmp...)
	}
	g16 := g.As16()
	if join {
		return [][]byte{frame(netip.MustParseAddr("ff02::16"), append([]byte{143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0}, g16[:]...))}
	}
	done := append([]byte{132, 0, 0, 0, 0, 0, 0, 0}, g16[:]...)
	report := append([]byte{143, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0}, g16[:]...)
	return [][]byte{
		frame(netip.MustParseAddr("ff02::2"), done),
		frame(netip.MustParseAddr("ff02::16"), report),
	}
}

// MLD games: a host on another port sends MLD leaves for the VIP's
// solicited-node group in the holder's name (its MAC and link-local). A
// snooping bridge keeps membership per port: the leaves take the
// attacker's own port out of the group (it joined first), the holder's
// port stays a member, and a client that resolves the VIP afresh still
// reaches the holder. (A switch that tracks members per host, or one with fast leave
// on a port the attacker shares with the holder, may behave otherwise.)
func TestIPv6MLDLeaveInHoldersName(t *testing.T) {
	c := newLab6(t, "mld", 2)
	vip := c.VIP6
	g := nd.SolicitedNode(vip)
	if err := c.ClientNode().SetLearning(false); err != nil {
		t.Fatalf("attacker port: %v", err)
	}
	c.startAll()
	mdb := func() string {
		out, err := exec.Command("bridge", "-n", c.BridgeNS(), "mdb", "show", "dev", "br0").CombinedOutput()
		if err != nil {
			t.Fatalf("bridge mdb: %v\n%s", err, out)
		}
		return string(out)
	}
	member := "port n1 grp " + g.String()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(mdb(), member) {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge never listed the holder's port in %v:\n%s", g, mdb())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command("ip", "-n", c.Node(1).NS, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("n1's link-local: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 {
		t.Fatalf("n1's link-local: %q", out)
	}
	ll := netip.MustParsePrefix(f[3]).Addr()
	// First the attacker's port joins the group, so that the leaves are
	// seen to work where they apply: on the port they came in on.
	attacker := "port " + c.ClientNode().Name + " grp " + g.String()
	c.attack(mldFrames(hwAddr(t, c.ClientNode()), netip.MustParseAddr("fe80::66"), g, true))
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(mdb(), attacker); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not take the attacker's join:\n%s", mdb())
		}
	}
	var frames [][]byte
	for range 3 {
		frames = append(frames, mldFrames(hwAddr(t, c.Node(1)), ll, g, false)...)
	}
	c.attack(frames)
	// The bridge's last-member queries (2 x 1 s by default) go out on the
	// port the leaves came from, where nobody answers: that port leaves
	// the group; the holder's stays throughout.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m := mdb()
		if !strings.Contains(m, member) {
			t.Fatalf("after the forged leaves the bridge dropped the holder's port from %v:\n%s", g, m)
		}
		if !strings.Contains(m, attacker) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the forged leaves had no effect even on the attacker's own port:\n%s", m)
		}
	}
	if served, mac := c.clientResolves(vip); served != "n1" || mac != c.macOf(c.Node(1)) {
		t.Errorf("after the forged leaves the client reached %s at %s, want n1 at %s", served, mac, c.macOf(c.Node(1)))
	}
}

// withDestOpts puts an 8-byte Destination Options header (PadN only)
// between the IPv6 header and the ICMPv6 message of the encoded ND frame
// b. RFC 4861 does not forbid extension headers on ND messages, and Linux
// processes them (only fragments are refused, RFC 6980). The ICMPv6
// checksum does not change: its pseudo-header has the ICMPv6 length.
func withDestOpts(b []byte) []byte {
	const ip = 14
	out := append([]byte{}, b[:ip+ipv6.HeaderLen]...)
	out[ip+6] = 60 // Destination Options
	bin.BigEndian.PutUint16(out[ip+4:ip+6], bin.BigEndian.Uint16(b[ip+4:ip+6])+8)
	out = append(out, 58, 0, 1, 4, 0, 0, 0, 0) // next: ICMPv6; PadN of 4
	return append(out, b[ip+ipv6.HeaderLen:]...)
}

// withLongOption appends an unknown option of 264 bytes to the ND message
// of the encoded frame b (lengths and checksum fixed up). Linux skips it
// and processes the message.
func withLongOption(b []byte) []byte {
	const ip = 14
	opt := make([]byte, 33*8)
	opt[0], opt[1] = 200, 33
	out := append(bytes.Clone(b), opt...)
	bin.BigEndian.PutUint16(out[ip+4:ip+6], bin.BigEndian.Uint16(out[ip+4:ip+6])+uint16(len(opt)))
	m := out[ip+ipv6.HeaderLen:]
	m[2], m[3] = 0, 0
	bin.BigEndian.PutUint16(m[2:4], nd.Checksum(netip.AddrFrom16([16]byte(out[ip+8:ip+24])), netip.AddrFrom16([16]byte(out[ip+24:ip+40])), m))
	return out
}

// withBrokenOption appends a floatip option whose auth length runs past
// its end to the ND message of b (lengths and checksum fixed up). Linux
// skips option 253 whatever it holds.
func withBrokenOption(b []byte) []byte {
	const ip = 14
	opt := make([]byte, 16)
	opt[0], opt[1] = nd.OptionType, 2
	copy(opt[2:], "FLIP\x01")
	opt[14] = 200
	out := append(bytes.Clone(b), opt...)
	bin.BigEndian.PutUint16(out[ip+4:ip+6], bin.BigEndian.Uint16(out[ip+4:ip+6])+uint16(len(opt)))
	m := out[ip+ipv6.HeaderLen:]
	m[2], m[3] = 0, 0
	bin.BigEndian.PutUint16(m[2:4], nd.Checksum(netip.AddrFrom16([16]byte(out[ip+8:ip+24])), netip.AddrFrom16([16]byte(out[ip+24:ip+40])), m))
	return out
}

// Unsolicited NAs for the VIP that Linux applies, from a host without
// floatip: a plain one (Override set, to all-nodes: what steals clients
// from the holder), and three that floatip's decoding once refused: one
// behind a Destination Options header, one padded with an unknown option
// of 264 bytes (github.com/mdlayher/ndp refuses options of 256 bytes or
// more), and one with a floatip option that does not parse. A host's
// kernel applies each (the neighbour entry of a host that talked to the
// VIP moves to the rogue's MAC), so floatip must see the claim: counted as
// foreign by the holder, which defends (the entry comes back to it).
func TestIPv6ClaimsTheKernelApplies(t *testing.T) {
	c := newLab6(t, "ext", 2)
	vip := c.VIP6
	if err := c.ClientNode().SetLearning(false); err != nil {
		t.Fatalf("attacker port: %v", err)
	}
	c.startAllWithConfig(func(n *lab.Node) string {
		return fmt.Sprintf("interface: eth0\npriority: %s\nvips: [%s]\nlog_level: debug\non_foreign_claim: defend\n", priority(n), vip)
	})
	n2 := c.Node(2)
	neigh := func() string {
		out, _ := exec.Command("ip", "-n", n2.NS, "-6", "neigh", "show", vip.String(), "dev", "eth0").CombinedOutput()
		return string(out)
	}
	n1mac := c.macOf(c.Node(1))
	for _, tc := range []struct {
		name string
		wrap func([]byte) []byte
	}{
		{"plain (Override, to all-nodes)", func(b []byte) []byte { return b }},
		{"destination options header", withDestOpts},
		{"unknown option of 264 bytes", withLongOption},
		{"broken floatip option", withBrokenOption},
	} {
		// n2's kernel has an entry for the VIP at n1's MAC, as after
		// talking to it (an unsolicited NA updates only an existing entry).
		if out, err := exec.Command("ip", "-n", n2.NS, "-6", "neigh", "replace", vip.String(), "lladdr", n1mac, "dev", "eth0", "nud", "stale").CombinedOutput(); err != nil {
			t.Fatalf("n2's neighbour entry: %v\n%s", err, out)
		}
		before := c.waitStatus(c.Node(1), func(control.Status) bool { return true }, "status")
		rogue := randomMAC()
		na, err := nd.NewAdvertisement(rogue, vip, false, nil).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		c.attack([][]byte{tc.wrap(na)})
		moved := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if strings.Contains(neigh(), rogue.String()) {
				moved = true
				break
			}
			if s, err := c.status(c.Node(1)); err == nil && s.Groups[0].Counters.ForeignClaims > before.Groups[0].Counters.ForeignClaims {
				break
			}
		}
		t.Logf("%s: n2's entry seen at the rogue's MAC before the holder's defence: %v (now %q)", tc.name, moved, neigh())
		c.waitStatus(c.Node(1), func(s control.Status) bool {
			return s.Groups[0].Counters.ForeignClaims > before.Groups[0].Counters.ForeignClaims
		}, "the holder to count the claim ("+tc.name+")")
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(neigh(), n1mac); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: n2's neighbour entry for %v stayed %q after the holder's defence, want n1's MAC %s", tc.name, vip, neigh(), n1mac)
			}
		}
	}
}
