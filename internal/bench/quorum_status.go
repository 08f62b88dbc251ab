package bench

import (
	"time"

	"github.com/floatip/floatip/internal/control"
)

// quorumDeadline is the lease deadline a floatip daemon's status reports
// (the first group with a referee; the lease is the node's, shared by its
// groups).
func quorumDeadline(st control.Status) (time.Time, bool) {
	for _, g := range st.Groups {
		if g.Quorum != nil && !g.Quorum.LeaseDeadline.IsZero() {
			return g.Quorum.LeaseDeadline, true
		}
	}
	return time.Time{}, false
}
