package lab

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/floatip/floatip/internal/chart"
)

// StateAt is a daemon's state from a time on, from its "state changed"
// log line; State "" means no daemon runs (not started yet, exited).
type StateAt struct {
	At    time.Time
	State string
}

// Picture is what the demo's SVG shows.
type Picture struct {
	Fault           FaultKind
	Nodes           []string             // lanes, in order
	States          map[string][]StateAt // per node, in time order
	Holders         []HolderObs          // the kernel's holders (HolderRecorder)
	Samples         []Sample             // the client's requests
	Start, End      time.Time            // the time axis
	FaultAt, HealAt time.Time            // HealAt zero when not healed
}

// stateColors colours a daemon's states in the picture.
var stateColors = []struct{ state, color string }{
	{"holder", "#1a7f37"},
	{"standby", "#afb8c1"},
	{"probing", "#d4a72c"},
	{"candidate", "#bf8700"},
	{"fencing", "#8250df"},
	{"releasing", "#4ac26b"},
	{"fault", "#d1242f"},
	{"stopped", "#24292f"},
	{"init", "#eaeef2"},
}

func stateColor(s string) string {
	for _, c := range stateColors {
		if c.state == s {
			return c.color
		}
	}
	return "#57606a"
}

// statesOf reads a daemon's states from its JSON log (the group of
// Params; the demo runs one group), ending with "" when it exited.
func statesOf(p *Proc) []StateAt {
	var out []StateAt
	for _, l := range p.Lines() {
		if l.Fields != nil && l.Msg() == "state changed" {
			out = append(out, StateAt{At: l.Time(), State: l.Str("to")})
		}
	}
	if at := p.ExitedAt(); !at.IsZero() {
		out = append(out, StateAt{At: at, State: ""})
	}
	return out
}

// WriteSVG draws the picture: a lane per node with the daemon's state over
// time and, beneath it, a strip where the kernel shows the VIP on the node;
// then the client's requests; the fault and the heal as lines.
func (pic Picture) WriteSVG(w io.Writer) error {
	ms := func(t time.Time) float64 { return float64(t.Sub(pic.FaultAt).Microseconds()) / 1000 }
	ax := chart.Axis{From: ms(pic.Start), To: ms(pic.End)}
	if ax.To <= ax.From {
		ax.To = ax.From + 1000
	}
	const (
		stateH = chart.LaneH
		vipH   = 4.0
		laneH  = stateH + 1 + vipH + chart.LaneGap + 4
	)
	plotBottom := chart.Top + float64(len(pic.Nodes))*laneH + chart.RowGap + chart.LaneH + 8
	height := plotBottom + chart.AxisH
	d := chart.New(ax, height, "floatip lab: "+string(pic.Fault)+" — daemon states, VIP holders and client requests",
		fmt.Sprintf("floatip lab --fault %s: each node's daemon state and VIP, and every client request (time relative to the fault)", pic.Fault))
	for _, c := range stateColors[:6] {
		d.LegendBox(c.color, 1, c.state)
	}
	d.LegendBox("#f6f8fa", 1, "no daemon")
	d.LegendBox("#1f6feb", 1, "VIP on it (kernel)")
	answered := map[string]bool{}
	for _, s := range pic.Samples {
		if s.OK {
			answered[s.Node] = true
		}
	}
	for _, n := range pic.Nodes {
		if answered[n] {
			color, off, length := chart.NodeStyle(n)
			d.LegendTick(color, off, length, "answered by "+n)
		}
	}
	d.LegendTick(chart.FailColor, 0, 10, "failed")
	step := 500.0
	if ax.To-ax.From > 12000 {
		step = 1000
	}
	d.Grid(chart.Top, plotBottom, step, "time relative to the fault (s)")

	y := chart.Top
	for _, n := range pic.Nodes {
		fmt.Fprintf(d, `<g class="lane" data-node="%s">`, chart.Esc(n))
		d.Label(y+stateH-1, n, true, 12)
		d.Background(y, stateH)
		st := pic.States[n]
		for i, s := range st {
			if s.State == "" {
				continue
			}
			end := pic.End
			if i+1 < len(st) {
				end = st[i+1].At
			}
			d.Span(ms(s.At), ms(end), y, stateH, stateColor(s.State), 1, n+": "+s.State)
		}
		vy := y + stateH + 1
		for i, o := range pic.Holders {
			if !slices.Contains(o.Holders, n) {
				continue
			}
			end := pic.End
			if i+1 < len(pic.Holders) {
				end = pic.Holders[i+1].At
			}
			d.Span(ms(o.At), ms(end), vy, vipH, "#1f6feb", 1, n+" holds the VIP")
		}
		d.WriteString("</g>\n")
		y += laneH
	}
	y += chart.RowGap - 4
	// Two holders: a strip across the client lane's top.
	hs := make([]chart.Holding, len(pic.Holders))
	for i, o := range pic.Holders {
		hs[i] = chart.Holding{MS: ms(o.At), N: len(o.Holders)}
	}
	d.TwoHolders(hs, ms(pic.End), y-4, chart.LaneH+4)
	fmt.Fprintf(d, `<g class="lane" data-node="client">`)
	d.Label(y+chart.LaneH-1, "client", true, 12)
	d.Background(y, chart.LaneH)
	reqs := make([]chart.Request, len(pic.Samples))
	for i, s := range pic.Samples {
		reqs[i] = chart.Request{MS: ms(s.At), OK: s.OK, Node: s.Node}
	}
	d.Requests(y, reqs)
	d.WriteString("</g>\n")
	d.Marker(0, "fault: "+string(pic.Fault), "fault", false)
	if !pic.HealAt.IsZero() {
		d.Marker(ms(pic.HealAt), "heal", "heal", true)
	}
	_, err := d.WriteTo(w)
	return err
}

// writeSVG writes the run's picture to path ("" for none) and says where.
func (d *demo) writeSVG(path string) {
	if path == "" || !d.ran {
		return
	}
	d.mu.Lock()
	healAt := d.healAt
	d.mu.Unlock()
	pic := Picture{Fault: d.fault, States: map[string][]StateAt{}, Holders: d.obs, Samples: d.samples,
		Start: d.start, End: d.endAt, FaultAt: d.faultAt, HealAt: healAt}
	for _, n := range d.l.Nodes() {
		pic.Nodes = append(pic.Nodes, n.Name)
		if p := d.daemons[n.Name]; p != nil {
			pic.States[n.Name] = statesOf(p)
		}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pic.WriteSVG(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		d.printf("\npicture: not written: %v\n", err)
		return
	}
	d.printf("\npicture of the run: %s\n", path)
}
