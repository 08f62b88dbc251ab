package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/bench"
	"github.com/floatip/floatip/internal/lab"
)

// benchCmd is `floatip bench`: the failover benchmark against keepalived.
type benchCmd struct {
	Trials     int           `help:"Trials per implementation and fault (default 5; with --quorum 3)."`
	Faults     []string      `placeholder:"FAULT" help:"Faults to apply to the holder (comma-separated): poweroff, stop, crash, partition, service (the default), loss10, loss20, loss30, loss40, loss50 (lossN drops N % of the holder's frames both ways for 20 s, no node fails; not run by default). With --quorum: partition, etcd-cut, freeze, quorum-lost, poweroff, stop (all by default; floatip-fence runs poweroff only unless faults are named)."`
	Impls      []string      `placeholder:"IMPL" help:"Implementations to compare (comma-separated): floatip, floatip-fast, floatip-auth, keepalived-1s, keepalived-0.1s (all by default; keepalived ones are skipped when keepalived is not installed). With --quorum: floatip, floatip-fence, vip-manager (all by default)."`
	Quorum     string        `enum:",etcd" default:"" help:"Run the quorum benchmark instead: 3 nodes, each with an etcd member; floatip with quorum (and with fencing) against vip-manager under a Patroni-like leader loop, same etcd, same TTL."`
	TTL        time.Duration `name:"ttl" default:"5s" help:"With --quorum: the lease and leader key TTL (whole seconds, at least 3 s)."`
	Logs       string        `placeholder:"DIR" help:"With --quorum: keep every trial's daemon output in DIR/IMPL-FAULT-N/NODE.log."`
	EtcdLeader string        `name:"etcd-leader" enum:"elsewhere,holder" default:"elsewhere" help:"With --quorum: where etcd's leader is at the fault: elsewhere (another member than the holder's) or holder (the holder's member, which a power-off or partition then takes down with it)."`
	Nodes      int           `default:"2" help:"Nodes per lab (priorities 200, 150, 100, ...)."`
	Out        string        `default:"bench-results" placeholder:"DIR" help:"Directory for the CSV, JSON and SVG results."`
	Prefix     string        `default:"fbn" help:"Name prefix of the lab's namespaces."`
	IPv6       bool          `name:"ipv6" help:"Run every implementation and fault twice, with the IPv4 VIP and with the IPv6 VIP 2001:db8:18::100 (the same lab, with IPv6, for both); the table puts each IPv6 row under its IPv4 one with the ratio of their outages."`
	DualStack  bool          `name:"dual-stack" help:"Also run a dual-stack group (198.18.0.100 and 2001:db8:18::100 in one group; the client requests the IPv6 one) and measure the time its two addresses were on different nodes. Implies the IPv4 rows; add --ipv6 for the IPv6-only ones."`

	Scale bool          `help:"Run the scale benchmark instead: 1000 VIPs in 10 groups on 3 nodes; failover ratio (worst sampled VIP outage / single-VIP outage), idle CPU and RSS per daemon, over --trials trials (--faults, --impls and --nodes do not apply)."`
	Idle  time.Duration `default:"10s" help:"With --scale: the window over which idle CPU is measured."`
}

func (c *benchCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.Scale {
		return c.runScale(ctx)
	}
	if c.Quorum != "" {
		return c.runQuorum(ctx)
	}
	if c.Trials == 0 {
		c.Trials = 5
	}
	var impls []bench.Impl
	for _, name := range c.Impls {
		im, err := bench.LookupImpl(name)
		if err != nil {
			return err
		}
		impls = append(impls, im)
	}
	var faults []lab.FaultKind
	for _, f := range c.Faults {
		k := lab.FaultKind(f)
		if !slices.Contains(bench.KnownFaults, k) {
			return fmt.Errorf("--faults: unknown fault %q (want one of %s)", f, bench.FaultNames())
		}
		faults = append(faults, k)
	}
	stacks := []lab.Stack{lab.StackIPv4}
	if c.IPv6 {
		stacks = append(stacks, lab.StackIPv6)
	}
	if c.DualStack {
		stacks = append(stacks, lab.StackDual)
	}
	_, err := bench.Run(ctx, bench.Config{
		Stacks:   stacks,
		Impls:    impls,
		Faults:   faults,
		Trials:   c.Trials,
		Nodes:    c.Nodes,
		Prefix:   c.Prefix,
		OutDir:   c.Out,
		Progress: os.Stderr,
		Table:    os.Stdout,
	})
	return finish(ctx, err, c.Out)
}

// finish reports how a benchmark ended: interrupted, failed, or where its
// results are.
func finish(ctx context.Context, err error, results string) error {
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "interrupted")
		return exitError{130}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results in %s\n", results)
	return nil
}

func (c *benchCmd) runQuorum(ctx context.Context) error {
	var impls []bench.QuorumImpl
	for _, name := range c.Impls {
		im, err := bench.LookupQuorumImpl(name)
		if err != nil {
			return fmt.Errorf("--impls: %w", err)
		}
		impls = append(impls, im)
	}
	var faults []lab.FaultKind
	for _, f := range c.Faults {
		faults = append(faults, lab.FaultKind(f))
	}
	_, err := bench.RunQuorum(ctx, bench.QuorumConfig{
		Impls:          impls,
		Faults:         faults,
		Trials:         c.Trials,
		TTL:            c.TTL,
		LeaderOnHolder: c.EtcdLeader == "holder",
		LogDir:         c.Logs,
		Prefix:         c.Prefix,
		OutDir:         c.Out,
		Progress:       os.Stderr,
		Table:          os.Stdout,
	})
	return finish(ctx, err, c.Out)
}

func (c *benchCmd) runScale(ctx context.Context) error {
	_, err := bench.RunScale(ctx, bench.ScaleConfig{
		Trials:   c.Trials,
		Prefix:   c.Prefix,
		Idle:     c.Idle,
		OutDir:   c.Out,
		Progress: os.Stderr,
		Table:    os.Stdout,
	})
	return finish(ctx, err, filepath.Join(c.Out, bench.FileScaleJSON))
}
