//go:build !linux

package privdrop

import "os/exec"

// Start starts cmd. Capabilities are a Linux notion and the daemon runs
// only on Linux; this lets the packages that start commands (hooks, health)
// build and be tested elsewhere.
func Start(cmd *exec.Cmd) error { return cmd.Start() }

// Run is Start followed by cmd.Wait.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
