//go:build !linux

package privdrop

import (
	"fmt"
	"os/exec"
	"runtime"
)

// Start refuses to start cmd: off Linux there are no capabilities to drop,
// and floatip's daemon runs only on Linux. The stub lets the packages that
// import this one (hooks, health, and config through hooks) build and test
// on any OS.
func Start(cmd *exec.Cmd) error {
	return fmt.Errorf("start %s: privdrop is Linux-only (GOOS=%s)", cmd.Path, runtime.GOOS)
}

// Run is Start followed by cmd.Wait.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
