package clidoc

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

type sample struct {
	Verbose bool `short:"v" help:"Say more."`
	Serve   struct {
		Listen string `placeholder:"ADDR" help:"Address [host:port] to listen on."`
		Config string `short:"c" placeholder:"FILE" help:"Configuration file."`
		Mode   string `enum:"a,b" default:"a" help:"Mode: a or b."`
	} `cmd:"" help:"Serve it, don't stop."`
	Import struct {
		Thing struct {
			File string `arg:"" help:"File to read."`
			Dry  bool   `help:"Do not write."`
		} `cmd:"" help:"Import a thing."`
	} `cmd:"" help:"Import things."`
	Secret struct {
		Key string `help:"Hidden command's flag."`
	} `cmd:"" hidden:"" help:"Not for users."`
}

// tool finds a program that checks the output; it skips the check when the
// program is missing, except under CI, where .ci/run installs it.
func tool(t *testing.T, name string) (string, bool) {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (.ci/run installs it)", name)
	}
	return p, err == nil
}

func model(t *testing.T) *kong.Application {
	var s sample
	return kong.Must(&s, kong.Name("tool"), kong.Description("A tool: it does things.")).Model
}

// Coverage checks that every visible command path and flag is in out.
func coverage(t *testing.T, app *kong.Application, out string, flag func(*kong.Flag) string) {
	t.Helper()
	for _, n := range Commands(app.Node) {
		if !strings.Contains(out, n.Name) {
			t.Errorf("command %q missing", path(n))
		}
		for _, f := range Flags(n) {
			if !strings.Contains(out, flag(f)) {
				t.Errorf("flag %s of %q missing (looked for %q)", f.Name, path(n), flag(f))
			}
		}
	}
}

func TestManCoversModel(t *testing.T) {
	app := model(t)
	var b bytes.Buffer
	if err := Man(&b, app, Page{Version: "1.2", Description: "Para one.\n\n.Para two starts with a dot.", SeeAlso: []string{"ip(8)"}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	coverage(t, app, out, func(f *kong.Flag) string { return `\-\-` + strings.ReplaceAll(f.Name, "-", `\-`) })
	for _, want := range []string{
		".TH TOOL 8", `.SS "\fBtool import thing\fR [\fIflags\fR] \fIFILE\fR"`, `\fB\-c\fR, \fB\-\-config\fR=\fIFILE\fR`,
		`\fB\-v\fR, \fB\-\-verbose\fR`, "\\&.Para two", `\fBip\fR(8)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("man page lacks %q:\n%s", want, out)
		}
	}
	for _, hidden := range []string{"secret", "Hidden command"} {
		if strings.Contains(out, hidden) {
			t.Errorf("man page shows the hidden %q", hidden)
		}
	}
	// man itself finds no problem in the page.
	if _, ok := tool(t, "man"); ok {
		p := t.TempDir() + "/tool.8"
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("man", "--warnings", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_STDERR=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings: %v: %s", err, stderr.String())
		}
	}
}

func TestZshCoversModel(t *testing.T) {
	app := model(t)
	var b bytes.Buffer
	if err := Zsh(&b, app); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	coverage(t, app, out, func(f *kong.Flag) string { return "--" + f.Name })
	for _, want := range []string{"#compdef tool", "_tool_import_thing()", "'--mode=[Mode - a or b]:\"a\":(a b)'", "'1:file:_files'", `'serve:Serve it, don'\''t stop'`, "'--listen=[Address (host -port) to listen on]:ADDR:'"} {
		if !strings.Contains(out, want) {
			t.Errorf("zsh completion lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Error("zsh completion offers the hidden command")
	}
	if zsh, ok := tool(t, "zsh"); ok {
		p := t.TempDir() + "/_tool"
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(zsh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v: %s", err, out)
		}
	}
}

func TestBashFish(t *testing.T) {
	var b bytes.Buffer
	if err := Bash(&b, "tool", "/usr/sbin/tool"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "complete -C /usr/sbin/tool tool\n") {
		t.Errorf("bash: %q", b.String())
	}
	b.Reset()
	if err := Fish(&b, "tool", "/usr/sbin/tool"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `complete -f -c tool -a "(__complete_tool)"`) || !strings.Contains(b.String(), "    /usr/sbin/tool\n") {
		t.Errorf("fish: %q", b.String())
	}
	if bash, ok := tool(t, "bash"); ok {
		var s bytes.Buffer
		_ = Bash(&s, "tool", "/usr/sbin/tool")
		if out, err := exec.Command(bash, "-n", "-c", s.String()).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v: %s", err, out)
		}
	}
}

// TestDetailList: an indented list in a command's long help (as floatip lab
// prints its demo's flags) becomes tagged paragraphs, not one run of words.
func TestDetailList(t *testing.T) {
	got := detail("Takes these flags:\n\n    --fault=FAULT\n        What breaks.\n    --keep\n        Leave it running.")
	want := ".PP\nTakes these flags:\n.TP\n\\-\\-fault=FAULT\nWhat breaks.\n.TP\n\\-\\-keep\nLeave it running.\n"
	if got != want {
		t.Errorf("detail =\n%q\nwant\n%q", got, want)
	}
}
