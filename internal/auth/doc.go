// Package auth authenticates floatip's raw Ethernet frames: a shared key
// (or a ring of keys, for rotation), an auth block appended to each frame
// with a key id, a sequence number and a truncated HMAC-SHA-256 tag over
// the whole frame, and a receiver that rejects forged, edited, replayed
// and old frames while keeping bounded state.
//
// # Frame layout
//
// Seal appends a BlockLen-byte (34) block to the end of the frame it is
// given; Open finds it at the end of the frame it receives:
//
//	[0:4]   magic "FLAU"
//	[4]     version (1)
//	[5]     reserved, must be 0
//	[6:10]  key id (big endian)
//	[10:18] sequence number (big endian uint64)
//	[18:34] tag: the first 16 bytes of HMAC-SHA-256(key, every byte of the
//	        frame before the tag), so the Ethernet header, the ARP payload,
//	        the floatip trailer, any padding and the block's own header are
//	        all covered.
//
// An ARP frame of 54 bytes (Ethernet header, ARP payload, floatip trailer)
// becomes 88 bytes, longer than the 60-byte minimum, so nothing pads it
// and the block really is the last thing in the frame. Linux's arp_rcv only
// checks that the 28-byte ARP payload is present and ignores what follows,
// so ordinary hosts process the ARP part as before (see docs/auth.md for the
// namespace test that shows it).
//
// # Keys
//
// A key is 32 random bytes. Its id is derived from it, the first 4 bytes
// of SHA-256(key), so an id can never name the wrong key; the key file
// states the id too, and LoadKeyFile checks that it matches, which catches a
// key mangled in copying. A KeyRing holds several keys: Signer sends with
// the first, Verifier accepts any of them, so a rotation is: add the new key
// second everywhere, then first everywhere, then drop the old one.
//
// # Sequence numbers
//
// A sequence number never repeats for a key and node, across restarts too:
// Sequence hands out max(last+1, wall clock in Unix nanoseconds), and
// before it hands out any number above its durable high-water mark it
// writes a new mark (the number plus a reserve of one minute of clock) to
// its state file with fsync and rename. After a restart it starts above the
// mark, so a clock set back cannot make it reuse a number; following the
// wall clock means that a node that lost its state file still starts above
// what it sent before (unless its clock also went back), and that numbers
// from different nodes are comparable, which the receiver's window uses.
//
// # Receiving
//
// Verifier.Open checks, in this order and creating no state until the tag
// is good: the block is present and well formed, the key id is in the
// ring, the tag matches (constant time). Then the sequence number must be
// strictly greater than the last one accepted from that (sender MAC, key
// id). A sender with no entry (never seen, expired, or evicted) is accepted
// only if its number is no older than the receiver's clock minus Window
// (default 5 minutes), so a frame recorded earlier cannot be replayed to a
// receiver that forgot its sender. Entries expire after TTL (at least
// Window, default 15 minutes) without an accepted frame, and the table holds
// at most MaxSenders (default 4096) entries, evicting the least recently
// used. Since only frames with a good tag create entries and the sender MAC
// is covered by the tag, a stranger without the key cannot add or evict
// entries: a flood of forged frames costs one HMAC each and no memory.
//
// Every rejection is an *Error with a Reason, a short label meant for a
// metric such as floatip_auth_failures_total{reason="bad_tag"}.
//
// # Why this is written by hand
//
// The cryptography is the standard library's (crypto/hmac, crypto/sha256,
// crypto/rand, crypto/subtle via hmac.Equal). What is ours is the framing
// and the replay window: no maintained Go library authenticates raw L2
// frames with a sequence number and a bounded per-sender replay table (the
// IPsec and WireGuard implementations do this inside their own protocols,
// over IP, not for frames that ordinary hosts must still read as ARP).
package auth
