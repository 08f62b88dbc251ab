package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

type labSoakCmd struct {
	Duration time.Duration `default:"30m" help:"How long faults are injected."`
	Seed     uint64        `help:"Seed of the fault sequence; the same seed replays the same faults (default: from the clock, printed)."`
	Nodes    int           `default:"3" help:"Number of nodes."`
	Profile  string        `enum:"default,fast" default:"default" help:"Timing profile passed to floatip: ${enum}."`
	Every    time.Duration `default:"20s" help:"About one fault every so often (±25 %)."`
	Settle   time.Duration `default:"60s" help:"Time without faults at the end, before convergence is judged."`
	Faults   string        `help:"Comma-separated fault kinds to draw from (default: all)."`
	Out      string        `default:"." help:"Directory for the JSON report (soak-seed-N.json); empty for none."`
	Prefix   string        `default:"fsoak" help:"Name prefix of the lab's namespaces."`
	Flicker  time.Duration `name:"flicker-grace" help:"Tolerate two-holder stretches shorter than this (counted, not violations); default 0: none."`
}

func (c *labSoakCmd) Run() error {
	o := lab.SoakOptions{Duration: c.Duration, Seed: c.Seed, Nodes: c.Nodes, Profile: c.Profile, Every: c.Every,
		Settle: c.Settle, Prefix: c.Prefix, OutDir: c.Out, Out: os.Stdout, FlickerGrace: c.Flicker}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano() % 1_000_000)
	}
	if c.Faults != "" {
		for _, s := range strings.Split(c.Faults, ",") {
			k, err := lab.ParseFaultKind(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--faults: %w", err)
			}
			o.Kinds = append(o.Kinds, k)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := lab.RunSoak(ctx, o)
	switch {
	case ctx.Err() != nil:
		fmt.Printf("interrupted (seed %d)\n", o.Seed)
		return exitError{130}
	case errors.Is(err, lab.ErrSoakFailed):
		return exitError{1}
	case err != nil:
		return fmt.Errorf("soak (seed %d): %w", o.Seed, err)
	}
	return nil
}
