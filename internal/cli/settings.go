package cli

import (
	"fmt"
	"os"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/spf13/cobra"
)

// corral's own settings (package settings), PM2's `pm2 set/get/unset` for the daemon itself.
// They are files in the home, not requests to the daemon: the daemon reads http.listen when it
// starts, so a change takes effect at the next start (`corral update` restarts the daemon
// with the apps kept running), and the alerts sinks whenever it sends (at once). Each command
// says which, so that no one waits for a port that will not open until then.

// settingsPaths resolves the home and makes sure it exists (set writes into it).
func (c *cli) settingsPaths(create bool) (home.Paths, error) {
	paths, err := home.Resolve()
	if err != nil {
		return home.Paths{}, err
	}
	if create {
		if err := paths.Ensure(); err != nil {
			return home.Paths{}, err
		}
	}
	return paths, nil
}

const settingsEffect = "takes effect at the next daemon start: run `corral update` to restart the daemon (the apps keep running)"

func (c *cli) setCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "set KEY VALUE",
		Short:   "change a setting of corral itself (" + settings.HTTPListen + ", " + settings.AlertsWebhook + ", " + settings.AlertsCommand + ")",
		Long:    "Settings are kept in settings.json in CORRAL_HOME; the daemon reads http.listen when it starts, the alerts settings whenever it sends.\n\n" + settingsHelp,
		GroupID: "daemon",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, value := args[0], args[1]
			if err := settings.Check(key, value); err != nil {
				return err
			}
			return c.editSettings(key, value)
		},
	}
}

func (c *cli) unsetCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "unset KEY",
		Short:   "reset a setting of corral itself to its default",
		Long:    settingsHelp,
		GroupID: "daemon",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := settings.Check(args[0], ""); err != nil {
				return err
			}
			return c.editSettings(args[0], "")
		},
	}
}

func (c *cli) getCommand() *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:     "get [KEY]",
		Short:   "print a setting of corral itself (every setting without KEY)",
		Long:    settingsHelp,
		GroupID: "daemon",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if err := settings.Check(args[0], ""); err != nil {
					return err
				}
			}
			paths, err := c.settingsPaths(false)
			if err != nil {
				return err
			}
			values, err := settings.Load(paths.Settings)
			if err != nil {
				return err
			}
			show := func(k string) string {
				if reveal {
					return values[k]
				}
				return settings.Display(k, values[k])
			}
			if len(args) == 1 {
				fmt.Fprintln(c.stdout, show(args[0]))
				return nil
			}
			for _, k := range settings.Keys() {
				v := show(k)
				if v == "" {
					v = "(unset)"
				}
				fmt.Fprintf(c.stdout, "%s: %s\n", k, v)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show secret parts of values (a webhook URL's token)")
	return cmd
}

var settingsHelp = `Settings:
  ` + settings.HTTPListen + `  HOST:PORT of the daemon's HTTP listener, which serves Prometheus metrics on
               /metrics (off when unset). ` + settings.EnvHTTPListen + ` overrides it for one daemon
               start. A non-loopback address is allowed, with a warning: anyone who can
               reach it can read the metrics.
  ` + settings.AlertsWebhook + `  URL every alert is POSTed to as JSON (a Slack or Mattermost incoming
               webhook works as is), besides each app's own alerts.notify.
  ` + settings.AlertsCommand + `  shell command run for every alert, with CORRAL_ALERT_* in its
               environment. The alerts settings take effect at once (docs/alerts.md).`

// editSettings sets key to value ("" removes it) and saves the file.
func (c *cli) editSettings(key, value string) error {
	paths, err := c.settingsPaths(true)
	if err != nil {
		return err
	}
	values, err := settings.Load(paths.Settings)
	if err != nil {
		return err
	}
	if key == settings.AlertsCommand && value != "" {
		if wd, err := os.Getwd(); err == nil {
			value = alerts.ResolveCommand(value, wd) // the daemon runs it from CORRAL_HOME
		}
	}
	if value == "" {
		delete(values, key)
	} else {
		values[key] = value
	}
	if err := settings.Save(paths.Settings, values); err != nil {
		return err
	}
	effect := settingsEffect
	if settings.Live(key) {
		effect = "takes effect at once (`corral alerts test` sends a test notification)"
	}
	if value == "" {
		c.infof("%s unset; %s", key, effect)
		return nil
	}
	c.infof("%s = %s; %s", key, settings.Display(key, value), effect)
	if key == settings.HTTPListen && !settings.IsLoopback(value) {
		c.warnf("%s is not a loopback address: anyone who can reach it can read /metrics", value)
	}
	return nil
}
