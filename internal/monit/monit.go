// Package monit is `corral monit`'s terminal UI (a Bubble Tea program): the processes, apps
// and their workers, to move through; the selected one's log lines (its history, then live),
// its CPU, memory and request-rate sparklines, how its app's traffic spreads over the workers;
// the firing alerts; and keys to reload, restart, scale or stop it, each after a y/n. A thin
// client: it polls the daemon's API through Source, as the other verbs call it.
package monit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/monit/quietterm"
)

// bubbletea has initialised by now (this package imports it): TERM may be the user's again.
func init() { quietterm.Restore() }

// Options are what `corral monit` passes.
type Options struct {
	Source   Source
	Interval time.Duration // between polls
	LogLines int           // lines of history the log pane starts with
	Color    bool
	// Processes is the first poll's answer, made before the screen is taken (so that a
	// daemon that does not answer is a plain error, and a version warning prints as usual).
	Processes []api.Process
	Out       io.Writer // the terminal
}

// Run shows the UI on the terminal until q, Ctrl-C, or ctx ends, and restores the terminal.
func Run(ctx context.Context, o Options) error {
	m := &model{
		ctx:      ctx,
		src:      o.Source,
		interval: o.Interval,
		logLines: o.LogLines,
		st:       newStyles(o.Out, o.Color),
		now:      time.Now,
		hist:     history{},
	}
	m.apply(pollMsg{at: time.Now(), procs: o.Processes})
	if al, err := o.Source.Alerts(ctx); err == nil {
		m.firing = al.Firing
	}
	_, err := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithOutput(o.Out)).Run()
	// However the program ended (q, Ctrl-C, ctx), the log stream ends with it.
	if m.stream != nil {
		m.stream.cancel()
	}
	if errors.Is(err, tea.ErrInterrupted) || (errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil) {
		return nil // SIGINT or SIGTERM from outside: a normal end, as q is
	}
	if err != nil {
		return fmt.Errorf("monit: %w", err)
	}
	return nil
}
