package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/monit"
	"github.com/corral-pm/corral/internal/render"
	"github.com/spf13/cobra"
)

// monitCommand is the live view: in a terminal, an interactive UI (internal/monit) to move
// through the apps and their workers, see one's log lines, sparklines and traffic
// distribution, the firing alerts, and reload, restart, scale or stop it. Its output piped or
// in a file, it prints one plain snapshot instead and exits: a screen redrawn every second is
// no use to a pipe, and escape codes are noise in a file.
func (c *cli) monitCommand() *cobra.Command {
	var interval time.Duration
	var logLines int
	cmd := &cobra.Command{
		Use:     "monit",
		Aliases: []string{"dashboard", "dash"},
		Short:   "live view: pick a process, see its logs, cpu/memory/req/s, distribution and alerts, and act on it",
		Long: `monit is an interactive view of every app and its processes: move with ↑/↓ (j/k), see
the selection's log lines (its history, then live), CPU, memory and request-rate sparklines,
how its app's connections and requests spread over the workers, and the firing alerts; r
restarts, l reloads, s stops, +/- scales the app, each after a y/n; ? helps, q quits.

With its output not a terminal (piped, redirected), monit prints one plain snapshot (the
process table, the distribution, the alerts, the latest log lines) and exits.`,
		GroupID: "info",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if interval <= 0 {
				return fmt.Errorf("--interval must be more than 0, got %v", interval)
			}
			if logLines < 0 {
				return fmt.Errorf("--log-lines must be 0 or more, got %d", logLines)
			}
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			// The first request connects (starting the daemon if need be) and checks its
			// version, printing any warning before the screen is taken.
			procs, err := c.processes(ctx, false)
			if err != nil {
				return err
			}
			if !isTerminal(c.stdout) {
				return c.monitSnapshot(ctx, procs, logLines)
			}
			return monit.Run(ctx, monit.Options{
				Source:    monitSource{c.client},
				Interval:  interval,
				LogLines:  logLines,
				Color:     c.color(),
				Processes: procs,
				Out:       c.stdout,
			})
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh every")
	cmd.Flags().IntVar(&logLines, "log-lines", 15, "log lines of history to show first")
	return cmd
}

// monitSnapshot prints the one picture monit gives a pipe: the table, the distribution, the
// alerts firing and each app's latest log lines (the daemon's own are `corral logs`'s), all
// without colour.
func (c *cli) monitSnapshot(ctx context.Context, procs []api.Process, logLines int) error {
	var firing []api.Alert
	// A daemon of an older corral has no alerts to tell.
	if al, err := request(ctx, c, func(cl *api.Client) (api.AlertsResponse, error) { return cl.Alerts(ctx) }); err == nil {
		firing = al.Firing
	}
	var lines []api.LogLine
	if len(procs) > 0 && logLines > 0 {
		err := c.run(ctx, func(cl *api.Client) error {
			return cl.Logs(ctx, api.LogsQuery{Targets: []string{"all"}, Lines: logLines}, func(l api.LogLine) error {
				if l.ProcID >= 0 {
					lines = append(lines, l)
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("read the latest log lines: %w", err)
		}
	}
	o := c.renderOptions()
	o.Color = false
	_, err := io.WriteString(c.stdout, render.MonitSnapshot(procs, firing, lines, o))
	return err
}

// monitSource is the UI's access to the daemon: the CLI's API client, which the other verbs
// use, its Alerts, Logs, Act and Scale as they are. It calls the client directly rather than
// through request: the UI calls from several goroutines, and a daemon gone while it runs shows
// on the screen rather than being started again behind it.
type monitSource struct{ *api.Client }

// Processes lists every process, secrets masked.
func (s monitSource) Processes(ctx context.Context) ([]api.Process, error) {
	return s.Client.Processes(ctx, false)
}
