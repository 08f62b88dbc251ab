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
	b := &bytes.Buffer{}
	fmt.Fprintf(b, "Failover benchmark: %d node(s), %d trial(s) per row, client request every 5 ms (50 ms timeout) on a fresh TCP connection.\n\n", res.Nodes, res.Trials)
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

func markdownRow(s Summary) string {
	if s.Trials == 0 {
		return fmt.Sprintf("| %s | %s | 0 of %d (errors) | – | – | – | – | – | – | – | – |\n", s.Fault, s.Impl, s.Errors)
	}
	trials := strconv.Itoa(s.Trials)
	if s.Errors > 0 {
		trials = fmt.Sprintf("%d (+%d errors)", s.Trials, s.Errors)
	}
	if s.Disturbed > 0 {
		trials += fmt.Sprintf(" (%d disturbed)", s.Disturbed)
	}
	lb := ""
	if s.NotRecovered > 0 {
		lb = "≥ "
	}
	ends := strconv.Itoa(s.HoldersEndMajority)
	if s.HoldersEndWorst != s.HoldersEndMajority {
		ends += fmt.Sprintf(" (worst %d)", s.HoldersEndWorst)
	}
	heal := "–"
	if s.Fault == lab.FaultPartition {
		switch {
		case s.HealToOneMedianMS != nil:
			heal = fmt.Sprintf("%s / %s ms", fmtMS(*s.HealToOneMedianMS), fmtMS(*s.HealToOneMaxMS))
			if s.Unsettled > 0 {
				heal += fmt.Sprintf(" (%d never)", s.Unsettled)
			}
		default:
			heal = "never"
		}
	}
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
		if err := write(FaultSVG(fault), func(w io.Writer) error { return WriteSVG(w, fault, res.Impls, res.Runs) }); err != nil {
			return err
		}
	}
	return nil
}

// WriteSummaryCSV writes one row per summary.
func WriteSummaryCSV(w io.Writer, sums []Summary) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"impl", "fault", "trials", "errors", "outage_median_ms", "outage_p90_ms", "outage_max_ms",
		"disturbed", "not_recovered", "failed_requests_median", "two_holders_median_ms", "two_holders_max_ms",
		"holders_end_majority", "holders_end_worst", "heal_to_one_median_ms", "heal_to_one_max_ms", "unsettled"})
	for _, s := range sums {
		_ = cw.Write([]string{s.Impl, string(s.Fault), strconv.Itoa(s.Trials), strconv.Itoa(s.Errors),
			num(s.OutageMedianMS), num(s.OutageP90MS), num(s.OutageMaxMS),
			strconv.Itoa(s.Disturbed), strconv.Itoa(s.NotRecovered), num(s.FailedMedian), num(s.TwoHoldersMedianMS), num(s.TwoHoldersMaxMS),
			strconv.Itoa(s.HoldersEndMajority), strconv.Itoa(s.HoldersEndWorst),
			optMS(s.HealToOneMedianMS), optMS(s.HealToOneMaxMS), strconv.Itoa(s.Unsettled)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteTrialsCSV writes one row per trial.
func WriteTrialsCSV(w io.Writer, trials []Trial) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"impl", "fault", "trial", "error", "fault_at", "holder", "outage_ms", "recovered",
		"failed_requests", "requests_after_fault", "first_new_ms", "answering_after", "two_holders_ms",
		"holders_end", "heal_ms", "heal_to_one_ms", "end_ms", "client_rate", "disturbed", "attempts"})
	for _, t := range trials {
		at := ""
		if !t.FaultAt.IsZero() {
			at = t.FaultAt.UTC().Format("2006-01-02T15:04:05.000000Z")
		}
		_ = cw.Write([]string{t.Impl, string(t.Fault), strconv.Itoa(t.Trial), t.Err, at, t.Holder,
			num(t.OutageMS), strconv.FormatBool(t.Recovered), strconv.Itoa(t.Failed), strconv.Itoa(t.Requests),
			optMS(t.FirstNewMS), t.After, num(t.TwoHoldersMS), strings.Join(t.HoldersEnd, " "),
			optMS(t.HealMS), optMS(t.HealToOneMS), num(t.EndMS),
			num(t.ClientRate), strconv.FormatBool(t.Disturbed), strconv.Itoa(t.Attempts)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteSamplesCSV writes every client request of every trial, its send time
// relative to the fault.
func WriteSamplesCSV(w io.Writer, trials []Trial) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"impl", "fault", "trial", "t_ms", "ok", "node", "err"})
	for _, t := range trials {
		tr := strconv.Itoa(t.Trial)
		for _, p := range t.Samples {
			_ = cw.Write([]string{t.Impl, string(t.Fault), tr, num(p.MS), strconv.FormatBool(p.OK), p.Node, p.Err})
		}
	}
	cw.Flush()
	return cw.Error()
}
