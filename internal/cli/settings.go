package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/spf13/cobra"
)

// corral's own settings (package settings), PM2's `pm2 set/get/unset` for the daemon itself.
// They are a file in the home, which the daemon reads when it starts; `set` and `unset` edit
// it and then, when a daemon runs, ask it to apply http.listen now (the listener moves,
// docs/metrics.md §1.2); the alerts sinks are read whenever the daemon sends, so they apply at
// once by themselves. Each command says what happened, so that no one waits for a port that
// will not open.

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

// settingsEffect is what a change does to a daemon that cannot apply it live (one of an older
// corral, without the API call).
const settingsEffect = "takes effect at the next daemon start: run `corral update` to restart the daemon (the apps keep running)"

func (c *cli) setCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "set KEY VALUE",
		Short:   "change a setting of corral itself (" + settings.HTTPListen + ", " + settings.AlertsWebhook + ", " + settings.AlertsCommand + ")",
		Long:    "Settings are kept in settings.json in CORRAL_HOME. The daemon reads them when it starts,\nand a running daemon applies a change at once.\n\n" + settingsHelp,
		GroupID: "daemon",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, value := args[0], args[1]
			if err := settings.Check(key, value); err != nil {
				return err
			}
			return c.editSettings(cmd.Context(), key, value)
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
			return c.editSettings(cmd.Context(), args[0], "")
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

// editSettings sets key to value ("" removes it), saves the file, and has a running daemon
// apply it.
func (c *cli) editSettings(ctx context.Context, key, value string) error {
	paths, err := c.settingsPaths(true)
	if err != nil {
		return err
	}
	values, err := settings.Load(paths.Settings)
	if err != nil {
		return err
	}
	prev, had := values[key]
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
	if key == settings.HTTPListen && value != "" && !settings.IsLoopback(value) {
		c.warnf("%s is not a loopback address: anyone who can reach it can read /metrics", value)
	}
	what := key + " = " + settings.Display(key, value)
	if value == "" {
		what = key + " unset"
	}
	if settings.Live(key) {
		c.infof("%s; takes effect at once (`corral alerts test` sends a test notification)", what)
		return nil
	}
	if key != settings.HTTPListen {
		c.infof("%s; %s", what, settingsEffect)
		return nil
	}
	resp, err := c.applyHTTPListen(ctx)
	var se *api.StatusError
	switch {
	case errors.Is(err, errNoDaemon):
		c.infof("%s; no daemon is running: the next one applies it when it starts", what)
		return nil
	case errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed):
		c.infof("%s; %s", what, settingsEffect) // a daemon of an older corral
		return nil
	case err != nil:
		// The daemon kept its listener: so does the file, or the next daemon would not start.
		if serr := restoreSetting(paths.Settings, values, key, prev, had); serr != nil {
			return fmt.Errorf("%s not applied: %w; and the previous value could not be restored: %v", key, err, serr)
		}
		left := "unset"
		if had {
			left = prev
		}
		return fmt.Errorf("%s not applied: %w; %s stays %s", key, err, key, left)
	}
	switch {
	case resp.Source == settings.EnvHTTPListen:
		c.infof("%s; saved for the next daemon start", what)
		c.warnf("the running daemon was started with %s=%s, which wins over %s: it keeps %s; to use the setting, start the daemon without the variable (`corral kill`, then any command from a shell without it)",
			settings.EnvHTTPListen, resp.Configured, key, listenerState(resp.Address))
	case resp.Address == "":
		c.infof("%s; the daemon's HTTP listener is off", what)
	default:
		c.infof("%s; the daemon serves /metrics on http://%s/metrics", what, resp.Address)
	}
	return nil
}

// applyHTTPListen asks a running daemon to apply http.listen now; errNoDaemon when none runs
// (none is started for this).
func (c *cli) applyHTTPListen(ctx context.Context) (api.HTTPListenResponse, error) {
	if err := c.connect(ctx, false); err != nil {
		return api.HTTPListenResponse{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return request(rctx, c, func(cl *api.Client) (api.HTTPListenResponse, error) { return cl.ApplyHTTPListen(rctx) })
}

// restoreSetting puts key back in values as it was (prev, or unset when it had none) and saves
// the file: a change the daemon refused must not stay for the next daemon start.
func restoreSetting(path string, values map[string]string, key, prev string, had bool) error {
	if had {
		values[key] = prev
	} else {
		delete(values, key)
	}
	return settings.Save(path, values)
}

// listenerState describes the HTTP listener at addr for a message.
func listenerState(addr string) string {
	if addr == "" {
		return "its HTTP listener off"
	}
	return "serving /metrics on http://" + addr + "/metrics"
}
