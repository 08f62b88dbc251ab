// Package config loads, checks and prints floatip's configuration: a YAML
// file (usually /etc/floatip/floatip.yaml) plus command-line overrides.
//
// Load and Parse apply defaults and the timing preset and report every
// problem in the file at once, each with its file:line. They do not require
// an interface or VIPs, since flags may supply them: call Apply with the
// flags, then Validate for the full check.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/election"
	"github.com/floatip/floatip/internal/hooks"
)

// Allowed values of the string settings.
const (
	ProfileDefault = election.ProfileDefault
	ProfileFast    = election.ProfileFast

	ForeignClaimYield  = "yield"  // a holder releases a VIP that a host without floatip claims
	ForeignClaimDefend = "defend" // a holder keeps announcing it

	LogFormatText = "text"
	LogFormatJSON = "json"

	// DefaultGroup is the name of the group made from "vips:" or --vip.
	DefaultGroup = "default"

	// DefaultPriority is the node priority when none is configured.
	DefaultPriority = 100

	// DefaultPath is the configuration file that run and check read when
	// no --config is given, if it exists.
	DefaultPath = "/etc/floatip/floatip.yaml"

	// DefaultSocket is where the daemon serves `floatip status` and friends.
	DefaultSocket = "/run/floatip/floatip.sock"

	UnhealthyKeep    = "keep"    // when every node is unhealthy the holder keeps the VIP, and an unhealthy standby may claim a free one
	UnhealthyRelease = "release" // an unhealthy node never holds

	CheckHTTP = "http" // GET a URL and expect a status code
	CheckTCP  = "tcp"  // connect to host:port
	CheckExec = "exec" // run a command and expect exit status 0

	FencingOff        = "off"         // no fencing
	FencingBestEffort = "best-effort" // run the fence command, claim even if it fails
	FencingRequired   = "required"    // claim only after the fence command succeeded
)

// Defaults of the health check, notify and fencing settings.
const (
	DefaultPreemptDelay   = 5 * time.Second
	DefaultCheckInterval  = time.Second // Check.Interval; Check.Timeout defaults to the interval
	DefaultCheckFall      = 3
	DefaultCheckRise      = 2
	DefaultExpectStatus   = 200
	DefaultHookTimeout    = 10 * time.Second
	DefaultFencingTimeout = 30 * time.Second
)

var (
	profiles      = []string{ProfileDefault, ProfileFast}
	foreignClaims = []string{ForeignClaimYield, ForeignClaimDefend}
	logFormats    = []string{LogFormatText, LogFormatJSON}
	logLevels     = []string{"debug", "info", "warn", "error"}
	unhealthy     = []string{UnhealthyKeep, UnhealthyRelease}
	checkTypes    = []string{CheckHTTP, CheckTCP, CheckExec}
	hookStates    = hooks.Triggers() // the states a notify hook may run on (Hook.On)
	fencings      = []string{FencingOff, FencingBestEffort, FencingRequired}
)

// Timing holds the protocol's intervals and counts.
type Timing = election.Timing

// Group is a set of VIPs that move together.
type Group struct {
	Name     string
	VIPs     []netip.Addr
	Priority int // effective: the group's own, or else the node's

	// Checks are the group's effective health checks: always the top-level
	// Config.Checks first, then the group's own. The daemon reads only
	// these; YAML writes Checks[len(Config.Checks):] as the group's own.
	Checks []Check
}

// Check is one health check. Parse fills in every default.
type Check struct {
	// Name is unique within a group's effective checks. Its default is
	// "<type>-<n>", n the check's position in the group's effective checks
	// (so the top-level checks[1], a tcp check, is "tcp-1" in every group).
	Name string
	Type string // CheckHTTP, CheckTCP or CheckExec

	URL          string // http: an http:// or https:// URL to GET
	ExpectStatus int    // http: the status that counts as healthy; default 200, 100..599

	Address string // tcp: host:port to connect to

	Command []string // exec: program (an absolute path) and arguments; exit status 0 is healthy

	Interval time.Duration // how often it runs; default 1s, at least 10ms
	Timeout  time.Duration // how long one run may take; default and at most the interval
	Fall     int           // failures in a row before the node is unhealthy; default 3, 1..100
	Rise     int           // successes in a row before it is healthy again; default 2, 1..100
}

// Hook is a command run on state changes.
type Hook struct {
	Command []string      // program (an absolute path) and arguments
	Timeout time.Duration // default 10s
	On      []string      // the new states it runs on (hooks.Triggers); default all of them
}

// Fencing is the command that makes sure the old holder is gone before this
// node claims its VIPs.
type Fencing struct {
	Policy  string        // FencingOff (default), FencingBestEffort or FencingRequired
	Command []string      // program (an absolute path) and arguments; required unless Policy is off
	Timeout time.Duration // default 30s
}

// Config is the effective configuration.
type Config struct {
	Path           string // file it came from, "" if none
	Interface      string
	Priority       int
	NodeName       string
	Profile        string
	OnForeignClaim string
	LogFormat      string
	LogLevel       string
	Timing         Timing
	Groups         []Group // "vips:" becomes Groups[0] named "default"
	Control        Control
	Metrics        Metrics

	// Preempt lets a healthy node of higher priority take the VIPs from a
	// holder of lower priority, after PreemptDelay.
	Preempt         bool
	PreemptDelay    time.Duration // default 5s, 0 or more
	UnhealthyPolicy string        // UnhealthyKeep (default) or UnhealthyRelease

	Checks  []Check // the top-level checks, as written; each Group.Checks begins with them
	Notify  []Hook
	Fencing Fencing
	Peers   map[string]net.HardwareAddr // node name -> MAC; nil if none
	Auth    Auth                        // authenticated frames; off without a key
	IPv6    IPv6                        // settings for IPv6 VIPs
}

// IPv6 holds what only IPv6 VIPs use. Their announcements (unsolicited
// Neighbor Advertisements) follow timing.announce_count and
// announce_interval, like the gratuitous ARPs of IPv4 VIPs.
type IPv6 struct {
	// NARouter sets the Router flag in the node's Neighbor Advertisements
	// for its VIPs (RFC 4861 4.4): only when the VIP is a router's address
	// (a default gateway); hosts otherwise drop it from their router list.
	// Default false.
	NARouter bool
}

// Control is the daemon's unix control socket (status, release, hold, reload).
type Control struct {
	Socket string // absolute path; default DefaultSocket
	Group  string // group allowed to use it besides root; "" = root only
}

// Metrics is the Prometheus endpoint; off unless Listen is set.
type Metrics struct {
	Listen string // host:port, e.g. "127.0.0.1:9110"; "" = off
}

// Preset returns the timing of a profile: "default" or "fast" (the values
// live in package election, the protocol they tune).
func Preset(name string) (Timing, error) {
	if t, ok := election.Preset(name); ok {
		return t, nil
	}
	return Timing{}, fmt.Errorf("unknown profile %q (want %s)", name, list(profiles))
}

// Default returns the configuration with every default applied: the
// "default" profile, priority 100, and the host name as node name. It has
// no interface and no groups.
func Default() Config {
	t, err := Preset(ProfileDefault)
	if err != nil {
		panic(err) // unreachable: the default profile exists
	}
	host, _ := os.Hostname() // "" on failure: Validate then asks for node_name
	return Config{
		Priority:       DefaultPriority,
		NodeName:       host,
		Profile:        ProfileDefault,
		OnForeignClaim: ForeignClaimYield,
		LogFormat:      LogFormatText,
		LogLevel:       "info",
		Timing:         t,
		Control:        Control{Socket: DefaultSocket},

		PreemptDelay:    DefaultPreemptDelay,
		UnhealthyPolicy: UnhealthyKeep,
		Fencing:         Fencing{Policy: FencingOff, Timeout: DefaultFencingTimeout},
		Auth:            Auth{SequenceFile: auth.DefaultSequenceFile},
	}
}

// Load reads and parses the file at path; see Parse. Every error is a
// *Problems.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			msg = "cannot read: " + pe.Err.Error()
		}
		return Config{}, &Problems{{File: path, Msg: msg}}
	}
	return Parse(path, data)
}

// Parse parses a configuration file's contents. path is used in problem
// messages and stored in Config.Path. Defaults and the profile's timing are
// applied first; timing keys in the file override the preset. Parse checks
// every value it finds but does not require an interface or VIPs (see
// Validate). On error it returns a zero Config and a *Problems holding every
// problem found, sorted by line.
func Parse(path string, data []byte) (Config, error) {
	c := Default()
	c.Path = path
	p := newParser(path)
	if root := p.document(data); root != nil {
		p.config(root, &c)
	}
	p.check(c, false)
	if err := p.problems(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the whole configuration, including that an interface and
// at least one VIP are set. It returns a *Problems or nil.
func (c Config) Validate() error {
	k := &checker{shorthand: isShorthand(c)}
	k.check(c, true)
	return k.probs.orNil()
}

// isShorthand reports whether the groups can be written as "vips:".
func isShorthand(c Config) bool {
	return len(c.Groups) == 1 && c.Groups[0].Name == DefaultGroup && c.Groups[0].Priority == c.Priority &&
		len(ownChecks(c, c.Groups[0])) == 0
}

// ownChecks returns the checks that g adds to the top-level c.Checks: the
// rest of g.Checks after them, or all of g.Checks if they do not begin with
// c.Checks (a Config built in code; Validate reports that).
func ownChecks(c Config, g Group) []Check {
	if !hasTopChecks(c, g) {
		return g.Checks
	}
	return g.Checks[len(c.Checks):]
}

// hasTopChecks reports whether g.Checks begins with c.Checks.
func hasTopChecks(c Config, g Group) bool {
	return len(g.Checks) >= len(c.Checks) && slices.EqualFunc(g.Checks[:len(c.Checks)], c.Checks, checkEqual)
}

func checkEqual(a, b Check) bool {
	return a.Name == b.Name && a.Type == b.Type && a.URL == b.URL && a.ExpectStatus == b.ExpectStatus &&
		a.Address == b.Address && slices.Equal(a.Command, b.Command) && a.Interval == b.Interval &&
		a.Timeout == b.Timeout && a.Fall == b.Fall && a.Rise == b.Rise
}

type yamlTiming struct {
	CheckInterval    string `yaml:"check_interval"`
	Misses           int    `yaml:"misses"`
	ClaimSlot        string `yaml:"claim_slot"`
	AnnounceCount    int    `yaml:"announce_count"`
	AnnounceInterval string `yaml:"announce_interval"`
	Lifetime         string `yaml:"lifetime"`
	RenewInterval    string `yaml:"renew_interval"`
	BeaconInterval   string `yaml:"beacon_interval"`
}

type yamlGroup struct {
	Name     string      `yaml:"name"`
	VIPs     []string    `yaml:"vips,flow"`
	Priority int         `yaml:"priority,omitempty"`
	Checks   []yamlCheck `yaml:"checks,omitempty"`
}

type yamlHTTP struct {
	URL          string `yaml:"url"`
	ExpectStatus int    `yaml:"expect_status"`
}

type yamlTCP struct {
	Address string `yaml:"address"`
}

type yamlExec struct {
	Command []string `yaml:"command,flow"`
}

type yamlCheck struct {
	Name     string    `yaml:"name"`
	HTTP     *yamlHTTP `yaml:"http,omitempty,flow"`
	TCP      *yamlTCP  `yaml:"tcp,omitempty,flow"`
	Exec     *yamlExec `yaml:"exec,omitempty,flow"`
	Interval string    `yaml:"interval"`
	Timeout  string    `yaml:"timeout"`
	Fall     int       `yaml:"fall"`
	Rise     int       `yaml:"rise"`
}

type yamlHook struct {
	Command []string `yaml:"command,flow"`
	Timeout string   `yaml:"timeout"`
	On      []string `yaml:"on,flow"`
}

type yamlFencing struct {
	Policy  string   `yaml:"policy"`
	Command []string `yaml:"command,omitempty,flow"`
	Timeout string   `yaml:"timeout"`
}

type yamlControl struct {
	Socket string `yaml:"socket"`
	Group  string `yaml:"group,omitempty"`
}

type yamlAuth struct {
	KeyFiles     []string `yaml:"key_files"`
	Require      bool     `yaml:"require"`
	SequenceFile string   `yaml:"sequence_file"`
}

type yamlMetrics struct {
	Listen string `yaml:"listen,omitempty"`
}

type yamlIPv6 struct {
	NARouter bool `yaml:"na_router"`
}

type yamlConfig struct {
	Interface       string            `yaml:"interface,omitempty"`
	Priority        int               `yaml:"priority"`
	NodeName        string            `yaml:"node_name,omitempty"`
	Profile         string            `yaml:"profile"`
	OnForeignClaim  string            `yaml:"on_foreign_claim"`
	Preempt         bool              `yaml:"preempt"`
	PreemptDelay    string            `yaml:"preempt_delay"`
	UnhealthyPolicy string            `yaml:"unhealthy_policy"`
	LogFormat       string            `yaml:"log_format"`
	LogLevel        string            `yaml:"log_level"`
	Timing          yamlTiming        `yaml:"timing"`
	Checks          []yamlCheck       `yaml:"checks,omitempty"`
	VIPs            []string          `yaml:"vips,omitempty,flow"`
	Groups          []yamlGroup       `yaml:"groups,omitempty"`
	Notify          []yamlHook        `yaml:"notify,omitempty"`
	Fencing         *yamlFencing      `yaml:"fencing,omitempty"`
	Peers           map[string]string `yaml:"peers,omitempty"`
	Auth            *yamlAuth         `yaml:"auth,omitempty"`
	Control         yamlControl       `yaml:"control"`
	Metrics         yamlMetrics       `yaml:"metrics,omitempty"`
	IPv6            *yamlIPv6         `yaml:"ipv6,omitempty"`
}

// YAML returns the effective configuration as a YAML file that Parse reads
// back to an equal Config (Path aside). Every timing value is written out,
// and so is every setting of each check and hook; a single group named
// "default" with the node's priority and no checks of its own is written as
// "vips:", a group's priority only when it differs from the node's, and a
// group's checks only its own (Group.Checks after the top-level Checks).
// Empty checks, notify and peers are left out, and so is fencing when it
// has its defaults (policy off).
func (c Config) YAML() []byte {
	t := c.Timing
	y := yamlConfig{
		Interface:      c.Interface,
		Priority:       c.Priority,
		NodeName:       c.NodeName,
		Profile:        c.Profile,
		OnForeignClaim: c.OnForeignClaim,
		LogFormat:      c.LogFormat,
		LogLevel:       c.LogLevel,
		Timing: yamlTiming{
			CheckInterval:    t.CheckInterval.String(),
			Misses:           t.Misses,
			ClaimSlot:        t.ClaimSlot.String(),
			AnnounceCount:    t.AnnounceCount,
			AnnounceInterval: t.AnnounceInterval.String(),
			Lifetime:         t.Lifetime.String(),
			RenewInterval:    t.RenewInterval.String(),
			BeaconInterval:   t.BeaconInterval.String(),
		},
		Control: yamlControl{Socket: c.Control.Socket, Group: c.Control.Group},
		Metrics: yamlMetrics{Listen: c.Metrics.Listen},

		Preempt:         c.Preempt,
		PreemptDelay:    c.PreemptDelay.String(),
		UnhealthyPolicy: c.UnhealthyPolicy,
		Checks:          yamlChecks(c.Checks),
	}
	if c.IPv6 != (IPv6{}) {
		y.IPv6 = &yamlIPv6{NARouter: c.IPv6.NARouter}
	}
	if isShorthand(c) {
		y.VIPs = addrStrings(c.Groups[0].VIPs)
	} else {
		for _, g := range c.Groups {
			yg := yamlGroup{Name: g.Name, VIPs: addrStrings(g.VIPs), Checks: yamlChecks(ownChecks(c, g))}
			if g.Priority != c.Priority {
				yg.Priority = g.Priority
			}
			y.Groups = append(y.Groups, yg)
		}
	}
	for _, h := range c.Notify {
		y.Notify = append(y.Notify, yamlHook{Command: h.Command, Timeout: h.Timeout.String(), On: h.On})
	}
	if f := c.Fencing; f.Policy != FencingOff || len(f.Command) > 0 || f.Timeout != DefaultFencingTimeout {
		y.Fencing = &yamlFencing{Policy: f.Policy, Command: f.Command, Timeout: f.Timeout.String()}
	}
	for name, mac := range c.Peers {
		if y.Peers == nil {
			y.Peers = map[string]string{}
		}
		y.Peers[name] = mac.String()
	}
	if a := c.Auth; a.Enabled() {
		y.Auth = &yamlAuth{KeyFiles: a.KeyFiles, Require: a.Require, SequenceFile: a.SequenceFile}
	}
	var b bytes.Buffer
	b.WriteString("# floatip effective configuration\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(y); err != nil {
		panic(fmt.Sprintf("config: encoding YAML: %v", err)) // unreachable: plain strings and ints
	}
	if err := enc.Close(); err != nil {
		panic(fmt.Sprintf("config: encoding YAML: %v", err))
	}
	return b.Bytes()
}

func yamlChecks(checks []Check) []yamlCheck {
	var out []yamlCheck
	for _, k := range checks {
		y := yamlCheck{
			Name: k.Name, Interval: k.Interval.String(), Timeout: k.Timeout.String(),
			Fall: k.Fall, Rise: k.Rise,
		}
		switch k.Type {
		case CheckHTTP:
			y.HTTP = &yamlHTTP{URL: k.URL, ExpectStatus: k.ExpectStatus}
		case CheckTCP:
			y.TCP = &yamlTCP{Address: k.Address}
		case CheckExec:
			y.Exec = &yamlExec{Command: k.Command}
		}
		out = append(out, y)
	}
	return out
}

func addrStrings(addrs []netip.Addr) []string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return s
}
