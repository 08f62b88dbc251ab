package daemon

import (
	"testing"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/control"
)

// The control socket's default is spelled twice, since config must build
// off Linux and control does not: they must agree.
func TestDefaultSocketAgrees(t *testing.T) {
	if config.DefaultSocket != control.DefaultSocket {
		t.Fatalf("config.DefaultSocket %q, control.DefaultSocket %q", config.DefaultSocket, control.DefaultSocket)
	}
}
