package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/api"
)

// Distribution renders how a cluster app's connections spread over its workers: what PM2 only
// shows in its paid PM2 Plus ("request distribution statistics"). Processes without cluster
// statistics are left out; the result is empty when none has any.
func Distribution(procs []api.Process, o Options) string {
	var rows [][]cell
	var total uint64
	for _, p := range procs {
		if p.Cluster != nil {
			total += p.Cluster.Connections
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
		listening := strings.Join(c.Listening, " ")
		if listening == "" {
			listening = "-"
		}
		rows = append(rows, []cell{
			{text: strconv.Itoa(p.ID)},
			{text: p.Name},
			{text: strconv.Itoa(p.PID)},
			{text: strconv.Itoa(c.WorkerID)},
			{text: listening},
			{text: strconv.FormatUint(c.Connections, 10)},
			{text: share},
			{text: fmt.Sprintf("%.1f", c.ConnPerSec)},
			{text: strconv.FormatUint(c.Refused, 10)},
			{text: strconv.Itoa(c.InFlight)},
		})
	}
	if len(rows) == 0 {
		return ""
	}
	header := []string{"id", "name", "pid", "worker", "listening", "connections", "share", "conn/s", "refused", "in flight"}
	title := " Connection distribution (handed off by corral, round-robin)\n"
	for _, p := range procs {
		if p.Cluster != nil && p.App.SchedPolicy == "shared" {
			title = " Connection distribution (sched_policy shared: the kernel picks the worker, corral hands off nothing)\n"
		}
	}
	return title + box(o, header, rows)
}
