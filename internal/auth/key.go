package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// KeySize is the length of a key in bytes.
const KeySize = 32

// keyFileTag is the first field of the key line in a key file; it names the
// algorithm, so a later format can be told apart.
const keyFileTag = "floatip-hmac-sha256"

// KeyID names a key in frames. It is derived from the key (see IDOf).
type KeyID uint32

// String returns the id as 8 hex digits, as in key files and logs.
func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// IDOf returns the id of a key: the first 4 bytes of SHA-256(secret).
func IDOf(secret [KeySize]byte) KeyID {
	sum := sha256.Sum256(secret[:])
	return KeyID(binary.BigEndian.Uint32(sum[:4]))
}

// Key is one shared secret and its id. The zero Key is not usable.
type Key struct {
	id     KeyID
	secret [KeySize]byte
	// source is where the key came from (a file name), for messages.
	source string
}

// NewKey returns the Key for a 32-byte secret.
func NewKey(secret [KeySize]byte) Key {
	return Key{id: IDOf(secret), secret: secret}
}

// GenerateKey returns a new random key read from r (crypto/rand.Reader
// when r is nil).
func GenerateKey(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	var s [KeySize]byte
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return Key{}, fmt.Errorf("auth: generate key: %w", err)
	}
	return NewKey(s), nil
}

// ID returns the key's id.
func (k Key) ID() KeyID { return k.id }

// Source returns the file the key was loaded from, or "".
func (k Key) Source() string { return k.source }

// String names the key without revealing it.
func (k Key) String() string {
	if k.source != "" {
		return "key " + k.id.String() + " (" + k.source + ")"
	}
	return "key " + k.id.String()
}

// GoString keeps the secret out of %#v.
func (k Key) GoString() string { return "auth.Key{" + k.String() + "}" }

// MarshalText returns the content of a key file for k: a comment header and
// one line "floatip-hmac-sha256 <id in hex> <secret in base64>".
func (k Key) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# floatip authentication key: copy this file to every node of the cluster.\n")
	b.WriteString("# Keep it secret: mode 0600, owned by root. Created " + time.Now().UTC().Format(time.RFC3339) + " by floatip keygen.\n")
	b.WriteString(keyFileTag + " " + k.id.String() + " " + base64.StdEncoding.EncodeToString(k.secret[:]) + "\n")
	return b.Bytes(), nil
}

// ParseKey parses the content of a key file; name is used in errors. Blank
// lines and lines starting with '#' are ignored; exactly one key line must
// remain, and its id must match the key.
func ParseKey(data []byte, name string) (Key, error) {
	var (
		k     Key
		found int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		found++
		if found > 1 {
			return Key{}, fmt.Errorf("auth: key file %s:%d: a second key line; a file holds one key (list several files for rotation)", name, line)
		}
		f := strings.Fields(s)
		if len(f) != 3 || f[0] != keyFileTag {
			return Key{}, fmt.Errorf("auth: key file %s:%d: want %q followed by the key id and the base64 key (as written by floatip keygen)", name, line, keyFileTag)
		}
		id, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil || len(f[1]) != 8 {
			return Key{}, fmt.Errorf("auth: key file %s:%d: key id %q is not 8 hex digits", name, line, f[1])
		}
		raw, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			return Key{}, fmt.Errorf("auth: key file %s:%d: key is not base64: %v", name, line, err)
		}
		if len(raw) != KeySize {
			return Key{}, fmt.Errorf("auth: key file %s:%d: key is %d bytes, want %d", name, line, len(raw), KeySize)
		}
		k = NewKey([KeySize]byte(raw))
		if k.id != KeyID(id) {
			return Key{}, fmt.Errorf("auth: key file %s:%d: key id %s does not match the key (its id is %s): the file was damaged or edited", name, line, f[1], k.id)
		}
	}
	if err := sc.Err(); err != nil {
		return Key{}, fmt.Errorf("auth: key file %s: %w", name, err)
	}
	if found == 0 {
		return Key{}, fmt.Errorf("auth: key file %s: no key line (create one with floatip keygen)", name)
	}
	k.source = name
	return k, nil
}

// LoadKeyFile reads and parses a key file. It refuses a file that group or
// others may read or write, and one owned by a user other than root or
// this process's user: a shared secret anyone on the host can read
// authenticates nothing.
func LoadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("auth: key file: %w", err)
	}
	defer f.Close()
	// Checked on the open file, so the file read is the file checked.
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("auth: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("auth: key file %s is not a regular file", path)
	}
	if err := checkPrivate(f, path, fi); err != nil {
		return Key{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return Key{}, fmt.Errorf("auth: key file: %w", err)
	}
	return ParseKey(data, path)
}

// WriteKeyFile writes k to path with mode 0600, creating the file with that
// mode so it is never readable by others, not even for a moment. Without
// force an existing file is an error; with force it is replaced atomically
// (a new file renamed over it).
func WriteKeyFile(path string, k Key, force bool) error {
	data, err := k.MarshalText()
	if err != nil {
		return err
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("auth: key file %s already exists (use --force to replace it)", path)
		}
		if err != nil {
			return fmt.Errorf("auth: write key file: %w", err)
		}
		if err := writeSync(f, data); err != nil {
			os.Remove(path)
			return fmt.Errorf("auth: write key file %s: %w", path, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth: write key file: %w", err)
	}
	// CreateTemp makes the file with mode 0600 already.
	if err := writeSync(tmp, data); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("auth: write key file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("auth: write key file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// writeSync writes data, forces the file's mode to exactly 0600 (the umask
// may have removed bits, never added any), syncs and closes f.
func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// KeyRing is the set of keys a node accepts; the first one signs.
type KeyRing struct {
	keys []Key
}

// NewKeyRing returns a ring of the given keys, the first of which signs.
// Two keys with the same id (the same key twice) are an error.
func NewKeyRing(keys ...Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("auth: a key ring needs at least one key")
	}
	for i, k := range keys {
		if k.secret == [KeySize]byte{} {
			return nil, fmt.Errorf("auth: key %d of the ring is all zero bytes: make one with floatip keygen", i+1)
		}
		for _, o := range keys[:i] {
			if o.id == k.id {
				return nil, fmt.Errorf("auth: %v and %v have the same id: list each key once", o, k)
			}
		}
	}
	return &KeyRing{keys: append([]Key(nil), keys...)}, nil
}

// LoadKeyRing loads the key files in order (the first signs) into a ring.
func LoadKeyRing(paths ...string) (*KeyRing, error) {
	keys := make([]Key, 0, len(paths))
	for _, p := range paths {
		k, err := LoadKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewKeyRing(keys...)
}

// Primary returns the key that signs.
func (r *KeyRing) Primary() Key { return r.keys[0] }

// IDs returns the ids of the ring's keys, the signing key first.
func (r *KeyRing) IDs() []KeyID {
	ids := make([]KeyID, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}
