package keepalived

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options select what Convert imports.
type Options struct {
	// Interface imports only the instances on this interface. floatip runs
	// one daemon per interface; without it, instances on more than one
	// interface are an error that names them.
	Interface string
	// Source names the file in the output's first comment.
	Source string
}

// What floatip does instead of the keepalived settings it has no
// equivalent for, by keyword.
var instead = map[string]string{
	"state":                      "floatip has no initial state: every node probes at start and the highest priority claims a free VIP",
	"virtual_router_id":          "floatip needs no router id: a group is known by its VIPs",
	"advert_int":                 "floatip sends no adverts: standbys probe the holder with ARP every timing.check_interval (50ms; 10ms with profile: fast)",
	"authentication":             "floatip's frames are not authenticated (see the README's known limits)",
	"unicast_peer":               "floatip needs no peer list: nodes find each other by ARP on the segment; list them under peers: (name -> MAC) to name them in logs and fencing",
	"unicast_src_ip":             "floatip sends ARP from the interface's own MAC and needs no source address",
	"mcast_src_ip":               "floatip sends ARP from the interface's own MAC and needs no source address",
	"smtp_alert":                 "floatip sends no mail: use a notify hook",
	"notification_email":         "floatip sends no mail: use a notify hook",
	"notification_email_from":    "floatip sends no mail: use a notify hook",
	"smtp_server":                "floatip sends no mail: use a notify hook",
	"smtp_connect_timeout":       "floatip sends no mail: use a notify hook",
	"garp_master_delay":          "after a claim floatip sends timing.announce_count gratuitous ARPs, timing.announce_interval apart",
	"garp_master_repeat":         "after a claim floatip sends timing.announce_count gratuitous ARPs, timing.announce_interval apart",
	"garp_master_refresh":        "after a claim floatip sends timing.announce_count gratuitous ARPs, timing.announce_interval apart",
	"version":                    "floatip does not speak VRRP",
	"vrrp_version":               "floatip does not speak VRRP",
	"use_vmac":                   "floatip moves a VIP with gratuitous ARP from the node's own MAC, no virtual MAC",
	"virtual_routes":             "floatip manages addresses only: add routes from a notify hook",
	"virtual_rules":              "floatip manages addresses only: add rules from a notify hook",
	"static_routes":              "floatip manages VIPs only: configure static routes in the system's network configuration",
	"static_rules":               "floatip manages VIPs only: configure static rules in the system's network configuration",
	"static_ipaddress":           "floatip manages VIPs only: configure static addresses in the system's network configuration",
	"dont_track_primary":         "floatip always goes to fault when its interface loses its link",
	"track_file":                 "not converted: write an exec check that reads the file instead",
	"track_process":              "not converted: check the service with an http: or tcp: check (under floatip's systemd unit other users' processes are hidden, so pidof cannot see them)",
	"track_bfd":                  "floatip has no BFD: write an exec check instead",
	"router_id":                  "",
	"virtual_server":             "LVS load balancing is outside floatip: keep keepalived (without vrrp_instance) or ipvsadm for it",
	"virtual_server_group":       "LVS load balancing is outside floatip: keep keepalived (without vrrp_instance) or ipvsadm for it",
	"lvs_sync_daemon_interface":  "LVS is outside floatip",
	"enable_script_security":     "floatip runs checks and hooks as the daemon's user (the systemd unit: a dynamic user with CAP_NET_ADMIN and CAP_NET_RAW)",
	"script_user":                "floatip runs checks and hooks as the daemon's user (the systemd unit: a dynamic user with CAP_NET_ADMIN and CAP_NET_RAW)",
	"net_namespace":              "run floatip inside the namespace instead (ip netns exec NAME floatip run ...)",
	"notify_master_rx_lower_pri": "floatip has no such event",
	"notify_deleted":             "floatip has no such event",
	"debug":                      "use --log-level debug",
	"native_ipv6":                "floatip floats IPv6 VIPs over Neighbor Discovery in any group, beside IPv4 ones, with no option",
	"vrrp_script":                "",
}

// insteadOf returns what floatip does instead of key.
func insteadOf(key string) string {
	if s, ok := instead[key]; ok && s != "" {
		return s
	}
	if strings.Contains(key, "garp") || strings.Contains(key, "gna") {
		return instead["garp_master_delay"]
	}
	return "no floatip equivalent: ignored"
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// safeIfName is what an interface name may hold to go into a shell command.
var safeIfName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

// sanitize makes a keepalived name a valid floatip group or check name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	if len(b) == 0 {
		return "group"
	}
	return string(b)
}

type script struct {
	node     *Node
	name     string
	script   string
	interval time.Duration
	timeout  time.Duration
	fall     int
	rise     int
	weight   int
	notes    []string
}

type instance struct {
	node      *Node
	name      string
	iface     string
	priority  int
	preempt   bool
	delay     time.Duration
	vips      []*Node // lines of virtual_ipaddress and virtual_ipaddress_excluded
	scripts   []*Node // track_script entries
	links     []*Node // track_interface entries
	notify    []*Node
	notes     []string
	syncGroup *syncGroup
}

type syncGroup struct {
	node    *Node
	name    string
	members []string
	notify  []*Node
	scripts []*Node
	notes   []string
	done    bool
}

type outCheck struct {
	name     string
	command  []string
	interval time.Duration
	timeout  time.Duration
	fall     int
	rise     int
	notes    []string
}

type outGroup struct {
	name     string
	notes    []string
	vips     []string
	priority int
	checks   []outCheck
}

type outHook struct {
	notes   []string
	command []string // set by hookCommand
	on      []string

	// The keepalived statement it comes from.
	line  string // the script with its arguments
	key   string // notify_master, ..., notify
	kind  string // INSTANCE or GROUP: what keepalived's notify passes first
	name  string // the instance or sync group
	prio  int    // the instance's priority (notify passes it)
	group string // the floatip group
	where string
}

type converter struct {
	opts      Options
	notes     []string // top-level comments
	scripts   map[string]*script
	instances []*instance
	syncs     map[string]*syncGroup
	syncOrder []*syncGroup
	nodeName  string
	groups    []*outGroup
	hooks     []outHook
	seenVIP   map[netip.Addr]string
	skipped   []string
	imported  map[string]bool // instances in the output
}

// Convert turns keepalived's statements into a floatip configuration file,
// commented: every keepalived setting without an equivalent is listed with
// what floatip does instead. It returns an error when there is nothing to
// import or the instances need more than one floatip daemon (interfaces).
func Convert(nodes []*Node, opts Options) ([]byte, error) {
	c := &converter{opts: opts, scripts: map[string]*script{}, syncs: map[string]*syncGroup{}, seenVIP: map[netip.Addr]string{}, imported: map[string]bool{}}
	if err := c.read(nodes); err != nil {
		return nil, err
	}
	iface, err := c.pickInterface()
	if err != nil {
		return nil, err
	}
	c.build(iface)
	if len(c.groups) == 0 {
		return nil, c.nothing("no vrrp_instance with an IPv4 VIP on interface " + iface)
	}
	return c.render(iface), nil
}

// note is "keepalived KEY (WHERE): MSG"; comment merges the notes that
// differ only in WHERE.
// nothing is the error for a file with nothing to import, listing what it
// has instead.
func (c *converter) nothing(why string) error {
	var lvs []string
	for _, n := range merge(append(c.notes, c.skipped...)) {
		if strings.Contains(n, "LVS") || strings.Contains(n, "not imported") {
			lvs = append(lvs, n)
		}
	}
	if len(lvs) == 0 {
		return fmt.Errorf("nothing to import: %s", why)
	}
	return fmt.Errorf("nothing to import: %s; %s", why, strings.Join(lvs, "; "))
}

func (c *converter) note(n *Node, key, msg string) string {
	return fmt.Sprintf("keepalived %s (%s): %s", key, n.Where(), msg)
}

var notePattern = regexp.MustCompile(`^(keepalived [^(]*) \(([^)]*)\): (.*)$`)

// merge joins the notes that say the same about the same key in several
// places, keeping the order of first appearance.
func merge(notes []string) []string {
	type entry struct {
		head, msg string
		where     []string
	}
	var order []*entry
	by := map[string]*entry{}
	for _, n := range notes {
		m := notePattern.FindStringSubmatch(n)
		if m == nil {
			order = append(order, &entry{head: n})
			continue
		}
		k := m[1] + "\x00" + m[3]
		if e := by[k]; e != nil {
			e.where = append(e.where, m[2])
			continue
		}
		e := &entry{head: m[1], msg: m[3], where: []string{m[2]}}
		by[k] = e
		order = append(order, e)
	}
	out := make([]string, len(order))
	for i, e := range order {
		if e.where == nil {
			out[i] = e.head
			continue
		}
		out[i] = fmt.Sprintf("%s (%s): %s", e.head, joinWhere(e.where), e.msg)
	}
	return out
}

func (c *converter) read(nodes []*Node) error {
	for _, n := range nodes {
		switch n.Key {
		case "global_defs":
			for _, d := range n.Children {
				if d.Key == "router_id" && len(d.Args) == 1 {
					c.nodeName = d.Args[0]
					continue
				}
				c.notes = append(c.notes, c.note(d, d.Key, insteadOf(d.Key)))
			}
		case "vrrp_script":
			s, err := c.readScript(n)
			if err != nil {
				return err
			}
			c.scripts[s.name] = s
		case "vrrp_instance":
			in, err := c.readInstance(n)
			if err != nil {
				return err
			}
			c.instances = append(c.instances, in)
		case "vrrp_sync_group":
			if len(n.Args) != 1 {
				return fmt.Errorf("%s: vrrp_sync_group needs one name", n.At())
			}
			g := &syncGroup{node: n, name: n.Args[0]}
			for _, d := range n.Children {
				switch d.Key {
				case "group":
					for _, m := range d.Children {
						g.members = append(g.members, m.Words()...)
					}
				case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
					g.notify = append(g.notify, d)
				case "track_script":
					g.scripts = append(g.scripts, d.Children...)
				case "global_tracking", "sync_group_tracking_weight":
					g.notes = append(g.notes, c.note(d, d.Key, "a floatip group's checks apply to the whole group"))
				default:
					g.notes = append(g.notes, c.note(d, d.Key, insteadOf(d.Key)))
				}
			}
			if _, dup := c.syncs[g.name]; dup {
				return fmt.Errorf("%s: vrrp_sync_group %s is defined twice", n.At(), g.name)
			}
			c.syncs[g.name] = g
			c.syncOrder = append(c.syncOrder, g)
		default:
			c.notes = append(c.notes, c.note(n, strings.Join(n.Words(), " "), insteadOf(n.Key)))
		}
	}
	// Each instance belongs to the first sync group naming it.
	byName := map[string]*instance{}
	for _, in := range c.instances {
		if _, dup := byName[in.name]; dup {
			return fmt.Errorf("%s: vrrp_instance %s is defined twice", in.node.At(), in.name)
		}
		byName[in.name] = in
	}
	for _, g := range c.syncOrder {
		var kept []string
		for _, m := range g.members {
			in := byName[m]
			switch {
			case in == nil:
				g.notes = append(g.notes, c.note(g.node, "vrrp_sync_group", fmt.Sprintf("member %s is not a vrrp_instance of this file: ignored", m)))
			case in.syncGroup != nil:
				g.notes = append(g.notes, c.note(g.node, "vrrp_sync_group", fmt.Sprintf("member %s is already in sync group %s: ignored here", m, in.syncGroup.name)))
			default:
				in.syncGroup = g
				kept = append(kept, m)
			}
		}
		g.members = kept
	}
	return nil
}

func seconds(n *Node) (time.Duration, error) {
	if len(n.Args) < 1 {
		return 0, fmt.Errorf("%s: %s needs a number of seconds", n.At(), n.Key)
	}
	f, err := strconv.ParseFloat(n.Args[0], 64)
	if err != nil || f < 0 || f > 1e6 {
		return 0, fmt.Errorf("%s: %s: %q is not a number of seconds", n.At(), n.Key, n.Args[0])
	}
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond), nil
}

func integer(n *Node, lo, hi int) (int, error) {
	if len(n.Args) < 1 {
		return 0, fmt.Errorf("%s: %s needs a number", n.At(), n.Key)
	}
	v, err := strconv.Atoi(n.Args[0])
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s: %s: %q is not a number in %d..%d", n.At(), n.Key, n.Args[0], lo, hi)
	}
	return v, nil
}

func (c *converter) readScript(n *Node) (*script, error) {
	if len(n.Args) != 1 {
		return nil, fmt.Errorf("%s: vrrp_script needs one name", n.At())
	}
	// keepalived's defaults: every second, one failure makes it fail, one
	// success makes it good again.
	s := &script{node: n, name: n.Args[0], interval: time.Second, fall: 1, rise: 1}
	var err error
	timeoutSet := false
	for _, d := range n.Children {
		switch d.Key {
		case "script":
			if len(d.Args) < 1 {
				return nil, fmt.Errorf("%s: script needs a command", d.At())
			}
			s.script = d.Args[0]
			if len(d.Args) > 1 {
				// Unquoted: keepalived takes the words as the command.
				s.script = strings.Join(d.Args, " ")
			}
		case "interval":
			s.interval, err = seconds(d)
		case "timeout":
			s.timeout, err = seconds(d)
			timeoutSet = true
		case "fall":
			s.fall, err = integer(d, 1, 1<<30)
		case "rise":
			s.rise, err = integer(d, 1, 1<<30)
		case "weight":
			s.weight, err = integer(d, -254, 254)
		case "user":
			s.notes = append(s.notes, c.note(d, d.Key, insteadOf("script_user")))
		case "init_fail":
			s.notes = append(s.notes, c.note(d, d.Key, "a floatip check starts unknown and the node counts as healthy until fall failures"))
		default:
			s.notes = append(s.notes, c.note(d, d.Key, insteadOf(d.Key)))
		}
		if err != nil {
			return nil, err
		}
	}
	if s.script == "" {
		return nil, fmt.Errorf("%s: vrrp_script %s has no script", n.At(), s.name)
	}
	if s.interval < 10*time.Millisecond {
		s.notes = append(s.notes, c.note(n, "interval", fmt.Sprintf("%v is below floatip's minimum: 10ms", s.interval)))
		s.interval = 10 * time.Millisecond
	}
	if !timeoutSet || s.timeout <= 0 {
		s.timeout = s.interval
	} else if s.timeout > s.interval {
		s.notes = append(s.notes, c.note(n, "timeout", fmt.Sprintf("%v: a floatip check's timeout is at most its interval (%v), so it is the interval", s.timeout, s.interval)))
		s.timeout = s.interval
	}
	if s.fall > 100 {
		s.notes = append(s.notes, c.note(n, "fall", fmt.Sprintf("%d: floatip allows at most 100", s.fall)))
		s.fall = 100
	}
	if s.rise > 100 {
		s.notes = append(s.notes, c.note(n, "rise", fmt.Sprintf("%d: floatip allows at most 100", s.rise)))
		s.rise = 100
	}
	return s, nil
}

func (c *converter) readInstance(n *Node) (*instance, error) {
	if len(n.Args) != 1 {
		return nil, fmt.Errorf("%s: vrrp_instance needs one name", n.At())
	}
	in := &instance{node: n, name: n.Args[0], priority: 100, preempt: true}
	var err error
	for _, d := range n.Children {
		switch d.Key {
		case "interface":
			if len(d.Args) != 1 {
				return nil, fmt.Errorf("%s: interface needs one name", d.At())
			}
			in.iface = d.Args[0]
		case "priority":
			in.priority, err = integer(d, 0, 255)
			if err == nil && (in.priority < 1 || in.priority > 254) {
				p := min(max(in.priority, 1), 254)
				in.notes = append(in.notes, c.note(d, "priority", fmt.Sprintf("%d: floatip's priorities are 1..254, so %d", in.priority, p)))
				in.priority = p
			}
		case "nopreempt":
			in.preempt = false
		case "preempt":
			in.preempt = true
		case "preempt_delay":
			in.delay, err = seconds(d)
		case "virtual_ipaddress", "virtual_ipaddress_excluded":
			in.vips = append(in.vips, d.Children...)
		case "track_script":
			in.scripts = append(in.scripts, d.Children...)
		case "track_interface":
			in.links = append(in.links, d.Children...)
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			in.notify = append(in.notify, d)
		case "state", "virtual_router_id", "advert_int", "authentication", "smtp_alert", "unicast_peer",
			"unicast_src_ip", "mcast_src_ip", "version", "garp_master_delay", "garp_master_repeat", "garp_master_refresh":
			// Said once for the whole file: most instances have them.
			c.notes = append(c.notes, c.note(d, d.Key, insteadOf(d.Key)))
		default:
			in.notes = append(in.notes, c.note(d, d.Key, insteadOf(d.Key)))
		}
		if err != nil {
			return nil, err
		}
	}
	if in.iface == "" {
		return nil, fmt.Errorf("%s: vrrp_instance %s has no interface", n.At(), in.name)
	}
	return in, nil
}

// pickInterface returns the one interface the output is for.
func (c *converter) pickInterface() (string, error) {
	if c.opts.Interface != "" {
		return c.opts.Interface, nil
	}
	var order []string
	by := map[string][]string{}
	for _, in := range c.instances {
		if by[in.iface] == nil {
			order = append(order, in.iface)
		}
		by[in.iface] = append(by[in.iface], in.name)
	}
	switch len(order) {
	case 0:
		return "", c.nothing("no vrrp_instance")
	case 1:
		return order[0], nil
	}
	var parts []string
	for _, i := range order {
		parts = append(parts, fmt.Sprintf("%s (%s)", i, strings.Join(by[i], ", ")))
	}
	return "", fmt.Errorf("instances on %d interfaces: %s; floatip runs one daemon per interface: import each with --interface IF", len(order), strings.Join(parts, ", "))
}

func (c *converter) build(iface string) {
	for _, in := range c.instances {
		if in.iface != iface {
			c.skipped = append(c.skipped, fmt.Sprintf("vrrp_instance %s (%s) is on interface %s: not imported; a second floatip on %s takes it (floatip import keepalived --interface %s)", in.name, in.node.Where(), in.iface, in.iface, in.iface))
			continue
		}
		if g := in.syncGroup; g != nil {
			if g.done {
				continue
			}
			g.done = true
			var members []*instance
			for _, m := range g.members {
				for _, x := range c.instances {
					if x.name == m {
						if x.iface == iface {
							members = append(members, x)
						}
						break
					}
				}
			}
			c.addGroup(g.name, g, members)
			continue
		}
		c.addGroup(in.name, nil, []*instance{in})
	}
}

func (c *converter) addGroup(name string, sg *syncGroup, members []*instance) {
	g := &outGroup{name: sanitize(name)}
	if g.name != name {
		g.notes = append(g.notes, fmt.Sprintf("keepalived name %q is not a valid floatip group name (1..32 of a-z A-Z 0-9 _ . -)", name))
	}
	var names []string
	for _, in := range members {
		names = append(names, in.name)
	}
	if sg != nil {
		g.notes = append(g.notes, fmt.Sprintf("vrrp_sync_group %s (%s): its instances %s are one floatip group, whose VIPs move together", sg.name, sg.node.Where(), strings.Join(names, ", ")))
		g.notes = append(g.notes, sg.notes...)
		for _, m := range sg.members {
			if !slices.Contains(names, m) {
				g.notes = append(g.notes, fmt.Sprintf("vrrp_sync_group %s: member %s is on another interface and no longer moves with this group", sg.name, m))
			}
		}
	}
	prios := map[int]bool{}
	for _, in := range members {
		prios[in.priority] = true
		g.priority = max(g.priority, in.priority)
	}
	if len(prios) > 1 {
		g.notes = append(g.notes, fmt.Sprintf("the instances' priorities differ; the group takes the highest, %d", g.priority))
	}
	var prefixNoted bool
	for _, in := range members {
		g.notes = append(g.notes, in.notes...)
		for _, v := range in.vips {
			c.vip(g, in, v, &prefixNoted)
		}
	}
	checks := map[string]bool{}
	addCheck := func(k outCheck) {
		if checks[k.name] {
			return
		}
		checks[k.name] = true
		g.checks = append(g.checks, k)
	}
	var tracks []*Node
	if sg != nil {
		tracks = append(tracks, sg.scripts...)
	}
	for _, in := range members {
		tracks = append(tracks, in.scripts...)
	}
	for _, t := range tracks {
		if k, ok := c.scriptCheck(g, t); ok {
			addCheck(k)
		}
	}
	for _, in := range members {
		for _, t := range in.links {
			if k, ok := c.linkCheck(g, in, t); ok {
				addCheck(k)
			}
		}
	}
	if len(g.vips) == 0 {
		c.skipped = append(c.skipped, fmt.Sprintf("vrrp_instance %s not imported: no VIP to move", strings.Join(names, ", ")))
		c.skipped = append(c.skipped, g.notes...)
		return
	}
	c.groups = append(c.groups, g)
	for _, in := range members {
		c.imported[in.name] = true
	}
	// Hooks: the sync group's, then each instance's.
	var notifies []struct {
		n    *Node
		kind string
		name string
		prio int
	}
	if sg != nil {
		for _, n := range sg.notify {
			notifies = append(notifies, struct {
				n    *Node
				kind string
				name string
				prio int
			}{n, "GROUP", sg.name, 0})
		}
	}
	for _, in := range members {
		for _, n := range in.notify {
			notifies = append(notifies, struct {
				n    *Node
				kind string
				name string
				prio int
			}{n, "INSTANCE", in.name, in.priority})
		}
	}
	for _, x := range notifies {
		c.hook(g, x.n, x.kind, x.name, x.prio)
	}
}

func (c *converter) vip(g *outGroup, in *instance, v *Node, prefixNoted *bool) {
	words := v.Words()
	addrText := words[0]
	var addr netip.Addr
	var bits = -1
	if p, err := netip.ParsePrefix(addrText); err == nil {
		addr, bits = p.Addr(), p.Bits()
	} else if a, err := netip.ParseAddr(addrText); err == nil {
		addr = a
	} else {
		g.notes = append(g.notes, c.note(v, addrText, "not an IP address: not imported"))
		return
	}
	addr = addr.Unmap()
	hostBits := 32
	if addr.Is6() {
		hostBits = 128
	}
	if why := badVIP(addr); why != "" {
		g.notes = append(g.notes, c.note(v, addrText, why+", which floatip does not take as a VIP: not imported"))
		return
	}
	for i := 1; i < len(words); i++ {
		switch words[i] {
		case "dev":
			if i+1 < len(words) && words[i+1] != in.iface {
				g.notes = append(g.notes, c.note(v, addrText, fmt.Sprintf("is on dev %s, and floatip puts every VIP on its one interface (%s): not imported; run a floatip on %s for it", words[i+1], in.iface, words[i+1])))
				return
			}
			i++
		case "label":
			g.notes = append(g.notes, c.note(v, "label", "floatip adds VIPs without a label"))
			i++
		case "brd", "broadcast", "scope", "preferred_lft":
			g.notes = append(g.notes, c.note(v, words[i], "floatip adds each VIP as /32 (IPv6: /128, preferred lifetime 0) with its own lifetime"))
			i++
		default:
			g.notes = append(g.notes, c.note(v, words[i], insteadOf(words[i])))
		}
	}
	if bits >= 0 && bits != hostBits && !*prefixNoted {
		*prefixNoted = true
		g.notes = append(g.notes, c.note(v, addrText, fmt.Sprintf("floatip adds each VIP as /%d (the interface's own address gives the subnet route)", hostBits)))
	}
	if first, dup := c.seenVIP[addr]; dup {
		g.notes = append(g.notes, c.note(v, addrText, fmt.Sprintf("already a VIP of group %s: listed once", first)))
		return
	}
	c.seenVIP[addr] = g.name
	g.vips = append(g.vips, addr.String())
}

// badVIP says why floatip's check rejects a VIP, "" if it does not (the
// same rules as the configuration check).
func badVIP(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsMulticast():
		return "a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.Zone() != "":
		return "an address with a zone"
	}
	return ""
}

// command makes a floatip command from a keepalived script line: the words
// themselves when the program is an absolute path and the line needs no
// shell, else /bin/sh -c with the line (floatip needs an absolute program;
// keepalived searched PATH and ran shell syntax through /bin/sh).
func command(line string) ([]string, bool) {
	fields := strings.Fields(line)
	if len(fields) > 0 && strings.HasPrefix(fields[0], "/") && !strings.ContainsAny(line, "<>|&;$`'\"\\*?()[]{}~=") {
		return fields, false
	}
	return []string{"/bin/sh", "-c", line}, true
}

// looksForProcess reports whether a script checks for a process by name or
// pid (killall -0, pidof, pgrep, kill -0), which cannot see other users'
// processes under the unit's sandbox.
func looksForProcess(script string) bool {
	fields := strings.Fields(script)
	if len(fields) == 0 {
		return false
	}
	switch path.Base(strings.Trim(fields[0], `"'`)) {
	case "killall", "pidof", "pgrep":
		return true
	case "kill":
		return len(fields) > 1 && fields[1] == "-0"
	}
	return false
}

func (c *converter) scriptCheck(g *outGroup, t *Node) (outCheck, bool) {
	s := c.scripts[t.Key]
	if s == nil {
		g.notes = append(g.notes, c.note(t, "track_script "+t.Key, "no vrrp_script of that name: ignored"))
		return outCheck{}, false
	}
	k := outCheck{name: sanitize(s.name), interval: s.interval, timeout: s.timeout, fall: s.fall, rise: s.rise}
	k.notes = append(k.notes, s.notes...)
	cmd, shell := command(s.script)
	k.command = cmd
	if shell {
		k.notes = append(k.notes, fmt.Sprintf("vrrp_script %s (%s): run through /bin/sh -c, as floatip needs an absolute program path", s.name, s.node.Where()))
	}
	if looksForProcess(s.script) {
		k.notes = append(k.notes, fmt.Sprintf("vrrp_script %s (%s): under floatip's systemd unit (a dynamic user, ProtectProc=invisible) another user's processes are hidden, so this check always fails there: check the service with http: or tcp: instead", s.name, s.node.Where()))
	}
	weight := s.weight
	for i := 0; i < len(t.Args); i++ {
		switch t.Args[i] {
		case "weight":
			if i+1 < len(t.Args) {
				if w, err := strconv.Atoi(t.Args[i+1]); err == nil {
					weight = w
				}
				i++
			}
		case "reverse":
			k.notes = append(k.notes, c.note(t, "reverse", "not converted: negate the command yourself"))
		}
	}
	if weight != 0 {
		k.notes = append(k.notes, fmt.Sprintf("keepalived weight %d (%s): floatip has no priority weights; a failing check makes the node unhealthy and it hands its VIPs to a healthy standby", weight, t.Where()))
	}
	return k, true
}

func (c *converter) linkCheck(g *outGroup, in *instance, t *Node) (outCheck, bool) {
	ifname := t.Key
	if ifname == in.iface {
		g.notes = append(g.notes, c.note(t, "track_interface "+ifname, "floatip goes to fault by itself when its interface loses its link"))
		return outCheck{}, false
	}
	if !safeIfName.MatchString(ifname) {
		g.notes = append(g.notes, c.note(t, "track_interface "+ifname, "not an interface name: ignored"))
		return outCheck{}, false
	}
	// keepalived reacts to netlink link events at once; the check reads the
	// carrier every second and fails on the first miss.
	k := outCheck{
		name:     sanitize("link-" + ifname),
		command:  []string{"/bin/sh", "-c", fmt.Sprintf(`read c < /sys/class/net/%s/carrier && [ "$c" = 1 ]`, ifname)},
		interval: time.Second, timeout: time.Second, fall: 1, rise: 1,
	}
	k.notes = append(k.notes, fmt.Sprintf("track_interface %s (%s): the link's carrier, read every second", ifname, t.Where()))
	for i := 0; i+1 < len(t.Args); i++ {
		if t.Args[i] == "weight" {
			k.notes = append(k.notes, fmt.Sprintf("keepalived weight %s (%s): floatip has no priority weights; a down link makes the node unhealthy and it hands its VIPs to a healthy standby", t.Args[i+1], t.Where()))
		}
	}
	return k, true
}

var notifyStates = map[string][]string{
	"notify_master": {"holder"},
	"notify_backup": {"standby"},
	"notify_fault":  {"fault"},
	"notify_stop":   {"stopping"},
	"notify":        {"holder", "standby", "fault", "stopping"},
}

// hook converts a notify statement of a group's instance or sync group.
// Every floatip hook runs for every group, so with more than one group the
// command checks FLOATIP_GROUP first.
func (c *converter) hook(g *outGroup, n *Node, kind, name string, prio int) {
	if len(n.Args) < 1 {
		g.notes = append(g.notes, c.note(n, n.Key, "no script: ignored"))
		return
	}
	h := outHook{on: notifyStates[n.Key], line: n.Args[0], key: n.Key, kind: kind, name: name, prio: prio, group: g.name, where: n.Where()}
	if len(n.Args) > 1 {
		h.notes = append(h.notes, c.note(n, n.Key, fmt.Sprintf("runs as the daemon's user, not %s", strings.Join(n.Args[1:], " "))))
	}
	c.hooks = append(c.hooks, h) // its command is made by render, once the number of groups is known
}

// hookCommand makes the command of a converted notify statement; with more
// than one group (multi) it runs only for its own.
func hookCommand(h *outHook, multi bool) {
	line, kind, name, prio, key, group, where := h.line, h.kind, h.name, strconv.Itoa(h.prio), h.key, h.group, h.where
	filter := ""
	if multi {
		filter = fmt.Sprintf(`[ "$FLOATIP_GROUP" = %s ] || exit 0; `, group)
	}
	if key == "notify" {
		args := kind + " " + name + ` "$s"`
		if kind == "INSTANCE" {
			args += " " + prio
		}
		h.command = []string{"/bin/sh", "-c", filter + `case "$FLOATIP_NEW_STATE" in holder) s=MASTER;; standby) s=BACKUP;; fault) s=FAULT;; *) s=STOP;; esac; exec ` + line + " " + args}
		h.notes = append(h.notes, fmt.Sprintf("keepalived %s (%s) of %s: called as keepalived did, with %s NAME STATE%s", key, where, name, kind, map[bool]string{true: " PRIORITY", false: ""}[kind == "INSTANCE"]))
		return
	}
	cmd, shell := command(line)
	if shell || multi {
		h.command = []string{"/bin/sh", "-c", filter + "exec " + line}
		h.notes = append(h.notes, fmt.Sprintf("keepalived %s (%s) of %s: through /bin/sh -c%s, with keepalived's arguments", key, where, name, map[bool]string{true: ", for group " + group + " only", false: ""}[multi]))
		return
	}
	h.command = cmd
	h.notes = append(h.notes, fmt.Sprintf("keepalived %s (%s) of %s: floatip appends NEW_STATE GROUP VIPS OLD_STATE to the arguments (and sets FLOATIP_* variables)", key, where, name))
}

// quote makes s a YAML double-quoted scalar (a JSON string is one).
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func flow(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// joinWhere joins "file:line" places, naming each file once.
func joinWhere(where []string) string {
	var b strings.Builder
	file := ""
	for i, w := range where {
		if i > 0 {
			b.WriteString(", ")
		}
		f, line, ok := strings.Cut(w, ":")
		if ok && f == file {
			b.WriteString(line)
			continue
		}
		file = f
		b.WriteString(w)
	}
	return b.String()
}

// comment writes the notes as comments, merged and wrapped at 100 columns.
func comment(b *strings.Builder, indent string, notes []string) {
	for _, n := range merge(notes) {
		for i, l := range wrap(n, 100-len(indent)-2) {
			if i > 0 {
				l = "  " + l
			}
			fmt.Fprintf(b, "%s# %s\n", indent, l)
		}
	}
}

// wrap breaks s into lines of at most width columns at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

func (c *converter) render(iface string) []byte {
	var b strings.Builder
	src := c.opts.Source
	if src == "" {
		src = "keepalived.conf"
	}
	fmt.Fprintf(&b, "# floatip configuration imported from %s by floatip import keepalived.\n", src)
	b.WriteString("# Review it: each comment names a keepalived setting and what floatip does instead.\n")
	b.WriteString("# Check it with: floatip check --config FILE\n")
	if len(c.notes) > 0 || len(c.skipped) > 0 {
		b.WriteString("#\n")
		comment(&b, "", c.notes)
		comment(&b, "", c.skipped)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "interface: %s\n", quote(iface))
	if c.nodeName != "" {
		name := c.nodeName
		if !validName.MatchString(name) {
			name = sanitize(name)
		}
		fmt.Fprintf(&b, "node_name: %s   # keepalived global_defs router_id\n", quote(name))
	}
	fmt.Fprintf(&b, "priority: %d\n", c.groups[0].priority)

	// Preemption is a node setting in floatip.
	var pre, nopre []string
	var delay time.Duration
	for _, in := range c.instances {
		if !c.imported[in.name] {
			continue
		}
		if in.preempt {
			pre = append(pre, in.name)
			delay = max(delay, in.delay)
		} else {
			nopre = append(nopre, in.name)
		}
	}
	switch {
	case len(nopre) == 0:
		b.WriteString("# keepalived preempts unless nopreempt is set, and floatip does not unless preempt is true:\n")
		b.WriteString("# preempt: true keeps keepalived's behaviour (a better node takes the VIPs back after preempt_delay).\n")
		b.WriteString("preempt: true\n")
		fmt.Fprintf(&b, "preempt_delay: %s\n", delay)
	case len(pre) == 0:
		b.WriteString("# keepalived nopreempt: floatip does not preempt by default either (the holder keeps the VIPs).\n")
		b.WriteString("preempt: false\n")
	default:
		fmt.Fprintf(&b, "# keepalived preempted for %s but not for %s (nopreempt); floatip's preempt is one\n", strings.Join(pre, ", "), strings.Join(nopre, ", "))
		b.WriteString("# setting for the node: off here, set preempt: true to have every group preempt.\n")
		b.WriteString("preempt: false\n")
		if delay > 0 {
			fmt.Fprintf(&b, "# preempt_delay: %s   # keepalived's preempt_delay of %s, for preempt: true\n", delay, strings.Join(pre, ", "))
		}
	}

	b.WriteString("\ngroups:\n")
	for _, g := range c.groups {
		fmt.Fprintf(&b, "  - name: %s\n", quote(g.name))
		comment(&b, "    ", g.notes)
		fmt.Fprintf(&b, "    vips: %s\n", flow(g.vips))
		fmt.Fprintf(&b, "    priority: %d\n", g.priority)
		if len(g.checks) > 0 {
			b.WriteString("    checks:\n")
			for _, k := range g.checks {
				fmt.Fprintf(&b, "      - name: %s\n", quote(k.name))
				comment(&b, "        ", k.notes)
				fmt.Fprintf(&b, "        exec: {command: %s}\n", flow(k.command))
				fmt.Fprintf(&b, "        interval: %s\n        timeout: %s\n        fall: %d\n        rise: %d\n", k.interval, k.timeout, k.fall, k.rise)
			}
		}
	}
	if len(c.hooks) > 0 {
		b.WriteString("\nnotify:\n")
		for i := range c.hooks {
			h := &c.hooks[i]
			hookCommand(h, len(c.groups) > 1)
			b.WriteString("  -\n")
			comment(&b, "    ", h.notes)
			fmt.Fprintf(&b, "    command: %s\n    on: %s\n", flow(h.command), flow(h.on))
		}
	}
	return []byte(b.String())
}
