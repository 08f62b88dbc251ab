package config

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// defaultFencing is Default().Fencing.
var defaultFencing = Fencing{Policy: "off", Timeout: 30 * time.Second}

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
		CheckInterval: 50 * time.Millisecond, Misses: 3, ClaimSlot: 50 * time.Millisecond,
		AnnounceCount: 3, AnnounceInterval: 100 * time.Millisecond,
		Lifetime: 3 * time.Second, RenewInterval: 1500 * time.Millisecond, BeaconInterval: 500 * time.Millisecond,
	}
	if diff := cmp.Diff(wantDef, def); diff != "" {
		t.Errorf("default preset (-want +got):\n%s", diff)
	}
	fast, err := Preset("fast")
	if err != nil {
		t.Fatal(err)
	}
	wantFast := Timing{
		CheckInterval: 10 * time.Millisecond, Misses: 3, ClaimSlot: 10 * time.Millisecond,
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
		PreemptDelay: 5 * time.Second, UnhealthyPolicy: "keep", Fencing: defaultFencing, Auth: defaultAuth,
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
			Control:      Control{Socket: DefaultSocket},
			PreemptDelay: 5 * time.Second, UnhealthyPolicy: "keep", Fencing: defaultFencing, Auth: defaultAuth,
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
		{"checks with defaults, top-level ones in every group",
			"checks:\n  - http: {url: \"http://127.0.0.1/\"}\n  - exec: {command: [/bin/true]}\n    interval: 100ms\n" +
				"groups:\n  - name: a\n    vips: [10.0.0.1]\n  - name: b\n    vips: [10.0.0.2]\n    checks:\n" +
				"      - tcp: {address: \":80\"}\n        timeout: 50ms\n        fall: 1\n        rise: 100\n      - name: own\n        http: {url: \"https://h/x\", expect_status: 302}\n",
			base(func(c *Config) {
				c.Checks = []Check{
					{Name: "http-0", Type: "http", URL: "http://127.0.0.1/", ExpectStatus: 200, Interval: time.Second, Timeout: time.Second, Fall: 3, Rise: 2},
					{Name: "exec-1", Type: "exec", Command: []string{"/bin/true"}, Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Fall: 3, Rise: 2},
				}
				c.Groups = []Group{
					{Name: "a", VIPs: addrs("10.0.0.1"), Priority: 100, Checks: c.Checks},
					{Name: "b", VIPs: addrs("10.0.0.2"), Priority: 100, Checks: append(slices.Clone(c.Checks),
						Check{Name: "tcp-2", Type: "tcp", Address: ":80", Interval: time.Second, Timeout: 50 * time.Millisecond, Fall: 1, Rise: 100},
						Check{Name: "own", Type: "http", URL: "https://h/x", ExpectStatus: 302, Interval: time.Second, Timeout: time.Second, Fall: 3, Rise: 2},
					)},
				}
			})},
		{"shorthand group gets the top-level checks", "checks:\n  - tcp: {address: \"db:5432\"}\nvips: [10.0.0.1]\n", base(func(c *Config) {
			c.Checks = []Check{{Name: "tcp-0", Type: "tcp", Address: "db:5432", Interval: time.Second, Timeout: time.Second, Fall: 3, Rise: 2}}
			c.Groups = []Group{{Name: "default", VIPs: addrs("10.0.0.1"), Priority: 100, Checks: c.Checks}}
		})},
		{"preempt, notify, fencing and peers",
			"preempt: true\npreempt_delay: 0s\nunhealthy_policy: release\nnotify:\n  - command: [/usr/bin/logger]\n  - command: [/x, \"\"]\n    on: [fault]\n    timeout: 1m\n" +
				"fencing:\n  policy: required\n  command: [/usr/sbin/fence]\npeers:\n  a: 02-00-00-00-00-0A\n  b: 0200.0000.000b\n",
			base(func(c *Config) {
				c.Preempt = true
				c.PreemptDelay = 0
				c.UnhealthyPolicy = "release"
				c.Notify = []Hook{
					{Command: []string{"/usr/bin/logger"}, Timeout: 10 * time.Second, On: []string{"holder", "standby", "fault", "stopping"}},
					{Command: []string{"/x", ""}, Timeout: time.Minute, On: []string{"fault"}},
				}
				c.Fencing = Fencing{Policy: "required", Command: []string{"/usr/sbin/fence"}, Timeout: 30 * time.Second}
				c.Peers = map[string]net.HardwareAddr{"a": mac("02:00:00:00:00:0a"), "b": mac("02:00:00:00:00:0b")}
			})},
		{"fencing off keeps its command", "fencing: {command: [/usr/sbin/fence], timeout: 5s}\n", base(func(c *Config) {
			c.Fencing = Fencing{Policy: "off", Command: []string{"/usr/sbin/fence"}, Timeout: 5 * time.Second}
		})},
		{"null and empty sections count as unset", "checks:\nnotify: []\nfencing:\npeers: {}\ngroups:\n  - name: a\n    vips: [10.0.0.1]\n    checks: []\n",
			base(func(c *Config) { c.Groups = []Group{{Name: "a", VIPs: addrs("10.0.0.1"), Priority: 100}} })},
		{"null on: means every state", "notify:\n  - command: [/x]\n    on:\n", base(func(c *Config) {
			c.Notify = []Hook{{Command: []string{"/x"}, Timeout: 10 * time.Second, On: []string{"holder", "standby", "fault", "stopping"}}}
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
		{"vip kinds", "vips:\n  - ff02::1\n  - 0.0.0.0\n  - 127.0.0.1\n  - 224.0.0.18\n  - 255.255.255.255\n  - 169.254.1.1\n  - 10.0.0.1/24\n  - ::ffff:10.0.0.2\n  - 10.0.0.3\n  - 240.0.0.1\n  - 255.255.255.254\n  - 0.1.2.3\n",
			[]string{
				`floatip.yaml:2: vips[0]: ff02::1 is a multicast address (ff00::/8)`,
				`floatip.yaml:3: vips[1]: 0.0.0.0 is the unspecified address`,
				`floatip.yaml:4: vips[2]: 127.0.0.1 is a loopback address`,
				`floatip.yaml:5: vips[3]: 224.0.0.18 is a multicast address`,
				`floatip.yaml:6: vips[4]: 255.255.255.255 is the broadcast address`,
				`floatip.yaml:7: vips[5]: 169.254.1.1 is a link-local address (169.254.0.0/16)`,
				`floatip.yaml:8: vips[6]: "10.0.0.1/24": a VIP is a single address, without a prefix length`,
				`floatip.yaml:9: vips[7]: "::ffff:10.0.0.2" is an IPv4-mapped IPv6 address; write it as 10.0.0.2`,
				`floatip.yaml:11: vips[9]: 240.0.0.1 is in 240.0.0.0/4, reserved (class E): many hosts and routers drop it`,
				`floatip.yaml:12: vips[10]: 255.255.255.254 is in 240.0.0.0/4, reserved (class E): many hosts and routers drop it`,
				`floatip.yaml:13: vips[11]: 0.1.2.3 is in 0.0.0.0/8, "this network", never a host's address`,
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
		{"check types", "checks:\n  - name: a\n  - http: {url: \"http://x/\"}\n    tcp: {address: \"x:1\"}\n",
			[]string{
				`floatip.yaml:2: checks[0]: set exactly one of http, tcp, exec`,
				`floatip.yaml:3: checks[1]: set exactly one of http, tcp, exec (it sets http and tcp)`,
			}},
		{"check values",
			"checks:\n  - http: {url: \"ftp://x\", expect_status: 600}\n    interval: 5ms\n    fall: 0\n    rise: 101\n" +
				"  - tcp: {address: localhost}\n    timeout: 2s\n  - exec: {command: [check.sh]}\n    timeout: 0s\n" +
				"  - exec: {command: []}\n    name: \"a b\"\n  - http: {expect_status: 200}\n  - tcp: {}\n" +
				"  - exec:\n      command: [/x, [a]]\n    interval: 1\n    fall: many\n",
			[]string{
				`floatip.yaml:2: checks[0].http.url: "ftp://x" must be an http:// or https:// URL`,
				`floatip.yaml:2: checks[0].http.expect_status: must be 100..599, got 600`,
				`floatip.yaml:3: checks[0].interval: must be at least 10ms, got 5ms`,
				`floatip.yaml:4: checks[0].fall: must be 1..100, got 0`,
				`floatip.yaml:5: checks[0].rise: must be 1..100, got 101`,
				`floatip.yaml:6: checks[1].tcp.address: "localhost" must be host:port`,
				`floatip.yaml:7: checks[1].timeout: 2s must not exceed interval 1s`,
				`floatip.yaml:8: checks[2].exec.command: "check.sh" must be an absolute path`,
				`floatip.yaml:9: checks[2].timeout: must be positive, got 0s`,
				`floatip.yaml:10: checks[3].exec.command: required: the program (an absolute path) and its arguments, like [/usr/local/bin/check, --quick]`,
				`floatip.yaml:11: checks[3].name: "a b" is not a valid check name (1..32 of a-z A-Z 0-9 _ . -)`,
				`floatip.yaml:12: checks[4].http.url: required: the URL to GET, like "http://127.0.0.1:8080/healthz"`,
				`floatip.yaml:13: checks[5].tcp.address: required: the host:port to connect to, like "127.0.0.1:5432"`,
				`floatip.yaml:15: checks[6].exec.command[1]: must be a single value, not a list`,
				`floatip.yaml:16: checks[6].interval: "1" is not a duration (write it with a unit, like "50ms" or "2s")`,
				`floatip.yaml:17: checks[6].fall: "many" is not a whole number`,
			}},
		{"checks not a list", "checks: {name: a}\n",
			[]string{`floatip.yaml:1: checks: must be a list of checks, not a mapping`}},
		{"check not a mapping", "checks:\n  - web\n",
			[]string{`floatip.yaml:2: checks[0]: must be a mapping of keys to values, not the value "web"`}},
		{"check names", "checks:\n  - name: web\n    tcp: {address: \"x:1\"}\n  - name: web\n    tcp: {address: \"x:2\"}\n  - name: \"\"\n    tcp: {address: \"x:3\"}\n" +
			"groups:\n  - name: a\n    vips: [10.0.0.1]\n    checks:\n      - name: web\n        tcp: {address: \"y:1\"}\n      - tcp: {address: \"z:1\"}\n      - name: tcp-4\n        exec: {command: [/x]}\n" +
			"  - name: b\n    vips: [10.0.0.2]\n    checks: {}\n",
			[]string{
				`floatip.yaml:4: checks: two checks named "web"`,
				`floatip.yaml:6: checks[2].name: must not be empty`,
				`floatip.yaml:12: groups[0].checks: two checks named "web"`,
				`floatip.yaml:15: groups[0].checks: two checks named "tcp-4"`,
				`floatip.yaml:19: groups[1].checks: must be a list of checks, not a mapping`,
			}},
		{"duplicate top-level check names with vips:", "checks:\n  - name: web\n    tcp: {address: \"x:1\"}\n  - name: web\n    tcp: {address: \"x:2\"}\nvips: [10.0.0.1]\n",
			[]string{`floatip.yaml:4: checks: two checks named "web"`}},
		{"unknown keys in the new sections",
			"checks:\n  - htp: {url: \"http://x/\"}\n    http: {uri: \"http://x/\"}\nnotify:\n  - comand: [/x]\nfencing:\n  polcy: \"off\"\n" +
				"groups:\n  - name: a\n    vips: [10.0.0.1]\n    check: []\npreemt: true\n",
			[]string{
				`floatip.yaml:2: checks[0]: unknown key "htp" (did you mean "http"?)`,
				`floatip.yaml:3: checks[0].http: unknown key "uri" (did you mean "url"?)`,
				`floatip.yaml:3: checks[0].http.url: required: the URL to GET, like "http://127.0.0.1:8080/healthz"`,
				`floatip.yaml:5: notify[0]: unknown key "comand" (did you mean "command"?)`,
				`floatip.yaml:5: notify[0].command: required: the program (an absolute path) and its arguments, like [/usr/local/bin/check, --quick]`,
				`floatip.yaml:7: fencing: unknown key "polcy" (did you mean "policy"?)`,
				`floatip.yaml:11: groups[0]: unknown key "check" (did you mean "checks"?)`,
				`floatip.yaml:12: unknown key "preemt" (did you mean "preempt"?)`,
			}},
		{"preempt and policies", "preempt: yes\npreempt_delay: -1s\nunhealthy_policy: drop\nfencing:\n  policy: maybe\n  timeout: 0s\n",
			[]string{
				`floatip.yaml:1: preempt: "yes" is not true or false`,
				`floatip.yaml:2: preempt_delay: must not be negative, got -1s`,
				`floatip.yaml:3: unhealthy_policy: "drop" is not one of keep or release`,
				`floatip.yaml:5: fencing.policy: "maybe" is not one of off, best-effort or required`,
				`floatip.yaml:6: fencing.timeout: must be positive, got 0s`,
			}},
		{"fencing command required", "fencing:\n  policy: required\npeers:\n  a: 02:00:00:00:00:0a\n",
			[]string{`floatip.yaml:2: fencing.command: required when fencing.policy is required`}},
		{"fencing required needs peers", "fencing:\n  policy: required\n  command: [/usr/sbin/fence]\n",
			[]string{`floatip.yaml:2: fencing.policy: required needs peers: (node name -> MAC), or the fence command is not told which node to fence and no takeover happens`}},
		{"fencing command required for best-effort", "fencing:\n  policy: best-effort\n  command: []\n",
			[]string{`floatip.yaml:2: fencing.command: required when fencing.policy is best-effort`}},
		{"fencing command relative", "fencing:\n  policy: best-effort\n  command:\n    - fence\n",
			[]string{`floatip.yaml:4: fencing.command: "fence" must be an absolute path`}},
		{"notify", "notify:\n  - command: notify.sh\n  - command: [notify.sh]\n    on: [holder, master, holder]\n    timeout: 0s\n  - command: [/x]\n    on: []\n  - command: [/x]\n    on: holder\n",
			[]string{
				`floatip.yaml:2: notify[0].command: must be a list, like [/usr/local/bin/check, --quick], not the value "notify.sh"`,
				`floatip.yaml:3: notify[1].command: "notify.sh" must be an absolute path`,
				`floatip.yaml:4: notify[1].on[1]: "master" is not one of holder, standby, fault, stopping or foreign-claim`,
				`floatip.yaml:4: notify[1].on[2]: "holder" is listed twice`,
				`floatip.yaml:5: notify[1].timeout: must be positive, got 0s`,
				`floatip.yaml:7: notify[2].on: list at least one of holder, standby, fault, stopping or foreign-claim, or leave on: out for every state`,
				`floatip.yaml:9: notify[3].on: must be a list, like [holder, standby], not the value "holder"`,
			}},
		{"notify not a list", "notify: /x\n",
			[]string{`floatip.yaml:1: notify: must be a list of hooks, like [{command: [/usr/local/bin/check, --quick]}], not the value "/x"`}},
		{"peers",
			"peers:\n  web1: \"02:00:00\"\n  web2: \"02:00:00:00:00:01\"\n  web3: \"02:00:00:00:00:01\"\n  web4: \"01:00:5e:00:00:01\"\n" +
				"  web5: \"00:00:00:00:01:00:00:00\"\n  \"web 6\": \"02:00:00:00:00:06\"\n  web7: [1]\n  web8: \"00:00:00:00:00:00\"\n  web2: \"02:00:00:00:00:09\"\n",
			[]string{
				`floatip.yaml:2: peers.web1: "02:00:00" is not a MAC address`,
				`floatip.yaml:4: peers: web2 and web3 have the same MAC 02:00:00:00:00:01`,
				`floatip.yaml:5: peers.web4: 01:00:5e:00:00:01 is a multicast MAC address, not a node's`,
				`floatip.yaml:6: peers.web5: "00:00:00:00:01:00:00:00" is not a 6-byte Ethernet MAC address`,
				`floatip.yaml:7: peers.web 6: node name "web 6" must not contain whitespace or control characters`,
				`floatip.yaml:8: peers.web7: must be a single value, not a list`,
				`floatip.yaml:9: peers.web8: 00:00:00:00:00:00 is the zero MAC address`,
				`floatip.yaml:10: peers: duplicate key "web2" (first at line 3)`,
			}},
		{"peers in one line", "peers: {b: \"02:00:00:00:00:01\", a: \"02:00:00:00:00:01\", c: x}\n",
			[]string{
				`floatip.yaml:1: peers.c: "x" is not a MAC address`,
				`floatip.yaml:1: peers: a and b have the same MAC 02:00:00:00:00:01`,
			}},
		{"peers not a mapping", "peers: [web1]\n",
			[]string{`floatip.yaml:1: peers: must be a mapping of keys to values, not a list`}},
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
	top := []Check{
		{Name: "web", Type: "http", URL: "http://127.0.0.1:8080/healthz", ExpectStatus: 200,
			Interval: time.Second, Timeout: 500 * time.Millisecond, Fall: 3, Rise: 2},
		{Name: "tcp-1", Type: "tcp", Address: "127.0.0.1:5432", Interval: time.Second, Timeout: time.Second, Fall: 3, Rise: 2},
	}
	want := Config{
		Path: path, Interface: "eth0", Priority: 100, NodeName: "web1", Profile: "default",
		OnForeignClaim: "defend", LogFormat: "text", LogLevel: "info",
		Control: Control{Socket: "/run/floatip/floatip.sock", Group: "adm"},
		Metrics: Metrics{Listen: "127.0.0.1:9110"},
		Preempt: true, PreemptDelay: 5 * time.Second, UnhealthyPolicy: "keep",
		Checks: top,
		Groups: []Group{
			{Name: "web", VIPs: addrs("198.18.0.100", "198.18.0.101"), Priority: 150, Checks: append(slices.Clone(top), Check{
				Name: "app", Type: "exec", Command: []string{"/usr/local/bin/check", "--quick"},
				Interval: 2 * time.Second, Timeout: 2 * time.Second, Fall: 3, Rise: 2,
			})},
			{Name: "db", VIPs: addrs("198.18.0.110"), Priority: 100, Checks: top},
		},
		Notify: []Hook{{
			Command: []string{"/usr/local/bin/on-change", "--verbose"}, Timeout: 10 * time.Second,
			On: []string{"holder", "standby", "fault", "stopping"},
		}},
		Fencing: Fencing{Policy: "best-effort", Command: []string{"/usr/local/sbin/fence-node"}, Timeout: 30 * time.Second},
		Peers:   map[string]net.HardwareAddr{"web1": mac("02:00:00:00:00:01"), "web2": mac("02:00:00:00:00:02")},
		Auth: Auth{KeyFiles: []string{"/etc/floatip/new.key", "/etc/floatip/old.key"}, Require: true,
			SequenceFile: "/var/lib/floatip/seq", Lines: []int{authLine, authLine + 1}},
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
			"groups[0].vips[1]: fe80::1 is a link-local address (fe80::/10): every interface has its own; a VIP must be global or unique-local",
			"groups[0].vips[2]: 198.18.0.100 is listed twice (also at groups[0].vips[0])",
		}},
		{"invalid address", func(c *Config) { c.Groups[0].VIPs = []netip.Addr{{}} },
			[]string{"vips[0]: not a valid address"}},
		{"checks, hooks, fencing and peers built in code", func(c *Config) {
			ok := Check{Name: "web", Type: "tcp", Address: "x:1", Interval: time.Second, Timeout: time.Second, Fall: 3, Rise: 2}
			c.Checks = []Check{{}, {Name: "u", Type: "udp", Interval: time.Second, Timeout: time.Second, Fall: 1, Rise: 1}, ok}
			c.Groups = append(c.Groups, Group{Name: "b", VIPs: addrs("198.18.0.101"), Priority: 100, Checks: []Check{ok}})
			c.Groups[0].Checks = append(slices.Clone(c.Checks), ok)
			c.Notify = []Hook{{Command: []string{"/x"}, Timeout: time.Second}}
			c.Fencing = Fencing{}
			c.Peers = map[string]net.HardwareAddr{"b": mac("02:00:00:00:00:01"), "a": mac("02:00:00:00:00:01"), "c": nil}
		}, []string{
			"checks[0].name: must not be empty",
			"checks[0]: set exactly one of http, tcp, exec",
			"checks[0].interval: must be at least 10ms, got 0s",
			"checks[0].timeout: must be positive, got 0s",
			"checks[0].fall: must be 1..100, got 0",
			"checks[0].rise: must be 1..100, got 0",
			`checks[1]: type "udp" is not one of http, tcp or exec`,
			`groups[0].checks: two checks named "web"`,
			"groups[1].checks: must begin with the top-level checks, which apply to every group",
			`groups[1].checks: two checks named "web"`,
			"notify[0].on: list at least one of holder, standby, fault, stopping or foreign-claim, or leave on: out for every state",
			`fencing.policy: "" is not one of off, best-effort or required`,
			"fencing.timeout: must be positive, got 0s",
			"peers: a and b have the same MAC 02:00:00:00:00:01",
			`peers.c: "" is not a 6-byte Ethernet MAC address`,
		}},
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
		{"priority keeps a group's own", Overrides{Priority: ptr(50)}, func(c *Config) {
			c.Priority = 50
			c.Groups[0].Priority = 50
		}, nil},
		{"vips replace the groups", Overrides{VIPs: []string{"10.0.0.9", "10.0.0.8"}, Priority: ptr(7)}, func(c *Config) {
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
		{"priority 0 is refused, not ignored", Overrides{Priority: ptr(0)}, nil, []string{"--priority: must be 1..254, got 0"}},
		{"all invalid at once", Overrides{
			Interface: "a b", VIPs: []string{"10.0.0.300", "::1", "10.0.0.5", "10.0.0.5"}, Priority: ptr(300),
			Profile: "turbo", LogFormat: "xml", LogLevel: "loud",
		}, nil, []string{
			`--interface: "a b" is not a valid interface name (no "/", ":" or whitespace)`,
			"--priority: must be 1..254, got 300",
			`--profile: "turbo" is not one of default or fast`,
			`--log-format: "xml" is not one of text or json`,
			`--log-level: "loud" is not one of debug, info, warn or error`,
			`--vip: "10.0.0.300" is not an IPv4 address`,
			`--vip: ::1 is the loopback address`,
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

func TestApplyVIPsKeepTopLevelChecks(t *testing.T) {
	c, err := Parse("", []byte("checks:\n  - tcp: {address: \"x:1\"}\ngroups:\n  - name: a\n    vips: [10.0.0.1]\n    checks:\n      - exec: {command: [/x]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(Overrides{VIPs: []string{"10.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	want := []Group{{Name: "default", VIPs: addrs("10.0.0.2"), Priority: 100, Checks: c.Checks}}
	if diff := cmp.Diff(want, c.Groups, addrEqual); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
}

func TestApplyDoesNotAlias(t *testing.T) {
	c, err := Parse("", []byte("priority: 10\ngroups:\n  - name: a\n    vips: [10.0.0.1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	saved := c
	if err := c.Apply(Overrides{Priority: ptr(20)}); err != nil {
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

	shorthandChecks := shorthand
	shorthandChecks.Checks = []Check{{Name: "x", Type: "exec", Command: []string{"/bin/sh", "-c", "exit 0 # yes: no"},
		Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Fall: 100, Rise: 1}}
	shorthandChecks.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100"), Priority: 100, Checks: shorthandChecks.Checks}}

	ownChecks := shorthand // one group "default", but with checks of its own: not "vips:"
	ownChecks.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100"), Priority: 100, Checks: []Check{
		{Name: "on", Type: "tcp", Address: "[::1]:80", Interval: time.Second, Timeout: time.Second, Fall: 3, Rise: 2}}}}

	fencingOff := Default()
	fencingOff.Fencing = Fencing{Policy: "off", Command: []string{"/usr/sbin/fence", "--node", "{old}"}, Timeout: time.Minute}
	fencingOff.Peers = map[string]net.HardwareAddr{"true": mac("02:00:00:00:00:01"), "1": mac("0a:00:00:00:00:02")}
	fencingOff.Notify = []Hook{{Command: []string{"/x", "", "null"}, Timeout: time.Millisecond, On: []string{"stopping", "fault"}}}

	dual := shorthand
	dual.Groups = []Group{{Name: "default", VIPs: addrs("198.18.0.100", "2001:db8::10", "fd00::1"), Priority: 100}}
	dual.IPv6.NARouter = true

	for name, c := range map[string]Config{
		"dual stack":       dual,
		"default":          Default(),
		"full":             full,
		"fast":             fastOdd,
		"shorthand":        shorthand,
		"sections":         sections(),
		"shorthand checks": shorthandChecks,
		"own checks":       ownChecks,
		"fencing off":      fencingOff,
	} {
		t.Run(name, func(t *testing.T) {
			c.Path = "again.yaml"
			data := c.YAML()
			got, err := Parse("again.yaml", data)
			if err != nil {
				t.Fatalf("Parse(YAML()): %v\n%s", err, data)
			}
			c.Auth.Lines, got.Auth.Lines = nil, nil // lines of another file
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
preempt: false
preempt_delay: 5s
unhealthy_policy: keep
log_format: text
log_level: info
timing:
  check_interval: 50ms
  misses: 3
  claim_slot: 50ms
  announce_count: 3
  announce_interval: 100ms
  lifetime: 3s
  renew_interval: 1.5s
  beacon_interval: 500ms
vips: [198.18.0.100]
control:
  socket: /run/floatip/floatip.sock
`
	if diff := cmp.Diff(want, string(c.YAML())); diff != "" {
		t.Errorf("YAML (-want +got):\n%s", diff)
	}
}

// sections returns a valid Config that sets every new section: top-level
// and group checks, notify, fencing and peers.
func sections() Config {
	c := Default()
	c.Interface = "eth0"
	c.NodeName = "web1"
	c.Preempt = true
	c.PreemptDelay = 0
	c.UnhealthyPolicy = "release"
	c.Checks = []Check{{Name: "web", Type: "http", URL: "https://127.0.0.1/ok", ExpectStatus: 204,
		Interval: time.Second, Timeout: 300 * time.Millisecond, Fall: 3, Rise: 2}}
	c.Groups = []Group{
		{Name: "default", VIPs: addrs("198.18.0.100"), Priority: 100, Checks: append(slices.Clone(c.Checks),
			Check{Name: "db", Type: "tcp", Address: "127.0.0.1:5432", Interval: 2 * time.Second, Timeout: time.Second, Fall: 1, Rise: 1})},
		{Name: "b", VIPs: addrs("198.18.0.101"), Priority: 100, Checks: c.Checks},
	}
	c.Notify = []Hook{{Command: []string{"/bin/on-change", "a b"}, Timeout: 5 * time.Second, On: []string{"holder"}}}
	c.Fencing = Fencing{Policy: "required", Command: []string{"/usr/local/sbin/fence-node"}, Timeout: 30 * time.Second}
	c.Peers = map[string]net.HardwareAddr{"web2": mac("02:00:00:00:00:02"), "web1": mac("02:00:00:00:00:01")}
	return c
}

func TestYAMLTextSections(t *testing.T) {
	c := sections()
	want := `# floatip effective configuration
interface: eth0
priority: 100
node_name: web1
profile: default
on_foreign_claim: yield
preempt: true
preempt_delay: 0s
unhealthy_policy: release
log_format: text
log_level: info
timing:
  check_interval: 50ms
  misses: 3
  claim_slot: 50ms
  announce_count: 3
  announce_interval: 100ms
  lifetime: 3s
  renew_interval: 1.5s
  beacon_interval: 500ms
checks:
  - name: web
    http: {url: 'https://127.0.0.1/ok', expect_status: 204}
    interval: 1s
    timeout: 300ms
    fall: 3
    rise: 2
groups:
  - name: default
    vips: [198.18.0.100]
    checks:
      - name: db
        tcp: {address: '127.0.0.1:5432'}
        interval: 2s
        timeout: 1s
        fall: 1
        rise: 1
  - name: b
    vips: [198.18.0.101]
notify:
  - command: [/bin/on-change, a b]
    timeout: 5s
    "on": [holder]
fencing:
  policy: required
  command: [/usr/local/sbin/fence-node]
  timeout: 30s
peers:
  web1: "02:00:00:00:00:01"
  web2: "02:00:00:00:00:02"
control:
  socket: /run/floatip/floatip.sock
`
	if diff := cmp.Diff(want, string(c.YAML())); diff != "" {
		t.Errorf("YAML (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
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
	f.Add([]byte("checks: [{tcp: {address: \"x:1\"}}]\nvips: [10.0.0.1]\n"))
	f.Add([]byte("fencing: {command: [/f]}\npeers: {a: 02:00:00:00:00:01}\nnotify: [{command: [/x], on: [fault]}]\npreempt: true\n"))
	f.Add(sections().YAML())
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
		c.Auth.Lines, again.Auth.Lines = nil, nil // lines of another file
		if diff := cmp.Diff(c, again, addrEqual); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func ptr[T any](v T) *T { return &v }

var defaultAuth = Auth{SequenceFile: "/var/lib/floatip/seq"}

// authLine is the line of the first key file in testdata/full.yaml.
const authLine = 121

func TestExampleIsTheFullReference(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Example, full) {
		t.Fatal("example.yaml differs from testdata/full.yaml; copy one to the other")
	}
	c, err := Parse("example.yaml", Example)
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
}

func TestIPv6VIPs(t *testing.T) {
	c, err := Parse("floatip.yaml", []byte("interface: eth0\nnode_name: a\nipv6:\n  na_router: true\ngroups:\n  - name: web\n    vips: [2001:db8::10, 198.18.0.100]\n  - name: v6\n    vips: [fd00::5]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.IPv6.NARouter {
		t.Error("ipv6.na_router: true not read")
	}
	if got := c.Groups[0].VIPs; !slices.Equal(got, addrs("2001:db8::10", "198.18.0.100")) {
		t.Errorf("web VIPs %v", got)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"vips: [2001:db8::zz]\n", `floatip.yaml:1: vips[0]: "2001:db8::zz" is not an IPv6 address`},
		{"vips: [fe80::1]\n", "floatip.yaml:1: vips[0]: fe80::1 is a link-local address (fe80::/10): every interface has its own; a VIP must be global or unique-local"},
		{"vips: [\"2001:db8::1%eth0\"]\n", `floatip.yaml:1: vips[0]: "2001:db8::1%eth0": a VIP has no zone (%eth0); the interface is the configuration's`},
		{"vips: [\"::\"]\n", "floatip.yaml:1: vips[0]: :: is the unspecified address"},
		{"ipv6:\n  router: true\n", `floatip.yaml:2: ipv6: unknown key "router"`},
	} {
		_, err := Parse("floatip.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
}
