// Package clidoc generates floatip's manual page and shell completions from
// the kong command-line model, so they never drift from the flags.
//
// The roff and zsh writers are small and written here: kong has no man page
// generator, and kongplete (used for bash and fish) completes by running the
// binary itself, which zsh's completion system does not do natively. Bash
// and fish get kongplete's one-line registrations (the binary answers
// COMP_LINE queries, so they follow the model by construction); zsh gets a
// static #compdef function walked from the same model.
package clidoc

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// Commands returns the visible command nodes below n, depth first, in
// declaration order.
func Commands(n *kong.Node) []*kong.Node {
	var out []*kong.Node
	for _, c := range n.Children {
		if c.Hidden || c.Type != kong.CommandNode {
			continue
		}
		out = append(out, c)
		out = append(out, Commands(c)...)
	}
	return out
}

// Flags returns the visible flags of n itself (not its parents'), without
// --help.
func Flags(n *kong.Node) []*kong.Flag {
	var out []*kong.Flag
	for _, f := range n.Flags {
		if f.Hidden || f.Name == "help" {
			continue
		}
		out = append(out, f)
	}
	return out
}

// Page is the text of the manual page around the generated commands.
type Page struct {
	Version     string
	Description string // DESCRIPTION paragraphs, plain text separated by blank lines
	Files       [][2]string
	Signals     [][2]string
	ExitStatus  [][2]string
	SeeAlso     []string
}

// roff escapes plain text for roff: backslashes, and a leading "." or "'"
// that would start a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// text escapes prose: like roff, but keeps hyphens inside words.
func text(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "--", `\-\-`)
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line)
	}
	return b.String()
}

// flagSpec is "-c, --config=FILE" in roff.
func flagSpec(f *kong.Flag) string {
	s := `\fB\-\-` + roff(f.Name) + `\fR`
	if f.Short != 0 {
		s = `\fB\-` + roff(string(f.Short)) + `\fR, ` + s
	}
	if !f.IsBool() && !f.IsCounter() {
		s += `=\fI` + roff(f.FormatPlaceHolder()) + `\fR`
	}
	return s
}

// usage is "floatip import keepalived [flags] FILE".
func usage(app *kong.Application, n *kong.Node) string {
	s := `\fB` + roff(strings.TrimSpace(app.Name+" "+path(n))) + `\fR`
	if len(Flags(n)) > 0 {
		s += ` [\fIflags\fR]`
	}
	for _, p := range n.Positional {
		a := `\fI` + roff(strings.ToUpper(p.Name)) + `\fR`
		if !p.Required {
			a = "[" + a + "]"
		}
		s += " " + a
	}
	if len(Commands(n)) > 0 && len(n.Positional) == 0 {
		s += ` \fIcommand\fR`
	}
	return s
}

// path is the command path below the application: "import keepalived".
func path(n *kong.Node) string {
	var parts []string
	for p := n; p != nil && p.Type == kong.CommandNode; p = p.Parent {
		parts = append([]string{p.Name}, parts...)
	}
	return strings.Join(parts, " ")
}

func help(s string) string {
	return text(strings.TrimSpace(s))
}

// detail renders a command's long help. A paragraph of indented lines is a
// list as --help prints it ("    --flag" then the text indented deeper):
// each item becomes a tagged paragraph, which man would otherwise flow
// into one run of words.
func detail(s string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if !strings.HasPrefix(para, " ") {
			b.WriteString(".PP\n" + help(para) + "\n")
			continue
		}
		for _, line := range strings.Split(para, "\n") {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			line = strings.TrimSpace(line)
			switch {
			case line == "":
			case indent <= 4:
				b.WriteString(".TP\n" + roff(line) + "\n")
			default:
				b.WriteString(text(line) + "\n")
			}
		}
	}
	return b.String()
}

// Man writes the floatip(8) page: NAME, SYNOPSIS, DESCRIPTION, then every
// visible command with its arguments and flags, then the page's sections.
func Man(w io.Writer, app *kong.Application, p Page) error {
	var b strings.Builder
	name := app.Name
	fmt.Fprintf(&b, ".TH %s 8 \"\" \"%s %s\" \"System Administration\"\n", strings.ToUpper(name), name, roff(p.Version))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", name, help(strings.TrimSuffix(app.Help, ".")))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n\\fIcommand\\fR [\\fIflags\\fR] [\\fIarguments\\fR]\n", name)
	b.WriteString(".SH DESCRIPTION\n")
	for i, para := range strings.Split(strings.TrimSpace(p.Description), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(text(para) + "\n")
	}
	b.WriteString(".SH COMMANDS\n")
	for _, n := range Commands(app.Node) {
		fmt.Fprintf(&b, ".SS \"%s\"\n", strings.ReplaceAll(usage(app, n), `"`, `\(dq`))
		b.WriteString(help(n.Help) + "\n")
		if n.Detail != "" {
			b.WriteString(detail(n.Detail))
		}
		for _, a := range n.Positional {
			fmt.Fprintf(&b, ".TP\n\\fI%s\\fR\n%s\n", roff(strings.ToUpper(a.Name)), help(a.Help))
		}
		for _, f := range Flags(n) {
			fmt.Fprintf(&b, ".TP\n%s\n%s\n", flagSpec(f), help(f.Help))
		}
	}
	if fl := Flags(app.Node); len(fl) > 0 {
		b.WriteString(".SH GLOBAL FLAGS\n")
		for _, f := range fl {
			fmt.Fprintf(&b, ".TP\n%s\n%s\n", flagSpec(f), help(f.Help))
		}
	}
	b.WriteString(".PP\nEvery command takes \\fB\\-h\\fR, \\fB\\-\\-help\\fR.\n")
	section := func(title string, items [][2]string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, ".SH %s\n", title)
		for _, it := range items {
			fmt.Fprintf(&b, ".TP\n\\fB%s\\fR\n%s\n", roff(it[0]), help(it[1]))
		}
	}
	section("FILES", p.Files)
	section("SIGNALS", p.Signals)
	section("EXIT STATUS", p.ExitStatus)
	if len(p.SeeAlso) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		var refs []string
		for _, s := range p.SeeAlso {
			page, sect, _ := strings.Cut(strings.TrimSuffix(s, ")"), "(")
			refs = append(refs, fmt.Sprintf("\\fB%s\\fR(%s)", roff(page), sect))
		}
		b.WriteString(strings.Join(refs, ",\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Bash writes the bash registration: bash asks bin itself (kongplete
// answers COMP_LINE).
func Bash(w io.Writer, name, bin string) error {
	_, err := fmt.Fprintf(w, "# bash completion for %s: %s completes itself (COMP_LINE).\ncomplete -C %s %s\n", name, name, bin, name)
	return err
}

// Fish writes the fish registration: fish asks bin itself with COMP_LINE set,
// as kongplete expects.
func Fish(w io.Writer, name, bin string) error {
	_, err := fmt.Fprintf(w, `# fish completion for %[1]s: %[1]s completes itself (COMP_LINE).
function __complete_%[1]s
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[2]s
end
complete -f -c %[1]s -a "(__complete_%[1]s)"
`, name, bin)
	return err
}

// zshText makes text safe inside a single-quoted zsh spec, its
// [description] and its :message: parts.
func zshText(s string) string {
	r := strings.NewReplacer("'", `'\''`, "[", "(", "]", ")", ":", " -", "\\", "", "\n", " ", "`", "", "$", "")
	return r.Replace(strings.TrimSpace(s))
}

// zshHelp is a help text as a zsh description: without its final period.
func zshHelp(s string) string {
	return zshText(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// zshFunc is the completion function of n: _APP_import_keepalived.
func zshFunc(app *kong.Application, n *kong.Node) string {
	p := strings.ReplaceAll(path(n), " ", "_")
	p = strings.ReplaceAll(p, "-", "_")
	if p == "" {
		return "_" + app.Name
	}
	return "_" + app.Name + "_" + p
}

// zshValue is the ":message:action" of a flag's value.
func zshValue(f *kong.Flag) string {
	if f.IsBool() || f.IsCounter() {
		return ""
	}
	ph := zshText(f.FormatPlaceHolder())
	action := ""
	switch {
	case f.Enum != "":
		vals := strings.Split(f.Enum, ",")
		for i := range vals {
			vals[i] = strings.TrimSpace(vals[i])
		}
		action = "(" + strings.Join(vals, " ") + ")"
	case strings.Contains(ph, "FILE") || strings.Contains(ph, "PATH"):
		action = "_files"
	}
	return ":" + ph + ":" + action
}

// Zsh writes a #compdef function for the application's visible commands
// and flags.
func Zsh(w io.Writer, app *kong.Application) error {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s, generated from its command-line definitions.\n\n", app.Name, app.Name)
	var funcs []*kong.Node
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		funcs = append(funcs, n)
		for _, c := range n.Children {
			if !c.Hidden && c.Type == kong.CommandNode {
				walk(c)
			}
		}
	}
	walk(app.Node)
	for _, n := range funcs {
		fname := zshFunc(app, n)
		fmt.Fprintf(&b, "%s() {\n", fname)
		var specs []string
		for _, f := range Flags(n) {
			v := zshValue(f)
			h := zshHelp(f.Help)
			if f.Short != 0 {
				specs = append(specs, fmt.Sprintf("'(-%c --%s)'{-%c,--%s}'[%s]%s'", f.Short, f.Name, f.Short, f.Name, h, v))
			} else {
				eq := ""
				if v != "" {
					eq = "="
				}
				specs = append(specs, fmt.Sprintf("'--%s%s[%s]%s'", f.Name, eq, h, v))
			}
		}
		specs = append(specs, "'(-h --help)'{-h,--help}'[Show help]'")
		var subs []*kong.Node
		for _, c := range n.Children {
			if !c.Hidden && c.Type == kong.CommandNode {
				subs = append(subs, c)
			}
		}
		if len(subs) > 0 {
			b.WriteString("  local line state\n")
			fmt.Fprintf(&b, "  _arguments -C \\\n    %s \\\n    '1: :->cmds' '*:: :->args'\n", strings.Join(specs, " \\\n    "))
			b.WriteString("  case $state in\n    cmds)\n      local -a cmds\n      cmds=(\n")
			for _, c := range subs {
				fmt.Fprintf(&b, "        '%s:%s'\n", c.Name, zshHelp(c.Help))
			}
			b.WriteString("      )\n      _describe -t commands 'command' cmds ;;\n    args)\n      case $line[1] in\n")
			for _, c := range subs {
				fmt.Fprintf(&b, "        %s) %s ;;\n", c.Name, zshFunc(app, c))
			}
			b.WriteString("      esac ;;\n  esac\n}\n\n")
			continue
		}
		for i, p := range n.Positional {
			action := ""
			if strings.Contains(strings.ToLower(p.Name), "file") || strings.Contains(strings.ToLower(p.Name), "path") {
				action = "_files"
			}
			opt := ""
			if !p.Required {
				opt = ":"
			}
			specs = append(specs, fmt.Sprintf("'%d:%s%s:%s'", i+1, opt, zshText(p.Name), action))
		}
		fmt.Fprintf(&b, "  _arguments \\\n    %s\n}\n\n", strings.Join(specs, " \\\n    "))
	}
	fmt.Fprintf(&b, "_%s \"$@\"\n", app.Name)
	_, err := io.WriteString(w, b.String())
	return err
}
