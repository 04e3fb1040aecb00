package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Report is the whole run, as written by -json.
type Report struct {
	Host     Host     `json:"host"`
	Options  any      `json:"options"`
	Notes    []string `json:"notes,omitempty"` // what the reader must know to read the figures
	Metrics  []Metric `json:"metrics"`
	Errors   []string `json:"errors,omitempty"`
	Complete bool     `json:"complete"` // false when something broke: figures may be missing
}

// printTable writes the host facts, the notes, and one row per metric: for each contender
// "median / p90 / min", then how many times better the baseline is than each other contender,
// then the target; then the details some metrics carry.
func printTable(w io.Writer, r Report, all []string) {
	h := r.Host
	fmt.Fprintf(w, "corral benchmark, %s\n", h.Date)
	fmt.Fprintf(w, "host: %d CPUs (%s), %.0f MB RAM, Linux %s, load average at start %s, at end %s\n",
		h.CPUs, orNA(h.CPUModel), h.MemTotalMB, orNA(h.Kernel), orNA(h.LoadStart), orNA(h.LoadEnd))
	fmt.Fprintf(w, "tools: %s, node %s, corral %s, PM2 %s\n", h.Go, orNA(h.Node), orNA(h.CorralCommit), orNA(h.PM2))
	fmt.Fprintf(w, "floors (median of 10): `true` %s ms, `node -e 0` %s ms\n", num(h.ExecMS), num(h.NodeStartMS))
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)

	// Only the contenders some metric speaks of get a column.
	var contenders, others []string
	for _, c := range all {
		used := false
		for _, m := range r.Metrics {
			if _, ok := m.Values[c]; ok || slices.Contains(m.NA, c) {
				used = true
				break
			}
		}
		if !used {
			continue
		}
		contenders = append(contenders, c)
		if c != Baseline {
			others = append(others, c)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"metric"}
	for _, c := range contenders {
		head = append(head, c+" med / p90 / min")
	}
	for _, c := range others {
		head = append(head, Baseline+" vs "+c)
	}
	head = append(head, "n", "target")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	scenario := ""
	for _, m := range r.Metrics {
		if m.Scenario != scenario {
			scenario = m.Scenario
			fmt.Fprintf(tw, "[%s]\n", scenario)
		}
		name := fmt.Sprintf("%s (%s)", m.Name, m.Unit)
		if m.Better == "higher" {
			name += ", higher is better"
		}
		row := []string{name}
		ns := map[int]bool{}
		for _, c := range contenders {
			s, ok := m.Values[c]
			if !ok {
				if slices.Contains(m.NA, c) {
					row = append(row, "n/a")
				} else {
					row = append(row, "-")
				}
				continue
			}
			ns[s.N] = true
			if s.N == 1 {
				row = append(row, num(s.Median))
			} else {
				row = append(row, fmt.Sprintf("%s / %s / %s", num(s.Median), num(s.P90), num(s.Min)))
			}
		}
		for _, c := range others {
			if ratio, ok := m.Ratios[c]; ok {
				row = append(row, fmt.Sprintf("%.1fx", ratio))
			} else {
				row = append(row, "-")
			}
		}
		var nn []string
		for n := range ns {
			nn = append(nn, fmt.Sprint(n))
		}
		sort.Strings(nn)
		row = append(row, strings.Join(nn, ","), m.Target)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s vs X: how many times better %s is than X, on medians: X/%s on a lower-is-better figure (time, memory, CPU, failures),\n", Baseline, Baseline, Baseline)
	fmt.Fprintf(w, "%s/X on a higher-is-better one (requests/s): above 1 means %s is better. \"-\": no ratio (a median is 0, or a figure is missing).\n", Baseline, Baseline)
	fmt.Fprintln(w, "targets are the issue's, for context: the bench reports, it does not judge.")
	var details []string
	for _, m := range r.Metrics {
		if len(m.Details) == 0 {
			continue
		}
		details = append(details, fmt.Sprintf("  [%s] %s:", m.Scenario, m.Name))
		for _, c := range contenders {
			if d, ok := m.Details[c]; ok {
				details = append(details, fmt.Sprintf("    %s: %s", c, d))
			}
		}
	}
	if len(details) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "details:")
		for _, d := range details {
			fmt.Fprintln(w, d)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "errors (figures above may be missing or partial):")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  - %s\n", e)
		}
	}
}

// num prints a figure with about three significant digits.
func num(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func writeJSON(path string, r Report) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
