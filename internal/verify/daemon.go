package verify

import (
	"context"
	"strconv"

	"github.com/corral-pm/corral/internal/api"
)

// Daemon is what verify needs of corral's daemon: the app's processes with their counters,
// and the two zero-downtime operations it uses.
type Daemon interface {
	Processes(ctx context.Context, app string) ([]api.Process, error)
	Reload(ctx context.Context, app string) (api.ActionResponse, error)
	Scale(ctx context.Context, app string, n int) (api.ActionResponse, error)
}

// ClientDaemon is Daemon over the API client.
type ClientDaemon struct{ C *api.Client }

func (d ClientDaemon) Processes(ctx context.Context, app string) ([]api.Process, error) {
	return d.C.Processes(ctx, false, app)
}

func (d ClientDaemon) Reload(ctx context.Context, app string) (api.ActionResponse, error) {
	return d.C.Act(ctx, api.ActionReload, api.ActionRequest{Targets: []string{app}})
}

func (d ClientDaemon) Scale(ctx context.Context, app string, n int) (api.ActionResponse, error) {
	return d.C.Scale(ctx, api.ScaleRequest{App: app, Count: strconv.Itoa(n)})
}
