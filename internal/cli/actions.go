package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/ecosystem"
	"github.com/corral-pm/corral/internal/render"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/spf13/cobra"
)

// act sends one lifecycle action for targets and prints the table.
func (c *cli) act(ctx context.Context, action api.Action, req api.ActionRequest) error {
	if len(req.Targets) == 0 {
		return fmt.Errorf("%s what? name an app, an id, a namespace, an ecosystem file, or all", action)
	}
	var doomed []api.Process
	if action == api.ActionDelete && !c.silent {
		// The daemon answers a delete with nothing left to list: what it removes is listed now.
		doomed, _ = c.processes(ctx, false, req.Targets...)
	}
	resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) { return cl.Act(ctx, action, req) })
	if err != nil {
		return err
	}
	for _, p := range resp.Processes {
		c.infof("%s %s[%d]: %s", actionDone[action], p.Name, p.ID, p.Status)
	}
	if action == api.ActionDelete {
		return c.reportDeleted(ctx, doomed, resp.Errors)
	}
	if err := c.printTable(ctx); err != nil {
		return err
	}
	return c.reportErrors(resp.Errors)
}

var actionDone = map[api.Action]string{
	api.ActionStop: "Stopped", api.ActionRestart: "Restarted", api.ActionReload: "Reloaded", api.ActionDelete: "Deleted",
	api.ActionReset: "Reset", api.ActionSignal: "Signalled", api.ActionStart: "Started",
}

func (c *cli) simpleAction(use, short string, action api.Action, aliases ...string) *cobra.Command {
	var only []string
	cmd := &cobra.Command{
		Use:     use + " <name|id|namespace|script|all|ecosystem file>...",
		Aliases: aliases,
		Short:   short,
		GroupID: "apps",
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := c.actionTargets(args, only)
			if err != nil {
				return err
			}
			if action == api.ActionStop {
				if err := c.checkAnyApp(cmd.Context(), use, targets); err != nil {
					return err
				}
			}
			return c.act(cmd.Context(), action, api.ActionRequest{Targets: targets})
		},
	}
	cmd.Flags().StringSliceVar(&only, "only", nil, "with an ecosystem file: only these of its apps")
	return cmd
}

func (c *cli) stopCommand() *cobra.Command {
	cmd := c.simpleAction("stop", "stop apps gracefully (kill_signal, then SIGKILL after kill_timeout)", api.ActionStop)
	cmd.Flags().Bool("watch", false, "accepted for PM2 compatibility (stopping also stops watching)")
	return cmd
}

func (c *cli) deleteCommand() *cobra.Command {
	return c.simpleAction("delete", "stop apps and remove them from the list", api.ActionDelete, "del")
}

func (c *cli) resetCommand() *cobra.Command {
	return c.simpleAction("reset", "reset restart counters", api.ActionReset)
}

func (c *cli) restartCommand() *cobra.Command {
	return c.restartLike(api.ActionRestart, "restart apps (stop, then start)")
}

func (c *cli) reloadCommand() *cobra.Command {
	return c.restartLike(api.ActionReload, "reload apps: rolling and zero-downtime in cluster mode (a restart in fork mode)")
}

// restartLike builds restart and reload: ecosystem files among the targets re-apply the file
// (its env included); attribute flags (`--watch`, `--node-args`, `--cron-restart 0`...) apply
// to the apps first, as in PM2; --update-env gives the apps this shell's environment.
func (c *cli) restartLike(action api.Action, short string) *cobra.Command {
	f := &appFlags{}
	cmd := &cobra.Command{
		Use:     string(action) + " <name|id|namespace|script|all|ecosystem file>...",
		Short:   short,
		GroupID: "apps",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 {
				return fmt.Errorf("%s what? name an app, an id, a namespace, a script, an ecosystem file, or all", action)
			}
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			over := overrides(cmd.Flags())
			opt, err := c.loaderOptions(f, over)
			if err != nil {
				return err
			}
			var files, targets []string
			var apps []spec.App
			for _, a := range args {
				switch {
				case a == "-":
					loaded, err := c.readStdinFile(opt)
					if err != nil {
						return err
					}
					apps = append(apps, loaded...)
				case ecosystem.IsConfigFile(a) && isFile(a):
					files = append(files, a)
				default:
					targets = append(targets, a)
				}
			}
			targets = scriptTargets(targets)
			if err := c.checkAnyApp(ctx, string(action), targets); err != nil {
				return err
			}
			for _, file := range files {
				loaded, err := c.loadFile(file, opt)
				if err != nil {
					return err
				}
				apps = append(apps, loaded...)
			}
			if len(targets) > 0 && len(over) > 0 {
				respecced, err := c.respec(ctx, targets, over, opt, f.updateEnv)
				if err != nil {
					return err
				}
				apps = append(apps, respecced...)
				targets = nil
			}
			var errs []string
			if len(apps) > 0 {
				stopBuilds := c.followBuilds(ctx, apps)
				resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) {
					return cl.Start(ctx, api.StartRequest{Apps: apps, Mode: api.ModeFile})
				})
				stopBuilds()
				if err != nil {
					return err
				}
				for _, a := range apps {
					c.infof("%s %s with the new attributes", actionDone[action], a.Name)
				}
				errs = append(errs, resp.Errors...)
			}
			if len(targets) > 0 {
				req := api.ActionRequest{Targets: targets}
				if f.updateEnv {
					req.UpdateEnv = spec.EnvMap(os.Environ())
				}
				stop := c.progress(ctx)
				resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) { return cl.Act(ctx, action, req) })
				stop()
				if err != nil {
					return err
				}
				if len(resp.Reloads) > 0 {
					c.printReloads(resp.Reloads)
				} else {
					for _, p := range resp.Processes {
						c.infof("%s %s[%d]: %s", actionDone[action], p.Name, p.ID, p.Status)
					}
				}
				if !f.updateEnv && len(resp.Errors) == 0 {
					c.infof("Use --update-env to give the app(s) this shell's environment")
				}
				errs = append(errs, resp.Errors...)
			}
			if err := c.printTable(ctx); err != nil {
				return err
			}
			return c.reportErrors(errs)
		},
	}
	addAppFlags(cmd.Flags(), f)
	for _, n := range []string{"no-daemon", "force", "execute-command"} {
		cmd.Flags().Lookup(n).Hidden = true
	}
	return cmd
}

func (c *cli) sendSignalCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "sendSignal <signal> <name|id|namespace|all>...",
		Aliases: []string{"send-signal"},
		Short:   "send a signal to apps' processes",
		GroupID: "apps",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "" {
				return errors.New("no signal given")
			}
			targets, err := c.expandTargets(args[1:])
			if err != nil {
				return err
			}
			return c.act(cmd.Context(), api.ActionSignal, api.ActionRequest{Targets: targets, Signal: args[0]})
		},
	}
}

// reportDeleted confirms a delete by name and id, and prints the table of what is left, if
// anything is (an empty table says less than "nothing left").
func (c *cli) reportDeleted(ctx context.Context, doomed []api.Process, errs []string) error {
	for _, p := range doomed {
		c.infof("Deleted %s[%d]", p.Name, p.ID)
	}
	if !c.silent {
		procs, err := c.processes(ctx, false)
		if err != nil {
			return err
		}
		if len(procs) == 0 {
			c.infof("No app left: `corral start` starts one")
		} else {
			fmt.Fprint(c.stdout, render.Table(procs, c.renderOptions()))
		}
	}
	return c.reportErrors(errs)
}
