//go:build unix

package auth

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses a key file readable or writable by group or others,
// or owned by a user other than root and us. Group bits that are only the
// mask of an access ACL granting this process's own user (how systemd
// hands a credential to a service's dynamic user: LoadCredential=) are not
// group access: the ACL is read from the open file and every entry but the
// owner's and ours must grant nothing.
func checkPrivate(f *os.File, path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o007 == 0 && perm&0o070 != 0 && aclOnlyFor(f, os.Geteuid()) {
		// The ACL's mask, not a group.
	} else if perm&0o077 != 0 {
		return fmt.Errorf("auth: key file %s has mode %#o, readable or writable by group or others: run chmod 600 %s", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
			return fmt.Errorf("auth: key file %s is owned by uid %d, not root or this process (uid %d): run chown root %s", path, uid, os.Geteuid(), path)
		}
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
