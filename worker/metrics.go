package worker

import (
	"os"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request metrics: what corral's Node preload reports from Node workers
// (docs/node-cluster-protocol.md §10.1), for the requests a cluster worker serves through
// ServeHTTP: counted by status class, with a latency histogram, and sent to the daemon as the
// same internal message, NODE_CORRAL_METRICS, at most once a second while they change (the
// runtime gauges alone at most every 5 s). CORRAL_REQUEST_METRICS=0 turns the counting off.
// Outside corral nothing is counted.

const metricsCmd = "NODE_CORRAL_METRICS"

// latencyBoundsNS are the histogram's upper bounds, the daemon's (internal/cluster
// LatencyBucketsMS) in nanoseconds; one more bucket takes anything slower.
var latencyBoundsNS = [...]int64{
	1e6, 2e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6, 1000e6, 2500e6, 5000e6,
}

// reqMetrics are a worker's cumulative counters. Every request touches only atomics: no lock,
// no allocation.
type reqMetrics struct {
	requests     atomic.Uint64
	byClass      [5]atomic.Uint64
	latency      [len(latencyBoundsNS) + 1]atomic.Uint64
	latencySumNS atomic.Uint64
}

// epoch is where the request clock starts: time.Since(epoch) reads only the monotonic clock,
// where time.Now also reads the wall clock (measured on the 2-core VM: about 80 ns against 150
// to 180 ns a read, and a request takes two).
var epoch = time.Now()

// begin counts a request when its handler starts, and returns when it started.
func (m *reqMetrics) begin() time.Duration {
	m.requests.Add(1)
	return time.Since(epoch)
}

// finish counts a response that ended with status (1xx..5xx), begun at start. A response
// whose handler did not return (it panicked) or whose connection was hijacked is counted as a
// request only, as the preload counts a Node response that never finished.
func (m *reqMetrics) finish(start time.Duration, status int) {
	ns := int64(time.Since(epoch) - start)
	if ns < 0 {
		ns = 0
	}
	if cls := status / 100; cls >= 1 && cls <= 5 {
		m.byClass[cls-1].Add(1)
	}
	i := 0
	for i < len(latencyBoundsNS) && ns > latencyBoundsNS[i] {
		i++
	}
	m.latency[i].Add(1)
	m.latencySumNS.Add(uint64(ns))
}

// metricsReport is the message, with the preload's field names. Counters are cumulative: a
// lost report loses nothing. There is no event loop to measure (loopDelay absent: unknown) nor
// a count of Node's handles.
type metricsReport struct {
	Cmd        string    `json:"cmd"`
	Requests   uint64    `json:"requests"`
	ByClass    [5]uint64 `json:"byClass"`
	Latency    []uint64  `json:"latency"`
	LatencySum float64   `json:"latencySum"` // ms
	HeapUsed   uint64    `json:"heapUsed"`
	HeapTotal  uint64    `json:"heapTotal"`
}

// snapshot reads the counters. Each only grows, which is all the daemon checks; the finished
// responses are read before the requests, so that a report never has more finished than begun.
func (m *reqMetrics) snapshot() metricsReport {
	r := metricsReport{Cmd: metricsCmd, Latency: make([]uint64, len(m.latency))}
	for i := range m.latency {
		r.Latency[i] = m.latency[i].Load()
	}
	for i := range m.byClass {
		r.ByClass[i] = m.byClass[i].Load()
	}
	r.LatencySum = float64(m.latencySumNS.Load()) / 1e6
	r.Requests = m.requests.Load()
	return r
}

// heapSamples are the Go runtime's figures for heapUsed (live and not yet swept objects) and
// heapTotal (the heap's memory mapped and not returned to the OS: objects, free and unused
// spans), V8's heapUsed and heapTotal as near as Go has them. runtime/metrics reads them
// without stopping the world, unlike runtime.ReadMemStats.
var heapSamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
}

func readHeap(s []metrics.Sample) (used, total uint64) {
	metrics.Read(s)
	for i, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			continue
		}
		v := x.Value.Uint64()
		if i == 0 {
			used = v
		}
		total += v
	}
	return used, total
}

// metricsInterval and gaugesEvery: at most one report a second while the counters change, and
// the gauges alone every 5 s, as the preload does.
const (
	metricsInterval = time.Second
	gaugesEvery     = 5 * time.Second
)

// requestMetrics returns the worker's counters, starting the reporter on first use; nil when
// nothing is to be counted: outside corral's cluster mode, or with CORRAL_REQUEST_METRICS=0.
func (rt *process) requestMetrics() *reqMetrics {
	if !rt.cluster || os.Getenv("CORRAL_REQUEST_METRICS") == "0" {
		return nil
	}
	rt.metricsOnce.Do(func() {
		rt.metrics = &reqMetrics{}
		go rt.reportMetrics(rt.metrics, metricsInterval)
	})
	return rt.metrics
}

// reportMetrics sends the counters every interval while they changed (the gauges alone every
// gaugesEvery), until the channel to corral ends.
func (rt *process) reportMetrics(m *reqMetrics, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	samples := make([]metrics.Sample, len(heapSamples))
	for i, name := range heapSamples {
		samples[i].Name = name
	}
	var sent metricsReport
	var sentAt time.Time
	for {
		select {
		case <-t.C:
		case <-rt.leftDone:
			return
		case <-rt.ch.Done():
			return
		}
		r := m.snapshot()
		now := time.Now()
		if r.Requests == sent.Requests && slices.Equal(r.Latency, sent.Latency) && now.Sub(sentAt) < gaugesEvery {
			continue
		}
		r.HeapUsed, r.HeapTotal = readHeap(samples)
		if err := rt.ch.Send(r); err != nil {
			continue // the next report carries the same cumulative counters
		}
		sent, sentAt = r, now
	}
}

// metricsState is the process's part for request metrics (embedded in process).
type metricsState struct {
	metricsOnce sync.Once
	metrics     *reqMetrics
}
