package daemon

import (
	"sync"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/nodeipc"
)

// addRequests copies a slot's request statistics (counted by the workers' preload,
// docs/node-cluster-protocol.md §10.1) into its API view. The rate comes from the workers'
// own reports, which arrive at most once a second while requests are answered.
func addRequests(out *api.WorkerStats, rs cluster.RequestStats) {
	if out == nil {
		return
	}
	out.Requests = rs.Requests
	out.RequestsByClass = rs.ByClass
	out.Requests5xx = rs.ByClass[4]
	out.ReqPerSec = rs.PerSec
	out.LatencyP50MS = rs.LatencyQuantileMS(0.50)
	out.LatencyP99MS = rs.LatencyQuantileMS(0.99)
	if g := rs.Runtime; g.Known {
		rt := &api.WorkerRuntime{
			HeapUsed:  g.HeapUsed,
			HeapTotal: g.HeapTotal,
		}
		if g.LoopKnown {
			p50, p99, pmax := g.LoopP50MS, g.LoopP99MS, g.LoopMaxMS
			rt.EventLoopP50MS, rt.EventLoopP99MS, rt.EventLoopMaxMS = &p50, &p99, &pmax
		}
		if g.HandlesKnown {
			n := g.Handles
			rt.Handles = &n
		}
		out.Runtime = rt
	}
}

// forkRequests are the request statistics of processes that are no cluster worker (fork-mode
// Node processes with corral's preload), by process id. Reports arrive on the runs' IPC reader
// goroutines.
type forkRequests struct {
	mu   sync.Mutex
	byID map[int]*cluster.RequestCounter
}

// counter returns process id's counter, created on first use.
func (f *forkRequests) counter(id int) *cluster.RequestCounter {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byID[id]
	if c == nil {
		if f.byID == nil {
			f.byID = map[int]*cluster.RequestCounter{}
		}
		c = &cluster.RequestCounter{}
		f.byID[id] = c
	}
	return c
}

// stats returns process id's statistics, gauges only from its current run pid; false when it
// never reported.
func (f *forkRequests) stats(id, pid int) (cluster.RequestStats, bool) {
	f.mu.Lock()
	c := f.byID[id]
	f.mu.Unlock()
	if c == nil {
		return cluster.RequestStats{}, false
	}
	return c.Stats(pid), true
}

// kept returns every counter's statistics for the next daemon (history.go).
func (f *forkRequests) kept() map[int]cluster.KeptRequests {
	f.mu.Lock()
	counters := make(map[int]*cluster.RequestCounter, len(f.byID))
	for id, c := range f.byID {
		counters[id] = c
	}
	f.mu.Unlock()
	if len(counters) == 0 {
		return nil
	}
	out := make(map[int]cluster.KeptRequests, len(counters))
	for id, c := range counters {
		out[id] = c.Kept()
	}
	return out
}

// retain forgets the processes that are no longer listed.
func (f *forkRequests) retain(listed map[int]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.byID {
		if !listed[id] {
			delete(f.byID, id)
		}
	}
}

// onInternal takes the internal messages of fork-mode runs: the preload's request metrics.
func (d *Daemon) onInternal(id, pid int, m nodeipc.Message) {
	if m.Cmd != cluster.MetricsCmd {
		return
	}
	if err := d.forkReq.counter(id).Report(pid, m.Raw); err != nil {
		d.logf("process %d (pid %d): %v", id, pid, err)
	}
}
