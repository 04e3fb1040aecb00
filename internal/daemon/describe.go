package daemon

import (
	"sort"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/secrets"
	"github.com/corral-pm/corral/internal/supervisor"
)

// listed is a process with its app and what the app's view says about it, for one listing.
type listed struct {
	p    *supervisor.Process
	app  *app
	view *appView
}

// listing collects every process, by id, from the apps' published views: it never waits for
// an app's operation to finish.
func (d *Daemon) listing() []listed {
	var out []listed
	for _, a := range d.tbl.appsSorted() {
		v := a.snapshot()
		for _, p := range v.procs {
			out = append(out, listed{p: p, app: a, view: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p.ID() < out[j].p.ID() })
	return out
}

// Processes lists every process, by id. Secrets are masked unless reveal.
func (d *Daemon) Processes(reveal bool) []api.Process {
	return d.describeAll(d.listing(), reveal, groupStats{})
}

// describeAll describes every process of a listing (the sampler's, with the cluster
// statistics it read).
func (d *Daemon) describeAll(all []listed, reveal bool, stats groupStats) []api.Process {
	out := make([]api.Process, 0, len(all))
	for _, l := range all {
		out = append(out, d.describe(l, reveal, stats))
	}
	return out
}

// processesByID describes the given processes that still exist, by id.
func (d *Daemon) processesByID(ids []int, reveal bool) []api.Process {
	want := map[int]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := make([]api.Process, 0, len(want))
	stats := groupStats{}
	for _, l := range d.listing() {
		if want[l.p.ID()] {
			out = append(out, d.describe(l, reveal, stats))
		}
	}
	return out
}

// describe builds the API view of a process. stats holds the cluster statistics already read
// for this listing.
func (d *Daemon) describe(l listed, reveal bool, stats groupStats) api.Process {
	info := l.p.Info()
	s := info.App.Clone()
	if !reveal {
		s.Env = secrets.MaskEnv(s.Env)
		s.BaseEnv = secrets.MaskEnv(s.BaseEnv)
		s.Alerts = maskAlerts(s.Alerts)
	}
	out := api.Process{
		ID:                 info.ID,
		Name:               s.Name,
		Namespace:          s.Namespace,
		Instance:           info.Instance,
		PID:                info.PID,
		Status:             string(info.Status),
		Ready:              info.Ready,
		Restarts:           info.Restarts,
		Unstable:           info.Unstable,
		StartedAt:          info.StartedAt,
		CreatedAt:          info.CreatedAt,
		Exited:             info.Exited,
		ExitCode:           info.ExitCode,
		ExitSignal:         info.ExitSignal,
		PrevRestartDelayMS: info.PrevRestartDelay.Milliseconds(),
		LastError:          info.LastError,
		LogError:           info.LogError,
		LostLogLines:       info.LostLogLines,
		LostLogBytes:       info.LostLogBytes,
		OutLog:             info.Files.Out,
		ErrLog:             info.Files.Err,
		CombinedLog:        info.Files.Combined,
		PidFile:            info.Files.Pid,
		Version:            l.view.version,
		Username:           d.username,
		Watching:           len(s.Watch) > 0,
		App:                s,
		Cluster:            d.clusterStats(l.view.group, info.ID, stats),
	}
	if g := l.view.group; g != nil {
		if st, ok := stats.of(g)[info.ID]; ok {
			addRequests(out.Cluster, st.Requests)
		}
	} else if rs, ok := d.forkReq.stats(info.ID, info.PID); ok {
		out.Requests = &api.WorkerStats{}
		addRequests(out.Requests, rs)
	}
	if info.PID > 0 {
		u := d.usageOf(info.ID)
		out.CPU, out.Memory = u.CPU, u.RSS
		out.MemoryLimit = d.containerMemory()
	}
	return out
}

// Env returns the environment a process runs with (masked unless reveal).
func (d *Daemon) Env(target string, reveal bool) ([]api.EnvResponse, error) {
	sel, err := d.tbl.resolve([]string{target})
	if err != nil {
		return nil, err
	}
	var out []api.EnvResponse
	for _, p := range sel.procs() {
		info := p.Info()
		env := supervisor.RunEnv(info.App, info.ID, info.Instance)
		if !reveal {
			env = secrets.MaskEnv(env)
		}
		out = append(out, api.EnvResponse{ID: info.ID, Env: env})
	}
	return out, nil
}
