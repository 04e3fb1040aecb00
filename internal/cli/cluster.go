package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/spf13/cobra"
)

func (c *cli) scaleCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "scale <app> <N|max|+N|-N>",
		Short:   "set how many processes an app runs, live (scaling down drains workers first)",
		GroupID: "apps",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var resp api.ActionResponse
			if err := c.call(ctx, "POST", "/scale", api.ScaleRequest{App: args[0], Count: args[1]}, &resp); err != nil {
				return err
			}
			c.infof("%s now runs %d process(es)", args[0], len(resp.Processes))
			if err := c.printTable(ctx); err != nil {
				return err
			}
			return c.reportErrors(resp.Errors)
		},
	}
}

// progress prints reload events while an action runs, so a rolling reload of many workers
// shows where it is. It stops when the returned function is called.
func (c *cli) progress(ctx context.Context) (stop func()) {
	if c.silent {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		once := sync.Once{}
		_ = c.stream(ctx, "/events", func() { once.Do(func() { close(ready) }) }, func(b []byte) error {
			var ev supervisor.Event
			if json.Unmarshal(b, &ev) != nil {
				return nil
			}
			switch {
			case ev.Event == "reload":
				c.infof("%s[%d]: started replacement pid %d (%s)", ev.Name, ev.ID, ev.PID, ev.Message)
			case ev.Event == "online" && strings.HasPrefix(ev.Message, "took over"):
				c.infof("%s[%d]: pid %d ready, %s", ev.Name, ev.ID, ev.PID, ev.Message)
			case ev.Event == "exit" && ev.Message == "replaced run exited":
				c.infof("%s[%d]: old pid %d drained and exited", ev.Name, ev.ID, ev.PID)
			case ev.Event == "reload failed":
				c.infof("%s[%d]: replacement pid %d failed: %s", ev.Name, ev.ID, ev.PID, ev.Message)
			}
			return nil
		})
		once.Do(func() { close(ready) })
	}()
	// Wait until the subscription is live, so the first events of the action are not missed.
	<-ready
	return func() {
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
