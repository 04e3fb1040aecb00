package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// httpScenario measures cluster mode: the same trivial Node HTTP app with 2 workers behind one
// port under corral, PM2 (its God daemon is the cluster primary) and Node's own cluster
// primary, one at a time, loaded by the bench's own HTTP client: requests/s with a new
// connection per request and with keep-alive connections, the primary's CPU per connection,
// and the requests that fail while the app is reloaded twice under load.
type httpScenario struct{}

func (httpScenario) Name() string { return "http" }

func (httpScenario) Describe() string {
	return "cluster mode, 2 workers of a trivial Node HTTP app: req/s (new connection per request, keep-alive), primary's CPU per 10k connections, the servers' CPU per 10k requests, idle CPU and the workers' context switches per request, failed requests during 2 reloads under load"
}

// -http-app's values for the deployment's stack (stack.go): httpAppStack's requests carry a
// logged-in session, so each reads and touches it in PostgreSQL; httpAppStackVisitor's are
// anonymous visitors, who pass through the session middleware without a database round trip.
const (
	httpAppStack        = "stack"
	httpAppStackVisitor = "stack-visitor"
)

// corralReuseport is corral with sched_policy reuseport, a contender of the http scenario.
const corralReuseport = "corral reuseport"

// corralShared is corral with sched_policy shared (-http-corral-shared).
const corralShared = "corral shared"

// nodeClusterShared is Node's own primary with its shared-socket policy (SCHED_NONE).
const nodeClusterShared = "node-cluster shared"

// nodeClusterName is the contender that is Node's own cluster primary, no manager.
const nodeClusterName = "node-cluster"

// httpAppScript is the app every contender runs: it answers "ok" to everything.
const httpAppScript = `// The bench's HTTP app: 2 bytes for every request.
require('node:http').createServer((q, s) => s.end('ok')).listen(process.env.PORT);
`

// primaryScript is what a user writes to run the app without a process manager: Node's
// cluster module, default scheduling (round-robin on Linux), a worker forked again if one dies.
const primaryScript = `// Node's own cluster primary, as a user would write it.
const cluster = require('node:cluster');
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    console.log('worker ' + w.process.pid + ' exited (' + (signal || code) + '), forking another');
    cluster.fork();
  });
} else {
  require('./app.js');
}
`

// nodeMarkerVar marks the Node primary's processes (its workers inherit it), so that cleanup
// finds them the way it finds a tool's apps by their home.
const nodeMarkerVar = "CORRAL_BENCH_NODE_CLUSTER"

const (
	newConnTarget   = ">= 1.3x PM2 (corral/pm2)"
	keepAliveTarget = ">= 1.0x PM2 (corral/pm2)"
	reloadTarget    = "0 with new connections"
	reloads         = 2
)

// httpServer is one contender: something that runs the app with 2 workers on the port.
type httpServer interface {
	Name() string
	// Start starts the app and returns once the port answers.
	Start(ctx context.Context) error
	// PrimaryPID is the process that accepts the connections and hands them to the workers.
	PrimaryPID() (int, error)
	// WorkerPIDs are the workers' pids, once 2 are online.
	WorkerPIDs(ctx context.Context) ([]int, error)
	// CanReload says whether Reload means anything.
	CanReload() bool
	Reload(ctx context.Context) error
	// Stop stops everything Start started.
	Stop() error
}

func (s httpScenario) Run(ctx context.Context, b *Bench) ([]Metric, error) {
	o := b.Opts
	app := httpAppScript
	onStack := o.HTTPApp == httpAppStack || o.HTTPApp == httpAppStackVisitor
	if onStack {
		app = stackAppScript
	}
	dir, port, err := prepareHTTP(b, s.Name(), map[string]string{"app.js": app, "primary.js": primaryScript})
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var stack *stackApp // nil: the bare app
	var appEnv []string
	if onStack {
		if stack, err = setupStack(ctx, b, dir, b.Cache, o.PGURL); err != nil {
			return nil, err
		}
		appEnv = stack.env
		if o.HTTPApp == httpAppStackVisitor {
			stack.visitor = true
			b.Note("http: the app is the deployment's stack (Express 5, express-session, connect-pg-simple; sessions in PostgreSQL): every measured request is GET /welcome without a cookie, an anonymous visitor: the session middleware runs, but makes no database round trip (saveUninitialized: false)")
		} else {
			b.Note("http: the app is the deployment's stack (Express 5, express-session, connect-pg-simple; sessions in PostgreSQL): every measured request is GET /me with a logged-in session cookie, so it reads the session from PostgreSQL")
		}
	}

	makers := httpContenders(b, dir, port, appEnv, o.HTTPCorralShared)
	var order []string
	for _, m := range makers {
		order = append(order, m.name)
	}

	restoreAutogroup := disableAutogroup(b)
	defer func() {
		if err := restoreAutogroup(); err != nil {
			b.Log.Printf("http: turning autogroup scheduling back on: %v", err)
		}
	}()
	b.Note("http: the load generator (Go, in this process) shares the machine's %d CPUs with the primary and the 2 workers it measures: absolute figures are low and move with the load; the ratios are what matter", runtime.NumCPU())
	b.Note("http: %d client connections on %s, %s per measured run after %s of warm-up, median of %d runs; the contenders take turns, each alone on the port, started afresh each run; a request fails after %s",
		o.HTTPConns, addr, o.HTTPDuration, o.HTTPWarmup, o.HTTPRuns, o.HTTPTimeout)
	if load := loadavg(); load != "" {
		if f := strings.Fields(load); len(f) > 0 {
			if l1, err := strconv.ParseFloat(f[0], 64); err == nil && l1 >= float64(runtime.NumCPU()) {
				b.Note("http: the machine was already busy when the scenario began (load average %s on %d CPUs): other work competes with the contenders, expect noisy figures", load, runtime.NumCPU())
			}
		}
	}
	if v := os.Getenv("NODE_CLUSTER_SCHED_POLICY"); v != "" {
		b.Note("http: NODE_CLUSTER_SCHED_POLICY=%s is set: PM2 and the Node primary read it", v)
	}

	var errs []error
	step := func(what string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		b.Log.Printf("http: %s: %v", what, err)
	}
	cfg := func(keepAlive bool) LoadConfig {
		return stack.load(LoadConfig{Addr: addr, Conns: o.HTTPConns, KeepAlive: keepAlive, Timeout: o.HTTPTimeout})
	}
	// begin starts a contender alone on the port; end stops it and waits for the port.
	begin := func(srv httpServer) error {
		if err := startAlone(ctx, srv, port); err != nil {
			return err
		}
		if stack != nil && stack.cookie == "" {
			return stack.login(ctx, addr)
		}
		return nil
	}
	end := func(srv httpServer) error { return stopAlone(ctx, srv, port) }

	rpsNew, rpsKA, cpu := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	failNew, failKA := map[string][]float64{}, map[string][]float64{}
	totNew, totKA := map[string]*LoadResult{}, map[string]*LoadResult{}
	cpuTotal := map[string][2]float64{} // CPU seconds, connections
	// The servers' CPU per 10,000 requests: the primary and the workers, for each load kind.
	// With the load generator on the same cores, req/s says how the contenders share the
	// machine with it; this says what a request costs the host that serves it, which is
	// what sets req/s when the clients are elsewhere.
	srvNew, srvKA := map[string][]float64{}, map[string][]float64{}
	// The machine's idle CPU over each new-connection run: what the contender left unused
	// although clients were waiting (a queue behind a worker that is not running, while
	// another worker has nothing to do).
	idleNew := map[string][]float64{}
	// The workers' context switches per request over the same runs: how often a worker
	// stops and is woken again for its work, which one shared queue batches and a queue per
	// worker spreads.
	switchesNew := map[string][]float64{}
	broken := map[string]bool{}

	for r := 1; r <= o.HTTPRuns; r++ {
		for _, m := range makers {
			if broken[m.name] || ctx.Err() != nil {
				continue
			}
			srv := m.make(fmt.Sprintf("http%d", r))
			b.Log.Printf("http: run %d/%d, %s: starting 2 workers on port %d", r, o.HTTPRuns, m.name, port)
			err := func() error {
				if err := begin(srv); err != nil {
					return err
				}
				before, err := srv.WorkerPIDs(ctx)
				if err != nil {
					return err
				}
				RunLoad(ctx, cfg(false), o.HTTPWarmup)
				pid, err := srv.PrimaryPID()
				if err != nil {
					return err
				}
				// measured runs a load for the measured duration and reads what serving it cost.
				measured := func(keepAlive bool) (LoadResult, cost, error) {
					c0, err := readCost(pid, before)
					if err != nil {
						return LoadResult{}, cost{}, fmt.Errorf("%s: %w", m.name, err)
					}
					res := RunLoad(ctx, cfg(keepAlive), o.HTTPDuration)
					c1, err := readCost(pid, before)
					if err != nil {
						return LoadResult{}, cost{}, fmt.Errorf("%s: %w", m.name, err)
					}
					return res, c1.since(c0), nil
				}
				nc, nCost, err := measured(false)
				if err != nil {
					return err
				}
				RunLoad(ctx, cfg(true), o.HTTPWarmup)
				ka, kCost, err := measured(true)
				if err != nil {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if nc.Requests > 0 {
					cpu[m.name] = append(cpu[m.name], nCost.primary/float64(nc.Requests)*10000)
					t := cpuTotal[m.name]
					cpuTotal[m.name] = [2]float64{t[0] + nCost.primary, t[1] + float64(nc.Requests)}
					srvNew[m.name] = append(srvNew[m.name], nCost.servers()/float64(nc.Requests)*10000)
					switchesNew[m.name] = append(switchesNew[m.name], float64(nCost.switches)/float64(nc.Requests))
				}
				if nCost.ticks > 0 {
					idleNew[m.name] = append(idleNew[m.name], float64(nCost.idle)/float64(nCost.ticks)*100)
				}
				if ka.Requests > 0 {
					srvKA[m.name] = append(srvKA[m.name], kCost.servers()/float64(ka.Requests)*10000)
				}
				b.Log.Printf("http: run %d/%d, %s: new connection %.0f req/s (failed: %s), keep-alive %.0f req/s (failed: %s), primary %.2f CPU s over %d connections",
					r, o.HTTPRuns, m.name, nc.RPS(), nc.ErrorSummary(), ka.RPS(), ka.ErrorSummary(), nCost.primary, nc.Requests)
				rpsNew[m.name] = append(rpsNew[m.name], nc.RPS())
				rpsKA[m.name] = append(rpsKA[m.name], ka.RPS())
				failNew[m.name] = append(failNew[m.name], float64(nc.Failed()))
				failKA[m.name] = append(failKA[m.name], float64(ka.Failed()))
				for _, x := range []struct {
					tot map[string]*LoadResult
					res LoadResult
				}{{totNew, nc}, {totKA, ka}} {
					if x.tot[m.name] == nil {
						x.tot[m.name] = &LoadResult{}
					}
					x.tot[m.name].Add(x.res)
				}
				return sameWorkers(ctx, srv, before)
			}()
			if err != nil {
				broken[m.name] = true
				step(m.name, err)
			}
			if err := end(srv); err != nil {
				broken[m.name] = true
				step(m.name, err)
			}
		}
	}

	// Reloads under load: keep-alive first (what most clients do), then a new connection per
	// request (what corral guarantees zero failures for).
	type reloadFigures struct {
		failed, served map[string][]float64
		details        map[string]string
	}
	rl := map[bool]*reloadFigures{}
	for _, ka := range []bool{true, false} {
		rl[ka] = &reloadFigures{failed: map[string][]float64{}, served: map[string][]float64{}, details: map[string]string{}}
	}
	reloadMS := map[string][]float64{}
	var na []string
	for _, m := range makers {
		if ctx.Err() != nil {
			break
		}
		srv := m.make("httpreload")
		if !srv.CanReload() {
			na = append(na, m.name)
			continue
		}
		if broken[m.name] {
			continue
		}
		b.Log.Printf("http: %s: %d reloads under load, keep-alive then new connections", m.name, reloads)
		err := func() error {
			if err := begin(srv); err != nil {
				return err
			}
			for _, ka := range []bool{true, false} {
				RunLoad(ctx, cfg(ka), o.HTTPWarmup)
				before, err := srv.WorkerPIDs(ctx)
				if err != nil {
					return err
				}
				l := StartLoad(ctx, cfg(ka))
				sleepCtx(ctx, o.HTTPSettle)
				var took []string
				var rerr error
				for i := 0; i < reloads && rerr == nil && ctx.Err() == nil; i++ {
					t0 := time.Now()
					rerr = srv.Reload(ctx)
					d := time.Since(t0)
					if rerr == nil {
						reloadMS[m.name] = append(reloadMS[m.name], ms(d))
						took = append(took, fmt.Sprintf("%.2f s", d.Seconds()))
					}
				}
				sleepCtx(ctx, o.HTTPSettle)
				res := l.Stop()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if rerr != nil {
					return rerr
				}
				after, err := srv.WorkerPIDs(ctx)
				if err != nil {
					return err
				}
				for _, p := range after {
					if slices.Contains(before, p) {
						return fmt.Errorf("%s: worker %d survived %d reloads (pids %v, then %v)", m.name, p, reloads, before, after)
					}
				}
				kind := map[bool]string{true: "keep-alive", false: "new connection per request"}[ka]
				b.Log.Printf("http: %s, %s: %d failed of %d requests (%s) during %d reloads (%s)",
					m.name, kind, res.Failed(), res.Requests+res.Failed(), res.ErrorSummary(), reloads, strings.Join(took, ", "))
				f := rl[ka]
				f.failed[m.name] = []float64{float64(res.Failed())}
				f.served[m.name] = []float64{res.RPS()}
				f.details[m.name] = fmt.Sprintf("%d failed of %d requests over %.1f s (%s); reloads took %s; workers %v, then %v",
					res.Failed(), res.Requests+res.Failed(), res.Elapsed.Seconds(), res.ErrorSummary(), strings.Join(took, " and "), before, after)
			}
			return nil
		}()
		if err != nil {
			step(m.name+" reload", err)
		}
		if err := end(srv); err != nil {
			step(m.name+" reload", err)
		}
	}

	// The figures, in the order of the questions they answer.
	var metrics []Metric
	add := func(name, unit, better, target, note string, samples map[string][]float64, details map[string]string, na []string) {
		m := newMetric(s.Name(), name, unit, better, target, order, samples)
		m.Note, m.Details, m.NA = note, details, na
		if len(m.Order) > 0 || len(na) > 0 {
			metrics = append(metrics, m)
		}
	}
	sum := func(tot map[string]*LoadResult) map[string]string {
		out := map[string]string{}
		for c, r := range tot {
			out[c] = failSummary(len(rpsNew[c]), r)
		}
		return out
	}
	add("requests/s, new connection per request", "req/s", "higher", newConnTarget,
		"each request on a new connection (`Connection: close`): the primary accepts and hands over every one", rpsNew, nil, nil)
	add("requests/s, keep-alive connections", "req/s", "higher", keepAliveTarget,
		"the primary only hands over each client connection once", rpsKA, nil, nil)
	cpuDetails := map[string]string{}
	for c, t := range cpuTotal {
		cpuDetails[c] = fmt.Sprintf("%.2f CPU s for %d connections over %s", t[0], int64(t[1]), overRuns(len(rpsNew[c])))
	}
	add("primary's CPU per 10,000 connections (new-connection runs)", "CPU s", "lower", "",
		"utime+stime of the primary (corral's daemon, PM2's God daemon, the Node primary) from /proc/<pid>/stat around each run, per 10,000 connections served",
		cpu, cpuDetails, nil)
	add("servers' CPU per 10,000 requests, new connection per request", "CPU s", "lower", "",
		"utime+stime of the primary and the 2 workers over each new-connection run, per 10,000 requests served: what a request costs the host, whoever else runs on it; the ratio is how many more requests the same cores serve when the clients are elsewhere (PostgreSQL's own CPU not included)",
		srvNew, nil, nil)
	add("servers' CPU per 10,000 requests, keep-alive", "CPU s", "lower", "",
		"the same over each keep-alive run", srvKA, nil, nil)
	add("idle CPU during the new-connection runs", "%", "lower", "",
		"the machine's idle and iowait time over each new-connection run (/proc/stat), of all its CPUs: with clients always waiting, what the contender left unused",
		idleNew, nil, nil)
	add("workers' context switches per request, new connection per request", "switches", "lower", "",
		"voluntary and not, of the 2 workers' main threads (the event loops) over each new-connection run (/proc/<pid>/status), per request served: a worker that finds several connections waiting when it wakes takes them all for one wake-up",
		switchesNew, nil, nil)
	add("failed requests per run, new connection per request", "requests", "lower", "0", "", failNew, sum(totNew), nil)
	add("failed requests per run, keep-alive", "requests", "lower", "0", "", failKA, sum(totKA), nil)
	add(fmt.Sprintf("failed requests during %d reloads, keep-alive load", reloads), "requests", "lower", "",
		fmt.Sprintf("load from %s before the first reload to %s after the last", o.HTTPSettle, o.HTTPSettle), rl[true].failed, rl[true].details, na)
	add("requests/s over that window, keep-alive", "req/s", "higher", "",
		"how much the reloads slow the app down (with the load before and after them)", rl[true].served, nil, na)
	add(fmt.Sprintf("failed requests during %d reloads, new connection per request", reloads), "requests", "lower", reloadTarget,
		"", rl[false].failed, rl[false].details, na)
	add("requests/s over that window, new connection per request", "req/s", "higher", "", "", rl[false].served, nil, na)
	add("reload command, 2 workers, under load", "ms", "lower", "",
		"wall time of `<tool> reload app`, each of the reloads above", reloadMS, nil, na)
	return metrics, errors.Join(errs...)
}

// httpContender is a contender of the scenarios that run an app with 2 workers behind one
// port (http, stall): its name, and how to make a server of it, fresh for each run (label
// names its home).
type httpContender struct {
	name string
	make func(label string) httpServer
}

// httpContenders lists the contenders in the order they take turns: each tool, corral followed
// by its other TCP policies (reuseport; shared too when withShared), then, when b.NodeCluster,
// Node's own primary with its default scheduling and with its shared socket. dir holds the
// app (app.js) and Node's primary (primaryScript as primary.js); env is more of the app's
// environment.
func httpContenders(b *Bench, dir string, port int, env []string, withShared bool) []httpContender {
	var cs []httpContender
	for _, t := range b.Tools {
		cs = append(cs, httpContender{t.Name, func(label string) httpServer {
			return &toolServer{b: b, tool: t, dir: dir, port: port, label: label, env: env}
		}})
		if t.Name == Baseline {
			// corral's other TCP policy: a listening socket per worker (issue 12).
			cs = append(cs, httpContender{corralReuseport, func(label string) httpServer {
				return &toolServer{b: b, tool: t, dir: dir, port: port, label: "reuseport-" + label, name: corralReuseport,
					args: []string{"--sched-policy", "reuseport"}, env: env}
			}})
			if withShared {
				cs = append(cs, httpContender{corralShared, func(label string) httpServer {
					return &toolServer{b: b, tool: t, dir: dir, port: port, label: "shared-" + label, name: corralShared,
						args: []string{"--sched-policy", "shared"}, env: env}
				}})
			}
		}
	}
	if b.NodeCluster {
		cs = append(cs, httpContender{nodeClusterName, func(label string) httpServer {
			return &nodeServer{b: b, dir: dir, port: port, label: label, env: env}
		}})
		// Node's other policy: one shared socket, each worker accepting on it (SCHED_NONE),
		// the fastest and least fair way to share a port.
		cs = append(cs, httpContender{nodeClusterShared, func(label string) httpServer {
			return &nodeServer{b: b, dir: dir, port: port, label: label, name: nodeClusterShared,
				env: append([]string{"NODE_CLUSTER_SCHED_POLICY=none"}, env...)}
		}})
	}
	return cs
}

// startAlone starts srv once the port is free: the previous contender gone, nothing
// listening.
func startAlone(ctx context.Context, srv httpServer, port int) error {
	if err := waitPortFree(ctx, port, 15*time.Second); err != nil {
		return fmt.Errorf("before starting %s: %w", srv.Name(), err)
	}
	return srv.Start(ctx)
}

// sameWorkers checks that srv runs the workers it ran before (pids): figures taken while a
// worker died and was replaced mean little.
func sameWorkers(ctx context.Context, srv httpServer, before []int) error {
	after, err := srv.WorkerPIDs(ctx)
	if err != nil {
		return err
	}
	if !slices.Equal(before, after) {
		return fmt.Errorf("%s: workers changed under load (pids %v, then %v): one crashed or was restarted", srv.Name(), before, after)
	}
	return nil
}

// failSummary is the details line of a load's failed requests, totalled over runs runs.
func failSummary(runs int, r *LoadResult) string {
	return fmt.Sprintf("over %s: %d failed of %d requests (%s)", overRuns(runs), r.Failed(), r.Requests+r.Failed(), r.ErrorSummary())
}

// overRuns names n runs in a details line: "the 3 runs", "the 1 run".
func overRuns(n int) string {
	if n == 1 {
		return "the 1 run"
	}
	return fmt.Sprintf("the %d runs", n)
}

// stopAlone stops srv and waits until the port is free again.
func stopAlone(ctx context.Context, srv httpServer, port int) error {
	err := srv.Stop()
	if perr := waitPortFree(ctx, port, 15*time.Second); perr != nil {
		err = errors.Join(err, fmt.Errorf("after stopping %s: %w", srv.Name(), perr))
	}
	return err
}

// prepareHTTP writes an HTTP scenario's scripts into a directory of its own (named after the
// scenario) and picks its port (-http-port, or a free one).
func prepareHTTP(b *Bench, scenario string, scripts map[string]string) (dir string, port int, err error) {
	dir = filepath.Join(b.Work, scenario)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", 0, err
		}
	}
	if port = b.Opts.HTTPPort; port == 0 {
		if port, err = freePort(); err != nil {
			return "", 0, err
		}
	}
	return dir, port, nil
}

// prepareCorralHTTP is the set-up of the scenarios that measure corral alone on the http
// scenario's app: corral's tool (nil, with a note, when corral is not a contender), the app's
// directory and port, and autogroup scheduling turned off until restore.
func prepareCorralHTTP(b *Bench, scenario string) (corral *Tool, dir string, port int, restore func(), err error) {
	for _, t := range b.Tools {
		if t.Name == Baseline {
			corral = t
		}
	}
	if corral == nil {
		b.Note("%s: corral is not among the contenders: nothing to measure", scenario)
		return nil, "", 0, nil, nil
	}
	if dir, port, err = prepareHTTP(b, scenario, map[string]string{"app.js": httpAppScript}); err != nil {
		return nil, "", 0, nil, err
	}
	restoreAutogroup := disableAutogroup(b)
	restore = func() {
		if err := restoreAutogroup(); err != nil {
			b.Log.Printf("%s: turning autogroup scheduling back on: %v", scenario, err)
		}
	}
	return corral, dir, port, restore, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// toolServer runs the app under a process manager: `<tool> start app.js -i 2 --name app`.
type toolServer struct {
	b     *Bench
	tool  *Tool
	dir   string
	port  int
	label string
	env   []string // more of the app's environment (the requests scenario's switch)
	name  string   // the contender's name when not the tool's (a variant of it)
	args  []string // more arguments of start (the variant)
	n     int      // workers; 0 means 2
	in    *Instance
}

// workers is how many workers the app runs with.
func (s *toolServer) workers() int {
	if s.n > 0 {
		return s.n
	}
	return 2
}

func (s *toolServer) Name() string {
	if s.name != "" {
		return s.name
	}
	return s.tool.Name
}
func (s *toolServer) CanReload() bool { return true }

func (s *toolServer) Start(ctx context.Context) error {
	in, err := s.b.NewInstance(s.tool, s.label)
	if err != nil {
		return err
	}
	s.in = in
	in.Dir = s.dir
	in.Env = append([]string{"PORT=" + strconv.Itoa(s.port)}, s.env...)
	if _, err := in.Time(ctx, append([]string{"start", "app.js", "-i", strconv.Itoa(s.workers()), "--name", "app"}, s.args...)...); err != nil {
		return err
	}
	if _, err := in.WaitOnline(ctx, s.workers(), 60*time.Second); err != nil {
		return err
	}
	if err := waitServing(ctx, "127.0.0.1:"+strconv.Itoa(s.port), 3, 30*time.Second); err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	return nil
}

func (s *toolServer) PrimaryPID() (int, error) { return s.in.DaemonPID() }

func (s *toolServer) WorkerPIDs(ctx context.Context) ([]int, error) {
	procs, err := s.in.WaitOnline(ctx, s.workers(), 30*time.Second)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.PID)
	}
	slices.Sort(pids)
	return pids, nil
}

func (s *toolServer) Reload(ctx context.Context) error {
	_, err := s.in.Time(ctx, "reload", "app")
	return err
}

func (s *toolServer) Stop() error {
	if s.in == nil {
		return nil
	}
	return s.b.Shutdown(s.in)
}

// nodeServer runs the app under Node's own cluster primary: `node primary.js`.
type nodeServer struct {
	b     *Bench
	dir   string
	port  int
	label string
	name  string   // the contender's name when not nodeClusterName (a variant)
	env   []string // more of the primary's environment (the variant's policy)

	cmd     *exec.Cmd
	marker  string
	exited  chan struct{}
	once    sync.Once
	stopErr error
}

func (s *nodeServer) Name() string {
	if s.name != "" {
		return s.name
	}
	return nodeClusterName
}
func (s *nodeServer) CanReload() bool { return false }
func (s *nodeServer) Reload(context.Context) error {
	return errors.New("Node's cluster primary has no reload")
}

func (s *nodeServer) Start(ctx context.Context) error {
	s.marker = filepath.Join(s.b.Work, strings.ReplaceAll(s.Name(), " ", "-")+"-"+s.label)
	if err := os.Mkdir(s.marker, 0o700); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(s.marker, "primary.log"))
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command("node", "primary.js")
	cmd.Dir = s.dir
	cmd.Env = append(append(baseEnviron(), "PORT="+strconv.Itoa(s.port), nodeMarkerVar+"="+s.marker), s.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A session of its own, as a service runs (systemd starts each in its own session), and as
	// PM2's and corral's daemons are: not the bench's, where the load generator runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node primary.js: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exited) }()
	s.b.AtCleanup(s.Stop)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.exited:
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := waitServing(sctx, "127.0.0.1:"+strconv.Itoa(s.port), 3, 30*time.Second); err != nil {
		select {
		case <-s.exited:
			return fmt.Errorf("node primary.js exited: %s", tail(filepath.Join(s.marker, "primary.log")))
		default:
		}
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	return nil
}

func (s *nodeServer) PrimaryPID() (int, error) {
	if s.cmd == nil || !alive(s.cmd.Process.Pid) {
		return 0, errors.New("the Node primary is not running")
	}
	return s.cmd.Process.Pid, nil
}

func (s *nodeServer) WorkerPIDs(ctx context.Context) ([]int, error) {
	pid, err := s.PrimaryPID()
	if err != nil {
		return nil, err
	}
	var kids []int
	err = poll(ctx, 30*time.Second, 200*time.Millisecond, func() error {
		if kids = childPIDs(pid); len(kids) != 2 {
			return fmt.Errorf("the Node primary has %d workers, want 2", len(kids))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return kids, nil
}

// Stop sends SIGTERM to the primary (its workers exit when their channel to it closes), then
// SIGKILLs whatever of it is left. It is safe to call twice.
func (s *nodeServer) Stop() error {
	s.once.Do(func() {
		if s.cmd == nil {
			return
		}
		workers := childPIDs(s.cmd.Process.Pid)
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = errors.New("the Node primary outlived SIGTERM by 5 s and was killed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, w := range workers {
			_ = waitGone(ctx, w, 5*time.Second)
		}
		if killed := killByHome(nodeMarkerVar, s.marker); len(killed) > 0 {
			s.stopErr = errors.Join(s.stopErr, fmt.Errorf("%d Node workers outlived their primary by 5 s and were killed: %s", len(killed), strings.Join(killed, ", ")))
		}
	})
	return s.stopErr
}

// childPIDs lists the live children of pid, sorted.
func childPIDs(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		c, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if st, err := procstat.ReadStat(c); err == nil && st.PPid == pid && !st.Exited {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// tail returns the last lines of a log file, for an error message.
func tail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 800 {
		s = "…" + s[len(s)-800:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
