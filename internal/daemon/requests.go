package daemon

import (
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
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
			EventLoopP50MS: g.LoopP50MS,
			EventLoopP99MS: g.LoopP99MS,
			EventLoopMaxMS: g.LoopMaxMS,
			HeapUsed:       g.HeapUsed,
			HeapTotal:      g.HeapTotal,
		}
		if g.HandlesKnown {
			n := g.Handles
			rt.Handles = &n
		}
		out.Runtime = rt
	}
}
