package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// Monit renders the process table of `corral monit`'s snapshot (MonitSnapshot): one row per
// process with what changes from second to second (status, restarts, uptime, cpu, memory)
// and, for cluster workers, how the traffic spreads over them (connections, requests per
// second, share of the requests, p99 latency, 5xx), in a table narrower than `ls` (made for
// reading once, with namespace, version, user and watch).
// Request figures come from corral's preload in each worker: "-" where a worker has reported
// none; cells of processes that are not cluster workers are left empty.
func Monit(procs []api.Process, o Options) string {
	cluster := false
	var totalReqs uint64
	for _, p := range procs {
		if p.Cluster != nil {
			cluster = true
			totalReqs += p.Cluster.Requests
		}
	}
	header := []string{"id", "name", "mode", "pid", "status", "↺", "uptime", "cpu", "mem"}
	if cluster {
		header = append(header, "conns", "req/s", "req share", "p99", "5xx")
	}
	rows := make([][]cell, 0, len(procs))
	for _, p := range procs {
		pid, cpu, mem := "0", "0%", "0b"
		if p.PID > 0 {
			pid = strconv.Itoa(p.PID)
			cpu = FormatCPU(p.CPU)
			mem = spec.FormatSize(p.Memory)
		}
		uptime := "0"
		if p.Status == "online" && !p.StartedAt.IsZero() {
			uptime = FormatUptime(o.Now.Sub(p.StartedAt))
		}
		r := []cell{
			{text: strconv.Itoa(p.ID)},
			{text: p.Name, color: ansiCyan + ansiBold},
			{text: p.App.ExecMode},
			{text: pid},
			{text: p.Status, color: statusColor(p.Status)},
			{text: strconv.Itoa(p.Restarts)},
			{text: uptime},
			{text: cpu},
			{text: mem},
		}
		if cluster {
			r = append(r, monitTraffic(p.Cluster, totalReqs)...)
		}
		rows = append(rows, r)
	}
	return box(o, header, rows)
}

// monitTraffic is a cluster worker's traffic cells in Monit (empty cells for other processes).
func monitTraffic(c *api.WorkerStats, totalReqs uint64) []cell {
	if c == nil {
		return make([]cell, 5)
	}
	rate, share, p99, fivexx := "-", "-", "-", "-"
	if c.Requests > 0 || c.Runtime != nil {
		rate = fmt.Sprintf("%.1f", c.ReqPerSec)
		fivexx = strconv.FormatUint(c.Requests5xx, 10)
		if totalReqs > 0 {
			share = fmt.Sprintf("%.1f%%", 100*float64(c.Requests)/float64(totalReqs))
		}
		if c.Requests > 0 {
			p99 = formatMS(c.LatencyP99MS)
		}
	}
	return []cell{{text: strconv.FormatUint(c.Connections, 10)}, {text: rate}, {text: share}, {text: p99}, {text: fivexx}}
}

// MonitAlerts is monit's section of the alerts firing now (one row each, with its value and
// how long it has fired), or one line saying none is. `corral alerts` has the history and the
// sinks.
func MonitAlerts(firing []api.Alert, o Options) string {
	if len(firing) == 0 {
		return " Alerts: " + o.paint(ansiGreen, "none firing") + "\n"
	}
	rows := make([][]cell, 0, len(firing))
	for _, a := range firing {
		rows = append(rows, []cell{{text: a.App}, {text: AlertID(a)}, {text: a.Rule, color: ansiRed},
			{text: AlertValue(a)}, {text: a.Spec}, {text: FormatUptime(o.Now.Sub(a.Since))}})
	}
	return fmt.Sprintf(" Alerts firing: %d (corral alerts for more)\n", len(firing)) +
		box(o, []string{"app", "id", "rule", "value", "threshold", "for"}, rows)
}

// MonitSnapshot is what `corral monit` prints when its output is not a terminal (a pipe, a
// file, a CI log): one plain picture of the live view instead of a screen redrawn every
// second: the process table, how cluster apps' traffic spreads over their workers, the firing
// alerts, and the apps' latest log lines (lines, as the logs API gave them: history first).
func MonitSnapshot(procs []api.Process, firing []api.Alert, lines []api.LogLine, o Options) string {
	var b strings.Builder
	b.WriteString(Monit(procs, o))
	b.WriteString(Distribution(procs, o))
	b.WriteString(MonitAlerts(firing, o))
	if len(lines) == 0 {
		b.WriteString(" Latest log lines: none\n")
		return b.String()
	}
	b.WriteString(" Latest log lines\n")
	for _, l := range lines {
		clock := LogClock(l)
		if clock != "" {
			clock += " "
		}
		fmt.Fprintf(&b, "%s%s | %s\n", clock, LogWho(l), PlainText(l.Message))
	}
	return b.String()
}

// LogWho is who wrote a log line, as `corral logs` and monit show it: "id|app", or "corral"
// for the daemon's own lines.
func LogWho(l api.LogLine) string {
	if l.ProcID < 0 {
		return "corral"
	}
	return strconv.Itoa(l.ProcID) + "|" + l.App
}

// LogClock is the time monit (snapshot and live view) shows before a log line: its time of day
// for a live line, "" for a line of history (its file does not say when it was written).
func LogClock(l api.LogLine) string {
	if l.Time.IsZero() || l.History {
		return ""
	}
	return l.Time.Format("15:04:05")
}
