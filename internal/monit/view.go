package monit

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/x/ansi"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/render"
	"github.com/corral-pm/corral/internal/spec"
)

// The screen: a title line; the process list on the left and the selected row's panel on the
// right (its figures' sparklines, how the app's traffic spreads over its workers, its log
// lines); the firing alerts; a footer with the keys, or the question of an action waiting
// for y/n.

// Sizes before the terminal has told its own, and the smallest drawn.
const (
	defaultWidth, defaultHeight = 100, 30
	minWidth, minHeight         = 40, 12
)

// marker shows the selected row, with or without colours.
const marker = "▸"

// View draws the whole screen, every line cut to the terminal's width.
func (m *model) View() string {
	w, h := m.width, m.height
	if w == 0 || h == 0 {
		w, h = defaultWidth, defaultHeight
	}
	w, h = max(w, minWidth), max(h, minHeight)
	alerts := m.alertLines(w)
	mainH := max(h-2-len(alerts), 4)
	leftW := min(max(w*2/5, 36), 48)
	if w-leftW < 30 {
		leftW = w / 2
	}
	left := frame("Processes", m.listLines(leftW-2, mainH-2), leftW, mainH, m.st)
	title, body := m.panel(w-leftW-2, mainH-2)
	right := frame(title, body, w-leftW, mainH, m.st)
	lines := make([]string, 0, h)
	lines = append(lines, fit(m.titleLine(), w))
	for i := range left {
		lines = append(lines, left[i]+right[i])
	}
	lines = append(lines, alerts...)
	lines = append(lines, fit(m.footer(), w))
	return strings.Join(lines, "\n")
}

// titleLine says what this is, when it last heard from the daemon, and whether it failed to.
func (m *model) titleLine() string {
	s := m.st.title.Render(" corral monit")
	if !m.polled.IsZero() {
		s += m.st.dim.Render(" · " + m.polled.Format("15:04:05") + " · every " + m.interval.String())
	}
	s += m.st.dim.Render(" · " + processes(len(m.procs)))
	if m.pollErr != nil {
		s += " " + m.st.bad.Render("· the daemon did not answer: "+m.pollErr.Error())
	}
	return s
}

// listLines is the process list, scrolled to keep the selection in sight.
func (m *model) listLines(w, h int) []string {
	if len(m.rows) == 0 {
		return []string{m.st.dim.Render(" no process: `corral start` one")}
	}
	start := 0
	if m.sel >= h {
		start = m.sel - h + 1
	}
	var out []string
	for i := start; i < len(m.rows) && len(out) < h; i++ {
		r := m.rows[i]
		if i == m.sel {
			out = append(out, m.st.selected.Render(pad(marker+rowText(r, w-1, nil), w)))
			continue
		}
		out = append(out, " "+rowText(r, w-1, &m.st))
	}
	return out
}

// rowText is a row of the list in w cells: an app's name and how many of its processes are
// online, or a process's id, status, restarts, cpu and memory. st colours it (nil: plain, for
// the selected row, drawn reversed as a whole).
func rowText(r row, w int, st *styles) string {
	paint := func(s string, style func(styles) string) string {
		if st == nil {
			return s
		}
		return style(*st)
	}
	if !r.proc {
		online := 0
		for _, p := range r.procs {
			if p.Status == "online" {
				online++
			}
		}
		count := fmt.Sprintf("%d/%d online", online, len(r.procs))
		name := ansi.Truncate(r.app, max(w-len(count)-2, 1), "…")
		gap := max(w-ansi.StringWidth(name)-len(count)-1, 1)
		return " " + paint(name, func(s styles) string { return s.accent.Render(name) }) + strings.Repeat(" ", gap) + paint(count, func(s styles) string { return s.dim.Render(count) })
	}
	p := r.procs[0]
	cpu, mem := "-", "-"
	if p.PID > 0 {
		cpu, mem = render.FormatCPU(p.CPU), spec.FormatSize(p.Memory)
	}
	status := fmt.Sprintf("%-8s", p.Status)
	return fmt.Sprintf("  %-3d %s ↺%-2d %5s %7s", p.ID,
		paint(status, func(s styles) string { return s.status(p.Status).Render(status) }), p.Restarts, cpu, mem)
}

// panel is the selected row's title and lines: its figures, the distribution over the app's
// workers, its logs; or the help.
func (m *model) panel(w, h int) (string, []string) {
	if m.help {
		return "Help", helpLines(m.st)
	}
	r, ok := m.selected()
	if !ok {
		return "Logs", m.logLinesView(w, h, "every process")
	}
	var lines []string
	lines = append(lines, m.st.bold.Render("Metrics")+m.st.dim.Render(fmt.Sprintf(" (the last %d polls)", historyPoints)))
	lines = append(lines, m.metricLines(r.procs, w, max(h/3-1, 1))...)
	if dist := m.distributionLines(appProcs(m.rows, r.app), r, w); len(dist) > 0 {
		lines = append(lines, "")
		lines = append(lines, dist...)
	}
	lines = append(lines, "")
	lines = append(lines, m.logLinesView(w, h-len(lines), r.label())...)
	return m.panelTitle(r), lines
}

// panelTitle names the row: an app, its processes and mode; a process, its pid, status, uptime
// and restarts.
func (m *model) panelTitle(r row) string {
	if !r.proc {
		mode := ""
		if len(r.procs) > 0 {
			mode = " · " + r.procs[0].App.ExecMode + " mode"
		}
		return r.app + " · " + processes(len(r.procs)) + mode
	}
	p := r.procs[0]
	s := r.label() + " · " + p.Status
	if p.PID > 0 {
		s += " · pid " + strconv.Itoa(p.PID)
	}
	if p.Status == "online" && !p.StartedAt.IsZero() && !m.polled.IsZero() {
		s += " · up " + render.FormatUptime(m.polled.Sub(p.StartedAt))
	}
	return s + " · ↺ " + strconv.Itoa(p.Restarts)
}

// metricLines are a line per process: its cpu, memory and request-rate sparklines, each
// followed by the latest figure; a line per figure when w is too narrow for the three; at most
// limit lines.
func (m *model) metricLines(procs []api.Process, w, limit int) []string {
	const fixed = 4 + 5 + 7 + 6 + 8 + 8 + 7 // labels, figures and gaps of a line of three
	narrow := (w-fixed)/3 < 8
	per := 1
	if narrow {
		per = 3
	}
	shown := max(limit/per, 1)
	var out []string
	for i, p := range procs {
		if i == shown && len(procs) > shown {
			out = append(out, m.st.dim.Render(fmt.Sprintf(" … %d more: select one", len(procs)-shown)))
			break
		}
		ph := m.hist[p.ID]
		if ph == nil {
			ph = &procHistory{}
		}
		cpu, mem, req := render.FormatCPU(ph.cpu.last()), spec.FormatSize(int64(ph.mem.last())), fmt.Sprintf("%.1f", ph.req.last())
		if narrow {
			sw := min(max(w-4-7-8, 4), 40)
			out = append(out,
				fmt.Sprintf("%-4d cpu   %s %7s", p.ID, m.st.online.Render(sparkline(ph.cpu.values, sw, 1, false)), cpu),
				fmt.Sprintf("     mem   %s %7s", m.st.info.Render(sparkline(ph.mem.values, sw, 1<<20, true)), mem),
				fmt.Sprintf("     req/s %s %7s", m.st.warn.Render(sparkline(ph.req.values, sw, 1, false)), req))
			continue
		}
		sw := min(max((w-fixed)/3, 4), 40)
		out = append(out, fmt.Sprintf("%-4d cpu %s %6s  mem %s %7s  req/s %s %6s", p.ID,
			m.st.online.Render(sparkline(ph.cpu.values, sw, 1, false)), cpu,
			m.st.info.Render(sparkline(ph.mem.values, sw, 1<<20, true)), mem,
			m.st.warn.Render(sparkline(ph.req.values, sw, 1, false)), req))
	}
	return out
}

// distributionLines show how the app's connections and requests spread over its workers (as
// `describe` does): nothing for an app whose processes are not cluster workers.
func (m *model) distributionLines(procs []api.Process, sel row, w int) []string {
	var conns, reqs uint64
	cluster := false
	for _, p := range procs {
		if st := p.RequestStats(); st != nil {
			cluster = true
			conns += st.Connections
			reqs += st.Requests
		}
	}
	if !cluster {
		return nil
	}
	share := func(n, total uint64) string {
		if total == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
	}
	out := []string{m.st.bold.Render("Distribution") + m.st.dim.Render(" (connections handed over, requests counted in the workers)"),
		m.st.dim.Render(fmt.Sprintf("%-4s %11s %7s %10s %7s %7s %7s", "id", "connections", "share", "requests", "share", "req/s", "p99"))}
	for _, p := range procs {
		st := p.RequestStats()
		if st == nil {
			continue
		}
		p99 := "-"
		if st.Requests > 0 {
			p99 = fmt.Sprintf("%.1fms", st.LatencyP99MS)
		}
		line := fmt.Sprintf("%-4d %11d %7s %10d %7s %7.1f %7s", p.ID, st.Connections, share(st.Connections, conns),
			st.Requests, share(st.Requests, reqs), st.ReqPerSec, p99)
		if sel.proc && sel.procs[0].ID == p.ID {
			line = m.st.bold.Render(line)
		}
		out = append(out, line)
	}
	return out
}

// logLinesView is the log section: its heading and as many of the newest lines as fit in h.
func (m *model) logLinesView(w, h int, what string) []string {
	head := m.st.bold.Render("Logs of "+what) + m.st.dim.Render(fmt.Sprintf(" (the last %d lines, then live)", m.logLines))
	if h <= 1 {
		return []string{head}
	}
	body := make([]string, 0, h)
	// Only the newest lines that fit are drawn: the pane keeps up to maxLogLines.
	for _, ev := range m.logs[max(len(m.logs)-(h-1), 0):] {
		body = append(body, m.logLine(ev.line, w))
	}
	if m.logsEnd != "" {
		body = append(body, m.st.bad.Render(m.logsEnd))
	}
	if len(body) == 0 {
		body = append(body, m.st.dim.Render("no log line yet"))
	}
	if len(body) > h-1 {
		body = body[len(body)-(h-1):]
	}
	return append([]string{head}, body...)
}

// logLine is one line as monit's snapshot prints it (render.MonitSnapshot): the time of a live
// line (history lines have none), who wrote it, coloured by stream as `corral logs` colours it,
// and the text.
func (m *model) logLine(l api.LogLine, w int) string {
	style := m.st.online
	switch l.Stream {
	case "err":
		style = m.st.bad
	case "corral":
		style = m.st.info
	}
	ts := ""
	if clock := render.LogClock(l); clock != "" {
		ts = m.st.dim.Render(clock) + " "
	}
	return ansi.Truncate(ts+style.Render(render.LogWho(l)+" |")+" "+render.PlainText(l.Message), w, "…")
}

// alertLines are the firing alerts, at most three and how many more; a line saying none fires
// otherwise.
func (m *model) alertLines(w int) []string {
	if len(m.firing) == 0 {
		return []string{fit(" Alerts: "+m.st.online.Render("none firing"), w)}
	}
	out := []string{fit(m.st.bad.Render(fmt.Sprintf(" Alerts firing: %d", len(m.firing)))+m.st.dim.Render(" (corral alerts for more)"), w)}
	for i, a := range m.firing {
		if i == 3 {
			out = append(out, fit(m.st.dim.Render(fmt.Sprintf("   … and %d more", len(m.firing)-3)), w))
			break
		}
		who := a.App
		if a.ID != nil {
			who += "[" + render.AlertID(a) + "]"
		}
		since := ""
		if !m.polled.IsZero() {
			since = " · for " + render.FormatUptime(m.polled.Sub(a.Since))
		}
		out = append(out, fit(fmt.Sprintf("   %s %s · %s (threshold %s)%s", m.st.bad.Render(a.Rule), who, render.AlertValue(a), a.Spec, since), w))
	}
	return out
}

// footer is the question of an action waiting for y/n, the action under way or how the last
// one went, or the keys.
func (m *model) footer() string {
	switch {
	case m.pending != nil:
		p := m.pending.prompt()
		return m.st.confirm.Render(" " + strings.ToUpper(p[:1]) + p[1:] + "? y/n")
	case m.busy != "":
		return m.st.warn.Render(" " + m.busy + "…")
	case m.status != "":
		style := m.st.online
		if m.failed {
			style = m.st.bad
		}
		return " " + style.Render(m.status) + m.st.help.Render(" · ? help · q quit")
	}
	return m.st.help.Render(" ↑/↓ j/k select · r restart · l reload · s stop · +/- scale · ? help · q quit")
}

// helpLines explain the keys.
func helpLines(st styles) []string {
	keys := [][2]string{
		{"↑ ↓ / k j", "select an app or one of its processes"},
		{"g G / Home End", "first, last row"},
		{"PgUp PgDn", "ten rows up, down"},
		{"r", "restart the selection (asks y/n)"},
		{"l", "reload: rolling, no downtime in cluster mode (asks y/n)"},
		{"s", "stop (asks y/n)"},
		{"+ / -", "one process more or fewer for the app (asks y/n)"},
		{"?", "this help; any key closes it"},
		{"q / Ctrl-C", "quit"},
	}
	out := []string{st.bold.Render("Keys"), ""}
	for _, k := range keys {
		out = append(out, fmt.Sprintf("  %-15s %s", k[0], k[1]))
	}
	return append(out, "", st.dim.Render("Actions go through the daemon's API, as `corral restart` and the other verbs do."))
}

// frame draws lines in a rounded box of w by h cells, title in its top border.
func frame(title string, lines []string, w, h int, st styles) []string {
	inner := w - 2
	title = ansi.Truncate(title, max(inner-3, 1), "…")
	top := "╭─ " + st.bold.Render(title) + " " + strings.Repeat("─", max(inner-3-ansi.StringWidth(title), 0)) + "╮"
	out := []string{top}
	for i := 0; i < h-2; i++ {
		l := ""
		if i < len(lines) {
			l = lines[i]
		}
		out = append(out, "│"+fit(l, inner)+"│")
	}
	return append(out, "╰"+strings.Repeat("─", max(inner, 0))+"╯")
}

// fit cuts s to w cells, or pads it with spaces to w.
func fit(s string, w int) string {
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return pad(s, w)
}

// pad adds spaces to s up to w cells.
func pad(s string, w int) string {
	return s + strings.Repeat(" ", max(w-ansi.StringWidth(s), 0))
}

// processes says "1 process", "3 processes".
func processes(n int) string {
	if n == 1 {
		return "1 process"
	}
	return strconv.Itoa(n) + " processes"
}
