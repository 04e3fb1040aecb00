package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// newGroup creates the cluster primary of a cluster-mode app.
func (d *Daemon) newGroup(s *spec.App) *cluster.Group {
	return cluster.NewGroup(s.Name, s.SchedPolicy, d.logf)
}

// rollingReload replaces an app's workers one at a time: each replacement must be ready
// before its predecessor leaves the rotation, so N-1 workers always serve. The first failure
// stops the reload there; the workers not yet replaced keep serving. It returns what it did,
// process by process, for the action's answer. A call with processes to replace is one reload
// of the app in /metrics, failed if it stopped (docs/metrics.md §3.2). Loop only.
func (d *Daemon) rollingReload(a *app, procs []*supervisor.Process, next *spec.App) (_ []api.ReloadSummary, err error) {
	s := a.st.spec
	if len(procs) > 0 {
		defer func() { a.reloads.count(err) }()
	}
	var done []api.ReloadSummary
	for i, p := range procs {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		res, err := p.Reload(ctx, next)
		cancel()
		entry := api.ReloadSummary{ID: p.ID(), Name: s.Name, OldPID: res.OldPID, NewPID: res.NewPID,
			ReadyMS: res.ReadyIn.Milliseconds(), Started: res.Started}
		if err != nil {
			entry.Error = err.Error()
			left := len(procs) - i - 1
			return append(done, entry), fmt.Errorf("reload of %s stopped at process %d (%d not reloaded; old workers keep serving): %v", s.Name, p.ID(), left, err)
		}
		done = append(done, entry)
	}
	return done, nil
}

// requestSettle queues a settle op for a, unless one is queued already: called from process
// loops (their exit events), which must never wait for the app's loop.
func (d *Daemon) requestSettle(a *app) {
	if !a.settlePending.CompareAndSwap(false, true) {
		return
	}
	if a.enqueue(opSettle, func() error {
		a.settlePending.Store(false)
		d.settle(a)
		return nil
	}) == nil {
		a.settlePending.Store(false)
	}
}

// settle closes an app's ports once none of its processes runs or will run: the port belongs
// to the app, and stopping the app (or all its workers giving up) is when clients should be
// refused instead of queued. Loop only, so no operation can start a worker in between.
func (d *Daemon) settle(a *app) {
	if !a.st.ownsPort() {
		return
	}
	for _, p := range a.st.procs {
		switch p.Info().Status {
		case supervisor.StatusStopped, supervisor.StatusErrored:
		default:
			return
		}
	}
	a.st.closePorts()
}

// connRates turns the cluster counters into connections per second between samples.
type connRates struct {
	last map[int]uint64
	at   time.Time
	rate map[int]float64
}

// sampleClusters updates the connection rates of the cluster processes of the sample's listing
// (all); called by the sampler.
func (d *Daemon) sampleClusters(all []listed, stats groupStats) {
	now := time.Now()
	counts := map[int]uint64{}
	for _, l := range all {
		if g := l.view.group; g != nil {
			if st, ok := stats.of(g)[l.p.ID()]; ok {
				counts[l.p.ID()] = st.Connections
			}
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

// groupStats keeps each cluster group's statistics for one listing (or one sample): Group.Stats
// reads every worker of the group at once, so a listing reads it once per app, not once per
// process.
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
func (d *Daemon) clusterStats(g *cluster.Group, id int, stats groupStats) *api.WorkerStats {
	if g == nil {
		return nil
	}
	st, ok := stats.of(g)[id]
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
