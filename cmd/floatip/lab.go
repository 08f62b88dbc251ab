package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// labCmd is `floatip lab`: the live failover demo by default, plus the
// hidden helpers the lab runs inside its namespaces.
type labCmd struct {
	Demo      labDemoCmd      `cmd:"" default:"withargs" help:"Build a namespace lab, run floatip on every node, break the holder and show the failover (the default)."`
	Soak      labSoakCmd      `cmd:"" help:"Chaos soak: seeded random faults on a namespace lab for a while; checks the invariants and reports (needs root)."`
	Serve     labServeCmd     `cmd:"" hidden:"" help:"HTTP server answering its node name (run inside a lab node)."`
	Client    labClientCmd    `cmd:"" hidden:"" help:"Request a target over fresh TCP connections, one JSON line per request (run inside the lab)."`
	HTTPCheck labHTTPCheckCmd `cmd:"" name:"httpcheck" hidden:"" help:"Exit 0 if URL answers 200 within the timeout (keepalived's track_script in the benchmark)."`
}

type labServeCmd struct {
	Name   string `required:"" help:"Node name to answer with."`
	Listen string `default:":8080" help:"Address to listen on."`
}

func (c *labServeCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.Serve(ctx, c.Name, c.Listen, os.Stdout)
}

type labHTTPCheckCmd struct {
	URL     string        `required:"" help:"URL to GET."`
	Timeout time.Duration `default:"500ms" help:"Timeout."`
}

func (c labHTTPCheckCmd) Run() error {
	hc := &http.Client{Timeout: c.Timeout}
	resp, err := hc.Get(c.URL)
	if err != nil {
		return exitError{1}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return exitError{1}
	}
	return nil
}

type labClientCmd struct {
	Target   string        `required:"" help:"host:port to request."`
	Every    time.Duration `default:"5ms" help:"Interval between requests."`
	Timeout  time.Duration `default:"50ms" help:"Timeout per request."`
	Count    int           `help:"Stop after this many requests (0: no limit)."`
	Duration time.Duration `default:"10m" help:"Stop after this long."`
}

func (c *labClientCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return lab.RunClient(ctx, lab.ClientConfig{
		Target: c.Target, Every: c.Every, Timeout: c.Timeout, Count: c.Count, Duration: c.Duration,
	}, os.Stdout)
}

type labDemoCmd struct {
	Fault   string `enum:"poweroff,stop,crash,partition,service" default:"poweroff" help:"What happens to the holder: poweroff (cut its link, kill everything), stop (SIGTERM floatip), crash (SIGKILL floatip), partition (cut its link for 3 s), service (kill its HTTP service). One of: ${enum}."`
	Nodes   int    `default:"3" help:"Number of nodes (priorities 200, 150, 100, ...)."`
	Profile string `enum:"default,fast" default:"default" help:"Timing profile passed to floatip: ${enum}."`
	Keep    bool   `help:"Keep the namespaces afterwards (processes are stopped) to look around."`
	Cleanup bool   `help:"Remove a lab left behind (namespaces with the prefix and everything in them), then exit."`
	Prefix  string `default:"flab" help:"Name prefix of the lab's namespaces."`
}

func (c *labDemoCmd) Run() error {
	out := os.Stdout
	if c.Cleanup {
		removed, err := lab.CleanupReport(c.Prefix)
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			fmt.Fprintf(out, "no lab named %s found\n", c.Prefix)
		} else {
			fmt.Fprintf(out, "removed %s\n", strings.Join(removed, ", "))
		}
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := lab.RunDemo(ctx, lab.DemoOptions{
		Fault: lab.FaultKind(c.Fault), Nodes: c.Nodes, Profile: c.Profile, Keep: c.Keep, Prefix: c.Prefix, Out: out,
	})
	switch {
	case ctx.Err() != nil:
		return exitError{130}
	case errors.Is(err, lab.ErrDemoFailed):
		return exitError{1}
	}
	return err
}
