package worker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/testutil"
)

// TestServeHTTPCountsRequests: a cluster worker counts the requests it serves through
// ServeHTTP by status class, with their latency, and the daemon's own code (internal/cluster)
// takes its NODE_CORRAL_METRICS reports: the totals match what was sent, with the Go heap and
// no event-loop delay (Go has none to measure).
func TestServeHTTPCountsRequests(t *testing.T) {
	g := newTestGroup(t)
	gw := startGroupWorker(t, g, 0)
	url := groupURL(t, g)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitTimeout}
	get := func(query string, want int) {
		t.Helper()
		resp, err := client.Get(url + query)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d", query, resp.StatusCode, want)
		}
	}
	for i := range 50 {
		switch i % 10 {
		case 3:
			get("?status=404", 404)
		case 7:
			get("?status=503", 503)
		default:
			get("", 200)
		}
	}
	get("?delay=30", 200) // at least 30 ms: in the (25, 50] ms bucket or above
	var rs cluster.RequestStats
	testutil.WaitFor(t, "51 requests reported", waitTimeout, func() bool {
		rs = g.Stats()[0].Requests
		var finished uint64
		for _, n := range rs.Latency {
			finished += n
		}
		return rs.Requests >= 51 && finished >= 51
	})
	if rs.Requests != 51 || rs.ByClass != [5]uint64{0, 41, 0, 5, 5} {
		t.Fatalf("requests %d by class %v, want 51 [0 41 0 5 5]", rs.Requests, rs.ByClass)
	}
	var slow uint64
	for _, n := range rs.Latency[5:] {
		slow += n
	}
	if slow < 1 || rs.LatencySumMS < 30 {
		t.Errorf("the 30 ms request is not in the histogram: %v, sum %v ms", rs.Latency, rs.LatencySumMS)
	}
	rt := rs.Runtime
	if !rt.Known || rt.HeapUsed == 0 || rt.HeapTotal < rt.HeapUsed || rt.LoopKnown || rt.HandlesKnown {
		t.Errorf("runtime gauges %+v: want the heap, and no event loop or handles", rt)
	}
	if gw.rt.metrics == nil {
		t.Fatal("no counters")
	}
}

// TestServeHTTPMetricsOff: CORRAL_REQUEST_METRICS=0 and a worker outside cluster mode count
// nothing (no counters, no reporter).
func TestServeHTTPMetricsOff(t *testing.T) {
	t.Setenv("CORRAL_REQUEST_METRICS", "0")
	g := newTestGroup(t)
	gw := startGroupWorker(t, g, 0)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}
	resp, err := client.Get(groupURL(t, g))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gw.rt.requestMetrics() != nil || gw.rt.metrics != nil {
		t.Errorf("counters with CORRAL_REQUEST_METRICS=0")
	}
	t.Setenv("CORRAL_REQUEST_METRICS", "")
	if m := newProcess().requestMetrics(); m != nil {
		t.Errorf("counters outside cluster mode")
	}
}

// BenchmarkCountedHandler: what counting adds to a request in ServeHTTP's handler (the
// recorder is no HTTP/1 writer, so the counted path wraps it in a statusWriter: an allocation
// the HTTP/1 path does not have, where the drain writer notes the status).
func BenchmarkCountedHandler(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	r := httptest.NewRequest("GET", "/", nil)
	for _, tc := range []struct {
		name string
		m    *reqMetrics
	}{{"off", nil}, {"on", &reqMetrics{}}} {
		h := &drainHandler{d: &httpDrain{}, next: next, m: tc.m}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := httptest.NewRecorder()
				for pb.Next() {
					h.ServeHTTP(w, r)
				}
			})
		})
	}
}
