package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// ScaleConfig configures RunScale: `floatip bench --scale`.
type ScaleConfig struct {
	Binary string // floatip executable run inside the lab (see lab.Options.Binary)
	Trials int    // default 5
	Prefix string // lab namespace prefix; default "fbs"
	// Idle is the window over which the idle CPU is measured; default 10 s.
	Idle time.Duration
	// OutDir receives scale.json and, for a failed trial, each daemon's
	// output (scale-trial<N>-<node>.log); "" writes no file.
	OutDir string
	// Progress receives a line per trial; nil discards them.
	Progress io.Writer
	// Table receives the Markdown table; nil discards it.
	Table io.Writer
}

// The scale benchmark's lab: as test/integration's TestManyVIPs.
const (
	ScaleNodes        = 3
	ScaleGroups       = 10
	ScaleVIPsPerGroup = 100
	FileScaleJSON     = "scale.json"
)

// ScaleTrial is one run of the scale benchmark on a fresh lab.
type ScaleTrial struct {
	Trial int    `json:"trial"` // 1-based
	Err   string `json:"error,omitempty"`

	// Idle, with every group held by n1 and n2, n3 standing by: CPU time
	// per daemon over the window in % of one core (the scheduler's count,
	// /proc/PID/task/*/schedstat) and RSS in MiB, in node order n1, n2, n3.
	IdleWindowMS float64   `json:"idle_window_ms"`
	IdleCPU      []float64 `json:"idle_cpu_percent"`
	RSSMB        []float64 `json:"rss_mb"`

	// After powering off n1: the single-VIP reference outage (client every
	// 5 ms), the worst outage among the sampled VIPs (first and last of each
	// group, every 25 ms), their ratio, and when every VIP was on n2.
	ReferenceMS float64 `json:"reference_outage_ms"`
	WorstMS     float64 `json:"worst_sampled_outage_ms"`
	Worst       string  `json:"worst_sampled"`
	Ratio       float64 `json:"ratio"`
	AllMovedMS  float64 `json:"all_on_n2_ms"`
}

// ScaleResults is what RunScale measured.
type ScaleResults struct {
	Started time.Time    `json:"started"`
	Host    string       `json:"host"`
	Trials  []ScaleTrial `json:"trials"`
}

// RunScale runs the scale benchmark: per trial a fresh lab of 3 nodes with
// 1000 VIPs in 10 groups (lab.StartScale), the idle cost of each daemon,
// then a power off of the holder of every group (lab.PowerOffFailover). A
// trial that fails is recorded with its error and the benchmark goes on.
func RunScale(ctx context.Context, cfg ScaleConfig) (*ScaleResults, error) {
	if cfg.Trials == 0 {
		cfg.Trials = 5
	}
	if cfg.Trials < 1 {
		return nil, fmt.Errorf("--trials %d: want at least 1", cfg.Trials)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "fbs"
	}
	if cfg.Idle == 0 {
		cfg.Idle = 10 * time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Table == nil {
		cfg.Table = io.Discard
	}
	host, _ := os.Hostname()
	res := &ScaleResults{Started: time.Now().UTC(), Host: host}
	var runErr error
	for n := 1; n <= cfg.Trials; n++ {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		t := ScaleTrial{Trial: n}
		if err := scaleTrial(ctx, cfg, &t); err != nil {
			if ctx.Err() != nil {
				runErr = ctx.Err()
				break
			}
			t.Err = err.Error()
			if errors.Is(err, lab.ErrExists) {
				runErr = err
			}
		}
		res.Trials = append(res.Trials, t)
		fmt.Fprintf(cfg.Progress, "scale trial %d/%d: %s\n", n, cfg.Trials, t.brief())
		if runErr != nil {
			break
		}
	}
	if len(res.Trials) > 0 {
		runErr = errors.Join(runErr, WriteScaleMarkdown(cfg.Table, res))
		if cfg.OutDir != "" {
			runErr = errors.Join(runErr, writeScaleJSON(cfg.OutDir, res))
		}
	}
	if runErr == nil && !slices.ContainsFunc(res.Trials, func(t ScaleTrial) bool { return t.Err == "" }) {
		runErr = errors.New("no scale trial ran; see the errors above")
	}
	return res, runErr
}

func (t ScaleTrial) brief() string {
	if t.Err != "" {
		return "ERROR " + t.Err
	}
	return fmt.Sprintf("ratio %.2f (worst sampled %.0f ms, single VIP %.0f ms), all VIPs on n2 after %.0f ms, idle CPU %s %% of a core, RSS %s MB",
		t.Ratio, t.WorstMS, t.ReferenceMS, t.AllMovedMS, joinFloats(t.IdleCPU, 2), joinFloats(t.RSSMB, 1))
}

func joinFloats(fs []float64, prec int) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'f', prec, 64)
	}
	return strings.Join(s, "/")
}

func scaleTrial(ctx context.Context, cfg ScaleConfig, t *ScaleTrial) (err error) {
	l, err := lab.Up(ctx, lab.Options{Prefix: cfg.Prefix, Nodes: ScaleNodes, Binary: cfg.Binary})
	if err != nil {
		return err
	}
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("tearing down: %w", derr))
		}
	}()
	for _, n := range l.Nodes() {
		if _, err := n.StartService(ctx); err != nil {
			return err
		}
	}
	s, err := lab.StartScale(ctx, l, lab.ScaleOptions{Groups: ScaleGroups, VIPsPerGroup: ScaleVIPsPerGroup})
	if err != nil {
		return err
	}
	defer s.Close()
	if cfg.OutDir != "" {
		// A failed trial leaves the daemons' logs for a look at why.
		defer func() {
			if err != nil {
				err = errors.Join(err, writeDaemonLogs(cfg.OutDir, t.Trial, l))
			}
		}()
	}

	// Idle: nothing happens but probes, beacons and renewals.
	var pids []int
	bin, err := filepath.EvalSymlinks(l.Binary)
	if err != nil {
		return err
	}
	for _, n := range l.Nodes() {
		// `ip netns exec NS floatip ...` execs floatip: the process the lab
		// started is the daemon itself.
		pid := n.Daemon().Pid()
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != bin {
			return fmt.Errorf("%s: pid %d runs %q (err %v), not the floatip daemon %s", n.Name, pid, exe, err, bin)
		}
		pids = append(pids, pid)
	}
	before := make([]time.Duration, len(pids))
	for i, pid := range pids {
		if before[i], err = CPUTime(pid); err != nil {
			return err
		}
	}
	from := time.Now()
	if err := lab.Sleep(ctx, cfg.Idle); err != nil {
		return err
	}
	window := time.Since(from)
	t.IdleWindowMS = msOf(window)
	for i, pid := range pids {
		after, err := CPUTime(pid)
		if err != nil {
			return err
		}
		rss, err := RSS(pid)
		if err != nil {
			return err
		}
		t.IdleCPU = append(t.IdleCPU, round2(100*float64(after-before[i])/float64(window)))
		t.RSSMB = append(t.RSSMB, round2(float64(rss)/(1<<20)))
	}

	f, err := s.PowerOffFailover(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	t.ReferenceMS = msOf(f.Reference.Outage)
	t.WorstMS = msOf(f.Sampled[f.Worst].Outage)
	t.Worst = f.Worst
	t.Ratio = round2(f.Ratio())
	t.AllMovedMS = msOf(f.AllOnNext)
	if f.MaxOnTwo > 0 || f.OthersClaimed > 0 {
		return fmt.Errorf("not a clean failover: up to %d VIPs on two nodes, n3 became holder %d times", f.MaxOnTwo, f.OthersClaimed)
	}
	if f.Reference.Outage <= 0 {
		return errors.New("the single-VIP reference client saw no outage: no ratio")
	}
	return nil
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// CPUTime is the CPU time pid's threads have run so far, by the scheduler's
// own count (the first field of /proc/PID/task/TID/schedstat, nanoseconds),
// which is exact where the tick-sampled utime and stime of /proc/PID/stat
// are not.
func CPUTime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var ns uint64
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended meanwhile
		}
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("%s/%s/schedstat: empty", dir, task.Name())
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %q: %w", dir, task.Name(), f[0], err)
		}
		ns += v
	}
	return time.Duration(ns), nil
}

// RSS is pid's resident set size in bytes (VmRSS of /proc/PID/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: %q", pid, line)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// scaleRow is one measure of the scale table: a value per good trial.
type scaleRow struct {
	name, unit string
	prec       int
	values     []float64
}

// scaleRows gathers the measures of the trials without an error.
func scaleRows(res *ScaleResults) (rows []scaleRow, good int) {
	rows = []scaleRow{
		{name: "failover ratio (worst sampled VIP / single VIP)", prec: 2},
		{name: "single-VIP outage", unit: " ms"},
		{name: "worst sampled VIP outage", unit: " ms"},
		{name: "all 1000 VIPs on n2 after", unit: " ms"},
		{name: "idle CPU, holder (n1)", unit: " %", prec: 2},
		{name: "idle CPU, standby (n2, n3)", unit: " %", prec: 2},
		{name: "RSS, holder (n1)", unit: " MB", prec: 1},
		{name: "RSS, standby (n2, n3)", unit: " MB", prec: 1},
	}
	for _, t := range res.Trials {
		if t.Err != "" || len(t.IdleCPU) < 2 || len(t.RSSMB) < 2 {
			continue
		}
		good++
		add := func(i int, v ...float64) { rows[i].values = append(rows[i].values, v...) }
		add(0, t.Ratio)
		add(1, t.ReferenceMS)
		add(2, t.WorstMS)
		add(3, t.AllMovedMS)
		add(4, t.IdleCPU[0])
		add(5, t.IdleCPU[1:]...)
		add(6, t.RSSMB[0])
		add(7, t.RSSMB[1:]...)
	}
	return rows, good
}

// WriteScaleMarkdown writes the scale table: per measure the median, the
// 90th percentile, min and max over the trials without an error.
func WriteScaleMarkdown(w io.Writer, res *ScaleResults) error {
	rows, good := scaleRows(res)
	b := &bytes.Buffer{}
	fmt.Fprintf(b, "Scale benchmark: %d nodes, %d VIPs in %d groups, %d trial(s)", ScaleNodes, ScaleGroups*ScaleVIPsPerGroup, ScaleGroups, len(res.Trials))
	if bad := len(res.Trials) - good; bad > 0 {
		fmt.Fprintf(b, " (%d failed, left out)", bad)
	}
	b.WriteString(".\n\n| measure | samples | median | p90 | min | max |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if len(r.values) == 0 {
			fmt.Fprintf(b, "| %s | 0 | – | – | – | – |\n", r.name)
			continue
		}
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', r.prec, 64) + r.unit }
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", r.name, len(r.values),
			f(Median(r.values)), f(Percentile(r.values, 90)), f(slices.Min(r.values)), f(slices.Max(r.values)))
	}
	b.WriteString("\nFailover: n1, holder of every group, is powered off; a client requests the first VIP of g0 every 5 ms (the single-VIP reference) and one client each the first and last VIP of every group every 25 ms (the sampled VIPs). ")
	b.WriteString("Outage: from the power off to the first successful request after the last failed one. ")
	b.WriteString("Idle CPU: the daemon's CPU time (the scheduler's count of all its threads) over the idle window before the fault, in % of one core; the standby rows pool n2 and n3.\n")
	for _, t := range res.Trials {
		if t.Err != "" {
			fmt.Fprintf(b, "\nTrial %d failed: %s\n", t.Trial, t.Err)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeDaemonLogs writes each node's daemon output to
// DIR/scale-trial<N>-<node>.log.
func writeDaemonLogs(dir string, trial int, l *lab.Lab) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, n := range l.Nodes() {
		d := n.Daemon()
		if d == nil {
			continue
		}
		var b bytes.Buffer
		for _, line := range d.Lines() {
			b.WriteString(line.Text + "\n")
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, fmt.Sprintf("scale-trial%d-%s.log", trial, n.Name)), b.Bytes(), 0o644))
	}
	return errors.Join(errs...)
}

func writeScaleJSON(dir string, res *ScaleResults) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, FileScaleJSON), append(b, '\n'), 0o644)
}
