package verify

import (
	"fmt"
	"io"
	"strings"
)

// Marks of the checklist.
const (
	markPass = "✔"
	markFail = "✗"
	markSkip = "–"
)

func mark(s Status) string {
	switch s {
	case Pass:
		return markPass
	case Fail:
		return markFail
	}
	return markSkip
}

// WriteText prints the checklist: a line per check with its mark, figure and threshold; for a
// failed check the reason and each worker's figure, for the session check each worker's
// answers.
func WriteText(w io.Writer, r *Report, color bool) {
	paint := func(s Status, text string) string {
		if !color {
			return text
		}
		switch s {
		case Pass:
			return "\x1b[32m" + text + "\x1b[0m"
		case Fail:
			return "\x1b[31m" + text + "\x1b[0m"
		}
		return "\x1b[2m" + text + "\x1b[0m"
	}
	fmt.Fprintf(w, "corral verify %s: %d workers on %s; %s\n\n", r.App, r.Workers, r.Target, r.Load)
	for _, c := range r.Checks {
		line := c.Figure
		if c.Status == Skip && c.Reason != "" {
			line = c.Reason
		}
		fmt.Fprintf(w, "  %s %-13s %s\n", paint(c.Status, mark(c.Status)), c.ID, line)
		if c.Status == Skip {
			continue
		}
		if c.Threshold != "" {
			fmt.Fprintf(w, "    %-13s want %s\n", "", c.Threshold)
		}
		if c.Status == Fail && c.Reason != "" {
			fmt.Fprintf(w, "    %-13s %s\n", "", paint(Fail, c.Reason))
		}
		if c.Status == Fail || c.ID == CheckSessions {
			for _, wk := range c.Workers {
				s := Pass
				if !wk.OK {
					s = Fail
				}
				fmt.Fprintf(w, "    %-13s %s worker %d (pid %d): %s\n", "", paint(s, mark(s)), wk.ID, wk.PID, wk.Figure)
			}
		}
	}
	pass, fail, skip := r.Counts()
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped in %s", pass, fail, skip, secs(r.Elapsed))
	if r.Restored != "" {
		fmt.Fprintf(w, "; %s", r.Restored)
	}
	fmt.Fprintln(w)
}

// Summary is the one-line outcome.
func Summary(r *Report) string {
	var failed []string
	for _, c := range r.Checks {
		if c.Status == Fail {
			failed = append(failed, c.ID)
		}
	}
	if len(failed) == 0 {
		return fmt.Sprintf("%s passed every check that ran", r.App)
	}
	return fmt.Sprintf("%s failed %s", r.App, strings.Join(failed, ", "))
}
