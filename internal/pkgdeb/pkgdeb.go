// Package pkgdeb builds floatip's Debian package with nfpm (used as a Go
// library): the static binary in /usr/sbin, the systemd unit, a commented
// /etc/floatip/floatip.yaml marked as a conffile, the floatip(8) manual
// page, bash/zsh/fish completions, the monitoring examples and the
// maintainer scripts, all from the repository's packaging/ directory and
// the files `floatip man` and `floatip completion` generate.
package pkgdeb

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Maintainer is the package's Maintainer field.
const Maintainer = "floatip developers <dev@floatip.invalid>"

// Options say what goes into the package and where it is written.
type Options struct {
	Version   string    // floatip's version (git describe); see DebVersion
	Arch      string    // Debian architecture: amd64, arm64
	Binary    string    // the static floatip binary for Arch
	Generated string    // directory with floatip.8, floatip.bash, _floatip (zsh), floatip.fish
	Packaging string    // the repository's packaging/ directory
	OutDir    string    // where the .deb goes
	Time      time.Time // file times and the changelog date; zero: now
}

// release is a version from a tag: 1.2, v1.2.3-4-gabcdef.
var release = regexp.MustCompile(`^v?[0-9]+\.[0-9]`)

// DebVersion makes a Debian version from floatip's (git describe): a
// leading "v" goes, a version that is not a release (a bare commit, "dev")
// becomes "0.0~git<it>" (so any release sorts after it), any character
// Debian does not allow becomes "+", and the revision is "1".
func DebVersion(v string) (upstream, revision string) {
	v = strings.TrimSpace(v)
	if release.MatchString(v) {
		v = strings.TrimPrefix(v, "v")
	} else {
		v = "0.0~git" + v
	}
	var b strings.Builder
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.', r == '+', r == '~':
			b.WriteRune(r)
		default:
			b.WriteRune('+')
		}
	}
	return b.String(), "1"
}

// File is one file of the package: where it comes from and where it goes.
type File struct {
	Src, Dst string
	Mode     os.FileMode
	Conffile bool
}

// Files lists the package's files (directories aside).
func Files(o Options, build string) []File {
	p := func(name string) string { return filepath.Join(o.Packaging, name) }
	g := func(name string) string { return filepath.Join(o.Generated, name) }
	return []File{
		{Src: o.Binary, Dst: "/usr/sbin/floatip", Mode: 0o755},
		{Src: p("floatip.service"), Dst: "/lib/systemd/system/floatip.service", Mode: 0o644},
		{Src: p("floatip.yaml"), Dst: "/etc/floatip/floatip.yaml", Mode: 0o644, Conffile: true},
		{Src: filepath.Join(build, "floatip.8.gz"), Dst: "/usr/share/man/man8/floatip.8.gz", Mode: 0o644},
		{Src: g("floatip.bash"), Dst: "/usr/share/bash-completion/completions/floatip", Mode: 0o644},
		{Src: g("_floatip"), Dst: "/usr/share/zsh/vendor-completions/_floatip", Mode: 0o644},
		{Src: g("floatip.fish"), Dst: "/usr/share/fish/vendor_completions.d/floatip.fish", Mode: 0o644},
		{Src: p("deb/copyright"), Dst: "/usr/share/doc/floatip/copyright", Mode: 0o644},
		{Src: p("deb/lintian-overrides"), Dst: "/usr/share/lintian/overrides/floatip", Mode: 0o644},
		{Src: filepath.Join(build, "changelog.Debian.gz"), Dst: "/usr/share/doc/floatip/changelog.Debian.gz", Mode: 0o644},
		{Src: p("floatip-alerts.yaml"), Dst: "/usr/share/doc/floatip/examples/floatip-alerts.yaml", Mode: 0o644},
		{Src: p("floatip-dashboard.json"), Dst: "/usr/share/doc/floatip/examples/floatip-dashboard.json", Mode: 0o644},
	}
}

// gzipFile writes src gzipped at maximum compression with no name or time
// in the header (like gzip -9n), as Debian wants for man pages and
// changelogs.
func gzipFile(dst string, data []byte) error {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// Build writes OutDir/floatip_VERSION_ARCH.deb and returns its path.
func Build(o Options) (string, error) {
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	o.Time = o.Time.UTC().Truncate(time.Second)
	upstream, revision := DebVersion(o.Version)
	build, err := os.MkdirTemp("", "floatip-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(build)

	man, err := os.ReadFile(filepath.Join(o.Generated, "floatip.8"))
	if err != nil {
		return "", err
	}
	if err := gzipFile(filepath.Join(build, "floatip.8.gz"), man); err != nil {
		return "", err
	}
	changelog := fmt.Sprintf("floatip (%s-%s) unstable; urgency=medium\n\n  * Built from floatip %s.\n\n -- %s  %s\n",
		upstream, revision, o.Version, Maintainer, o.Time.Format(time.RFC1123Z))
	if err := gzipFile(filepath.Join(build, "changelog.Debian.gz"), []byte(changelog)); err != nil {
		return "", err
	}

	var contents files.Contents
	for _, d := range []string{"/etc/floatip", "/usr/share/doc/floatip/examples"} {
		contents = append(contents, &files.Content{Destination: d, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: o.Time}})
	}
	for _, f := range Files(o, build) {
		if _, err := os.Stat(f.Src); err != nil {
			return "", err
		}
		c := &files.Content{Source: f.Src, Destination: f.Dst, FileInfo: &files.ContentFileInfo{Mode: f.Mode, MTime: o.Time}}
		if f.Conffile {
			c.Type = files.TypeConfig
		}
		contents = append(contents, c)
	}
	script := func(name string) string { return filepath.Join(o.Packaging, "deb", name) }
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "floatip",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       upstream,
		VersionSchema: "none",
		Release:       revision,
		Section:       "net",
		Priority:      "optional",
		Maintainer:    Maintainer,
		Homepage:      "https://github.com/floatip/floatip",
		Description: "floating IP failover over ARP\n" +
			"floatip keeps floating IPv4 addresses (VIPs) reachable across Linux machines\n" +
			"on one L2 network using ARP alone: no multicast, no peer list, no load\n" +
			"balancer. It checks the holder with ARP probes, takes over by priority,\n" +
			"resolves split brain, and gives each VIP a lifetime so that the kernel\n" +
			"removes it when the daemon dies. Health checks, notify hooks, fencing and\n" +
			"an import of keepalived configurations are included.",
		MTime: o.Time,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: script("postinst"),
				PreRemove:   script("prerm"),
				PostRemove:  script("postrm"),
			},
		},
	})
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.OutDir, deb.Default.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("building %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, nil
}
