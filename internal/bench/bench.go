// Package bench runs the failover benchmark behind `floatip bench`: for each
// implementation (floatip with its two profiles, keepalived with two advert
// intervals), each fault and each trial it builds a fresh namespace lab
// (package lab), starts the node services and the implementation, breaks the
// VIP's holder while the lab client requests the VIP every 5 ms, and measures
// the outage, the failed requests and the time with two holders.
//
// The statistics (Median, Percentile, Summarize, TwoHolderTime, SettledAt)
// are pure functions; Run writes a Markdown table, CSV, JSON and one SVG
// picture per fault.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// AllFaults are the faults the benchmark applies to the VIP's holder at T0,
// in the default order (see lab.FaultKind for what each does). For
// partition the benchmark heals after PartitionFor; for service the daemons
// check the service (floatip: every 100 ms, fall 2; keepalived: track_script
// at its shortest, 1 s, fall 2).
var AllFaults = []lab.FaultKind{lab.FaultPowerOff, lab.FaultStop, lab.FaultCrash, lab.FaultPartition, lab.FaultService}

// The loss faults: LossPercent of the frames to and from the holder are
// dropped, both ways, for LossFor; no node fails, so the right outcome is
// that the VIP does not move (Trial.Moves 0, no second holder). They are not
// in AllFaults (each trial lasts LossFor): ask for them with --faults.
// loss30 to loss50 find the limit.
const (
	FaultLoss10 lab.FaultKind = "loss10"
	FaultLoss20 lab.FaultKind = "loss20"
	FaultLoss30 lab.FaultKind = "loss30"
	FaultLoss40 lab.FaultKind = "loss40"
	FaultLoss50 lab.FaultKind = "loss50"
)

// LossFaults maps each loss fault to its percentage.
var LossFaults = map[lab.FaultKind]int{FaultLoss10: 10, FaultLoss20: 20, FaultLoss30: 30, FaultLoss40: 40, FaultLoss50: 50}

// KnownFaults are every fault Run accepts: AllFaults and the loss faults.
var KnownFaults = append(slices.Clone(AllFaults), FaultLoss10, FaultLoss20, FaultLoss30, FaultLoss40, FaultLoss50)

// FaultNames is the names of KnownFaults, comma-separated.
func FaultNames() string {
	s := make([]string, len(KnownFaults))
	for i, f := range KnownFaults {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Kinds of implementation.
const (
	KindFloatip    = "floatip"
	KindKeepalived = "keepalived"
)

// Impl is one implementation under test.
type Impl struct {
	Name    string        // "floatip-fast", "keepalived-0.1s"
	Kind    string        // KindFloatip or KindKeepalived
	Profile string        // floatip's --profile
	Advert  time.Duration // keepalived's advert_int
	// Auth runs floatip with authenticated frames: a key generated for
	// the trial on every node (auth.require on).
	Auth bool
}

// Impls are the implementations `floatip bench` knows, by name.
var Impls = []Impl{
	{Name: "floatip", Kind: KindFloatip, Profile: "default"},
	{Name: "floatip-fast", Kind: KindFloatip, Profile: "fast"},
	{Name: "floatip-auth", Kind: KindFloatip, Profile: "default", Auth: true},
	{Name: "keepalived-1s", Kind: KindKeepalived, Advert: time.Second},
	{Name: "keepalived-0.1s", Kind: KindKeepalived, Advert: 100 * time.Millisecond},
}

// ImplNames is the names of Impls, in order.
func ImplNames() []string {
	var s []string
	for _, i := range Impls {
		s = append(s, i.Name)
	}
	return s
}

// LookupImpl returns the implementation called name.
func LookupImpl(name string) (Impl, error) {
	for _, i := range Impls {
		if i.Name == name {
			return i, nil
		}
	}
	return Impl{}, fmt.Errorf("unknown implementation %q (want one of %s)", name, strings.Join(ImplNames(), ", "))
}

// Timings of a trial.
const (
	Settle       = time.Second      // client traffic before the fault
	Tail         = 2 * time.Second  // sampling after recovery (and after a heal)
	CrashWindow  = 6 * time.Second  // a crash is watched at least this long: floatip's VIP lifetime (3 s) must run out
	PartitionFor = 3 * time.Second  // a partition lasts this long
	LossFor      = 20 * time.Second // a loss fault lasts this long
	RecoverLimit = 10 * time.Second // a client that has not recovered by then never will
	StartLimit   = 15 * time.Second // for the first holder to appear
)

// Config configures Run.
type Config struct {
	Binary     string          // floatip executable run inside the lab (see lab.Options.Binary)
	Keepalived string          // keepalived executable; "" looks it up in PATH
	Impls      []Impl          // default: all
	Faults     []lab.FaultKind // default: AllFaults
	// Stacks are the VIPs each implementation and fault is run with
	// (lab.Stack), in this order; default ipv4 alone. With any IPv6 stack
	// every trial runs on a lab that carries IPv6.
	Stacks []lab.Stack
	Trials int // per implementation and fault; default 5
	Nodes  int // default 2
	// ClientTimeout is the client's timeout per request; default 50 ms.
	// Tests of behaviour set it longer (below TCP's 1 s SYN retransmission,
	// so a SYN lost to a failover still fails its request) so that a slow
	// answer from a busy machine is not counted as a failure.
	ClientTimeout time.Duration
	Prefix        string // lab namespace prefix; default "fbn"
	OutDir        string // results directory; "" writes no files
	// Progress receives a line per trial and notes; nil discards them.
	Progress io.Writer
	// Table receives the Markdown table; nil discards it.
	Table io.Writer
}

func (c *Config) setDefaults() error {
	if len(c.Impls) == 0 {
		c.Impls = slices.Clone(Impls)
	}
	if len(c.Faults) == 0 {
		c.Faults = slices.Clone(AllFaults)
	}
	for _, f := range c.Faults {
		if !slices.Contains(KnownFaults, f) {
			return fmt.Errorf("unknown fault %q (want one of %s)", f, FaultNames())
		}
	}
	if len(c.Stacks) == 0 {
		c.Stacks = []lab.Stack{lab.StackIPv4}
	}
	for _, s := range c.Stacks {
		if !slices.Contains(lab.Stacks, s) {
			return fmt.Errorf("unknown stack %q (want ipv4, ipv6 or dual)", s)
		}
	}
	if c.Trials == 0 {
		c.Trials = 5
	}
	if c.Trials < 1 {
		return fmt.Errorf("--trials %d: want at least 1", c.Trials)
	}
	if c.Nodes == 0 {
		c.Nodes = 2
	}
	if c.ClientTimeout == 0 {
		c.ClientTimeout = DefaultClientTimeout
	}
	if c.Nodes < 2 || c.Nodes > 50 {
		return fmt.Errorf("--nodes %d: a failover needs 2 to 50 nodes", c.Nodes)
	}
	if c.Prefix == "" {
		c.Prefix = "fbn"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Table == nil {
		c.Table = io.Discard
	}
	return nil
}

// needIPv6 reports whether a stack of the run needs IPv6 in the lab.
func (c *Config) needIPv6() bool {
	return slices.ContainsFunc(c.Stacks, lab.Stack.NeedsIPv6)
}

// DefaultClientTimeout is Config.ClientTimeout's default.
const DefaultClientTimeout = 50 * time.Millisecond

// Priority is node i's priority (1-based): 200, 150, 100, 50, then 1.
func Priority(i int) int { return max(200-50*(i-1), 1) }

// Results is what Run measured.
type Results struct {
	Started         time.Time       `json:"started"`
	Host            string          `json:"host"`
	Nodes           int             `json:"nodes"`
	Trials          int             `json:"trials_per_case"`
	ClientTimeoutMS float64         `json:"client_timeout_ms"`
	Impls           []string        `json:"impls"`
	Faults          []lab.FaultKind `json:"faults"`
	Stacks          []lab.Stack     `json:"stacks"`
	Skipped         []string        `json:"skipped,omitempty"` // implementations not run, with why
	Summaries       []Summary       `json:"summaries"`
	Runs            []Trial         `json:"runs"`
	Leftovers       []string        `json:"leftovers,omitempty"` // what had to be cleaned up after the run
}

// Run runs the benchmark: every implementation × fault × trial on a fresh
// lab. A trial that cannot run is recorded with its error and the benchmark
// goes on; Run fails only on bad configuration, when ctx ends, when nothing
// could run at all, or when something was left behind. It writes the table to
// cfg.Table and the files to cfg.OutDir even when it fails after some trials
// ran.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Keepalived == "" {
		cfg.Keepalived, _ = exec.LookPath("keepalived")
	}
	if cfg.OutDir != "" {
		if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
			return nil, err
		}
	}
	host, _ := os.Hostname()
	res := &Results{Started: time.Now().UTC(), Host: host, Nodes: cfg.Nodes, Trials: cfg.Trials, Faults: cfg.Faults, Stacks: cfg.Stacks, ClientTimeoutMS: msOf(cfg.ClientTimeout)}
	var impls []Impl
	for _, im := range cfg.Impls {
		if im.Kind == KindKeepalived && cfg.Keepalived == "" {
			note := im.Name + ": keepalived is not installed (apt-get install keepalived)"
			fmt.Fprintf(cfg.Progress, "note: skipping %s\n", note)
			res.Skipped = append(res.Skipped, note)
			continue
		}
		impls = append(impls, im)
		res.Impls = append(res.Impls, im.Name)
	}
	preexisting := keepalivedPids()

	var runErr error
	r := &runner{cfg: cfg}
run:
	for _, im := range impls {
		for _, fault := range cfg.Faults {
			for n := 1; n <= cfg.Trials; n++ {
				// The stacks of one trial number back to back, so that a
				// change in the machine's load hits every stack alike.
				for _, stack := range cfg.Stacks {
					if err := ctx.Err(); err != nil {
						runErr = err
						break run
					}
					t := r.trial(ctx, im, fault, stack, n)
					if t.err != nil && ctx.Err() != nil {
						runErr = ctx.Err() // interrupted: the trial does not count
						break run
					}
					res.Runs = append(res.Runs, t)
					fmt.Fprintf(cfg.Progress, "%s%s %s trial %d/%d: %s\n", im.Name, stackTag(stack), fault, n, cfg.Trials, t.brief())
					// Every further trial would fail the same way.
					if errors.Is(t.err, errLeftover) || errors.Is(t.err, lab.ErrExists) {
						runErr = t.err
						break run
					}
				}
			}
		}
	}
	res.Summaries = Summarize(res.Runs)
	res.Leftovers = r.sweep(preexisting)
	if len(res.Leftovers) > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("left behind (now removed): %s", strings.Join(res.Leftovers, "; ")))
	}
	if len(res.Runs) > 0 {
		if err := WriteMarkdown(cfg.Table, res); err != nil {
			runErr = errors.Join(runErr, err)
		}
		if cfg.OutDir != "" {
			if err := WriteFiles(cfg.OutDir, res); err != nil {
				runErr = errors.Join(runErr, err)
			}
		}
	}
	if runErr == nil && len(res.Runs) > 0 && !slices.ContainsFunc(res.Runs, func(t Trial) bool { return t.Err == "" }) {
		runErr = errors.New("no trial ran; see the errors above")
	}
	if runErr == nil && len(impls) == 0 {
		runErr = errors.New("nothing to run")
	}
	return res, runErr
}

var errLeftover = errors.New("lab left behind")

// sweep removes anything the benchmark may have left: lab namespaces with the
// prefix and keepalived processes this run started. It reports what it found.
func (r *runner) sweep(preexisting map[int]bool) []string {
	var found []string
	if removed, err := lab.CleanupReport(r.cfg.Prefix); err != nil {
		found = append(found, fmt.Sprintf("cleaning up lab %s: %v", r.cfg.Prefix, err))
	} else if len(removed) > 0 {
		found = append(found, "namespaces "+strings.Join(removed, ", "))
	}
	for pid := range keepalivedPids() {
		if preexisting[pid] {
			continue
		}
		if r.started[pid] {
			killPid(pid)
			found = append(found, fmt.Sprintf("keepalived pid %d", pid))
		} else {
			fmt.Fprintf(r.cfg.Progress, "note: a keepalived (pid %d) not started by this benchmark is running; left alone\n", pid)
		}
	}
	return found
}
