package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/chart"
)

func TestGaps(t *testing.T) {
	// 6 failures 2604..2629 ms after the fault, then an answer at 2634: one
	// gap of 30 ms, not the 2634 ms since the fault; a lone failure later
	// is a second gap.
	s := []Sample{ok(-5, "n1"), ok(0, "n1"), ok(2599, "n1")}
	for at := 2604; at < 2634; at += 5 {
		s = append(s, bad(at))
	}
	s = append(s, ok(2634, "n2"), ok(2639, "n2"), bad(3000), ok(3005, "n2"))
	g := Gaps(s, ms(0))
	if len(g) != 2 {
		t.Fatalf("gaps %+v, want 2", g)
	}
	if g[0].Failed != 6 || g[0].Len != 30*time.Millisecond || !g[0].First.At.Equal(ms(2604)) || g[0].Recovery.Node != "n2" {
		t.Errorf("first gap %+v, want 6 failed over 30 ms from +2604 ms, recovered by n2", g[0])
	}
	if g[1].Failed != 1 || g[1].Len != 5*time.Millisecond {
		t.Errorf("second gap %+v", g[1])
	}
	// Never recovered: the gap runs to the last sample.
	g = Gaps([]Sample{ok(0, "n1"), bad(10), bad(20)}, ms(0))
	if len(g) != 1 || !g[0].Recovery.At.IsZero() || g[0].Len != 10*time.Millisecond {
		t.Errorf("open gap %+v", g)
	}
}

func TestAnsweringSpans(t *testing.T) {
	// Partition: n1, then n2 alone, then n1 again after the heal.
	s := []Sample{ok(0, "n1"), ok(5, "n1"), bad(10), ok(200, "n2"), ok(3000, "n2"), ok(3200, "n1")}
	got := AnsweringSpans(s)
	want := []Span{{"n1", ms(0), ms(5), 2}, {"n2", ms(200), ms(3000), 2}, {"n1", ms(3200), ms(3200), 1}}
	if !slices.Equal(got, want) {
		t.Errorf("spans %+v, want %+v", got, want)
	}
}

func TestMultiHolder(t *testing.T) {
	obs := []HolderObs{{ms(-100), []string{"n1"}}, {ms(200), []string{"n1", "n2"}}, {ms(3200), []string{"n1"}}}
	if d := MultiHolder(obs, ms(0), ms(5000)); d != 3*time.Second {
		t.Errorf("two holders for %v, want 3s", d)
	}
	if d := MultiHolder(obs, ms(0), ms(1200)); d != time.Second {
		t.Errorf("clipped: %v, want 1s", d)
	}
}

// fakeProc is a Proc whose output the test writes.
func fakeProc() *Proc {
	return &Proc{Name: "test", changed: make(chan struct{}), done: make(chan struct{})}
}

func (p *Proc) feed(text string) {
	l := Line{At: time.Now(), Text: text}
	var m map[string]any
	if json.Unmarshal([]byte(text), &m) == nil {
		l.Fields = m
	}
	p.add(l)
}

func sampleLine(at time.Time, node, err string) string {
	r := clientRecord{T: at.UnixNano(), OK: err == "", Node: node, MS: 1, Err: err}
	b, _ := json.Marshal(r)
	return string(b)
}

// TestClientLinesAddUp: the demo's client lines count every request, the
// ones it holds back while nothing changes included, so they add up to the
// summary (one run showed 19 failures in its lines and 42 in the summary).
func TestClientLinesAddUp(t *testing.T) {
	c := &Client{Proc: fakeProc()}
	p := newPrinter(&demo{}, c)
	var lines []*tally
	total, failed := 0, 0
	at := time.Now()
	for batch := range 60 {
		for i := range 10 {
			node, err := "n1", ""
			switch {
			case batch >= 20 && batch < 25 && i%3 == 0:
				err = "timeout"
			case batch >= 25:
				node = "n2"
			}
			if err != "" {
				failed++
				node = ""
			}
			c.Proc.feed(sampleLine(at, node, err))
			at = at.Add(5 * time.Millisecond)
			total++
		}
		lines = append(lines, p.clientLines(false)...)
	}
	lines = append(lines, p.clientLines(true)...)
	gotOK, gotFail := 0, 0
	for _, l := range lines {
		gotOK += l.ok
		gotFail += l.fail
	}
	if gotOK+gotFail != total || gotFail != failed {
		t.Errorf("lines count %d ok + %d failed, want %d requests of which %d failed", gotOK, gotFail, total, failed)
	}
	if len(lines) >= 60 {
		t.Errorf("%d lines for 60 batches: nothing held back", len(lines))
	}
}

func TestProcKeep(t *testing.T) {
	p := fakeProc()
	p.SetKeep(10)
	next := 0
	var got []string
	for i := range 100 {
		p.feed(fmt.Sprint(i))
		if i%7 == 0 {
			var ls []Line
			ls, next = p.LinesSince(next)
			for _, l := range ls {
				got = append(got, l.Text)
			}
		}
	}
	ls, _ := p.LinesSince(next)
	for _, l := range ls {
		got = append(got, l.Text)
	}
	if len(got) != 100 || got[99] != "99" {
		t.Errorf("followed %d lines (last %q), want all 100 read in step", len(got), got[len(got)-1])
	}
	if n := len(p.Lines()); n >= 20 {
		t.Errorf("kept %d lines, want fewer than 2x10", n)
	}
}

// svgLanes decodes an SVG and returns the data-node of each lane and the
// class of every group.
func svgLanes(t *testing.T, data []byte) (lanes, classes []string) {
	t.Helper()
	lanes, classes, err := chart.Groups(data)
	if err != nil {
		t.Fatalf("the picture is not well-formed XML: %v", err)
	}
	return lanes, classes
}

func TestPictureSVG(t *testing.T) {
	var samples []Sample
	for at := -2000; at < 5000; at += 5 {
		switch {
		case at >= 0 && at < 200:
			samples = append(samples, bad(at))
		case at >= 200 && at < 3200:
			samples = append(samples, ok(at, "n2"))
		default:
			samples = append(samples, ok(at, "n1"))
		}
	}
	pic := Picture{
		Fault: FaultPartition, Nodes: []string{"n1", "n2", "n3"},
		States: map[string][]StateAt{
			"n1": {{ms(-2500), "holder"}},
			"n2": {{ms(-2500), "standby"}, {ms(190), "candidate"}, {ms(195), "holder"}, {ms(3196), "standby"}},
			"n3": {{ms(-2500), "standby"}, {ms(1000), ""}},
		},
		Holders: []HolderObs{{ms(-2000), []string{"n1"}}, {ms(200), []string{"n1", "n2"}}, {ms(3200), []string{"n1"}}},
		Samples: samples, Start: ms(-2000), End: ms(5000), FaultAt: ms(0), HealAt: ms(3000),
	}
	var b bytes.Buffer
	if err := pic.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	lanes, classes := svgLanes(t, b.Bytes())
	if want := []string{"n1", "n2", "n3", "client"}; !slices.Equal(lanes, want) {
		t.Errorf("lanes %q, want %q", lanes, want)
	}
	for _, c := range []string{"fault", "heal"} {
		if !slices.Contains(classes, c) {
			t.Errorf("no %s marker (groups %q)", c, classes)
		}
	}
	for _, s := range []string{"n2: candidate", "two holders", "answered by n2"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("picture lacks %q", s)
		}
	}
}

// TestDemoNodesOutOfRange: too few nodes points to lab up --nodes 1; too
// many says how many fit, without the one-node hint.
func TestDemoNodesOutOfRange(t *testing.T) {
	for nodes, want := range map[int]string{
		1:            "needs 2 to 80 nodes (for one node to play with: lab up --nodes 1)",
		MaxNodes + 1: "the lab has room for 2 to 80 nodes (one address each, 198.18.0.11 to 198.18.0.90, below the VIP)",
	} {
		err := RunDemo(context.Background(), DemoOptions{Nodes: nodes})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--nodes %d: err = %v, want it to contain %q", nodes, err, want)
		}
		if nodes > MaxNodes && strings.Contains(err.Error(), "lab up --nodes 1") {
			t.Errorf("--nodes %d: err = %v, which offers a one-node lab", nodes, err)
		}
	}
}

// TestInFlight: a request sent before the fault that failed after it counts;
// one that failed before the fault, one sent after it and a success do not.
func TestInFlight(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	samples := []Sample{
		{At: t0.Add(-ms(100)), Latency: ms(50), Err: "timeout"},    // over before the fault
		{At: t0.Add(-ms(10)), Latency: ms(50), Err: "timeout"},     // in flight: counts
		{At: t0.Add(-ms(5)), Latency: ms(5), Err: "reset"},         // ends at the fault: counts
		{At: t0.Add(-ms(3)), Latency: ms(1), OK: true, Node: "n1"}, // answered
		{At: t0.Add(ms(1)), Latency: ms(50), Err: "timeout"},       // sent after: Measure's
	}
	if got := inFlight(samples, t0); got != 2 {
		t.Errorf("inFlight = %d, want 2", got)
	}
}
