package auth

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

type aclEntry struct {
	tag, perm uint16
	id        uint32
}

func setACL(t *testing.T, path string, entries ...aclEntry) {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", b, 0); err != nil {
		if errors.Is(err, syscall.EOPNOTSUPP) && os.Getenv("CI") != "true" {
			t.Skipf("no ACLs on this file system: %v", err)
		}
		t.Fatalf("setting the ACL: %v", err)
	}
}

// A key file whose group bits are only the mask of an ACL that grants this
// process's own user (a systemd credential for a dynamic user) loads; one
// that grants another user or the owning group is refused as before.
func TestKeyFileACL(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	const r, rw = 4, 6
	me := uint32(os.Geteuid())
	for _, tc := range []struct {
		name    string
		entries []aclEntry
		ok      bool
	}{
		{"our user", []aclEntry{{aclUserObj, rw, 0}, {aclUser, r, me}, {aclGroupObj, 0, 0}, {aclMask, r, 0}, {aclOther, 0, 0}}, true},
		{"another user", []aclEntry{{aclUserObj, rw, 0}, {aclUser, r, me + 4242}, {aclGroupObj, 0, 0}, {aclMask, r, 0}, {aclOther, 0, 0}}, false},
		{"the group", []aclEntry{{aclUserObj, rw, 0}, {aclUser, r, me}, {aclGroupObj, r, 0}, {aclMask, r, 0}, {aclOther, 0, 0}}, false},
		{"a named group", []aclEntry{{aclUserObj, rw, 0}, {aclGroupObj, 0, 0}, {aclGroup, r, 100}, {aclMask, r, 0}, {aclOther, 0, 0}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := WriteKeyFile(path, k, false); err != nil {
				t.Fatal(err)
			}
			setACL(t, path, tc.entries...)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o070 == 0 {
				t.Fatalf("mode %#o after the ACL: want the mask in the group bits", fi.Mode().Perm())
			}
			got, err := LoadKeyFile(path)
			switch {
			case tc.ok && (err != nil || got.ID() != k.ID()):
				t.Errorf("LoadKeyFile: %v, want the key", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "readable or writable by group or others")):
				t.Errorf("LoadKeyFile: %v, want the mode refused", err)
			}
		})
	}
}
