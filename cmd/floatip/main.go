// Command floatip keeps floating IPv4 addresses (VIPs) reachable across Linux
// machines on one L2 segment, using ARP alone.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type cli struct {
	Run      runCmd      `cmd:"" help:"Run the daemon in the foreground until SIGTERM/SIGINT."`
	Check    checkCmd    `cmd:"" help:"Validate a configuration file and print the effective configuration."`
	Status   statusCmd   `cmd:"" help:"Show the running daemon's groups: state, holder, counters."`
	Release  releaseCmd  `cmd:"" help:"Hand the VIPs to a standby and stay standby."`
	Hold     holdCmd     `cmd:"" help:"Maintenance hold: never claim (a holder hands its VIPs away first); --off ends it."`
	Handover handoverCmd `cmd:"" help:"Planned handover: give the VIPs to a standby (--to NODE) with a gap of a few milliseconds."`
	Reload   reloadCmd   `cmd:"" help:"Re-read the configuration without dropping unchanged VIPs (like SIGHUP)."`
	Version  versionCmd  `cmd:"" help:"Print the version."`
	Lab      labCmd      `cmd:"" help:"Network-namespace lab: a live failover demo (needs root)."`
	Bench    benchCmd    `cmd:"" help:"Failover benchmark on the lab: floatip against keepalived, same client, same faults (needs root)."`
	Import   importCmd   `cmd:"" help:"Convert another tool's configuration into floatip's: import keepalived FILE."`
	Compl    complCmd    `cmd:"" name:"completion" help:"Write a shell completion script (bash, zsh, fish) to stdout."`
	Man      manCmd      `cmd:"" hidden:"" help:"Write the floatip(8) manual page (roff) to stdout."`
}

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Println("floatip", version)
	return nil
}

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	var c cli
	parser := kong.Must(&c,
		kong.Name("floatip"),
		kong.Description("Floating IP failover over ARP: one VIP, many Linux nodes, no load balancer."),
	)
	kongplete.Complete(parser) // answers shell completion queries (COMP_LINE) and exits
	ctx, err := parser.Parse(os.Args[1:])
	if err != nil {
		// A bad flag is a one-line error and exit status 2, like a bad
		// configuration; --help shows the usage.
		fmt.Fprintf(os.Stderr, "floatip: %v (see floatip --help)\n", err)
		os.Exit(2)
	}
	err = ctx.Run()
	if err == nil {
		return
	}
	var e exitError
	if errors.As(err, &e) {
		os.Exit(e.code)
	}
	fmt.Fprintln(os.Stderr, "floatip:", err)
	os.Exit(1)
}
