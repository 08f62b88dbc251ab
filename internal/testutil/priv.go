// Package testutil holds helpers shared by tests that need a real kernel.
package testutil

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where privileged
// tests must run and fail rather than skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips the test with a clear message when not running as root,
// except under CI=true, where a missing privilege fails the test instead:
// CI must never report green for tests that did not run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("this test needs root (network namespaces, raw sockets); CI=true, so failing instead of skipping")
	}
	t.Skip("skipping: needs root for network namespaces and raw sockets (run as root, or under CI=true to make this a failure)")
}
