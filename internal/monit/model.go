package monit

import (
	"context"
	"errors"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/corral-pm/corral/internal/api"
)

// model is monit's state: what the last poll said, the rolling history of each process's
// figures, the list and its selection, the selected row's log lines, and an action waiting
// for its confirmation.
type model struct {
	ctx      context.Context
	src      Source
	interval time.Duration
	logLines int
	st       styles
	now      func() time.Time

	width, height int

	procs   []api.Process
	firing  []api.Alert
	polled  time.Time
	pollErr error
	hist    history
	ticking bool // a tick is pending: the next poll is scheduled

	rows   []row
	sel    int
	selKey string

	logs    []logEvent // the selected row's lines, oldest first (at most maxLogLines)
	stream  *logStream
	logGen  int
	logsEnd string // why the stream ended, if it did

	pending *action // waiting for y/n
	busy    string  // the action under way
	status  string  // how the last action went
	failed  bool    // whether it failed
	help    bool
}

// pollMsg is one poll's answer.
type pollMsg struct {
	at     time.Time
	procs  []api.Process
	firing []api.Alert
	err    error
}

// tickMsg asks for the next poll.
type tickMsg struct{}

// pollTimeout bounds one poll: a daemon that does not answer shows as an error on the screen,
// and the next poll tries again.
const pollTimeout = 10 * time.Second

// poll asks the daemon for the processes and the firing alerts.
func (m *model) poll() tea.Cmd {
	ctx, src, now := m.ctx, m.src, m.now
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, pollTimeout)
		defer cancel()
		procs, err := src.Processes(ctx)
		if err != nil {
			return pollMsg{at: now(), err: err}
		}
		msg := pollMsg{at: now(), procs: procs}
		if al, err := src.Alerts(ctx); err == nil {
			msg.firing = al.Firing
		}
		return msg
	}
}

// Init draws the first poll's figures (given to newModel) and starts the polls and the log
// stream of the first row.
func (m *model) Init() tea.Cmd {
	return tea.Batch(m.schedule(), m.follow())
}

// schedule asks for the next poll one interval from now, unless it is asked for already: one
// poll at a time on the interval, however slow the daemon answers and however many extra polls
// actions ask for.
func (m *model) schedule() tea.Cmd {
	if m.ticking {
		return nil
	}
	m.ticking = true
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{} })
}

// apply takes a poll's answer: the figures, their history, the rows (the selection stays on
// its row, or on the row at its place when that row is gone).
func (m *model) apply(msg pollMsg) {
	m.polled, m.pollErr = msg.at, msg.err
	if msg.err != nil {
		return
	}
	m.procs, m.firing = msg.procs, msg.firing
	m.hist.record(msg.procs)
	m.rows = buildRows(msg.procs)
	for i, r := range m.rows {
		if r.key() == m.selKey {
			m.sel = i
			return
		}
	}
	m.sel = min(m.sel, max(len(m.rows)-1, 0))
}

// selected is the selected row; ok is false when there are no processes.
func (m *model) selected() (row, bool) {
	if m.sel < 0 || m.sel >= len(m.rows) {
		return row{}, false
	}
	return m.rows[m.sel], true
}

// follow (re)starts the log stream when the selection has moved to another row: the history of
// the new row, then its live lines. Every process's lines when there is none.
func (m *model) follow() tea.Cmd {
	key, target := "", ""
	if r, ok := m.selected(); ok {
		key, target = r.key(), r.target()
	}
	if m.stream != nil && key == m.selKey {
		return nil
	}
	if m.stream != nil {
		m.stream.cancel()
	}
	m.selKey = key
	m.logGen++
	m.logs, m.logsEnd = nil, ""
	m.stream = openLogs(m.ctx, m.src, m.logGen, target, m.logLines)
	return m.stream.wait()
}

// addLogs takes a batch of the current stream's lines.
func (m *model) addLogs(msg logBatchMsg) tea.Cmd {
	if m.stream == nil || msg.gen != m.stream.gen {
		return nil // a stream replaced since
	}
	for _, ev := range msg.events {
		if ev.ended {
			m.logsEnd = "the log stream ended"
			if ev.err != nil && !errors.Is(ev.err, context.Canceled) {
				m.logsEnd += ": " + ev.err.Error()
			}
			return nil
		}
		m.logs = append(m.logs, ev)
	}
	if len(m.logs) > maxLogLines {
		// Resliced, not copied: append moves the kept lines to a new array only when it grows.
		m.logs = m.logs[len(m.logs)-maxLogLines:]
	}
	return m.stream.wait()
}

// Update handles keys, the window's size, polls, log lines and the actions' results.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		m.ticking = false
		return m, m.poll()
	case pollMsg:
		m.apply(msg)
		if msg.err == nil && m.logsEnd != "" {
			m.stream.cancel()
			m.stream = nil // the daemon answers again: follow the logs again
		}
		return m, tea.Batch(m.schedule(), m.follow())
	case logBatchMsg:
		return m, m.addLogs(msg)
	case actionDoneMsg:
		m.busy = ""
		m.status, m.failed = msg.text, msg.failed
		return m, m.poll()
	case tea.KeyMsg:
		// Keys typed faster than they are read come as one message of several runes.
		if msg.Type == tea.KeyRunes && !msg.Alt && !msg.Paste && len(msg.Runes) > 1 {
			var cmds []tea.Cmd
			for _, r := range msg.Runes {
				cmds = append(cmds, m.key(string(r)))
			}
			return m, tea.Batch(cmds...)
		}
		return m, m.key(msg.String())
	}
	return m, nil
}

// key handles one key press: a pending action takes y (anything else cancels it); otherwise
// moves, actions, help and quit.
func (m *model) key(k string) tea.Cmd {
	if k == "ctrl+c" {
		return tea.Quit
	}
	if m.pending != nil {
		a := m.pending
		m.pending = nil
		if k == "y" || k == "Y" {
			m.busy, m.status = a.prompt(), ""
			return a.run(m.ctx, m.src)
		}
		m.status, m.failed = "cancelled", false
		return nil
	}
	if m.help && k != "?" && k != "q" {
		m.help = false
		return nil
	}
	switch k {
	case "q":
		return tea.Quit
	case "?":
		m.help = !m.help
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "home", "g":
		m.move(-len(m.rows))
	case "end", "G":
		m.move(len(m.rows))
	case "pgup":
		m.move(-10)
	case "pgdown":
		m.move(10)
	case "r", "l", "s", "+", "=", "-":
		if r, ok := m.selected(); ok && m.busy == "" {
			m.pending = newAction(k, r, len(appProcs(m.rows, r.app)))
			m.status = ""
		}
		return nil
	default:
		return nil
	}
	return m.follow()
}

// move moves the selection by delta rows, within the list.
func (m *model) move(delta int) {
	if len(m.rows) == 0 {
		return
	}
	m.sel = min(max(m.sel+delta, 0), len(m.rows)-1)
}
