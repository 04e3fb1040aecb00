package cli

import (
	"encoding/json"
	"fmt"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/render"
	"github.com/spf13/cobra"
)

// alertsCommand is `corral alerts` and `corral alerts test` (docs/alerts.md).
func (c *cli) alertsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "list firing and recent alerts, and how the notification sinks fared",
		Long: `Alerts watch every app (crash rate, errored, memory and its growth, event-loop delay,
5xx rate, uneven requests, failed reloads) and notify a webhook, a command and corral.log.
Rules are set per app with the ecosystem attribute "alerts"; daemon-wide sinks with
` + "`corral set alerts.webhook URL` and `corral set alerts.command CMD`" + `. See docs/alerts.md.`,
		GroupID: "info",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			resp, err := request(ctx, c, func(cl *api.Client) (api.AlertsResponse, error) { return cl.Alerts(ctx) })
			if err != nil {
				return err
			}
			if asJSON {
				out, err := json.MarshalIndent(resp, "", "  ")
				if err != nil {
					return fmt.Errorf("encode alerts: %w", err)
				}
				fmt.Fprintln(c.stdout, string(out))
				return nil
			}
			fmt.Fprint(c.stdout, render.Alerts(resp, c.renderOptions()))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the API's answer)")
	cmd.AddCommand(&cobra.Command{
		Use:   "test",
		Short: "send a test notification to every sink and say how each went",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			resp, err := request(ctx, c, func(cl *api.Client) (api.AlertTestResponse, error) { return cl.TestAlerts(ctx) })
			if err != nil {
				return err
			}
			fmt.Fprint(c.stdout, render.AlertTest(resp, c.renderOptions()))
			for _, r := range resp.Results {
				if r.Error != "" {
					return silentExit(1)
				}
			}
			return nil
		},
	})
	return cmd
}
