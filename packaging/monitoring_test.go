package packaging

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/metrics"
)

// planned are metrics that the rules or the dashboard use before the daemon
// has them; each names the work that adds it. Keep this list short.
var planned = map[string]string{}

// need runs name from PATH; without it the test skips, or fails under CI.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

func TestAlertRules(t *testing.T) {
	promtool := need(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "floatip-alerts.yaml"},
		{"test", "rules", "floatip-alerts.test.yaml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// metricName finds floatip's metric names in a PromQL expression. Every
// floatip metric has the prefix, so a pattern is enough (promtool checks the
// syntax). Histogram series map to their family.
var metricName = regexp.MustCompile(`\bfloatip_[a-zA-Z0-9_]+`)

func family(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && base == "floatip_probe_rtt_seconds" {
			return base
		}
	}
	return name
}

// usedMetrics returns the floatip metrics the alert rules and the
// dashboard's queries use, each with where.
func usedMetrics(t *testing.T) map[string]string {
	used := map[string]string{}
	add := func(where, expr string) {
		for _, m := range metricName.FindAllString(expr, -1) {
			if _, ok := used[family(m)]; !ok {
				used[family(m)] = where
			}
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile("floatip-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("floatip-alerts.yaml: %v", err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			add("alert "+r.Alert, r.Expr)
			n++
		}
	}
	if n == 0 {
		t.Fatal("floatip-alerts.yaml has no rules")
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	data, err = os.ReadFile("floatip-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("floatip-dashboard.json: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("floatip-dashboard.json has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			add("dashboard panel "+p.Title, q.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		add("dashboard variable "+v.Name, v.Definition)
	}
	return used
}

// served returns the metric families the daemon's /metrics endpoint serves
// once every kind of event has happened once: the metrics package's
// registry and handler, as the daemon starts them, scraped over HTTP.
func served(t *testing.T) map[string]bool {
	m := metrics.New("test")
	m.SetState("web", election.StateHolder)
	m.Transition("web", election.StateCandidate, election.StateHolder)
	m.Conflict("web")
	m.Claim("web")
	m.Release("web")
	m.ProbeSent("web")
	m.ProbeUnanswered("web")
	m.ProbeRTT("web", time.Millisecond)
	m.Holding("web", 2, true)
	m.HealthResult("web", "http", false)
	m.HookRun("web", "on-change", errors.New("exit status 1"))
	m.HookRun("web", "fence", nil)
	m.GroupGuard("web", 1, 0, 0, 0)
	m.Spoofed()
	m.QuorumSource(func() []metrics.QuorumGroup {
		return []metrics.QuorumGroup{{Group: "web", Reachable: true, Deadline: time.Now()}}
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	names := map[string]bool{}
	for n := range fams {
		names[n] = true
	}
	return names
}

// TestMonitoringMetricsExist: every metric the alert rules and the
// dashboard query is one the daemon serves (or is in the planned list).
func TestMonitoringMetricsExist(t *testing.T) {
	used := usedMetrics(t)
	have := served(t)
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch {
		case have[n] && planned[n] != "":
			t.Errorf("%s is served now: remove it from the planned list", n)
		case have[n]:
		case planned[n] != "":
			t.Logf("%s (%s) is planned: %s", n, used[n], planned[n])
		default:
			t.Errorf("%s, used by %s, is not a metric of the daemon", n, used[n])
		}
	}
	// The alerts the project promises are all there.
	for _, want := range []string{"floatip_group_state", "floatip_transitions_total", "floatip_health_check_up", "floatip_hook_failures_total", "floatip_foreign_claims_total"} {
		if _, ok := used[want]; !ok {
			t.Errorf("no rule or panel uses %s", want)
		}
	}
	if !slices.Contains(names, "floatip_probe_rtt_seconds") {
		t.Error("the dashboard does not show the probe round trip")
	}
}

// TestDashboardQueriesParse: every dashboard query is valid PromQL, checked
// by promtool as recording rules once Grafana's variables are filled in.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := need(t, "promtool")
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile("floatip-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$group", ".*", "$instance", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			rules = append(rules, rule{Record: "dashboard:query", Expr: vars.Replace(q.Expr)})
		}
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := t.TempDir() + "/dashboard-rules.yaml"
	if err := os.WriteFile(f, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("a dashboard query is not valid PromQL: %v\n%s", err, res)
	}
}
