// Package metrics exposes floatip's Prometheus metrics.
//
// A Metrics value owns its own registry (never the global one), so tests and
// several daemons in one process stay isolated. Every method is safe for
// concurrent use, and every method is a no-op on a nil *Metrics, so the daemon
// can run without metrics by passing nil instead of checking everywhere.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/election"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "floatip"

// RTTBuckets are the buckets of floatip_probe_rtt_seconds, in seconds: an
// ARP round trip on a LAN takes tens of microseconds to a few milliseconds.
var RTTBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
}

// Timeouts of the HTTP server started by Serve and ServeListener.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// Metrics holds floatip's metrics and the registry they are registered in.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	// mu makes SetState's update of one group's series atomic.
	mu sync.Mutex

	groupState       *prometheus.GaugeVec
	transitions      *prometheus.CounterVec
	conflicts        *prometheus.CounterVec
	claims           *prometheus.CounterVec
	releases         *prometheus.CounterVec
	probesSent       *prometheus.CounterVec
	probesUnanswered *prometheus.CounterVec
	sendFailures     *prometheus.CounterVec
	probeRTT         *prometheus.HistogramVec
	vipsHeld         *prometheus.GaugeVec
	healthUp         *prometheus.GaugeVec
	healthChecks     *prometheus.CounterVec
	hookRuns         *prometheus.CounterVec
	hookFailures     *prometheus.CounterVec

	// Hostile frames (issue 10).
	foreignClaims *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	unconfirmed   *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	spoofed       prometheus.Counter
	authFailures  *prometheus.CounterVec
	malformed     *prometheus.CounterVec
	sealFailures  prometheus.Counter
}

// New makes a registry with floatip's metrics, floatip_build_info (with the
// given version and the Go version), and the Go and process collectors.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		groupState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "group_state",
			Help:      "Election state of the VIP group: 1 for the current state, 0 for the others.",
		}, []string{"group", "state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "transitions_total",
			Help:      "State changes of the VIP group.",
		}, []string{"group", "from", "to"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "conflicts_total",
			Help:      "Conflicts seen while holding: another host claimed one of the group's VIPs.",
		}, []string{"group"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "claims_total",
			Help:      "Times this node claimed the group's VIPs.",
		}, []string{"group"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "releases_total",
			Help:      "Times this node released the group's VIPs.",
		}, []string{"group"}),
		probesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "probes_sent_total",
			Help:      "ARP probes sent for the group.",
		}, []string{"group"}),
		probesUnanswered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "probes_unanswered_total",
			Help:      "ARP probes for the group that got no answer in time.",
		}, []string{"group"}),
		sendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "send_failures_total",
			Help:      "ARP frames of the group that could not be sent (each failed write, retries included).",
		}, []string{"group"}),
		probeRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "probe_rtt_seconds",
			Help:      "Round-trip time of answered ARP probes.",
			Buckets:   RTTBuckets,
		}, []string{"group"}),
		vipsHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "vips_held",
			Help:      "Number of the group's VIPs this node holds.",
		}, []string{"group"}),
		healthUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "health_check_up",
			Help:      "Result of the last run of the health check: 1 healthy, 0 unhealthy.",
		}, []string{"group", "check"}),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "health_checks_total",
			Help:      "Health check runs by result (success or failure).",
		}, []string{"group", "check", "result"}),
		hookRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "hook_runs_total",
			Help:      "Hook runs, failed or not.",
		}, []string{"group", "hook"}),
		hookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "hook_failures_total",
			Help:      "Hook runs that failed.",
		}, []string{"group", "hook"}),
	}

	m.foreignClaims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "foreign_claims_total",
		Help:      "Claims of the group's VIPs (announcements, replies) by hosts that are not (authenticated) floatip peers.",
	}, []string{"group"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "conflict_answers_throttled_total",
		Help:      "Conflict answers (defends, re-announcements, verification probes, answers to checks) left unsent by the rate limit.",
	}, []string{"group"})
	m.unconfirmed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "unconfirmed_claims_total",
		Help:      "Claims by a better peer that the holder did not yield to, because the claimant did not confirm them.",
	}, []string{"group"})
	m.ignored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "ignored_commands_total",
		Help:      "Release, takeover and key-first notice frames not obeyed: a release not from the current holder, a takeover with preempt off, a notice right after its holder beaconed as holder.",
	}, []string{"group"})
	m.spoofed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "spoofed_frames_total",
		Help:      "Frames from the wire that carried this node's own MAC as Ethernet source: another host impersonates this node.",
	})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "auth_failures_total",
		Help:      "Frames that failed authentication, by reason (missing: a floatip frame without an auth block).",
	}, []string{"reason"})
	m.malformed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "malformed_frames_total",
		Help:      "Frames from the wire dropped as malformed, by reason (malformed: does not decode; hop_limit: ND with a hop limit other than 255; checksum: ND with a bad ICMPv6 checksum).",
	}, []string{"reason"})
	m.sealFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "auth_seal_failures_total",
		Help:      "Frames not sent because they could not be sealed (the sequence state file could not be written).",
	})
	for _, r := range auth.Reasons {
		m.authFailures.WithLabelValues(string(r))
	}

	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "A metric with a constant '1' value labeled by the floatip version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	reg.MustRegister(
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.groupState, m.transitions, m.conflicts, m.claims, m.releases,
		m.probesSent, m.probesUnanswered, m.sendFailures, m.probeRTT, m.vipsHeld,
		m.healthUp, m.healthChecks, m.hookRuns, m.hookFailures,
		m.foreignClaims, m.throttled, m.unconfirmed, m.ignored, m.spoofed, m.authFailures, m.malformed, m.sealFailures,
	)

	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg, // promhttp_metric_handler_errors_total
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	return m
}

// Registry returns the registry the metrics are registered in (nil on a nil
// *Metrics). Callers may register their own collectors in it.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler returns the HTTP handler serving the registry in the Prometheus
// exposition format. On a nil *Metrics it answers 404 Not Found.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// Listen opens a TCP listener on addr (host:port; port 0 picks a free port).
// The error names the address. Listen works on a nil *Metrics too.
func (m *Metrics) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %q: %w", addr, err)
	}
	return ln, nil
}

// Serve listens on addr and serves /metrics, plus a small page at / linking
// to it, until ctx ends; then it shuts the server down and returns nil. It
// returns an error naming addr if it cannot listen. On a nil *Metrics it
// returns nil at once.
func (m *Metrics) Serve(ctx context.Context, addr string) error {
	if m == nil {
		return nil
	}
	ln, err := m.Listen(addr)
	if err != nil {
		return err
	}
	return m.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened (see Listen). It
// takes ownership of ln and closes it. It returns nil once ctx ends and the
// server has shut down, or the error that stopped the server. On a nil
// *Metrics it closes ln and returns nil.
func (m *Metrics) ServeListener(ctx context.Context, ln net.Listener) error {
	if m == nil {
		ln.Close()
		return nil
	}
	srv := &http.Server{
		Handler:           m.mux(),
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc: // the listener failed before ctx ended
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

const indexPage = `<!DOCTYPE html>
<html><head><title>floatip</title></head>
<body><h1>floatip</h1><p><a href="/metrics">Metrics</a></p></body></html>
`

func (m *Metrics) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(indexPage))
	})
	return mux
}

// SetState records the group's current election state: the series of every
// state (election.States) is reported, 1 for state and 0 for the others.
func (m *Metrics) SetState(group string, state election.State) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range election.States() {
		m.groupState.WithLabelValues(group, s.String()).Set(b2f(s == state))
	}
}

// Transition counts a state change of the group.
func (m *Metrics) Transition(group string, from, to election.State) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(group, from.String(), to.String()).Inc()
}

// Conflict counts a conflict: another host claimed one of the group's VIPs.
func (m *Metrics) Conflict(group string) {
	if m == nil {
		return
	}
	m.conflicts.WithLabelValues(group).Inc()
}

// Claim counts a claim of the group's VIPs by this node.
func (m *Metrics) Claim(group string) {
	if m == nil {
		return
	}
	m.claims.WithLabelValues(group).Inc()
}

// Release counts a release of the group's VIPs by this node.
func (m *Metrics) Release(group string) {
	if m == nil {
		return
	}
	m.releases.WithLabelValues(group).Inc()
}

// ProbeSent counts an ARP probe sent for the group. The first call also
// creates floatip_probes_unanswered_total{group} at 0, so ratios of the two
// work before any probe went unanswered.
func (m *Metrics) ProbeSent(group string) {
	if m == nil {
		return
	}
	m.probesSent.WithLabelValues(group).Inc()
	m.probesUnanswered.WithLabelValues(group)
}

// ProbeUnanswered counts an ARP probe for the group that got no answer.
func (m *Metrics) ProbeUnanswered(group string) {
	if m == nil {
		return
	}
	m.probesUnanswered.WithLabelValues(group).Inc()
}

// SendFailed counts an ARP frame of the group whose write failed.
func (m *Metrics) SendFailed(group string) {
	if m == nil {
		return
	}
	m.sendFailures.WithLabelValues(group).Inc()
}

// ProbeRTT records the round-trip time of an answered ARP probe.
func (m *Metrics) ProbeRTT(group string, d time.Duration) {
	if m == nil {
		return
	}
	m.probeRTT.WithLabelValues(group).Observe(d.Seconds())
}

// Holding records how many of the group's VIPs this node holds: vips when
// held, else 0.
func (m *Metrics) Holding(group string, vips int, held bool) {
	if m == nil {
		return
	}
	if !held {
		vips = 0
	}
	m.vipsHeld.WithLabelValues(group).Set(float64(vips))
}

// HealthResult records a run of the group's health check: floatip_health_check_up
// is 1 or 0, and floatip_health_checks_total counts it by result. Both result
// series exist from the first call on.
func (m *Metrics) HealthResult(group, check string, healthy bool) {
	if m == nil {
		return
	}
	m.healthUp.WithLabelValues(group, check).Set(b2f(healthy))
	ok := m.healthChecks.WithLabelValues(group, check, "success")
	failed := m.healthChecks.WithLabelValues(group, check, "failure")
	if healthy {
		ok.Inc()
	} else {
		failed.Inc()
	}
}

// HookRun counts a run of the group's hook, and a failure when err is not
// nil. The failure series exists from the first run on.
func (m *Metrics) HookRun(group, hook string, err error) {
	if m == nil {
		return
	}
	m.hookRuns.WithLabelValues(group, hook).Inc()
	failures := m.hookFailures.WithLabelValues(group, hook)
	if err != nil {
		failures.Inc()
	}
}

// ForgetGroup deletes every series of the group, for a group that a reload
// removed. Calls for the group made afterwards create its series again.
func (m *Metrics) ForgetGroup(group string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	match := prometheus.Labels{"group": group}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.groupState, m.transitions, m.conflicts, m.claims, m.releases,
		m.probesSent, m.probesUnanswered, m.sendFailures, m.probeRTT, m.vipsHeld,
		m.healthUp, m.healthChecks, m.hookRuns, m.hookFailures,
		m.foreignClaims, m.throttled, m.unconfirmed, m.ignored,
	} {
		v.DeletePartialMatch(match)
	}
}

// GroupGuard adds the group's wire-hygiene counters (election.Stats):
// foreign claims, throttled answers, unconfirmed claims, ignored commands.
// Each series exists from the group's first call on.
func (m *Metrics) GroupGuard(group string, foreign, throttled, unconfirmed, ignored uint64) {
	if m == nil {
		return
	}
	m.foreignClaims.WithLabelValues(group).Add(float64(foreign))
	m.throttled.WithLabelValues(group).Add(float64(throttled))
	m.unconfirmed.WithLabelValues(group).Add(float64(unconfirmed))
	m.ignored.WithLabelValues(group).Add(float64(ignored))
}

// Spoofed counts a frame from the wire with this node's own MAC.
func (m *Metrics) Spoofed() {
	if m == nil {
		return
	}
	m.spoofed.Inc()
}

// AuthFailure counts a frame that failed authentication.
func (m *Metrics) AuthFailure(reason auth.Reason) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(string(reason)).Inc()
}

// Malformed counts a frame from the wire dropped as malformed, by reason.
func (m *Metrics) Malformed(reason string) {
	if m == nil {
		return
	}
	m.malformed.WithLabelValues(reason).Inc()
}

// SealFailure counts a frame not sent because it could not be sealed.
func (m *Metrics) SealFailure() {
	if m == nil {
		return
	}
	m.sealFailures.Inc()
}

// AuthTable exports the replay table's size and turnover (auth.Verifier's
// Stats), read at each scrape. Call it once.
func (m *Metrics) AuthTable(stats func() auth.VerifierStats) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "auth_senders",
			Help: "Senders in the replay table (at most 4096).",
		}, func() float64 { return float64(stats().Senders) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "auth_senders_evicted_total",
			Help: "Replay table entries evicted because the table was full.",
		}, func() float64 { return float64(stats().Evicted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "auth_senders_expired_total",
			Help: "Replay table entries expired (no accepted frame for the TTL).",
		}, func() float64 { return float64(stats().Expired) }),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
