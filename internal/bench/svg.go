package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

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

// axis maps ms relative to the fault to x.
type axis struct{ from, to float64 }

func (a axis) x(ms float64) float64 { return svgLeft + (ms-a.from)/(a.to-a.from)*svgPlotW }

const (
	svgLeft    = 170.0 // labels
	svgPlotW   = 900.0
	svgRight   = 20.0
	svgTop     = 70.0 // title and legend
	svgLaneH   = 10.0
	svgLaneGap = 5.0
	svgRowGap  = 16.0
	svgAxisH   = 34.0
)

// nodeStyle is the colour and the vertical extent (top offset, height within
// the lane) of an answered request's mark, per answering node, so that nodes
// differ by shape as well as colour.
var nodeStyles = []struct {
	color    string
	off, len float64
}{
	{"#1a7f37", 1, 8}, // n1: dark green, full
	{"#6fdd8b", 4, 5}, // n2: light green, lower part
	{"#1b9aaa", 1, 5}, // n3: teal, upper part
	{"#a2c523", 3, 4}, // n4: olive, middle
}

const failColor = "#d1242f"

func nodeStyle(node string) (color string, off, length float64) {
	i, err := strconv.Atoi(strings.TrimPrefix(node, "n"))
	if err != nil || i < 1 {
		i = 1
	}
	s := nodeStyles[(i-1)%len(nodeStyles)]
	return s.color, s.off, s.len
}

func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// WriteSVG draws one fault: a row per implementation (in the order of impls),
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
			if t.Impl == im && t.Fault == fault && t.Err == "" {
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
		return float64(n)*svgLaneH + float64(n-1)*svgLaneGap
	}
	height := svgTop
	for _, r := range rows {
		height += rowH(r) + svgRowGap
	}
	plotBottom := height
	height += svgAxisH
	width := svgLeft + svgPlotW + svgRight
	from, to := SVGWindow(fault)
	ax := axis{from, to}

	b := &bytes.Buffer{}
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="sans-serif" font-size="12">`+"\n",
		f1(width), f1(height), f1(width), f1(height))
	fmt.Fprintf(b, `<title>%s</title>`+"\n", esc("floatip bench: "+string(fault)+", client requests around the fault"))
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(b, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("fault: %s — every client request (one per 5 ms) from %s s to %s s around the fault, a lane per trial", fault, fmtSeconds(from), fmtSeconds(to))))

	// Legend.
	lx := 10.0
	legend := func(color string, off, length float64, label string) {
		fmt.Fprintf(b, `<path d="M%s %sv%s" stroke="%s" stroke-width="3"/><text x="%s" y="50">%s</text>`+"\n",
			f1(lx+2), f1(38+off), f1(length), color, f1(lx+8), esc(label))
		lx += 14 + 7*float64(len(label))
	}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, c string) int { return cmpNode(a, c) })
	for _, n := range names {
		color, off, length := nodeStyle(n)
		legend(color, off, length, "answered by "+n)
	}
	legend(failColor, 0, 10, "failed")
	fmt.Fprintf(b, `<rect x="%s" y="38" width="10" height="10" fill="#f5b041" fill-opacity="0.45"/><text x="%s" y="50">two holders</text>`+"\n", f1(lx), f1(lx+14))

	// Grid: every 500 ms; the fault (and a partition's heal) as lines.
	for ms := from; ms <= to; ms += 500 {
		x := f1(ax.x(ms))
		fmt.Fprintf(b, `<path d="M%s %sV%s" stroke="#d0d7de" stroke-width="0.5"/>`, x, f1(svgTop-6), f1(plotBottom))
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", x, f1(plotBottom+14), esc(fmtSeconds(ms)))
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">time relative to the fault (s)</text>`+"\n", f1(svgLeft+svgPlotW/2), f1(plotBottom+29))

	y := svgTop
	for _, r := range rows {
		fmt.Fprintf(b, `<g class="row" data-impl="%s">`+"\n", esc(r.impl))
		fmt.Fprintf(b, `<text x="10" y="%s" font-weight="bold">%s</text>`+"\n", f1(y+svgLaneH-1), esc(r.impl))
		if len(r.trials) == 0 {
			fmt.Fprintf(b, `<text x="%s" y="%s" fill="#57606a">no trial ran</text>`+"\n", f1(svgLeft+4), f1(y+svgLaneH-1))
		}
		for i, t := range r.trials {
			ly := y + float64(i)*(svgLaneH+svgLaneGap)
			writeLane(b, ax, t, ly)
		}
		b.WriteString("</g>\n")
		y += rowH(r) + svgRowGap
	}
	x0 := f1(ax.x(0))
	fmt.Fprintf(b, `<path d="M%s %sV%s" stroke="#24292f" stroke-width="1.2"/><text x="%s" y="%s" text-anchor="middle" font-weight="bold">fault</text>`+"\n",
		x0, f1(svgTop-6), f1(plotBottom), x0, f1(svgTop-9))
	if fault == lab.FaultPartition {
		xh := f1(ax.x(float64(PartitionFor.Milliseconds())))
		fmt.Fprintf(b, `<path d="M%s %sV%s" stroke="#24292f" stroke-width="1.2" stroke-dasharray="4 3"/><text x="%s" y="%s" text-anchor="middle" font-weight="bold">heal</text>`+"\n",
			xh, f1(svgTop-6), f1(plotBottom), xh, f1(svgTop-9))
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeLane draws one trial at lane top y.
func writeLane(b *bytes.Buffer, ax axis, t Trial, y float64) {
	fmt.Fprintf(b, `<g class="trial" data-trial="%d">`, t.Trial)
	fmt.Fprintf(b, `<text x="%s" y="%s" font-size="9" text-anchor="end" fill="#57606a">#%d</text>`, f1(svgLeft-4), f1(y+svgLaneH-2), t.Trial)
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="#f6f8fa"/>`, f1(svgLeft), f1(y), f1(svgPlotW), f1(svgLaneH))
	// Two-holder spans, from the holder changes.
	for i, c := range t.HolderChanges {
		if len(c.Holders) < 2 {
			continue
		}
		end := t.EndMS
		if i+1 < len(t.HolderChanges) {
			end = t.HolderChanges[i+1].MS
		}
		from, to := max(c.MS, ax.from), min(end, ax.to)
		if to > from {
			// Behind the marks, and as a strip just above the lane.
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="#f5b041" fill-opacity="0.45"/>`,
				f1(ax.x(from)), f1(y-4), f1(ax.x(to)-ax.x(from)), f1(svgLaneH+4))
		}
	}
	// One path per mark style: a vertical tick per request.
	paths := map[string]*strings.Builder{}
	var order []string
	for _, p := range t.Samples {
		if p.MS < ax.from || p.MS > ax.to {
			continue
		}
		color, off, length := failColor, 0.0, svgLaneH
		if p.OK {
			color, off, length = nodeStyle(p.Node)
		}
		sb, ok := paths[color]
		if !ok {
			sb = &strings.Builder{}
			paths[color] = sb
			order = append(order, color)
		}
		fmt.Fprintf(sb, "M%s %sv%s", f1(ax.x(p.MS)), f1(y+off), f1(length))
	}
	for _, color := range order {
		fmt.Fprintf(b, `<path d="%s" stroke="%s" stroke-width="0.8"/>`, paths[color].String(), color)
	}
	b.WriteString("</g>\n")
}

func fmtSeconds(ms float64) string {
	s := strconv.FormatFloat(ms/1000, 'f', -1, 64)
	if ms > 0 {
		s = "+" + s
	}
	return s
}

// cmpNode orders node names n1, n2, ..., n10 numerically.
func cmpNode(a, b string) int {
	ia, ea := strconv.Atoi(strings.TrimPrefix(a, "n"))
	ib, eb := strconv.Atoi(strings.TrimPrefix(b, "n"))
	if ea == nil && eb == nil && ia != ib {
		return ia - ib
	}
	return strings.Compare(a, b)
}
