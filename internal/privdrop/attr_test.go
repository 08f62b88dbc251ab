//go:build linux

package privdrop

import "syscall"

func newAmbientAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{AmbientCaps: []uintptr{12}}
}
