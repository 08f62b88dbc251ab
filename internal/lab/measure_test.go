package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func ok(at int, node string) Sample { return Sample{At: ms(at), OK: true, Node: node} }
func bad(at int) Sample             { return Sample{At: ms(at), Err: "timeout"} }

func TestMeasure(t *testing.T) {
	tests := []struct {
		name    string
		samples []Sample
		faultAt time.Time
		want    Result
	}{
		{
			name:    "no samples",
			faultAt: ms(0),
			want:    Result{FaultAt: ms(0), Recovered: true},
		},
		{
			name:    "no failure, same node",
			samples: []Sample{ok(-10, "n1"), ok(-5, "n1"), ok(0, "n1"), ok(5, "n1")},
			faultAt: ms(0),
			want:    Result{FaultAt: ms(0), Recovered: true, Before: "n1", After: "n1"},
		},
		{
			name:    "no failure, node changes",
			samples: []Sample{ok(-5, "n1"), ok(5, "n1"), ok(10, "n2"), ok(15, "n2")},
			faultAt: ms(0),
			want: Result{FaultAt: ms(0), Recovered: true, Before: "n1", After: "n2",
				FirstNew: ok(10, "n2")},
		},
		{
			name: "outage then recovery on another node",
			samples: []Sample{
				ok(-10, "n1"), ok(-5, "n1"), bad(0), bad(5), bad(10), ok(15, "n2"), ok(20, "n2"),
			},
			faultAt: ms(-2),
			want: Result{FaultAt: ms(-2), Outage: 17 * time.Millisecond, Failed: 3, Recovered: true,
				Before: "n1", After: "n2", FirstFail: bad(0), LastFail: bad(10), Recovery: ok(15, "n2"),
				FirstNew: ok(15, "n2")},
		},
		{
			name: "out of order input, an OK between failures does not end the outage",
			samples: []Sample{
				ok(30, "n2"), bad(10), ok(-5, "n1"), ok(5, "n1"), bad(20), bad(0), ok(25, "n2"),
			},
			faultAt: ms(0),
			want: Result{FaultAt: ms(0), Outage: 25 * time.Millisecond, Failed: 3, Recovered: true,
				Before: "n1", After: "n2", FirstFail: bad(0), LastFail: bad(20), Recovery: ok(25, "n2"),
				FirstNew: ok(25, "n2")},
		},
		{
			name:    "failures before the fault do not count",
			samples: []Sample{bad(-20), ok(-10, "n1"), bad(10), ok(20, "n1")},
			faultAt: ms(0),
			want: Result{FaultAt: ms(0), Outage: 20 * time.Millisecond, Failed: 1, Recovered: true,
				Before: "n1", After: "n1", FirstFail: bad(10), LastFail: bad(10), Recovery: ok(20, "n1")},
		},
		{
			name:    "a sample at the fault instant counts",
			samples: []Sample{ok(-5, "n1"), bad(0), ok(5, "n2")},
			faultAt: ms(0),
			want: Result{FaultAt: ms(0), Outage: 5 * time.Millisecond, Failed: 1, Recovered: true,
				Before: "n1", After: "n2", FirstFail: bad(0), LastFail: bad(0), Recovery: ok(5, "n2"),
				FirstNew: ok(5, "n2")},
		},
		{
			name:    "never recovered: outage runs to the last sample",
			samples: []Sample{ok(-5, "n1"), bad(5), bad(10), bad(40)},
			faultAt: ms(0),
			want: Result{FaultAt: ms(0), Outage: 40 * time.Millisecond, Failed: 3, Recovered: false,
				Before: "n1", FirstFail: bad(5), LastFail: bad(40)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Measure(tt.samples, tt.faultAt)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Measure mismatch (-want +got):\n%s", diff)
			}
			gap, failed := Outage(tt.samples, tt.faultAt)
			if gap != tt.want.Outage || failed != tt.want.Failed {
				t.Errorf("Outage = %v, %d; want %v, %d", gap, failed, tt.want.Outage, tt.want.Failed)
			}
		})
	}
}

func TestFailedCount(t *testing.T) {
	s := []Sample{bad(-10), ok(-5, "n1"), bad(0), bad(3), ok(4, "n2"), bad(9)}
	for _, tt := range []struct {
		from int
		want int
	}{{-100, 4}, {-10, 4}, {-9, 3}, {0, 3}, {1, 2}, {9, 1}, {10, 0}} {
		if got := FailedCount(s, ms(tt.from)); got != tt.want {
			t.Errorf("FailedCount(from %dms) = %d, want %d", tt.from, got, tt.want)
		}
	}
}

func TestParseSample(t *testing.T) {
	text := fmt.Sprintf(`{"t":%d,"ok":true,"node":"n2","ms":1.5}`, ms(7).UnixNano()+1)
	l := Line{Text: text, Fields: map[string]any{"t": 0.0}}
	got, good := ParseSample(l)
	want := Sample{At: ms(7).Add(1), OK: true, Node: "n2", Latency: 1500 * time.Microsecond}
	if !good || !got.At.Equal(want.At) || got.OK != want.OK || got.Node != want.Node || got.Latency != want.Latency {
		t.Errorf("ParseSample = %+v, %v; want %+v", got, good, want)
	}
	if _, good := ParseSample(Line{Text: "not json"}); good {
		t.Error("ParseSample accepted a non-JSON line")
	}
	if _, good := ParseSample(Line{Text: `{"msg":"listening"}`, Fields: map[string]any{"msg": "listening"}}); good {
		t.Error("ParseSample accepted a line without t")
	}
}

func TestIsLabNamespace(t *testing.T) {
	for name, want := range map[string]bool{
		"flab-br": true, "flab-c": true, "flab-n1": true, "flab-n12": true,
		"flab-n": false, "flab-nx": false, "flab": false, "flabx-n1": false, "xflab-n1": false,
		"flab-br2": false, "flab-c1": false, "flab2-n1": false,
	} {
		if got := isLabNamespace("flab", name); got != want {
			t.Errorf("isLabNamespace(flab, %q) = %v, want %v", name, got, want)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	exe := "/bin/sh"
	bad := map[string]Options{
		"upper-case prefix":  {Prefix: "Flab", Binary: exe},
		"long prefix":        {Prefix: "toolongprefix", Binary: exe},
		"dash in prefix":     {Prefix: "a-b", Binary: exe},
		"too many nodes":     {Nodes: MaxNodes + 1, Binary: exe},
		"negative nodes":     {Nodes: -1, Binary: exe},
		"VIP outside lab":    {VIP: netip.MustParseAddr("10.0.0.1"), Binary: exe},
		"VIP is a node":      {Nodes: 3, VIP: NodeIP(3), Binary: exe},
		"VIP is the client":  {VIP: ClientIP, Binary: exe},
		"VIP is broadcast":   {VIP: netip.MustParseAddr("198.18.0.255"), Binary: exe},
		"IPv6 VIP":           {VIP: netip.MustParseAddr("2001:db8::1"), Binary: exe},
		"missing binary":     {Binary: "/nonexistent/floatip"},
		"binary not execute": {Binary: "/etc/passwd"},
	}
	for name, o := range bad {
		if err := o.setDefaults(); err == nil {
			t.Errorf("%s: setDefaults accepted %+v", name, o)
		}
	}
	o := Options{Binary: exe}
	if err := o.setDefaults(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if o.Prefix != "flab" || o.Nodes != 2 || o.VIP != DefaultVIP {
		t.Errorf("defaults = %+v", o)
	}
}

func TestShortErr(t *testing.T) {
	for err, want := range map[error]string{
		context.DeadlineExceeded:                     "timeout",
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED): "refused",
		&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}: "host unreachable",
		io.ErrUnexpectedEOF:       "eof",
		errors.New("odd failure"): "odd failure",
	} {
		if got := shortErr(err); got != want {
			t.Errorf("shortErr(%v) = %q, want %q", err, got, want)
		}
	}
}
