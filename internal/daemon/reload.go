package daemon

import (
	"reflect"
	"slices"

	"github.com/floatip/floatip/internal/config"
)

// change is what a reload does to one group.
type change uint8

const (
	// keep: the group's configuration is unchanged; it keeps its state and
	// its VIPs and takes the new node-wide settings (timing, policies) in
	// place.
	keep change = iota
	// reconfigure: same VIPs and health checks, other settings of the
	// group (priority) changed; applied in place like keep.
	reconfigure
	// restart: same name, but its VIPs or health checks changed; the group
	// stops (releasing what it holds) and starts again, keeping an
	// operator's maintenance hold.
	restart
	// stop: the group is gone from the configuration; it releases its VIPs.
	stop
	// start: a new group.
	start
)

var changeNames = [...]string{"keep", "reconfigure", "restart", "stop", "start"}

func (c change) String() string { return changeNames[c] }

// groupChange is the verdict for one group.
type groupChange struct {
	Name   string
	Change change
}

// planReload compares the running groups with the new configuration's and
// says, per group, what a reload does: first the running groups in their
// order (keep, reconfigure, restart or stop), then the new ones in
// configuration order (start). A restarted group appears once, as restart.
func planReload(cur, next []config.Group) []groupChange {
	byName := map[string]config.Group{}
	for _, gc := range next {
		byName[gc.Name] = gc
	}
	running := map[string]bool{}
	var plan []groupChange
	for _, g := range cur {
		running[g.Name] = true
		gc, ok := byName[g.Name]
		c := stop
		switch {
		case !ok:
		case !slices.Equal(gc.VIPs, g.VIPs) || !reflect.DeepEqual(gc.Checks, g.Checks) || !gc.Quorum.Equal(g.Quorum):
			c = restart
		case reflect.DeepEqual(gc, g):
			c = keep
		default:
			c = reconfigure
		}
		plan = append(plan, groupChange{g.Name, c})
	}
	for _, gc := range next {
		if !running[gc.Name] {
			plan = append(plan, groupChange{gc.Name, start})
		}
	}
	return plan
}
