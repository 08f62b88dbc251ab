package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/floatip/floatip/internal/chart"
	"github.com/floatip/floatip/internal/lab"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// fixtureTrials are two implementations under poweroff and partition, with
// samples around the fault; one trial did not run.
func fixtureTrials() []Trial {
	lane := func(impl string, fault lab.FaultKind, n int, gapFrom, gapTo float64, after string) Trial {
		t := Trial{Impl: impl, Fault: fault, Trial: n, Recovered: true, OutageMS: gapTo, HoldersEnd: []string{after}, EndMS: 4500}
		for ms := -1000.0; ms <= 4500; ms += 5 {
			switch {
			case ms < gapFrom:
				t.Samples = append(t.Samples, Point{MS: ms, OK: true, Node: "n1"})
			case ms < gapTo:
				t.Samples = append(t.Samples, Point{MS: ms, Err: "timeout"})
				t.Failed++
			default:
				t.Samples = append(t.Samples, Point{MS: ms, OK: true, Node: after})
			}
		}
		t.HolderChanges = []HolderChange{{MS: -1000, Holders: []string{"n1"}}, {MS: 150, Holders: []string{"n1", "n2"}}, {MS: 3100, Holders: []string{after}}}
		return t
	}
	return []Trial{
		lane("floatip", lab.FaultPowerOff, 1, 0, 200, "n2"),
		lane("floatip", lab.FaultPowerOff, 2, 0, 180, "n2"),
		lane("keepalived-1s", lab.FaultPowerOff, 1, 0, 3400, "n2"),
		{Impl: "keepalived-1s", Fault: lab.FaultPowerOff, Trial: 2, Err: "waiting for n1 to hold the VIP: <timeout> & more"},
		lane("floatip", lab.FaultPartition, 1, 0, 160, "n1"),
		lane("keepalived-1s", lab.FaultPartition, 1, 0, 3000, "n1"),
	}
}

// svgRows decodes an SVG and returns the data-impl of each <g class="row">,
// failing on malformed XML.
func svgRows(t *testing.T, data []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var rows []string
	sawSVG := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local == "svg" {
			sawSVG = true
			if se.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("svg namespace %q", se.Name.Space)
			}
		}
		if se.Name.Local != "g" {
			continue
		}
		var class, impl string
		for _, a := range se.Attr {
			switch a.Name.Local {
			case "class":
				class = a.Value
			case "data-impl":
				impl = a.Value
			}
		}
		if class == "row" {
			rows = append(rows, impl)
		}
	}
	if !sawSVG {
		t.Fatal("no <svg> element")
	}
	return rows
}

func TestWriteSVG(t *testing.T) {
	impls := []string{"floatip", "keepalived-1s", "keepalived-0.1s"} // the last ran nothing
	for _, fault := range []lab.FaultKind{lab.FaultPowerOff, lab.FaultPartition} {
		t.Run(string(fault), func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteSVG(&b, fault, impls, fixtureTrials()); err != nil {
				t.Fatal(err)
			}
			rows := svgRows(t, b.Bytes())
			if strings.Join(rows, ",") != strings.Join(impls, ",") {
				t.Errorf("rows %q, want one per implementation %q", rows, impls)
			}
			s := b.String()
			if !strings.Contains(s, chart.FailColor) {
				t.Error("no failed-request marks")
			}
			if !strings.Contains(s, "answered by n1") {
				t.Error("no legend entry for n1")
			}
			if got := strings.Contains(s, "answered by n2"); got != (fault == lab.FaultPowerOff) {
				t.Errorf("legend entry for n2 = %v, want it only where n2 answered", got)
			}
			if got := strings.Contains(s, ">heal<"); got != (fault == lab.FaultPartition) {
				t.Errorf("heal line present = %v", got)
			}
		})
	}
}

func TestWriteMarkdownAndCSV(t *testing.T) {
	trials := fixtureTrials()
	res := &Results{Nodes: 2, Trials: 2, Impls: []string{"floatip", "keepalived-1s"},
		Faults: []lab.FaultKind{lab.FaultPowerOff, lab.FaultPartition}, Runs: trials, Summaries: Summarize(trials),
		Skipped: []string{"keepalived-0.1s: keepalived is not installed"}}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| poweroff | floatip | 2 | 190 ms | 198 ms | 200 ms |",
		"| poweroff | keepalived-1s | 1 (+1 errors) | 3400 ms |",
		"| partition | floatip | 1 |",
		"Skipped: keepalived-0.1s",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, md.String())
		}
	}
	// Partition rows come after poweroff rows.
	if strings.Index(md.String(), "| partition |") < strings.Index(md.String(), "| poweroff |") {
		t.Error("rows not grouped by fault in order")
	}

	var tb bytes.Buffer
	if err := WriteTrialsCSV(&tb, trials); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&tb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(trials) {
		t.Errorf("trials.csv has %d records, want %d", len(recs), 1+len(trials))
	}
	if recs[0][4] != "error" || recs[4][4] == "" {
		t.Errorf("the failed trial's error is missing: %q / %q", recs[0], recs[4])
	}

	var sb bytes.Buffer
	if err := WriteSamplesCSV(&sb, trials[:1]); err != nil {
		t.Fatal(err)
	}
	recs, err = csv.NewReader(&sb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(trials[0].Samples) {
		t.Errorf("samples.csv has %d records, want %d", len(recs), 1+len(trials[0].Samples))
	}
}

func TestWriteStackedMarkdown(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	trials := []Trial{
		{Impl: "floatip", Fault: lab.FaultPowerOff, Stack: lab.StackIPv4, Trial: 1, OutageMS: 200, Recovered: true, Failed: 40, HoldersEnd: []string{"n2"}},
		{Impl: "floatip", Fault: lab.FaultPowerOff, Stack: lab.StackIPv6, Trial: 1, OutageMS: 220, Recovered: true, Failed: 44, HoldersEnd: []string{"n2"}},
		{Impl: "floatip", Fault: lab.FaultPowerOff, Stack: lab.StackDual, Trial: 1, OutageMS: 210, Recovered: true, Failed: 42, SplitMS: 0, HoldersEnd: []string{"n2"}},
		{Impl: "floatip", Fault: lab.FaultCrash, Stack: lab.StackIPv6, Trial: 1, OutageMS: 3100, Recovered: true, GoneMS: f(3050), HoldersEnd: []string{"n2"}},
		{Impl: "keepalived-1s", Fault: lab.FaultCrash, Stack: lab.StackIPv6, Trial: 1, TwoHoldersMS: 5000, Recovered: true, HoldersEnd: []string{"n1", "n2"}},
	}
	res := &Results{Nodes: 2, Trials: 1, Impls: []string{"floatip", "keepalived-1s"},
		Faults: []lab.FaultKind{lab.FaultPowerOff, lab.FaultCrash}, Stacks: []lab.Stack{lab.StackIPv4, lab.StackIPv6, lab.StackDual},
		Runs: trials, Summaries: Summarize(trials)}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, res); err != nil {
		t.Fatal(err)
	}
	got := md.String()
	for _, want := range []string{
		"| poweroff | floatip | IPv4 | 1 | 200 ms | – | 200 ms |",
		"| poweroff | floatip | IPv6 | 1 | 220 ms | 1.10× | 220 ms |",
		"| poweroff | floatip | dual | 1 | 210 ms | 1.05× | 210 ms | 210 ms | 42 | 0 / 0 ms | 0 / 0 ms | – |",
		"| crash | floatip | IPv6 | 1 | 3100 ms | – |",
		"| 3050 / 3050 ms |",
		"| crash | keepalived-1s | IPv6 | 1 | 0 ms | – | 0 ms | 0 ms | 0 | 5000 / 5000 ms | – | never | 2 | – |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	// Each implementation's stacks together, IPv4 first.
	if i4, i6 := strings.Index(got, "| poweroff | floatip | IPv4"), strings.Index(got, "| poweroff | floatip | IPv6"); i4 < 0 || i6 < i4 {
		t.Error("the IPv6 row does not follow the IPv4 one")
	}
	if rows := RowNames(res); strings.Join(rows, ",") != "floatip,floatip (IPv6),floatip (dual),keepalived-1s,keepalived-1s (IPv6),keepalived-1s (dual)" {
		t.Errorf("RowNames = %q", rows)
	}
	// An IPv4-only run keeps the old table.
	res.Stacks = []lab.Stack{lab.StackIPv4}
	md.Reset()
	if err := WriteMarkdown(&md, res); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(md.String(), "| VIP |") {
		t.Errorf("an IPv4-only run has the stack column:\n%s", md.String())
	}
}
