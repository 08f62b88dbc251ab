// Command mkdeb builds floatip's Debian package (see package pkgdeb); the
// Makefile's deb target runs it for each architecture.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/floatip/floatip/internal/pkgdeb"
)

func main() {
	var o pkgdeb.Options
	flag.StringVar(&o.Version, "version", "", "floatip version (git describe)")
	flag.StringVar(&o.Arch, "arch", "", "Debian architecture: amd64 or arm64")
	flag.StringVar(&o.Binary, "binary", "", "static floatip binary for the architecture")
	flag.StringVar(&o.Generated, "generated", "", "directory with floatip.8, floatip.bash, _floatip, floatip.fish")
	flag.StringVar(&o.Packaging, "packaging", "packaging", "the packaging/ directory")
	flag.StringVar(&o.OutDir, "out", ".", "output directory")
	epoch := flag.Int64("time", 0, "file time and changelog date, seconds since 1970 (default: $SOURCE_DATE_EPOCH, else now)")
	flag.Parse()
	if *epoch == 0 {
		fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), epoch)
	}
	if *epoch != 0 {
		o.Time = time.Unix(*epoch, 0)
	}
	if o.Version == "" || o.Arch == "" || o.Binary == "" || o.Generated == "" {
		fmt.Fprintln(os.Stderr, "mkdeb: -version, -arch, -binary and -generated are required")
		os.Exit(2)
	}
	path, err := pkgdeb.Build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
