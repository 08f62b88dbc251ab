package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/floatip/floatip/internal/config"
)

// parse parses args as the floatip command line.
func parse(t *testing.T, args ...string) *cli {
	t.Helper()
	var c cli
	p, err := kong.New(&c, kong.Name("floatip"), kong.Exit(func(int) { t.Fatalf("kong exited on %q", args) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return &c
}

// useDefaultConfig points the default configuration path at path for the test.
func useDefaultConfig(t *testing.T, path string) {
	old := defaultConfig
	defaultConfig = path
	t.Cleanup(func() { defaultConfig = old })
}

func TestPriorityZeroIsRefused(t *testing.T) {
	useDefaultConfig(t, filepath.Join(t.TempDir(), "none.yaml"))
	for _, arg := range []string{"--priority=0", "--priority=255", "--priority=-1"} {
		c := parse(t, "check", "--interface", "eth0", "--vip", "198.18.0.100", arg)
		var out strings.Builder
		cfg, err := c.Check.loadTo(&out)
		if err == nil {
			t.Errorf("%s: accepted, priority %d", arg, cfg.Priority)
			continue
		}
		if want := "--priority: must be 1..254, got " + strings.TrimPrefix(arg, "--priority="); strings.TrimSpace(out.String()) != want {
			t.Errorf("%s: output %q, want %q", arg, out.String(), want)
		}
	}
	// Not given: the default.
	c := parse(t, "check", "--interface", "eth0", "--vip", "198.18.0.100")
	cfg, err := c.Check.loadTo(&strings.Builder{})
	if err != nil || cfg.Priority != 100 {
		t.Errorf("without --priority: priority %d, err %v; want 100", cfg.Priority, err)
	}
}

func TestDefaultConfigFile(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "floatip.yaml")
	useDefaultConfig(t, def)

	// No file and no --config: flags alone, as before.
	c := parse(t, "run", "--interface", "eth0", "--vip", "198.18.0.100")
	cfg, err := c.Run.loadTo(&strings.Builder{})
	if err != nil || cfg.Path != "" || cfg.Interface != "eth0" {
		t.Fatalf("flags only: path %q interface %q err %v", cfg.Path, cfg.Interface, err)
	}
	if out := string(checkOutput(cfg)); !strings.HasPrefix(out, "# no configuration file read (no --config, and "+def+" does not exist)") {
		t.Errorf("check output without a file:\n%s", out)
	}

	// The default file exists: run and check read it without -c.
	if err := os.WriteFile(def, []byte("interface: eth7\nvips: [198.18.0.100]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"run", "check"} {
		c := parse(t, cmd)
		f := c.Run.configFlags
		if cmd == "check" {
			f = c.Check.configFlags
		}
		var out strings.Builder
		cfg, err := f.loadTo(&out)
		if err != nil || cfg.Path != def || cfg.Interface != "eth7" {
			t.Errorf("%s without -c: path %q interface %q err %v %s", cmd, cfg.Path, cfg.Interface, err, out.String())
		}
	}
	if out := string(checkOutput(cfg)); out == "" {
		t.Error("empty check output")
	}
	cfg, _ = parse(t, "check").Check.loadTo(&strings.Builder{})
	if out := string(checkOutput(cfg)); !strings.HasPrefix(out, "# read from "+def+"\n") {
		t.Errorf("check output does not name the file:\n%s", out)
	}

	// An explicit --config that does not exist: one line naming it.
	missing := filepath.Join(dir, "missing.yaml")
	var out strings.Builder
	if _, err := parse(t, "check", "--config", missing).Check.loadTo(&out); err == nil {
		t.Fatal("a missing --config was accepted")
	}
	if want := missing + ": cannot read: no such file or directory\n"; out.String() != want {
		t.Errorf("missing --config: %q, want %q", out.String(), want)
	}
}

func TestBuildVersion(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/floatip/floatip", Version: "(devel)"}}
		for i := 0; i < len(kv); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return info
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "dev"},
		{"no vcs stamp", vcs(), true, "dev"},
		{"clean checkout", vcs("vcs.revision", "44b6ca4c0ffee0123456789abcdef0123456789a", "vcs.time", "2026-12-01T09:00:00Z", "vcs.modified", "false"), true,
			"dev-44b6ca4c0ffe (2026-12-01T09:00:00Z)"},
		{"modified checkout", vcs("vcs.revision", "44b6ca4c0ffee0123456789abcdef0123456789a", "vcs.modified", "true"), true, "dev-44b6ca4c0ffe-dirty"},
		{"go install @version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, true, "v1.2.3"},
	}
	for _, tt := range tests {
		if got := buildVersion(tt.info, tt.ok); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestConfigExamplePassesCheck(t *testing.T) {
	parse(t, "config", "example")
	path := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(path, config.Example, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := parse(t, "check", "--config", path).Check.loadTo(&out); err != nil {
		t.Errorf("check of the example: %v\n%s", err, out.String())
	}
}
