package verify

import (
	"fmt"
	"strings"
)

// The memory check: each worker's RSS, sampled through the run from the steady load on (after
// the warm-up load: a fresh load makes a runtime grow its heap once), fitted with a
// least-squares line; its slope is the growth per minute. A leak grows all along, while a
// runtime settling grows in steps that stop: the figure judged is the sustained growth, the
// lower of the slopes of the first and the second half of the samples. Only the workers that served the
// steady load are judged, over their whole life in the run: a worker started by the reload is
// still warming up.

// minMemorySpan is the shortest stretch of samples a slope is fitted to.
const minMemorySpan = 1.5 // seconds

// sustained is the lower of the slopes of the two halves of pts (the whole when too few).
func sustained(pts []Point) float64 {
	if len(pts) < 8 {
		return slope(pts)
	}
	h := len(pts) / 2
	return min(slope(pts[:h]), slope(pts[h:]))
}

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
	c.Threshold = fmt.Sprintf("each worker grows less than %s/min after warm-up, sustained", mib(limit))
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
	span := 0.0
	var bad []string
	for _, id := range sortedIDs(x.steadyPIDs) {
		pts := by[id]
		if len(pts) < 4 || pts[len(pts)-1].T-pts[0].T < minMemorySpan {
			c.Workers = append(c.Workers, Worker{ID: id, PID: x.steadyPIDs[id], Figure: "too few samples after warm-up", OK: true})
			continue
		}
		span = max(span, pts[len(pts)-1].T-pts[0].T)
		perMin := sustained(pts) * 60
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
		if span < 60 && worst < 4*limit {
			c.Reason += fmt.Sprintf("; judged over %s only, which also catches a runtime still settling: run with --duration 2m or more before calling it a leak", secs(span))
		}
		return
	}
	c.Status = Pass
}
