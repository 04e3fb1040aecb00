package daemon

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/cpus"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// newGroup creates the cluster primary of a cluster-mode app.
func (d *Daemon) newGroup(s *spec.App) *cluster.Group {
	return cluster.NewGroup(s.Name, s.SchedPolicy, d.logf)
}

// reloadLog collects what a rolling reload did, for the action's answer.
type reloadLog struct {
	entries []api.ReloadSummary
}

// rollingReload replaces an app's workers one at a time: each replacement must be ready
// before its predecessor leaves the rotation, so N-1 workers always serve. The first failure
// stops the reload there; the workers not yet replaced keep serving.
func (d *Daemon) rollingReload(a *app, procs []*supervisor.Process, next *spec.App, log *reloadLog) error {
	d.tbl.mu.Lock()
	s := a.spec
	d.tbl.mu.Unlock()
	for i, p := range procs {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		res, err := p.Reload(ctx, next)
		cancel()
		entry := api.ReloadSummary{ID: p.ID(), Name: s.Name, OldPID: res.OldPID, NewPID: res.NewPID,
			ReadyMS: res.ReadyIn.Milliseconds(), Started: res.Started}
		if err != nil {
			entry.Error = err.Error()
			log.entries = append(log.entries, entry)
			left := len(procs) - i - 1
			return fmt.Errorf("reload of %s stopped at process %d (%d not reloaded; old workers keep serving): %v", s.Name, p.ID(), left, err)
		}
		log.entries = append(log.entries, entry)
	}
	return nil
}

// settleCluster closes a cluster app's ports once none of its processes runs or will run:
// the port belongs to the app, and stopping the app (or all its workers giving up) is when
// clients should be refused instead of queued.
func (d *Daemon) settleCluster(a *app) {
	if !a.ownsPort() {
		return
	}
	d.tbl.mu.Lock()
	procs := append([]*supervisor.Process(nil), a.procs...)
	d.tbl.mu.Unlock()
	for _, p := range procs {
		switch p.Info().Status {
		case supervisor.StatusStopped, supervisor.StatusErrored:
		default:
			return
		}
	}
	a.closePorts()
}

// Scale sets an app's number of processes (PM2's `scale`): "N", "max", "+N" or "-N". Scaling
// up starts new processes with the lowest free instance numbers; scaling down stops the
// processes with the lowest ids (as PM2 does), each drained gracefully first.
func (d *Daemon) Scale(req api.ScaleRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	d.tbl.mu.Lock()
	a := d.tbl.apps[req.App]
	if a == nil {
		if id, err := strconv.Atoi(req.App); err == nil {
			a = d.tbl.owner[id]
		}
	}
	if a == nil {
		d.tbl.mu.Unlock()
		return resp, notFoundError{req.App}
	}
	current := len(a.procs)
	d.tbl.mu.Unlock()

	want, err := scaleTarget(req.Count, current)
	if err != nil {
		return resp, badRequestError{err.Error()}
	}
	a.op.Lock()
	defer a.op.Unlock()
	resp.Errors = d.scaleLocked(a, want)
	d.tbl.mu.Lock()
	ids := procIDsList(a.procs)
	d.tbl.mu.Unlock()
	resp.Processes = d.processesByID(ids, false)
	return resp, nil
}

// scaleLocked brings a to want processes; a.op is held.
func (d *Daemon) scaleLocked(a *app, want int) []string {
	var errs []string
	d.tbl.mu.Lock()
	s := a.spec
	current := len(a.procs)
	var victims, added []*supervisor.Process
	if want < current {
		victims = append(victims, a.procs[:current-want]...)
	} else {
		taken := map[int]bool{}
		var instances []int
		for range want - current {
			inst := freeInstance(a, taken)
			taken[inst] = true
			instances = append(instances, inst)
		}
		added = d.addProcsLocked(a, instances)
	}
	d.tbl.mu.Unlock()

	if len(victims) > 0 {
		d.logf("scaling %s from %d to %d: stopping %s", s.Name, current, want, procIDs(victims))
		if err := d.deleteProcs(a, victims); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(added) > 0 {
		d.logf("scaling %s from %d to %d: starting %s", s.Name, current, want, procIDs(added))
		for _, p := range added {
			d.armCron(a, p)
		}
		if err := forEach(added, func(p *supervisor.Process) error { return p.Start() }); err != nil {
			errs = append(errs, err.Error())
		}
	}
	return errs
}

// scaleTarget reads a scale count relative to the current one.
func scaleTarget(count string, current int) (int, error) {
	c := strings.TrimSpace(count)
	var want int
	switch {
	case c == "max" || c == "0":
		want = cpus.Usable()
	case strings.HasPrefix(c, "+") || strings.HasPrefix(c, "-"):
		n, err := strconv.Atoi(c[1:])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("scale count %q: use N, max, +N or -N", count)
		}
		if c[0] == '+' {
			want = current + n
		} else {
			want = current - n
		}
	default:
		n, err := strconv.Atoi(c)
		if err != nil {
			return 0, fmt.Errorf("scale count %q: use N, max, +N or -N", count)
		}
		want = n
	}
	if want < 1 {
		return 0, fmt.Errorf("an app keeps at least 1 process (asked for %d): use `corral stop` or `corral delete` to stop it", want)
	}
	return want, nil
}

// connRates turns the cluster counters into connections per second between samples.
type connRates struct {
	last map[int]uint64
	at   time.Time
	rate map[int]float64
}

// sampleClusters updates per-process connection rates; called by the sampler.
func (d *Daemon) sampleClusters() {
	d.tbl.mu.Lock()
	var groups []*cluster.Group
	for _, a := range d.tbl.apps {
		if a.group != nil {
			groups = append(groups, a.group)
		}
	}
	d.tbl.mu.Unlock()
	now := time.Now()
	counts := map[int]uint64{}
	for _, g := range groups {
		for id, st := range g.Stats() {
			counts[id] = st.Connections
		}
	}
	d.usageMu.Lock()
	defer d.usageMu.Unlock()
	rates := map[int]float64{}
	if elapsed := now.Sub(d.conns.at).Seconds(); !d.conns.at.IsZero() && elapsed > 0 {
		for id, n := range counts {
			if prev, ok := d.conns.last[id]; ok && n >= prev {
				rates[id] = float64(n-prev) / elapsed
			}
		}
	}
	d.conns = connRates{last: counts, at: now, rate: rates}
}

// groupStats keeps each cluster group's statistics for one listing: Group.Stats reads every
// worker of the group at once, so a listing reads it once per app, not once per process.
type groupStats map[*cluster.Group]map[int]cluster.Stats

func (gs groupStats) of(g *cluster.Group) map[int]cluster.Stats {
	st, ok := gs[g]
	if !ok {
		st = g.Stats()
		gs[g] = st
	}
	return st
}

// clusterStats describes a cluster process's share of the connections.
func (d *Daemon) clusterStats(a *app, id int, stats groupStats) *api.WorkerStats {
	if a == nil || a.group == nil {
		return nil
	}
	st, ok := stats.of(a.group)[id]
	if !ok {
		return &api.WorkerStats{}
	}
	d.usageMu.Lock()
	rate := d.conns.rate[id]
	d.usageMu.Unlock()
	return &api.WorkerStats{
		WorkerID:    st.WorkerID,
		Listening:   st.Listening,
		Connections: st.Connections,
		ConnPerSec:  rate,
		Refused:     st.Refused,
		InFlight:    st.InFlight,
	}
}
