package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/election"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func compare(t *testing.T, m *Metrics, expected string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}
}

func TestBuildInfo(t *testing.T) {
	m := New("v1.2.3")
	compare(t, m, fmt.Sprintf(`
# HELP floatip_build_info A metric with a constant '1' value labeled by the floatip version and the Go version it was built with.
# TYPE floatip_build_info gauge
floatip_build_info{goversion=%q,version="v1.2.3"} 1
`, runtime.Version()), "floatip_build_info")

	// The Go and process collectors are registered too.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !found[name] {
			t.Errorf("%s not gathered", name)
		}
	}
}

func TestSetState(t *testing.T) {
	m := New("test")
	m.SetState("web", election.StateProbing)
	m.SetState("web", election.StateHolder)
	m.SetState("db", election.StateStandby)
	compare(t, m, `
# HELP floatip_group_state Election state of the VIP group: 1 for the current state, 0 for the others.
# TYPE floatip_group_state gauge
floatip_group_state{group="db",state="candidate"} 0
floatip_group_state{group="db",state="fault"} 0
floatip_group_state{group="db",state="fencing"} 0
floatip_group_state{group="db",state="holder"} 0
floatip_group_state{group="db",state="init"} 0
floatip_group_state{group="db",state="probing"} 0
floatip_group_state{group="db",state="releasing"} 0
floatip_group_state{group="db",state="standby"} 1
floatip_group_state{group="db",state="stopped"} 0
floatip_group_state{group="web",state="candidate"} 0
floatip_group_state{group="web",state="fault"} 0
floatip_group_state{group="web",state="fencing"} 0
floatip_group_state{group="web",state="holder"} 1
floatip_group_state{group="web",state="init"} 0
floatip_group_state{group="web",state="probing"} 0
floatip_group_state{group="web",state="releasing"} 0
floatip_group_state{group="web",state="standby"} 0
floatip_group_state{group="web",state="stopped"} 0
`, "floatip_group_state")
}

func TestCounters(t *testing.T) {
	m := New("test")
	m.Transition("web", election.StateInit, election.StateProbing)
	m.Transition("web", election.StateProbing, election.StateCandidate)
	m.Transition("web", election.StateCandidate, election.StateHolder)
	m.Transition("web", election.StateHolder, election.StateStandby)
	m.Transition("web", election.StateStandby, election.StateCandidate)
	m.Transition("web", election.StateCandidate, election.StateHolder)
	m.Conflict("web")
	m.Conflict("web")
	m.Claim("web")
	m.Claim("web")
	m.Release("web")
	m.ProbeSent("web")
	m.ProbeSent("web")
	m.ProbeSent("web")
	m.ProbeSent("db")
	m.ProbeUnanswered("web")
	m.Holding("web", 3, true)
	m.Holding("db", 2, false)
	compare(t, m, `
# HELP floatip_transitions_total State changes of the VIP group.
# TYPE floatip_transitions_total counter
floatip_transitions_total{from="candidate",group="web",to="holder"} 2
floatip_transitions_total{from="holder",group="web",to="standby"} 1
floatip_transitions_total{from="init",group="web",to="probing"} 1
floatip_transitions_total{from="probing",group="web",to="candidate"} 1
floatip_transitions_total{from="standby",group="web",to="candidate"} 1
# HELP floatip_conflicts_total Conflicts seen while holding: another host claimed one of the group's VIPs.
# TYPE floatip_conflicts_total counter
floatip_conflicts_total{group="web"} 2
# HELP floatip_claims_total Times this node claimed the group's VIPs.
# TYPE floatip_claims_total counter
floatip_claims_total{group="web"} 2
# HELP floatip_releases_total Times this node released the group's VIPs.
# TYPE floatip_releases_total counter
floatip_releases_total{group="web"} 1
# HELP floatip_probes_sent_total ARP probes sent for the group.
# TYPE floatip_probes_sent_total counter
floatip_probes_sent_total{group="db"} 1
floatip_probes_sent_total{group="web"} 3
# HELP floatip_probes_unanswered_total ARP probes for the group that got no answer in time.
# TYPE floatip_probes_unanswered_total counter
floatip_probes_unanswered_total{group="db"} 0
floatip_probes_unanswered_total{group="web"} 1
# HELP floatip_vips_held Number of the group's VIPs this node holds.
# TYPE floatip_vips_held gauge
floatip_vips_held{group="db"} 0
floatip_vips_held{group="web"} 3
`,
		"floatip_transitions_total", "floatip_conflicts_total", "floatip_claims_total",
		"floatip_releases_total", "floatip_probes_sent_total", "floatip_probes_unanswered_total",
		"floatip_vips_held")
}

func TestHealthAndHooks(t *testing.T) {
	m := New("test")
	m.HealthResult("web", "http", true)
	m.HealthResult("web", "http", true)
	m.HealthResult("web", "http", false)
	m.HealthResult("web", "tcp", true)
	m.HookRun("web", "on_claim", nil)
	m.HookRun("web", "on_claim", errors.New("exit status 1"))
	m.HookRun("web", "on_release", nil)
	compare(t, m, `
# HELP floatip_health_check_up Result of the last run of the health check: 1 healthy, 0 unhealthy.
# TYPE floatip_health_check_up gauge
floatip_health_check_up{check="http",group="web"} 0
floatip_health_check_up{check="tcp",group="web"} 1
# HELP floatip_health_checks_total Health check runs by result (success or failure).
# TYPE floatip_health_checks_total counter
floatip_health_checks_total{check="http",group="web",result="failure"} 1
floatip_health_checks_total{check="http",group="web",result="success"} 2
floatip_health_checks_total{check="tcp",group="web",result="failure"} 0
floatip_health_checks_total{check="tcp",group="web",result="success"} 1
# HELP floatip_hook_runs_total Hook runs, failed or not.
# TYPE floatip_hook_runs_total counter
floatip_hook_runs_total{group="web",hook="on_claim"} 2
floatip_hook_runs_total{group="web",hook="on_release"} 1
# HELP floatip_hook_failures_total Hook runs that failed.
# TYPE floatip_hook_failures_total counter
floatip_hook_failures_total{group="web",hook="on_claim"} 1
floatip_hook_failures_total{group="web",hook="on_release"} 0
`,
		"floatip_health_check_up", "floatip_health_checks_total",
		"floatip_hook_runs_total", "floatip_hook_failures_total")
}

func TestProbeRTT(t *testing.T) {
	m := New("test")
	for _, d := range []time.Duration{
		30 * time.Microsecond,  // <= 50us
		80 * time.Microsecond,  // <= 100us
		700 * time.Microsecond, // <= 1ms
		3 * time.Millisecond,   // <= 5ms
		200 * time.Millisecond, // above every bucket: +Inf only
	} {
		m.ProbeRTT("web", d)
	}
	m.ProbeRTT("db", time.Millisecond)

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var checked bool
	for _, mf := range mfs {
		if mf.GetName() != "floatip_probe_rtt_seconds" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			if metric.GetLabel()[0].GetValue() != "web" {
				continue
			}
			checked = true
			h := metric.GetHistogram()
			if got := h.GetSampleCount(); got != 5 {
				t.Errorf("sample count = %d, want 5", got)
			}
			if got, want := h.GetSampleSum(), 0.20381; got < want-1e-9 || got > want+1e-9 {
				t.Errorf("sample sum = %g, want %g", got, want)
			}
			want := map[float64]uint64{50e-6: 1, 100e-6: 2, 500e-6: 2, 1e-3: 3, 5e-3: 4, 100e-3: 4}
			if len(h.GetBucket()) != len(RTTBuckets) {
				t.Errorf("%d buckets, want %d", len(h.GetBucket()), len(RTTBuckets))
			}
			for _, b := range h.GetBucket() {
				if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
					t.Errorf("bucket le=%g: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
				}
			}
		}
	}
	if !checked {
		t.Fatal(`no floatip_probe_rtt_seconds{group="web"} gathered`)
	}
	if n := testutil.CollectAndCount(m.probeRTT); n != 2 {
		t.Errorf("%d histogram series, want 2", n)
	}
}

func TestForgetGroup(t *testing.T) {
	m := New("test")
	for _, g := range []string{"web", "db"} {
		m.SetState(g, election.StateHolder)

		m.Transition(g, election.StateCandidate, election.StateHolder)
		m.Conflict(g)
		m.Claim(g)
		m.Release(g)
		m.ProbeSent(g)
		m.ProbeUnanswered(g)
		m.ProbeRTT(g, time.Millisecond)
		m.Holding(g, 1, true)
		m.HealthResult(g, "http", true)
		m.HookRun(g, "on_claim", errors.New("boom"))
		m.GroupGuard(g, 1, 1, 1, 1)
	}
	m.ForgetGroup("web")

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	families := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "floatip_") || mf.GetName() == "floatip_build_info" {
			continue
		}
		families++
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "group" && l.GetValue() != "db" {
					t.Errorf("%s still has group %q", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	// 17 of the db group and 3 of the node (spoofed frames, auth and seal failures).
	if families != 20 {
		t.Errorf("%d floatip_ families left, want 20 (the db group's and the node's)", families)
	}

	// Setting a state again brings back exactly one series per state.
	m.SetState("web", election.StateStandby)
	if n, want := testutil.CollectAndCount(m.groupState), 2*len(election.States()); n != want {
		t.Errorf("%d group_state series, want %d", n, want)
	}
}

// TestNil checks that every method is a no-op on a nil *Metrics.
func TestNil(t *testing.T) {
	var m *Metrics
	m.SetState("web", election.StateHolder)
	m.Transition("web", election.StateCandidate, election.StateHolder)
	m.Conflict("web")
	m.Claim("web")
	m.Release("web")
	m.ProbeSent("web")
	m.ProbeUnanswered("web")
	m.ProbeRTT("web", time.Millisecond)
	m.Holding("web", 1, true)
	m.HealthResult("web", "http", false)
	m.HookRun("web", "on_claim", errors.New("boom"))
	m.ForgetGroup("web")
	if m.Registry() != nil {
		t.Error("Registry() on nil is not nil")
	}
	if m.Handler() == nil {
		t.Error("Handler() on nil is nil")
	}
	if err := m.Serve(t.Context(), "127.0.0.1:0"); err != nil {
		t.Errorf("Serve on nil: %v", err)
	}
	ln, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ServeListener(t.Context(), ln); err != nil {
		t.Errorf("ServeListener on nil: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("ServeListener on nil did not close the listener")
	}
}

func TestConcurrent(t *testing.T) {
	m := New("test")
	var wg sync.WaitGroup
	for i := range 8 {
		group := fmt.Sprintf("g%d", i%3)
		wg.Go(func() {
			for j := range 200 {
				m.SetState(group, election.States()[j%len(election.States())])
				m.Transition(group, election.StateCandidate, election.StateHolder)
				m.ProbeSent(group)
				m.ProbeRTT(group, time.Duration(j)*time.Microsecond)
				m.HealthResult(group, "c", j%2 == 0)
				m.HookRun(group, "h", nil)
				if j%50 == 0 {
					m.ForgetGroup(group)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := m.Registry().Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestServeListener(t *testing.T) {
	m := New("v9")
	m.SetState("web", election.StateHolder)
	ln, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.ServeListener(ctx, ln) }()

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Errorf("GET /metrics: %d", code)
	}
	want := fmt.Sprintf(`floatip_build_info{goversion=%q,version="v9"} 1`, runtime.Version())
	for _, s := range []string{want, `floatip_group_state{group="web",state="holder"} 1`, "go_goroutines"} {
		if !strings.Contains(body, s) {
			t.Errorf("GET /metrics lacks %q", s)
		}
	}

	code, body = get(t, base+"/")
	if code != http.StatusOK || !strings.Contains(body, `href="/metrics"`) {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, _ = get(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after cancel")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("server still answers after ctx ended")
	}
}

func TestServe(t *testing.T) {
	m := New("test")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Serve(ctx, "127.0.0.1:0"); err != nil {
		t.Errorf("Serve with ended ctx: %v", err)
	}
}

func TestServeCannotListen(t *testing.T) {
	m := New("test")
	ln, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String() // taken
	err = m.Serve(t.Context(), addr)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Serve on a taken address: %v, want an error naming %s", err, addr)
	}
}
