package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// rollingReload replaces an app's workers one at a time: each replacement must be ready
// before its predecessor leaves the rotation, so N-1 workers always serve. The first failure
// stops the reload there; the workers not yet replaced keep serving. It returns what it did,
// process by process, for the action's answer. Loop only.
func (d *Daemon) rollingReload(a *app, procs []*supervisor.Process, next *spec.App) ([]api.ReloadSummary, error) {
	s := a.st.spec
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

// Scale sets an app's number of processes (PM2's `scale`): "N", "max", "+N" or "-N", relative
// to the count when the operation runs. Scaling up starts new processes with the lowest free
// instance numbers; scaling down stops the processes with the lowest ids (as PM2 does), each
// drained gracefully first.
func (d *Daemon) Scale(ctx context.Context, req api.ScaleRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	a := d.tbl.lookup(req.App)
	if a == nil {
		if id, err := strconv.Atoi(req.App); err == nil {
			a = d.tbl.ownerOf(id)
		}
	}
	if a == nil {
		return resp, notFoundError{target: req.App}
	}
	count, err := parseScaleCount(req.Count)
	if err != nil {
		return resp, badRequestError{err.Error()}
	}
	ids, err := callOp(ctx, a, opScale, func() ([]int, error) {
		want, err := count.target(len(a.st.procs))
		if err != nil {
			return nil, badRequestError{err.Error()}
		}
		if err := checkCount(a.name, want); err != nil {
			return nil, err
		}
		err = d.scaleTo(a, want)
		return procIDsList(a.st.procs), err
	})
	switch {
	case errors.As(err, new(notFoundError)), errors.As(err, new(badRequestError)):
		return resp, err
	case err != nil:
		resp.Errors = append(resp.Errors, err.Error())
	}
	resp.Processes = d.processesByID(ids, false)
	return resp, nil
}

// scaleTo brings a to want processes. Loop only.
func (d *Daemon) scaleTo(a *app, want int) error {
	s := a.st.spec
	current := len(a.st.procs)
	switch {
	case want < current:
		victims := slices.Clone(a.st.procs[:current-want])
		d.logf("scaling %s from %d to %d: stopping %s", s.Name, current, want, procIDs(victims))
		return d.deleteProcs(a, victims)
	case want > current:
		used := map[int]bool{}
		for _, p := range a.st.procs {
			used[p.Info().Instance] = true
		}
		var instances []int
		for n := 0; len(instances) < want-current; n++ {
			if !used[n] {
				instances = append(instances, n)
			}
		}
		added := d.addProcs(a, instances)
		a.publish()
		d.logf("scaling %s from %d to %d: starting %s", s.Name, current, want, procIDs(added))
		for _, p := range added {
			d.armCron(a, p)
		}
		return forEach(added, func(p *supervisor.Process) error { return p.Start() })
	}
	return nil
}

// scaleCount is a parsed scale count: "N", "max", "+N" or "-N".
type scaleCount struct {
	n        int
	max      bool
	relative bool // n is added to the current count (negative for "-N")
}

// parseScaleCount reads a scale count; its meaning depends on the count when the scale runs.
func parseScaleCount(count string) (scaleCount, error) {
	c := strings.TrimSpace(count)
	bad := fmt.Errorf("scale count %q: use N, max, +N or -N", count)
	switch {
	case c == "max" || c == "0":
		return scaleCount{max: true}, nil
	case strings.HasPrefix(c, "+") || strings.HasPrefix(c, "-"):
		n, err := strconv.Atoi(c[1:])
		if err != nil || n < 0 || strings.HasPrefix(c[1:], "+") || strings.HasPrefix(c[1:], "-") {
			return scaleCount{}, bad
		}
		if c[0] == '-' {
			n = -n
		}
		return scaleCount{n: n, relative: true}, nil
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return scaleCount{}, bad
	}
	return scaleCount{n: n}, nil
}

// target is the number of processes the count asks for, given the current one.
func (sc scaleCount) target(current int) (int, error) {
	want := sc.n
	switch {
	case sc.max:
		want = cpus.Usable()
	case sc.relative:
		want = current + sc.n
	}
	switch {
	case want >= 1:
		return want, nil
	case sc.relative:
		return 0, fmt.Errorf("an app keeps at least 1 process (it runs %d, and %+d would leave %d): use `corral stop` or `corral delete` to stop it", current, sc.n, want)
	}
	return 0, fmt.Errorf("an app keeps at least 1 process (asked for %d): use `corral stop` or `corral delete` to stop it", want)
}

// connRates turns the cluster counters into connections per second between samples.
type connRates struct {
	last map[int]uint64
	at   time.Time
	rate map[int]float64
}

// sampleClusters updates per-process connection rates; called by the sampler.
func (d *Daemon) sampleClusters() {
	var groups []*cluster.Group
	for _, a := range d.tbl.appsSorted() {
		if g := a.snapshot().group; g != nil {
			groups = append(groups, g)
		}
	}
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
