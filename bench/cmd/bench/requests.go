package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// requestsScenario measures what corral's request counting costs the apps: the preload in
// every Node cluster worker counts each request and reports to the daemon once a second
// (docs/node-cluster-protocol.md, NODE_CORRAL_METRICS). The same app under corral, counting on
// and off (CORRAL_REQUEST_METRICS=0 in its environment), in alternating runs of the http
// scenario's load.
type requestsScenario struct{}

func (requestsScenario) Name() string { return "requests" }

func (requestsScenario) Describe() string {
	return "the cost of counting requests per worker: corral with its request counting on and off, same app, same load, alternating runs"
}

// countingOff is the contender name of corral with the counting turned off.
const countingOff = "corral, counting off"

func (s requestsScenario) Run(ctx context.Context, b *Bench) ([]Metric, error) {
	o := b.Opts
	var corral *Tool
	for _, t := range b.Tools {
		if t.Name == Baseline {
			corral = t
		}
	}
	if corral == nil {
		b.Note("requests: corral is not among the contenders: nothing to measure")
		return nil, nil
	}
	dir, port, err := prepareHTTP(b, s.Name(), map[string]string{"app.js": httpAppScript})
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	restoreAutogroup := disableAutogroup(b)
	defer func() {
		if err := restoreAutogroup(); err != nil {
			b.Log.Printf("requests: turning autogroup scheduling back on: %v", err)
		}
	}()
	b.Note("requests: the http scenario's app and load (%d connections, %s per run after %s of warm-up), corral with request counting on (the default) and off (CORRAL_REQUEST_METRICS=0), %d alternating runs each; the ratio is on/off: 1.00x is no cost",
		o.HTTPConns, o.HTTPDuration, o.HTTPWarmup, o.HTTPRuns)

	variants := []struct {
		name string
		env  []string
	}{{Baseline, nil}, {countingOff, []string{"CORRAL_REQUEST_METRICS=0"}}}
	order := []string{Baseline, countingOff}
	rpsKA, rpsNew := map[string][]float64{}, map[string][]float64{}
	var errs []error
	for r := 1; r <= o.HTTPRuns && ctx.Err() == nil; r++ {
		for i, v := range variants {
			srv := &toolServer{b: b, tool: corral, dir: dir, port: port, label: fmt.Sprintf("requests%d-%d", r, i), env: v.env}
			err := func() error {
				if err := waitPortFree(ctx, port, 15*time.Second); err != nil {
					return err
				}
				if err := srv.Start(ctx); err != nil {
					return err
				}
				cfg := func(keepAlive bool) LoadConfig {
					return LoadConfig{Addr: addr, Conns: o.HTTPConns, KeepAlive: keepAlive, Timeout: o.HTTPTimeout}
				}
				RunLoad(ctx, cfg(true), o.HTTPWarmup)
				ka := RunLoad(ctx, cfg(true), o.HTTPDuration)
				nc := RunLoad(ctx, cfg(false), o.HTTPDuration)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.Log.Printf("requests: run %d/%d, %s: keep-alive %.0f req/s (failed: %s), new connection %.0f req/s (failed: %s)",
					r, o.HTTPRuns, v.name, ka.RPS(), ka.ErrorSummary(), nc.RPS(), nc.ErrorSummary())
				rpsKA[v.name] = append(rpsKA[v.name], ka.RPS())
				rpsNew[v.name] = append(rpsNew[v.name], nc.RPS())
				return nil
			}()
			if serr := srv.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
			if perr := waitPortFree(ctx, port, 15*time.Second); perr != nil {
				err = errors.Join(err, perr)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("requests: run %d, %s: %w", r, v.name, err))
				b.Log.Printf("requests: run %d, %s: %v", r, v.name, err)
			}
		}
	}
	metrics := []Metric{
		newMetric(s.Name(), "requests/s, keep-alive connections, counting on vs off", "req/s", "higher", ">= 0.97x (at most 3% slower)", order, rpsKA),
		newMetric(s.Name(), "requests/s, new connection per request, counting on vs off", "req/s", "higher", "", order, rpsNew),
	}
	return metrics, errors.Join(errs...)
}
