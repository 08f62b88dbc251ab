package bench

import (
	"fmt"
	"io"
	"slices"

	"github.com/floatip/floatip/internal/chart"
	"github.com/floatip/floatip/internal/lab"
)

// The picture's time axis, relative to the fault: SVGFromMS to SVGToMS, for
// a partition to SVGPartitionToMS so the heal (at +3 s) and its aftermath
// show.
const (
	SVGFromMS        = -500.0
	SVGToMS          = 4000.0
	SVGPartitionToMS = 5500.0
)

// SVGWindow is the time axis of a fault's picture, in ms relative to the
// fault.
func SVGWindow(fault lab.FaultKind) (from, to float64) {
	if fault == lab.FaultPartition {
		return SVGFromMS, SVGPartitionToMS
	}
	return SVGFromMS, SVGToMS
}

// WriteSVG draws one fault: a row per implementation (in the order of impls;
// "floatip (IPv6)" names the IPv6 trials of floatip, see RowNames),
// a lane per trial, a mark per client request between SVGFromMS and SVGToMS
// around the fault — green-ish per answering node, red when it failed — and
// amber where two nodes held the VIP. Trials that did not run are left out.
func WriteSVG(w io.Writer, fault lab.FaultKind, impls []string, trials []Trial) error {
	type row struct {
		impl   string
		trials []Trial
	}
	var rows []row
	nodes := map[string]bool{}
	for _, im := range impls {
		r := row{impl: im}
		for _, t := range trials {
			if t.Impl+stackTag(t.Stack) == im && t.Fault == fault && t.Err == "" {
				r.trials = append(r.trials, t)
				for _, p := range t.Samples {
					if p.OK && p.Node != "" {
						nodes[p.Node] = true
					}
				}
			}
		}
		rows = append(rows, r)
	}
	rowH := func(r row) float64 {
		n := max(len(r.trials), 1)
		return float64(n)*chart.LaneH + float64(n-1)*chart.LaneGap
	}
	height := chart.Top
	for _, r := range rows {
		height += rowH(r) + chart.RowGap
	}
	plotBottom := height
	height += chart.AxisH
	from, to := SVGWindow(fault)

	d := chart.New(chart.Axis{From: from, To: to}, height, "floatip bench: "+string(fault)+", client requests around the fault",
		fmt.Sprintf("fault: %s — every client request (one per 5 ms) from %s s to %s s around the fault, a lane per trial", fault, chart.Seconds(from), chart.Seconds(to)))

	// Legend.
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.SortFunc(names, chart.CmpNode)
	for _, n := range names {
		color, off, length := chart.NodeStyle(n)
		d.LegendTick(color, off, length, "answered by "+n)
	}
	d.LegendTick(chart.FailColor, 0, 10, "failed")
	d.LegendBox(chart.TwoColor, 0.45, "two holders")

	// Grid: every 500 ms; the fault (and a partition's heal) as lines.
	d.Grid(chart.Top, plotBottom, 500, "time relative to the fault (s)")

	y := chart.Top
	for _, r := range rows {
		fmt.Fprintf(d, `<g class="row" data-impl="%s">`+"\n", chart.Esc(r.impl))
		fmt.Fprintf(d, `<text x="10" y="%s" font-weight="bold">%s</text>`+"\n", chart.F1(y+chart.LaneH-1), chart.Esc(r.impl))
		if len(r.trials) == 0 {
			fmt.Fprintf(d, `<text x="%s" y="%s" fill="#57606a">no trial ran</text>`+"\n", chart.F1(chart.Left+4), chart.F1(y+chart.LaneH-1))
		}
		for i, t := range r.trials {
			ly := y + float64(i)*(chart.LaneH+chart.LaneGap)
			writeLane(d, t, ly)
		}
		d.WriteString("</g>\n")
		y += rowH(r) + chart.RowGap
	}
	d.Marker(0, "fault", "fault", false)
	if fault == lab.FaultPartition {
		d.Marker(float64(PartitionFor.Milliseconds()), "heal", "heal", true)
	}
	_, err := d.WriteTo(w)
	return err
}

// writeLane draws one trial at lane top y.
func writeLane(d *chart.Doc, t Trial, y float64) {
	fmt.Fprintf(d, `<g class="trial" data-trial="%d">`, t.Trial)
	fmt.Fprintf(d, `<text x="%s" y="%s" font-size="9" text-anchor="end" fill="#57606a">#%d</text>`, chart.F1(chart.Left-4), chart.F1(y+chart.LaneH-2), t.Trial)
	d.Background(y, chart.LaneH)
	// Two-holder spans, from the holder changes: behind the marks, and as a
	// strip just above the lane.
	hs := make([]chart.Holding, len(t.HolderChanges))
	for i, c := range t.HolderChanges {
		hs[i] = chart.Holding{MS: c.MS, N: len(c.Holders)}
	}
	d.TwoHolders(hs, t.EndMS, y-4, chart.LaneH+4)
	reqs := make([]chart.Request, len(t.Samples))
	for i, p := range t.Samples {
		reqs[i] = chart.Request{MS: p.MS, OK: p.OK, Node: p.Node}
	}
	d.Requests(y, reqs)
	d.WriteString("</g>\n")
}
