package api

import (
	"context"
	"net/http"
	"time"
)

// ForegroundOptions are what `corral run` asks of the daemon it runs in its own process
// (docs/containers.md).
type ForegroundOptions struct {
	// Grace bounds a stop on SIGTERM/SIGINT: processes still running this long after the
	// signal are killed (SIGKILL). 0: each app's kill_timeout alone decides.
	Grace time.Duration
	// ForwardSignals: SIGHUP and SIGQUIT are passed to every app's processes instead of
	// being ignored (SIGHUP) or stopping everything (SIGQUIT). `corral run` sets it when it
	// is PID 1, where such a signal is always deliberate (`docker kill -s HUP`).
	ForwardSignals bool
}

// StopReport says how a daemon's stop went, for `corral run`'s exit code.
type StopReport struct {
	// Signal is the signal that stopped the daemon ("" when it stopped otherwise).
	Signal string `json:"signal,omitempty"`
	// Errored names the apps that had an errored process when the stop began.
	Errored []string `json:"errored,omitempty"`
	// Killed counts the processes that had to be killed during the stop (their kill_timeout,
	// or the grace, ran out).
	Killed int `json:"killed,omitempty"`
}

// Readiness is the answer of /readyz and `corral ping --ready`.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reasons say why not, one line each (empty when ready).
	Reasons []string `json:"reasons,omitempty"`
}

// Ready asks the daemon whether its apps are ready for traffic (`corral ping --ready`).
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	var r Readiness
	err := c.do(ctx, http.MethodGet, "/ready", nil, &r)
	return r, err
}
