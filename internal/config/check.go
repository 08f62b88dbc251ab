package config

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxLifetime is the longest VIP lifetime: the kernel keeps it as a 32-bit
// count of seconds, and 0xffffffff means forever.
const maxLifetime = (1<<32 - 2) * time.Second

var groupName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,32}$`)

// checker checks the values of a Config. When it runs for Parse, lines maps
// fields to the line they came from and bad holds the fields that could not
// be decoded; for Validate both are empty.
type checker struct {
	file      string
	lines     map[string]int
	bad       map[string]bool
	shorthand bool // groups[0] came from "vips:"; name it that way
	probs     Problems
}

// display turns a field's canonical name into the one the user wrote.
func (k *checker) display(field string) string {
	if !k.shorthand {
		return field
	}
	if rest, ok := strings.CutPrefix(field, "groups[0].vips"); ok {
		return "vips" + rest
	}
	if field == "groups[0]" {
		return "vips"
	}
	return field
}

// line returns the line of field, or of its nearest ancestor in the file.
func (k *checker) line(field string) int {
	for {
		if l, ok := k.lines[field]; ok {
			return l
		}
		if field == "" {
			return 0
		}
		field = parent(field)
	}
}

// parent returns "groups[0].vips" for "groups[0].vips[1]", "groups[0]" for
// "groups[0].vips", "groups" for "groups[0]", and "" for "priority".
func parent(field string) string {
	if strings.HasSuffix(field, "]") {
		return field[:strings.LastIndexByte(field, '[')]
	}
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[:i]
	}
	return ""
}

func (k *checker) add(field, format string, args ...any) {
	k.addAt(field, field, format, args...)
}

// addAt records a problem with field at the line of another field, the one
// whose value causes it.
func (k *checker) addAt(at, field, format string, args ...any) {
	k.probs = append(k.probs, Problem{File: k.file, Line: k.line(at), Field: k.display(field), Msg: fmt.Sprintf(format, args...)})
}

// ok reports whether field was decoded and so should be checked.
func (k *checker) ok(fields ...string) bool {
	for _, f := range fields {
		if k.bad[f] {
			return false
		}
	}
	return true
}

// problems returns the problems sorted by line, or nil.
func (k *checker) problems() error {
	slices.SortStableFunc(k.probs, func(a, b Problem) int { return a.Line - b.Line })
	return k.probs.orNil()
}

// check checks every value of c. With require, an interface, a node name
// and at least one group must be set.
func (k *checker) check(c Config, require bool) {
	if k.ok("interface") {
		switch {
		case c.Interface != "":
			if msg := interfaceProblem(c.Interface); msg != "" {
				k.add("interface", "%s", msg)
			}
		case require:
			k.add("interface", "no interface: set interface: in %s or pass --interface", k.fileName(c))
		case k.lines["interface"] > 0: // written as interface: ""
			k.add("interface", "must not be empty")
		}
	}
	if k.ok("priority") {
		if msg := priorityProblem(c.Priority); msg != "" {
			k.add("priority", "%s", msg)
		}
	}
	if k.ok("node_name") {
		switch {
		case c.NodeName != "" || k.lines["node_name"] > 0:
			if msg := nodeNameProblem(c.NodeName); msg != "" {
				k.add("node_name", "%s", msg)
			}
		case require:
			k.add("node_name", "the host name could not be read: set node_name: in %s", k.fileName(c))
		}
	}
	k.auth(c.Auth)
	if k.ok("control.socket") && !filepath.IsAbs(c.Control.Socket) {
		k.add("control.socket", "must be an absolute path, got %q", c.Control.Socket)
	}
	if k.ok("metrics.listen") && c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
			k.add("metrics.listen", "must be host:port (e.g. 127.0.0.1:9110), got %q", c.Metrics.Listen)
		}
	}
	k.oneOf(c.Profile, "profile", profiles)
	k.oneOf(c.OnForeignClaim, "on_foreign_claim", foreignClaims)
	k.oneOf(c.LogFormat, "log_format", logFormats)
	k.oneOf(c.LogLevel, "log_level", logLevels)
	k.oneOf(c.UnhealthyPolicy, "unhealthy_policy", unhealthy)
	if k.ok("preempt_delay") && c.PreemptDelay < 0 {
		k.add("preempt_delay", "must not be negative, got %v", c.PreemptDelay)
	}
	k.timing(c.Timing)
	k.checks(c.Checks, "checks", nil)
	k.groups(c, require)
	k.notify(c.Notify)
	k.fencing(c.Fencing)
	k.peers(c.Peers)
	if c.Fencing.Policy == FencingRequired && len(c.Peers) == 0 && k.ok("fencing.policy", "peers") {
		k.add("fencing.policy", "required needs peers: (node name -> MAC), or the fence command is not told which node to fence and no takeover happens")
	}
}

func (k *checker) fileName(c Config) string {
	if c.Path != "" {
		return c.Path
	}
	return "the configuration file"
}

func (k *checker) oneOf(v, field string, set []string) {
	if k.ok(field) {
		if msg := oneOfProblem(v, set); msg != "" {
			k.add(field, "%s", msg)
		}
	}
}

func (k *checker) timing(t Timing) {
	const (
		check    = "timing.check_interval"
		misses   = "timing.misses"
		slot     = "timing.claim_slot"
		count    = "timing.announce_count"
		announce = "timing.announce_interval"
		lifetime = "timing.lifetime"
		renew    = "timing.renew_interval"
		beacon   = "timing.beacon_interval"
	)
	valid := map[string]bool{} // fields that passed their own checks
	positive := func(field string, d time.Duration, minimum time.Duration) {
		switch {
		case !k.ok(field):
		case d <= 0:
			k.add(field, "must be positive, got %v", d)
		case d < minimum:
			k.add(field, "must be at least %v, got %v", minimum, d)
		default:
			valid[field] = true
		}
	}
	positive(check, t.CheckInterval, time.Millisecond)
	positive(announce, t.AnnounceInterval, 0)
	positive(renew, t.RenewInterval, 0)
	positive(beacon, t.BeaconInterval, 0)
	if k.ok(slot) && t.ClaimSlot < 0 {
		k.add(slot, "must not be negative, got %v", t.ClaimSlot)
	}
	if k.ok(misses) && (t.Misses < 1 || t.Misses > 100) {
		k.add(misses, "must be 1..100, got %d", t.Misses)
	}
	if k.ok(count) && (t.AnnounceCount < 1 || t.AnnounceCount > 100) {
		k.add(count, "must be 1..100, got %d", t.AnnounceCount)
	}
	if k.ok(lifetime) {
		switch l := t.Lifetime; {
		case l < 2*time.Second:
			k.add(lifetime, "must be at least 2s, got %v", l)
		case l%time.Second != 0:
			k.add(lifetime, "%v is not a whole number of seconds (the kernel keeps address lifetimes in whole seconds)", l)
		case l > maxLifetime:
			k.add(lifetime, "%v is too long (the kernel keeps address lifetimes as 32-bit seconds; at most %v)", l, maxLifetime)
		default:
			valid[lifetime] = true
		}
	}
	if valid[lifetime] && valid[renew] && t.RenewInterval > t.Lifetime/2 {
		k.add(k.explicit(renew, lifetime), "lifetime %v must be at least twice renew_interval %v, or the address may expire between renewals", t.Lifetime, t.RenewInterval)
	}
	if valid[check] && valid[beacon] && t.BeaconInterval < t.CheckInterval {
		k.add(k.explicit(beacon, check), "beacon_interval %v must be at least check_interval %v", t.BeaconInterval, t.CheckInterval)
	}
}

// explicit returns the first of fields that the file sets, or else the first:
// a problem between two fields belongs where the user wrote one of them.
func (k *checker) explicit(fields ...string) string {
	for _, f := range fields {
		if _, ok := k.lines[f]; ok {
			return f
		}
	}
	return fields[0]
}

func (k *checker) groups(c Config, require bool) {
	if require && len(c.Groups) == 0 && k.ok("groups") && k.ok("vips") {
		k.add("vips", "no VIPs: set vips: or groups: in %s, or pass --vip", k.fileName(c))
	}
	names := map[string]string{}    // group name -> field of its first use
	seen := map[netip.Addr]string{} // VIP -> field of its first use
	for i, g := range c.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		nameField := field + ".name"
		switch {
		case !k.ok(nameField):
		case g.Name == "":
			k.add(nameField, "required: every group needs a name")
		case !groupName.MatchString(g.Name):
			k.add(nameField, "%q is not a valid group name (1..32 of a-z A-Z 0-9 _ . -)", g.Name)
		case names[g.Name] != "":
			k.add(nameField, "group name %q is used twice (also at %s)", g.Name, k.where(names[g.Name]))
		default:
			names[g.Name] = nameField
		}
		if prio := field + ".priority"; k.ok(prio) && g.Priority != c.Priority {
			if msg := priorityProblem(g.Priority); msg != "" {
				k.add(prio, "%s", msg)
			}
		}
		vips := field + ".vips"
		if len(g.VIPs) == 0 && k.ok(vips) {
			k.add(vips, "group has no VIPs; list at least one address")
		}
		for j, a := range g.VIPs {
			f := fmt.Sprintf("%s[%d]", vips, j)
			if !k.ok(f) {
				continue
			}
			if msg := vipProblem(a); msg != "" {
				k.add(f, "%s", msg)
				continue
			}
			if first, dup := seen[a]; dup {
				k.add(f, "%s is listed twice (also at %s)", a, k.where(first))
				continue
			}
			seen[a] = f
		}
		checks := field + ".checks"
		if !hasTopChecks(c, g) {
			k.add(checks, "must begin with the top-level checks, which apply to every group")
		}
		k.checks(ownChecks(c, g), checks, c.Checks)
	}
}

// checks checks a list of health checks, at field, that follow the checks
// before (the top-level checks, for a group's own).
func (k *checker) checks(checks []Check, field string, before []Check) {
	names := map[string]bool{}
	for _, h := range before {
		names[h.Name] = true
	}
	for i, h := range checks {
		f := fmt.Sprintf("%s[%d]", field, i)
		k.healthCheck(h, f)
		if !k.ok(f, f+".name") || h.Name == "" {
			continue
		}
		if names[h.Name] {
			k.addAt(f+".name", field, "two checks named %q", h.Name)
		}
		names[h.Name] = true
	}
}

// healthCheck checks one health check at field.
func (k *checker) healthCheck(h Check, field string) {
	if k.ok(field) { // else the file sets none or several of http, tcp and exec
		if f := field + ".name"; k.ok(f) {
			switch {
			case h.Name == "":
				k.add(f, "must not be empty")
			case !groupName.MatchString(h.Name):
				k.add(f, "%q is not a valid check name (1..32 of a-z A-Z 0-9 _ . -)", h.Name)
			}
		}
		switch h.Type {
		case CheckHTTP:
			if f := field + ".http.url"; k.ok(f) {
				if msg := urlProblem(h.URL); msg != "" {
					k.add(f, "%s", msg)
				}
			}
			if f := field + ".http.expect_status"; k.ok(f) && (h.ExpectStatus < 100 || h.ExpectStatus > 599) {
				k.add(f, "must be 100..599, got %d", h.ExpectStatus)
			}
		case CheckTCP:
			if f := field + ".tcp.address"; k.ok(f) {
				if h.Address == "" {
					k.add(f, "required: the host:port to connect to, like \"127.0.0.1:5432\"")
				} else if _, port, err := net.SplitHostPort(h.Address); err != nil || port == "" {
					k.add(f, "%q must be host:port", h.Address)
				}
			}
		case CheckExec:
			k.command(h.Command, field+".exec.command")
		case "":
			k.add(field, "set exactly one of http, tcp, exec")
		default:
			k.add(field, "type %s", oneOfProblem(h.Type, checkTypes))
		}
	}
	interval, timeout := field+".interval", field+".timeout"
	validInterval := false
	switch {
	case !k.ok(interval):
	case h.Interval < 10*time.Millisecond:
		k.add(interval, "must be at least 10ms, got %v", h.Interval)
	default:
		validInterval = true
	}
	switch {
	case !k.ok(timeout):
	case h.Timeout <= 0:
		k.add(timeout, "must be positive, got %v", h.Timeout)
	case validInterval && h.Timeout > h.Interval:
		k.add(timeout, "%v must not exceed interval %v", h.Timeout, h.Interval)
	}
	for _, c := range []struct {
		field string
		n     int
	}{{field + ".fall", h.Fall}, {field + ".rise", h.Rise}} {
		if k.ok(c.field) && (c.n < 1 || c.n > 100) {
			k.add(c.field, "must be 1..100, got %d", c.n)
		}
	}
}

// urlProblem checks the URL of an http check.
func urlProblem(s string) string {
	if s == "" {
		return `required: the URL to GET, like "http://127.0.0.1:8080/healthz"`
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("%q must be an http:// or https:// URL", s)
	}
	return ""
}

// command checks a command and its arguments at field.
func (k *checker) command(cmd []string, field string) {
	switch {
	case !k.ok(field):
	case len(cmd) == 0:
		k.add(field, "required: the program (an absolute path) and its arguments, like %s", exampleCommand)
	case !filepath.IsAbs(cmd[0]):
		k.addAt(field+"[0]", field, "%q must be an absolute path", cmd[0])
	}
}

func (k *checker) notify(hooks []Hook) {
	for i, h := range hooks {
		field := fmt.Sprintf("notify[%d]", i)
		k.command(h.Command, field+".command")
		if f := field + ".timeout"; k.ok(f) && h.Timeout <= 0 {
			k.add(f, "must be positive, got %v", h.Timeout)
		}
		on := field + ".on"
		if !k.ok(on) {
			continue
		}
		if len(h.On) == 0 {
			k.add(on, "list at least one of %s, or leave on: out for every state", list(hookStates))
		}
		for j, s := range h.On {
			f := fmt.Sprintf("%s[%d]", on, j)
			if msg := oneOfProblem(s, hookStates); msg != "" {
				k.add(f, "%s", msg)
			} else if slices.Contains(h.On[:j], s) {
				k.add(f, "%q is listed twice", s)
			}
		}
	}
}

func (k *checker) fencing(f Fencing) {
	k.oneOf(f.Policy, "fencing.policy", fencings)
	switch {
	case !k.ok("fencing.policy", "fencing.command"):
	case len(f.Command) == 0 && f.Policy != FencingOff && slices.Contains(fencings, f.Policy):
		k.addAt("fencing.policy", "fencing.command", "required when fencing.policy is %s", f.Policy)
	case len(f.Command) > 0:
		k.command(f.Command, "fencing.command")
	}
	if k.ok("fencing.timeout") && f.Timeout <= 0 {
		k.add("fencing.timeout", "must be positive, got %v", f.Timeout)
	}
}

// peers checks the node names and MAC addresses of the peers, in file order
// (else by name).
func (k *checker) peers(peers map[string]net.HardwareAddr) {
	names := slices.Collect(maps.Keys(peers))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(k.lines[join("peers", a)]-k.lines[join("peers", b)], strings.Compare(a, b))
	})
	first := map[string]string{} // MAC -> the first peer with it
	for _, name := range names {
		field, mac := join("peers", name), peers[name]
		if msg := nodeNameProblem(name); msg != "" {
			k.add(field, "node name %s", msg)
		}
		if msg := macProblem(mac); msg != "" {
			k.add(field, "%s", msg)
			continue
		}
		if other, dup := first[mac.String()]; dup {
			k.addAt(field, "peers", "%s and %s have the same MAC %s", other, name, mac)
			continue
		}
		first[mac.String()] = name
	}
}

// macProblem checks that mac may be a node's Ethernet address.
func macProblem(mac net.HardwareAddr) string {
	switch {
	case len(mac) != 6:
		return fmt.Sprintf("%q is not a 6-byte Ethernet MAC address", mac.String())
	case mac[0]&1 != 0:
		return fmt.Sprintf("%s is a multicast MAC address, not a node's", mac)
	case slices.Equal(mac, make(net.HardwareAddr, 6)):
		return fmt.Sprintf("%s is the zero MAC address", mac)
	}
	return ""
}

// where names a field for a message: "groups[0].vips[1], line 7".
func (k *checker) where(field string) string {
	if l := k.lines[field]; l > 0 {
		return fmt.Sprintf("%s, line %d", k.display(field), l)
	}
	return k.display(field)
}

// interfaceProblem checks the syntax of a Linux interface name.
func interfaceProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 15:
		return fmt.Sprintf("%q is longer than 15 bytes, the kernel's limit for interface names", s)
	case s == "." || s == "..":
		return fmt.Sprintf("%q is not a valid interface name", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Sprintf("%q is not a valid interface name (no \"/\", \":\" or whitespace)", s)
	}
	return ""
}

func priorityProblem(p int) string {
	if p < 1 || p > 254 {
		return fmt.Sprintf("must be 1..254, got %d", p)
	}
	return ""
}

func nodeNameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 64 || !utf8.ValidString(s):
		return fmt.Sprintf("%q is not 1..64 bytes of UTF-8", s)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Sprintf("%q must not contain whitespace or control characters", s)
	}
	return ""
}

func oneOfProblem(v string, set []string) string {
	if slices.Contains(set, v) {
		return ""
	}
	return fmt.Sprintf("%q is not one of %s", v, list(set))
}

// list formats "a, b or c".
func list(set []string) string {
	if len(set) < 2 {
		return strings.Join(set, "")
	}
	return strings.Join(set[:len(set)-1], ", ") + " or " + set[len(set)-1]
}

var (
	broadcast   = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	reserved    = netip.MustParsePrefix("240.0.0.0/4")
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
)

// vip6Problem checks that the IPv6 address a may be a VIP: a global or
// unique-local unicast address (a /128 the nodes move with Neighbor
// Discovery).
func vip6Problem(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return fmt.Sprintf("%q: a VIP has no zone (%%%s); the interface is the configuration's", a, a.Zone())
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address", a)
	case a.IsLoopback():
		return fmt.Sprintf("%s is the loopback address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address (ff00::/8)", a)
	case a.IsLinkLocalUnicast():
		return fmt.Sprintf("%s is a link-local address (fe80::/10): every interface has its own; a VIP must be global or unique-local", a)
	}
	return ""
}

// vipProblem checks that a may be a VIP.
func vipProblem(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "not a valid address"
	case a.Is4In6():
		return fmt.Sprintf("%q is an IPv4-mapped IPv6 address; write it as %s", a, a.Unmap())
	case a.Is6():
		return vip6Problem(a)
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address", a)
	case a.IsLoopback():
		return fmt.Sprintf("%s is a loopback address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address", a)
	case a == broadcast:
		return fmt.Sprintf("%s is the broadcast address", a)
	case reserved.Contains(a):
		return fmt.Sprintf("%s is in 240.0.0.0/4, reserved (class E): many hosts and routers drop it", a)
	case thisNetwork.Contains(a):
		return fmt.Sprintf("%s is in 0.0.0.0/8, \"this network\", never a host's address", a)
	case a.IsLinkLocalUnicast():
		return fmt.Sprintf("%s is a link-local address (169.254.0.0/16)", a)
	}
	return ""
}
