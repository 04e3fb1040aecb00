package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/render"
	"github.com/spf13/cobra"
)

// logPrinter formats log lines as PM2 does: "<id>|<name> | line", the prefix green for stdout,
// red for stderr and blue for corral's own lines.
type logPrinter struct {
	out, errOut io.Writer
	raw, asJSON bool
	color       bool
	timestamp   *logs.TimeFormat
	nameWidth   int
	lastPath    string
}

func (lp *logPrinter) print(l api.LogLine) {
	if lp.asJSON {
		// Lines of history carry no time (the file does not say when they were written):
		// their timestamp is null rather than a made-up year 1.
		var ts *time.Time
		if !l.Time.IsZero() {
			ts = &l.Time
		}
		b, _ := json.Marshal(struct {
			Message string     `json:"message"`
			Time    *time.Time `json:"timestamp"`
			Type    string     `json:"type"`
			ProcID  int        `json:"process_id"`
			App     string     `json:"app_name"`
		}{l.Message, ts, l.Stream, l.ProcID, l.App})
		fmt.Fprintf(lp.out, "%s\n", b)
		return
	}
	if lp.raw {
		if l.Stream == "corral" {
			return
		}
		w := lp.out
		if l.Stream == "err" {
			w = lp.errOut
		}
		fmt.Fprintln(w, l.Message)
		return
	}
	if l.History && l.Path != lp.lastPath {
		lp.lastPath = l.Path
		fmt.Fprintln(lp.out, lp.paint("\x1b[90m", l.Path+" last lines:"))
	}
	if !l.History && lp.lastPath != "" {
		lp.lastPath = ""
	}
	who := render.LogWho(l)
	prefix := who + strings.Repeat(" ", max(0, lp.nameWidth+2-utf8.RuneCountInString(who))) + " | "
	color := "\x1b[32m"
	switch l.Stream {
	case "err":
		color = "\x1b[31m"
	case "corral":
		color = "\x1b[34m"
	}
	ts := ""
	if lp.timestamp != nil && !l.Time.IsZero() {
		ts = lp.timestamp.Format(l.Time) + " "
	}
	fmt.Fprintln(lp.out, ts+lp.paint(color, prefix)+l.Message)
}

func (lp *logPrinter) paint(code, s string) string {
	if !lp.color {
		return s
	}
	return code + s + "\x1b[0m"
}

func (c *cli) logsCommand() *cobra.Command {
	var lines int
	var nostream, raw, asJSON, onlyErr, onlyOut bool
	var timestamp string
	cmd := &cobra.Command{
		Use:     "logs [name|id|namespace|all]...",
		Aliases: []string{"log"},
		Short:   "print the last log lines of apps, then follow them",
		GroupID: "logs",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			targets, err := c.actionTargets(args, nil)
			if err != nil {
				return err
			}
			q := api.LogsQuery{Targets: targets, Lines: lines, Follow: !nostream}
			switch {
			case onlyErr && onlyOut:
				return fmt.Errorf("--err and --out together: leave both out to get both streams")
			case onlyErr:
				q.Stream = "err"
			case onlyOut:
				q.Stream = "out"
			}
			lp := &logPrinter{out: c.stdout, errOut: c.stderr, raw: raw, asJSON: asJSON, color: c.color()}
			if cmd.Flags().Changed("timestamp") {
				tf, err := logs.NewTimeFormat(timestamp)
				if err != nil {
					return fmt.Errorf("--timestamp: %w", err)
				}
				lp.timestamp = tf
			}
			procs, err := c.processes(ctx, false)
			if err != nil {
				return err
			}
			for _, p := range procs {
				lp.nameWidth = max(lp.nameWidth, utf8.RuneCountInString(strconv.Itoa(p.ID)+"|"+p.Name)-2)
			}
			if !raw && !asJSON && !nostream && !c.silent {
				what := "all processes"
				if len(args) > 0 {
					what = strings.Join(args, ", ")
				}
				fmt.Fprintln(c.stdout, lp.paint("\x1b[90m", fmt.Sprintf("[TAILING] last %d lines of %s, then following (Ctrl-C to stop; --lines to change)", lines, what)))
			}
			err = c.run(ctx, func(cl *api.Client) error {
				return cl.Logs(ctx, q, func(l api.LogLine) error {
					lp.print(l)
					return nil
				})
			})
			if ctx.Err() != nil {
				return nil // Ctrl-C
			}
			return err
		},
	}
	cmd.Flags().IntVar(&lines, "lines", 15, "how many lines of history to print first")
	cmd.Flags().BoolVar(&nostream, "nostream", false, "print the history and exit")
	cmd.Flags().BoolVar(&raw, "raw", false, "lines only, no prefix (stderr lines to stderr)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	cmd.Flags().BoolVar(&onlyErr, "err", false, "stderr only")
	cmd.Flags().BoolVar(&onlyOut, "out", false, "stdout only")
	cmd.Flags().StringVar(&timestamp, "timestamp", "", "prefix lines with their time; the format is optional (--timestamp=\"HH:mm:ss\"), YYYY-MM-DD-HH:mm:ss when left out")
	cmd.Flags().Lookup("timestamp").NoOptDefVal = "YYYY-MM-DD-HH:mm:ss"
	return cmd
}

func (c *cli) flushCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "flush [name|id|namespace|all]...",
		Short:   "empty log files (all of them, and the daemon's, without a target)",
		GroupID: "logs",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			targets, err := c.expandTargets(args)
			if err != nil {
				return err
			}
			resp, err := request(ctx, c, func(cl *api.Client) (api.FlushResponse, error) { return cl.Flush(ctx, targets) })
			if err != nil {
				return err
			}
			for _, p := range resp.Flushed {
				c.infof("Flushed %s", p)
			}
			return c.reportErrors(resp.Errors)
		},
	}
}

func (c *cli) reloadLogsCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "reloadLogs",
		Aliases: []string{"reload-logs"},
		Short:   "reopen every log file (after an external logrotate moved them)",
		GroupID: "logs",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.run(ctx, func(cl *api.Client) error { return cl.ReopenLogs(ctx) }); err != nil {
				return err
			}
			c.infof("Log files reopened")
			return nil
		},
	}
}
