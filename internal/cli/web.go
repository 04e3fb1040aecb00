package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/spf13/cobra"
)

// webDefaultListen is where `corral web` turns the listener on when it is off: loopback only,
// on the port PM2's own web interface used. A variable so that tests can use a free port.
var webDefaultListen = "127.0.0.1:9615"

// webCommand prints the dashboard's URL (docs/web.md). The URL carries the token in its
// fragment, which browsers never send to a server nor put in a Referer; the page moves it to
// sessionStorage and out of the address bar.
func (c *cli) webCommand() *cobra.Command {
	var open, yes bool
	cmd := &cobra.Command{
		Use:   "web",
		Short: "print the URL of the web dashboard (--open: open it in a browser)",
		Long: `Prints the URL of the dashboard the daemon serves on its HTTP listener (the one that
serves /metrics). The URL carries a token, kept in CORRAL_HOME/web-token (0600): anyone with
the URL can drive the apps, so do not share it.

When the listener is off, corral web offers to turn it on at ` + webDefaultListen + ` (loopback
only; it applies at once, the apps are not touched): it asks on a terminal, --yes does it
without asking. ("dashboard" and "dash" are PM2's names for monit, the terminal view.)`,
		GroupID: "info",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			info, err := request(ctx, c, func(cl *api.Client) (api.WebInfo, error) { return cl.Web(ctx) })
			if err != nil {
				return err
			}
			if info.Listen == "" {
				if info, err = c.enableWeb(ctx, info, yes); err != nil {
					return err
				}
			}
			if info.Error != "" {
				return fmt.Errorf("the daemon does not serve the dashboard: %s", info.Error)
			}
			if !settings.IsLoopback(info.Listen) {
				c.warnf("the dashboard is on %s, which is not a loopback address: anyone who can reach it can try tokens, and the token crosses the network in clear (no TLS)", info.Listen)
			}
			url := "http://" + info.Listen + info.Path + "#token=" + info.Token
			fmt.Fprintln(c.stdout, url)
			if open {
				return openBrowser(ctx, url)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "open the URL with xdg-open")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "turn the HTTP listener on at "+webDefaultListen+" without asking, if it is off")
	return cmd
}

// enableWeb turns the HTTP listener on (after asking, or with --yes): it sets http.listen and
// asks the daemon to apply it now, which binds the new address without touching the apps
// (docs/metrics.md §1.2). Without a terminal and without --yes it says how, and fails.
func (c *cli) enableWeb(ctx context.Context, info api.WebInfo, yes bool) (api.WebInfo, error) {
	how := fmt.Sprintf("turn it on with `corral web --yes`, or `corral set %s %s`", settings.HTTPListen, webDefaultListen)
	if info.Source == settings.EnvHTTPListen {
		return info, fmt.Errorf("the daemon's HTTP listener is off: the daemon was started with %s empty, which overrides the %s setting; start it with %s=%s",
			settings.EnvHTTPListen, settings.HTTPListen, settings.EnvHTTPListen, webDefaultListen)
	}
	if !yes {
		if !isTerminal(os.Stdin) { // can the command ask a question?
			return info, fmt.Errorf("the dashboard is served on the daemon's HTTP listener, which is off: %s", how)
		}
		fmt.Fprintf(c.stderr, "The dashboard is served on the daemon's HTTP listener, which is off.\nTurn it on at %s (this machine only)? It applies at once; the apps are not touched. [y/N] ", webDefaultListen)
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return info, fmt.Errorf("the HTTP listener stays off: %s", how)
		}
	}
	values, err := settings.Load(c.paths.Settings)
	if err != nil {
		return info, err
	}
	prev, had := values[settings.HTTPListen]
	values[settings.HTTPListen] = webDefaultListen
	if err := settings.Save(c.paths.Settings, values); err != nil {
		return info, err
	}
	if _, err := c.applyHTTPListen(ctx); err != nil {
		// The daemon kept its listener off: so does the file, or the next daemon would not start.
		if serr := restoreSetting(c.paths.Settings, values, settings.HTTPListen, prev, had); serr != nil {
			return info, fmt.Errorf("turn the HTTP listener on at %s: %w; and %s could not be restored: %v", webDefaultListen, err, settings.HTTPListen, serr)
		}
		return info, fmt.Errorf("cannot turn the HTTP listener on at %s: %w; pick a free port with `corral set %s 127.0.0.1:PORT`", webDefaultListen, err, settings.HTTPListen)
	}
	// Progress goes to stderr: stdout is the URL alone, for scripts.
	fmt.Fprintf(c.stderr, "[corral] %s = %s: the daemon serves /metrics and the dashboard there now\n", settings.HTTPListen, webDefaultListen)
	info, err = request(ctx, c, func(cl *api.Client) (api.WebInfo, error) { return cl.Web(ctx) })
	if err == nil && info.Listen == "" {
		err = errors.New("the daemon still has no HTTP listener: see " + c.paths.DaemonLog)
	}
	return info, err
}

// openBrowser runs xdg-open on url. xdg-open hands the URL to the browser and returns; a
// browser that does not come back within 10 s is left to itself.
func openBrowser(ctx context.Context, url string) error {
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return errors.New("xdg-open is not installed: open the URL above in a browser")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, url)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("xdg-open: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
