package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	JSON bool `name:"json" help:"Print the status as JSON (field names are stable, for scripts)."`
}

func (c statusCmd) Run() error {
	ctx, stop := controlContext()
	defer stop()
	st, err := c.client().Status(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(st)
	}
	return control.FormatStatus(os.Stdout, st, time.Now())
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
	fmt.Printf("released %s: this node stays standby\n", groupsText(c.Group))
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
