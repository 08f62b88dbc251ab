package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floatip/floatip/internal/pkgdeb"
)

// testVersion is stamped into the binary; the package is 1.2.3+test-1.
const testVersion = "1.2.3-test"

// wantFiles is the package's file list as dpkg-deb -c shows it: mode, then
// path (directories end in "/").
var wantFiles = []string{
	"drwxr-xr-x ./etc/",
	"drwxr-xr-x ./etc/floatip/",
	"-rw-r--r-- ./etc/floatip/floatip.yaml",
	"drwxr-xr-x ./lib/",
	"drwxr-xr-x ./lib/systemd/",
	"drwxr-xr-x ./lib/systemd/system/",
	"-rw-r--r-- ./lib/systemd/system/floatip.service",
	"drwxr-xr-x ./usr/",
	"drwxr-xr-x ./usr/sbin/",
	"-rwxr-xr-x ./usr/sbin/floatip",
	"drwxr-xr-x ./usr/share/",
	"drwxr-xr-x ./usr/share/bash-completion/",
	"drwxr-xr-x ./usr/share/bash-completion/completions/",
	"-rw-r--r-- ./usr/share/bash-completion/completions/floatip",
	"drwxr-xr-x ./usr/share/doc/",
	"drwxr-xr-x ./usr/share/doc/floatip/",
	"-rw-r--r-- ./usr/share/doc/floatip/changelog.Debian.gz",
	"-rw-r--r-- ./usr/share/doc/floatip/copyright",
	"drwxr-xr-x ./usr/share/doc/floatip/examples/",
	"-rw-r--r-- ./usr/share/doc/floatip/examples/floatip-alerts.yaml",
	"-rw-r--r-- ./usr/share/doc/floatip/examples/floatip-dashboard.json",
	"drwxr-xr-x ./usr/share/fish/",
	"drwxr-xr-x ./usr/share/fish/vendor_completions.d/",
	"-rw-r--r-- ./usr/share/fish/vendor_completions.d/floatip.fish",
	"drwxr-xr-x ./usr/share/lintian/",
	"drwxr-xr-x ./usr/share/lintian/overrides/",
	"-rw-r--r-- ./usr/share/lintian/overrides/floatip",
	"drwxr-xr-x ./usr/share/man/",
	"drwxr-xr-x ./usr/share/man/man8/",
	"-rw-r--r-- ./usr/share/man/man8/floatip.8.gz",
	"drwxr-xr-x ./usr/share/zsh/",
	"drwxr-xr-x ./usr/share/zsh/vendor-completions/",
	"-rw-r--r-- ./usr/share/zsh/vendor-completions/_floatip",
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func goTool(t *testing.T) string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return need(t, "go")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// buildDeb builds the package for this machine's architecture as `make deb`
// does: a static binary, the generated man page and completions, then
// pkgdeb.Build.
func buildDeb(t *testing.T) string {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("no package for %s", runtime.GOARCH)
	}
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen")
	if err := os.Mkdir(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "floatip")
	cmd := exec.Command(goTool(t), "build", "-trimpath", "-ldflags", "-s -w -X main.version="+testVersion, "-o", bin, "../cmd/floatip")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for file, args := range map[string][]string{
		"floatip.8":    {"man"},
		"floatip.bash": {"completion", "bash"},
		"_floatip":     {"completion", "zsh"},
		"floatip.fish": {"completion", "fish"},
	} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || len(out) == 0 {
			t.Fatalf("floatip %s: %v", strings.Join(args, " "), err)
		}
		if err := os.WriteFile(filepath.Join(gen, file), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb, err := pkgdeb.Build(pkgdeb.Options{
		Version: testVersion, Arch: runtime.GOARCH, Binary: bin, Generated: gen,
		Packaging: ".", OutDir: dir, Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "floatip_1.2.3+test-1_" + runtime.GOARCH + ".deb"; filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}
	return deb
}

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.0":           "1.2.0",
		"1.2.0-3-gabc1234": "1.2.0+3+gabc1234",
		"44b6ca4":          "0.0~git44b6ca4",
		"44b6ca4-dirty":    "0.0~git44b6ca4+dirty",
		"dev":              "0.0~gitdev",
		"v2.0.0-rc1_x":     "2.0.0+rc1+x",
		"1.2.3-test":       "1.2.3+test",
	} {
		if got, rev := pkgdeb.DebVersion(in); got != want || rev != "1" {
			t.Errorf("DebVersion(%q) = %q, %q; want %q, 1", in, got, rev, want)
		}
	}
}

// TestDebPackage builds the package, checks its file list, its conffile
// and lintian's verdict, then installs, upgrades, removes and purges it on
// this system. Each dpkg step runs in a private mount namespace whose /run
// has /run/systemd/system and whose PATH has a systemctl that only logs its
// arguments, so the maintainer scripts act as under systemd without
// touching the host's services. It leaves no package and no /etc/floatip.
func TestDebPackage(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "lintian", "unshare"} {
		need(t, tool)
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("installing the package needs root")
		}
		t.Skip("installing the package needs root")
	}
	deb := buildDeb(t)

	// The file list, with modes.
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "root/root" {
			t.Errorf("dpkg-deb -c: unexpected line %q (owner must be root/root)", line)
			continue
		}
		got = append(got, f[0]+" "+f[5])
	}
	if d := cmp.Diff(wantFiles, got); d != "" {
		t.Errorf("package files (-want +got):\n%s", d)
	}
	if c := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture"); c != "Package: floatip\nVersion: 1.2.3+test-1\nArchitecture: "+runtime.GOARCH+"\n" {
		t.Errorf("control fields:\n%s", c)
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	if conf, err := os.ReadFile(filepath.Join(ctl, "conffiles")); err != nil || string(conf) != "/etc/floatip/floatip.yaml\n" {
		t.Errorf("conffiles = %q (%v), want /etc/floatip/floatip.yaml", conf, err)
	}

	// lintian: errors fail the test, warnings are listed.
	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "):
			t.Errorf("lintian: %s", line)
		case strings.HasPrefix(line, "W: "):
			t.Logf("lintian: %s", line)
		}
	}

	// Install on this system, but never over a floatip that is there.
	if exec.Command("dpkg-query", "-W", "floatip").Run() == nil || fileExists("/usr/sbin/floatip") || fileExists("/etc/floatip") {
		t.Fatal("floatip is already installed here (package, /usr/sbin/floatip or /etc/floatip): not replacing it")
	}
	t.Cleanup(func() {
		if exec.Command("dpkg-query", "-W", "floatip").Run() == nil {
			_ = exec.Command("dpkg", "--purge", "floatip").Run()
		}
	})
	fake := t.TempDir()
	calls := filepath.Join(fake, "calls")
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A policy-rc.d that allows every action (a container's forbids all),
	// bound over the host's only inside the namespace.
	policy := filepath.Join(fake, "policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// dpkg runs one step; systemctl returns what the scripts asked of it.
	dpkg := func(args ...string) []string {
		t.Helper()
		_ = os.Remove(calls)
		script := `mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system &&
			{ [ ! -e /usr/sbin/policy-rc.d ] || mount --bind ` + policy + ` /usr/sbin/policy-rc.d; } && exec dpkg "$@"`
		// Another apt or dpkg on the machine may hold dpkg's lock for a while.
		for deadline := time.Now().Add(2 * time.Minute); ; {
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
			cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err == nil {
				break
			}
			if !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
				t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			time.Sleep(time.Second)
		}
		data, _ := os.ReadFile(calls)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}

	// Install: nothing is enabled or started.
	sys := dpkg("-i", deb)
	if !slices.Equal(sys, []string{"daemon-reload"}) {
		t.Errorf("install called systemctl %q, want only daemon-reload (no enable, no start)", sys)
	}
	if v := run(t, "/usr/sbin/floatip", "version"); v != "floatip "+testVersion+"\n" {
		t.Errorf("/usr/sbin/floatip version = %q", v)
	}
	// The manual page and the completions are in place and usable.
	manCmd := exec.Command("man", "-l", "/usr/share/man/man8/floatip.8.gz")
	manCmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=100")
	if page, err := manCmd.Output(); err != nil || !strings.Contains(string(page), "floatip import keepalived") {
		t.Errorf("man -l floatip.8.gz: %v; page lacks \"floatip import keepalived\"", err)
	}
	if b, err := os.ReadFile("/usr/share/bash-completion/completions/floatip"); err != nil || !strings.Contains(string(b), "complete -C /usr/sbin/floatip floatip") {
		t.Errorf("bash completion: %v %q", err, b)
	}
	comp := exec.Command("/usr/sbin/floatip")
	comp.Env = append(os.Environ(), "COMP_LINE=floatip imp")
	if out, err := comp.Output(); err != nil || strings.TrimSpace(string(out)) != "import" {
		t.Errorf("/usr/sbin/floatip with COMP_LINE=\"floatip imp\": %v %q, want import", err, out)
	}
	// The shipped configuration is not enough to start: the unit's
	// ExecStartPre (floatip check) refuses it with exit status 2.
	check := exec.Command("/usr/sbin/floatip", "check", "--config", "/etc/floatip/floatip.yaml")
	var stderr bytes.Buffer
	check.Stderr = &stderr
	if err := check.Run(); check.ProcessState == nil || check.ProcessState.ExitCode() != 2 || !strings.Contains(stderr.String(), "no interface") {
		t.Errorf("floatip check of the shipped configuration: %v, %q; want exit 2 with \"no interface\"", err, stderr.String())
	}
	unit, err := os.ReadFile("/lib/systemd/system/floatip.service")
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/sbin/floatip run --config /etc/floatip/floatip.yaml") ||
		!strings.Contains(string(unit), "ExecStartPre=/usr/sbin/floatip check --config /etc/floatip/floatip.yaml") {
		t.Errorf("installed unit lacks the /usr/sbin ExecStart/ExecStartPre lines (%v)", err)
	}

	// Upgrade (the same version again): a running daemon is restarted.
	if sys := dpkg("-i", deb); !slices.Contains(sys, "try-restart floatip.service") || slices.Contains(sys, "start floatip.service") {
		t.Errorf("upgrade called systemctl %q, want try-restart floatip.service", sys)
	}

	// Remove: the service is stopped (SIGTERM: floatip releases its VIPs),
	// the program goes, the configuration stays.
	if err := os.WriteFile("/etc/floatip/imported.yaml", []byte("# the administrator's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if sys := dpkg("--remove", "floatip"); !slices.Contains(sys, "stop floatip.service") {
		t.Errorf("remove called systemctl %q, want stop floatip.service", sys)
	}
	if fileExists("/usr/sbin/floatip") || fileExists("/lib/systemd/system/floatip.service") {
		t.Error("remove left /usr/sbin/floatip or the unit")
	}
	if !fileExists("/etc/floatip/floatip.yaml") {
		t.Error("remove deleted the conffile /etc/floatip/floatip.yaml (only purge may)")
	}

	// Purge: /etc/floatip goes, with what the administrator added.
	dpkg("--purge", "floatip")
	if fileExists("/etc/floatip") {
		t.Error("purge left /etc/floatip")
	}
	if exec.Command("dpkg-query", "-W", "floatip").Run() == nil {
		if st, _ := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "floatip").Output(); strings.TrimSpace(string(st)) != "" {
			t.Errorf("dpkg still knows floatip after purge: %q", st)
		}
	}
}
