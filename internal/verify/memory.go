package verify

import (
	"fmt"
	"strings"
)

// The memory check: each worker's RSS, sampled through the run from the steady load on (after
// the warm-up load: a fresh load makes a runtime grow its heap once), fitted with a
// least-squares line; its slope is the growth per minute. Only the workers that served the
// steady load are judged, over their whole life in the run: a worker started by the reload is
// still warming up.

// minMemorySpan is the shortest stretch of samples a slope is fitted to.
const minMemorySpan = 1.5 // seconds

// slope fits v = a + b·t by least squares and returns b (per second).
func slope(pts []Point) float64 {
	n := float64(len(pts))
	if n < 2 {
		return 0
	}
	var st, sv, stt, stv float64
	for _, p := range pts {
		st += p.T
		sv += p.V
		stt += p.T * p.T
		stv += p.T * p.V
	}
	d := n*stt - st*st
	if d == 0 {
		return 0
	}
	return (n*stv - st*sv) / d
}

func (x *run) checkMemory() {
	c := x.rep.check(CheckMemory)
	limit := float64(x.o.MemorySlope)
	c.Threshold = fmt.Sprintf("each worker grows less than %s/min after warm-up", mib(limit))
	if x.steadyPIDs == nil {
		c.Reason = "the steady load did not run"
		return
	}
	warm := x.steadyFrom
	by := map[int][]Point{}
	for _, s := range x.mem.samples() {
		if pid, ok := x.steadyPIDs[s.id]; ok && pid == s.pid && s.t >= warm {
			by[s.id] = append(by[s.id], Point{T: s.t, V: float64(s.rss)})
		}
	}
	worst, worstID := 0.0, -1
	var bad []string
	for _, id := range sortedIDs(x.steadyPIDs) {
		pts := by[id]
		if len(pts) < 4 || pts[len(pts)-1].T-pts[0].T < minMemorySpan {
			c.Workers = append(c.Workers, Worker{ID: id, PID: x.steadyPIDs[id], Figure: "too few samples after warm-up", OK: true})
			continue
		}
		perMin := slope(pts) * 60
		ok := perMin < limit
		fig := fmt.Sprintf("%s/min (RSS %s → %s over %s)", mib(perMin), mib(pts[0].V), mib(pts[len(pts)-1].V), secs(pts[len(pts)-1].T-pts[0].T))
		c.Workers = append(c.Workers, Worker{ID: id, PID: x.steadyPIDs[id], Figure: fig, OK: ok})
		if worstID < 0 || perMin > worst {
			worst, worstID = perMin, id
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("worker %d (pid %d) grows %s/min", id, x.steadyPIDs[id], mib(perMin)))
		}
	}
	if worstID < 0 {
		c.Reason = fmt.Sprintf("too few memory samples after warm-up: run a longer load (--duration, now %s)", x.o.Duration)
		return
	}
	c.Figure = fmt.Sprintf("largest growth %s/min (worker %d)", mib(worst), worstID)
	c.Values = map[string]float64{"max_slope_bytes_per_min": worst}
	if len(bad) > 0 {
		c.Status = Fail
		c.Reason = strings.Join(bad, "; ") + fmt.Sprintf(" under load, more than %s/min: memory that keeps growing is a leak (max_memory_restart only hides it)", mib(limit))
		return
	}
	c.Status = Pass
}
