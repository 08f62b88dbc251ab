package auth

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "floatip.key")
	if err := WriteKeyFile(path, k, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != k.ID() || got.secret != k.secret || got.Source() != path {
		t.Errorf("loaded %v, want %v", got, k)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("floatip-hmac-sha256 "+k.ID().String()+" ")) || !bytes.HasPrefix(data, []byte("# ")) {
		t.Errorf("key file content:\n%s", data)
	}
	// The secret never shows in formatted output.
	b64 := base64.StdEncoding.EncodeToString(k.secret[:])
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, b64) || strings.Contains(s, fmt.Sprint(k.secret[:4])) || strings.Contains(s, fmt.Sprintf("%x", k.secret[:4])) {
			t.Errorf("formatted key shows the secret: %s", s)
		}
	}

	// No overwrite without force.
	err = WriteKeyFile(path, k, false)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second write: %v, want an error suggesting --force", err)
	}
	// With force, a loose file is replaced by a new one with mode 0600.
	os.Chmod(path, 0o644)
	k2, _ := GenerateKey(nil)
	if err := WriteKeyFile(path, k2, true); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced key file mode %v, want 0600", fi.Mode().Perm())
	}
	if got, err := LoadKeyFile(path); err != nil || got.ID() != k2.ID() {
		t.Errorf("replaced key: %v %v", got, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d files left in the directory, want 1", len(entries))
	}
}

func TestLoadKeyFileRefusesLoosePermissions(t *testing.T) {
	k := testKey(t, 7)
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o602} {
		path := filepath.Join(dir, fmt.Sprintf("key-%o", mode))
		if err := WriteKeyFile(path, k, false); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode)
		_, err := LoadKeyFile(path)
		if err == nil {
			t.Errorf("mode %#o accepted", mode)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("%#o", mode)) || !strings.Contains(msg, "chmod 600") || strings.Contains(msg, "\n") {
			t.Errorf("mode %#o: error %q, want one line naming the file, the mode and chmod 600", mode, msg)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		path := filepath.Join(dir, fmt.Sprintf("ok-%o", mode))
		WriteKeyFile(path, k, false)
		os.Chmod(path, mode)
		if _, err := LoadKeyFile(path); err != nil {
			t.Errorf("mode %#o refused: %v", mode, err)
		}
	}
}

func TestLoadKeyFileRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := WriteKeyFile(path, testKey(t, 7), false); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), "uid 4242") || !strings.Contains(err.Error(), path) {
		t.Errorf("file owned by uid 4242: %v, want refused naming the owner and file", err)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path); err != nil {
		t.Errorf("file owned by root: %v", err)
	}
}

func TestParseKeyErrors(t *testing.T) {
	k := testKey(t, 3)
	good, _ := k.MarshalText()
	line := string(good[bytes.LastIndex(good[:len(good)-1], []byte("\n"))+1:])
	f := strings.Fields(line)
	other := testKey(t, 9)
	for _, c := range []struct{ name, data, want string }{
		{"empty", "# only a comment\n\n", "no key line"},
		{"two keys", line + line, "k:2: a second key line"},
		{"wrong tag", "floatip-hmac-md5 " + f[1] + " " + f[2], "k:1: want"},
		{"short id", "floatip-hmac-sha256 abc " + f[2], `key id "abc" is not 8 hex digits`},
		{"bad base64", "floatip-hmac-sha256 " + f[1] + " %%%", "not base64"},
		{"short key", "floatip-hmac-sha256 " + f[1] + " AAAA", "key is 3 bytes, want 32"},
		{"id mismatch", "floatip-hmac-sha256 " + other.ID().String() + " " + f[2], "does not match the key"},
	} {
		_, err := ParseKey([]byte(c.data), "k")
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line containing %q", c.name, err, c.want)
		}
	}
	if got, err := ParseKey([]byte("  \n# c\n"+line), "k"); err != nil || got.ID() != k.ID() {
		t.Errorf("valid: %v %v", got, err)
	}
}

func TestKeyRing(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	if _, err := NewKeyRing(); err == nil {
		t.Error("empty ring accepted")
	}
	if _, err := NewKeyRing(a, b, a); err == nil || !strings.Contains(err.Error(), "same id") {
		t.Errorf("duplicate key: %v", err)
	}
	for _, z := range []Key{{}, NewKey([KeySize]byte{})} {
		if _, err := NewKeyRing(a, z); err == nil || !strings.Contains(err.Error(), "all zero") {
			t.Errorf("zero key: %v, want refused", err)
		}
	}
	r := ring(t, b, a)
	if r.Primary().ID() != b.ID() || len(r.IDs()) != 2 || r.IDs()[1] != a.ID() {
		t.Errorf("ring %v", r.IDs())
	}
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	WriteKeyFile(pa, a, false)
	WriteKeyFile(pb, b, false)
	lr, err := LoadKeyRing(pb, pa)
	if err != nil || lr.Primary().ID() != b.ID() {
		t.Errorf("LoadKeyRing: %v %v", lr, err)
	}
	os.Chmod(pa, 0o644)
	if _, err := LoadKeyRing(pb, pa); err == nil || !strings.Contains(err.Error(), pa) {
		t.Errorf("LoadKeyRing with a loose file: %v", err)
	}
}
