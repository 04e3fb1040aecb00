package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func (c *cli) scaleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "scale <app> <N|max|+N|-N>",
		Short:   "set how many processes an app runs, live (scaling down drains workers first)",
		GroupID: "apps",
		// `scale web -1` means one process fewer, as in PM2, but a flag parser reads -1 as a
		// flag named 1: the command sorts its arguments itself (scaleArgs).
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, raw []string) error {
			args, flags := scaleArgs(raw)
			fs := pflag.NewFlagSet("scale", pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.AddFlagSet(cmd.InheritedFlags()) // --silent, --no-color
			help := fs.BoolP("help", "h", false, "help for scale")
			if err := fs.Parse(flags); err != nil {
				return err
			}
			if *help {
				return cmd.Help()
			}
			if len(args) != 2 {
				return fmt.Errorf("scale takes an app and a count (N, max, +N or -N), got %d argument(s): `corral scale web 4`", len(args))
			}
			ctx := cmd.Context()
			resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) {
				return cl.Scale(ctx, api.ScaleRequest{App: args[0], Count: args[1]})
			})
			if err != nil {
				return err
			}
			c.infof("%s now runs %d process(es)", args[0], len(resp.Processes))
			if err := c.printTable(ctx); err != nil {
				return err
			}
			return c.reportErrors(resp.Errors)
		},
	}
	return cmd
}

// scaleArgs separates scale's arguments from its flags: a signed number (-1, +2) is an
// argument wherever it stands; so is everything after "--".
func scaleArgs(raw []string) (args, flags []string) {
	for i, a := range raw {
		switch {
		case a == "--":
			return append(args, raw[i+1:]...), flags
		case !strings.HasPrefix(a, "-") || isSignedNumber(a):
			args = append(args, a)
		default:
			flags = append(flags, a)
		}
	}
	return args, flags
}

func isSignedNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// progress prints reload and build events while an action runs, so a rolling reload of many
// workers shows where it is, and a build before it is not waited for in silence. It stops
// when the returned function is called (after the end of a build it has shown the start of).
func (c *cli) progress(ctx context.Context) (stop func()) {
	if c.silent {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	var builds openBuilds
	wg.Add(1)
	go func() {
		defer wg.Done()
		once := sync.Once{}
		// The old runs that a replacement took over from: their exits are the drains.
		oldPIDs := map[int]int{}
		_ = c.run(ctx, func(cl *api.Client) error {
			return cl.Events(ctx, func() { once.Do(func() { close(ready) }) }, func(ev api.Event) error {
				switch {
				case ev.Kind == api.EventReload:
					c.infof("%s[%d]: started replacement pid %d (%s)", ev.Name, ev.ID, ev.PID, ev.Message)
				case ev.Kind == api.EventOnline && ev.OldPID != 0:
					c.infof("%s[%d]: pid %d ready, %s", ev.Name, ev.ID, ev.PID, ev.Message)
				case ev.Kind == api.EventExit && ev.Replaced && ev.PID == oldPIDs[ev.ID]:
					c.infof("%s[%d]: old pid %d drained and exited", ev.Name, ev.ID, ev.PID)
				case ev.Kind == api.EventReloadFailed:
					c.infof("%s[%d]: replacement pid %d failed: %s", ev.Name, ev.ID, ev.PID, ev.Message)
				case ev.Kind == api.EventBuild:
					c.infof("%s: %s", ev.Name, ev.Message)
					if strings.HasPrefix(ev.Message, api.BuildStartedPrefix) {
						builds.begin(ev.Name)
					} else {
						builds.end(ev.Name)
					}
				}
				if ev.Kind == api.EventOnline && ev.OldPID != 0 {
					oldPIDs[ev.ID] = ev.OldPID
				}
				return nil
			})
		})
		once.Do(func() { close(ready) })
	}()
	// Wait until the subscription is live, so the first events of the action are not missed.
	<-ready
	return func() {
		builds.wait(time.Second)
		cancel()
		wg.Wait()
	}
}

// printReloads prints a rolling reload's summary.
func (c *cli) printReloads(rs []api.ReloadSummary) {
	if len(rs) == 0 || c.silent {
		return
	}
	fmt.Fprintln(c.stdout, "[corral] Reload summary:")
	for _, r := range rs {
		switch {
		case r.Error != "":
			fmt.Fprintf(c.stdout, "  %s[%d]  pid %d -> %d  FAILED: %s\n", r.Name, r.ID, r.OldPID, r.NewPID, r.Error)
		case r.Started:
			fmt.Fprintf(c.stdout, "  %s[%d]  was not running: started (pid %d)\n", r.Name, r.ID, r.NewPID)
		default:
			fmt.Fprintf(c.stdout, "  %s[%d]  pid %d -> %d  ready in %dms\n", r.Name, r.ID, r.OldPID, r.NewPID, r.ReadyMS)
		}
	}
}
