package hooks

import (
	"slices"
	"testing"

	"github.com/floatip/floatip/internal/election"
)

// Hooks name states as the machine does, except the last one: a stopping
// group, which is what a hook can still act on.
func TestStateNames(t *testing.T) {
	for _, s := range election.States() {
		want := s.String()
		if s == election.StateStopped {
			want = Stopping
		}
		if got := StateName(s); got != want {
			t.Errorf("StateName(%v) = %q, want %q", s, got, want)
		}
	}
	if got, want := Triggers(), []string{"holder", "standby", "fault", "stopping", "foreign-claim"}; !slices.Equal(got, want) {
		t.Errorf("Triggers() = %v, want %v", got, want)
	}
}
