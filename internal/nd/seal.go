package nd

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/net/ipv6"
)

// Authenticating ND frames: the auth block of package auth (key id,
// sequence number, tag over the whole frame) rides in Option.Auth rather
// than after the frame, since anything after the ICMPv6 message would be
// outside the IPv6 payload. The ICMPv6 checksum covers the option, so the
// tag is computed over the frame with the checksum and the Auth bytes
// zeroed, and the checksum after the tag is in place:
//
//	send: marshal with Auth = n zero bytes; Seal(frame with checksum 0)
//	      appends the block; copy it into Auth; compute the checksum.
//	receive: verify the checksum (UnmarshalBinary); copy the frame, zero
//	      its checksum and Auth, append the Auth bytes: that is the
//	      sealed frame the sender's Seal produced; Open it.
//
// SealFrame and OpenFrame do the byte work; the caller brings the auth
// package's Signer.Seal and Verifier.Open.

// SealFrame encodes f with its Option's Auth set to n bytes produced by
// seal, which gets the encoded frame with the checksum and the Auth bytes
// zeroed and must return that frame with an n-byte block appended (as
// auth.Signer.Seal does with auth.BlockLen). f must carry an Option.
func SealFrame(f *Frame, n int, seal func(frame []byte) ([]byte, error)) ([]byte, error) {
	if f.Option == nil {
		return nil, fmt.Errorf("seal ND frame: no floatip option to carry the auth block")
	}
	if n > MaxAuthLen {
		return nil, fmt.Errorf("seal ND frame: auth block of %d bytes, at most %d", n, MaxAuthLen)
	}
	c := *f
	opt := *f.Option
	opt.Auth = make([]byte, n)
	c.Option = &opt
	b, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	off, got, ok := AuthField(b)
	if !ok || got != n {
		return nil, fmt.Errorf("seal ND frame: the option's auth field not found")
	}
	sum := checksumField(b)
	b[sum], b[sum+1] = 0, 0
	sealed, err := seal(b[:len(b):len(b)])
	if err != nil {
		return nil, err
	}
	if len(sealed) != len(b)+n {
		return nil, fmt.Errorf("seal ND frame: the seal added %d bytes, want %d", len(sealed)-len(b), n)
	}
	copy(b[off:off+n], sealed[len(b):])
	setChecksum(b)
	return b, nil
}

// OpenFrame checks the auth block in the floatip option of the encoded
// frame b (which UnmarshalBinary accepted): it passes open the frame as
// SealFrame's seal saw it, with the block appended, and returns open's
// error. ok is false (and open not called) when b carries no option or an
// Auth of another length than n: an unsealed frame.
func OpenFrame(b []byte, n int, open func(sealed []byte) error) (ok bool, err error) {
	off, got, found := AuthField(b)
	if !found || got != n || n == 0 {
		return false, nil
	}
	end := ethHeaderLen + ipv6.HeaderLen + int(binary.BigEndian.Uint16(b[ethHeaderLen+4:ethHeaderLen+6]))
	buf := make([]byte, end, end+n)
	copy(buf, b[:end])
	sum := checksumField(buf)
	buf[sum], buf[sum+1] = 0, 0
	clear(buf[off : off+n])
	buf = append(buf, b[off:off+n]...)
	return true, open(buf)
}

// AuthField returns where the Auth bytes of floatip's option are in the
// encoded frame b: their offset and length; ok is false when b is not an
// ND frame of this package's layout or has no floatip option.
func AuthField(b []byte) (off, n int, ok bool) {
	const icmpAt = ethHeaderLen + ipv6.HeaderLen
	if len(b) < icmpAt+icmpNSLen || binary.BigEndian.Uint16(b[12:14]) != etherTypeIPv6 || int(b[ethHeaderLen+6]) != protoICMPv6 {
		return 0, 0, false
	}
	end := icmpAt + int(binary.BigEndian.Uint16(b[ethHeaderLen+4:ethHeaderLen+6]))
	if end > len(b) {
		return 0, 0, false
	}
	for i := icmpAt + icmpNSLen; i+2 <= end; {
		l := int(b[i+1]) * 8
		if l == 0 || i+l > end {
			return 0, 0, false
		}
		if b[i] == OptionType && l >= optionFixedLen && isOurs(b[i+2:i+l]) {
			n := int(b[i+14])
			if optionFixedLen+n > l {
				return 0, 0, false
			}
			return i + optionFixedLen, n, true
		}
		i += l
	}
	return 0, 0, false
}

// checksumField is the offset of the ICMPv6 checksum in an encoded frame.
func checksumField([]byte) int { return ethHeaderLen + ipv6.HeaderLen + 2 }

// setChecksum computes the ICMPv6 checksum of the encoded frame b in place.
func setChecksum(b []byte) {
	h := b[ethHeaderLen:]
	plen := int(binary.BigEndian.Uint16(h[4:6]))
	icmp := h[ipv6.HeaderLen : ipv6.HeaderLen+plen]
	src := netip.AddrFrom16([16]byte(h[8:24]))
	dst := netip.AddrFrom16([16]byte(h[24:40]))
	binary.BigEndian.PutUint16(icmp[2:4], Checksum(src, dst, icmp))
}
