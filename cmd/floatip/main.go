// Command floatip keeps floating IPv4 addresses (VIPs) reachable across Linux
// machines on one L2 segment, using ARP alone.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"
)

// version is set at build time with -ldflags "-X main.version=..."; when it
// is not, main fills it in from the build information (see buildVersion).
var version = "dev"

// buildVersion names a build that -ldflags did not stamp: the module version
// for `go install ...@vX`, else "dev" with the VCS revision, a "-dirty" mark
// for uncommitted changes and the commit time, as `go build` records them
// in a checkout.
func buildVersion(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		case "vcs.time":
			at = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev-" + rev[:min(12, len(rev))]
	if dirty {
		v += "-dirty"
	}
	if at != "" {
		v += " (" + at + ")"
	}
	return v
}

type cli struct {
	Run      runCmd      `cmd:"" help:"Run the daemon in the foreground until SIGTERM/SIGINT."`
	Check    checkCmd    `cmd:"" help:"Validate a configuration file and print the effective configuration."`
	Config   configCmd   `cmd:"" help:"Configuration reference: 'floatip config example' prints a commented file that sets every key."`
	Status   statusCmd   `cmd:"" help:"Show the running daemon's groups: state, holder, counters, and every peer it hears (--watch redraws it)."`
	Release  releaseCmd  `cmd:"" help:"Hand the VIPs to a standby and stay standby."`
	Hold     holdCmd     `cmd:"" help:"Maintenance hold: never claim (a holder hands its VIPs away first); --off ends it."`
	Handover handoverCmd `cmd:"" help:"Planned handover: give the VIPs to a standby (--to NODE) with a gap of a few milliseconds."`
	Reload   reloadCmd   `cmd:"" help:"Re-read the configuration without dropping unchanged VIPs (like SIGHUP)."`
	Version  versionCmd  `cmd:"" help:"Print the version."`
	Keygen   keygenCmd   `cmd:"" help:"Make a new random key for authenticated frames (auth.key_file); prints it, or --out FILE."`
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
	if version == "dev" {
		version = buildVersion(debug.ReadBuildInfo())
	}
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
