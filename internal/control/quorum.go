package control

import (
	"fmt"
	"strings"
	"time"
)

// Quorum is a group's referee (quorum: in the configuration) as this node
// sees it.
type Quorum struct {
	Backend   string   `json:"backend"` // "etcd"
	Endpoints []string `json:"endpoints"`
	// State is this node's lease: connecting (no lease yet), live,
	// degraded (keepalives fail, the deadline has not passed), closed.
	State     string `json:"state"`
	Reachable bool   `json:"reachable"` // the referee answered the last request
	// LeaseDeadline is the instant until which this node's lease is known
	// to live; a holder drops the VIPs before it. Left out without a lease.
	LeaseDeadline time.Time `json:"lease_deadline,omitzero"`
	LastKeepAlive time.Time `json:"last_keepalive,omitzero"`
	Error         string    `json:"error,omitempty"` // the last error talking to the referee
	// Role is what this node's elector does for the group: idle,
	// campaigning (waiting for the key) or holding (owns the key).
	Role string `json:"role"`
	// KeyHolder is the node name the group's key names, "" when nobody
	// holds it; Token is this node's fencing token while it holds it.
	KeyHolder string `json:"key_holder,omitempty"`
	Token     int64  `json:"token,omitempty"`
}

// quorumLines describe the referee for `floatip status`.
func quorumLines(q *Quorum, now time.Time) []string {
	reach := "reachable"
	if !q.Reachable {
		reach = "UNREACHABLE"
	}
	first := fmt.Sprintf("%s %s, %s", or(clean(q.Backend), "?"), or(clean(q.State), "?"), reach)
	if !q.LeaseDeadline.IsZero() {
		first += ", lease deadline in " + human(q.LeaseDeadline.Sub(now))
	}
	key := "key: this node " + or(clean(q.Role), "?")
	if q.Token != 0 {
		key += fmt.Sprintf(" (token %d)", q.Token)
	}
	if h := clean(q.KeyHolder); h != "" {
		key += ", held by " + h
	} else {
		key += ", held by nobody"
	}
	lines := []string{first, key}
	if e := clean(q.Error); e != "" {
		lines = append(lines, wrap(strings.Fields("error: "+e), " ", valueWidth)...)
	}
	return lines
}
