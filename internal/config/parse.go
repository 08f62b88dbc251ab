package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	topKeys    = []string{"interface", "priority", "node_name", "profile", "on_foreign_claim", "log_format", "log_level", "timing", "vips", "groups", "control", "metrics"}
	timingKeys = []string{"check_interval", "misses", "claim_slot", "announce_count", "announce_interval", "lifetime", "renew_interval", "beacon_interval"}
	groupKeys  = []string{"name", "vips", "priority"}
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
// reports unknown and duplicate keys and records each key's line.
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
		if !slices.Contains(known, k.Value) {
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
	if e, ok := m["control"]; ok && !isNull(e.val) {
		cm := p.mapping(e.val, "control", []string{"socket", "group"})
		p.str(cm, "socket", "control.socket", &c.Control.Socket)
		p.str(cm, "group", "control.group", &c.Control.Group)
	}
	if e, ok := m["metrics"]; ok && !isNull(e.val) {
		mm := p.mapping(e.val, "metrics", []string{"listen"})
		p.str(mm, "listen", "metrics.listen", &c.Metrics.Listen)
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
		c.Groups = []Group{{Name: DefaultGroup, VIPs: p.vips(v.val, "groups[0].vips"), Priority: c.Priority}}
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

// parseVIP parses the text of one address. Whether it may be a VIP is
// checked later, by vipProblem.
func parseVIP(s string) (netip.Addr, string) {
	if _, err := netip.ParsePrefix(s); err == nil {
		return netip.Addr{}, fmt.Sprintf("%q: a VIP is a single address, without a prefix length", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
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
