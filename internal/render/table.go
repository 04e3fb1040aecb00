// Package render turns API answers into what the CLI prints: PM2's process table, describe
// tables, and the `jlist` JSON shape. It is pure (time and colour are parameters) so its
// output is checked against golden files.
package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// Options control rendering.
type Options struct {
	Now   time.Time
	Color bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
	ansiGrey   = "\x1b[90m"
)

func (o Options) paint(code, s string) string {
	if !o.Color || s == "" || code == "" {
		return s
	}
	return code + s + ansiReset
}

// cell is a table cell: its text and an optional colour.
type cell struct {
	text  string
	color string
}

// box draws a table with PM2's box characters. Header cells are cyan and bold.
func box(o Options, header []string, rows [][]cell) string {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	line := func(l, m, r string) string {
		var b strings.Builder
		b.WriteString(l)
		for i, w := range widths {
			if i > 0 {
				b.WriteString(m)
			}
			b.WriteString(strings.Repeat("─", w+2))
		}
		b.WriteString(r)
		b.WriteString("\n")
		return b.String()
	}
	row := func(cells []cell) string {
		var b strings.Builder
		b.WriteString("│")
		for i, c := range cells {
			pad := widths[i] - utf8.RuneCountInString(c.text)
			b.WriteString(" ")
			b.WriteString(o.paint(c.color, c.text))
			b.WriteString(strings.Repeat(" ", pad))
			b.WriteString(" │")
		}
		b.WriteString("\n")
		return b.String()
	}
	var b strings.Builder
	b.WriteString(line("┌", "┬", "┐"))
	hc := make([]cell, len(header))
	for i, h := range header {
		hc[i] = cell{text: h, color: ansiBold + ansiCyan}
	}
	b.WriteString(row(hc))
	b.WriteString(line("├", "┼", "┤"))
	for _, r := range rows {
		b.WriteString(row(r))
	}
	b.WriteString(line("└", "┴", "┘"))
	return b.String()
}

// tableHeader is PM2's full `ls` layout, plus corral's connection (and request rate) columns
// for cluster apps.
var tableHeader = []string{"id", "name", "namespace", "version", "mode", "pid", "uptime", "↺", "status", "cpu", "mem", "user", "watching"}

// Table renders `corral ls`.
func Table(procs []api.Process, o Options) string {
	header := tableHeader
	// req/s only once some worker has reported requests (corral's preload counts them).
	cluster, requests := false, false
	for _, p := range procs {
		if p.Cluster != nil {
			cluster = true
			requests = requests || p.Cluster.Requests > 0 || p.Cluster.Runtime != nil
		}
	}
	if cluster {
		extra := []string{"conns"}
		if requests {
			extra = append(extra, "req/s")
		}
		header = append(append(append([]string(nil), header[:9]...), extra...), header[9:]...)
	}
	rows := make([][]cell, 0, len(procs))
	for _, p := range procs {
		online := p.Status == "online"
		pid, cpu, mem := "0", "0%", "0b"
		if p.PID > 0 {
			pid = strconv.Itoa(p.PID)
			cpu = FormatCPU(p.CPU)
			mem = spec.FormatSize(p.Memory)
		}
		uptime := "0"
		if online && !p.StartedAt.IsZero() {
			uptime = FormatUptime(o.Now.Sub(p.StartedAt))
		}
		watching := "disabled"
		if p.Watching {
			watching = "enabled"
		}
		r := []cell{
			{text: strconv.Itoa(p.ID)},
			{text: p.Name, color: ansiCyan + ansiBold},
			{text: p.Namespace},
			{text: p.Version},
			{text: p.App.ExecMode},
			{text: pid},
			{text: uptime},
			{text: strconv.Itoa(p.Restarts)},
			{text: p.Status, color: statusColor(p.Status)},
		}
		if cluster {
			conns := ""
			if p.Cluster != nil {
				conns = strconv.FormatUint(p.Cluster.Connections, 10)
			}
			r = append(r, cell{text: conns})
			if requests {
				rate := ""
				if c := p.Cluster; c != nil && (c.Requests > 0 || c.Runtime != nil) {
					rate = fmt.Sprintf("%.1f", c.ReqPerSec)
				}
				r = append(r, cell{text: rate})
			}
		}
		r = append(r,
			cell{text: cpu},
			cell{text: mem},
			cell{text: p.Username, color: ansiBold},
			cell{text: watching, color: watchColor(p.Watching)},
		)
		rows = append(rows, r)
	}
	return box(o, header, rows)
}

// MiniList renders `ls -m`: PM2's key/value blocks.
func MiniList(procs []api.Process, o Options) string {
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "+--- %s\n", p.Name)
		fmt.Fprintf(&b, "namespace : %s\n", p.Namespace)
		fmt.Fprintf(&b, "version : %s\n", p.Version)
		fmt.Fprintf(&b, "pid : %d\n", p.PID)
		fmt.Fprintf(&b, "corral id : %d\n", p.ID)
		fmt.Fprintf(&b, "status : %s\n", o.paint(statusColor(p.Status), p.Status))
		fmt.Fprintf(&b, "mode : %s\n", p.App.ExecMode)
		fmt.Fprintf(&b, "restarted : %d\n", p.Restarts)
		up := "0"
		if p.Status == "online" && !p.StartedAt.IsZero() {
			up = FormatUptime(o.Now.Sub(p.StartedAt))
		}
		fmt.Fprintf(&b, "uptime : %s\n", up)
		fmt.Fprintf(&b, "memory usage : %s\n", spec.FormatSize(p.Memory))
		fmt.Fprintf(&b, "error log : %s\n", p.ErrLog)
		fmt.Fprintf(&b, "watching : %s\n", yesNo(p.Watching, "yes", "no"))
		fmt.Fprintf(&b, "PID file : %s\n\n", p.PidFile)
	}
	return b.String()
}

func statusColor(s string) string {
	switch s {
	case "online":
		return ansiGreen + ansiBold
	case "launching":
		return ansiBlue + ansiBold
	case "waiting restart", "stopping":
		return ansiYellow + ansiBold
	default:
		return ansiRed + ansiBold
	}
}

func watchColor(on bool) string {
	if on {
		return ansiGreen
	}
	return ansiGrey
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// FormatUptime renders a duration as PM2 does: the largest unit whose count is at least 2
// (so 90 s is "90s", 3 minutes "3m").
func FormatUptime(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 0 {
		s = 0
	}
	switch {
	case s < 120:
		return fmt.Sprintf("%ds", s)
	case s < 2*3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 2*86400:
		return fmt.Sprintf("%dh", s/3600)
	case s < 60*86400:
		return fmt.Sprintf("%dD", s/86400)
	case s < 730*86400:
		return fmt.Sprintf("%dM", s/(30*86400))
	default:
		return fmt.Sprintf("%dY", s/(365*86400))
	}
}

// FormatCPU renders a CPU percentage: whole numbers plainly, others with one decimal.
func FormatCPU(c float64) string {
	r := float64(int64(c*10+0.5)) / 10
	if r == float64(int64(r)) {
		return fmt.Sprintf("%d%%", int64(r))
	}
	return fmt.Sprintf("%.1f%%", r)
}
