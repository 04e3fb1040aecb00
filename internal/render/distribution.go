package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/api"
)

// Distribution renders how a cluster app's connections, and the requests they carry, spread
// over its workers: what PM2 only shows in its paid PM2 Plus ("request distribution
// statistics"). Requests come from corral's preload in each worker (one keep-alive connection
// carries many); "-" where a worker reported none. Processes without cluster statistics are
// left out; the result is empty when none has any.
func Distribution(procs []api.Process, o Options) string {
	var rows [][]cell
	var total, totalReqs uint64
	for _, p := range procs {
		if p.Cluster != nil {
			total += p.Cluster.Connections
			totalReqs += p.Cluster.Requests
		}
	}
	for _, p := range procs {
		c := p.Cluster
		if c == nil {
			continue
		}
		share := "-"
		if total > 0 {
			share = fmt.Sprintf("%.1f%%", 100*float64(c.Connections)/float64(total))
		}
		reqs, reqShare, reqRate, p50, p99, fivexx := "-", "-", "-", "-", "-", "-"
		if c.Requests > 0 || c.Runtime != nil {
			reqs = strconv.FormatUint(c.Requests, 10)
			reqRate = fmt.Sprintf("%.1f", c.ReqPerSec)
			fivexx = strconv.FormatUint(c.Requests5xx, 10)
			if totalReqs > 0 {
				reqShare = fmt.Sprintf("%.1f%%", 100*float64(c.Requests)/float64(totalReqs))
			}
			if c.Requests > 0 {
				p50, p99 = formatMS(c.LatencyP50MS), formatMS(c.LatencyP99MS)
			}
		}
		listening := strings.Join(c.Listening, " ")
		if listening == "" {
			listening = "-"
		}
		rows = append(rows, []cell{
			{text: strconv.Itoa(p.ID)},
			{text: p.Name},
			{text: strconv.Itoa(p.PID)},
			{text: strconv.Itoa(p.Instance)},
			{text: listening},
			{text: strconv.FormatUint(c.Connections, 10)},
			{text: share},
			{text: fmt.Sprintf("%.1f", c.ConnPerSec)},
			{text: reqs},
			{text: reqShare},
			{text: reqRate},
			{text: p50},
			{text: p99},
			{text: fivexx},
			{text: strconv.FormatUint(c.Refused, 10)},
			{text: strconv.Itoa(c.InFlight)},
		})
	}
	if len(rows) == 0 {
		return ""
	}
	header := []string{"id", "name", "pid", "instance", "listening", "connections", "share", "conn/s", "requests", "req share", "req/s", "p50", "p99", "5xx", "refused", "in flight"}
	title := " Connection distribution (handed off by corral, round-robin; requests counted in the workers)\n"
	for _, p := range procs {
		if p.Cluster == nil {
			continue
		}
		switch p.App.SchedPolicy {
		case "shared":
			title = " Connection distribution (sched_policy shared: the kernel picks the worker, corral hands off nothing)\n"
		case "reuseport":
			title = " Request distribution (sched_policy reuseport: each worker accepts on its own socket, the kernel spreads connections; requests counted in the workers, connections only those corral handed over)\n"
		}
	}
	return title + box(o, header, rows)
}

// formatMS renders a latency estimate: tenths below 10 ms, whole milliseconds above.
func formatMS(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}
