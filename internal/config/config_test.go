package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// addrEqual lets cmp compare netip.Addr, whose fields are unexported.
var addrEqual = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// problemStrings returns each problem of err formatted, failing the test if
// err is not a *Problems.
func problemStrings(t *testing.T, err error) []string {
	t.Helper()
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not a *Problems", err, err)
	}
	var out []string
	for _, p := range *ps {
		out = append(out, p.String())
	}
	return out
}

func TestPreset(t *testing.T) {
	def, err := Preset("default")
	if err != nil {
		t.Fatal(err)
	}
	wantDef := Timing{
		CheckInterval: 50 * time.Millisecond, Misses: 3, ClaimSlot: 20 * time.Millisecond,
		AnnounceCount: 3, AnnounceInterval: 100 * time.Millisecond,
		Lifetime: 3 * time.Second, RenewInterval: time.Second, BeaconInterval: 500 * time.Millisecond,
	}
	if diff := cmp.Diff(wantDef, def); diff != "" {
		t.Errorf("default preset (-want +got):\n%s", diff)
	}
	fast, err := Preset("fast")
	if err != nil {
		t.Fatal(err)
	}
	wantFast := Timing{
		CheckInterval: 10 * time.Millisecond, Misses: 3, ClaimSlot: 5 * time.Millisecond,
		AnnounceCount: 3, AnnounceInterval: 20 * time.Millisecond,
		Lifetime: 2 * time.Second, RenewInterval: 500 * time.Millisecond, BeaconInterval: 500 * time.Millisecond,
	}
	if diff := cmp.Diff(wantFast, fast); diff != "" {
		t.Errorf("fast preset (-want +got):\n%s", diff)
	}
	if _, err := Preset("slow"); err == nil || !strings.Contains(err.Error(), `unknown profile "slow"`) {
		t.Errorf("Preset(slow) error = %v", err)
	}
	// Both presets must pass the checks themselves.
	for _, name := range []string{"default", "fast"} {
		c := Default()
		c.Profile = name
		c.Timing, _ = Preset(name)
		c.Interface = "eth0"
		c.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100"), Priority: 100}}
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		Priority: 100, NodeName: hostname(t), Profile: "default", OnForeignClaim: "yield",
		LogFormat: "text", LogLevel: "info", Control: Control{Socket: DefaultSocket},
	}
	want.Timing, _ = Preset("default")
	if diff := cmp.Diff(want, c, addrEqual); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
}

func TestParseValid(t *testing.T) {
	def, _ := Preset("default")
	fast, _ := Preset("fast")
	host := hostname(t)
	base := func(f func(*Config)) Config {
		c := Config{
			Path: "floatip.yaml", Priority: 100, NodeName: host, Profile: "default",
			OnForeignClaim: "yield", LogFormat: "text", LogLevel: "info", Timing: def,
			Control: Control{Socket: DefaultSocket},
		}
		f(&c)
		return c
	}
	tests := []struct {
		name string
		yaml string
		want Config
	}{
		{"empty file", "", base(func(*Config) {})},
		{"comments only", "# nothing\n", base(func(*Config) {})},
		{"shorthand vips", "interface: eth0\nvips: [198.18.0.100, 198.18.0.101]\n", base(func(c *Config) {
			c.Interface = "eth0"
			c.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100", "198.18.0.101"), Priority: 100}}
		})},
		{"group priority defaults to node priority", "priority: 200\ngroups:\n  - name: a\n    vips: [10.0.0.1]\n  - name: b\n    vips: [10.0.0.2]\n    priority: 50\n", base(func(c *Config) {
			c.Priority = 200
			c.Groups = []Group{
				{Name: "a", VIPs: addrs("10.0.0.1"), Priority: 200},
				{Name: "b", VIPs: addrs("10.0.0.2"), Priority: 50},
			}
		})},
		{"fast profile", "profile: fast\n", base(func(c *Config) {
			c.Profile = "fast"
			c.Timing = fast
		})},
		{"explicit timing overrides the preset", "profile: fast\ntiming:\n  lifetime: 10s\n  misses: 5\n  claim_slot: 0s\n", base(func(c *Config) {
			c.Profile = "fast"
			c.Timing = fast
			c.Timing.Lifetime = 10 * time.Second
			c.Timing.Misses = 5
			c.Timing.ClaimSlot = 0
		})},
		{"null collections count as unset", "timing:\nvips:\ngroups:\n", base(func(*Config) {})},
		{"anchors and aliases", "vips: &v [10.0.0.1]\n", base(func(c *Config) {
			c.Groups = []Group{{Name: "default", VIPs: addrs("10.0.0.1"), Priority: 100}}
		})},
		{"strings", "node_name: db-2\non_foreign_claim: defend\nlog_format: json\nlog_level: debug\n", base(func(c *Config) {
			c.NodeName = "db-2"
			c.OnForeignClaim = "defend"
			c.LogFormat = "json"
			c.LogLevel = "debug"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("floatip.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, addrEqual); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown keys at every level",
			"interface: eth0\nintervall: 3\ntiming:\n  check_intervall: 10ms\n  lifetime: 4s\ngroups:\n  - name: a\n    vip: [10.0.0.1]\n    vips: [10.0.0.2]\n",
			[]string{
				`floatip.yaml:2: unknown key "intervall"`,
				`floatip.yaml:4: timing: unknown key "check_intervall" (did you mean "check_interval"?)`,
				`floatip.yaml:8: groups[0]: unknown key "vip" (did you mean "vips"?)`,
			}},
		{"duplicate key", "priority: 10\npriority: 20\n",
			[]string{`floatip.yaml:2: duplicate key "priority" (first at line 1)`}},
		{"interface with slash", "interface: eth0/1\n",
			[]string{`floatip.yaml:1: interface: "eth0/1" is not a valid interface name (no "/", ":" or whitespace)`}},
		{"interface with space", "interface: \"eth 0\"\n",
			[]string{`floatip.yaml:1: interface: "eth 0" is not a valid interface name (no "/", ":" or whitespace)`}},
		{"interface too long", "interface: abcdefghijklmnop\n",
			[]string{`floatip.yaml:1: interface: "abcdefghijklmnop" is longer than 15 bytes, the kernel's limit for interface names`}},
		{"interface empty", "interface: \"\"\n",
			[]string{`floatip.yaml:1: interface: must not be empty`}},
		{"interface no value", "interface:\n",
			[]string{`floatip.yaml:1: interface: has no value`}},
		{"priority too high", "\npriority: 300\n",
			[]string{`floatip.yaml:2: priority: must be 1..254, got 300`}},
		{"priority zero", "priority: 0\n",
			[]string{`floatip.yaml:1: priority: must be 1..254, got 0`}},
		{"priority not a number", "priority: high\n",
			[]string{`floatip.yaml:1: priority: "high" is not a whole number`}},
		{"priority a list", "priority: [1]\n",
			[]string{`floatip.yaml:1: priority: must be a single value, not a list`}},
		{"group priority", "groups:\n  - name: a\n    vips: [10.0.0.1]\n    priority: 255\n",
			[]string{`floatip.yaml:4: groups[0].priority: must be 1..254, got 255`}},
		{"node name empty", "node_name: \"\"\n",
			[]string{`floatip.yaml:1: node_name: must not be empty`}},
		{"string sets", "profile: slow\non_foreign_claim: fight\nlog_format: xml\nlog_level: trace\n",
			[]string{
				`floatip.yaml:1: profile: "slow" is not one of default or fast`,
				`floatip.yaml:2: on_foreign_claim: "fight" is not one of yield or defend`,
				`floatip.yaml:3: log_format: "xml" is not one of text or json`,
				`floatip.yaml:4: log_level: "trace" is not one of debug, info, warn or error`,
			}},
		{"durations that do not parse", "timing:\n  check_interval: fast\n  claim_slot: 20\n",
			[]string{
				`floatip.yaml:2: timing.check_interval: "fast" is not a duration (write it with a unit, like "50ms" or "2s")`,
				`floatip.yaml:3: timing.claim_slot: "20" is not a duration (write it with a unit, like "50ms" or "2s")`,
			}},
		{"durations not positive", "timing:\n  check_interval: 0s\n  announce_interval: -1s\n  renew_interval: 0s\n  beacon_interval: -5ms\n",
			[]string{
				`floatip.yaml:2: timing.check_interval: must be positive, got 0s`,
				`floatip.yaml:3: timing.announce_interval: must be positive, got -1s`,
				`floatip.yaml:4: timing.renew_interval: must be positive, got 0s`,
				`floatip.yaml:5: timing.beacon_interval: must be positive, got -5ms`,
			}},
		{"check_interval below 1ms", "timing:\n  check_interval: 500us\n",
			[]string{`floatip.yaml:2: timing.check_interval: must be at least 1ms, got 500µs`}},
		{"claim_slot negative", "timing:\n  claim_slot: -1ms\n",
			[]string{`floatip.yaml:2: timing.claim_slot: must not be negative, got -1ms`}},
		{"counts out of range", "timing:\n  misses: 0\n  announce_count: 101\n",
			[]string{
				`floatip.yaml:2: timing.misses: must be 1..100, got 0`,
				`floatip.yaml:3: timing.announce_count: must be 1..100, got 101`,
			}},
		{"counts too high and too low", "timing:\n  misses: 101\n  announce_count: 0\n",
			[]string{
				`floatip.yaml:2: timing.misses: must be 1..100, got 101`,
				`floatip.yaml:3: timing.announce_count: must be 1..100, got 0`,
			}},
		{"lifetime too short", "timing:\n  lifetime: 1s\n  renew_interval: 500ms\n",
			[]string{`floatip.yaml:2: timing.lifetime: must be at least 2s, got 1s`}},
		{"lifetime fraction", "timing:\n  lifetime: 2500ms\n",
			[]string{`floatip.yaml:2: timing.lifetime: 2.5s is not a whole number of seconds (the kernel keeps address lifetimes in whole seconds)`}},
		{"lifetime too long", "timing:\n  lifetime: 2000000h\n",
			[]string{`floatip.yaml:2: timing.lifetime: 2000000h0m0s is too long (the kernel keeps address lifetimes as 32-bit seconds; at most 1193046h28m14s)`}},
		{"renew_interval over half the lifetime", "timing:\n  lifetime: 2s\n  renew_interval: 1.5s\n",
			[]string{`floatip.yaml:3: timing.renew_interval: lifetime 2s must be at least twice renew_interval 1.5s, or the address may expire between renewals`}},
		{"lifetime under twice the preset's renew_interval", "profile: fast\ntiming:\n  lifetime: 2s\n  renew_interval: 1001ms\n",
			[]string{`floatip.yaml:4: timing.renew_interval: lifetime 2s must be at least twice renew_interval 1.001s, or the address may expire between renewals`}},
		{"renew_interval exactly half the lifetime", "timing:\n  renew_interval: 1s\n  lifetime: 2s\n",
			nil},
		{"beacon below check", "timing:\n  check_interval: 100ms\n  beacon_interval: 50ms\n",
			[]string{`floatip.yaml:3: timing.beacon_interval: beacon_interval 50ms must be at least check_interval 100ms`}},
		{"beacon below check, only check set", "timing:\n  check_interval: 2s\n",
			[]string{`floatip.yaml:2: timing.check_interval: beacon_interval 500ms must be at least check_interval 2s`}},
		{"relative control socket", "control:\n  socket: floatip.sock\n",
			[]string{`floatip.yaml:2: control.socket: must be an absolute path, got "floatip.sock"`}},
		{"metrics listen without port", "metrics:\n  listen: localhost\n",
			[]string{`floatip.yaml:2: metrics.listen: must be host:port (e.g. 127.0.0.1:9110), got "localhost"`}},
		{"unknown control key", "control:\n  path: /x\n",
			[]string{`floatip.yaml:2: control: unknown key "path"`}},
		{"timing not a mapping", "timing: fast\n",
			[]string{`floatip.yaml:1: timing: must be a mapping of keys to values, not the value "fast"`}},
		{"vip not an address", "groups:\n  - name: web\n    vips:\n      - 198.18.0.100\n      - 10.0.0.300\n",
			[]string{`floatip.yaml:5: groups[0].vips[1]: "10.0.0.300" is not an IPv4 address`}},
		{"vip kinds", "vips:\n  - 2001:db8::1\n  - 0.0.0.0\n  - 127.0.0.1\n  - 224.0.0.18\n  - 255.255.255.255\n  - 169.254.1.1\n  - 10.0.0.1/24\n  - ::ffff:10.0.0.2\n  - 10.0.0.3\n",
			[]string{
				`floatip.yaml:2: vips[0]: "2001:db8::1": IPv6 VIPs are not supported yet (ARP mode is IPv4)`,
				`floatip.yaml:3: vips[1]: 0.0.0.0 is the unspecified address`,
				`floatip.yaml:4: vips[2]: 127.0.0.1 is a loopback address`,
				`floatip.yaml:5: vips[3]: 224.0.0.18 is a multicast address`,
				`floatip.yaml:6: vips[4]: 255.255.255.255 is the broadcast address`,
				`floatip.yaml:7: vips[5]: 169.254.1.1 is a link-local address (169.254.0.0/16)`,
				`floatip.yaml:8: vips[6]: "10.0.0.1/24": a VIP is a single address, without a prefix length`,
				`floatip.yaml:9: vips[7]: "::ffff:10.0.0.2" is an IPv4-mapped IPv6 address; write it as 10.0.0.2`,
			}},
		{"vip twice in a group", "vips:\n  - 10.0.0.1\n  - 10.0.0.1\n",
			[]string{`floatip.yaml:3: vips[1]: 10.0.0.1 is listed twice (also at vips[0], line 2)`}},
		{"vip in two groups", "groups:\n  - name: a\n    vips: [10.0.0.1]\n  - name: b\n    vips: [10.0.0.2, 10.0.0.1]\n",
			[]string{`floatip.yaml:5: groups[1].vips[1]: 10.0.0.1 is listed twice (also at groups[0].vips[0], line 3)`}},
		{"vips not a list", "vips: 10.0.0.1\n",
			[]string{`floatip.yaml:1: vips: must be a list of addresses, like [198.18.0.100], not the value "10.0.0.1"`}},
		{"vips empty", "vips: []\n",
			[]string{`floatip.yaml:1: vips: group has no VIPs; list at least one address`}},
		{"vips and groups", "vips: [10.0.0.1]\ngroups:\n  - name: a\n    vips: [10.0.0.2]\n",
			[]string{`floatip.yaml:2: groups: set either vips: (one group) or groups:, not both (vips: is at line 1)`}},
		{"groups not a list", "groups:\n  name: a\n",
			[]string{`floatip.yaml:2: groups: must be a list of groups, not a mapping`}},
		{"groups empty", "groups: []\n",
			[]string{`floatip.yaml:1: groups: is an empty list; list at least one group, or leave groups: out`}},
		{"group without vips", "groups:\n  - name: a\n",
			[]string{`floatip.yaml:2: groups[0].vips: group has no VIPs; list at least one address`}},
		{"group without name", "groups:\n  - vips: [10.0.0.1]\n",
			[]string{`floatip.yaml:2: groups[0].name: required: every group needs a name`}},
		{"group names", "groups:\n  - name: web\n    vips: [10.0.0.1]\n  - name: web\n    vips: [10.0.0.2]\n  - name: a/b\n    vips: [10.0.0.3]\n  - name: abcdefghijklmnopqrstuvwxyz0123456\n    vips: [10.0.0.4]\n",
			[]string{
				`floatip.yaml:4: groups[1].name: group name "web" is used twice (also at groups[0].name, line 2)`,
				`floatip.yaml:6: groups[2].name: "a/b" is not a valid group name (1..32 of a-z A-Z 0-9 _ . -)`,
				`floatip.yaml:8: groups[3].name: "abcdefghijklmnopqrstuvwxyz0123456" is not a valid group name (1..32 of a-z A-Z 0-9 _ . -)`,
			}},
		{"not a mapping", "- eth0\n",
			[]string{`floatip.yaml:1: the file must be a mapping of keys to values (like "interface: eth0"), not a list`}},
		{"yaml syntax", "interface: eth0\nvips: [10.0.0.1,\n",
			[]string{`floatip.yaml:2: invalid YAML: did not find expected node content`}},
		{"two documents", "interface: eth0\n---\ninterface: eth1\n",
			[]string{`floatip.yaml:2: the file holds more than one YAML document ("---"); floatip reads exactly one`}},
		{"all problems at once, sorted by line",
			"interface: eth0/1\npriority: 300\ntiming:\n  lifetime: 2s\n  renew_interval: 1.5s\n  misses: 0\nvips: [10.0.0.300, 127.0.0.1]\nbogus: 1\n",
			[]string{
				`floatip.yaml:1: interface: "eth0/1" is not a valid interface name (no "/", ":" or whitespace)`,
				`floatip.yaml:2: priority: must be 1..254, got 300`,
				`floatip.yaml:5: timing.renew_interval: lifetime 2s must be at least twice renew_interval 1.5s, or the address may expire between renewals`,
				`floatip.yaml:6: timing.misses: must be 1..100, got 0`,
				`floatip.yaml:7: vips[0]: "10.0.0.300" is not an IPv4 address`,
				`floatip.yaml:7: vips[1]: 127.0.0.1 is a loopback address`,
				`floatip.yaml:8: unknown key "bogus"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("floatip.yaml", []byte(tt.yaml))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want problems:\n%s", strings.Join(tt.want, "\n"))
			}
			if diff := cmp.Diff(tt.want, problemStrings(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(Config{}, c, addrEqual); diff != "" {
				t.Errorf("Parse returned a non-zero Config with its error:\n%s", diff)
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "floatip.yaml", Line: 12, Field: "groups[0].vips[1]", Msg: `"10.0.0.300" is not an IPv4 address`},
			`floatip.yaml:12: groups[0].vips[1]: "10.0.0.300" is not an IPv4 address`},
		{Problem{Field: "priority", Msg: "must be 1..254, got 300"}, "priority: must be 1..254, got 300"},
		{Problem{File: "f.yaml", Msg: "cannot read"}, "f.yaml: cannot read"},
		{Problem{Line: 3, Msg: "x"}, "line 3: x"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	ps := Problems{tests[0].p, tests[1].p}
	if got, want := ps.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLoadFull(t *testing.T) {
	path := filepath.Join("testdata", "full.yaml")
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		Path: path, Interface: "eth0", Priority: 100, NodeName: "web1", Profile: "default",
		OnForeignClaim: "yield", LogFormat: "text", LogLevel: "info",
		Control: Control{Socket: "/run/floatip/floatip.sock", Group: "adm"},
		Metrics: Metrics{Listen: "127.0.0.1:9110"},
		Groups: []Group{
			{Name: "web", VIPs: addrs("198.18.0.100", "198.18.0.101"), Priority: 150},
			{Name: "db", VIPs: addrs("198.18.0.110"), Priority: 100},
		},
	}
	want.Timing, _ = Preset("default")
	if diff := cmp.Diff(want, got, addrEqual); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(missing)
	if diff := cmp.Diff([]string{missing + ": cannot read: no such file or directory"}, problemStrings(t, err)); diff != "" {
		t.Errorf("missing file (-want +got):\n%s", diff)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("interface: eth0\npriority: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if diff := cmp.Diff([]string{bad + ":2: priority: must be 1..254, got 0"}, problemStrings(t, err)); diff != "" {
		t.Errorf("bad file (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.Interface = "eth0"
		c.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100"), Priority: 100}}
		return c
	}
	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"no interface, no VIPs", func(c *Config) { c.Interface = ""; c.Groups = nil; c.Path = "/etc/floatip/floatip.yaml" },
			[]string{
				"interface: no interface: set interface: in /etc/floatip/floatip.yaml or pass --interface",
				"vips: no VIPs: set vips: or groups: in /etc/floatip/floatip.yaml, or pass --vip",
			}},
		{"no node name", func(c *Config) { c.NodeName = "" },
			[]string{"node_name: the host name could not be read: set node_name: in the configuration file"}},
		{"bad values", func(c *Config) {
			c.Priority = 300
			c.Groups[0].VIPs = addrs("198.18.0.100", "fe80::1", "198.18.0.100")
			c.Timing.RenewInterval = 2 * time.Second
		}, []string{
			"priority: must be 1..254, got 300",
			"timing.renew_interval: lifetime 3s must be at least twice renew_interval 2s, or the address may expire between renewals",
			`groups[0].vips[1]: "fe80::1": IPv6 VIPs are not supported yet (ARP mode is IPv4)`,
			"groups[0].vips[2]: 198.18.0.100 is listed twice (also at groups[0].vips[0])",
		}},
		{"invalid address", func(c *Config) { c.Groups[0].VIPs = []netip.Addr{{}} },
			[]string{"vips[0]: not a valid address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want problems")
			}
			if diff := cmp.Diff(tt.want, problemStrings(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApply(t *testing.T) {
	const file = "interface: eth0\npriority: 120\nprofile: default\ntiming:\n  lifetime: 10s\ngroups:\n  - name: web\n    vips: [10.0.0.1]\n  - name: db\n    vips: [10.0.0.2]\n    priority: 200\n"
	fast, _ := Preset("fast")
	tests := []struct {
		name string
		o    Overrides
		edit func(*Config) // applied to the parsed file to get the wanted result
		want []string      // problems; nil for success
	}{
		{"nothing", Overrides{}, func(*Config) {}, nil},
		{"interface", Overrides{Interface: "br0"}, func(c *Config) { c.Interface = "br0" }, nil},
		{"priority keeps a group's own", Overrides{Priority: 50}, func(c *Config) {
			c.Priority = 50
			c.Groups[0].Priority = 50
		}, nil},
		{"vips replace the groups", Overrides{VIPs: []string{"10.0.0.9", "10.0.0.8"}, Priority: 7}, func(c *Config) {
			c.Priority = 7
			c.Groups = []Group{{Name: "default", VIPs: addrs("10.0.0.9", "10.0.0.8"), Priority: 7}}
		}, nil},
		{"profile keeps explicit timing", Overrides{Profile: "fast"}, func(c *Config) {
			c.Profile = "fast"
			c.Timing = fast
			c.Timing.Lifetime = 10 * time.Second
		}, nil},
		{"logging", Overrides{LogFormat: "json", LogLevel: "warn"}, func(c *Config) {
			c.LogFormat = "json"
			c.LogLevel = "warn"
		}, nil},
		{"all invalid at once", Overrides{
			Interface: "a b", VIPs: []string{"10.0.0.300", "::1", "10.0.0.5", "10.0.0.5"}, Priority: 300,
			Profile: "turbo", LogFormat: "xml", LogLevel: "loud",
		}, nil, []string{
			`--interface: "a b" is not a valid interface name (no "/", ":" or whitespace)`,
			"--priority: must be 1..254, got 300",
			`--profile: "turbo" is not one of default or fast`,
			`--log-format: "xml" is not one of text or json`,
			`--log-level: "loud" is not one of debug, info, warn or error`,
			`--vip: "10.0.0.300" is not an IPv4 address`,
			`--vip: "::1": IPv6 VIPs are not supported yet (ARP mode is IPv4)`,
			"--vip: 10.0.0.5 is given twice",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("floatip.yaml", []byte(file))
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := Parse("floatip.yaml", []byte(file))
			err = c.Apply(tt.o)
			if tt.want != nil {
				if err == nil {
					t.Fatal("Apply succeeded, want problems")
				}
				if diff := cmp.Diff(tt.want, problemStrings(t, err)); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(orig, c, addrEqual); diff != "" {
					t.Errorf("Apply changed the config despite errors (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := orig
			want.Groups = append([]Group(nil), orig.Groups...)
			tt.edit(&want)
			if diff := cmp.Diff(want, c, addrEqual); diff != "" {
				t.Errorf("Apply (-want +got):\n%s", diff)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after Apply: %v", err)
			}
		})
	}
}

func TestApplyDoesNotAlias(t *testing.T) {
	c, err := Parse("", []byte("priority: 10\ngroups:\n  - name: a\n    vips: [10.0.0.1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	saved := c
	if err := c.Apply(Overrides{Priority: 20}); err != nil {
		t.Fatal(err)
	}
	if saved.Groups[0].Priority != 10 {
		t.Errorf("Apply changed the groups of a copy: priority %d", saved.Groups[0].Priority)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	full, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fastOdd := Default()
	fastOdd.Interface = "eth1"
	fastOdd.Profile = "fast"
	fastOdd.Timing, _ = Preset("fast")
	fastOdd.Timing.RenewInterval = 1500 * time.Millisecond
	fastOdd.Timing.Lifetime = 4 * time.Second
	fastOdd.Timing.ClaimSlot = 0
	fastOdd.NodeName = "yes" // a string that YAML 1.1 would read as a bool
	fastOdd.Groups = []Group{{Name: "default", VIPs: addrs("10.1.1.1"), Priority: 99}}

	shorthand := Default()
	shorthand.Interface = "eth0"
	shorthand.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100", "198.18.0.101"), Priority: 100}}

	for name, c := range map[string]Config{
		"default":   Default(),
		"full":      full,
		"fast":      fastOdd,
		"shorthand": shorthand,
	} {
		t.Run(name, func(t *testing.T) {
			c.Path = "again.yaml"
			data := c.YAML()
			got, err := Parse("again.yaml", data)
			if err != nil {
				t.Fatalf("Parse(YAML()): %v\n%s", err, data)
			}
			if diff := cmp.Diff(c, got, addrEqual); diff != "" {
				t.Errorf("round trip (-want +got):\n%s\n%s", diff, data)
			}
		})
	}
}

func TestYAMLText(t *testing.T) {
	c := Default()
	c.Interface = "eth0"
	c.NodeName = "web1"
	c.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100"), Priority: 100}}
	want := `# floatip effective configuration
interface: eth0
priority: 100
node_name: web1
profile: default
on_foreign_claim: yield
log_format: text
log_level: info
timing:
  check_interval: 50ms
  misses: 3
  claim_slot: 20ms
  announce_count: 3
  announce_interval: 100ms
  lifetime: 3s
  renew_interval: 1s
  beacon_interval: 500ms
vips: [198.18.0.100]
control:
  socket: /run/floatip/floatip.sock
`
	if diff := cmp.Diff(want, string(c.YAML())); diff != "" {
		t.Errorf("YAML (-want +got):\n%s", diff)
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// prints with YAML and parses back to the same Config.
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("vips: [10.0.0.1]\ntiming: {lifetime: 4s}\n"))
	f.Add([]byte("groups:\n  - name: a\n    vips: [10.0.0.1]\n    priority: 7\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			var ps *Problems
			if !errors.As(err, &ps) || len(*ps) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *Problems", err, err)
			}
			return
		}
		again, err := Parse("f.yaml", c.YAML())
		if err != nil {
			t.Fatalf("Parse(YAML()): %v\n%s", err, c.YAML())
		}
		if diff := cmp.Diff(c, again, addrEqual); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
