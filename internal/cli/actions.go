package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/ecosystem"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/spf13/cobra"
)

// act sends one lifecycle action for targets and prints the table.
func (c *cli) act(ctx context.Context, action api.Action, req api.ActionRequest) error {
	if len(req.Targets) == 0 {
		return fmt.Errorf("%s what? name an app, an id, a namespace, an ecosystem file, or all", action)
	}
	resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) { return cl.Act(ctx, action, req) })
	if err != nil {
		return err
	}
	for _, p := range resp.Processes {
		c.infof("%s %s[%d]: %s", actionDone[action], p.Name, p.ID, p.Status)
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
	return &cobra.Command{
		Use:     use + " <name|id|namespace|all|ecosystem file>...",
		Aliases: aliases,
		Short:   short,
		GroupID: "apps",
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := c.expandTargets(args)
			if err != nil {
				return err
			}
			return c.act(cmd.Context(), action, api.ActionRequest{Targets: targets})
		},
	}
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
// (its env included); --update-env gives the apps this shell's environment.
func (c *cli) restartLike(action api.Action, short string) *cobra.Command {
	f := &appFlags{}
	cmd := &cobra.Command{
		Use:     string(action) + " <name|id|namespace|all|ecosystem file>...",
		Short:   short,
		GroupID: "apps",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 {
				return fmt.Errorf("%s what? name an app, an id, a namespace, an ecosystem file, or all", action)
			}
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			var files, targets []string
			for _, a := range args {
				if ecosystem.IsConfigFile(a) && isFile(a) {
					files = append(files, a)
				} else {
					targets = append(targets, a)
				}
			}
			var errs []string
			if len(files) > 0 {
				opt, err := c.loaderOptions(f, nil)
				if err != nil {
					return err
				}
				var apps []spec.App
				for _, file := range files {
					loaded, err := c.loadFile(file, opt)
					if err != nil {
						return err
					}
					apps = append(apps, loaded...)
				}
				resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) {
					return cl.Start(ctx, api.StartRequest{Apps: apps, Mode: api.ModeFile})
				})
				if err != nil {
					return err
				}
				errs = append(errs, resp.Errors...)
			}
			if len(targets) > 0 {
				req := api.ActionRequest{Targets: targets}
				if f.updateEnv {
					req.UpdateEnv = spec.EnvMap(os.Environ())
				} else if !c.silent {
					c.infof("Use --update-env to give the app(s) this shell's environment")
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
				errs = append(errs, resp.Errors...)
			}
			if err := c.printTable(ctx); err != nil {
				return err
			}
			return c.reportErrors(errs)
		},
	}
	cmd.Flags().BoolVarP(&f.updateEnv, "update-env", "a", false, "replace the inherited environment with this shell's")
	cmd.Flags().StringVar(&f.envName, "env", "", "with an ecosystem file: use its env_<name>")
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
