package daemon

import (
	"sort"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/secrets"
	"github.com/corral-pm/corral/internal/supervisor"
)

// Processes lists every process, by id. Secrets are masked unless reveal.
func (d *Daemon) Processes(reveal bool) []api.Process {
	d.tbl.mu.Lock()
	defer d.tbl.mu.Unlock()
	out := make([]api.Process, 0, len(d.tbl.procs))
	stats := groupStats{}
	for _, p := range d.tbl.allProcs() {
		out = append(out, d.describeLocked(p, reveal, stats))
	}
	return out
}

// processesByID describes the given processes that still exist, by id.
func (d *Daemon) processesByID(ids []int, reveal bool) []api.Process {
	sort.Ints(ids)
	d.tbl.mu.Lock()
	defer d.tbl.mu.Unlock()
	out := make([]api.Process, 0, len(ids))
	seen := map[int]bool{}
	stats := groupStats{}
	for _, id := range ids {
		if p, ok := d.tbl.procs[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, d.describeLocked(p, reveal, stats))
		}
	}
	return out
}

// describeLocked builds the API view of p; the table lock is held. stats holds the cluster
// statistics already read for this listing.
func (d *Daemon) describeLocked(p *supervisor.Process, reveal bool, stats groupStats) api.Process {
	info := p.Info()
	a := d.tbl.owner[info.ID]
	s := info.App.Clone()
	if !reveal {
		s.Env = secrets.MaskEnv(s.Env)
		s.BaseEnv = secrets.MaskEnv(s.BaseEnv)
	}
	out := api.Process{
		ID:                 info.ID,
		Name:               s.Name,
		Namespace:          s.Namespace,
		Instance:           info.Instance,
		PID:                info.PID,
		Status:             string(info.Status),
		Restarts:           info.Restarts,
		Unstable:           info.Unstable,
		StartedAt:          info.StartedAt,
		CreatedAt:          info.CreatedAt,
		Exited:             info.Exited,
		ExitCode:           info.ExitCode,
		ExitSignal:         info.ExitSignal,
		PrevRestartDelayMS: info.PrevRestartDelay.Milliseconds(),
		LastError:          info.LastError,
		OutLog:             info.Files.Out,
		ErrLog:             info.Files.Err,
		CombinedLog:        info.Files.Combined,
		PidFile:            info.Files.Pid,
		Version:            "N/A",
		Username:           d.username,
		Watching:           len(s.Watch) > 0,
		App:                s,
	}
	if a != nil {
		out.Version = a.version
		out.Cluster = d.clusterStats(a, info.ID, stats)
	}
	if info.PID > 0 {
		u := d.usageOf(info.ID)
		out.CPU, out.Memory = u.CPU, u.RSS
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
	for _, a := range sel.apps {
		for _, p := range sel.procs[a] {
			info := p.Info()
			env := supervisor.RunEnv(info.App, info.ID, info.Instance)
			if !reveal {
				env = secrets.MaskEnv(env)
			}
			out = append(out, api.EnvResponse{ID: info.ID, Env: env})
		}
	}
	return out, nil
}
