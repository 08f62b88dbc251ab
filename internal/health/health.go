// Package health runs a VIP group's health checks of the local service (HTTP,
// TCP connect, or a command) and reports when the group's health changes.
//
// Each check runs on its own goroutine and ticker. Its raw results are
// debounced: the first result decides its state at once, afterwards Fall
// consecutive failures make it unhealthy and Rise consecutive successes
// healthy again. The group is healthy when every check is.
package health

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Kind is the kind of a health check.
type Kind string

// The kinds of check.
const (
	KindHTTP Kind = "http" // GET URL, healthy iff the status is ExpectStatus
	KindTCP  Kind = "tcp"  // healthy iff a TCP connect to Address succeeds within Timeout
	KindExec Kind = "exec" // healthy iff Command exits 0 within Timeout
)

// Check configures one health check.
type Check struct {
	Name string
	Kind Kind

	// http: GET URL; healthy iff the status equals ExpectStatus (0 means
	// 200). Redirects are not followed; at most 4 KiB of the body is read
	// and discarded. No proxy from the environment is used.
	URL          string
	ExpectStatus int

	// tcp: healthy iff a TCP connect to Address succeeds within Timeout.
	Address string

	// exec: healthy iff Command exits with status 0 within Timeout. It runs
	// in its own process group with stdin from /dev/null, the environment
	// of ExecEnv only, and without floatip's CAP_NET_ADMIN and CAP_NET_RAW
	// (package privdrop); on timeout the whole group is killed. Up to 1 KiB of combined output goes into
	// Detail on failure.
	Command []string

	Interval time.Duration // between runs (<= 0: 2s)
	Timeout  time.Duration // of one run (<= 0: 1s)
	Fall     int           // consecutive failures before unhealthy (< 1: 1)
	Rise     int           // consecutive successes before healthy again (< 1: 1)
}

// Result is the state of one check.
type Result struct {
	Check   string
	Healthy bool      // the check's debounced state (false until its first result)
	Detail  string    // the last run's outcome: "200 OK in 1.2ms", "connect: connection refused", "exit status 1: <output>"
	At      time.Time // when the last run started (zero: not run yet)
}

// Report is sent on Updates when the group's health changes.
type Report struct {
	Healthy bool     // every check is healthy
	Changed string   // the check whose result caused this report ("" when there are no checks)
	Results []Result // every check, in configuration order
}

// Monitor runs a group's checks. Create it with New, then Start it once;
// Close stops it.
type Monitor struct {
	checks  []Check
	probes  []prober
	log     *slog.Logger
	now     func() time.Time
	updates chan Report

	mu      sync.Mutex
	results []Result
	known   int  // checks with a first result
	sent    bool // the first report was sent
	healthy bool // aggregate state of the last report
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Monitor for checks (copied, defaults applied). A nil log
// discards the log.
func New(checks []Check, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		checks:  make([]Check, len(checks)),
		probes:  make([]prober, len(checks)),
		results: make([]Result, len(checks)),
		log:     log,
		now:     time.Now,
		updates: make(chan Report, 1),
	}
	for i, c := range checks {
		c.Command = slices.Clone(c.Command)
		if c.Interval <= 0 {
			c.Interval = defaultEvery
		}
		if c.Timeout <= 0 {
			c.Timeout = defaultTimeout
		}
		c.Fall, c.Rise = max(c.Fall, 1), max(c.Rise, 1)
		m.checks[i] = c
		m.probes[i] = newProber(c)
		m.results[i] = Result{Check: c.Name}
	}
	return m
}

// Start starts one goroutine per check; each runs its check at once and then
// every Interval until ctx ends or Close. With no checks, Start sends one
// healthy Report. Calls after the first (or after Close) do nothing.
func (m *Monitor) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	if len(m.checks) == 0 {
		m.healthy, m.sent = true, true
		m.publish(Report{Healthy: true, Results: []Result{}})
		return
	}
	ctx, m.cancel = context.WithCancel(ctx)
	for i := range m.checks {
		m.wg.Add(1)
		go m.run(ctx, i)
	}
}

// Updates delivers a Report when the group's health changes, and the first
// once every check has a result. It holds at most one Report: a newer one
// replaces an unread older one, so a reader always sees the latest state and
// a slow reader never blocks a check. The channel is never closed.
func (m *Monitor) Updates() <-chan Report { return m.updates }

// Results returns a snapshot of every check's state, in configuration order.
func (m *Monitor) Results() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.results)
}

// Close stops the checks, kills running exec checks, and waits for every
// goroutine to end. It may be called more than once.
func (m *Monitor) Close() {
	m.mu.Lock()
	m.closed = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// run owns check i's ticker and debouncer.
func (m *Monitor) run(ctx context.Context, i int) {
	defer m.wg.Done()
	c := m.checks[i]
	d := debouncer{fall: c.Fall, rise: c.Rise}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		at := m.now()
		ok, detail := m.probes[i](ctx)
		if ctx.Err() != nil {
			return // stopped mid-run: the result means nothing
		}
		first := !d.known
		state, changed := d.observe(ok)
		if changed {
			switch {
			case !state:
				m.log.Warn("health check failed", "check", c.Name, "detail", detail)
			case first:
				m.log.Debug("health check healthy", "check", c.Name, "detail", detail)
			default:
				m.log.Info("health check recovered", "check", c.Name, "detail", detail)
			}
		}
		m.record(i, Result{Check: c.Name, Healthy: state, Detail: detail, At: at}, first, changed)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record stores check i's result and reports a change of the group's health
// (or the first complete state).
func (m *Monitor) record(i int, r Result, first, changed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if first {
		m.known++
	}
	m.results[i] = r
	if !changed || m.known < len(m.results) {
		return
	}
	healthy := true
	for _, r := range m.results {
		healthy = healthy && r.Healthy
	}
	if m.sent && healthy == m.healthy {
		return
	}
	m.sent, m.healthy = true, healthy
	m.publish(Report{Healthy: healthy, Changed: r.Check, Results: slices.Clone(m.results)})
}

// publish puts r on the updates channel, replacing an unread report. Called
// with mu held, so reports go out in order and the send never blocks.
func (m *Monitor) publish(r Report) {
	select {
	case <-m.updates:
	default:
	}
	m.updates <- r
}
