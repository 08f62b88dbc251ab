//go:build !unix

package auth

import (
	"io/fs"
	"os"
)

// checkPrivate has nothing to check where Unix permission bits do not
// exist; floatip runs on Linux, and this keeps the package portable.
func checkPrivate(*os.File, string, fs.FileInfo) error { return nil }

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) error { return nil }
