package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sharesScenario measures how evenly corral's three TCP policies spread new connections over
// the workers: round-robin (the daemon hands each connection to the next worker), reuseport
// (each worker accepts on its own socket; the kernel picks one by a hash of the connection)
// and shared (every worker accepts on one socket; whichever asks first gets the connection).
// The workers count what they answer (corral's preload), so the shares come from jlist.
type sharesScenario struct{}

func (sharesScenario) Name() string { return "shares" }

func (sharesScenario) Describe() string {
	return "how evenly corral's round-robin, reuseport and shared policies spread new connections over 2 and 4 workers"
}

// sharesWorkers are the app sizes measured.
var sharesWorkers = []int{2, 4}

func (s sharesScenario) Run(ctx context.Context, b *Bench) ([]Metric, error) {
	o := b.Opts
	corral, dir, port, restore, err := prepareCorralHTTP(b, s.Name())
	if corral == nil || err != nil {
		return nil, err
	}
	defer restore()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	b.Note("shares: the http scenario's app under corral, %d clients with a new connection per request for %s after %s of warm-up, %d runs each for 2 and 4 workers; a worker's share is its requests (counted in the worker) over all; the figure is the largest distance of a share from the fair share, in %% of the fair share (0 is perfectly even)",
		o.HTTPConns, o.HTTPDuration, o.HTTPWarmup, o.HTTPRuns)
	variants := []struct {
		name string
		args []string
	}{
		{Baseline, nil},
		{corralReuseport, []string{"--sched-policy", "reuseport"}},
		{corralShared, []string{"--sched-policy", "shared"}},
	}
	order := []string{Baseline, corralReuseport, corralShared}
	var metrics []Metric
	var errs []error
	for _, n := range sharesWorkers {
		dev := map[string][]float64{}
		details := map[string]string{}
		for r := 1; r <= o.HTTPRuns && ctx.Err() == nil; r++ {
			for i, v := range variants {
				srv := &toolServer{b: b, tool: corral, dir: dir, port: port, n: n, args: v.args,
					label: fmt.Sprintf("shares%d-%d-%d", n, r, i)}
				d, shares, conns, err := measureShares(ctx, b, srv, addr, port)
				if err != nil {
					errs = append(errs, fmt.Errorf("shares: %d workers, run %d, %s: %w", n, r, v.name, err))
					b.Log.Printf("shares: %d workers, run %d, %s: %v", n, r, v.name, err)
					continue
				}
				b.Log.Printf("shares: %d workers, run %d, %s: %d connections, shares %s, %.1f%% from fair at most", n, r, v.name, conns, shares, d)
				dev[v.name] = append(dev[v.name], d)
				details[v.name] += fmt.Sprintf("run %d: %d connections, shares %s; ", r, conns, shares)
			}
		}
		m := newMetric(s.Name(), fmt.Sprintf("largest distance from the fair share, %d workers", n), "%", "lower", "within 10% (issue 12)", order, dev)
		m.Details = map[string]string{}
		for c, d := range details {
			m.Details[c] = strings.TrimSuffix(d, "; ")
		}
		metrics = append(metrics, m)
	}
	return metrics, errors.Join(errs...)
}

// measureShares starts srv, runs the new-connection load and returns the largest distance of a
// worker's share from the fair share (in % of it), the shares, and the requests counted.
func measureShares(ctx context.Context, b *Bench, srv *toolServer, addr string, port int) (float64, string, uint64, error) {
	o := b.Opts
	if err := waitPortFree(ctx, port, 15*time.Second); err != nil {
		return 0, "", 0, err
	}
	defer func() {
		_ = srv.Stop()
		_ = waitPortFree(ctx, port, 15*time.Second)
	}()
	if err := srv.Start(ctx); err != nil {
		return 0, "", 0, err
	}
	cfg := LoadConfig{Addr: addr, Conns: o.HTTPConns, Timeout: o.HTTPTimeout}
	RunLoad(ctx, cfg, o.HTTPWarmup)
	before, err := workerRequests(ctx, srv.in)
	if err != nil {
		return 0, "", 0, err
	}
	res := RunLoad(ctx, cfg, o.HTTPDuration)
	if f := res.Failed(); f > 0 {
		return 0, "", 0, fmt.Errorf("%d requests failed: %s", f, res.ErrorSummary())
	}
	// The workers report at most once a second: wait until the counts cover the load.
	var after map[int]uint64
	var total uint64
	err = poll(ctx, 10*time.Second, 200*time.Millisecond, func() error {
		var err error
		if after, err = workerRequests(ctx, srv.in); err != nil {
			return err
		}
		total = 0
		for id, c := range after {
			total += c - before[id]
		}
		if total < uint64(res.Requests) {
			return fmt.Errorf("the workers reported %d requests of %d", total, res.Requests)
		}
		return nil
	})
	if err != nil {
		return 0, "", 0, err
	}
	fair := float64(total) / float64(len(after))
	worst := 0.0
	var shares []string
	for _, id := range slices.Sorted(maps.Keys(after)) {
		got := float64(after[id] - before[id])
		worst = max(worst, math.Abs(got-fair)/fair*100)
		shares = append(shares, fmt.Sprintf("%.1f%%", got/float64(total)*100))
	}
	return worst, strings.Join(shares, "/"), total, nil
}

// workerRequests reads each worker's request count from jlist, by pm_id.
func workerRequests(ctx context.Context, in *Instance) (map[int]uint64, error) {
	procs, err := in.JList(ctx)
	if err != nil {
		return nil, err
	}
	out := map[int]uint64{}
	for _, p := range procs {
		c := p.PMEnv.Corral
		if c == nil || c.Cluster == nil {
			return nil, fmt.Errorf("process %d has no cluster counts in jlist", p.PMID)
		}
		out[p.PMID] = c.Cluster.Requests
	}
	return out, nil
}
