package auth

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// POSIX access ACL as Linux stores it in the system.posix_acl_access
// extended attribute (include/uapi/linux/posix_acl_xattr.h): a 4-byte
// version 2, then entries of tag (2), permissions (2) and id (4), little
// endian.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclOnlyFor reports whether the file has an access ACL whose entries give
// nobody but its owner and uid any permission: no owning group access, no
// named group, no named user but uid, nothing for others.
func aclOnlyFor(f *os.File, uid int) bool {
	buf := make([]byte, 1024)
	n, err := unix.Fgetxattr(int(f.Fd()), "system.posix_acl_access", buf)
	if err != nil || n < 4 || (n-4)%8 != 0 || binary.LittleEndian.Uint32(buf) != aclVersion {
		return false
	}
	named := false
	for e := buf[4:n]; len(e) >= 8; e = e[8:] {
		tag, perm, id := binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])
		switch tag {
		case aclUserObj, aclMask:
		case aclUser:
			if int(id) != uid {
				return false
			}
			named = true
		case aclGroupObj, aclGroup, aclOther:
			if perm != 0 {
				return false
			}
		default:
			return false
		}
	}
	return named
}
