package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/floatip/floatip/internal/hooks"
)

var (
	topKeys = []string{
		"interface", "priority", "node_name", "profile", "on_foreign_claim", "preempt", "preempt_delay", "unhealthy_policy",
		"log_format", "log_level", "timing", "checks", "vips", "groups", "notify", "fencing", "peers", "auth", "control", "metrics", "ipv6",
	}
	timingKeys  = []string{"check_interval", "misses", "claim_slot", "announce_count", "announce_interval", "lifetime", "renew_interval", "beacon_interval"}
	groupKeys   = []string{"name", "vips", "priority", "checks"}
	checkKeys   = []string{"name", "http", "tcp", "exec", "interval", "timeout", "fall", "rise"}
	httpKeys    = []string{"url", "expect_status"}
	tcpKeys     = []string{"address"}
	execKeys    = []string{"command"}
	hookKeys    = []string{"command", "timeout", "on"}
	fencingKeys = []string{"policy", "command", "timeout"}
)

// parser walks the yaml.Node tree, so that every problem can carry the line
// it comes from. It records each field's line for the checks that follow,
// and the fields whose values could not be decoded, so that those are not
// checked again with a default in their place.
type parser struct {
	checker
}

func newParser(file string) *parser {
	return &parser{checker{file: file, lines: map[string]int{}, bad: map[string]bool{}}}
}

// at records a problem at a line of the file.
func (p *parser) at(line int, field, format string, args ...any) {
	p.probs = append(p.probs, Problem{File: p.file, Line: line, Field: p.display(field), Msg: fmt.Sprintf(format, args...)})
}

// fail records a problem with a field's value and marks the field bad.
func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	p.bad[field] = true
	p.at(n.Line, field, format, args...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes data into a node tree and returns its root mapping, or nil
// when the file is empty or cannot be parsed.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntax(err)
		return nil
	default:
		p.at(extra.Line, "", "the file holds more than one YAML document (\"---\"); floatip reads exactly one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.at(root.Line, "", "the file must be a mapping of keys to values (like \"interface: eth0\"), not %s", kindName(root))
		return nil
	}
	return root
}

// syntax records a YAML syntax error, with its line when the message has one.
func (p *parser) syntax(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.at(line, "", "invalid YAML: %s", m[2])
		return
	}
	p.at(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}

type entry struct{ key, val *yaml.Node }

// mapping returns the known keys of mapping node n, whose path is field. It
// reports unknown and duplicate keys and records each key's line. With known
// nil, every key is known (peers: maps names the user chooses).
func (p *parser) mapping(n *yaml.Node, field string, known []string) map[string]entry {
	m := map[string]entry{}
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "must be a mapping of keys to values, not %s", kindName(n))
		return m
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.at(k.Line, field, "keys must be plain names, not %s", kindName(k))
			continue
		}
		if line, dup := first[k.Value]; dup {
			p.at(k.Line, field, "duplicate key %q (first at line %d)", k.Value, line)
			continue
		}
		first[k.Value] = k.Line
		if known != nil && !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.at(k.Line, field, "%s", msg)
			continue
		}
		p.lines[join(field, k.Value)] = k.Line
		m[k.Value] = entry{k, v}
	}
	return m
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// scalar returns the text of a single value.
func (p *parser) scalar(v *yaml.Node, field string) (string, bool) {
	switch {
	case v.Kind != yaml.ScalarNode:
		p.fail(v, field, "must be a single value, not %s", kindName(v))
		return "", false
	case isNull(v):
		p.fail(v, field, "has no value")
		return "", false
	}
	return v.Value, true
}

func (p *parser) str(m map[string]entry, key, field string, dst *string) {
	e, ok := m[key]
	if !ok {
		return
	}
	if s, ok := p.scalar(e.val, field); ok {
		*dst = s
	}
}

func (p *parser) int(m map[string]entry, key, field string, dst *int) {
	e, ok := m[key]
	if !ok {
		return
	}
	s, ok := p.scalar(e.val, field)
	if !ok {
		return
	}
	var n int
	if e.val.ShortTag() != "!!int" || e.val.Decode(&n) != nil {
		p.fail(e.val, field, "%q is not a whole number", s)
		return
	}
	*dst = n
}

func (p *parser) bool(m map[string]entry, key, field string, dst *bool) {
	e, ok := m[key]
	if !ok {
		return
	}
	s, ok := p.scalar(e.val, field)
	if !ok {
		return
	}
	var b bool
	if e.val.ShortTag() != "!!bool" || e.val.Decode(&b) != nil {
		p.fail(e.val, field, "%q is not true or false", s)
		return
	}
	*dst = b
}

func (p *parser) duration(m map[string]entry, key, field string, dst *time.Duration) {
	e, ok := m[key]
	if !ok {
		return
	}
	s, ok := p.scalar(e.val, field)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(e.val, field, "%q is not a duration (write it with a unit, like \"50ms\" or \"2s\")", s)
		return
	}
	*dst = d
}

// config decodes the root mapping into c, which holds the defaults.
func (p *parser) config(root *yaml.Node, c *Config) {
	m := p.mapping(root, "", topKeys)

	// The profile picks the timing preset that explicit timing keys override.
	p.str(m, "profile", "profile", &c.Profile)
	if t, err := Preset(c.Profile); err == nil {
		c.Timing = t
	} // else the check reports the profile and the default timing stays
	if e, ok := m["timing"]; ok && !isNull(e.val) {
		t := p.mapping(e.val, "timing", timingKeys)
		p.duration(t, "check_interval", "timing.check_interval", &c.Timing.CheckInterval)
		p.int(t, "misses", "timing.misses", &c.Timing.Misses)
		p.duration(t, "claim_slot", "timing.claim_slot", &c.Timing.ClaimSlot)
		p.int(t, "announce_count", "timing.announce_count", &c.Timing.AnnounceCount)
		p.duration(t, "announce_interval", "timing.announce_interval", &c.Timing.AnnounceInterval)
		p.duration(t, "lifetime", "timing.lifetime", &c.Timing.Lifetime)
		p.duration(t, "renew_interval", "timing.renew_interval", &c.Timing.RenewInterval)
		p.duration(t, "beacon_interval", "timing.beacon_interval", &c.Timing.BeaconInterval)
	}

	p.str(m, "interface", "interface", &c.Interface)
	p.int(m, "priority", "priority", &c.Priority)
	p.str(m, "node_name", "node_name", &c.NodeName)
	p.str(m, "on_foreign_claim", "on_foreign_claim", &c.OnForeignClaim)
	p.str(m, "log_format", "log_format", &c.LogFormat)
	p.str(m, "log_level", "log_level", &c.LogLevel)
	p.bool(m, "preempt", "preempt", &c.Preempt)
	p.duration(m, "preempt_delay", "preempt_delay", &c.PreemptDelay)
	p.str(m, "unhealthy_policy", "unhealthy_policy", &c.UnhealthyPolicy)
	if e, ok := m["checks"]; ok {
		c.Checks = p.checks(e.val, "checks", 0)
	}
	if e, ok := m["notify"]; ok {
		c.Notify = p.notify(e.val)
	}
	if e, ok := m["fencing"]; ok && !isNull(e.val) {
		fm := p.mapping(e.val, "fencing", fencingKeys)
		p.str(fm, "policy", "fencing.policy", &c.Fencing.Policy)
		if e, ok := fm["command"]; ok {
			c.Fencing.Command = p.stringList(e.val, "fencing.command", exampleCommand)
		}
		p.duration(fm, "timeout", "fencing.timeout", &c.Fencing.Timeout)
	}
	if e, ok := m["peers"]; ok && !isNull(e.val) {
		c.Peers = p.peers(e.val)
	}
	if e, ok := m["auth"]; ok && !isNull(e.val) {
		_, foreignSet := m["on_foreign_claim"]
		p.auth(e.val, c, foreignSet)
	}
	if e, ok := m["control"]; ok && !isNull(e.val) {
		cm := p.mapping(e.val, "control", []string{"socket", "group"})
		p.str(cm, "socket", "control.socket", &c.Control.Socket)
		p.str(cm, "group", "control.group", &c.Control.Group)
	}
	if e, ok := m["metrics"]; ok && !isNull(e.val) {
		mm := p.mapping(e.val, "metrics", []string{"listen"})
		p.str(mm, "listen", "metrics.listen", &c.Metrics.Listen)
	}
	if e, ok := m["ipv6"]; ok && !isNull(e.val) {
		im := p.mapping(e.val, "ipv6", []string{"na_router"})
		p.bool(im, "na_router", "ipv6.na_router", &c.IPv6.NARouter)
	}

	// A null "vips:" or "groups:" (all entries commented out) counts as unset.
	v, hasV := m["vips"]
	hasV = hasV && !isNull(v.val)
	g, hasG := m["groups"]
	hasG = hasG && !isNull(g.val)
	switch {
	case hasV && hasG:
		p.at(g.key.Line, "groups", "set either vips: (one group) or groups:, not both (vips: is at line %d)", v.key.Line)
		p.vips(v.val, "vips") // still report bad addresses
		p.groups(g.val, c)
	case hasV:
		p.shorthand = true
		p.lines["groups[0]"] = v.key.Line
		p.lines["groups[0].vips"] = v.key.Line
		c.Groups = []Group{{Name: DefaultGroup, VIPs: p.vips(v.val, "groups[0].vips"), Priority: c.Priority, Checks: slices.Clone(c.Checks)}}
	case hasG:
		p.groups(g.val, c)
	}
}

func (p *parser) groups(n *yaml.Node, c *Config) {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "groups", "must be a list of groups, not %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		p.fail(n, "groups", "is an empty list; list at least one group, or leave groups: out")
		return
	}
	for i, item := range n.Content {
		field := fmt.Sprintf("groups[%d]", i)
		item = resolve(item)
		p.lines[field] = item.Line
		m := p.mapping(item, field, groupKeys)
		grp := Group{Priority: c.Priority}
		p.str(m, "name", field+".name", &grp.Name)
		p.int(m, "priority", field+".priority", &grp.Priority)
		if e, ok := m["vips"]; ok {
			grp.VIPs = p.vips(e.val, field+".vips")
		}
		grp.Checks = slices.Clone(c.Checks)
		if e, ok := m["checks"]; ok {
			grp.Checks = append(grp.Checks, p.checks(e.val, field+".checks", len(c.Checks))...)
		}
		c.Groups = append(c.Groups, grp)
	}
}

// vips decodes a list of addresses. An entry that does not parse becomes an
// invalid netip.Addr, so that later entries keep their index, and is marked
// bad.
func (p *parser) vips(n *yaml.Node, field string) []netip.Addr {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of addresses, like [198.18.0.100], not %s", kindName(n))
		return nil
	}
	addrs := make([]netip.Addr, 0, len(n.Content))
	for j, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, j)
		item = resolve(item)
		p.lines[f] = item.Line
		var a netip.Addr
		if s, ok := p.scalar(item, f); ok {
			var msg string
			if a, msg = parseVIP(s); msg != "" {
				p.fail(item, f, "%s", msg)
			}
		}
		addrs = append(addrs, a)
	}
	return addrs
}

// checks decodes a list of health checks. first is the position of the
// first one in a group's effective checks, for the default names.
func (p *parser) checks(n *yaml.Node, field string, first int) []Check {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of checks, not %s", kindName(n))
		return nil
	}
	var out []Check
	for j, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, j)
		item = resolve(item)
		p.lines[f] = item.Line
		out = append(out, p.healthCheck(item, f, first+j))
	}
	return out
}

// healthCheck decodes one check, with its defaults. index is its position in
// a group's effective checks.
func (p *parser) healthCheck(n *yaml.Node, field string, index int) Check {
	h := Check{Interval: DefaultCheckInterval, Fall: DefaultCheckFall, Rise: DefaultCheckRise}
	m := p.mapping(n, field, checkKeys)
	p.str(m, "name", field+".name", &h.Name)
	var types []string
	for _, t := range checkTypes {
		if e, ok := m[t]; ok && !isNull(e.val) {
			types = append(types, t)
		}
	}
	switch {
	case p.bad[field]: // not a mapping
	case len(types) == 0:
		p.fail(n, field, "set exactly one of http, tcp, exec")
	case len(types) > 1:
		p.fail(n, field, "set exactly one of http, tcp, exec (it sets %s)", strings.Join(types, " and "))
	default:
		h.Type = types[0]
	}
	if e, ok := m[CheckHTTP]; ok && !isNull(e.val) {
		f := field + ".http"
		hm := p.mapping(e.val, f, httpKeys)
		h.ExpectStatus = DefaultExpectStatus
		p.str(hm, "url", f+".url", &h.URL)
		p.int(hm, "expect_status", f+".expect_status", &h.ExpectStatus)
	}
	if e, ok := m[CheckTCP]; ok && !isNull(e.val) {
		f := field + ".tcp"
		tm := p.mapping(e.val, f, tcpKeys)
		p.str(tm, "address", f+".address", &h.Address)
	}
	if e, ok := m[CheckExec]; ok && !isNull(e.val) {
		f := field + ".exec"
		em := p.mapping(e.val, f, execKeys)
		if e, ok := em["command"]; ok {
			h.Command = p.stringList(e.val, f+".command", exampleCommand)
		}
	}
	p.duration(m, "interval", field+".interval", &h.Interval)
	h.Timeout = h.Interval
	p.duration(m, "timeout", field+".timeout", &h.Timeout)
	p.int(m, "fall", field+".fall", &h.Fall)
	p.int(m, "rise", field+".rise", &h.Rise)
	if _, named := m["name"]; !named && h.Type != "" {
		h.Name = fmt.Sprintf("%s-%d", h.Type, index)
	}
	return h
}

// exampleCommand shows how to write a command in problem messages.
const exampleCommand = "[/usr/local/bin/check, --quick]"

// notify decodes the list of hooks, with their defaults.
func (p *parser) notify(n *yaml.Node) []Hook {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "notify", "must be a list of hooks, like [{command: %s}], not %s", exampleCommand, kindName(n))
		return nil
	}
	var out []Hook
	for i, item := range n.Content {
		field := fmt.Sprintf("notify[%d]", i)
		item = resolve(item)
		p.lines[field] = item.Line
		m := p.mapping(item, field, hookKeys)
		h := Hook{Timeout: DefaultHookTimeout, On: hooks.StateTriggers()}
		if e, ok := m["command"]; ok {
			h.Command = p.stringList(e.val, field+".command", exampleCommand)
		}
		p.duration(m, "timeout", field+".timeout", &h.Timeout)
		if e, ok := m["on"]; ok && !isNull(e.val) {
			h.On = p.stringList(e.val, field+".on", "[holder, standby]")
		}
		out = append(out, h)
	}
	return out
}

// stringList decodes a list of single values, such as a command and its
// arguments; example shows such a list. If an entry cannot be decoded the whole list is marked bad, so
// that the later entries are not checked at the wrong index. A null or empty
// list is nil.
func (p *parser) stringList(n *yaml.Node, field, example string) []string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list, like %s, not %s", example, kindName(n))
		return nil
	}
	var out []string
	for j, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, j)
		item = resolve(item)
		p.lines[f] = item.Line
		s, ok := p.scalar(item, f)
		if !ok {
			p.bad[field] = true
			continue
		}
		out = append(out, s)
	}
	return out
}

// peers decodes the map of node names to MAC addresses; nil if empty.
func (p *parser) peers(n *yaml.Node) map[string]net.HardwareAddr {
	m := p.mapping(n, "peers", nil)
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int { // file order, for the order of the problems
		ka, kb := m[a].key, m[b].key
		return cmp.Or(ka.Line-kb.Line, ka.Column-kb.Column)
	})
	var out map[string]net.HardwareAddr
	for _, name := range names {
		e := m[name]
		field := join("peers", name)
		s, ok := p.scalar(e.val, field)
		if !ok {
			continue
		}
		mac, err := net.ParseMAC(s)
		if err != nil {
			p.fail(e.val, field, "%q is not a MAC address", s)
			continue
		}
		if out == nil {
			out = map[string]net.HardwareAddr{}
		}
		out[name] = mac
	}
	return out
}

// parseVIP parses the text of one address. Whether it may be a VIP is
// checked later, by vipProblem.
func parseVIP(s string) (netip.Addr, string) {
	if _, err := netip.ParsePrefix(s); err == nil {
		return netip.Addr{}, fmt.Sprintf("%q: a VIP is a single address, without a prefix length", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return netip.Addr{}, fmt.Sprintf("%q is not an IPv6 address", s)
		}
		return netip.Addr{}, fmt.Sprintf("%q is not an IPv4 address", s)
	}
	return a, ""
}

// suggest returns the known key closest to an unknown one, if it is close.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
