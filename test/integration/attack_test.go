package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	bin "encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/control"
	"github.com/floatip/floatip/internal/lab"
)

// The attacker is this test binary, run again inside the client's
// namespace (`ip netns exec`), so no thread of the test process changes
// namespace. It either records the sealed floatip frames it sees
// (captureEnv=FILE,DURATION) or sends the frames listed in a file, one hex
// line each (sendEnv=FILE). The shipped binary has no such mode.
const (
	captureEnv = "FLOATIP_TEST_CAPTURE"
	sendEnv    = "FLOATIP_TEST_SEND"
)

func init() {
	if v := os.Getenv(captureEnv); v != "" {
		exitWith(capture(v))
	}
	if v := os.Getenv(sendEnv); v != "" {
		exitWith(sendFrames(v))
	}
}

func exitWith(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func rawConn() (*packet.Conn, error) {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return nil, err
	}
	return packet.Listen(ifi, packet.Raw, arp.EtherType, nil)
}

// capture writes the sealed floatip frames seen for a while.
func capture(spec string) error {
	file, dur, ok := strings.Cut(spec, ",")
	if !ok {
		return fmt.Errorf("capture spec %q: want FILE,DURATION", spec)
	}
	d, err := time.ParseDuration(dur)
	if err != nil {
		return err
	}
	conn, err := rawConn()
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := os.Create(file)
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
		if n > auth.BlockLen && string(f[n-auth.BlockLen:n-auth.BlockLen+4]) == "FLAU" {
			fmt.Fprintln(out, hex.EncodeToString(f))
		}
	}
	return out.Sync()
}

// sendFrames sends every frame of the file.
func sendFrames(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	conn, err := rawConn()
	if err != nil {
		return err
	}
	defer conn.Close()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sent := 0
	for sc.Scan() {
		f, err := hex.DecodeString(sc.Text())
		if err != nil {
			return err
		}
		for {
			_, err = conn.WriteTo(f, &packet.Addr{HardwareAddr: f[0:6]})
			if err == nil || !strings.Contains(err.Error(), "no buffer space") {
				break
			}
			time.Sleep(time.Millisecond) // the qdisc is full: this is a flood, not a test of the sender
		}
		if err != nil {
			return err
		}
		sent++
		if sent%20 == 0 {
			// 20 frames every 2 ms: 10,000 a second, which the daemons
			// read and reject while the shared test machine is busy. (A
			// line-rate flood can fill any socket buffer and delay the
			// peers' frames: no authentication stops a volume attack.)
			time.Sleep(2 * time.Millisecond)
		}
	}
	return sc.Err()
}

// attack runs the attacker in the client's namespace with frames.
func (c *cluster) attack(frames [][]byte) {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), "frames")
	var b strings.Builder
	for _, f := range frames {
		b.WriteString(hex.EncodeToString(f) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", c.ClientNode().NS, os.Args[0])
	cmd.Env = append(os.Environ(), sendEnv+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("attacker: %v\n%s", err, out)
	}
}

// captureFrames records the sealed frames the attacker sees for d.
func (c *cluster) captureFrames(d time.Duration) [][]byte {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), "captured")
	cmd := exec.Command("ip", "netns", "exec", c.ClientNode().NS, os.Args[0])
	cmd.Env = append(os.Environ(), captureEnv+"="+path+","+d.String())
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

// hwAddr is the node's eth0 MAC (macOf), parsed.
func hwAddr(t *testing.T, n *lab.Node) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(macOf(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// forged is a floatip frame from src with an auth block whose tag is
// random: what an attacker without the key can make. keyID is the real
// key's (it is on the wire in every sealed frame).
func forged(t *testing.T, p *arp.Packet, keyID uint32, sealed bool) []byte {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !sealed {
		return b
	}
	blk := make([]byte, auth.BlockLen)
	copy(blk, "FLAU")
	blk[4] = auth.Version
	bin.BigEndian.PutUint32(blk[6:10], keyID)
	bin.BigEndian.PutUint64(blk[10:18], uint64(time.Now().UnixNano()))
	rand.Read(blk[18:])
	return append(b, blk...)
}

func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	rand.Read(m)
	m[0] = m[0]&^1 | 2 // unicast, locally administered
	return m
}

// rssKB is the daemon's resident memory.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// hostileLab is a 3-node lab whose daemons read a configuration file
// (auth on or off), fence best-effort with a command that records its
// calls, and an attacker on the client's port, whose learning is off.
type hostileLab struct {
	*cluster
	fenced string
	macs   map[string]net.HardwareAddr
	keyID  uint32
}

func newHostileLab(t *testing.T, withAuth bool) *hostileLab {
	c := newLab(t, 3)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the fence command runs without capabilities
	h := &hostileLab{cluster: c, fenced: filepath.Join(dir, "fenced"), macs: map[string]net.HardwareAddr{}}
	fence := filepath.Join(dir, "fence")
	if err := os.WriteFile(fence, []byte("#!/bin/sh\necho \"$FLOATIP_FENCE_MAC $*\" >> "+h.fenced+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if withAuth {
		k, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.WriteKeyFile(keyFile, k, false); err != nil {
			t.Fatal(err)
		}
		h.keyID = uint32(k.ID())
	}
	if err := c.ClientNode().SetLearning(false); err != nil {
		t.Fatalf("attacker port: %v", err)
	}
	for _, n := range c.Nodes() {
		h.macs[n.Name] = hwAddr(t, n)
	}
	c.startAllWithConfig(func(n *lab.Node) string {
		extra := fmt.Sprintf("fencing:\n  policy: best-effort\n  command: [%s]\n", fence)
		if withAuth {
			extra += fmt.Sprintf("auth:\n  key_file: %s\n  sequence_file: %s\n", keyFile, filepath.Join(dir, "seq-"+n.Name))
		} else {
			extra += "on_foreign_claim: defend\n"
		}
		return nodeConfig(n, extra)
	})
	return h
}

func (h *hostileLab) statuses() map[string]control.Status {
	h.t.Helper()
	out := map[string]control.Status{}
	for _, n := range h.Nodes() {
		s, err := h.status(n)
		if err != nil {
			h.t.Fatalf("status of %s: %v", n.Name, err)
		}
		out[n.Name] = s
	}
	return out
}

// fromMAC counts the frames whose Ethernet source is mac.
func fromMAC(frames [][]byte, mac net.HardwareAddr) int {
	n := 0
	for _, f := range frames {
		if bytes.Equal(f[6:12], mac) {
			n++
		}
	}
	return n
}

// unchanged checks that no node changed state, n1 still holds alone and
// nobody was fenced.
func (h *hostileLab) unchanged(before, after map[string]control.Status) {
	h.t.Helper()
	for name, b := range before {
		a := after[name]
		if a.Groups[0].Counters.Transitions != b.Groups[0].Counters.Transitions || a.Groups[0].State != b.Groups[0].State {
			h.t.Errorf("%s changed state: %s (%d transitions) -> %s (%d transitions), reason %q", name,
				b.Groups[0].State, b.Groups[0].Counters.Transitions, a.Groups[0].State, a.Groups[0].Counters.Transitions, a.Groups[0].Reason)
		}
	}
	if hs, err := h.Holders(); err != nil || len(hs) != 1 || hs[0] != "n1" {
		h.t.Errorf("holders %v (%v), want n1 alone", hs, err)
	}
	if b, err := os.ReadFile(h.fenced); err == nil {
		h.t.Errorf("the fence command ran:\n%s", b)
	}
}

var vip = netip.MustParseAddr(testVIP)

// TestAuthAttacker: with auth on, an attacker on the LAN forges holder
// frames with a standby's MAC and priority 254, forges releases from the
// holder's MAC, replays genuine frames, edits one byte of genuine frames
// and floods 50,000 frames of fake peers. No node changes state, nobody is
// fenced, the holder's RSS grows by less than 5 MB, and every node's
// counters match what it was sent:
//   - spoofed_frames == the frames with that node's own MAC as source
//     (never verified: they are not its own transmissions);
//   - auth failures bad_tag == forged + edited frames with another source,
//     exactly, and replay == replayed frames with another source, exactly
//     (each batch is small and paced, so no socket drops one);
//   - the flood: bad_tag grows by at most 50,000 (the kernel may drop
//     frames from a full socket buffer; the count says how many arrived).
func TestAuthAttacker(t *testing.T) {
	h := newHostileLab(t, true)
	n1, n2 := h.macs["n1"], h.macs["n2"]
	genuine := h.captureFrames(3 * time.Second)
	if len(genuine) < 4 {
		t.Fatalf("captured %d sealed frames, want some", len(genuine))
	}
	if len(genuine) > 40 {
		genuine = genuine[:40]
	}
	var forgedFrames, edited [][]byte
	for range 20 {
		forgedFrames = append(forgedFrames,
			forged(t, arp.NewAnnouncement(n2, vip, &arp.Trailer{Kind: arp.KindAnnounce, Priority: 254, Flags: arp.FlagHolder}), h.keyID, true),
			forged(t, arp.NewProbe(n1, arp.Broadcast, vip, &arp.Trailer{Kind: arp.KindRelease, Priority: 200, Flags: arp.FlagPassive}), h.keyID, true))
	}
	for _, f := range genuine {
		e := bytes.Clone(f)
		e[arp.TrailerOffset+6] = 254 // the priority
		edited = append(edited, e)
	}
	before := h.statuses()
	for _, batch := range [][][]byte{forgedFrames, genuine, edited} {
		h.attack(batch)
	}
	wantBad := func(node string) uint64 {
		mac := h.macs[node]
		return uint64(len(forgedFrames) - fromMAC(forgedFrames, mac) + len(edited) - fromMAC(edited, mac))
	}
	wantReplay := func(node string) uint64 { return uint64(len(genuine) - fromMAC(genuine, h.macs[node])) }
	wantSpoofed := func(node string) uint64 {
		mac := h.macs[node]
		return uint64(fromMAC(forgedFrames, mac) + fromMAC(genuine, mac) + fromMAC(edited, mac))
	}
	var mid map[string]control.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		mid = h.statuses()
		done := true
		for name, s := range mid {
			b := before[name]
			if s.Auth.Failures["bad_tag"]-b.Auth.Failures["bad_tag"] < wantBad(name) ||
				s.Auth.Failures["replay"]-b.Auth.Failures["replay"] < wantReplay(name) ||
				s.SpoofedFrames-b.SpoofedFrames < wantSpoofed(name) {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, s := range mid {
		b := before[name]
		got := map[string]uint64{}
		for _, r := range auth.Reasons {
			got[string(r)] = s.Auth.Failures[string(r)] - b.Auth.Failures[string(r)]
		}
		if got["bad_tag"] != wantBad(name) || got["replay"] != wantReplay(name) || s.SpoofedFrames-b.SpoofedFrames != wantSpoofed(name) {
			t.Errorf("%s: auth failures %v, spoofed %d; want bad_tag %d, replay %d, spoofed %d", name, got,
				s.SpoofedFrames-b.SpoofedFrames, wantBad(name), wantReplay(name), wantSpoofed(name))
		}
		for _, r := range []string{"missing", "malformed", "unknown_key", "stale"} {
			if got[r] != 0 {
				t.Errorf("%s: %d frames failed with %s, want none", name, got[r], r)
			}
		}
	}
	h.unchanged(before, mid)

	// The flood.
	var flood [][]byte
	for i := range 50000 {
		flood = append(flood, forged(t, arp.NewProbe(randomMAC(), arp.Broadcast, vip,
			&arp.Trailer{Kind: arp.KindBeacon, Priority: uint8(1 + i%254), NodeID: uint32(i)}), h.keyID, true))
	}
	for i := range flood {
		copy(flood[i][6:12], flood[i][22:28]) // Ethernet source = ARP sender
	}
	rss0 := rssKB(t, before["n1"].PID)
	h.attack(flood)
	time.Sleep(time.Second) // let the daemons read what reached them; not an assertion
	after := h.statuses()
	rss1 := rssKB(t, before["n1"].PID)
	t.Logf("holder RSS %d kB before the flood, %d kB after", rss0, rss1)
	if rss1-rss0 >= 5*1024 {
		t.Errorf("the holder's RSS grew by %d kB during the flood, want < 5 MB", rss1-rss0)
	}
	for name, s := range after {
		n := s.Auth.Failures["bad_tag"] - mid[name].Auth.Failures["bad_tag"]
		t.Logf("%s: %d of the 50000 flood frames arrived and failed with bad_tag; replay table %d senders", name, n, s.Auth.Senders)
		if n == 0 || n > 50000 {
			t.Errorf("%s: bad_tag grew by %d during the flood of 50000, want 1..50000", name, n)
		}
		if s.Auth.Senders > 3 {
			t.Errorf("%s: %d senders in the replay table, want the 2 peers at most", name, s.Auth.Senders)
		}
	}
	h.unchanged(before, after)
}

// TestNoAuthAttacker: without auth (unsafe on a shared LAN), the rules
// that hold anyway: the holder does not yield to forged better claims (a
// standby's MAC, priority 254), releases from a node that is not the
// holder are ignored, a flood of 50,000 fake peers costs the holder less
// than 5 MB, and frames with a node's own MAC are counted as spoofing.
func TestNoAuthAttacker(t *testing.T) {
	h := newHostileLab(t, false)
	n2, n3 := h.macs["n2"], h.macs["n3"]
	var frames [][]byte
	for range 20 {
		frames = append(frames,
			forged(t, arp.NewAnnouncement(n2, vip, &arp.Trailer{Kind: arp.KindAnnounce, Priority: 254, Flags: arp.FlagHolder}), 0, false),
			forged(t, arp.NewProbe(n3, arp.Broadcast, vip, &arp.Trailer{Kind: arp.KindRelease, Priority: 100, Flags: arp.FlagPassive}), 0, false))
	}
	before := h.statuses()
	h.attack(frames)
	var flood [][]byte
	for i := range 50000 {
		f := forged(t, arp.NewProbe(randomMAC(), arp.Broadcast, vip, &arp.Trailer{Kind: arp.KindBeacon, Priority: uint8(1 + i%254), NodeID: uint32(i)}), 0, false)
		copy(f[6:12], f[22:28])
		flood = append(flood, f)
	}
	rss0 := rssKB(t, before["n1"].PID)
	h.attack(flood)
	var after map[string]control.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = h.statuses()
		if after["n2"].SpoofedFrames-before["n2"].SpoofedFrames >= 20 && after["n3"].SpoofedFrames-before["n3"].SpoofedFrames >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	rss1 := rssKB(t, before["n1"].PID)
	t.Logf("holder RSS %d kB before the flood, %d kB after", rss0, rss1)
	if rss1-rss0 >= 5*1024 {
		t.Errorf("the holder's RSS grew by %d kB during the flood, want < 5 MB", rss1-rss0)
	}
	for _, name := range []string{"n2", "n3"} {
		if d := after[name].SpoofedFrames - before[name].SpoofedFrames; d != 20 {
			t.Errorf("%s: %d spoofed frames counted, want the 20 sent with its MAC", name, d)
		}
	}
	// Every forged release is counted as ignored (the log says so at most
	// every few seconds).
	if d := after["n2"].Groups[0].Counters.Ignored - before["n2"].Groups[0].Counters.Ignored; d != 20 {
		t.Errorf("n2 counted %d ignored releases, want the 20 sent from n3's MAC (not the holder's)", d)
	}
	if d := after["n1"].Groups[0].Counters.Unconfirmed + after["n1"].Groups[0].Counters.Throttled - before["n1"].Groups[0].Counters.Unconfirmed - before["n1"].Groups[0].Counters.Throttled; d == 0 {
		t.Errorf("n1 counted no unconfirmed or throttled claim: the forged better claims did not reach the yield rule")
	}
	h.unchanged(before, after)
}

// TestAuthRollout: the README's rollout, first step. n1 has auth with
// require: false, n2 none yet: they form one cluster (one holder, n2
// standby), n1 counts n2's unsealed floatip frames as missing, and when
// n1 stops, n2 obeys its sealed release and takes over.
func TestAuthRollout(t *testing.T) {
	c := newLab(t, 2)
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	k, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WriteKeyFile(key, k, false); err != nil {
		t.Fatal(err)
	}
	authConf := func(require bool) string {
		return fmt.Sprintf("auth:\n  key_file: %s\n  require: %v\n  sequence_file: %s\n", key, require, filepath.Join(dir, "seq-n1"))
	}
	c.startAllWithConfig(func(n *lab.Node) string {
		if n.Index == 1 {
			return nodeConfig(n, authConf(false))
		}
		return nodeConfig(n, "")
	})
	n1, n2 := c.Node(1), c.Node(2)
	s := c.waitStatus(n1, func(s control.Status) bool { return s.Auth != nil && s.Auth.Failures["missing"] > 0 }, "n1 to count n2's unsealed frames")
	if s.Auth.Require || len(s.Auth.KeyIDs) != 1 || s.Auth.KeyIDs[0] != k.ID().String() {
		t.Errorf("n1 auth status %+v, want require false and key %s", s.Auth, k.ID())
	}
	c.holdsFor([]string{"n1"}, time.Second, "mixed cluster in rollout mode")
	if err := c.daemons["n1"].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitHolders(lab.HeldBy("n2"), 3*time.Second, "n2 to take over after n1's sealed release")
	line := c.waitState("n2", "candidate", time.Second)
	if !strings.Contains(line.Str("reason"), "released") {
		t.Errorf("n2 became candidate with reason %q, want n1's release obeyed", line.Str("reason"))
	}
	if s, err := c.status(n2); err != nil || s.Auth != nil {
		t.Errorf("n2 (no auth) status auth %+v, err %v: want none", s.Auth, err)
	}
}
