package bench

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floatip/floatip/internal/lab"
)

func TestPercentiles(t *testing.T) {
	tests := []struct {
		name             string
		xs               []float64
		median, p90, max float64
	}{
		{"empty", nil, 0, 0, 0},
		{"one", []float64{7}, 7, 7, 7},
		{"two", []float64{10, 20}, 15, 19, 20},
		{"five unsorted", []float64{300, 100, 500, 200, 400}, 300, 460, 500},
		{"four", []float64{4, 1, 3, 2}, 2.5, 3.7, 4},
		{"ties", []float64{5, 5, 5, 9, 5}, 5, 7.4, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.xs...)
			if got := Median(tt.xs); !near(got, tt.median) {
				t.Errorf("Median = %v, want %v", got, tt.median)
			}
			if got := Percentile(tt.xs, 90); !near(got, tt.p90) {
				t.Errorf("Percentile(90) = %v, want %v", got, tt.p90)
			}
			if got := Max(tt.xs); got != tt.max {
				t.Errorf("Max = %v, want %v", got, tt.max)
			}
			if diff := cmp.Diff(in, tt.xs); diff != "" {
				t.Errorf("input modified (-before +after):\n%s", diff)
			}
		})
	}
	if got := Percentile([]float64{1, 2, 3}, 0); got != 1 {
		t.Errorf("p0 = %v, want 1", got)
	}
	if got := Percentile([]float64{1, 2, 3}, 100); got != 3 {
		t.Errorf("p100 = %v, want 3", got)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestSummarize(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	trials := []Trial{
		{Impl: "floatip", Fault: lab.FaultPowerOff, Trial: 1, OutageMS: 200, Recovered: true, Failed: 40, HoldersEnd: []string{"n2"}},
		{Impl: "floatip", Fault: lab.FaultPowerOff, Trial: 2, OutageMS: 180, Recovered: true, Failed: 36, HoldersEnd: []string{"n2"}, Disturbed: true},
		{Impl: "floatip", Fault: lab.FaultPowerOff, Trial: 3, Err: "lab: creating namespaces: boom"},
		{Impl: "floatip", Fault: lab.FaultPowerOff, Trial: 4, OutageMS: 260, Recovered: true, Failed: 50, TwoHoldersMS: 20, HoldersEnd: []string{"n2"}},
		{Impl: "keepalived-1s", Fault: lab.FaultCrash, Trial: 1, TwoHoldersMS: 5000, Recovered: true, HoldersEnd: []string{"n1", "n2"}},
		{Impl: "keepalived-1s", Fault: lab.FaultCrash, Trial: 2, TwoHoldersMS: 5100, Recovered: true, HoldersEnd: []string{"n1", "n2"}},
		{Impl: "keepalived-1s", Fault: lab.FaultCrash, Trial: 3, TwoHoldersMS: 0, OutageMS: 9000, Recovered: false, Failed: 1800, HoldersEnd: []string{}, GoneMS: f(4000)},
		{Impl: "floatip", Fault: lab.FaultPartition, Trial: 1, OutageMS: 160, Recovered: true, Failed: 30, TwoHoldersMS: 3000, HoldersEnd: []string{"n1"}, HealToOneMS: f(150)},
		{Impl: "floatip", Fault: lab.FaultPartition, Trial: 2, OutageMS: 170, Recovered: true, Failed: 32, TwoHoldersMS: 3010, HoldersEnd: []string{"n1"}, HealToOneMS: f(170)},
		{Impl: "floatip", Fault: lab.FaultPartition, Trial: 3, OutageMS: 175, Recovered: true, Failed: 33, TwoHoldersMS: 4000, HoldersEnd: []string{"n1", "n2"}},
		{Impl: "broken", Fault: lab.FaultStop, Trial: 1, Err: "no holder"},
	}
	got := Summarize(trials)
	want := []Summary{
		{
			Impl: "floatip", Fault: lab.FaultPowerOff, Trials: 3, Errors: 1, Disturbed: 1,
			OutageMedianMS: 200, OutageP90MS: 248, OutageMaxMS: 260,
			FailedMedian: 40, TwoHoldersMedianMS: 0, TwoHoldersMaxMS: 20,
			HoldersEndMajority: 1, HoldersEndWorst: 1,
		},
		{
			Impl: "keepalived-1s", Fault: lab.FaultCrash, Trials: 3,
			OutageMedianMS: 0, OutageP90MS: 7200, OutageMaxMS: 9000, NotRecovered: 1,
			FailedMedian: 0, TwoHoldersMedianMS: 5000, TwoHoldersMaxMS: 5100,
			HoldersEndMajority: 2, HoldersEndWorst: 2,
			GoneMedianMS: f(4000), GoneMaxMS: f(4000), Stuck: 2,
		},
		{
			Impl: "floatip", Fault: lab.FaultPartition, Trials: 3,
			OutageMedianMS: 170, OutageP90MS: 174, OutageMaxMS: 175,
			FailedMedian: 32, TwoHoldersMedianMS: 3010, TwoHoldersMaxMS: 4000,
			HoldersEndMajority: 1, HoldersEndWorst: 2,
			HealToOneMedianMS: f(160), HealToOneMaxMS: f(170), Unsettled: 1,
		},
		{Impl: "broken", Fault: lab.FaultStop, Errors: 1},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return near(a, b) })); diff != "" {
		t.Errorf("Summarize (-want +got):\n%s", diff)
	}
}

func TestMajorityAndWorst(t *testing.T) {
	if got := majority([]int{1, 2, 1, 2}); got != 2 {
		t.Errorf("majority tie = %d, want the larger, 2", got)
	}
	if got := majority([]int{0, 1, 1}); got != 1 {
		t.Errorf("majority = %d, want 1", got)
	}
	// None holding is as bad as two holding; two wins the tie.
	s := summarize("x", lab.FaultStop, []Trial{
		{HoldersEnd: []string{}}, {HoldersEnd: []string{"n1"}}, {HoldersEnd: []string{"n1"}},
	})
	if s.HoldersEndWorst != 0 || s.HoldersEndMajority != 1 {
		t.Errorf("worst %d majority %d, want 0 and 1", s.HoldersEndWorst, s.HoldersEndMajority)
	}
}

var base = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

func obs(ms int, holders ...string) lab.HolderObs { return lab.HolderObs{At: at(ms), Holders: holders} }

func TestTwoHolderTime(t *testing.T) {
	o := []lab.HolderObs{
		obs(-20, "n1"),
		obs(-10, "n1", "n2"), // counts from the fault (0) to 30
		obs(30, "n2"),
		obs(40, "n1", "n2"), // 40..70
		obs(70, "n1"),
		obs(100, "n1", "n2"), // 100..to (120)
	}
	if got, want := TwoHolderTime(o, at(0), at(120)), 80*time.Millisecond; got != want {
		t.Errorf("TwoHolderTime = %v, want %v", got, want)
	}
	if got := TwoHolderTime(nil, at(0), at(100)); got != 0 {
		t.Errorf("no observations: %v, want 0", got)
	}
	if got := TwoHolderTime(o, at(200), at(300)); got != 100*time.Millisecond {
		t.Errorf("window after the last observation: %v, want 100ms", got)
	}
}

func TestSettledAt(t *testing.T) {
	tests := []struct {
		name   string
		obs    []lab.HolderObs
		from   int
		want   int
		wantOK bool
	}{
		{"settles after the heal", []lab.HolderObs{obs(0, "n1", "n2"), obs(10, "n1", "n2"), obs(20, "n1"), obs(30, "n1")}, 5, 20, true},
		{"single holder throughout", []lab.HolderObs{obs(0, "n2"), obs(10, "n2"), obs(20, "n1")}, 5, 5, true},
		{"flaps, the final run counts", []lab.HolderObs{obs(0, "n1"), obs(10, "n1", "n2"), obs(20), obs(30, "n2")}, 0, 30, true},
		{"ends with two", []lab.HolderObs{obs(0, "n1"), obs(10, "n1", "n2")}, 0, 0, false},
		{"ends with none", []lab.HolderObs{obs(0, "n1"), obs(10)}, 0, 0, false},
		{"nothing observed after from", []lab.HolderObs{obs(0, "n1")}, 5, 0, false},
		{"no observations", nil, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SettledAt(tt.obs, at(tt.from))
			if ok != tt.wantOK || (ok && !got.Equal(at(tt.want))) {
				t.Errorf("SettledAt = %v, %v; want %v, %v", got.Sub(base), ok, time.Duration(tt.want)*time.Millisecond, tt.wantOK)
			}
		})
	}
}

func TestKeepalivedConfig(t *testing.T) {
	got := KeepalivedConfig("n2", 150, 100*time.Millisecond, []netip.Addr{mustAddr("198.18.0.100")}, "")
	for _, want := range []string{"router_id n2", "vrrp_version 3", "state BACKUP", "interface eth0",
		"virtual_router_id 51", "priority 150", "advert_int 0.1", "198.18.0.100/32 dev eth0"} {
		if !contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if contains(got, "vrrp_script") || contains(got, "track_script") {
		t.Errorf("a config without a check has a script:\n%s", got)
	}
	got = KeepalivedConfig("n2", 150, time.Second, []netip.Addr{mustAddr("198.18.0.100")}, "/x/floatip lab httpcheck --url http://127.0.0.1:8080/")
	for _, want := range []string{"vrrp_script chk_service", `script "/x/floatip lab httpcheck --url http://127.0.0.1:8080/"`,
		"interval 1", "fall 2", "rise 2", "track_script {\n        chk_service\n    }"} {
		if !contains(got, want) {
			t.Errorf("config with a check lacks %q:\n%s", want, got)
		}
	}
	if contains(got, "excluded") {
		t.Errorf("an IPv4-only config has an excluded block:\n%s", got)
	}
	// IPv6: the instance's family is the VIP's; dual stack: the IPv6 VIP
	// rides along, excluded from the IPv4 adverts.
	got = KeepalivedConfig("n1", 200, time.Second, []netip.Addr{mustAddr("2001:db8:18::100")}, "")
	if !contains(got, "virtual_ipaddress {\n        2001:db8:18::100/128 dev eth0\n    }") || contains(got, "excluded") {
		t.Errorf("IPv6 config:\n%s", got)
	}
	got = KeepalivedConfig("n1", 200, time.Second, []netip.Addr{mustAddr("198.18.0.100"), mustAddr("2001:db8:18::100")}, "")
	if !contains(got, "virtual_ipaddress {\n        198.18.0.100/32 dev eth0\n    }\n    virtual_ipaddress_excluded {\n        2001:db8:18::100/128 dev eth0\n    }") {
		t.Errorf("dual-stack config:\n%s", got)
	}
	if got := seconds(time.Second); got != "1" {
		t.Errorf("seconds(1s) = %q, want 1", got)
	}
}

func TestClientRate(t *testing.T) {
	tests := []struct {
		sent int
		d    time.Duration
		want float64
	}{
		{400, 2 * time.Second, 1},
		{169, 2563 * time.Millisecond, 0.33},
		{0, 5 * time.Second, 0},
		{3, 20 * time.Millisecond, 1}, // too short to judge
	}
	for _, tt := range tests {
		if got := clientRate(tt.sent, tt.d, 5*time.Millisecond); got != tt.want {
			t.Errorf("clientRate(%d, %v) = %v, want %v", tt.sent, tt.d, got, tt.want)
		}
	}
}
