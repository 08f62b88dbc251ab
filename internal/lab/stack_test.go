package lab

import (
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		name string
		per  [][]string
		want bool
	}{
		{"both on n1", [][]string{{"n1"}, {"n1"}}, false},
		{"nobody", [][]string{nil, nil}, false},
		{"v4 on n2, v6 not yet", [][]string{{"n2"}, nil}, false},
		{"v4 on n2, v6 on n1", [][]string{{"n2"}, {"n1"}}, true},
		{"n2 claiming: v4 on n1,n2, v6 on n1", [][]string{{"n1", "n2"}, {"n1"}}, true},
		{"partition: both on n1 and n2", [][]string{{"n1", "n2"}, {"n1", "n2"}}, false},
		{"one VIP", [][]string{{"n1", "n2"}}, false},
	}
	for _, c := range cases {
		if got := Split(c.per); got != c.want {
			t.Errorf("%s: Split(%v) = %v, want %v", c.name, c.per, got, c.want)
		}
	}
}

func TestWhole(t *testing.T) {
	if got := whole([][]string{{"n1", "n2"}, {"n2"}}); len(got) != 1 || got[0] != "n2" {
		t.Errorf("whole = %v, want [n2]", got)
	}
	if got := whole([][]string{{"n1"}, nil}); len(got) != 0 {
		t.Errorf("whole = %v, want none", got)
	}
}

func TestSplitTimeAndGoneAt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	obs := []GroupObs{
		{At: at(-500), Holders: [][]string{{"n1"}, {"n1"}}},
		{At: at(100), Holders: [][]string{{"n2"}, {"n1"}}}, // split for 30 ms
		{At: at(130), Holders: [][]string{{"n2"}, nil}},
		{At: at(140), Holders: [][]string{{"n2"}, {"n2"}}},
	}
	if got := SplitTime(obs, t0, at(1000)); got != 30*time.Millisecond {
		t.Errorf("SplitTime = %v, want 30ms", got)
	}
	if got := SplitTime(obs, at(120), at(1000)); got != 10*time.Millisecond {
		t.Errorf("SplitTime from 120 ms = %v, want 10ms", got)
	}
	if g, ok := GoneAt(obs, "n1", t0); !ok || !g.Equal(at(130)) {
		t.Errorf("GoneAt n1 = %v %v, want +130ms", g.Sub(t0), ok)
	}
	if _, ok := GoneAt(obs, "n2", at(140)); ok {
		t.Error("GoneAt n2 from +140ms: n2 holds from then to the end")
	}
	if g, ok := GoneAt(obs, "n3", t0); !ok || !g.Equal(t0) {
		t.Errorf("GoneAt n3 = %v %v, want the start", g.Sub(t0), ok)
	}
	s := Series(obs, 1)
	if len(s) != 3 || len(WholeSeries(obs)) != 3 {
		t.Errorf("Series(1) %v, WholeSeries %v", s, WholeSeries(obs))
	}
}
