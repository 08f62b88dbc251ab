package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/floatip/floatip/internal/lab"
)

// QuorumSummary aggregates the trials of one implementation under one fault
// of the quorum benchmark; the statistics are over the trials that ran.
type QuorumSummary struct {
	Impl   string        `json:"impl"`
	Fault  lab.FaultKind `json:"fault"`
	Trials int           `json:"trials"`
	Errors int           `json:"errors"`
	// TwoHolderTrials counts the trials with any time of two holders.
	TwoHolderTrials int     `json:"two_holder_trials"`
	TwoHoldersMaxMS float64 `json:"two_holders_max_ms"`
	// Kept counts the trials whose old holder never dropped the VIP.
	Kept         int      `json:"kept"`
	DropMedianMS *float64 `json:"drop_median_ms,omitempty"`
	// MarginMinMS is the smallest (worst) deadline - drop margin.
	MarginMinMS      *float64 `json:"margin_min_ms,omitempty"`
	MarginMedianMS   *float64 `json:"margin_median_ms,omitempty"`
	TakeoverMedianMS *float64 `json:"takeover_median_ms,omitempty"`
	TakeoverMaxMS    *float64 `json:"takeover_max_ms,omitempty"`
	// NoTakeover counts the trials in which no other node ever held.
	NoTakeover     int      `json:"no_takeover"`
	FailedMedian   float64  `json:"failed_requests_median"`
	FailedMax      int      `json:"failed_requests_max"`
	HealToOneMaxMS *float64 `json:"heal_to_one_max_ms,omitempty"`
	// EndNotOne counts the trials that did not end with exactly one holder.
	EndNotOne int `json:"end_not_one"`
}

// SummarizeQuorum summarizes trials per implementation and fault, in the
// order they first appear.
func SummarizeQuorum(trials []QuorumTrial) []QuorumSummary {
	type key struct {
		impl  string
		fault lab.FaultKind
	}
	var order []key
	by := map[key][]QuorumTrial{}
	for _, t := range trials {
		k := key{t.Impl, t.Fault}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], t)
	}
	var out []QuorumSummary
	for _, k := range order {
		s := QuorumSummary{Impl: k.impl, Fault: k.fault}
		var drops, margins, takeovers, heals, failed []float64
		for _, t := range by[k] {
			if t.Err != "" {
				s.Errors++
				continue
			}
			s.Trials++
			if t.TwoHoldersMS > 0 {
				s.TwoHolderTrials++
			}
			s.TwoHoldersMaxMS = max(s.TwoHoldersMaxMS, t.TwoHoldersMS)
			if t.DropMS == nil {
				s.Kept++
			} else {
				drops = append(drops, *t.DropMS)
			}
			if t.MarginMS != nil {
				margins = append(margins, *t.MarginMS)
			}
			if t.TakeoverMS == nil {
				s.NoTakeover++
			} else {
				takeovers = append(takeovers, *t.TakeoverMS)
			}
			if t.HealToOneMS != nil {
				heals = append(heals, *t.HealToOneMS)
			}
			failed = append(failed, float64(t.Failed))
			s.FailedMax = max(s.FailedMax, t.Failed)
			if len(t.HoldersEnd) != 1 {
				s.EndNotOne++
			}
		}
		if len(drops) > 0 {
			s.DropMedianMS = ptr(Median(drops))
		}
		if len(margins) > 0 {
			s.MarginMinMS = ptr(slices.Min(margins))
			s.MarginMedianMS = ptr(Median(margins))
		}
		if len(takeovers) > 0 {
			s.TakeoverMedianMS = ptr(Median(takeovers))
			s.TakeoverMaxMS = ptr(Max(takeovers))
		}
		if len(heals) > 0 {
			s.HealToOneMaxMS = ptr(Max(heals))
		}
		s.FailedMedian = Median(failed)
		out = append(out, s)
	}
	return out
}

func optFmt(f *float64, none string) string {
	if f == nil {
		return none
	}
	return fmtMS(*f) + " ms"
}

// WriteQuorumMarkdown writes the quorum benchmark's table, one row per
// implementation and fault, grouped by fault, with a legend.
func WriteQuorumMarkdown(w io.Writer, res *QuorumResults) error {
	b := &bytes.Buffer{}
	where := "on another member than the holder's"
	if res.LeaderOnHolder {
		where = "on the holder's member"
	}
	fmt.Fprintf(b, "Quorum benchmark: %d nodes, each with an etcd member (etcd leader %s at the fault), TTL %g s, %d trial(s) per row; the holders read from the kernel every 10 ms, a client request every 5 ms.\n\n",
		QuorumNodes, where, res.TTL, res.Trials)
	b.WriteString("| fault | implementation | trials | trials with two holders (max) | old holder dropped the VIP (median) | margin before its deadline (worst / median) | takeover median / max | failed requests median / max | heal → one holder (max) | not one holder at end |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range res.Faults {
		for _, s := range res.Summaries {
			if s.Fault != f {
				continue
			}
			trials := strconv.Itoa(s.Trials)
			if s.Errors > 0 {
				trials += fmt.Sprintf(" (+%d errors)", s.Errors)
			}
			two := fmt.Sprintf("%d (%s ms)", s.TwoHolderTrials, fmtMS(s.TwoHoldersMaxMS))
			drop := optFmt(s.DropMedianMS, "–")
			if s.Kept > 0 {
				drop += fmt.Sprintf(" (kept in %d)", s.Kept)
			}
			margin := "–"
			if s.MarginMinMS != nil {
				margin = fmt.Sprintf("%s / %s", optFmt(s.MarginMinMS, ""), optFmt(s.MarginMedianMS, ""))
			}
			take := "none"
			if s.TakeoverMedianMS != nil {
				take = fmt.Sprintf("%s / %s", optFmt(s.TakeoverMedianMS, ""), optFmt(s.TakeoverMaxMS, ""))
				if s.NoTakeover > 0 {
					take += fmt.Sprintf(" (none in %d)", s.NoTakeover)
				}
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s / %d | %s | %d |\n", f, s.Impl, trials, two, drop, margin, take,
				strconv.FormatFloat(s.FailedMedian, 'f', -1, 64), s.FailedMax, optFmt(s.HealToOneMaxMS, "–"), s.EndNotOne)
		}
	}
	b.WriteString("\nTimes are from the fault. partition (cut off from every host), etcd-cut (cut off from etcd's client port only), freeze (SIGSTOP), quorum-lost (two etcd members killed) are held for 2 x TTL, then healed; poweroff and stop (SIGTERM) are not. ")
	b.WriteString("Margin: the old holder's lease deadline as it knew it (floatip: its status; vip-manager: the leader loop's last renewal sent + TTL) minus when its kernel lost the VIP; negative means it still had the VIP after the deadline. ")
	b.WriteString("Takeover: when another node's kernel first had the VIP. ")
	b.WriteString("vip-manager runs under a Patroni-like leader loop (`floatip lab leader`) in the same process group, polling the key every 100 ms.\n")
	if len(res.Skipped) > 0 {
		fmt.Fprintf(b, "\nSkipped: %s.\n", strings.Join(res.Skipped, "; "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeQuorumFiles(dir string, res *QuorumResults) error {
	var md bytes.Buffer
	if err := WriteQuorumMarkdown(&md, res); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, FileQuorumMarkdown), md.Bytes(), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, FileQuorumJSON), append(js, '\n'), 0o644)
}
