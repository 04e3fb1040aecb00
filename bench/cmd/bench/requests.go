package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	corral, dir, port, restore, err := prepareCorralHTTP(b, s.Name())
	if corral == nil || err != nil {
		return nil, err
	}
	defer restore()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	b.Note("requests: the http scenario's app and load (%d connections, %s per run after %s of warm-up), corral with request counting on (the default) and off (CORRAL_REQUEST_METRICS=0), %d alternating runs each; the ratio is on/off: 1.00x is no cost",
		o.HTTPConns, o.HTTPDuration, o.HTTPWarmup, o.HTTPRuns)

	variants := []struct {
		name string
		env  []string
	}{{Baseline, nil}, {countingOff, []string{"CORRAL_REQUEST_METRICS=0"}}}
	order := []string{Baseline, countingOff}
	rpsKA, rpsNew, cpuKA := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
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
				pids, err := srv.WorkerPIDs(ctx)
				if err != nil {
					return err
				}
				RunLoad(ctx, cfg(true), o.HTTPWarmup)
				c0, err := workersCPU(pids)
				if err != nil {
					return err
				}
				ka := RunLoad(ctx, cfg(true), o.HTTPDuration)
				c1, err := workersCPU(pids)
				if err != nil {
					return err
				}
				nc := RunLoad(ctx, cfg(false), o.HTTPDuration)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if ka.Requests == 0 {
					return fmt.Errorf("no request served with keep-alive connections")
				}
				perReq := (c1 - c0) / float64(ka.Requests) * 1e6
				b.Log.Printf("requests: run %d/%d, %s: keep-alive %.0f req/s (failed: %s), workers' CPU %.2f µs a request; new connection %.0f req/s (failed: %s)",
					r, o.HTTPRuns, v.name, ka.RPS(), ka.ErrorSummary(), perReq, nc.RPS(), nc.ErrorSummary())
				rpsKA[v.name] = append(rpsKA[v.name], ka.RPS())
				rpsNew[v.name] = append(rpsNew[v.name], nc.RPS())
				cpuKA[v.name] = append(cpuKA[v.name], perReq)
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
	sideRPS, sideCPU := map[string][]float64{}, map[string][]float64{}
	if ctx.Err() == nil {
		if err := s.sideBySide(ctx, b, corral, dir, port, sideRPS, sideCPU); err != nil {
			errs = append(errs, fmt.Errorf("requests: side by side: %w", err))
			b.Log.Printf("requests: side by side: %v", err)
		}
	}
	ka := newMetric(s.Name(), "requests/s, keep-alive connections, counting on vs off", "req/s", "higher", ">= 0.97x (at most 3% slower)", order, rpsKA)
	ka.Details = perRunRatios(rpsKA[Baseline], rpsKA[countingOff], false)
	nc := newMetric(s.Name(), "requests/s, new connection per request, counting on vs off", "req/s", "higher", "", order, rpsNew)
	nc.Details = perRunRatios(rpsNew[Baseline], rpsNew[countingOff], false)
	cpu := newMetric(s.Name(), "workers' CPU per keep-alive request, counting on vs off", "µs", "lower", "", order, cpuKA)
	cpu.Details = perRunRatios(cpuKA[Baseline], cpuKA[countingOff], true)
	side := newMetric(s.Name(), "requests/s, keep-alive, counting on and off side by side", "req/s", "higher", ">= 0.97x (at most 3% slower)", order, sideRPS)
	side.Details = perRunRatios(sideRPS[Baseline], sideRPS[countingOff], false)
	sideC := newMetric(s.Name(), "workers' CPU per keep-alive request, side by side", "µs", "lower", "", order, sideCPU)
	sideC.Details = perRunRatios(sideCPU[Baseline], sideCPU[countingOff], true)
	return []Metric{ka, nc, cpu, side, sideC}, errors.Join(errs...)
}

// sideBySide runs the app twice under one corral at the same time, counting on (port) and off
// (another port), each with half the load's connections, for the same -http-runs windows. On
// a machine shared with other work the noise comes and goes within a run; here it falls on
// both at once. Both apps' workers compete for the same cores, so the one whose requests cost
// more serves fewer; the workers also wait on the load generator, so the ratio of requests/s
// understates the difference, and the workers' CPU per request is the direct measure.
func (s requestsScenario) sideBySide(ctx context.Context, b *Bench, corral *Tool, dir string, port int, rps, cpu map[string][]float64) error {
	o := b.Opts
	offPort, err := freePort()
	if err != nil {
		return err
	}
	for _, p := range []int{port, offPort} {
		if err := waitPortFree(ctx, p, 15*time.Second); err != nil {
			return err
		}
	}
	in, err := b.NewInstance(corral, "requests-side")
	if err != nil {
		return err
	}
	defer func() {
		if err := b.Shutdown(in); err != nil {
			b.Log.Printf("requests: side by side: %v", err)
		}
	}()
	in.Dir = dir
	apps := []struct {
		name, app string
		port      int
		env       []string
	}{{Baseline, "on", port, nil}, {countingOff, "off", offPort, []string{"CORRAL_REQUEST_METRICS=0"}}}
	for _, a := range apps {
		in.Env = append([]string{"PORT=" + strconv.Itoa(a.port)}, a.env...)
		if _, err := in.Time(ctx, "start", "app.js", "-i", "2", "--name", a.app); err != nil {
			return err
		}
	}
	procs, err := in.WaitOnline(ctx, 4, 60*time.Second)
	if err != nil {
		return err
	}
	pids := map[string][]int{}
	for _, p := range procs {
		pids[p.Name] = append(pids[p.Name], p.PID)
	}
	for _, a := range apps {
		if len(pids[a.app]) != 2 {
			return fmt.Errorf("app %s: workers %v, want 2", a.app, pids[a.app])
		}
		if err := waitServing(ctx, "127.0.0.1:"+strconv.Itoa(a.port), 3, 30*time.Second); err != nil {
			return err
		}
	}
	conns := max(1, o.HTTPConns/2)
	both := func(d time.Duration) ([]LoadResult, []float64, error) {
		c0 := make([]float64, len(apps))
		for i, a := range apps {
			if c0[i], err = workersCPU(pids[a.app]); err != nil {
				return nil, nil, err
			}
		}
		loads := make([]*Load, len(apps))
		for i, a := range apps {
			loads[i] = StartLoad(ctx, LoadConfig{Addr: "127.0.0.1:" + strconv.Itoa(a.port), Conns: conns, KeepAlive: true, Timeout: o.HTTPTimeout})
		}
		sleepCtx(ctx, d)
		res := make([]LoadResult, len(apps))
		for i, l := range loads {
			res[i] = l.Stop()
		}
		used := make([]float64, len(apps))
		for i, a := range apps {
			c1, err := workersCPU(pids[a.app])
			if err != nil {
				return nil, nil, err
			}
			used[i] = c1 - c0[i]
		}
		return res, used, ctx.Err()
	}
	if _, _, err := both(o.HTTPWarmup); err != nil {
		return err
	}
	for r := 1; r <= o.HTTPRuns && ctx.Err() == nil; r++ {
		res, used, err := both(o.HTTPDuration)
		if err != nil {
			return err
		}
		for i, a := range apps {
			if res[i].Requests == 0 {
				return fmt.Errorf("run %d, %s: no request served", r, a.name)
			}
			perReq := used[i] / float64(res[i].Requests) * 1e6
			rps[a.name] = append(rps[a.name], res[i].RPS())
			cpu[a.name] = append(cpu[a.name], perReq)
			b.Log.Printf("requests: side by side, run %d/%d, %s: keep-alive %.0f req/s (failed: %s), workers' CPU %.2f µs a request",
				r, o.HTTPRuns, a.name, res[i].RPS(), res[i].ErrorSummary(), perReq)
		}
	}
	return ctx.Err()
}

// workersCPU is the CPU time the workers have used, in seconds. Unlike requests/s, the time
// the workers spend per request does not depend on how the 2 cores are shared between them, the
// load generator and the rest of the machine: it is the cost of counting itself.
func workersCPU(pids []int) (float64, error) {
	var total float64
	for _, pid := range pids {
		s, err := cpuSeconds(pid)
		if err != nil {
			return 0, fmt.Errorf("worker %d's CPU: %w", pid, err)
		}
		total += s
	}
	return total, nil
}

// perRunRatios gives each run's ratio of counting on to off (the two ran one after the other,
// under the same conditions), as "corral vs X" ratios are (off/on when lower is better), and
// their median: the noise of a shared machine moves whole runs, and within a run both alike.
func perRunRatios(on, off []float64, lowerBetter bool) map[string]string {
	var ratios []float64
	var parts []string
	for i := range min(len(on), len(off)) {
		if on[i] <= 0 || off[i] <= 0 {
			continue
		}
		x := on[i] / off[i]
		if lowerBetter {
			x = off[i] / on[i]
		}
		ratios = append(ratios, x)
		parts = append(parts, fmt.Sprintf("%.3f", x))
	}
	if len(ratios) == 0 {
		return nil
	}
	return map[string]string{Baseline: fmt.Sprintf("on vs off in each run: %s; median %.3fx", strings.Join(parts, ", "), Summarize(ratios).Median)}
}
