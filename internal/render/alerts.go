package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// Alerts renders `corral alerts`: what fires now, the recent transitions, and how the sinks
// fared (a sink that drops or fails is what an operator must hear about too).
func Alerts(r api.AlertsResponse, o Options) string {
	var b strings.Builder
	if len(r.Firing) == 0 {
		b.WriteString("no alert is firing\n")
	} else {
		var rows [][]cell
		for _, a := range r.Firing {
			rows = append(rows, []cell{{text: a.App}, {text: AlertID(a)}, {text: a.Rule, color: ansiRed},
				{text: AlertValue(a)}, {text: a.Spec}, {text: "for " + FormatUptime(o.Now.Sub(a.Since))}, {text: a.Text}})
		}
		b.WriteString(box(o, []string{"app", "id", "rule", "value", "threshold", "since", "text"}, rows))
	}
	if len(r.Recent) > 0 {
		b.WriteString("recent:\n")
		var rows [][]cell
		for _, a := range r.Recent {
			color := ansiRed
			if a.State == api.AlertResolved {
				color = ansiGreen
			}
			rows = append(rows, []cell{{text: a.Time.UTC().Format(time.RFC3339)}, {text: a.State, color: color},
				{text: a.App}, {text: AlertID(a)}, {text: a.Rule}, {text: a.Text}})
		}
		b.WriteString(box(o, []string{"time", "state", "app", "id", "rule", "text"}, rows))
	}
	if len(r.Sinks) > 0 {
		b.WriteString("sinks:\n")
		var rows [][]cell
		for _, s := range r.Sinks {
			app := s.App
			if app == "" {
				app = "(all apps)"
			}
			failed := cell{text: strconv.FormatUint(s.Failed, 10)}
			if s.Failed > 0 {
				failed.color = ansiRed
			}
			dropped := cell{text: strconv.FormatUint(s.Dropped, 10)}
			if s.Dropped > 0 {
				dropped.color = ansiRed
			}
			rows = append(rows, []cell{{text: s.Kind}, {text: s.Target}, {text: app}, {text: strconv.FormatUint(s.Sent, 10)},
				failed, dropped, {text: s.LastError}})
		}
		b.WriteString(box(o, []string{"sink", "target", "for", "sent", "failed", "dropped", "last error"}, rows))
	}
	return b.String()
}

// AlertTest renders `corral alerts test`.
func AlertTest(r api.AlertTestResponse, o Options) string {
	var b strings.Builder
	for _, res := range r.Results {
		who := res.Kind + " " + res.Target
		if res.App != "" {
			who += " (" + res.App + ")"
		}
		if res.Error == "" {
			fmt.Fprintf(&b, "%s %s\n", o.paint(ansiGreen, "sent"), who)
		} else {
			fmt.Fprintf(&b, "%s %s: %s\n", o.paint(ansiRed, "failed"), who, res.Error)
		}
	}
	return b.String()
}

// AlertID is the process id an alert is about, or "-" for an alert about the whole app.
func AlertID(a api.Alert) string {
	if a.ID == nil {
		return "-"
	}
	return strconv.Itoa(*a.ID)
}

// AlertValue writes an alert's value in its unit (monit shows it too).
func AlertValue(a api.Alert) string {
	switch a.Unit {
	case "bytes":
		return formatBytes(a.Value)
	case "ms":
		return fmt.Sprintf("%.0fms", a.Value)
	case "ratio":
		return fmt.Sprintf("%.1f%%", a.Value*100)
	case "":
		return "-"
	}
	return strconv.FormatFloat(a.Value, 'f', -1, 64) + " " + a.Unit
}

func formatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.1fgb", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1fmb", v/(1<<20))
	}
	return fmt.Sprintf("%.0fkb", v/(1<<10))
}
