package config

import (
	"fmt"
	"slices"
)

// Overrides are settings from the command line. A zero value (nil for
// Priority) means the flag was not given.
type Overrides struct {
	Interface string
	VIPs      []string
	Priority  *int // nil: not given; a given 0 is refused like any value outside 1..254
	Profile   string
	LogFormat string
	LogLevel  string
	// EtcdEndpoints sets the top-level quorum:'s etcd endpoints (making
	// one with the defaults when the file has none); every group that
	// used the top-level quorum (or none) uses the new one.
	EtcdEndpoints []string
}

// Apply applies command-line overrides on top of the configuration. It
// checks each given value and, if any is invalid, returns a *Problems naming
// the flags and leaves c unchanged. Apply does not check the combination
// (call Validate for that).
//
// Flags win over the file, but the file's more specific settings survive
// where they can:
//   - --priority changes the node priority and the priority of every group
//     that had the node's priority (a group with its own priority keeps it);
//   - --profile switches the timing preset; each timing value that differed
//     from the old preset (set explicitly in the file) is kept;
//   - --vip replaces all groups with one group named "default", whose
//     checks are the top-level checks.
func (c *Config) Apply(o Overrides) error {
	n := *c
	n.Groups = slices.Clone(c.Groups)
	var probs Problems
	add := func(flag, format string, args ...any) {
		probs = append(probs, Problem{Field: flag, Msg: fmt.Sprintf(format, args...)})
	}

	if o.Interface != "" {
		if msg := interfaceProblem(o.Interface); msg != "" {
			add("--interface", "%s", msg)
		}
		n.Interface = o.Interface
	}
	if o.Priority != nil {
		p := *o.Priority
		if msg := priorityProblem(p); msg != "" {
			add("--priority", "%s", msg)
		}
		for i := range n.Groups {
			if n.Groups[i].Priority == n.Priority {
				n.Groups[i].Priority = p
			}
		}
		n.Priority = p
	}
	if o.Profile != "" {
		if t, err := Preset(o.Profile); err != nil {
			add("--profile", "%s", oneOfProblem(o.Profile, profiles))
		} else {
			if old, err := Preset(n.Profile); err == nil {
				t = rebase(n.Timing, old, t)
			}
			n.Timing = t
			n.Profile = o.Profile
		}
	}
	if o.LogFormat != "" {
		if msg := oneOfProblem(o.LogFormat, logFormats); msg != "" {
			add("--log-format", "%s", msg)
		}
		n.LogFormat = o.LogFormat
	}
	if o.LogLevel != "" {
		if msg := oneOfProblem(o.LogLevel, logLevels); msg != "" {
			add("--log-level", "%s", msg)
		}
		n.LogLevel = o.LogLevel
	}
	if len(o.VIPs) > 0 {
		g := Group{Name: DefaultGroup, Priority: n.Priority, Checks: slices.Clone(n.Checks), Quorum: n.Quorum}
		for _, s := range o.VIPs {
			a, msg := parseVIP(s)
			if msg == "" {
				msg = vipProblem(a)
			}
			switch {
			case msg != "":
				add("--vip", "%s", msg)
			case slices.Contains(g.VIPs, a):
				add("--vip", "%s is given twice", a)
			default:
				g.VIPs = append(g.VIPs, a)
			}
		}
		n.Groups = []Group{g}
	}

	if len(o.EtcdEndpoints) > 0 {
		applyEtcdEndpoints(&n, o.EtcdEndpoints, add)
	}

	if len(probs) > 0 {
		return &probs
	}
	*c = n
	return nil
}

// rebase moves timing t from preset from to preset to, keeping each value
// that differs from the old preset.
func rebase(t, from, to Timing) Timing {
	return Timing{
		CheckInterval:    pick(t.CheckInterval, from.CheckInterval, to.CheckInterval),
		ClaimSlot:        pick(t.ClaimSlot, from.ClaimSlot, to.ClaimSlot),
		AnnounceInterval: pick(t.AnnounceInterval, from.AnnounceInterval, to.AnnounceInterval),
		Lifetime:         pick(t.Lifetime, from.Lifetime, to.Lifetime),
		RenewInterval:    pick(t.RenewInterval, from.RenewInterval, to.RenewInterval),
		BeaconInterval:   pick(t.BeaconInterval, from.BeaconInterval, to.BeaconInterval),
		Misses:           pick(t.Misses, from.Misses, to.Misses),
		AnnounceCount:    pick(t.AnnounceCount, from.AnnounceCount, to.AnnounceCount),
	}
}

func pick[T comparable](cur, old, next T) T {
	if cur == old {
		return next
	}
	return cur
}
