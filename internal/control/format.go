package control

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/floatip/floatip/internal/election"
)

// Layout of FormatStatus: two spaces, the longest key ("last announce"),
// two spaces of padding, then values wrapped to fit 80 columns.
const (
	lineWidth   = 80
	keyIndent   = "  "
	keyWidth    = len(keyIndent) + len("last announce") + 2
	valueWidth  = lineWidth - keyWidth
	tabPadding  = 2
	tabMinWidth = 0
)

// FormatStatus writes s for people: a header line about the daemon, then a
// block per group, fit for 80 columns. Times are shown relative to now
// ("12s ago").
func FormatStatus(w io.Writer, s Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, tabMinWidth, 0, tabPadding, ' ', 0)
	up := "unknown"
	if !s.Started.IsZero() {
		up = human(now.Sub(s.Started))
	}
	fmt.Fprintf(tw, "floatip %s on %s (interface %s), pid %d, up %s\n",
		or(clean(s.Version), "(unknown version)"), or(clean(s.Node), "(unnamed node)"),
		or(clean(s.Interface), "?"), s.PID, up)
	if c := s.Control; c != nil && (c.Denied > 0 || c.OverLimit > 0) {
		fmt.Fprintf(tw, "control socket refused %d state-changing commands (permission), %d connections (busy)\n", c.Denied, c.OverLimit)
	}
	if a := s.Auth; a != nil {
		mode := "required"
		if !a.Require {
			mode = "not required (rollout mode)"
		}
		var fails []string
		for _, r := range sortedKeys(a.Failures) {
			if n := a.Failures[r]; n > 0 {
				fails = append(fails, fmt.Sprintf("%s %d", clean(r), n))
			}
		}
		line := fmt.Sprintf("auth %s, keys %s", mode, clean(strings.Join(a.KeyIDs, " ")))
		if len(fails) > 0 {
			line += "; rejected frames: " + strings.Join(fails, ", ")
		}
		fmt.Fprintln(tw, line)
	}
	if s.SpoofedFrames > 0 {
		fmt.Fprintf(tw, "SPOOFING: %d frames from the wire carried this node's own MAC\n", s.SpoofedFrames)
	}
	if len(s.MalformedFrames) > 0 {
		var junk []string
		for _, r := range sortedKeys(s.MalformedFrames) {
			junk = append(junk, fmt.Sprintf("%s %d", clean(r), s.MalformedFrames[r]))
		}
		fmt.Fprintf(tw, "malformed frames dropped: %s\n", strings.Join(junk, ", "))
	}
	if len(s.Groups) == 0 {
		fmt.Fprintln(tw, "\nno groups")
	}
	for _, g := range s.Groups {
		fmt.Fprintf(tw, "\ngroup %s\n", clean(g.Name))
		row := func(key string, lines ...string) {
			for i, l := range lines {
				if i > 0 {
					key = ""
				}
				fmt.Fprintf(tw, "%s%s\t%s\n", keyIndent, key, l)
			}
		}
		row("state", fmt.Sprintf("%s since %s", g.State, ago(g.Since, now)))
		row("reason", wrap(strings.Fields(clean(g.Reason)), " ", valueWidth)...)
		vips := make([]string, len(g.VIPs))
		for i, v := range g.VIPs {
			vips[i] = clean(v)
			if i < len(vips)-1 {
				vips[i] += ","
			}
		}
		row("vips", wrap(vips, " ", valueWidth)...)
		row("holder", holder(g))
		if g.Quorum != nil {
			row("quorum", quorumLines(g.Quorum, now)...)
		}
		row("priority", fmt.Sprint(g.Priority))
		if g.Held {
			row("hold", "on: this node will not claim")
		} else {
			row("hold", "off")
		}
		row("last probe", ago(g.LastProbe, now))
		row("last announce", ago(g.LastAnnounce, now))
		c := g.Counters
		row("counters", wrap([]string{
			fmt.Sprintf("claims %d", c.Claims),
			fmt.Sprintf("releases %d", c.Releases),
			fmt.Sprintf("conflicts %d", c.Conflicts),
			fmt.Sprintf("transitions %d", c.Transitions),
			fmt.Sprintf("probes unanswered %d", c.ProbesUnanswered),
		}, "  ", valueWidth)...)
		if c.ForeignClaims+c.Spoofed+c.Throttled+c.Unconfirmed+c.Ignored > 0 {
			row("hostile", wrap([]string{
				fmt.Sprintf("foreign claims %d", c.ForeignClaims),
				fmt.Sprintf("spoofed %d", c.Spoofed),
				fmt.Sprintf("throttled %d", c.Throttled),
				fmt.Sprintf("unconfirmed %d", c.Unconfirmed),
				fmt.Sprintf("ignored %d", c.Ignored),
			}, "  ", valueWidth)...)
		}
		if f := g.LastForeignClaim; f != nil {
			row("foreign", wrap(strings.Fields(fmt.Sprintf("%s claimed %s %s", clean(f.MAC), clean(f.VIP), ago(f.Time, now))), " ", valueWidth)...)
		}
		for i, ch := range g.Health {
			key := ""
			if i == 0 {
				key = "health"
			}
			result := "ok"
			if !ch.Healthy {
				result = "FAILING"
			}
			line := fmt.Sprintf("%s %s", or(clean(ch.Name), "?"), result)
			if d := clean(ch.Detail); d != "" {
				line += ": " + d
			}
			line += " (" + ago(ch.Last, now) + ")"
			row(key, wrap(strings.Fields(line), " ", valueWidth)...)
		}
		if len(g.Peers) == 0 {
			row("peers", "none heard")
		}
		for i, p := range g.Peers {
			key := ""
			if i == 0 {
				key = "peers"
			}
			row(key, wrap(peerTokens(p, now), "  ", valueWidth)...)
		}
	}
	return tw.Flush()
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// holder describes who holds the group's VIPs: by name, the MAC beside.
func holder(g Group) string {
	mac, node := clean(g.Holder), clean(g.HolderNode)
	switch {
	case g.State.HasVIPs() && mac == "":
		return "this node"
	case g.State.HasVIPs():
		return "this node (" + mac + ")"
	case mac == "" && node == "":
		return "none known"
	case mac == "":
		return node
	case node == "":
		return mac
	}
	return node + " (" + mac + ")"
}

// peerTokens describe one peer: "n2 (mac)", its priority, its role (passive:
// unhealthy or held, it will not claim) and when it was last heard.
func peerTokens(p Peer, now time.Time) []string {
	who := clean(p.MAC)
	if n := clean(p.Name); n != "" {
		who = n + " (" + who + ")"
	}
	role := p.Role.String()
	if !p.Healthy && p.Role != election.RolePassive {
		role += " (passive)"
	}
	heard := ago(p.LastHeard, now)
	if p.Lost {
		heard = "LOST, heard " + heard
	}
	return []string{who, fmt.Sprintf("prio %d", p.Priority), role, heard}
}

// ago says how long before now t was: "12s ago", or "never" for the zero
// time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return human(now.Sub(t)) + " ago"
}

// human writes d briefly with at most two units: 150ms, 12s, 5m3s, 3h25m,
// 2d4h. Negative durations (the clock moved) count as zero.
func human(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// wrap joins tokens with sep into lines of at most width characters (a
// token longer than width gets a line of its own). It returns one empty
// line for no tokens.
func wrap(tokens []string, sep string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, t := range tokens {
		if cur.Len() > 0 && cur.Len()+len(sep)+len(t) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteString(sep)
		}
		cur.WriteString(t)
	}
	return append(lines, cur.String())
}

// clean replaces control characters (tabs and newlines included) with
// spaces, so a value cannot break the table.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
