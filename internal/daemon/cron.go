package daemon

import (
	"fmt"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/robfig/cron/v3"
)

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

// armCron schedules p's cron restarts (one entry per process, as PM2 does).
func (d *Daemon) armCron(a *app, p *supervisor.Process) {
	d.tbl.mu.Lock()
	s := a.spec
	d.tbl.mu.Unlock()
	sched, err := d.cronSchedule(s)
	if err != nil || sched == nil {
		return
	}
	id := d.cron.Schedule(sched, cron.FuncJob(func() { p.Trigger("cron_restart " + s.CronRestart) }))
	d.tbl.mu.Lock()
	a.crons[p.ID()] = id
	d.tbl.mu.Unlock()
}

func (d *Daemon) disarmCron(a *app, procID int) {
	d.tbl.mu.Lock()
	id, ok := a.crons[procID]
	delete(a.crons, procID)
	d.tbl.mu.Unlock()
	if ok {
		d.cron.Remove(id)
	}
}
