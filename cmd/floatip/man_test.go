package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"

	"github.com/floatip/floatip/internal/clidoc"
)

func parserForTest(t *testing.T, out *bytes.Buffer) *kong.Kong {
	t.Helper()
	var c cli
	p, err := kong.New(&c, kong.Name("floatip"), kong.Writers(out, out))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The man page and the zsh completion name every visible command and flag
// of the real command line, so neither can drift from it.
func TestManAndZshCoverCommandLine(t *testing.T) {
	var ignored bytes.Buffer
	app := parserForTest(t, &ignored).Model
	var man, zsh bytes.Buffer
	if err := clidoc.Man(&man, app, manPage); err != nil {
		t.Fatal(err)
	}
	if err := clidoc.Zsh(&zsh, app); err != nil {
		t.Fatal(err)
	}
	cmds := clidoc.Commands(app.Node)
	if len(cmds) < 12 {
		t.Fatalf("only %d commands found", len(cmds))
	}
	for _, n := range cmds {
		path := strings.TrimPrefix(n.FullPath(), "floatip ")
		if !strings.Contains(man.String(), `.SS "\fBfloatip `+strings.ReplaceAll(path, "-", `\-`)) {
			t.Errorf("man page has no section for %q", path)
		}
		if !strings.Contains(zsh.String(), "'"+n.Name+":") {
			t.Errorf("zsh completion does not offer %q", path)
		}
		for _, f := range clidoc.Flags(n) {
			if !strings.Contains(man.String(), `\fB\-\-`+strings.ReplaceAll(f.Name, "-", `\-`)+`\fR`) {
				t.Errorf("man page lacks --%s of %q", f.Name, path)
			}
			if !strings.Contains(zsh.String(), "--"+f.Name) {
				t.Errorf("zsh completion lacks --%s of %q", f.Name, path)
			}
		}
	}
	if strings.Contains(man.String(), "floatip man") {
		t.Error("the man page lists the hidden man command")
	}
}

// kongplete answers bash's and fish's COMP_LINE queries from the same model.
func TestCompletionAnswers(t *testing.T) {
	for line, want := range map[string]string{
		"floatip im":                      "import",
		"floatip import keepalived --int": "--interface",
		"floatip run --prof":              "--profile",
		"floatip completion ":             "zsh",
	} {
		var out bytes.Buffer
		t.Setenv("COMP_LINE", line)
		exited := -1
		kongplete.Complete(parserForTest(t, &out), kongplete.WithExitFunc(func(code int) { exited = code }))
		if exited != 0 || !strings.Contains(out.String(), want) {
			t.Errorf("COMP_LINE=%q: exit %d, output %q, want %q in it", line, exited, out.String(), want)
		}
	}
}
