package metrics

import (
	"testing"
	"time"

	"github.com/floatip/floatip/internal/quorum"
)

func TestQuorumSource(t *testing.T) {
	m := New("test")
	dl := time.Unix(1700000000, 500e6)
	groups := []QuorumGroup{
		{Group: "web", State: quorum.StateLive, Reachable: true, Deadline: dl, Role: quorum.RoleHolding},
		{Group: "db", State: quorum.StateDegraded, Role: quorum.RoleCampaigning},
	}
	m.QuorumSource(func() []QuorumGroup { return groups })
	compare(t, m, `
# HELP floatip_quorum_reachable 1 while the group's referee (etcd) answers this node's requests, 0 while it does not.
# TYPE floatip_quorum_reachable gauge
floatip_quorum_reachable{group="db"} 0
floatip_quorum_reachable{group="web"} 1
# HELP floatip_quorum_lease_deadline_seconds Unix time until which this node's lease for the group is known to live (the holder drops the VIPs before it); 0 without a lease.
# TYPE floatip_quorum_lease_deadline_seconds gauge
floatip_quorum_lease_deadline_seconds{group="db"} 0
floatip_quorum_lease_deadline_seconds{group="web"} 1.7000000005e+09
# HELP floatip_quorum_state The state of the group's referee lease on this node: 1 for the current state (connecting, live, degraded, closed), 0 for the others.
# TYPE floatip_quorum_state gauge
floatip_quorum_state{group="db",state="closed"} 0
floatip_quorum_state{group="db",state="connecting"} 0
floatip_quorum_state{group="db",state="degraded"} 1
floatip_quorum_state{group="db",state="live"} 0
floatip_quorum_state{group="web",state="closed"} 0
floatip_quorum_state{group="web",state="connecting"} 0
floatip_quorum_state{group="web",state="degraded"} 0
floatip_quorum_state{group="web",state="live"} 1
# HELP floatip_quorum_key_held 1 while this node owns the group's election key, 0 otherwise.
# TYPE floatip_quorum_key_held gauge
floatip_quorum_key_held{group="db"} 0
floatip_quorum_key_held{group="web"} 1
`, "floatip_quorum_reachable", "floatip_quorum_lease_deadline_seconds", "floatip_quorum_state", "floatip_quorum_key_held")
	// A group that leaves the source (a reload removed it) has no series.
	groups = groups[:1]
	compare(t, m, `
# HELP floatip_quorum_reachable 1 while the group's referee (etcd) answers this node's requests, 0 while it does not.
# TYPE floatip_quorum_reachable gauge
floatip_quorum_reachable{group="web"} 1
`, "floatip_quorum_reachable")
}
