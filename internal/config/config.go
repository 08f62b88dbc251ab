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
	"net/netip"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Allowed values of the string settings.
const (
	ProfileDefault = "default"
	ProfileFast    = "fast"

	ForeignClaimYield  = "yield"  // a holder releases a VIP that a host without floatip claims
	ForeignClaimDefend = "defend" // a holder keeps announcing it

	LogFormatText = "text"
	LogFormatJSON = "json"

	// DefaultGroup is the name of the group made from "vips:" or --vip.
	DefaultGroup = "default"

	// DefaultPriority is the node priority when none is configured.
	DefaultPriority = 100

	// DefaultSocket is where the daemon serves `floatip status` and friends.
	DefaultSocket = "/run/floatip/floatip.sock"
)

var (
	profiles      = []string{ProfileDefault, ProfileFast}
	foreignClaims = []string{ForeignClaimYield, ForeignClaimDefend}
	logFormats    = []string{LogFormatText, LogFormatJSON}
	logLevels     = []string{"debug", "info", "warn", "error"}
)

// Timing holds the protocol's intervals and counts.
type Timing struct {
	CheckInterval    time.Duration // standby's probe interval; a probe unanswered within one interval is a miss
	ClaimSlot        time.Duration // extra wait per rank for lower-priority standbys
	AnnounceInterval time.Duration // spacing of the gratuitous ARPs after a claim
	Lifetime         time.Duration // valid/preferred lifetime of a VIP on the interface (whole seconds)
	RenewInterval    time.Duration // how often the holder renews the lifetime
	BeaconInterval   time.Duration // how often a standby broadcasts its presence and priority, and a holder checks for a second holder
	Misses           int           // consecutive unanswered probes before a VIP counts as free
	AnnounceCount    int           // gratuitous ARPs after a claim
}

// Group is a set of VIPs that move together.
type Group struct {
	Name     string
	VIPs     []netip.Addr
	Priority int // effective: the group's own, or else the node's
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

// Preset returns the timing of a profile: "default" or "fast".
func Preset(name string) (Timing, error) {
	switch name {
	case ProfileDefault:
		return Timing{
			CheckInterval:    50 * time.Millisecond,
			Misses:           3,
			ClaimSlot:        20 * time.Millisecond,
			AnnounceCount:    3,
			AnnounceInterval: 100 * time.Millisecond,
			Lifetime:         3 * time.Second,
			RenewInterval:    time.Second,
			BeaconInterval:   500 * time.Millisecond,
		}, nil
	case ProfileFast:
		return Timing{
			CheckInterval:    10 * time.Millisecond,
			Misses:           3,
			ClaimSlot:        5 * time.Millisecond,
			AnnounceCount:    3,
			AnnounceInterval: 20 * time.Millisecond,
			Lifetime:         2 * time.Second,
			RenewInterval:    500 * time.Millisecond,
			BeaconInterval:   500 * time.Millisecond,
		}, nil
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
	return len(c.Groups) == 1 && c.Groups[0].Name == DefaultGroup && c.Groups[0].Priority == c.Priority
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
	Name     string   `yaml:"name"`
	VIPs     []string `yaml:"vips,flow"`
	Priority int      `yaml:"priority,omitempty"`
}

type yamlControl struct {
	Socket string `yaml:"socket"`
	Group  string `yaml:"group,omitempty"`
}

type yamlMetrics struct {
	Listen string `yaml:"listen,omitempty"`
}

type yamlConfig struct {
	Interface      string      `yaml:"interface,omitempty"`
	Priority       int         `yaml:"priority"`
	NodeName       string      `yaml:"node_name,omitempty"`
	Profile        string      `yaml:"profile"`
	OnForeignClaim string      `yaml:"on_foreign_claim"`
	LogFormat      string      `yaml:"log_format"`
	LogLevel       string      `yaml:"log_level"`
	Timing         yamlTiming  `yaml:"timing"`
	VIPs           []string    `yaml:"vips,omitempty,flow"`
	Groups         []yamlGroup `yaml:"groups,omitempty"`
	Control        yamlControl `yaml:"control"`
	Metrics        yamlMetrics `yaml:"metrics,omitempty"`
}

// YAML returns the effective configuration as a YAML file that Parse reads
// back to an equal Config (Path aside). Every timing value is written out;
// a single group named "default" with the node's priority is written as
// "vips:", and a group's priority only when it differs from the node's.
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
	}
	if isShorthand(c) {
		y.VIPs = addrStrings(c.Groups[0].VIPs)
	} else {
		for _, g := range c.Groups {
			yg := yamlGroup{Name: g.Name, VIPs: addrStrings(g.VIPs)}
			if g.Priority != c.Priority {
				yg.Priority = g.Priority
			}
			y.Groups = append(y.Groups, yg)
		}
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

func addrStrings(addrs []netip.Addr) []string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return s
}
