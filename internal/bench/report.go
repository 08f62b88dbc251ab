package bench

import (
	"bufio"
	"bytes"
	"encoding/csv"
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

// Files Run writes into its output directory (plus FaultSVG per fault).
const (
	FileMarkdown = "results.md"   // the table
	FileJSON     = "results.json" // everything but the samples: summaries and every trial
	FileSummary  = "summary.csv"  // a row per implementation and fault
	FileTrials   = "trials.csv"   // a row per trial
	FileSamples  = "samples.csv"  // a row per client request of every trial
)

// FaultSVG is the picture of one fault: "fault-poweroff.svg".
func FaultSVG(fault lab.FaultKind) string { return "fault-" + string(fault) + ".svg" }

// WriteMarkdown writes the table of summaries, one row per implementation and
// fault, grouped by fault, with a legend.
func WriteMarkdown(w io.Writer, res *Results) error {
	if stacked(res) {
		return writeStackedMarkdown(w, res)
	}
	b := &bytes.Buffer{}
	fmt.Fprintf(b, "Failover benchmark: %d node(s), %d trial(s) per row, client request every 5 ms (%s ms timeout) on a fresh TCP connection.\n\n", res.Nodes, res.Trials, timeoutMS(res))
	b.WriteString("| fault | implementation | trials | outage median | p90 | max | failed requests (median) | two holders median / max | holder changes median / max | holders at end | heal → one holder median / max |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, fault := range res.Faults {
		for _, s := range res.Summaries {
			if s.Fault != fault {
				continue
			}
			b.WriteString(markdownRow(s))
		}
	}
	b.WriteString("\nOutage: from the fault to the first successful request after the last failed one (0 when none failed). ")
	b.WriteString("Two holders: time after the fault during which two nodes had the VIP configured (polled every 10 ms). ")
	b.WriteString("Holder changes: how often the set of nodes with the VIP changed after the fault (a failover through no holder is two; for loss10/loss20, where no node fails, anything but 0 is a false failover). ")
	b.WriteString("Holders at end: the most frequent count, with the worst one in brackets when it differs. ")
	b.WriteString("≥: some trial's client never recovered; its outage is a lower bound. ")
	b.WriteString("The outage spans from the fault to the end of the last gap, so when the gap starts late ")
	b.WriteString("(a crashed floatip's VIP stays on its node until its lifetime runs out, and that node's service keeps answering) ")
	b.WriteString("the failed requests × 5 ms say more about the time without service. ")
	fmt.Fprintf(b, "Disturbed: the client sent fewer than %.0f%% of its requests in each of %d attempts (a busy machine); such trials are counted but suspect.\n", 100*MinClientRate, Attempts)
	if len(res.Skipped) > 0 {
		fmt.Fprintf(b, "\nSkipped: %s.\n", strings.Join(res.Skipped, "; "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// timeoutMS is the client's timeout in ms ("50" for results without one).
func timeoutMS(res *Results) string {
	if res.ClientTimeoutMS == 0 {
		return fmtMS(msOf(DefaultClientTimeout))
	}
	return fmtMS(res.ClientTimeoutMS)
}

// stacked reports whether the run measured anything but the IPv4 VIP alone.
func stacked(res *Results) bool {
	return len(res.Stacks) > 1 || (len(res.Stacks) == 1 && res.Stacks[0] != lab.StackIPv4)
}

// writeStackedMarkdown is WriteMarkdown for a run with IPv6: each
// implementation's rows of one fault together, a row per stack, with the
// IPv6 and dual-stack outage over the IPv4 one of the same run, the time a
// dual-stack group's VIPs were apart and when a killed node's kernel dropped
// the VIP.
func writeStackedMarkdown(w io.Writer, res *Results) error {
	b := &bytes.Buffer{}
	fmt.Fprintf(b, "Failover benchmark: %d node(s), %d trial(s) per row, client request every 5 ms (%s ms timeout) on a fresh TCP connection; the same lab (with IPv6) for every row.\n\n", res.Nodes, res.Trials, timeoutMS(res))
	b.WriteString("| fault | implementation | VIP | trials | outage median | / IPv4 | p90 | max | failed requests (median) | two holders median / max | v4, v6 apart median / max | VIP off the killed node median / max | holders at end | heal → one holder median / max |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	type key struct {
		impl  string
		fault lab.FaultKind
		stack lab.Stack
	}
	by := map[key]Summary{}
	var impls []string
	for _, s := range res.Summaries {
		by[key{s.Impl, s.Fault, s.Stack}] = s
		if !slices.Contains(impls, s.Impl) {
			impls = append(impls, s.Impl)
		}
	}
	for _, fault := range res.Faults {
		for _, im := range impls {
			for _, st := range res.Stacks {
				s, ok := by[key{im, fault, st}]
				if !ok {
					continue
				}
				v4, has4 := by[key{im, fault, lab.StackIPv4}]
				b.WriteString(stackedRow(s, v4, has4))
			}
		}
	}
	b.WriteString("\nVIP: the group's addresses (IPv4 198.18.0.100, IPv6 2001:db8:18::100, dual: both in one group, the client requesting the IPv6 one). ")
	b.WriteString("/ IPv4: the row's outage median over the IPv4 row's of the same implementation and fault in this run. ")
	b.WriteString("Two holders: time after the fault during which any VIP of the group was on two nodes (polled every 10 ms). ")
	b.WriteString("v4, v6 apart (dual stack): time during which both addresses were held but by no common node (no node answered for the whole group). ")
	b.WriteString("VIP off the killed node (crash): from the kill -9 to when the killed node's kernel no longer had the VIP (floatip: its valid lifetime runs out; \"never\": still there when the trial ended). ")
	b.WriteString("The other columns as in the IPv4 table. ")
	fmt.Fprintf(b, "Disturbed: the client sent fewer than %.0f%% of its requests in each of %d attempts (a busy machine); such trials are counted but suspect.\n", 100*MinClientRate, Attempts)
	if len(res.Skipped) > 0 {
		fmt.Fprintf(b, "\nSkipped: %s.\n", strings.Join(res.Skipped, "; "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// trialsCell is a row's trial count with its errors and disturbed trials.
func trialsCell(s Summary) string {
	trials := strconv.Itoa(s.Trials)
	if s.Errors > 0 {
		trials = fmt.Sprintf("%d (+%d errors)", s.Trials, s.Errors)
	}
	if s.Disturbed > 0 {
		trials += fmt.Sprintf(" (%d disturbed)", s.Disturbed)
	}
	return trials
}

// lowerBound marks outages that are lower bounds (a trial never recovered).
func lowerBound(s Summary) string {
	if s.NotRecovered > 0 {
		return "≥ "
	}
	return ""
}

// endsCell is the usual number of holders at the end, with the worst.
func endsCell(s Summary) string {
	ends := strconv.Itoa(s.HoldersEndMajority)
	if s.HoldersEndWorst != s.HoldersEndMajority {
		ends += fmt.Sprintf(" (worst %d)", s.HoldersEndWorst)
	}
	return ends
}

// healCell is a partition row's time from the heal to one holder.
func healCell(s Summary) string {
	if s.Fault != lab.FaultPartition {
		return "–"
	}
	if s.HealToOneMedianMS == nil {
		return "never"
	}
	heal := fmt.Sprintf("%s / %s ms", fmtMS(*s.HealToOneMedianMS), fmtMS(*s.HealToOneMaxMS))
	if s.Unsettled > 0 {
		heal += fmt.Sprintf(" (%d never)", s.Unsettled)
	}
	return heal
}

func stackedRow(s, v4 Summary, has4 bool) string {
	label := s.Stack.Label()
	if s.Trials == 0 {
		return fmt.Sprintf("| %s | %s | %s | 0 of %d (errors) | – | – | – | – | – | – | – | – | – | – |\n", s.Fault, s.Impl, label, s.Errors)
	}
	trials, lb := trialsCell(s), lowerBound(s)
	ratio := "–"
	if s.Stack != lab.StackIPv4 && has4 && v4.Trials > 0 && v4.OutageMedianMS > 0 {
		ratio = strconv.FormatFloat(s.OutageMedianMS/v4.OutageMedianMS, 'f', 2, 64) + "×"
	}
	apart := "–"
	if s.Stack == lab.StackDual {
		apart = fmt.Sprintf("%s / %s ms", fmtMS(s.SplitMedianMS), fmtMS(s.SplitMaxMS))
	}
	gone := "–"
	if s.Fault == lab.FaultCrash {
		switch {
		case s.GoneMedianMS != nil:
			gone = fmt.Sprintf("%s / %s ms", fmtMS(*s.GoneMedianMS), fmtMS(*s.GoneMaxMS))
			if s.Stuck > 0 {
				gone += fmt.Sprintf(" (%d never)", s.Stuck)
			}
		default:
			gone = "never"
		}
	}
	ends, heal := endsCell(s), healCell(s)
	return fmt.Sprintf("| %s | %s | %s | %s | %s%s ms | %s | %s%s ms | %s%s ms | %s | %s / %s ms | %s | %s | %s | %s |\n",
		s.Fault, s.Impl, label, trials,
		lb, fmtMS(s.OutageMedianMS), ratio, lb, fmtMS(s.OutageP90MS), lb, fmtMS(s.OutageMaxMS),
		strconv.FormatFloat(s.FailedMedian, 'f', -1, 64),
		fmtMS(s.TwoHoldersMedianMS), fmtMS(s.TwoHoldersMaxMS),
		apart, gone, ends, heal)
}

func markdownRow(s Summary) string {
	if s.Trials == 0 {
		return fmt.Sprintf("| %s | %s | 0 of %d (errors) | – | – | – | – | – | – | – | – |\n", s.Fault, s.Impl, s.Errors)
	}
	trials, lb := trialsCell(s), lowerBound(s)
	ends, heal := endsCell(s), healCell(s)
	return fmt.Sprintf("| %s | %s | %s | %s%s ms | %s%s ms | %s%s ms | %s | %s / %s ms | %s / %d | %s | %s |\n",
		s.Fault, s.Impl, trials,
		lb, fmtMS(s.OutageMedianMS), lb, fmtMS(s.OutageP90MS), lb, fmtMS(s.OutageMaxMS),
		strconv.FormatFloat(s.FailedMedian, 'f', -1, 64),
		fmtMS(s.TwoHoldersMedianMS), fmtMS(s.TwoHoldersMaxMS),
		strconv.FormatFloat(s.MovesMedian, 'f', -1, 64), s.MovesMax,
		ends, heal)
}

// fmtMS renders milliseconds without decimals.
func fmtMS(ms float64) string { return strconv.FormatFloat(ms, 'f', 0, 64) }

func optMS(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// WriteFiles writes every result file into dir.
func WriteFiles(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, f func(io.Writer) error) error {
		path := filepath.Join(dir, name)
		file, err := os.Create(path)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(file)
		err = f(bw)
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	if err := write(FileMarkdown, func(w io.Writer) error { return WriteMarkdown(w, res) }); err != nil {
		return err
	}
	if err := write(FileJSON, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	if err := write(FileSummary, func(w io.Writer) error { return WriteSummaryCSV(w, res.Summaries) }); err != nil {
		return err
	}
	if err := write(FileTrials, func(w io.Writer) error { return WriteTrialsCSV(w, res.Runs) }); err != nil {
		return err
	}
	if err := write(FileSamples, func(w io.Writer) error { return WriteSamplesCSV(w, res.Runs) }); err != nil {
		return err
	}
	for _, fault := range res.Faults {
		if err := write(FaultSVG(fault), func(w io.Writer) error { return WriteSVG(w, fault, RowNames(res), res.Runs) }); err != nil {
			return err
		}
	}
	return nil
}

// RowNames are the rows of the pictures: each implementation, and with
// IPv6 each implementation per stack ("floatip", "floatip (IPv6)", ...).
func RowNames(res *Results) []string {
	if !stacked(res) {
		return res.Impls
	}
	var out []string
	for _, im := range res.Impls {
		for _, st := range res.Stacks {
			out = append(out, im+stackTag(st))
		}
	}
	return out
}

// WriteSummaryCSV writes one row per summary.
func WriteSummaryCSV(w io.Writer, sums []Summary) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"impl", "fault", "stack", "trials", "errors", "outage_median_ms", "outage_p90_ms", "outage_max_ms",
		"disturbed", "not_recovered", "failed_requests_median", "two_holders_median_ms", "two_holders_max_ms",
		"holders_end_majority", "holders_end_worst", "heal_to_one_median_ms", "heal_to_one_max_ms", "unsettled",
		"split_median_ms", "split_max_ms", "vip_gone_median_ms", "vip_gone_max_ms", "vip_stuck"})
	for _, s := range sums {
		_ = cw.Write([]string{s.Impl, string(s.Fault), string(s.Stack), strconv.Itoa(s.Trials), strconv.Itoa(s.Errors),
			num(s.OutageMedianMS), num(s.OutageP90MS), num(s.OutageMaxMS),
			strconv.Itoa(s.Disturbed), strconv.Itoa(s.NotRecovered), num(s.FailedMedian), num(s.TwoHoldersMedianMS), num(s.TwoHoldersMaxMS),
			strconv.Itoa(s.HoldersEndMajority), strconv.Itoa(s.HoldersEndWorst),
			optMS(s.HealToOneMedianMS), optMS(s.HealToOneMaxMS), strconv.Itoa(s.Unsettled),
			num(s.SplitMedianMS), num(s.SplitMaxMS), optMS(s.GoneMedianMS), optMS(s.GoneMaxMS), strconv.Itoa(s.Stuck)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteTrialsCSV writes one row per trial.
func WriteTrialsCSV(w io.Writer, trials []Trial) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"impl", "fault", "stack", "trial", "error", "fault_at", "holder", "outage_ms", "recovered",
		"failed_requests", "requests_after_fault", "first_new_ms", "answering_after", "two_holders_ms",
		"holders_end", "heal_ms", "heal_to_one_ms", "end_ms", "client_rate", "disturbed", "attempts", "split_ms", "vip_gone_ms"})
	for _, t := range trials {
		at := ""
		if !t.FaultAt.IsZero() {
			at = t.FaultAt.UTC().Format("2006-01-02T15:04:05.000000Z")
		}
		_ = cw.Write([]string{t.Impl, string(t.Fault), string(t.Stack), strconv.Itoa(t.Trial), t.Err, at, t.Holder,
			num(t.OutageMS), strconv.FormatBool(t.Recovered), strconv.Itoa(t.Failed), strconv.Itoa(t.Requests),
			optMS(t.FirstNewMS), t.After, num(t.TwoHoldersMS), strings.Join(t.HoldersEnd, " "),
			optMS(t.HealMS), optMS(t.HealToOneMS), num(t.EndMS),
			num(t.ClientRate), strconv.FormatBool(t.Disturbed), strconv.Itoa(t.Attempts), num(t.SplitMS), optMS(t.GoneMS)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteSamplesCSV writes every client request of every trial, its send time
// relative to the fault.
func WriteSamplesCSV(w io.Writer, trials []Trial) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"impl", "fault", "stack", "trial", "t_ms", "ok", "node", "err"})
	for _, t := range trials {
		tr := strconv.Itoa(t.Trial)
		for _, p := range t.Samples {
			_ = cw.Write([]string{t.Impl, string(t.Fault), string(t.Stack), tr, num(p.MS), strconv.FormatBool(p.OK), p.Node, p.Err})
		}
	}
	cw.Flush()
	return cw.Error()
}
