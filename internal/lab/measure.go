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

// Gap is one run of failed requests, in send order: from the first failed
// request to the first successful one after the run.
type Gap struct {
	First    Sample        // the run's first failed request
	Recovery Sample        // the first successful request after the run; zero when none came
	Failed   int           // the run's failed requests
	Len      time.Duration // First to Recovery (to the last sample when none came)
}

// Gaps splits the failed requests sent at or after from into runs, each
// ended by a successful request; the outage the client saw is in their
// lengths, not in the time since the fault.
func Gaps(samples []Sample, from time.Time) []Gap {
	s := append([]Sample(nil), samples...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].At.Before(s[j].At) })
	var gaps []Gap
	var cur *Gap
	for _, x := range s {
		if x.At.Before(from) {
			continue
		}
		switch {
		case !x.OK && cur == nil:
			gaps = append(gaps, Gap{First: x, Failed: 1})
			cur = &gaps[len(gaps)-1]
		case !x.OK:
			cur.Failed++
		case cur != nil:
			cur.Recovery = x
			cur.Len = x.At.Sub(cur.First.At)
			cur = nil
		}
	}
	if cur != nil && len(s) > 0 {
		cur.Len = s[len(s)-1].At.Sub(cur.First.At)
	}
	return gaps
}

// Span is a stretch of successful requests answered by one node.
type Span struct {
	Node     string
	From, To time.Time // send times of its first and last request
	N        int       // requests answered
}

// AnsweringSpans is who answered over time: the successful requests (in
// send order) grouped into runs of the same node; failures do not break a
// run.
func AnsweringSpans(samples []Sample) []Span {
	s := append([]Sample(nil), samples...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].At.Before(s[j].At) })
	var out []Span
	for _, x := range s {
		if !x.OK {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Node == x.Node {
			out[n-1].To = x.At
			out[n-1].N++
			continue
		}
		out = append(out, Span{Node: x.Node, From: x.At, To: x.At, N: 1})
	}
	return out
}

// MultiHolder is how long, between from and to, more than one node held
// the VIP according to the observations (HolderRecorder).
func MultiHolder(obs []HolderObs, from, to time.Time) time.Duration {
	var d time.Duration
	for i, o := range obs {
		if len(o.Holders) < 2 {
			continue
		}
		end := to
		if i+1 < len(obs) {
			end = obs[i+1].At
		}
		a, b := o.At, end
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}
