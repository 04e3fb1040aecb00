package cluster

import (
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"
)

// MetricsCmd is the internal message corral's preload sends from every cluster worker with
// its request counters and runtime gauges (docs/node-cluster-protocol.md §10.1). Its cmd starts
// with "NODE_", so Node never shows it to the app's process.on('message').
const MetricsCmd = "NODE_CORRAL_METRICS"

// LatencyBucketsMS are the upper bounds, in milliseconds, of the latency histogram the preload
// keeps; the histogram has one more bucket, for everything slower (+Inf). The preload has the
// same list (worker_preload.js); a report with another number of buckets is ignored.
var LatencyBucketsMS = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}

// latencyBuckets is the number of histogram buckets in a report, +Inf included.
const latencyBuckets = 13

// maxCounter bounds every counter in a report: the message comes from the app's process, and
// a value past 2^53 cannot even come from a JavaScript number counting one by one.
const maxCounter = 1 << 53

// rateStaleAfter: a worker reports at most once a second whenever its counters change, so a
// slot that has not reported new requests for this long is serving none.
const rateStaleAfter = 2500 * time.Millisecond

// metricsReport is one NODE_CORRAL_METRICS message. Counters are cumulative since the worker
// started, so a lost message loses nothing: the next one carries it.
type metricsReport struct {
	Requests   uint64    `json:"requests"`
	ByClass    []uint64  `json:"byClass"`    // 1xx..5xx, counted when the response finished
	Latency    []uint64  `json:"latency"`    // bucket counts, LatencyBucketsMS then +Inf
	LatencySum float64   `json:"latencySum"` // ms
	LoopDelay  []float64 `json:"loopDelay"`  // p50, p99, max in ms since the last report
	HeapUsed   uint64    `json:"heapUsed"`
	HeapTotal  uint64    `json:"heapTotal"`
	Handles    *uint64   `json:"handles"` // absent when the runtime has no cheap count
}

// valid is the bound on what is accepted: anything absurd drops the whole report (negative or
// fractional counters already fail to decode into unsigned integers).
func (r *metricsReport) valid() bool {
	if len(r.ByClass) != 5 || len(r.Latency) != latencyBuckets || r.Requests > maxCounter {
		return false
	}
	for _, n := range append(append([]uint64(nil), r.ByClass...), r.Latency...) {
		if n > maxCounter {
			return false
		}
	}
	if math.IsNaN(r.LatencySum) || math.IsInf(r.LatencySum, 0) || r.LatencySum < 0 || r.LatencySum > maxCounter {
		return false
	}
	if r.LoopDelay != nil {
		if len(r.LoopDelay) != 3 {
			return false
		}
		for _, v := range r.LoopDelay {
			if math.IsNaN(v) || v < 0 || v > 1e9 {
				return false
			}
		}
	}
	if r.HeapUsed > maxCounter || r.HeapTotal > maxCounter || (r.Handles != nil && *r.Handles > maxCounter) {
		return false
	}
	return true
}

// grewFrom reports whether every counter of r is at least the one of prev: counters of one run
// only grow, and a report that goes back is not believed.
func (r *metricsReport) grewFrom(prev *metricsReport) bool {
	if r.Requests < prev.Requests || r.LatencySum < prev.LatencySum {
		return false
	}
	for i := range r.ByClass {
		if r.ByClass[i] < prev.ByClass[i] {
			return false
		}
	}
	for i := range r.Latency {
		if r.Latency[i] < prev.Latency[i] {
			return false
		}
	}
	return true
}

// zeroReport is where a run starts from: a new run has answered nothing yet.
func zeroReport() *metricsReport {
	return &metricsReport{ByClass: make([]uint64, 5), Latency: make([]uint64, latencyBuckets)}
}

// slotRequests are a process slot's request totals across its runs, and the gauges of the run
// that reported last.
type slotRequests struct {
	mu         sync.Mutex
	requests   uint64
	byClass    [5]uint64
	latency    [latencyBuckets]uint64
	latencySum float64

	gauges     RuntimeGauges
	gaugesFrom any // the run the gauges are from (*worker, or a pid); cleared when it ends

	// Requests per second, between reports that carried new requests.
	rateMark   uint64
	rateMarkAt time.Time
	rate       float64
	grewAt     time.Time
}

// RuntimeGauges describe the worker's runtime, from its last report.
type RuntimeGauges struct {
	Known        bool    // a report arrived from the current run
	LoopKnown    bool    // it had the event-loop delay (a Go worker has none)
	LoopP50MS    float64 // event-loop delay since the previous report
	LoopP99MS    float64
	LoopMaxMS    float64
	HeapUsed     uint64
	HeapTotal    uint64
	Handles      int
	HandlesKnown bool
}

// errMalformed and errWentBack are why a report is ignored.
var (
	errMalformed = errors.New("ignored a malformed " + MetricsCmd + " message")
	errWentBack  = errors.New("ignored a " + MetricsCmd + " message whose counters went back")
)

// parseReport decodes a report and checks it against the run's previous one (nil before the
// first).
func parseReport(raw json.RawMessage, prev *metricsReport) (*metricsReport, error) {
	var r metricsReport
	if err := json.Unmarshal(raw, &r); err != nil || !r.valid() {
		return nil, errMalformed
	}
	if prev == nil {
		prev = zeroReport()
	}
	if !r.grewFrom(prev) {
		return nil, errWentBack
	}
	return &r, nil
}

// onMetrics takes a worker's report: the difference from the run's previous report is added to
// the slot, so the slot's totals keep growing across restarts and reloads.
func (w *worker) onMetrics(raw json.RawMessage) {
	w.mu.Lock()
	prev := w.lastReport
	r, err := parseReport(raw, prev)
	if err != nil {
		w.mu.Unlock()
		w.g.logThrottled("%s worker %d: %v", w.g.app, w.id, err)
		return
	}
	w.lastReport = r
	// Added under w.mu, so that the report kept for the next daemon (KeptRequests) and the
	// totals always go together.
	w.stats.req.add(prev, r, w, time.Now())
	w.mu.Unlock()
}

// add adds what a run counted between its reports prev (nil: none yet) and r to the slot, and
// takes r's gauges as those of run from.
func (s *slotRequests) add(prev, r *metricsReport, from any, now time.Time) {
	if prev == nil {
		prev = zeroReport()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	added := r.Requests - prev.Requests
	s.requests += added
	for i := range s.byClass {
		s.byClass[i] += r.ByClass[i] - prev.ByClass[i]
	}
	for i := range s.latency {
		s.latency[i] += r.Latency[i] - prev.Latency[i]
	}
	s.latencySum += r.LatencySum - prev.LatencySum
	if added > 0 {
		if !s.rateMarkAt.IsZero() && s.requests >= s.rateMark {
			if elapsed := now.Sub(s.rateMarkAt).Seconds(); elapsed > 0 {
				s.rate = float64(s.requests-s.rateMark) / elapsed
			}
		}
		s.rateMark, s.rateMarkAt, s.grewAt = s.requests, now, now
	} else if s.rateMarkAt.IsZero() || now.Sub(s.grewAt) > rateStaleAfter {
		s.rateMark, s.rateMarkAt = s.requests, now
	}
	g := RuntimeGauges{Known: true, HeapUsed: r.HeapUsed, HeapTotal: r.HeapTotal}
	if len(r.LoopDelay) == 3 {
		g.LoopP50MS, g.LoopP99MS, g.LoopMaxMS = r.LoopDelay[0], r.LoopDelay[1], r.LoopDelay[2]
		g.LoopKnown = true
	}
	if r.Handles != nil {
		g.Handles, g.HandlesKnown = int(*r.Handles), true
	}
	s.gauges, s.gaugesFrom = g, from
}

// forgetGauges drops the gauges of a run that ended: they describe a process that is gone.
func (w *worker) forgetGauges() {
	s := &w.stats.req
	s.mu.Lock()
	if s.gaugesFrom == any(w) {
		s.gauges, s.gaugesFrom = RuntimeGauges{}, nil
	}
	s.mu.Unlock()
}

// RequestCounter keeps the request statistics of a process slot that is not a cluster worker:
// a fork-mode Node process, whose preload sends the same reports over its IPC channel. Runs
// are told apart by their pid: a report from another pid starts a new run from zero.
type RequestCounter struct {
	mu       sync.Mutex
	pid      int
	last     *metricsReport
	loggedAt time.Time
	req      slotRequests
}

// Report takes a report the run with that pid sent. It returns why a report was ignored at
// most once a second (nil otherwise), for the caller to log: the message comes from the app's
// process, which could send a flood of them.
func (c *RequestCounter) Report(pid int, raw json.RawMessage) error {
	c.mu.Lock()
	if pid != c.pid {
		c.pid, c.last = pid, nil
	}
	prev := c.last
	r, err := parseReport(raw, prev)
	if err != nil {
		now := time.Now()
		if now.Sub(c.loggedAt) < time.Second {
			err = nil
		} else {
			c.loggedAt = now
		}
		c.mu.Unlock()
		return err
	}
	c.last = r
	// Under c.mu, so that two reports cannot be added out of order.
	c.req.add(prev, r, pid, time.Now())
	c.mu.Unlock()
	return nil
}

// Stats returns the slot's totals; the gauges only when they come from pid, the current run.
func (c *RequestCounter) Stats(pid int) RequestStats {
	rs := c.req.snapshot(time.Now())
	c.req.mu.Lock()
	from := c.req.gaugesFrom
	c.req.mu.Unlock()
	if pid <= 0 || from != any(pid) {
		rs.Runtime = RuntimeGauges{}
	}
	return rs
}

// RequestStats are a process slot's requests, since the slot was created.
type RequestStats struct {
	Requests     uint64
	ByClass      [5]uint64 // 1xx..5xx
	Latency      [latencyBuckets]uint64
	LatencySumMS float64
	PerSec       float64 // between the last two reports with new requests; 0 when idle
	Runtime      RuntimeGauges
}

func (s *slotRequests) snapshot(now time.Time) RequestStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := RequestStats{Requests: s.requests, ByClass: s.byClass, Latency: s.latency, LatencySumMS: s.latencySum, Runtime: s.gauges}
	if !s.grewAt.IsZero() && now.Sub(s.grewAt) <= rateStaleAfter {
		out.PerSec = s.rate
	}
	return out
}

// LatencyQuantileMS estimates the q-th quantile (0..1) of the latency histogram, interpolating
// linearly inside the bucket that holds it, as Prometheus's histogram_quantile does. It is 0
// without requests; in the +Inf bucket it is the largest finite bound.
func (rs RequestStats) LatencyQuantileMS(q float64) float64 {
	var total uint64
	for _, n := range rs.Latency {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen uint64
	for i, n := range rs.Latency {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i >= len(LatencyBucketsMS) {
			return LatencyBucketsMS[len(LatencyBucketsMS)-1]
		}
		lower := 0.0
		if i > 0 {
			lower = LatencyBucketsMS[i-1]
		}
		return lower + (LatencyBucketsMS[i]-lower)*(rank-float64(seen))/float64(n)
	}
	return LatencyBucketsMS[len(LatencyBucketsMS)-1]
}
