package cli

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/render"
	"github.com/spf13/cobra"
)

// monitCommand is a live view in the terminal: one table of every process with, for cluster
// workers, their connections and requests per second (render.Monit), and the alerts firing
// (render.MonitAlerts), refreshed every interval, above the latest log lines. A thin client like every other command: one GET a refresh, and
// the log stream. The full distribution (listening addresses, refusals, p50) stays in
// `describe`.
func (c *cli) monitCommand() *cobra.Command {
	var interval time.Duration
	var logLines int
	cmd := &cobra.Command{
		Use:     "monit",
		Aliases: []string{"dashboard", "dash"},
		Short:   "live view of every process (cpu, memory, connections, req/s), firing alerts and the latest log lines",
		GroupID: "info",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			var mu sync.Mutex
			var recent []string
			go func() {
				_ = c.run(ctx, func(cl *api.Client) error {
					return cl.Logs(ctx, api.LogsQuery{Lines: 0, Follow: true}, func(l api.LogLine) error {
						who := "corral"
						if l.ProcID >= 0 {
							who = fmt.Sprintf("%d|%s", l.ProcID, l.App)
						}
						mu.Lock()
						recent = append(recent, fmt.Sprintf("%s %s | %s", l.Time.Format("15:04:05"), who, l.Message))
						if len(recent) > logLines {
							recent = recent[len(recent)-logLines:]
						}
						mu.Unlock()
						return nil
					})
				})
			}()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				procs, err := c.processes(ctx, false)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				o := c.renderOptions()
				var b strings.Builder
				b.WriteString("\x1b[H\x1b[2J") // home, clear
				fmt.Fprintf(&b, "corral monit — %s — every %v, Ctrl-C to quit\n", o.Now.Format("15:04:05"), interval)
				b.WriteString(render.Monit(procs, o))
				// The alerts firing now; a daemon of an older corral has none to tell.
				if al, err := request(ctx, c, func(cl *api.Client) (api.AlertsResponse, error) { return cl.Alerts(ctx) }); err == nil {
					b.WriteString(render.MonitAlerts(al.Firing, o))
				}
				mu.Lock()
				fmt.Fprintf(&b, " Latest log lines\n%s\n", strings.Join(recent, "\n"))
				mu.Unlock()
				fmt.Fprint(c.stdout, b.String())
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh every")
	cmd.Flags().IntVar(&logLines, "log-lines", 10, "log lines to show")
	return cmd
}
