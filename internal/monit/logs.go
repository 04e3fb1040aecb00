package monit

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/corral-pm/corral/internal/api"
)

// maxLogLines bounds the lines the log pane keeps (the newest); it draws as many as fit.
const maxLogLines = 1000

// logEvent is one line of a log stream, or its end (and why, if it failed).
type logEvent struct {
	line  api.LogLine
	ended bool
	err   error
}

// logStream is the log stream of the selected row: its history (Lines: N, for that target
// only), then its live lines. gen tells its messages from those of the streams before it.
type logStream struct {
	gen    int
	events chan logEvent
	cancel context.CancelFunc
}

// logBatchMsg carries the lines a stream had ready (one at least), in order.
type logBatchMsg struct {
	gen    int
	events []logEvent
}

// openLogs starts the stream of target (every process and the daemon for ""): a goroutine
// that reads it until ctx ends and hands its lines to the model through events.
func openLogs(ctx context.Context, src Source, gen int, target string, lines int) *logStream {
	ctx, cancel := context.WithCancel(ctx)
	s := &logStream{gen: gen, events: make(chan logEvent, 256), cancel: cancel}
	q := api.LogsQuery{Lines: lines, Follow: true}
	if target != "" {
		q.Targets = []string{target}
	}
	go func() {
		defer close(s.events)
		err := src.Logs(ctx, q, func(l api.LogLine) error {
			select {
			case s.events <- logEvent{line: l}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if ctx.Err() != nil {
			return // replaced by another stream, or monit is quitting
		}
		select {
		case s.events <- logEvent{ended: true, err: err}:
		case <-ctx.Done():
		}
	}()
	return s
}

// wait is the command that delivers the stream's next lines: it blocks for one, then takes
// whatever else is ready, so a burst of history is one redraw rather than hundreds.
func (s *logStream) wait() tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-s.events
		if !ok {
			return nil
		}
		batch := []logEvent{ev}
		for len(batch) < cap(s.events) {
			select {
			case ev, ok := <-s.events:
				if !ok {
					return logBatchMsg{gen: s.gen, events: batch}
				}
				batch = append(batch, ev)
			default:
				return logBatchMsg{gen: s.gen, events: batch}
			}
		}
		return logBatchMsg{gen: s.gen, events: batch}
	}
}
