package monit

import (
	"context"

	"github.com/corral-pm/corral/internal/api"
)

// Source is what monit asks the daemon: the CLI's API client, behind the calls the other
// verbs make (internal/cli adapts it), so monit holds no daemon logic of its own and its
// model can be driven by a test's figures.
type Source interface {
	// Processes lists every process, secrets masked.
	Processes(ctx context.Context) ([]api.Process, error)
	// Alerts lists the firing alerts (a daemon too old to have alerts answers an error,
	// which monit shows as no alert).
	Alerts(ctx context.Context) (api.AlertsResponse, error)
	// Logs streams the history then, following, the live lines of q's targets until ctx ends.
	Logs(ctx context.Context, q api.LogsQuery, fn func(api.LogLine) error) error
	// Act runs a lifecycle action (restart, reload, stop) on targets.
	Act(ctx context.Context, action api.Action, req api.ActionRequest) (api.ActionResponse, error)
	// Scale sets an app's number of processes ("+1", "-1").
	Scale(ctx context.Context, req api.ScaleRequest) (api.ActionResponse, error)
}
