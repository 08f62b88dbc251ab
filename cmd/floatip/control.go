package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/floatip/floatip/internal/control"
)

// socketFlag is shared by the commands that talk to the running daemon. The
// default must equal control.DefaultSocket.
type socketFlag struct {
	Socket string `default:"/run/floatip/floatip.sock" env:"FLOATIP_SOCKET" placeholder:"PATH" help:"Control socket of the running daemon (default: ${default}; the environment variable FLOATIP_SOCKET overrides the default)."`
}

func (f socketFlag) client() control.Client { return control.Client{Path: f.Socket} }

// controlContext ends on SIGINT/SIGTERM, so Ctrl-C stops a wait for the daemon.
func controlContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

type statusCmd struct {
	socketFlag
	JSON     bool          `name:"json" help:"Print the status as JSON (field names are stable, for scripts); with --watch, one JSON object per line per refresh."`
	Watch    bool          `help:"Redraw the status in place every --interval until Ctrl-C."`
	Interval time.Duration `default:"1s" help:"How often --watch refreshes (default: ${default})."`
}

func (c statusCmd) Run() error {
	ctx, stop := controlContext()
	defer stop()
	if !c.Watch {
		return c.show(ctx, os.Stdout, time.Now())
	}
	if c.Interval <= 0 {
		return fmt.Errorf("--interval: must be positive, got %s", c.Interval)
	}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	return c.watch(ctx, os.Stdout, isTerminal(os.Stdout), t.C, time.Now)
}

// isTerminal reports whether f is a character device (a terminal), where
// --watch may redraw in place; a pipe or a file gets plain text.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// watch shows the status at once and again on every tick until ctx ends
// (Ctrl-C), which is not an error. A daemon that cannot be reached is
// shown as such and asked again on the next tick: a watch outlives a
// daemon restart. On a terminal (redraw) each view replaces the last; into
// a pipe or a file the views follow each other, a blank line between
// them, with no escape codes to garble a log or a grep.
func (c statusCmd) watch(ctx context.Context, w io.Writer, redraw bool, ticks <-chan time.Time, now func() time.Time) error {
	for first := true; ; first = false {
		switch {
		case c.JSON:
		case redraw:
			fmt.Fprint(w, clearScreen)
		case !first:
			fmt.Fprintln(w)
		}
		if err := c.show(ctx, w, now()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if c.JSON {
				fmt.Fprintf(os.Stderr, "floatip: %v\n", err)
			} else {
				fmt.Fprintf(w, "floatip status at %s: %v\n", now().Format(time.TimeOnly), err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// show asks the daemon once and prints the answer.
func (c statusCmd) show(ctx context.Context, w io.Writer, now time.Time) error {
	st, err := c.client().Status(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		var b []byte
		if c.Watch {
			b, err = json.Marshal(st)
		} else {
			b, err = json.MarshalIndent(st, "", "  ")
		}
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	return control.FormatStatus(w, st, now)
}

type releaseCmd struct {
	socketFlag
	Group string `placeholder:"NAME" help:"Only this group (default: all)."`
}

func (c releaseCmd) Run() error {
	ctx, stop := controlContext()
	defer stop()
	if err := c.client().Release(ctx, c.Group); err != nil {
		return err
	}
	fmt.Printf("released %s: a standby takes it over (if no node can, every standby on hold or none at all, this node claims it again after its checks, so the VIP is never left on no node; `floatip hold` keeps it away for good)\n", groupsText(c.Group))
	return nil
}

type holdCmd struct {
	socketFlag
	Group string `placeholder:"NAME" help:"Only this group (default: all)."`
	Off   bool   `help:"End the maintenance hold."`
}

func (c holdCmd) Run() error {
	ctx, stop := controlContext()
	defer stop()
	if err := c.client().Hold(ctx, c.Group, !c.Off); err != nil {
		return err
	}
	if c.Off {
		fmt.Printf("maintenance hold ended for %s: this node may claim again\n", groupsText(c.Group))
	} else {
		fmt.Printf("maintenance hold on for %s: this node will not claim (end it with --off)\n", groupsText(c.Group))
	}
	return nil
}

type handoverCmd struct {
	socketFlag
	Group string `placeholder:"NAME" help:"Only this group (default: every group this node holds)."`
	To    string `placeholder:"NODE" help:"Hand over to this node (its node name); default: the best live standby."`
}

func (c handoverCmd) Run() error {
	ctx, stop := controlContext()
	defer stop()
	if err := c.client().Handover(ctx, c.Group, c.To); err != nil {
		return err
	}
	to := c.To
	if to == "" {
		to = "the best live standby"
	}
	fmt.Printf("handed %s over to %s\n", groupsText(c.Group), to)
	return nil
}

type reloadCmd struct {
	socketFlag
}

func (c reloadCmd) Run() error {
	ctx, stop := controlContext()
	defer stop()
	if err := c.client().Reload(ctx); err != nil {
		return err
	}
	fmt.Println("configuration reloaded")
	return nil
}

// printJSON prints v as indented JSON on stdout.
func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(b, '\n'))
	return err
}

func groupsText(group string) string {
	if group == "" {
		return "all groups"
	}
	return "group " + group
}
