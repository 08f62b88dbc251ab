package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/bench"
	"github.com/floatip/floatip/internal/lab"
)

// benchCmd is `floatip bench`: the failover benchmark against keepalived.
type benchCmd struct {
	Trials    int      `default:"5" help:"Trials per implementation and fault."`
	Faults    []string `default:"poweroff,stop,crash,partition,service" enum:"poweroff,stop,crash,partition,service,loss10,loss20,loss30,loss40,loss50" help:"Faults to apply to the holder (comma-separated): ${enum} (lossN drops N % of the holder's frames both ways for 20 s, no node fails; not run by default)."`
	Impls     []string `default:"floatip,floatip-fast,floatip-auth,keepalived-1s,keepalived-0.1s" enum:"floatip,floatip-fast,floatip-auth,keepalived-1s,keepalived-0.1s" help:"Implementations to compare (comma-separated): ${enum}. keepalived ones are skipped when keepalived is not installed."`
	Nodes     int      `default:"2" help:"Nodes per lab (priorities 200, 150, 100, ...)."`
	Out       string   `default:"bench-results" placeholder:"DIR" help:"Directory for the CSV, JSON and SVG results."`
	Prefix    string   `default:"fbn" help:"Name prefix of the lab's namespaces."`
	IPv6      bool     `name:"ipv6" help:"Run every implementation and fault twice, with the IPv4 VIP and with the IPv6 VIP 2001:db8:18::100 (the same lab, with IPv6, for both); the table puts each IPv6 row under its IPv4 one with the ratio of their outages."`
	DualStack bool     `name:"dual-stack" help:"Also run a dual-stack group (198.18.0.100 and 2001:db8:18::100 in one group; the client requests the IPv6 one) and measure the time its two addresses were on different nodes. Implies the IPv4 rows; add --ipv6 for the IPv6-only ones."`

	Scale bool          `help:"Run the scale benchmark instead: 1000 VIPs in 10 groups on 3 nodes; failover ratio (worst sampled VIP outage / single-VIP outage), idle CPU and RSS per daemon, over --trials trials (--faults, --impls and --nodes do not apply)."`
	Idle  time.Duration `default:"10s" help:"With --scale: the window over which idle CPU is measured."`
}

func (c *benchCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.Scale {
		return c.runScale(ctx)
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
		faults = append(faults, lab.FaultKind(f))
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
