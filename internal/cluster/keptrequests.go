package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
)

// KeptRequests is a process slot's request statistics as the daemon hands them to the next
// one (its metrics history, docs/daemon-survival.md §4.1): the totals, and the last report of
// the run that reported last with which run that was. A run's reports are cumulative and the
// slot adds the difference from the run's previous report, so the next daemon gives that report
// back to the run (RestoreRequests, RequestCounter.Restore): its next report then adds only
// what it counted since, and the totals neither go back nor count anything twice.
type KeptRequests struct {
	Requests   uint64    `json:"requests"`
	ByClass    [5]uint64 `json:"by_class"`
	Latency    []uint64  `json:"latency"` // latencyBuckets counts
	LatencySum float64   `json:"latency_sum"`
	// Run is the run Last comes from: a cluster worker's NODE_UNIQUE_ID, a fork-mode
	// process's pid; 0 with no Last.
	Run  int             `json:"run,omitempty"`
	Last json.RawMessage `json:"last,omitempty"`
}

// runReport is a run's last report, to give back to it.
type runReport struct {
	run    int
	report *metricsReport
}

// check validates k, which comes from another process, and returns its last report (nil
// without one). The bounds are a report's, and the last report cannot exceed the totals it
// was added to.
func (k KeptRequests) check() (*metricsReport, error) {
	totals := metricsReport{Requests: k.Requests, ByClass: k.ByClass[:], Latency: k.Latency, LatencySum: k.LatencySum}
	if !totals.valid() {
		return nil, errors.New("kept request counts out of bounds")
	}
	if len(k.Last) == 0 {
		return nil, nil
	}
	if k.Run <= 0 {
		return nil, fmt.Errorf("kept last report of run %d: no run", k.Run)
	}
	last, err := parseReport(k.Last, nil)
	if err != nil {
		return nil, fmt.Errorf("kept last report of run %d: %w", k.Run, err)
	}
	if !totals.grewFrom(last) {
		return nil, errors.New("kept last report above the totals")
	}
	return last, nil
}

// kept returns s's totals. s.mu must not be held.
func (s *slotRequests) kept() KeptRequests {
	s.mu.Lock()
	defer s.mu.Unlock()
	return KeptRequests{Requests: s.requests, ByClass: s.byClass, Latency: append([]uint64(nil), s.latency[:]...), LatencySum: s.latencySum}
}

// restore sets s's totals (checked).
func (s *slotRequests) restore(k KeptRequests) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.byClass, s.latencySum = k.Requests, k.ByClass, k.LatencySum
	copy(s.latency[:], k.Latency)
}

// withLast adds run's last report r to k (nil: none).
func (k KeptRequests) withLast(run int, r *metricsReport) KeptRequests {
	if r == nil || run <= 0 {
		return k
	}
	if b, err := json.Marshal(r); err == nil {
		k.Run, k.Last = run, b
	}
	return k
}

// KeptRequests returns each slot's request statistics for the next daemon, with the last
// report of the worker it serves through (a reload's other run, if any, starts again from
// its next report).
func (g *Group) KeptRequests() map[int]KeptRequests {
	g.mu.Lock()
	slots := maps.Clone(g.slots)
	g.mu.Unlock()
	out := make(map[int]KeptRequests, len(slots))
	for id, st := range slots {
		w := st.serving.Load()
		if w == nil {
			out[id] = st.req.kept()
			continue
		}
		w.mu.Lock() // onMetrics adds under it: the report and the totals go together
		out[id] = st.req.kept().withLast(w.id, w.lastReport)
		w.mu.Unlock()
	}
	return out
}

// RestoreRequests gives slot procID the request statistics an earlier daemon kept for it
// (KeptRequests), and its last report to the worker it names once AdoptWorker brings it back.
// Called before the slot's workers are adopted. A k that fails its checks is refused whole:
// the slot then counts from its runs' next reports, as a new daemon does.
func (g *Group) RestoreRequests(procID int, k KeptRequests) error {
	last, err := k.check()
	if err != nil {
		return err
	}
	g.mu.Lock()
	st := g.slotLocked(procID)
	if last != nil {
		st.resumeFrom = &runReport{run: k.Run, report: last}
	}
	g.mu.Unlock()
	st.req.restore(k)
	return nil
}

// Kept returns the counter's statistics for the next daemon (KeptRequests).
func (c *RequestCounter) Kept() KeptRequests {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.req.kept().withLast(c.pid, c.last)
}

// Restore gives the counter what an earlier daemon kept of it (Kept), checked first. The run
// it names, if it is still the one reporting, goes on from its last report.
func (c *RequestCounter) Restore(k KeptRequests) error {
	last, err := k.check()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.req.restore(k)
	if last != nil {
		c.pid, c.last = k.Run, last
	}
	return nil
}
