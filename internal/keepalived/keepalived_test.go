package keepalived

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Every sample and own configuration, with the options it is imported with.
var goldenCases = []struct {
	file, iface, configID string
}{
	{file: "debian-sample.conf"},
	{file: "debian-vrrp.conf"}, // two interfaces: an error naming them
	{file: "debian-vrrp.conf", iface: "eth0"},
	{file: "debian-vrrp.conf", iface: "eth1"},
	{file: "debian-vrrp.localcheck.conf", iface: "eth0"},
	{file: "debian-vrrp.scripts.conf"},
	{file: "debian-vrrp.sync.conf", iface: "eth0"},
	{file: "debian-track_interface.conf"},
	{file: "debian-IPv6.conf"}, // LVS only: an error saying so
	{file: "debian-conditional_conf.conf", configID: "high"},
	{file: "debian-conditional_conf.conf", configID: "low"},
	{file: "debian-vrrp.static_ipaddress.conf"},
	{file: "haproxy-unicast.conf"},
	{file: "includes.conf"},
	{file: "db-sync.conf"},
	{file: "mixed-preempt.conf"},
	{file: "lvs-only.conf"},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		name := strings.TrimSuffix(tc.file, ".conf")
		if tc.iface != "" {
			name += "@" + tc.iface
		}
		if tc.configID != "" {
			name += "@" + tc.configID
		}
		t.Run(name, func(t *testing.T) {
			out, err := Import(filepath.Join("testdata", tc.file), tc.configID, Options{Interface: tc.iface, Source: tc.file})
			golden := filepath.Join("testdata", "golden", name+".yaml")
			got := out
			if err != nil {
				golden = filepath.Join("testdata", "golden", name+".err")
				got = []byte(err.Error() + "\n")
			}
			if *update {
				_ = os.Remove(filepath.Join("testdata", "golden", name+".yaml"))
				_ = os.Remove(filepath.Join("testdata", "golden", name+".err"))
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("import: %v; no golden file %s", err, golden)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("import of %s differs from %s (-want +got):\n%s", tc.file, golden, d)
			}
			if err == nil {
				if cerr := Check(out); cerr != nil {
					t.Errorf("output does not pass floatip check: %v", cerr)
				}
			}
		})
	}
}

func TestTokenizer(t *testing.T) {
	src := `# comment
global_defs {   ! another comment
  router_id "with space # not a comment ! nor this"
}
vrrp_instance VI_1
{
  virtual_ipaddress { 192.0.2.1 192.0.2.2
  }
  notify_master "/bin/echo a b" root#trailing
}
`
	nodes, err := Parse("t.conf", []byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	type flat struct {
		Key      string
		Args     []string
		Line     int
		Children []flat
	}
	var conv func([]*Node) []flat
	conv = func(ns []*Node) []flat {
		var out []flat
		for _, n := range ns {
			out = append(out, flat{n.Key, n.Args, n.Line, conv(n.Children)})
		}
		return out
	}
	want := []flat{
		{Key: "global_defs", Line: 2, Children: []flat{
			{Key: "router_id", Args: []string{"with space # not a comment ! nor this"}, Line: 3},
		}},
		{Key: "vrrp_instance", Args: []string{"VI_1"}, Line: 5, Children: []flat{
			{Key: "virtual_ipaddress", Line: 7, Children: []flat{{Key: "192.0.2.1", Args: []string{"192.0.2.2"}, Line: 7}}},
			{Key: "notify_master", Args: []string{"/bin/echo a b", "root"}, Line: 9},
		}},
	}
	if d := cmp.Diff(want, conv(nodes)); d != "" {
		t.Errorf("parse (-want +got):\n%s", d)
	}
}

func TestConditionalLines(t *testing.T) {
	src := "@a priority 1\n@^a priority 2\n@b priority 3\npriority 4\n"
	for id, want := range map[string][]string{"a": {"1", "4"}, "b": {"2", "3", "4"}, "": {"2", "4"}} {
		nodes, err := Parse("t.conf", []byte(src), id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range nodes {
			got = append(got, n.Args[0])
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("config id %q (-want +got):\n%s", id, d)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop.conf")
	if err := os.WriteFile(loop, []byte("include loop.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"unclosed", "vrrp_instance X {\n interface eth0\n", `t.conf: block "vrrp_instance" opened at line 1 is never closed`},
		{"extra close", "a\n}\n", `t.conf:2: "}" without a block to close`},
		{"brace alone", "{\n", `t.conf:1: "{" without a keyword before it`},
		{"quote", "router_id \"abc\n", "t.conf:1: unterminated quote"},
		{"missing include", "include nothere.conf\n", `include "nothere.conf": no such file`},
		{"variables", "$IF=eth0\n", "t.conf:1: keepalived parameter definitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "t.conf"), []byte(tc.src), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseFile(loop, ""); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("include loop: error %v, want one about nesting", err)
	}
}

// A glob that matches nothing is no error (keepalived allows an empty
// conf.d), and an include is relative to the file that has it.
func TestIncludeRelative(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "more"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "main.conf"), "include sub/a.conf\ninclude empty/*.conf\n")
	write(filepath.Join(sub, "a.conf"), "a 1\ninclude more/b.conf\n")
	write(filepath.Join(sub, "more", "b.conf"), "b 2\n")
	nodes, err := ParseFile(filepath.Join(dir, "main.conf"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Key != "a" || nodes[1].Key != "b" || nodes[1].Where() != "b.conf:1" {
		t.Errorf("nodes %+v, want a (a.conf) then b (b.conf:1)", nodes)
	}
}

// FuzzConvert: any input gives a configuration that passes floatip check,
// or an error; never a panic.
func FuzzConvert(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.conf"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := Parse("fuzz.conf", data, "")
		if err != nil {
			return
		}
		out, err := Convert(nodes, Options{Interface: "eth0"})
		if err != nil {
			return
		}
		if err := Check(out); err != nil {
			t.Fatalf("output does not pass floatip check: %v\n%s", err, out)
		}
	})
}

// Bad values are one-line errors naming the file and line.
func TestConvertErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"priority", "vrrp_instance X {\n interface eth0\n priority abc\n}\n", `t.conf:3: priority: "abc" is not a number in 0..255`},
		{"no interface", "vrrp_instance X {\n virtual_ipaddress { 192.0.2.1 }\n}\n", "t.conf:1: vrrp_instance X has no interface"},
		{"twice", "vrrp_instance X {\n interface eth0\n}\nvrrp_instance X {\n interface eth0\n}\n", "t.conf:4: vrrp_instance X is defined twice"},
		{"empty script", "vrrp_script S {\n interval 1\n}\n", "t.conf:1: vrrp_script S has no script"},
		{"delay", "vrrp_instance X {\n interface eth0\n preempt_delay soon\n}\n", `t.conf:3: preempt_delay: "soon" is not a number of seconds`},
		{"nothing", "global_defs {\n router_id a\n}\n", "nothing to import: no vrrp_instance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, err := Parse("t.conf", []byte(tc.src), "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Convert(nodes, Options{})
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
