package nd

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/ndp"

	"github.com/floatip/floatip/internal/arp"
)

// OptionType is the ND option type of floatip's option: 253, one of the two
// values RFC 4727 sets aside for experiments. RFC 4861 4.6 makes receivers
// skip options they do not know, so ordinary hosts process the NS or NA as
// usual; Linux does so (checked in the lab tests).
const OptionType = 253

// MaxAuthLen is the largest Auth an Option carries, leaving room for the
// longest node name. The whole option must stay below 256 bytes:
// github.com/mdlayher/ndp v1.1.0 computes an option's byte length in 8 bits
// (Length*8), so it mis-sizes longer ones.
const MaxAuthLen = 31*8 - optionFixedLen - arp.MaxNameLen

const (
	// optionFixedLen is the option without Auth: type, length, magic,
	// version, kind, priority, flags, node ID, auth length, reserved.
	optionFixedLen = 16
	optionVersion  = 1
)

var optionMagic = [4]byte{'F', 'L', 'I', 'P'}

// Option is floatip's own data in an ND message, the counterpart of the
// trailer of an ARP frame: the same fields (arp.Trailer, so the election
// machine can treat both alike), plus Auth, opaque bytes reserved for the
// authentication block of frames (key id, sequence number, tag), which the
// codec carries but does not interpret. The node name (Trailer.Name) rides
// after Auth, so a sealed frame's tag covers it. Layout (big endian),
// padded with zeros to a multiple of 8 bytes:
//
//	[0]     type 253
//	[1]     length in units of 8 bytes
//	[2:6]   magic "FLIP"
//	[6]     version (1)
//	[7]     kind (arp.Kind)
//	[8]     priority
//	[9]     flags (arp.FlagHolder, ...)
//	[10:14] node ID
//	[14]    auth length n (at most MaxAuthLen)
//	[15]    name length m (0: no name; at most arp.MaxNameLen)
//	[16:16+n] auth
//	[16+n:16+n+m] node name
//
// A name that is cut off, too long, not UTF-8 or not printable is dropped
// (Trailer.NameRejected) and the rest of the option kept, as in the ARP
// trailer: a hostile frame cannot put a line break into a log line.
type Option struct {
	arp.Trailer
	// Auth is nil or up to MaxAuthLen bytes.
	Auth []byte
}

// errOption is wrapped by the errors of an option that does not parse.
var errOption = errors.New("floatip ND option")

// MarshalBinary encodes o as a whole ND option, type and length included.
func (o *Option) MarshalBinary() ([]byte, error) {
	if len(o.Auth) > MaxAuthLen {
		return nil, fmt.Errorf("%w: auth of %d bytes, at most %d", errOption, len(o.Auth), MaxAuthLen)
	}
	var name string
	if arp.ValidName(o.Name) {
		name = o.Name
	}
	n := (optionFixedLen + len(o.Auth) + len(name) + 7) / 8 * 8
	b := make([]byte, n)
	b[0] = OptionType
	b[1] = byte(n / 8)
	copy(b[2:6], optionMagic[:])
	b[6] = optionVersion
	b[7] = byte(o.Kind)
	b[8] = o.Priority
	b[9] = o.Flags
	binary.BigEndian.PutUint32(b[10:14], o.NodeID)
	b[14] = byte(len(o.Auth))
	b[15] = byte(len(name))
	copy(b[optionFixedLen:], o.Auth)
	copy(b[optionFixedLen+len(o.Auth):], name)
	return b, nil
}

// UnmarshalBinary decodes a whole ND option (type and length included) into
// o. o does not alias b.
func (o *Option) UnmarshalBinary(b []byte) error {
	if len(b) < 2 || b[0] != OptionType {
		return fmt.Errorf("%w: not an option of type %d", errOption, OptionType)
	}
	if int(b[1])*8 != len(b) {
		return fmt.Errorf("%w: length field says %d bytes, have %d", errOption, int(b[1])*8, len(b))
	}
	return o.decode(b[2:])
}

func (o *Option) rawOption() (*ndp.RawOption, error) {
	b, err := o.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &ndp.RawOption{Type: b[0], Length: b[1], Value: b[2:]}, nil
}

// isOurs reports whether an option value of type 253 starts with floatip's
// magic and version. Another experiment may use type 253 too, and a newer
// floatip another version: such options are left alone like unknown ones.
func isOurs(v []byte) bool {
	return len(v) >= 5 && [4]byte(v[0:4]) == optionMagic && v[4] == optionVersion
}

func (o *Option) fromRaw(r *ndp.RawOption) error {
	if int(r.Length)*8 != len(r.Value)+2 {
		return fmt.Errorf("%w: length field says %d bytes, have %d", errOption, int(r.Length)*8, len(r.Value)+2)
	}
	return o.decode(r.Value)
}

// decode parses the option's value, the bytes after type and length.
func (o *Option) decode(v []byte) error {
	const fixed = optionFixedLen - 2
	if len(v) < fixed {
		return fmt.Errorf("%w: %d bytes, need at least %d", errOption, len(v)+2, optionFixedLen)
	}
	if !isOurs(v) {
		return fmt.Errorf("%w: magic %q version %d, this node speaks %q version %d", errOption, v[0:4], v[4], optionMagic[:], optionVersion)
	}
	n := int(v[12])
	if n > len(v)-fixed {
		return fmt.Errorf("%w: auth length %d, but only %d bytes follow", errOption, n, len(v)-fixed)
	}
	*o = Option{Trailer: arp.Trailer{
		Kind:     arp.Kind(v[5]),
		Priority: v[6],
		Flags:    v[7],
		NodeID:   binary.BigEndian.Uint32(v[8:12]),
	}}
	if n > 0 {
		o.Auth = append([]byte(nil), v[fixed:fixed+n]...)
	}
	if m := int(v[13]); m > 0 {
		rest := v[fixed+n:]
		if name := string(rest[:min(m, len(rest))]); m <= len(rest) && arp.ValidName(name) {
			o.Name = name
		} else {
			o.NameRejected = true
		}
	}
	return nil
}
