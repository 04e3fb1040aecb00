package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/loadgen"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/spec"
)

// Runner runs the checklist against one app.
type Runner struct {
	D Daemon
	// Alerts reads the alerts engine; nil when the daemon has none to ask.
	Alerts AlertsSource
	// DumpPath is the saved process list (CORRAL_HOME/dump.json).
	DumpPath string
	// Progress gets a line as each step starts (nil: none).
	Progress io.Writer
}

// ErrNotVerifiable wraps what makes an app unfit for verify before anything ran.
var ErrNotVerifiable = errors.New("cannot verify")

// Plan says, before anything runs, what verify will do to the app.
func Plan(o Options, workers int) string {
	var ops []string
	if !o.Skip[CheckReload] {
		ops = append(ops, "a rolling reload")
	}
	if !o.Skip[CheckRollback] && workers > 1 {
		ops = append(ops, fmt.Sprintf("live scaling %d → 1 → %d", workers, workers))
	}
	s := fmt.Sprintf("verify loads %s for about %s", o.App, o.estimate(workers).Round(time.Second))
	if len(ops) == 0 {
		return s + "; it changes nothing in the app."
	}
	return s + " and changes it only through corral's zero-downtime operations: " + joinAnd(ops) +
		fmt.Sprintf(", under load; the app is left with its %d workers, even on failure or Ctrl-C.", workers)
}

// estimate is roughly how long a run takes.
func (o Options) estimate(workers int) time.Duration {
	d := o.warmup() + o.Duration + 2*o.settle()
	if !o.Skip[CheckReload] {
		d += 2*o.settle() + time.Duration(workers)*time.Second
	}
	if !o.Skip[CheckRollback] && workers > 1 {
		d += 4*o.settle() + 2*time.Second
		if o.Scaling {
			d += o.Duration
			if o.Rate > 0 {
				d += o.Duration
			}
		}
	}
	return d
}

// settle is how long the load runs before and after an operation, so that the operation
// happens under a load in full swing and what it disturbs shows.
func (o Options) settle() time.Duration {
	return min(max(o.Duration/5, 500*time.Millisecond), 2*time.Second)
}

// warmup is how long the load runs before the steady load is measured.
func (o Options) warmup() time.Duration {
	return min(max(o.Duration/2, time.Second), 5*time.Second)
}

// run is one run's state.
type run struct {
	r       *Runner
	o       Options
	rep     *Report
	t0      time.Time
	workers int
	target  string
	// app is the app's spec as read at the start (a reload or scaling does not change it).
	app spec.App
	mem *memSampler
	// steady is the window of the steady load, and the workers that served it.
	steadyFrom, steadyTo float64
	steadyPIDs           map[int]int // pm_id -> pid
	steadyRPS            float64
}

// Run runs the checklist and returns the report. The error is for what stopped verify before
// it could judge the app (no such app, not cluster mode, not serving); a failed check is in
// the report.
func (r *Runner) Run(ctx context.Context, o Options) (*Report, error) {
	procs, err := r.procs(ctx, o.App)
	if err != nil {
		return nil, err
	}
	if err := fitForVerify(o.App, procs); err != nil {
		return nil, err
	}
	target, err := pickTarget(o.Target, listenAddrs(procs))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrNotVerifiable, o.App, err)
	}
	mode := "a new connection per request"
	if o.KeepAlive {
		mode = "keep-alive connections"
	}
	rate := ""
	if o.Rate > 0 {
		rate = fmt.Sprintf(", at most %g req/s", o.Rate)
	}
	x := &run{r: r, o: o, workers: len(procs), target: target, app: procs[0].App, t0: time.Now()}
	x.rep = &Report{App: o.App, Started: x.t0, Workers: len(procs), Target: target,
		Load: fmt.Sprintf("GET %s, %d clients, %s%s, %s per phase", o.Path, o.Concurrency, mode, rate, o.Duration)}
	x.mem = startMemSampler(ctx, r.D, o.App, x.t0)
	defer func() { x.rep.Elapsed = time.Since(x.t0).Seconds() }()
	defer x.restore(ctx)

	if !o.Skip[CheckSaved] {
		x.progress("checking the saved process list")
		x.checkSaved(ctx, procs)
	}
	if !o.Skip[CheckAlerts] {
		x.progress("checking the alerts")
		x.checkAlerts(ctx)
	}
	x.progress("steady load: %s", x.rep.Load)
	if err := x.steady(ctx); err != nil {
		return x.done(), err
	}
	if o.Skip[CheckSessions] {
		x.skip(CheckSessions, "skipped (--skip)")
	} else if !o.sessionsConfigured() {
		x.skip(CheckSessions, "no login configured: set verify.login and verify.check in the ecosystem file, or --login-path and --check-path")
	} else {
		x.progress("sessions: logging in, then asking every worker")
		x.sessions(ctx)
	}
	if ctx.Err() == nil {
		if o.Skip[CheckReload] {
			x.skip(CheckReload, "skipped (--skip)")
		} else {
			x.progress("rolling reload under load")
			x.reload(ctx)
		}
	}
	if ctx.Err() == nil {
		switch {
		case o.Skip[CheckRollback]:
			x.skip(CheckRollback, "skipped (--skip)")
		case x.workers < 2:
			x.skip(CheckRollback, "the app runs 1 worker: there is nothing to scale down to")
		default:
			x.progress("scaling %d → 1 → %d under load", x.workers, x.workers)
			x.rollback(ctx)
		}
	}
	x.mem.stop()
	x.checkMemory()
	if err := ctx.Err(); err != nil {
		// A check cut short by Ctrl-C judged nothing: it is shown as not run, not failed.
		for _, id := range []string{CheckSessions, CheckReload, CheckRollback} {
			if c := x.rep.check(id); c.Status == Fail {
				c.Status, c.Reason = Skip, "interrupted (Ctrl-C) before it could judge: "+c.Reason
			}
		}
		return x.done(), fmt.Errorf("verify interrupted: %w", err)
	}
	return x.done(), nil
}

func (x *run) done() *Report {
	x.rep.Memory = x.mem.series()
	// The steady load runs whatever is skipped (distribution and memory are judged on it); a
	// skipped check is simply not judged.
	for id := range x.o.Skip {
		c := x.rep.check(id)
		c.Status, c.Reason, c.Workers, c.Values = Skip, "skipped (--skip)", nil, nil
		c.Figure, c.Threshold = "", ""
	}
	for _, id := range CheckIDs {
		x.rep.check(id) // every check has a line, skipped when it did not run
	}
	x.rep.finish()
	return x.rep
}

func (x *run) progress(format string, args ...any) {
	if x.r.Progress != nil {
		fmt.Fprintf(x.r.Progress, "[corral] verify: "+format+"\n", args...)
	}
}

func (x *run) skip(id, reason string) {
	c := x.rep.check(id)
	c.Status, c.Reason = Skip, reason
}

// since is t as seconds from the start of the run.
func (x *run) since(t time.Time) float64 { return t.Sub(x.t0).Seconds() }

// procs returns the app's processes (by name: a namespace of the same name is not the app).
func (r *Runner) procs(ctx context.Context, app string) ([]api.Process, error) {
	all, err := r.D.Processes(ctx, app)
	if err != nil {
		return nil, err
	}
	var out []api.Process
	for _, p := range all {
		if p.Name == app {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %s: no app of that name (corral ls lists them)", ErrNotVerifiable, app)
	}
	slices.SortFunc(out, func(a, b api.Process) int { return a.ID - b.ID })
	return out, nil
}

// Fit says why the app cannot be verified as it runs now (procs as the daemon listed them for
// the app's name), before anything is announced or run; nil when it can.
func Fit(o Options, procs []api.Process) error {
	var mine []api.Process
	for _, p := range procs {
		if p.Name == o.App {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		return fmt.Errorf("%w %s: no app of that name (corral ls lists them)", ErrNotVerifiable, o.App)
	}
	if err := fitForVerify(o.App, mine); err != nil {
		return err
	}
	if _, err := pickTarget(o.Target, listenAddrs(mine)); err != nil {
		return fmt.Errorf("%w %s: %v", ErrNotVerifiable, o.App, err)
	}
	return nil
}

// fitForVerify says why an app cannot be verified as it runs now, if so.
func fitForVerify(app string, procs []api.Process) error {
	for _, p := range procs {
		if p.App.ExecMode != spec.ModeCluster || p.Cluster == nil {
			return fmt.Errorf("%w %s: it runs in %s mode; verify checks a cluster-mode app (exec_mode: 'cluster', instances: 'max' in its ecosystem entry)", ErrNotVerifiable, app, p.App.ExecMode)
		}
		if p.Status != "online" {
			return fmt.Errorf("%w %s: worker %d is %s; verify needs every worker online (corral ls, corral logs %s)", ErrNotVerifiable, app, p.ID, p.Status, app)
		}
	}
	return nil
}

// restore puts the app back to its worker count, whatever happened (even after Ctrl-C: with
// a context of its own).
func (x *run) restore(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	procs, err := x.r.procs(rctx, x.o.App)
	if err != nil {
		x.rep.Restored = fmt.Sprintf("could not check the worker count: %v; run corral scale %s %d", err, x.o.App, x.workers)
		return
	}
	if len(procs) == x.workers {
		if err := x.waitServing(rctx, x.workers); err != nil {
			x.rep.Restored = err.Error()
		}
		return
	}
	x.progress("restoring %s to %d workers", x.o.App, x.workers)
	if _, err := x.r.D.Scale(rctx, x.o.App, x.workers); err != nil {
		x.rep.Restored = fmt.Sprintf("could not scale back to %d workers: %v; run corral scale %s %d", x.workers, err, x.o.App, x.workers)
		return
	}
	x.rep.Restored = fmt.Sprintf("scaled back from %d to %d workers", len(procs), x.workers)
	if err := x.waitServing(rctx, x.workers); err != nil {
		x.rep.Restored += "; " + err.Error()
	}
}

// startLoad starts a load on the target with the run's options.
func (x *run) startLoad(ctx context.Context) *loadgen.Load {
	return loadgen.Start(ctx, x.loadConfig())
}

func (x *run) loadConfig() loadgen.Config {
	return loadgen.Config{Addr: x.target, Path: x.o.Path, Conns: x.o.Concurrency, KeepAlive: x.o.KeepAlive,
		Timeout: 5 * time.Second, Rate: x.o.Rate}
}

// record adds a load's seconds to the report's timeline.
func (x *run) record(l *loadgen.Load, res loadgen.Result) {
	off := x.since(l.Began())
	for _, s := range res.Series {
		if s.Length <= 0.05 {
			continue // a sliver at the end: its rate says nothing
		}
		x.rep.Throughput = append(x.rep.Throughput, Tick{T: off + float64(s.Second), Length: s.Length,
			Requests: s.Requests, Errors: s.Errors, P50MS: s.P50MS, P99MS: s.P99MS})
	}
}

func (x *run) event(label string) {
	x.rep.Events = append(x.rep.Events, Event{T: x.since(time.Now()), Label: label})
}

// sleep waits d, or less if ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ---------------------------------------------------------------------------------------------
// Memory sampling

// memSample is one RSS sample of one worker.
type memSample struct {
	t   float64
	id  int
	pid int
	rss int64
}

// memSampler samples the app's workers' RSS (whole process tree, from /proc, as the daemon
// measures it) every 250 ms: the daemon's own figure is only refreshed every couple of seconds.
type memSampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	got    []memSample
}

func startMemSampler(ctx context.Context, d Daemon, app string, t0 time.Time) *memSampler {
	ctx, cancel := context.WithCancel(ctx)
	m := &memSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		ps := procstat.NewSampler()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			procs, err := d.Processes(ctx, app)
			if err == nil {
				var roots []int
				ids := map[int]int{}
				for _, p := range procs {
					if p.Name == app && p.PID > 0 {
						roots = append(roots, p.PID)
						ids[p.PID] = p.ID
					}
				}
				now := time.Since(t0).Seconds()
				use := ps.Sample(roots)
				m.mu.Lock()
				for pid, u := range use {
					if u.RSS > 0 {
						m.got = append(m.got, memSample{t: now, id: ids[pid], pid: pid, rss: u.RSS})
					}
				}
				m.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *memSampler) stop() {
	m.cancel()
	<-m.done
}

func (m *memSampler) samples() []memSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.got)
}

// series is the samples by worker slot, for the chart.
func (m *memSampler) series() []WorkerSeries {
	by := map[int]*WorkerSeries{}
	var ids []int
	for _, s := range m.samples() {
		w := by[s.id]
		if w == nil {
			w = &WorkerSeries{ID: s.id}
			by[s.id] = w
			ids = append(ids, s.id)
		}
		w.Points = append(w.Points, Point{T: s.t, V: float64(s.rss)})
	}
	slices.Sort(ids)
	out := []WorkerSeries{}
	for _, id := range ids {
		out = append(out, *by[id])
	}
	return out
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}
