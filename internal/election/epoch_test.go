package election

import (
	"slices"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// epoch is a node's Epoch in these tests: not a round time, so that the
// grid is seen to count from it.
var epoch = t0.Add(-7 * time.Millisecond)

func withEpoch(e time.Time) option { return func(p *Params) { p.Epoch = e } }

// probeTimes runs a standby whose holder's kernel answers every probe at
// once, for d, and returns when it sent probes.
func probeTimes(h *harness, d time.Duration) []time.Time {
	h.t.Helper()
	var at []time.Time
	end := h.now.Add(d)
	for h.now.Before(end) {
		for _, p := range sends(h.tick()) {
			if p.IsProbe() && p.Trailer != nil && (p.Trailer.Kind == arp.KindProbe || p.Trailer.Kind == arp.KindBeacon) {
				at = append(at, h.now)
				h.frame(kernelReply(macPeerA, h.p.MAC))
			}
		}
		h.wantState(StateStandby)
	}
	return at
}

// TestEpochGridStandby: with an Epoch, a standby's probes lie on the
// CheckInterval grid counted from it, so a relaxed group (which starts its
// rounds at another moment) probes at instants when the leading group of
// the node probes too; no probe comes sooner than its interval, and none
// later than one grid step after it.
func TestEpochGridStandby(t *testing.T) {
	for _, prof := range profiles {
		t.Run(prof, func(t *testing.T) {
			tm := profileTiming(prof)
			lead := newHarness(t, withTiming(tm), withEpoch(epoch))
			lead.becomeStandby(macPeerA)
			relaxed := newHarness(t, withTiming(tm), withEpoch(epoch))
			relaxed.now = t0.Add(13 * time.Millisecond)
			relaxed.becomeStandby(macPeerA)
			relaxed.do(Pace{Relaxed: true})

			leadAt := probeTimes(lead, 5*time.Second)
			relaxedAt := probeTimes(relaxed, 5*time.Second)
			for i, at := range leadAt[1:] {
				if g := at.Sub(leadAt[i]); g < tm.CheckInterval || g >= 2*tm.CheckInterval {
					t.Fatalf("leading group: probe gap %v at %s, want %v (at most one grid step more)", g, lead.rel(at), tm.CheckInterval)
				}
				if i > 0 && at.Sub(leadAt[i]) != tm.CheckInterval {
					t.Fatalf("leading group: probe gap %v at %s after the first, want %v", at.Sub(leadAt[i]), lead.rel(at), tm.CheckInterval)
				}
			}
			relaxedIv := max(2*tm.BeaconInterval, tm.CheckInterval)
			for i, at := range relaxedAt[1:] {
				if g := at.Sub(relaxedAt[i]); g < relaxedIv || g >= relaxedIv+tm.CheckInterval {
					t.Fatalf("relaxed group: probe gap %v at %s, want %v to %v", g, relaxed.rel(at), relaxedIv, relaxedIv+tm.CheckInterval)
				}
			}
			for _, at := range relaxedAt[1:] {
				if at.Before(leadAt[len(leadAt)-1]) && !slices.ContainsFunc(leadAt, at.Equal) {
					t.Fatalf("relaxed group probed at %s, when the leading group did not (it probes on %v after the epoch)", relaxed.rel(at), tm.CheckInterval)
				}
			}
		})
	}
}

// holderTimes runs a holder for d and returns when it renewed its VIPs and
// when it sent its beacon (the holder's check for a second holder).
func holderTimes(h *harness, d time.Duration) (renewals, beacons []time.Time) {
	h.t.Helper()
	end := h.now.Add(d)
	for h.now.Before(end) {
		acts := h.tick()
		if countOf[AddVIPs](acts) > 0 {
			renewals = append(renewals, h.now)
		}
		for _, p := range sends(acts) {
			if p.IsProbe() && p.Trailer != nil && p.Trailer.Kind == arp.KindBeacon {
				beacons = append(beacons, h.now)
			}
		}
		h.wantState(StateHolder)
	}
	return renewals, beacons
}

// TestEpochGridHolder: with an Epoch, holders that claimed at different
// moments renew and beacon at the same instants once the first round is
// over, and never later than RenewInterval and BeaconInterval after the
// last time: the first round may only come early.
func TestEpochGridHolder(t *testing.T) {
	for _, prof := range profiles {
		t.Run(prof, func(t *testing.T) {
			tm := profileTiming(prof)
			var renewals, beacons [2][]time.Time
			var claimed [2]time.Time
			for i, start := range []time.Duration{0, 123 * time.Millisecond} {
				h := newHarness(t, withTiming(tm), withEpoch(epoch))
				h.now = t0.Add(start)
				h.becomeHolder()
				claimed[i] = h.now
				renewals[i], beacons[i] = holderTimes(h, 10*time.Second)
				check := func(what string, at []time.Time, iv time.Duration) {
					prev := claimed[i]
					for _, a := range at {
						if g := a.Sub(prev); g > iv || g <= 0 {
							t.Fatalf("holder %d: %s %v after the last, want at most %v", i, what, g, iv)
						}
						prev = a
					}
				}
				check("renewal", renewals[i], tm.RenewInterval)
				check("beacon", beacons[i], tm.BeaconInterval)
			}
			// After the first rounds, the same instants for both.
			within := func(at []time.Time) []time.Time {
				var out []time.Time
				for _, a := range at {
					if a.After(t0.Add(3*time.Second)) && a.Before(t0.Add(9*time.Second)) {
						out = append(out, a)
					}
				}
				return out
			}
			common := func(what string, a, b []time.Time) {
				x, y := within(a), within(b)
				if len(x) == 0 || !slices.EqualFunc(x, y, time.Time.Equal) {
					t.Fatalf("%s at different instants:\n holder 0 %v\n holder 1 %v", what, x, y)
				}
			}
			common("renewed", renewals[0], renewals[1])
			common("beaconed", beacons[0], beacons[1])
		})
	}
}
