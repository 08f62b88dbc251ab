package bench

import (
	"math"
	"slices"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// Median is the middle value of xs (the mean of the two middle values for an
// even count); 0 for no values.
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// Percentile is the p-th percentile (0..100) of xs by linear interpolation
// between closest ranks (the "R-7" rule of R and NumPy's default): rank
// p/100*(n-1), 0-based, in the sorted values. 0 for no values. With 5 trials
// p90 lies 60% of the way from the 4th to the 5th smallest value.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	p = min(max(p, 0), 100)
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return s[lo] + (s[hi]-s[lo])*(rank-float64(lo))
}

// Max is the largest value of xs; 0 for no values.
func Max(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

// majority is the most frequent value of xs, the larger one on a tie; 0 for
// no values.
func majority(xs []int) int {
	count := map[int]int{}
	best, bestN := 0, 0
	for _, x := range xs {
		count[x]++
		if n := count[x]; n > bestN || (n == bestN && x > best) {
			best, bestN = x, n
		}
	}
	return best
}

// Summary aggregates the trials of one implementation under one fault.
// Trials that failed to run (Trial.Err set) count in Errors only; every
// statistic is over the trials that ran.
type Summary struct {
	Impl   string        `json:"impl"`
	Fault  lab.FaultKind `json:"fault"`
	Stack  lab.Stack     `json:"stack"`
	Trials int           `json:"trials"` // trials that ran
	Errors int           `json:"errors"` // trials that could not run
	// Disturbed counts trials (included in the statistics) whose client
	// could not keep its pace: the machine was busy.
	Disturbed int `json:"disturbed,omitempty"`

	OutageMedianMS float64 `json:"outage_median_ms"`
	OutageP90MS    float64 `json:"outage_p90_ms"`
	OutageMaxMS    float64 `json:"outage_max_ms"`
	// NotRecovered counts trials whose client still failed at the end; their
	// outage is a lower bound.
	NotRecovered int `json:"not_recovered"`

	FailedMedian float64 `json:"failed_requests_median"`

	TwoHoldersMedianMS float64 `json:"two_holders_median_ms"`
	TwoHoldersMaxMS    float64 `json:"two_holders_max_ms"`

	// Changes of the holders after the fault (Trial.Moves).
	MovesMedian float64 `json:"moves_median"`
	MovesMax    int     `json:"moves_max"`

	// HoldersEndMajority is the most frequent number of holders at the end of
	// a trial, HoldersEndWorst the one furthest from 1 (0 or 2+).
	HoldersEndMajority int `json:"holders_end_majority"`
	HoldersEndWorst    int `json:"holders_end_worst"`

	// Partition only: from the heal to exactly one holder for good. Unsettled
	// counts trials that ended without a single holder; they are left out of
	// the median and max. Nil for the other faults.
	HealToOneMedianMS *float64 `json:"heal_to_one_median_ms,omitempty"`
	HealToOneMaxMS    *float64 `json:"heal_to_one_max_ms,omitempty"`
	Unsettled         int      `json:"unsettled,omitempty"`

	// Dual stack: the time the group's VIPs were on different nodes.
	SplitMedianMS float64 `json:"split_median_ms,omitempty"`
	SplitMaxMS    float64 `json:"split_max_ms,omitempty"`
	// Crash: from the fault to the VIP's leaving the killed
	// node's kernel (Trial.GoneMS); Stuck counts trials where it never did.
	GoneMedianMS *float64 `json:"vip_gone_median_ms,omitempty"`
	GoneMaxMS    *float64 `json:"vip_gone_max_ms,omitempty"`
	Stuck        int      `json:"vip_stuck,omitempty"`
}

// Summarize groups trials by implementation, fault and stack, in the order
// each first appears, and aggregates each group.
func Summarize(trials []Trial) []Summary {
	type key struct {
		impl  string
		fault lab.FaultKind
		stack lab.Stack
	}
	var order []key
	groups := map[key][]Trial{}
	for _, t := range trials {
		k := key{t.Impl, t.Fault, t.Stack}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		s := summarize(k.impl, k.fault, groups[k])
		s.Stack = k.stack
		out = append(out, s)
	}
	return out
}

func summarize(impl string, fault lab.FaultKind, trials []Trial) Summary {
	s := Summary{Impl: impl, Fault: fault}
	var outage, failed, two, heal, moves, split, gone []float64
	var ends []int
	partition := false
	for _, t := range trials {
		if t.Err != "" {
			s.Errors++
			continue
		}
		s.Trials++
		if t.Disturbed {
			s.Disturbed++
		}
		outage = append(outage, t.OutageMS)
		failed = append(failed, float64(t.Failed))
		two = append(two, t.TwoHoldersMS)
		split = append(split, t.SplitMS)
		if t.Fault == lab.FaultCrash {
			if t.GoneMS != nil {
				gone = append(gone, *t.GoneMS)
			} else {
				s.Stuck++
			}
		}
		moves = append(moves, float64(t.Moves))
		s.MovesMax = max(s.MovesMax, t.Moves)
		if !t.Recovered {
			s.NotRecovered++
		}
		n := len(t.HoldersEnd)
		ends = append(ends, n)
		if s.Trials == 1 || distanceFromOne(n) > distanceFromOne(s.HoldersEndWorst) ||
			(distanceFromOne(n) == distanceFromOne(s.HoldersEndWorst) && n > s.HoldersEndWorst) {
			s.HoldersEndWorst = n
		}
		if t.Fault == lab.FaultPartition {
			partition = true
			if t.HealToOneMS != nil {
				heal = append(heal, *t.HealToOneMS)
			} else {
				s.Unsettled++
			}
		}
	}
	if s.Trials == 0 {
		return s
	}
	s.OutageMedianMS = Median(outage)
	s.OutageP90MS = Percentile(outage, 90)
	s.OutageMaxMS = Max(outage)
	s.FailedMedian = Median(failed)
	s.TwoHoldersMedianMS = Median(two)
	s.TwoHoldersMaxMS = Max(two)
	s.MovesMedian = Median(moves)
	s.HoldersEndMajority = majority(ends)
	s.SplitMedianMS, s.SplitMaxMS = Median(split), Max(split)
	if len(gone) > 0 {
		med, mx := Median(gone), Max(gone)
		s.GoneMedianMS, s.GoneMaxMS = &med, &mx
	}
	if partition && len(heal) > 0 {
		med, mx := Median(heal), Max(heal)
		s.HealToOneMedianMS, s.HealToOneMaxMS = &med, &mx
	}
	return s
}

func distanceFromOne(n int) int {
	if n < 1 {
		return 1 - n
	}
	return n - 1
}

// TwoHolderTime is how long, between from and to, two or more nodes held the
// VIP according to obs (sorted by time): each observation counts until the
// next one (the last until to).
func TwoHolderTime(obs []lab.HolderObs, from, to time.Time) time.Duration {
	return lab.TimeWhere(obs, func(o lab.HolderObs) time.Time { return o.At }, from, to,
		func(o lab.HolderObs) bool { return len(o.Holders) >= 2 })
}

// TwoHolderTimeGroup is TwoHolderTime for a group: how long, between from
// and to, any of its VIPs was on two or more nodes.
func TwoHolderTimeGroup(obs []lab.GroupObs, from, to time.Time) time.Duration {
	return lab.TimeWhere(obs, func(o lab.GroupObs) time.Time { return o.At }, from, to,
		func(o lab.GroupObs) bool {
			return slices.ContainsFunc(o.Holders, func(h []string) bool { return len(h) >= 2 })
		})
}

// SettledAt is when the VIP came to have exactly one holder for good, as
// seen from time from on: the start of the final run of single-holder
// observations (from itself when that run began earlier). ok is false when
// the last observation does not show exactly one holder or there is none at
// or after from.
func SettledAt(obs []lab.HolderObs, from time.Time) (at time.Time, ok bool) {
	if len(obs) == 0 || len(obs[len(obs)-1].Holders) != 1 || obs[len(obs)-1].At.Before(from) {
		return time.Time{}, false
	}
	i := len(obs) - 1
	for i > 0 && len(obs[i-1].Holders) == 1 {
		i--
	}
	if obs[i].At.Before(from) {
		return from, true
	}
	return obs[i].At, true
}
