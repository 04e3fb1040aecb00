package cluster

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"
)

// metricsMsg is a NODE_CORRAL_METRICS report as the preload sends it: cumulative counters of
// one run, with heapUsed as a marker the tests wait for.
func metricsMsg(requests uint64, byClass [5]uint64, latency [latencyBuckets]uint64, latencySum float64, heapUsed uint64) map[string]any {
	return map[string]any{
		"cmd":        MetricsCmd,
		"requests":   requests,
		"byClass":    byClass[:],
		"latency":    latency[:],
		"latencySum": latencySum,
		"heapUsed":   heapUsed,
		"heapTotal":  heapUsed * 2,
		"loopDelay":  []float64{1.5, 9.5, 20},
		"handles":    4,
	}
}

// report sends a metrics message from the fake's Node side and waits until the daemon has taken
// it (its heapUsed shows in the slot's gauges), so it only suits valid reports.
func (f *fakeWorker) report(t *testing.T, msg map[string]any) RequestStats {
	t.Helper()
	f.sendRaw(t, msg)
	marker := msg["heapUsed"].(uint64)
	var rs RequestStats
	testutil.WaitFor(t, f.name+"'s metrics report", waitTimeout, func() bool {
		rs = f.stats().Requests
		return rs.Runtime.Known && rs.Runtime.HeapUsed == marker
	})
	return rs
}

func (f *fakeWorker) sendRaw(t *testing.T, msg map[string]any) {
	t.Helper()
	if err := f.cch.Send(msg); err != nil {
		t.Fatalf("%s: send: %v", f.name, err)
	}
}

func wantRequests(t *testing.T, what string, rs RequestStats, requests uint64, byClass [5]uint64, latency [latencyBuckets]uint64, sum float64) {
	t.Helper()
	if rs.Requests != requests || rs.ByClass != byClass || rs.Latency != latency || rs.LatencySumMS != sum {
		t.Errorf("%s: requests %d by class %v latency %v sum %v; want %d %v %v %v", what,
			rs.Requests, rs.ByClass, rs.Latency, rs.LatencySumMS, requests, byClass, latency, sum)
	}
}

// TestRequestMetricsAcrossRuns: a run's reports are cumulative, so the slot adds the
// difference between successive reports; a repeated report adds nothing; a new run of the slot
// starts from zero and the slot's totals keep growing.
func TestRequestMetricsAcrossRuns(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	other := newFake(t, g, 2, "other", fakeOpts{})

	rs := a.report(t, metricsMsg(10, [5]uint64{0, 10}, [latencyBuckets]uint64{10}, 4, 100))
	wantRequests(t, "first report", rs, 10, [5]uint64{0, 10}, [latencyBuckets]uint64{10}, 4)
	if rs.Runtime.LoopP99MS != 9.5 || rs.Runtime.HeapTotal != 200 || !rs.Runtime.HandlesKnown || rs.Runtime.Handles != 4 {
		t.Errorf("gauges: %+v", rs.Runtime)
	}

	rs = a.report(t, metricsMsg(25, [5]uint64{0, 20, 0, 1, 3}, [latencyBuckets]uint64{20, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 20000, 101))
	wantRequests(t, "second report", rs, 25, [5]uint64{0, 20, 0, 1, 3}, [latencyBuckets]uint64{20, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 20000)

	rs = a.report(t, metricsMsg(25, [5]uint64{0, 20, 0, 1, 3}, [latencyBuckets]uint64{20, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 20000, 102))
	wantRequests(t, "the same report again", rs, 25, [5]uint64{0, 20, 0, 1, 3}, [latencyBuckets]uint64{20, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 20000)

	// Another slot's reports are its own.
	ors := other.report(t, metricsMsg(7, [5]uint64{0, 7}, [latencyBuckets]uint64{7}, 1, 300))
	wantRequests(t, "the other slot", ors, 7, [5]uint64{0, 7}, [latencyBuckets]uint64{7}, 1)

	// The run ends (a restart): its gauges go with it, its counts stay.
	a.die()
	rs = a.stats().Requests
	if rs.Runtime.Known {
		t.Errorf("gauges of an ended run are still shown: %+v", rs.Runtime)
	}
	wantRequests(t, "after the run ended", rs, 25, [5]uint64{0, 20, 0, 1, 3}, [latencyBuckets]uint64{20, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 20000)

	// The next run counts from zero; the slot adds all of it.
	b := newFake(t, g, 1, "b", fakeOpts{})
	rs = b.report(t, metricsMsg(5, [5]uint64{0, 4, 0, 0, 1}, [latencyBuckets]uint64{5}, 2, 400))
	wantRequests(t, "the next run", rs, 30, [5]uint64{0, 24, 0, 1, 4}, [latencyBuckets]uint64{25, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 20002)
	if q := rs.LatencyQuantileMS(0.5); q <= 0 || q > 1 {
		t.Errorf("p50 %v, want in the first bucket (0, 1] ms", q)
	}
}

// TestRequestMetricsBadInput: the report comes from the app's process; what is malformed,
// absurd or going back is ignored whole, and later good reports still count right.
func TestRequestMetricsBadInput(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	good := func(heap uint64) map[string]any {
		return metricsMsg(10, [5]uint64{0, 9, 0, 0, 1}, [latencyBuckets]uint64{10}, 3, heap)
	}
	a.report(t, good(1))
	with := func(key string, v any) map[string]any {
		m := good(0)
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		return m
	}
	for i, tc := range []struct {
		name string
		msg  map[string]any
	}{
		{"negative requests", with("requests", -5)},
		{"fractional requests", with("requests", 11.5)},
		{"requests as a string", with("requests", "11")},
		{"requests beyond 2^53", with("requests", uint64(1)<<60)},
		{"requests going back", with("requests", 3)},
		{"four classes", with("byClass", []uint64{0, 9, 0, 1})},
		{"no classes", with("byClass", nil)},
		{"twelve buckets", with("latency", make([]uint64, 12))},
		{"a bucket going back", with("latency", make([]uint64, latencyBuckets))},
		{"negative latency sum", with("latencySum", -1)},
		{"absurd latency sum", with("latencySum", math.MaxFloat64)},
		{"two loop delays", with("loopDelay", []float64{1, 2})},
		{"negative heap", with("heapUsed", -1)},
		{"not an object", map[string]any{"cmd": MetricsCmd, "requests": []int{1}}},
	} {
		a.sendRaw(t, tc.msg)
		// A good report after it: once it is taken, the bad one was handled before it.
		rs := a.report(t, good(uint64(100+i)))
		wantRequests(t, tc.name, rs, 10, [5]uint64{0, 9, 0, 0, 1}, [latencyBuckets]uint64{10}, 3)
	}
}

func TestLatencyQuantile(t *testing.T) {
	bucket := func(counts map[int]uint64) RequestStats {
		var rs RequestStats
		for i, n := range counts {
			rs.Latency[i] = n
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		rs   RequestStats
		q    float64
		want float64
	}{
		{"no requests", RequestStats{}, 0.5, 0},
		{"all in the first bucket, median", bucket(map[int]uint64{0: 100}), 0.5, 0.5},
		{"all in 5–10 ms, median", bucket(map[int]uint64{3: 10}), 0.5, 7.5},
		{"p99 in the slow tail", bucket(map[int]uint64{0: 98, 6: 2}), 0.99, 75},
		{"p50 below the tail", bucket(map[int]uint64{0: 98, 6: 2}), 0.5, 50.0 / 98},
		{"everything slower than the last bound", bucket(map[int]uint64{12: 3}), 0.99, 5000},
	} {
		if got := tc.rs.LatencyQuantileMS(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: q%v = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

// TestRequestCounter: a fork-mode process's counter adds up a run's cumulative reports, starts
// a new run from zero when the pid changes, shows gauges only for the current pid, and ignores
// a report that goes back.
func TestRequestCounter(t *testing.T) {
	report := func(requests uint64, heap uint64) json.RawMessage {
		b, err := json.Marshal(metricsMsg(requests, [5]uint64{0, requests}, [latencyBuckets]uint64{requests}, float64(requests), heap))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var c RequestCounter
	if err := c.Report(100, report(10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Report(100, report(25, 2)); err != nil {
		t.Fatal(err)
	}
	rs := c.Stats(100)
	wantRequests(t, "one run", rs, 25, [5]uint64{0, 25}, [latencyBuckets]uint64{25}, 25)
	if !rs.Runtime.Known || rs.Runtime.HeapUsed != 2 || !rs.Runtime.LoopKnown || rs.Runtime.LoopP99MS != 9.5 {
		t.Errorf("gauges: %+v", rs.Runtime)
	}
	if err := c.Report(100, report(20, 3)); err == nil {
		t.Errorf("a report whose counters went back was taken")
	}
	if rs := c.Stats(100); rs.Requests != 25 || rs.Runtime.HeapUsed != 2 {
		t.Errorf("after a report that went back: %d requests, heap %d", rs.Requests, rs.Runtime.HeapUsed)
	}
	// The next run (another pid) counts from zero; the slot adds all of it.
	if rs := c.Stats(200); rs.Runtime.Known {
		t.Errorf("the new run shows the old run's gauges")
	}
	if err := c.Report(200, report(4, 5)); err != nil {
		t.Fatal(err)
	}
	rs = c.Stats(200)
	wantRequests(t, "two runs", rs, 29, [5]uint64{0, 29}, [latencyBuckets]uint64{29}, 29)
	if rs.Runtime.HeapUsed != 5 {
		t.Errorf("gauges of the new run: %+v", rs.Runtime)
	}
	if rs := c.Stats(0); rs.Runtime.Known {
		t.Errorf("a stopped process shows gauges")
	}
}
