package daemon

import (
	"context"
	"fmt"
	"slices"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/watch"
	"github.com/robfig/cron/v3"
)

// cronParser accepts PM2's cron_restart forms: 5 fields, or 6 with seconds first, and
// descriptors such as @hourly.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronSchedule parses an app's cron_restart; nil when it has none.
func (d *Daemon) cronSchedule(s *spec.App) (cron.Schedule, error) {
	if s.CronRestart == "" {
		return nil, nil
	}
	sched, err := cronParser.Parse(s.CronRestart)
	if err != nil {
		return nil, fmt.Errorf("app %q: cron_restart %q: %v", s.Name, s.CronRestart, err)
	}
	return sched, nil
}

// trigger restarts the processes ids of a (nil: all) for a cron schedule, a watched file or
// the memory limit: an op like any other, so it never overlaps a reload or a scale of the same
// app. Called from the cron, watcher and sampler goroutines; it does not wait.
//
// Where the app owns its port the processes are replaced by a rolling reload, so a trigger
// that finds one of them online counts as one reload of the app in /metrics, failed if any
// replacement failed (docs/metrics.md §3.2); elsewhere it is a restart, counted per process.
func (d *Daemon) trigger(a *app, ids []int, restart func(ctx context.Context, p *supervisor.Process) error) {
	a.enqueue(opTrigger, func() error {
		reload, online := a.st.ownsPort(), false
		var failed error
		for _, p := range a.st.procs {
			if ids != nil && !slices.Contains(ids, p.ID()) {
				continue
			}
			if p.Info().Status == supervisor.StatusOnline {
				online = true
			}
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout(a.st.spec))
			err := restart(ctx, p)
			cancel()
			if err != nil {
				d.logf("%s[%d]: %v", a.name, p.ID(), err)
				failed = err
			}
		}
		if reload && online {
			a.reloads.count(failed)
		}
		return nil
	})
}

// armTriggers sets up cron_restart and watch for a's processes. Loop only.
func (d *Daemon) armTriggers(a *app) error {
	for _, p := range a.st.procs {
		d.armCron(a, p)
	}
	s := a.st.spec
	if len(s.Watch) == 0 {
		return nil
	}
	w, err := watch.New(watch.Options{Paths: s.Watch, Ignore: s.IgnoreWatch, Delay: s.WatchDelay.D()}, func(path string) {
		d.trigger(a, nil, func(ctx context.Context, p *supervisor.Process) error {
			return p.Trigger(ctx, "file changed: "+path)
		})
	})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	a.st.watcher = w
	return nil
}

// disarmTriggers stops a's watcher and cron entries. Loop only.
func (d *Daemon) disarmTriggers(a *app) {
	if a.st.watcher != nil {
		a.st.watcher.Close()
		a.st.watcher = nil
	}
	for id := range a.st.crons {
		d.disarmCron(a, id)
	}
}

// armCron schedules p's cron restarts (one entry per process, as PM2 does). Loop only.
func (d *Daemon) armCron(a *app, p *supervisor.Process) {
	s := a.st.spec
	sched, err := d.cronSchedule(s)
	if err != nil || sched == nil {
		return
	}
	id, reason := p.ID(), "cron_restart "+s.CronRestart
	a.st.crons[id] = d.cron.Schedule(sched, cron.FuncJob(func() {
		d.trigger(a, []int{id}, func(ctx context.Context, p *supervisor.Process) error { return p.Trigger(ctx, reason) })
	}))
}

// disarmCron removes process procID's cron entry. Loop only.
func (d *Daemon) disarmCron(a *app, procID int) {
	if id, ok := a.st.crons[procID]; ok {
		delete(a.st.crons, procID)
		d.cron.Remove(id)
	}
}
