package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/daemon"
	"github.com/floatip/floatip/internal/ifcheck"
)

// configFlags are shared by run and check: the file, then flags on top.
type configFlags struct {
	Config    string   `short:"c" placeholder:"FILE" help:"YAML configuration file (every key: floatip config example); flags override it. Default: /etc/floatip/floatip.yaml if it exists."`
	Interface string   `short:"i" placeholder:"IF" help:"Interface the VIPs live on, e.g. eth0."`
	VIP       []string `name:"vip" placeholder:"ADDR" help:"A VIP, IPv4 or IPv6 (repeatable); replaces the file's groups with one group named default."`
	Priority  *int     `short:"p" placeholder:"1..254" help:"Priority of this node; the highest live node claims a free VIP first (default 100)."`
	NodeName  string   `placeholder:"NAME" help:"This node's name in logs (default: hostname)."`
	Profile   string   `placeholder:"default|fast" help:"Timing preset: default, or fast (about 4x quicker failover, 5x more probes)."`
	LogFormat string   `placeholder:"text|json" help:"Log format on stderr."`
	LogLevel  string   `placeholder:"debug|info|warn|error" help:"Log level."`
	Socket    string   `placeholder:"PATH" help:"Control socket path (default /run/floatip/floatip.sock)."`
}

// defaultConfig is the file read when --config is not given, if it exists.
// A variable so that tests can point it elsewhere.
var defaultConfig = config.DefaultPath

// path returns the configuration file to read: --config, else the default
// file when it exists, else "" (flags and defaults only).
func (f configFlags) path() string {
	if f.Config != "" {
		return f.Config
	}
	if _, err := os.Stat(defaultConfig); err == nil {
		return defaultConfig
	}
	return ""
}

// load reads the file (if any), applies the flags and validates. Problems
// are printed one per line and reported as exit status 2.
func (f configFlags) load() (config.Config, error) { return f.loadTo(os.Stderr) }

// loadTo is load with the problems written to w.
func (f configFlags) loadTo(w io.Writer) (config.Config, error) {
	problems := func(err error) error {
		fmt.Fprintln(w, err)
		return exitError{code: 2}
	}
	cfg := config.Default()
	if path := f.path(); path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, problems(err)
		}
	}
	if err := cfg.Apply(config.Overrides{
		Interface: f.Interface, VIPs: f.VIP, Priority: f.Priority, Profile: f.Profile,
		LogFormat: f.LogFormat, LogLevel: f.LogLevel,
	}); err != nil {
		return cfg, problems(err)
	}
	if f.NodeName != "" {
		cfg.NodeName = f.NodeName
	}
	if f.Socket != "" {
		cfg.Control.Socket = f.Socket
	}
	if err := cfg.Validate(); err != nil {
		return cfg, problems(err)
	}
	return cfg, nil
}

type runCmd struct {
	configFlags
}

func (r runCmd) Run() error {
	cfg, err := r.load()
	if err != nil {
		return err
	}
	var level slog.LevelVar
	log := newLogger(cfg, &level)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal then ends a slow shutdown the default way
	}()
	// A reload re-reads the file and applies the same flags on top.
	reload := func() (config.Config, error) {
		var buf strings.Builder
		c, err := r.configFlags.loadTo(&buf)
		if err != nil {
			return c, errors.New(strings.TrimSpace(buf.String()))
		}
		return c, nil
	}
	// Likely mistakes are logged by the daemon once it starts; the unsafe
	// ones (a VIP that is this host's own address, a subnet's network or
	// broadcast address) it refuses itself, as it does a missing interface.
	var warnings []string
	if ifc, err := ifcheck.Read(cfg.Interface); err == nil {
		warnings = ifcheck.Check(cfg, ifc).Warnings
	}
	setLevel := func(l string) error { return level.UnmarshalText([]byte(l)) }
	return daemon.Run(ctx, cfg, log, daemon.Options{Version: version, Load: reload, SetLogLevel: setLevel, Warnings: warnings})
}

// newLogger makes the daemon's logger; level can be changed later (reload).
func newLogger(cfg config.Config, level *slog.LevelVar) *slog.Logger {
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" && cfg.LogFormat != "json" {
		// Under systemd the journal stamps every line; a second time
		// stamp only makes `journalctl -u floatip` harder to read.
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

type checkCmd struct {
	configFlags
}

func (c checkCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	// The key files as the daemon reads them: a loose mode is an error.
	if _, err := cfg.LoadKeys(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError{code: 2}
	}
	if !liveCheck(cfg, os.Stderr) {
		return exitError{code: 2}
	}
	os.Stdout.Write(checkOutput(cfg))
	return nil
}

// liveCheck checks cfg against its interface on this host, if it exists,
// and prints what it finds to w, warnings prefixed "warning: ". It reports
// false when a VIP is unsafe there (the daemon would refuse to start).
func liveCheck(cfg config.Config, w io.Writer) bool {
	ifc, err := ifcheck.Read(cfg.Interface)
	switch {
	case errors.Is(err, ifcheck.ErrNotFound):
		fmt.Fprintf(w, "warning: interface %q does not exist on this host; floatip run would refuse to start here\n", cfg.Interface)
		return true
	case err != nil:
		fmt.Fprintf(w, "warning: %v; the VIPs were not checked against the interface\n", err)
		return true
	}
	r := ifcheck.Check(cfg, ifc)
	for _, s := range r.Warnings {
		fmt.Fprintln(w, "warning: "+s)
	}
	for _, s := range r.Errors {
		fmt.Fprintln(w, s)
	}
	return len(r.Errors) == 0
}

// checkOutput is what `floatip check` prints: the file it read (or that it
// read none), then the effective configuration.
func checkOutput(cfg config.Config) []byte {
	from := "# read from " + cfg.Path + "\n"
	if cfg.Path == "" {
		from = "# no configuration file read (no --config, and " + defaultConfig + " does not exist): defaults and flags only\n"
	}
	return append([]byte(from), cfg.YAML()...)
}

type configCmd struct {
	Example exampleCmd `cmd:"" help:"Print the commented reference configuration (every key, with its default and meaning)."`
}

type exampleCmd struct{}

func (exampleCmd) Run() error {
	_, err := os.Stdout.Write(config.Example)
	return err
}
