// Package chart draws the lab's pictures as SVG: a time axis around a fault,
// lanes of client requests (a tick per request, coloured by the node that
// answered, red when it failed), spans (two holders, a node's state) and
// markers (fault, heal). The benchmark (internal/bench) and the demo
// (internal/lab) draw with it. It writes SVG text by hand: the pictures are
// a few rectangles and paths, which no charting library makes simpler.
package chart

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Layout of a picture.
const (
	Left      = 170.0 // labels
	PlotW     = 900.0
	Right     = 20.0
	Top       = 70.0 // title and legend
	LaneH     = 10.0
	LaneGap   = 5.0
	RowGap    = 16.0
	AxisH     = 34.0
	FailColor = "#d1242f"
	TwoColor  = "#f5b041" // two holders
)

// Width is the width of every picture.
const Width = Left + PlotW + Right

// Axis maps ms relative to the fault to x, between From and To.
type Axis struct{ From, To float64 }

// X is the x of ms.
func (a Axis) X(ms float64) float64 { return Left + (ms-a.From)/(a.To-a.From)*PlotW }

// Clamp limits ms to the axis.
func (a Axis) Clamp(ms float64) float64 { return min(max(ms, a.From), a.To) }

// nodeStyles is the colour and the vertical extent (top offset, height
// within the lane) of an answered request's mark, per answering node, so
// that nodes differ by shape as well as colour.
var nodeStyles = []struct {
	color    string
	off, len float64
}{
	{"#1a7f37", 1, 8}, // n1: dark green, full
	{"#6fdd8b", 4, 5}, // n2: light green, lower part
	{"#1b9aaa", 1, 5}, // n3: teal, upper part
	{"#a2c523", 3, 4}, // n4: olive, middle
}

// NodeStyle is the mark of a request node answered ("n2").
func NodeStyle(node string) (color string, off, length float64) {
	i, err := strconv.Atoi(strings.TrimPrefix(node, "n"))
	if err != nil || i < 1 {
		i = 1
	}
	s := nodeStyles[(i-1)%len(nodeStyles)]
	return s.color, s.off, s.len
}

// F1 formats a coordinate.
func F1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// Esc escapes text for SVG.
func Esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Seconds formats ms as seconds with a sign: "-0.5", "0", "+2".
func Seconds(ms float64) string {
	s := strconv.FormatFloat(ms/1000, 'f', -1, 64)
	if ms > 0 {
		s = "+" + s
	}
	return s
}

// CmpNode orders node names n1, n2, ..., n10 numerically.
func CmpNode(a, b string) int {
	ia, ea := strconv.Atoi(strings.TrimPrefix(a, "n"))
	ib, eb := strconv.Atoi(strings.TrimPrefix(b, "n"))
	if ea == nil && eb == nil && ia != ib {
		return ia - ib
	}
	return strings.Compare(a, b)
}

// Doc is a picture being drawn.
type Doc struct {
	bytes.Buffer
	Axis     Axis
	legendX  float64
	plotTop  float64
	plotBase float64
}

// New starts a picture of the given height with a title (a tooltip) and a
// heading (the bold first line).
func New(ax Axis, height float64, title, heading string) *Doc {
	d := &Doc{Axis: ax, legendX: 10}
	fmt.Fprintf(d, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(d, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="sans-serif" font-size="12">`+"\n",
		F1(Width), F1(height), F1(Width), F1(height))
	fmt.Fprintf(d, `<title>%s</title>`+"\n", Esc(title))
	fmt.Fprintf(d, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(d, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", Esc(heading))
	return d
}

// LegendTick adds a request mark to the legend.
func (d *Doc) LegendTick(color string, off, length float64, label string) {
	fmt.Fprintf(d, `<path d="M%s %sv%s" stroke="%s" stroke-width="3"/><text x="%s" y="50">%s</text>`+"\n",
		F1(d.legendX+2), F1(38+off), F1(length), color, F1(d.legendX+8), Esc(label))
	d.legendX += 14 + 7*float64(len(label))
}

// LegendBox adds a filled box to the legend.
func (d *Doc) LegendBox(color string, opacity float64, label string) {
	fmt.Fprintf(d, `<rect x="%s" y="38" width="10" height="10" fill="%s" fill-opacity="%s" stroke="#d0d7de" stroke-width="0.5"/><text x="%s" y="50">%s</text>`+"\n",
		F1(d.legendX), color, F1(opacity), F1(d.legendX+14), Esc(label))
	d.legendX += 24 + 7*float64(len(label))
}

// Grid draws a vertical line and a label every stepMS between top and
// bottom, and the axis title beneath; markers drawn later span the same
// height.
func (d *Doc) Grid(top, bottom, stepMS float64, label string) {
	d.plotTop, d.plotBase = top, bottom
	start := stepMS * float64(int(d.Axis.From/stepMS))
	for ms := start; ms <= d.Axis.To; ms += stepMS {
		if ms < d.Axis.From {
			continue
		}
		x := F1(d.Axis.X(ms))
		fmt.Fprintf(d, `<path d="M%s %sV%s" stroke="#d0d7de" stroke-width="0.5"/>`, x, F1(top-6), F1(bottom))
		fmt.Fprintf(d, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", x, F1(bottom+14), Esc(Seconds(ms)))
	}
	fmt.Fprintf(d, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", F1(Left+PlotW/2), F1(bottom+29), Esc(label))
}

// Marker draws a labelled vertical line at ms across the grid (dashed for
// a heal); class names it for readers of the file.
func (d *Doc) Marker(ms float64, label, class string, dashed bool) {
	x := F1(d.Axis.X(ms))
	dash := ""
	if dashed {
		dash = ` stroke-dasharray="4 3"`
	}
	fmt.Fprintf(d, `<g class="%s"><path d="M%s %sV%s" stroke="#24292f" stroke-width="1.2"%s/><text x="%s" y="%s" text-anchor="middle" font-weight="bold">%s</text></g>`+"\n",
		Esc(class), x, F1(d.plotTop-6), F1(d.plotBase), dash, x, F1(d.plotTop-9), Esc(label))
}

// Label writes a lane's label at its left.
func (d *Doc) Label(y float64, text string, bold bool, size float64) {
	w := ""
	if bold {
		w = ` font-weight="bold"`
	}
	fmt.Fprintf(d, `<text x="10" y="%s" font-size="%s"%s>%s</text>`+"\n", F1(y), F1(size), w, Esc(text))
}

// Background draws a lane's empty background.
func (d *Doc) Background(y, h float64) {
	fmt.Fprintf(d, `<rect x="%s" y="%s" width="%s" height="%s" fill="#f6f8fa"/>`, F1(Left), F1(y), F1(PlotW), F1(h))
}

// Span fills from..to (ms, clipped to the axis) at y..y+h; title, when
// set, is its tooltip.
func (d *Doc) Span(from, to, y, h float64, color string, opacity float64, title string) {
	a, b := d.Axis.Clamp(from), d.Axis.Clamp(to)
	if b <= a {
		return
	}
	t := ""
	if title != "" {
		t = "<title>" + Esc(title) + "</title>"
	}
	fmt.Fprintf(d, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="%s">%s</rect>`,
		F1(d.Axis.X(a)), F1(y), F1(d.Axis.X(b)-d.Axis.X(a)), F1(h), color, F1(opacity), t)
}

// Holding is a reading of the VIP's holders: from MS on, N nodes hold it.
type Holding struct {
	MS float64
	N  int
}

// TwoHolders fills, in the two-holder colour at y..y+h, where more than one
// node held the VIP: each reading holds until the next, the last until
// endMS.
func (d *Doc) TwoHolders(hs []Holding, endMS, y, h float64) {
	for i, x := range hs {
		if x.N < 2 {
			continue
		}
		end := endMS
		if i+1 < len(hs) {
			end = hs[i+1].MS
		}
		d.Span(x.MS, end, y, h, TwoColor, 0.45, "two holders")
	}
}

// Request is one client request for Requests: its send time in ms
// relative to the fault, whether it was answered and by which node.
type Request struct {
	MS   float64
	OK   bool
	Node string
}

// Requests draws a tick per request in the lane at y (LaneH high): the
// answering node's mark, or a full red tick for a failure.
func (d *Doc) Requests(y float64, reqs []Request) {
	paths := map[string]*strings.Builder{}
	var order []string
	for _, p := range reqs {
		if p.MS < d.Axis.From || p.MS > d.Axis.To {
			continue
		}
		color, off, length := FailColor, 0.0, LaneH
		if p.OK {
			color, off, length = NodeStyle(p.Node)
		}
		sb, ok := paths[color]
		if !ok {
			sb = &strings.Builder{}
			paths[color] = sb
			order = append(order, color)
		}
		fmt.Fprintf(sb, "M%s %sv%s", F1(d.Axis.X(p.MS)), F1(y+off), F1(length))
	}
	for _, color := range order {
		fmt.Fprintf(d, `<path d="%s" stroke="%s" stroke-width="0.8"/>`, paths[color].String(), color)
	}
}

// WriteTo ends the picture and writes it.
func (d *Doc) WriteTo(w io.Writer) (int64, error) {
	d.WriteString("</svg>\n")
	n, err := w.Write(d.Bytes())
	return int64(n), err
}

// Groups reads a picture back: the data-node attribute of each lane and
// the class of every group (fault, heal, ...), in document order. It fails
// when the picture is not well-formed XML.
func Groups(svg []byte) (lanes, classes []string, err error) {
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return lanes, classes, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "g" {
			for _, a := range se.Attr {
				switch a.Name.Local {
				case "class":
					classes = append(classes, a.Value)
				case "data-node":
					lanes = append(lanes, a.Value)
				}
			}
		}
	}
}
