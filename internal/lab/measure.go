package lab

import (
	"sort"
	"time"
)

// Result is what one fault did to the client, as Measure reads it from the
// samples.
type Result struct {
	FaultAt time.Time
	// Outage runs from FaultAt to the send time of the first successful
	// request after the last failed one sent at or after FaultAt; 0 when no
	// request failed. When the client never recovered (Recovered false) it
	// runs to the last sample and only gives a lower bound.
	Outage time.Duration
	// Failed counts the failed requests sent at or after FaultAt.
	Failed int
	// Recovered is false when a request failed at or after FaultAt and no
	// request succeeded after the last failure.
	Recovered bool
	// Before is the node that answered the last successful request sent
	// before FaultAt ("" when none did).
	Before string
	// After is the node that answered the last successful request sent at or
	// after FaultAt ("" when none did).
	After string
	// FirstFail and LastFail are the first and last failed requests sent at
	// or after FaultAt (zero when none failed).
	FirstFail, LastFail Sample
	// Recovery is the first successful request after LastFail (zero when
	// none failed or the client never recovered).
	Recovery Sample
	// FirstNew is the first successful request sent at or after FaultAt that
	// a node other than Before answered (zero when there is none).
	FirstNew Sample
}

// Measure reads the effect of a fault at faultAt from the client's samples
// (in any order).
func Measure(samples []Sample, faultAt time.Time) Result {
	s := append([]Sample(nil), samples...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].At.Before(s[j].At) })
	r := Result{FaultAt: faultAt, Recovered: true}
	lastFail := -1
	for i, x := range s {
		if x.At.Before(faultAt) {
			if x.OK {
				r.Before = x.Node
			}
			continue
		}
		if x.OK {
			r.After = x.Node
			continue
		}
		if r.Failed == 0 {
			r.FirstFail = x
		}
		r.Failed++
		r.LastFail = x
		lastFail = i
	}
	for _, x := range s {
		if !x.At.Before(faultAt) && x.OK && x.Node != r.Before {
			r.FirstNew = x
			break
		}
	}
	if lastFail < 0 {
		return r
	}
	for _, x := range s[lastFail+1:] {
		if x.OK {
			r.Recovery = x
			r.Outage = x.At.Sub(faultAt)
			return r
		}
	}
	r.Recovered = false
	r.Outage = s[len(s)-1].At.Sub(faultAt)
	return r
}

// Outage is Measure's Outage and Failed: from faultAt to the first
// successful request after the last failed one at or after faultAt (0 when
// none failed), and how many requests failed. Check Measure's Recovered when
// the client may never have recovered.
func Outage(samples []Sample, faultAt time.Time) (gap time.Duration, failed int) {
	r := Measure(samples, faultAt)
	return r.Outage, r.Failed
}

// FailedCount counts the failed requests sent at or after from.
func FailedCount(samples []Sample, from time.Time) int {
	n := 0
	for _, x := range samples {
		if !x.OK && !x.At.Before(from) {
			n++
		}
	}
	return n
}
