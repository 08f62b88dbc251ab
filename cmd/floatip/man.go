package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"

	"github.com/floatip/floatip/internal/clidoc"
	"github.com/floatip/floatip/internal/control"
)

// manPage is the text of floatip(8) around the generated commands and flags.
var manPage = clidoc.Page{
	Description: `floatip keeps floating IPv4 addresses (VIPs) reachable across two or more Linux machines on one L2 network, with ARP alone: the node holding a VIP has it on its interface and announces it with gratuitous ARP; the others check it with ARP probes and take it over as soon as it is free, highest priority first.

The holder adds each VIP with a finite lifetime and renews it, so the kernel removes the VIP by itself when the daemon dies. On SIGTERM the holder waits (at most 100 ms) for a moment with no TCP connection open to its VIPs, deletes them and tells the standbys, which claim at once. Health checks, notify hooks, fencing, preemption and a maintenance hold are set in the configuration file; floatip check prints the effective configuration.

The Debian package installs the service but does not start it: edit /etc/floatip/floatip.yaml, check it with floatip check --config /etc/floatip/floatip.yaml, then run systemctl enable --now floatip.`,
	Files: [][2]string{
		{"/etc/floatip/floatip.yaml", "The configuration (YAML). Unknown keys are errors; floatip check reports every problem with file:line."},
		{control.DefaultSocket, "The control socket of the running daemon (status, release, hold, handover, reload)."},
		{"/lib/systemd/system/floatip.service", "The systemd unit: a dynamic user with CAP_NET_ADMIN and CAP_NET_RAW only."},
	},
	Signals: [][2]string{
		{"SIGTERM, SIGINT", "Release the VIPs, tell the standbys, exit 0."},
		{"SIGHUP", "Reload the configuration; unchanged groups keep their VIPs without a gap."},
	},
	ExitStatus: [][2]string{
		{"0", "Success."},
		{"1", "A runtime error (missing privileges, no such interface, the daemon is not running)."},
		{"2", "A bad flag or a bad configuration, one line per problem."},
	},
	SeeAlso: []string{"systemctl(1)", "journalctl(1)", "keepalived(8)", "ip-address(8)"},
}

type manCmd struct{}

func (manCmd) Run(ctx *kong.Context) error {
	p := manPage
	p.Version = version
	return clidoc.Man(os.Stdout, ctx.Model, p)
}

type complCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell to write the completion for: bash, zsh or fish."`
	Bin   string `default:"/usr/sbin/floatip" placeholder:"PATH" help:"Path of the floatip binary that bash and fish ask for completions (default: ${default})."`
}

func (c complCmd) Run(ctx *kong.Context) error {
	switch c.Shell {
	case "bash":
		return clidoc.Bash(os.Stdout, ctx.Model.Name, c.Bin)
	case "fish":
		return clidoc.Fish(os.Stdout, ctx.Model.Name, c.Bin)
	case "zsh":
		return clidoc.Zsh(os.Stdout, ctx.Model)
	}
	return fmt.Errorf("unknown shell %q", c.Shell) // unreachable: kong checks the enum
}
