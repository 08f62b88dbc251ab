package health

import (
	"github.com/floatip/floatip/internal/testutil"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// nextReport returns the next report, failing the test after within.
func nextReport(t *testing.T, m *Monitor, within time.Duration) Report {
	t.Helper()
	select {
	case r := <-m.Updates():
		t.Logf("report: healthy=%v changed=%q results=%+v", r.Healthy, r.Changed, r.Results)
		return r
	case <-time.After(within):
		t.Fatalf("no report within %v; results now %+v", within, m.Results())
		return Report{}
	}
}

// noReport fails if a report is waiting.
func noReport(t *testing.T, m *Monitor) {
	t.Helper()
	select {
	case r := <-m.Updates():
		t.Fatalf("unexpected report %+v", r)
	default:
	}
}

func TestNoChecksAlwaysHealthy(t *testing.T) {
	m := New(nil, nil)
	m.Start(t.Context())
	defer m.Close()
	select {
	case r := <-m.Updates():
		if !r.Healthy || r.Changed != "" || len(r.Results) != 0 {
			t.Fatalf("report %+v, want healthy with no results", r)
		}
	default:
		t.Fatal("Start sent no report for a group without checks")
	}
	m.Start(t.Context()) // a second Start does nothing
	noReport(t, m)
}

func TestFirstResultDecides(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Fall and Rise of 5 with a long interval: only the first result can
	// decide within the deadline.
	checks := []Check{
		{Name: "up", Kind: KindTCP, Address: ln.Addr().String(), Interval: time.Hour, Timeout: time.Second, Fall: 5, Rise: 5},
		{Name: "down", Kind: KindTCP, Address: closedPort(t), Interval: time.Hour, Timeout: time.Second, Fall: 5, Rise: 5},
	}
	m := New(checks, nil)
	if r := m.Results(); len(r) != 2 || r[0].Check != "up" || r[0].Healthy || !r[0].At.IsZero() {
		t.Fatalf("results before Start: %+v", r)
	}
	m.Start(t.Context())
	defer m.Close()
	r := nextReport(t, m, 5*time.Second)
	if r.Healthy || len(r.Results) != 2 {
		t.Fatalf("report %+v, want unhealthy with two results", r)
	}
	up, down := r.Results[0], r.Results[1]
	if up.Check != "up" || !up.Healthy || !strings.HasPrefix(up.Detail, "connected in") || up.At.IsZero() {
		t.Fatalf("up: %+v", up)
	}
	if down.Check != "down" || down.Healthy || down.Detail != "connect: connection refused" || down.At.IsZero() {
		t.Fatalf("down: %+v", down)
	}
}

// flipServer is a loopback HTTP service whose status the test sets; it
// counts the answers it gave with each status.
type flipServer struct {
	status atomic.Int32
	served [600]atomic.Int32
}

func (f *flipServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s := int(f.status.Load())
	f.served[s].Add(1)
	w.WriteHeader(s)
}

func TestMonitorEndToEnd(t *testing.T) {
	svc := &flipServer{}
	svc.status.Store(http.StatusOK)
	srv := loopbackServer(t, svc.ServeHTTP)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	const fall, rise = 3, 2
	logs := &testutil.SyncBuffer{}
	m := New([]Check{
		{Name: "port", Kind: KindTCP, Address: ln.Addr().String(), Interval: 10 * time.Millisecond, Timeout: time.Second},
		{Name: "web", Kind: KindHTTP, URL: srv.URL + "/healthz", Interval: 10 * time.Millisecond, Timeout: time.Second,
			Fall: fall, Rise: rise},
	}, slog.New(slog.NewTextHandler(logs, nil)))
	m.Start(t.Context())
	defer m.Close()

	r := nextReport(t, m, 5*time.Second)
	if !r.Healthy || len(r.Results) != 2 || r.Results[0].Check != "port" || r.Results[1].Check != "web" {
		t.Fatalf("first report %+v, want healthy, results in config order", r)
	}

	// The service fails: unhealthy only after fall failed checks.
	svc.status.Store(http.StatusServiceUnavailable)
	r = nextReport(t, m, 5*time.Second)
	if n := svc.served[503].Load(); n < fall {
		t.Fatalf("unhealthy after %d failed checks, want at least %d", n, fall)
	}
	if r.Healthy || r.Changed != "web" || !r.Results[0].Healthy || r.Results[1].Healthy ||
		!strings.Contains(r.Results[1].Detail, "503") {
		t.Fatalf("report %+v, want unhealthy caused by web with a 503", r)
	}
	if res := m.Results(); res[1].Healthy || !strings.Contains(res[1].Detail, "503") {
		t.Fatalf("Results() = %+v after the failure", res)
	}

	// The service recovers: healthy only after rise good checks.
	before := svc.served[200].Load()
	svc.status.Store(http.StatusOK)
	r = nextReport(t, m, 5*time.Second)
	if n := svc.served[200].Load() - before; n < rise {
		t.Fatalf("healthy after %d good checks, want at least %d", n, rise)
	}
	if !r.Healthy || r.Changed != "web" || !r.Results[1].Healthy || !strings.HasPrefix(r.Results[1].Detail, "200 OK") {
		t.Fatalf("report %+v, want healthy caused by web", r)
	}

	m.Close()
	noReport(t, m) // health did not change again
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="health check failed" check=web detail="503 Service Unavailable`,
		`level=INFO msg="health check recovered" check=web detail="200 OK`,
	} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log has not exactly one %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "check=port") {
		t.Errorf("log mentions the port check, whose state never changed:\n%s", out)
	}
}

func TestNewerReportReplacesUnread(t *testing.T) {
	m := New(nil, nil)
	m.publish(Report{Changed: "a"})
	m.publish(Report{Healthy: true, Changed: "b"}) // must not block
	if r := <-m.Updates(); r.Changed != "b" || !r.Healthy {
		t.Fatalf("got %+v, want the newer report", r)
	}
	noReport(t, m)
}

func TestSlowReaderDoesNotBlockChecks(t *testing.T) {
	svc := &flipServer{}
	svc.status.Store(http.StatusOK)
	srv := loopbackServer(t, svc.ServeHTTP)
	m := New([]Check{{Name: "web", Kind: KindHTTP, URL: srv.URL, Interval: 5 * time.Millisecond, Timeout: time.Second}}, nil)
	m.Start(t.Context())
	defer m.Close()
	// Nobody reads Updates while the state flips many times; the check
	// keeps running, and the one waiting report is the latest state.
	for i := range 6 {
		status := http.StatusServiceUnavailable
		if i%2 == 1 {
			status = http.StatusOK
		}
		svc.status.Store(int32(status))
		waitFor(t, 5*time.Second, func() bool { return m.Results()[0].Healthy == (status == http.StatusOK) })
	}
	r := nextReport(t, m, time.Second)
	if !r.Healthy {
		t.Fatalf("waiting report %+v, want the latest (healthy) one", r)
	}
	noReport(t, m)
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseStopsRunningExecCheck(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	m := New([]Check{{Name: "script", Kind: KindExec, Interval: time.Hour, Timeout: time.Minute,
		Command: []string{"sh", "-c", `echo $$ > "$0"; exec sleep 30`, pidFile}}}, nil)
	m.Start(t.Context())
	waitFor(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	start := time.Now()
	m.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Close took %v with an exec check running", el)
	}
	for _, pid := range readPids(t, pidFile) {
		waitGone(t, pid)
	}
	noReport(t, m) // the interrupted run is not a result
	if r := m.Results(); !r[0].At.IsZero() {
		t.Fatalf("interrupted run recorded: %+v", r)
	}
	m.Close() // idempotent
}

func TestCloseWithoutStart(t *testing.T) {
	m := New([]Check{{Name: "x", Kind: KindTCP, Address: "127.0.0.1:1"}}, nil)
	m.Close()
	m.Start(t.Context()) // after Close: does nothing
	m.Close()
	noReport(t, m)
}
