package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/loadgen"
)

// underLoad runs op while the load runs: the load first settles, then op, then the load runs
// on a little so that what op disturbed shows. It returns the load's result.
func (x *run) underLoad(ctx context.Context, op func() error) (loadgen.Result, error) {
	l := x.startLoad(ctx)
	sleep(ctx, x.o.settle())
	err := op()
	sleep(ctx, x.o.settle())
	res := l.Stop()
	x.record(l, res)
	return res, err
}

func (x *run) reload(ctx context.Context) {
	c := x.rep.check(CheckReload)
	c.Threshold = "0 failed requests"
	var took time.Duration
	var errs []string
	res, err := x.underLoad(ctx, func() error {
		x.event("reload")
		t := time.Now()
		resp, err := x.r.D.Reload(ctx, x.o.App)
		took = time.Since(t)
		x.event("reloaded")
		errs = resp.Errors
		return err
	})
	c.Figure = fmt.Sprintf("%d failed of %s requests; the reload took %s", res.Failed(), count(res.Requests+res.Failed()), secs(took.Seconds()))
	c.Values = map[string]float64{"failed": float64(res.Failed()), "requests": float64(res.Requests), "reload_s": took.Seconds()}
	switch {
	case err != nil:
		c.Status, c.Reason = Fail, fmt.Sprintf("the reload failed: %v", err)
	case len(errs) > 0:
		c.Status, c.Reason = Fail, "the reload failed: "+strings.Join(errs, "; ")
	case res.Failed() > 0:
		c.Status = Fail
		c.Reason = fmt.Sprintf("%d requests failed during the rolling reload (%s): the old workers dropped requests in flight; an app must finish its requests before it exits on %s (close its server, then exit once it has closed)",
			res.Failed(), res.ErrorSummary(), x.killSignal())
	case res.Requests == 0:
		c.Status, c.Reason = Fail, "no request completed during the reload"
	default:
		c.Status = Pass
	}
}

// unpaced runs the load for a phase as fast as the app answers (no --rate): a capacity.
func (x *run) unpaced(ctx context.Context) loadgen.Result {
	cfg := x.loadConfig()
	cfg.Rate = 0
	l := loadgen.Start(ctx, cfg)
	sleep(ctx, x.o.Duration)
	res := l.Stop()
	x.record(l, res)
	return res
}

// waitServing waits until the app runs n workers, every one online and listening: scaling up
// returns once the new workers have started, and what follows must see them serve.
func (x *run) waitServing(ctx context.Context, n int) error {
	timeout := max(30*time.Second, x.app.ListenTimeout.D()+10*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		procs, err := x.r.procs(ctx, x.o.App)
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range procs {
			if p.Status == "online" && p.Cluster != nil && len(p.Cluster.Listening) > 0 {
				ready++
			}
		}
		if ready == n && len(procs) == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has %d of %d workers serving after %s (corral ls, corral logs %s)", x.o.App, ready, n, timeout.Round(time.Second), x.o.App)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// killSignal is the signal corral stops the app's workers with.
func (x *run) killSignal() string {
	if x.app.KillSignal == "" {
		return "SIGINT"
	}
	return x.app.KillSignal
}

func (x *run) rollback(ctx context.Context) {
	c := x.rep.check(CheckRollback)
	c.Threshold = "0 failed requests, each way"
	n := x.workers
	fail := func(reason string) { c.Status, c.Reason = Fail, reason }
	var scaleErr []string
	scale := func(to int) error {
		x.event(fmt.Sprintf("scale %d", to))
		resp, err := x.r.D.Scale(ctx, x.o.App, to)
		scaleErr = append(scaleErr, resp.Errors...)
		if err != nil {
			return err
		}
		return x.waitServing(ctx, to)
	}
	// The scaling factor compares capacities: both loads unpaced, whatever --rate says.
	allRPS := x.steadyRPS
	if x.o.Scaling && x.o.Rate > 0 && ctx.Err() == nil {
		x.progress("scaling: %s on %d workers, unpaced", x.o.Duration, n)
		allRPS = x.unpaced(ctx).RPS()
	}
	down, err := x.underLoad(ctx, func() error { return scale(1) })
	if err != nil {
		fail(fmt.Sprintf("scaling %s to 1 failed: %v", x.o.App, err))
		return
	}
	var one loadgen.Result
	if x.o.Scaling && ctx.Err() == nil {
		x.progress("scaling: %s on 1 worker, unpaced", x.o.Duration)
		one = x.unpaced(ctx)
	}
	up, err := x.underLoad(ctx, func() error { return scale(n) })
	if err != nil {
		fail(fmt.Sprintf("scaling %s back to %d failed: %v", x.o.App, n, err))
		return
	}
	c.Figure = fmt.Sprintf("%d → 1: %d failed of %s; 1 → %d: %d failed of %s", n, down.Failed(), count(down.Requests+down.Failed()),
		n, up.Failed(), count(up.Requests+up.Failed()))
	c.Values = map[string]float64{"failed_down": float64(down.Failed()), "failed_up": float64(up.Failed())}
	if x.o.Scaling && one.Requests > 0 {
		factor := allRPS / one.RPS()
		c.Values["scaling_factor"] = factor
		c.Values["rps_one_worker"] = one.RPS()
		lc := x.rep.check(CheckLoad)
		lc.Figure += fmt.Sprintf("; scaling ×%.2f (%s req/s on 1 worker, %s on %d)", factor, num(one.RPS()), num(allRPS), n)
		if lc.Values != nil {
			lc.Values["scaling_factor"] = factor
		}
	}
	switch {
	case len(scaleErr) > 0:
		fail("scaling failed: " + strings.Join(scaleErr, "; "))
	case down.Failed() > 0:
		fail(fmt.Sprintf("%d requests failed while scaling %d → 1 (%s): the workers leaving dropped requests in flight", down.Failed(), n, down.ErrorSummary()))
	case up.Failed() > 0:
		fail(fmt.Sprintf("%d requests failed while scaling 1 → %d (%s)", up.Failed(), n, up.ErrorSummary()))
	default:
		c.Status = Pass
	}
}
