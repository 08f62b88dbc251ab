package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable wall clock shared by a Signer's Sequence and a
// Verifier in a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixedSeq hands out the numbers it is given, for tests that need exact
// sequence numbers.
type fixedSeq struct{ n uint64 }

func (f *fixedSeq) Next() (uint64, error) { return f.n, nil }

func testKey(t testing.TB, b byte) Key {
	t.Helper()
	var s [KeySize]byte
	for i := range s {
		s[i] = b + byte(i)
	}
	return NewKey(s)
}

func ring(t testing.TB, keys ...Key) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var srcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x0a}

// arpFrame returns a 54-byte gratuitous ARP from mac for 198.18.0.10 with a
// floatip trailer, as the codec writes it before padding.
func arpFrame(mac [6]byte) []byte {
	b := make([]byte, 0, 54+BlockLen)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, mac[:]...)
	b = append(b, 0x08, 0x06)                                         // ARP
	b = append(b, 0, 1, 0x08, 0, 6, 4, 0, 1)                          // Ethernet/IPv4, request
	b = append(b, mac[:]...)                                          // sender MAC
	b = append(b, 198, 18, 0, 10)                                     // sender IP
	b = append(b, 0, 0, 0, 0, 0, 0)                                   // target MAC
	b = append(b, 198, 18, 0, 10)                                     // target IP
	b = append(b, 'F', 'L', 'I', 'P', 1, 2, 200, 1, 0, 0, 0xca, 0xfe) // trailer
	return b
}

// sender returns the Ethernet source of a frame, as the daemon passes it.
func sender(frame []byte) [6]byte {
	var m [6]byte
	if len(frame) >= 12 {
		copy(m[:], frame[6:12])
	}
	return m
}

type rig struct {
	clk *clock
	key Key
	sig *Signer
	ver *Verifier
}

func newRig(t testing.TB, o VerifierOptions) *rig {
	t.Helper()
	clk := newClock()
	k := testKey(t, 1)
	seq, err := OpenSequence("", SequenceOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	o.Now = clk.Now
	return &rig{clk: clk, key: k, sig: NewSigner(ring(t, k), seq), ver: NewVerifier(ring(t, k), o)}
}

func (r *rig) seal(t testing.TB, frame []byte) []byte {
	t.Helper()
	out, err := r.sig.Seal(frame)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantReason(t *testing.T, err error, want Reason) {
	t.Helper()
	if got := ReasonOf(err); got != want {
		t.Fatalf("Open: reason %q (err %v), want %q", got, err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	frame := arpFrame(srcMAC)
	orig := bytes.Clone(frame)
	sealed := r.seal(t, frame)
	if len(sealed) != len(orig)+BlockLen {
		t.Fatalf("sealed length %d, want %d", len(sealed), len(orig)+BlockLen)
	}
	if !bytes.Equal(sealed[:len(orig)], orig) {
		t.Fatal("Seal changed the frame's bytes")
	}
	b := sealed[len(orig):]
	if string(b[0:4]) != "FLAU" || b[4] != Version || b[5] != 0 {
		t.Errorf("block header % x", b[:6])
	}
	if id := KeyID(binary.BigEndian.Uint32(b[6:10])); id != r.key.ID() {
		t.Errorf("key id %v, want %v", id, r.key.ID())
	}
	seq := binary.BigEndian.Uint64(b[10:18])
	if want := uint64(r.clk.Now().UnixNano()); seq != want {
		t.Errorf("sequence %d, want the clock %d", seq, want)
	}
	m := hmac.New(sha256.New, r.key.secret[:])
	m.Write(sealed[:len(sealed)-TagLen])
	if !bytes.Equal(m.Sum(nil)[:TagLen], b[18:]) {
		t.Error("tag is not HMAC-SHA-256 over everything before it, truncated to 16 bytes")
	}

	payload, info, err := r.ver.Open(sealed, sender(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, orig) {
		t.Errorf("payload % x, want % x", payload, orig)
	}
	if info != (Info{KeyID: r.key.ID(), KeyIndex: 0, Seq: seq}) {
		t.Errorf("info %+v", info)
	}
	if s := r.ver.Stats(); s.Senders != 1 {
		t.Errorf("senders %d, want 1", s.Senders)
	}
}

// TestTamperEveryByte changes each byte of a sealed frame in turn: every
// change must be rejected, for the reason that part of the frame implies,
// and must leave no state behind.
func TestTamperEveryByte(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	sealed := r.seal(t, arpFrame(srcMAC))
	blk := len(sealed) - BlockLen
	for i := range sealed {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			f := bytes.Clone(sealed)
			f[i] ^= x
			_, _, err := r.ver.Open(f, sender(f))
			want := ReasonBadTag
			switch {
			case i >= blk && i < blk+4:
				want = ReasonMissing
			case i == blk+4 || i == blk+5:
				want = ReasonMalformed
			case i >= blk+6 && i < blk+10:
				want = ReasonUnknownKey
			}
			if got := ReasonOf(err); got != want {
				t.Errorf("byte %d ^ %#x: reason %q (err %v), want %q", i, x, got, err, want)
			}
		}
	}
	if s := r.ver.Stats(); s.Senders != 0 {
		t.Errorf("tampered frames created %d table entries, want 0", s.Senders)
	}
	// The genuine frame is still accepted afterwards: nothing was recorded.
	if _, _, err := r.ver.Open(sealed, sender(sealed)); err != nil {
		t.Errorf("genuine frame after the tampered ones: %v", err)
	}
}

// TestTruncatedAndExtended: a frame cut anywhere, or with bytes added after
// the block, is rejected and leaves no state.
func TestTruncatedAndExtended(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	sealed := r.seal(t, arpFrame(srcMAC))
	for n := 0; n < len(sealed); n++ {
		_, _, err := r.ver.Open(sealed[:n], srcMAC)
		if err == nil {
			t.Fatalf("frame truncated to %d bytes accepted", n)
		}
		if ReasonOf(err) == "" {
			t.Fatalf("truncated to %d: error without reason: %v", n, err)
		}
	}
	// Padding added after the block hides it.
	_, _, err := r.ver.Open(append(bytes.Clone(sealed), 0, 0, 0, 0), srcMAC)
	wantReason(t, err, ReasonMissing)
	// A 60-byte frame from an ordinary host or the kernel carries none.
	plain := append(arpFrame(srcMAC)[:42], make([]byte, 18)...)
	_, _, err = r.ver.Open(plain, srcMAC)
	wantReason(t, err, ReasonMissing)
	if s := r.ver.Stats(); s.Senders != 0 {
		t.Errorf("rejected frames created %d table entries", s.Senders)
	}
}

func TestWrongKey(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	other := testKey(t, 100)

	// A node with another key: its id is unknown here.
	seq, _ := OpenSequence("", SequenceOptions{Now: r.clk.Now})
	f, err := NewSigner(ring(t, other), seq).Seal(arpFrame(srcMAC))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.ver.Open(f, srcMAC)
	wantReason(t, err, ReasonUnknownKey)

	// An attacker who writes our key id but signs with its own key.
	forger := NewSigner(ring(t, other), seq)
	forger.mac.id = r.key.ID()
	f, err = forger.Seal(arpFrame(srcMAC))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.ver.Open(f, srcMAC)
	wantReason(t, err, ReasonBadTag)
	if s := r.ver.Stats(); s.Senders != 0 {
		t.Errorf("senders %d, want 0", s.Senders)
	}
}

func TestReplayAndOlderSequence(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	fs := &fixedSeq{}
	sig := NewSigner(ring(t, r.key), fs)
	base := uint64(r.clk.Now().UnixNano())
	seal := func(n uint64) []byte {
		fs.n = base + n
		f, err := sig.Seal(arpFrame(srcMAC))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	open := func(f []byte) error {
		_, _, err := r.ver.Open(f, srcMAC)
		return err
	}
	f10, f11, f12, f9 := seal(10), seal(11), seal(12), seal(9)

	if err := open(f10); err != nil {
		t.Fatal(err)
	}
	// The same frame again.
	wantReason(t, open(f10), ReasonReplay)
	// Older than the first number accepted from this sender.
	wantReason(t, open(f9), ReasonReplay)
	// Reordered by the sender's goroutines: 12 before 11 is fine...
	if err := open(f12); err != nil {
		t.Fatal(err)
	}
	if err := open(f11); err != nil {
		t.Fatalf("frame reordered by one place rejected: %v", err)
	}
	// ...but each only once.
	wantReason(t, open(f11), ReasonReplay)
	wantReason(t, open(f12), ReasonReplay)

	// Push ReorderWindow newer numbers: 11 and 12 fall out of the kept set
	// and, with every number below the lowest kept, stay refused; so does
	// 13, a number never accepted but older than all kept.
	f13 := seal(13)
	for n := uint64(100); n < 100+ReorderWindow; n++ {
		if err := open(seal(n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range [][]byte{f10, f11, f12, f13} {
		wantReason(t, open(f), ReasonReplay)
	}
	// The same frame reported from another sender is another table entry
	// (and would be refused as stale if old): the caller must pass the
	// Ethernet source, which the tag covers.
	if s := r.ver.Stats(); s.Senders != 1 {
		t.Errorf("senders %d, want 1", s.Senders)
	}
}

func TestStaleNewSender(t *testing.T) {
	r := newRig(t, VerifierOptions{Window: 5 * time.Minute})
	fs := &fixedSeq{}
	sig := NewSigner(ring(t, r.key), fs)
	now := r.clk.Now()

	fs.n = uint64(now.Add(-6 * time.Minute).UnixNano())
	old, _ := sig.Seal(arpFrame(srcMAC))
	_, _, err := r.ver.Open(old, srcMAC)
	wantReason(t, err, ReasonStale)
	if !strings.Contains(err.Error(), "6m0s older") {
		t.Errorf("error %q does not say how old", err)
	}

	fs.n = uint64(now.Add(-4 * time.Minute).UnixNano())
	recent, _ := sig.Seal(arpFrame(srcMAC))
	if _, _, err := r.ver.Open(recent, srcMAC); err != nil {
		t.Errorf("frame 4 minutes old from a new sender: %v", err)
	}
	// A clock ahead of ours is fine.
	other := [6]byte{2, 0, 0, 0, 0, 0x0b}
	fs.n = uint64(now.Add(time.Hour).UnixNano())
	ahead, _ := sig.Seal(arpFrame(other))
	if _, _, err := r.ver.Open(ahead, other); err != nil {
		t.Errorf("frame from a clock an hour ahead: %v", err)
	}
}

// TestExpiredEntryNoReplay: once a sender's entry expires, its old frames
// are older than the window and still refused.
func TestExpiredEntryNoReplay(t *testing.T) {
	r := newRig(t, VerifierOptions{Window: 5 * time.Minute, TTL: 15 * time.Minute})
	f := r.seal(t, arpFrame(srcMAC))
	if _, _, err := r.ver.Open(f, srcMAC); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(16 * time.Minute)
	_, _, err := r.ver.Open(f, srcMAC)
	wantReason(t, err, ReasonStale)
	if s := r.ver.Stats(); s.Expired != 1 || s.Senders != 0 {
		t.Errorf("stats %+v, want 1 expired, 0 senders", s)
	}
	// The sender's next frame makes a new entry.
	if _, _, err := r.ver.Open(r.seal(t, arpFrame(srcMAC)), srcMAC); err != nil {
		t.Fatal(err)
	}
	// A TTL below the window is raised to it.
	v := NewVerifier(ring(t, r.key), VerifierOptions{Window: time.Hour, TTL: time.Minute})
	if v.ttl != time.Hour {
		t.Errorf("ttl %v, want raised to the window", v.ttl)
	}
}

// TestEvictedEntryNoReplay: a full table evicts the least recently used
// sender; a replay of that sender's frame older than the window is still
// refused by the clock floor.
func TestEvictedEntryNoReplay(t *testing.T) {
	r := newRig(t, VerifierOptions{MaxSenders: 2, Window: 5 * time.Minute})
	a, b, c := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}, [6]byte{2, 0, 0, 0, 0, 3}
	fa := r.seal(t, arpFrame(a))
	if _, _, err := r.ver.Open(fa, a); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(6 * time.Minute)
	for _, m := range [][6]byte{b, c} {
		if _, _, err := r.ver.Open(r.seal(t, arpFrame(m)), m); err != nil {
			t.Fatal(err)
		}
	}
	if s := r.ver.Stats(); s.Evicted != 1 || s.Senders != 2 {
		t.Fatalf("stats %+v, want 1 evicted, 2 senders", s)
	}
	_, _, err := r.ver.Open(fa, a)
	wantReason(t, err, ReasonStale)
}

func TestRotation(t *testing.T) {
	clk := newClock()
	oldK, newK := testKey(t, 1), testKey(t, 50)
	mkSigner := func(r *KeyRing) *Signer {
		seq, _ := OpenSequence("", SequenceOptions{Now: clk.Now})
		return NewSigner(r, seq)
	}
	oldNode := mkSigner(ring(t, oldK))
	rotated := mkSigner(ring(t, newK, oldK))
	if rotated.KeyID() != newK.ID() {
		t.Fatalf("rotated node signs with %v, want the first key %v", rotated.KeyID(), newK.ID())
	}
	v := NewVerifier(ring(t, newK, oldK), VerifierOptions{Now: clk.Now})
	a, b := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}

	f, _ := oldNode.Seal(arpFrame(a))
	_, info, err := v.Open(f, a)
	if err != nil || info.KeyID != oldK.ID() || info.KeyIndex != 1 {
		t.Errorf("old key frame: info %+v err %v, want accepted with key index 1", info, err)
	}
	clk.Add(time.Millisecond)
	g, _ := rotated.Seal(arpFrame(b))
	_, info, err = v.Open(g, b)
	if err != nil || info.KeyID != newK.ID() || info.KeyIndex != 0 {
		t.Errorf("new key frame: info %+v err %v, want accepted with key index 0", info, err)
	}
	// A node not yet given the new key cannot read the new frames.
	_, _, err = NewVerifier(ring(t, oldK), VerifierOptions{Now: clk.Now}).Open(g, b)
	wantReason(t, err, ReasonUnknownKey)

	// Dropping the old key at reload keeps the replay table.
	v.SetRing(ring(t, newK))
	_, _, err = v.Open(g, b)
	wantReason(t, err, ReasonReplay)
	clk.Add(time.Millisecond)
	f2, _ := oldNode.Seal(arpFrame(a))
	_, _, err = v.Open(f2, a)
	wantReason(t, err, ReasonUnknownKey)
}

// TestFloodBounded: 50,000 frames from random MACs cost no table entries
// when their tags are bad, and at most MaxSenders when they are genuine
// (only a key holder can make those).
func TestFloodBounded(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	rng := rand.New(rand.NewPCG(1, 2))
	tmpl := r.seal(t, arpFrame(srcMAC))
	const flood = 50000
	for i := 0; i < flood; i++ {
		f := bytes.Clone(tmpl)
		var mac [6]byte
		binary.BigEndian.PutUint64(f[len(f)-TagLen-8:], rng.Uint64()) // random sequence
		for j := range mac {
			mac[j] = byte(rng.Uint32())
		}
		copy(f[6:12], mac[:])
		copy(f[22:28], mac[:])
		for j := len(f) - TagLen; j < len(f); j++ {
			f[j] = byte(rng.Uint32())
		}
		if _, _, err := r.ver.Open(f, mac); ReasonOf(err) != ReasonBadTag {
			t.Fatalf("forged frame %d: %v, want bad_tag", i, err)
		}
	}
	if s := r.ver.Stats(); s.Senders != 0 || len(r.ver.table) != 0 {
		t.Fatalf("after %d forged frames: %+v, table %d entries; want none", flood, s, len(r.ver.table))
	}

	for i := 0; i < flood; i++ {
		var mac [6]byte
		binary.BigEndian.PutUint32(mac[2:], uint32(i))
		mac[0] = 2
		if _, _, err := r.ver.Open(r.seal(t, arpFrame(mac)), mac); err != nil {
			t.Fatal(err)
		}
		r.clk.Add(time.Microsecond)
	}
	s := r.ver.Stats()
	if s.Senders != DefaultMaxSenders || len(r.ver.table) != DefaultMaxSenders || r.ver.lru.Len() != DefaultMaxSenders {
		t.Errorf("after %d genuine senders: %+v (map %d, list %d), want %d", flood, s, len(r.ver.table), r.ver.lru.Len(), DefaultMaxSenders)
	}
	if s.Evicted != flood-DefaultMaxSenders {
		t.Errorf("evicted %d, want %d", s.Evicted, flood-DefaultMaxSenders)
	}
}

// TestOpenBadTagAllocs: a forged frame costs at most the error value; the
// HMAC state is reused.
func TestOpenBadTagAllocs(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	f := r.seal(t, arpFrame(srcMAC))
	f[20] ^= 1
	allocs := testing.AllocsPerRun(1000, func() { r.ver.Open(f, srcMAC) })
	if allocs > 1 {
		t.Errorf("Open of a forged frame allocates %v times, want at most 1 (the error)", allocs)
	}
}

func TestConcurrentSealOpen(t *testing.T) {
	r := newRig(t, VerifierOptions{})
	var wg sync.WaitGroup
	frames := make(chan []byte, 400)
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < 100; i++ {
				f, err := r.sig.Seal(arpFrame([6]byte{2, 0, 0, 0, 0, byte(g)}))
				if err != nil {
					t.Error(err)
					return
				}
				frames <- f
			}
		})
	}
	wg.Wait()
	close(frames)
	seen := map[uint64]bool{}
	for f := range frames {
		_, info, err := r.ver.Open(f, sender(f))
		if err != nil {
			t.Fatal(err)
		}
		if seen[info.Seq] {
			t.Fatalf("sequence %d handed out twice", info.Seq)
		}
		seen[info.Seq] = true
	}
}

func TestReasonOf(t *testing.T) {
	if ReasonOf(nil) != "" || ReasonOf(bytes.ErrTooLarge) != "" {
		t.Error("ReasonOf of a non-auth error is not empty")
	}
	if len(Reasons) != 6 {
		t.Errorf("Reasons has %d entries", len(Reasons))
	}
}
