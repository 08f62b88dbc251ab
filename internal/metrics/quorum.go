package metrics

import (
	"time"

	"github.com/floatip/floatip/internal/quorum"
	"github.com/prometheus/client_golang/prometheus"
)

// QuorumGroup is one group's referee as the metrics report it.
type QuorumGroup struct {
	Group     string
	State     quorum.State // the backend's lease state
	Reachable bool
	Deadline  time.Time // the lease deadline, zero without a lease
	Role      quorum.Role
}

var quorumStates = []quorum.State{quorum.StateConnecting, quorum.StateLive, quorum.StateDegraded, quorum.StateClosed}

var (
	quorumReachableDesc = prometheus.NewDesc(namespace+"_quorum_reachable",
		"1 while the group's referee (etcd) answers this node's requests, 0 while it does not.", []string{"group"}, nil)
	quorumDeadlineDesc = prometheus.NewDesc(namespace+"_quorum_lease_deadline_seconds",
		"Unix time until which this node's lease for the group is known to live (the holder drops the VIPs before it); 0 without a lease.", []string{"group"}, nil)
	quorumStateDesc = prometheus.NewDesc(namespace+"_quorum_state",
		"The state of the group's referee lease on this node: 1 for the current state (connecting, live, degraded, closed), 0 for the others.", []string{"group", "state"}, nil)
	quorumKeyDesc = prometheus.NewDesc(namespace+"_quorum_key_held",
		"1 while this node owns the group's election key, 0 otherwise.", []string{"group"}, nil)
)

// quorumCollector reads the referees' state at scrape time.
type quorumCollector struct{ source func() []QuorumGroup }

func (c quorumCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quorumReachableDesc
	ch <- quorumDeadlineDesc
	ch <- quorumStateDesc
	ch <- quorumKeyDesc
}

func (c quorumCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.source() {
		ch <- prometheus.MustNewConstMetric(quorumReachableDesc, prometheus.GaugeValue, b2f(g.Reachable), g.Group)
		dl := 0.0
		if !g.Deadline.IsZero() {
			dl = float64(g.Deadline.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(quorumDeadlineDesc, prometheus.GaugeValue, dl, g.Group)
		for _, s := range quorumStates {
			ch <- prometheus.MustNewConstMetric(quorumStateDesc, prometheus.GaugeValue, b2f(s == g.State), g.Group, s.String())
		}
		ch <- prometheus.MustNewConstMetric(quorumKeyDesc, prometheus.GaugeValue, b2f(g.Role == quorum.RoleHolding), g.Group)
	}
}

// QuorumSource makes the metrics report the groups' referees
// (floatip_quorum_reachable, floatip_quorum_lease_deadline_seconds,
// floatip_quorum_state, floatip_quorum_key_held), read from source at each
// scrape; source lists only the groups that have one. Call it once.
func (m *Metrics) QuorumSource(source func() []QuorumGroup) {
	if m == nil {
		return
	}
	m.reg.MustRegister(quorumCollector{source})
}
