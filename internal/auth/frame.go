package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"sync"
	"time"
)

// Auth block layout, appended at the end of a frame.
const (
	// BlockLen is the length of the auth block Seal appends.
	BlockLen = 34
	// TagLen is the length of the truncated HMAC-SHA-256 tag (128 bits).
	TagLen = 16
	// Version is the auth block version this package writes and reads.
	Version = 1

	offMagic    = 0
	offVersion  = 4
	offReserved = 5
	offKeyID    = 6
	offSeq      = 10
	offTag      = 18
)

var blockMagic = [4]byte{'F', 'L', 'A', 'U'}

// Reason says why Open rejected a frame; its value is a metric label.
type Reason string

// Reasons for rejecting a frame.
const (
	// ReasonMissing: the frame carries no auth block (an ordinary host, the
	// kernel's own ARP reply, a floatip node without auth, or a frame
	// truncated so that the block's magic is gone).
	ReasonMissing Reason = "missing"
	// ReasonMalformed: an auth block of an unknown version or with
	// reserved bits set.
	ReasonMalformed Reason = "malformed"
	// ReasonUnknownKey: the key id is not in the ring.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadTag: the tag does not match: forged, edited or damaged.
	ReasonBadTag Reason = "bad_tag"
	// ReasonReplay: the sequence number was accepted before from this
	// sender and key, or is older than the numbers kept for it (see
	// ReorderWindow).
	ReasonReplay Reason = "replay"
	// ReasonStale: a sender this node has no entry for sent a number older
	// than this node's clock minus the window: a replay of an old frame, or
	// a sender whose clock is far behind.
	ReasonStale Reason = "stale"
)

// Reasons lists every Reason, for registering metric labels up front.
var Reasons = []Reason{ReasonMissing, ReasonMalformed, ReasonUnknownKey, ReasonBadTag, ReasonReplay, ReasonStale}

// Error is the error Open returns for a rejected frame.
type Error struct {
	Reason Reason
	// Sender is the sender passed to Open.
	Sender [6]byte
	// KeyID and Seq are from the frame (zero when it had no block).
	KeyID KeyID
	Seq   uint64
	// Last is the highest number accepted from this sender (replay), or
	// this node's clock in Unix nanoseconds (stale).
	Last uint64
}

func (e *Error) Error() string {
	from := net.HardwareAddr(e.Sender[:]).String()
	switch e.Reason {
	case ReasonMissing:
		return "auth: frame from " + from + " has no auth block"
	case ReasonMalformed:
		return "auth: frame from " + from + " has a malformed auth block"
	case ReasonUnknownKey:
		return fmt.Sprintf("auth: frame from %s is signed with unknown key %v", from, e.KeyID)
	case ReasonBadTag:
		return fmt.Sprintf("auth: frame from %s (key %v) has a bad tag: forged or altered", from, e.KeyID)
	case ReasonReplay:
		return fmt.Sprintf("auth: frame from %s (key %v) replays sequence %d, or is older than the last ones accepted (highest %d)", from, e.KeyID, e.Seq, e.Last)
	case ReasonStale:
		behind := time.Duration(e.Last - e.Seq)
		return fmt.Sprintf("auth: frame from %s (key %v) is stale: sequence %d is %v older than this node's clock, beyond the replay window (a replay, or the sender's clock is behind)", from, e.KeyID, e.Seq, behind.Round(time.Second))
	}
	return "auth: frame from " + from + " rejected: " + string(e.Reason)
}

// ReasonOf returns the Reason of an error returned by Open, or "" for any
// other error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Info describes an accepted frame.
type Info struct {
	KeyID KeyID
	// KeyIndex is the key's position in the ring: 0 for the signing key,
	// more for an older key still accepted during a rotation.
	KeyIndex int
	Seq      uint64
}

// macState is one key's reusable HMAC, guarded by its owner's mutex.
type macState struct {
	id  KeyID
	mac hash.Hash
}

func newMacs(r *KeyRing) []macState {
	m := make([]macState, len(r.keys))
	for i, k := range r.keys {
		m[i] = macState{id: k.id, mac: hmac.New(sha256.New, k.secret[:])}
	}
	return m
}

// Signer appends auth blocks with the ring's first key. Safe for
// concurrent use.
type Signer struct {
	mu  sync.Mutex
	mac macState
	seq Sequencer
	sum [sha256.Size]byte
}

// NewSigner returns a Signer that signs with r's first key and numbers
// frames from seq.
func NewSigner(r *KeyRing, seq Sequencer) *Signer {
	return &Signer{mac: newMacs(r)[0], seq: seq}
}

// KeyID returns the id of the signing key.
func (s *Signer) KeyID() KeyID { return s.mac.id }

// Seal appends an auth block to frame, as append does (the result may
// share frame's array), and returns the sealed frame. It fails only when no
// sequence number can be had (the state file cannot be written); the frame
// must then not be sent.
func (s *Signer) Seal(frame []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.seq.Next()
	if err != nil {
		return nil, err
	}
	var hdr [offTag]byte
	copy(hdr[offMagic:], blockMagic[:])
	hdr[offVersion] = Version
	binary.BigEndian.PutUint32(hdr[offKeyID:], uint32(s.mac.id))
	binary.BigEndian.PutUint64(hdr[offSeq:], n)
	out := append(frame, hdr[:]...)
	s.mac.mac.Reset()
	s.mac.mac.Write(out)
	sum := s.mac.mac.Sum(s.sum[:0])
	return append(out, sum[:TagLen]...), nil
}

// VerifierOptions tune a Verifier; the zero value is the default.
type VerifierOptions struct {
	// MaxSenders bounds the replay table (default 4096 entries of about
	// 100 bytes each).
	MaxSenders int
	// Window: a sender without an entry is accepted only with a sequence
	// number no older than the clock minus Window (default 5 minutes).
	// Negative disables the check (then a replay to a receiver that has no
	// entry for its sender is accepted once).
	Window time.Duration
	// TTL: an entry with no accepted frame for TTL is forgotten (default
	// 3 x Window, never less than Window).
	TTL time.Duration
	// Now is the wall clock; time.Now when nil.
	Now func() time.Time
}

// Default verifier settings.
const (
	DefaultMaxSenders = 4096
	DefaultWindow     = 5 * time.Minute
)

type senderKey struct {
	mac [6]byte
	id  KeyID
}

// ReorderWindow is how many of a sender's highest accepted sequence numbers
// an entry keeps. A frame is accepted if its number is above the lowest of
// them and not one of them, so frames that the sender's goroutines sealed
// in one order and sent in another (up to ReorderWindow-1 places) are not
// mistaken for replays, while every number ever accepted is still refused:
// anything not kept is below the lowest kept.
const ReorderWindow = 8

type entry struct {
	key  senderKey
	seqs [ReorderWindow]uint64 // highest accepted numbers, unordered; 0 = unused
	seen time.Time             // when the last frame was accepted
}

// min returns the lowest kept number, with 0 for an unused slot.
func (e *entry) min() (uint64, int) {
	lo, at := e.seqs[0], 0
	for i, s := range e.seqs[1:] {
		if s < lo {
			lo, at = s, i+1
		}
	}
	return lo, at
}

// last returns the highest accepted number.
func (e *entry) last() uint64 {
	hi := e.seqs[0]
	for _, s := range e.seqs[1:] {
		hi = max(hi, s)
	}
	return hi
}

// accept records seq if it is new and above the lowest kept number. The
// first number of an entry is kept in every slot: nothing below it, and
// nothing equal to it, is accepted after.
func (e *entry) accept(seq uint64) bool {
	lo, at := e.min()
	if seq <= lo {
		return false
	}
	for _, s := range e.seqs {
		if s == seq {
			return false
		}
	}
	e.seqs[at] = seq
	return true
}

// VerifierStats counts the replay table's churn, for metrics.
type VerifierStats struct {
	Senders int    // entries now
	Evicted uint64 // entries dropped because the table was full
	Expired uint64 // entries dropped after TTL without a frame
}

// Verifier checks sealed frames. Safe for concurrent use.
type Verifier struct {
	mu      sync.Mutex
	macs    []macState
	max     int
	window  time.Duration
	ttl     time.Duration
	now     func() time.Time
	table   map[senderKey]*list.Element
	lru     *list.List // of *entry, most recently accepted first
	evicted uint64
	expired uint64
	sum     [sha256.Size]byte
}

// NewVerifier returns a Verifier accepting frames signed with any key of r.
func NewVerifier(r *KeyRing, o VerifierOptions) *Verifier {
	v := &Verifier{
		macs:   newMacs(r),
		max:    o.MaxSenders,
		window: o.Window,
		ttl:    o.TTL,
		now:    o.Now,
		table:  make(map[senderKey]*list.Element),
		lru:    list.New(),
	}
	if v.max <= 0 {
		v.max = DefaultMaxSenders
	}
	if v.window == 0 {
		v.window = DefaultWindow
	}
	if v.ttl <= 0 {
		v.ttl = 3 * DefaultWindow
		if v.window > 0 {
			v.ttl = 3 * v.window
		}
	}
	if v.window > 0 && v.ttl < v.window {
		// An entry forgotten sooner than the window would let a
		// replay of its sender's last frames through.
		v.ttl = v.window
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v
}

// SetRing replaces the accepted keys (a reload during a rotation) and keeps
// the replay table, so frames accepted before cannot be replayed after.
func (v *Verifier) SetRing(r *KeyRing) {
	m := newMacs(r)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.macs = m
}

// Open checks a sealed frame from sender, which must be an address the tag
// covers (the Ethernet source, frame[6:12]), and returns the frame without
// its auth block (aliasing frame). The order of the checks matters: no
// state is created or changed unless the tag is good.
func (v *Verifier) Open(frame []byte, sender [6]byte) ([]byte, Info, error) {
	n := len(frame)
	if n < BlockLen || [4]byte(frame[n-BlockLen:n-BlockLen+4]) != blockMagic {
		return nil, Info{}, &Error{Reason: ReasonMissing, Sender: sender}
	}
	b := frame[n-BlockLen:]
	if b[offVersion] != Version || b[offReserved] != 0 {
		return nil, Info{}, &Error{Reason: ReasonMalformed, Sender: sender}
	}
	id := KeyID(binary.BigEndian.Uint32(b[offKeyID:]))
	seq := binary.BigEndian.Uint64(b[offSeq:])

	v.mu.Lock()
	defer v.mu.Unlock()
	idx := -1
	for i := range v.macs {
		if v.macs[i].id == id {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil, Info{}, &Error{Reason: ReasonUnknownKey, Sender: sender, KeyID: id, Seq: seq}
	}
	m := v.macs[idx].mac
	m.Reset()
	m.Write(frame[:n-TagLen])
	if !hmac.Equal(m.Sum(v.sum[:0])[:TagLen], b[offTag:]) {
		return nil, Info{}, &Error{Reason: ReasonBadTag, Sender: sender, KeyID: id, Seq: seq}
	}

	// Authenticated: from here on the frame may touch state.
	now := v.now()
	sk := senderKey{mac: sender, id: id}
	if el, ok := v.table[sk]; ok {
		e := el.Value.(*entry)
		if now.Sub(e.seen) <= v.ttl {
			if !e.accept(seq) {
				return nil, Info{}, &Error{Reason: ReasonReplay, Sender: sender, KeyID: id, Seq: seq, Last: e.last()}
			}
			e.seen = now
			v.lru.MoveToFront(el)
			return frame[:n-BlockLen], Info{KeyID: id, KeyIndex: idx, Seq: seq}, nil
		}
		v.lru.Remove(el)
		delete(v.table, sk)
		v.expired++
	}
	if v.window > 0 {
		if floor := now.Add(-v.window).UnixNano(); floor > 0 && seq < uint64(floor) {
			return nil, Info{}, &Error{Reason: ReasonStale, Sender: sender, KeyID: id, Seq: seq, Last: uint64(now.UnixNano())}
		}
	}
	v.expireOldest(now)
	if v.lru.Len() >= v.max {
		old := v.lru.Back()
		v.lru.Remove(old)
		delete(v.table, old.Value.(*entry).key)
		v.evicted++
	}
	e := &entry{key: sk, seen: now}
	for i := range e.seqs {
		e.seqs[i] = seq
	}
	v.table[sk] = v.lru.PushFront(e)
	return frame[:n-BlockLen], Info{KeyID: id, KeyIndex: idx, Seq: seq}, nil
}

// expireOldest drops expired entries from the back of the LRU list (the
// least recently accepted come first). Caller holds mu.
func (v *Verifier) expireOldest(now time.Time) {
	for el := v.lru.Back(); el != nil; el = v.lru.Back() {
		e := el.Value.(*entry)
		if now.Sub(e.seen) <= v.ttl {
			return
		}
		v.lru.Remove(el)
		delete(v.table, e.key)
		v.expired++
	}
}

// Stats returns the replay table's size and churn.
func (v *Verifier) Stats() VerifierStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return VerifierStats{Senders: v.lru.Len(), Evicted: v.evicted, Expired: v.expired}
}
