package cluster

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// countsMsg is a run's cumulative report of n requests, all 2xx in the first latency bucket.
func countsMsg(t *testing.T, n uint64) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(metricsMsg(n, [5]uint64{0, n}, [latencyBuckets]uint64{n}, float64(n), 1))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handOverRequests is what a daemon and the next do with the slots' request statistics: keep
// them (JSON: the keeper holds bytes) and read them back.
func handOverRequests(t *testing.T, kept map[int]KeptRequests) map[int]KeptRequests {
	t.Helper()
	b, err := json.Marshal(kept)
	if err != nil {
		t.Fatal(err)
	}
	var out map[int]KeptRequests
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeptRequestsAcrossDaemons: a slot's totals pass to the next daemon's group, and the
// worker it adopts goes on from its last report: its next report adds only what it counted
// since, whether it came before or after the hand-over was written. Another run of the slot
// counts from zero as always.
func TestKeptRequestsAcrossDaemons(t *testing.T) {
	state := json.RawMessage(`{"id":3,"online":true,"listening":["0.0.0.0:8080"]}`)
	old := NewGroup("app", "", t.Logf)
	w, err := old.AdoptWorker(0, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.(*worker).onMetrics(countsMsg(t, 10)) // an earlier run's counts, as a slot total
	old.slots[0].req.mu.Lock()
	old.slots[0].req.requests += 100 // the slot's earlier runs
	old.slots[0].req.mu.Unlock()
	w.(*worker).onMetrics(countsMsg(t, 25))
	kept := handOverRequests(t, old.KeptRequests())
	if k := kept[0]; k.Requests != 125 || k.Run != 3 || len(k.Last) == 0 {
		t.Fatalf("kept %+v", k)
	}

	next := NewGroup("app", "", t.Logf)
	if err := next.RestoreRequests(0, kept[0]); err != nil {
		t.Fatal(err)
	}
	if rs := next.Stats()[0].Requests; rs.Requests != 125 || rs.ByClass[1] != 25 {
		t.Fatalf("restored: %+v", rs)
	}
	adopted, err := next.AdoptWorker(0, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	adopted.(*worker).onMetrics(countsMsg(t, 40)) // 15 more since the kept report
	if rs := next.Stats()[0].Requests; rs.Requests != 140 || rs.ByClass[1] != 40 || rs.Latency[0] != 40 || rs.LatencySumMS != 40 {
		t.Fatalf("after the adopted run's next report: %+v", rs)
	}
	other, err := next.AdoptWorker(0, json.RawMessage(`{"id":4,"online":true}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	other.(*worker).onMetrics(countsMsg(t, 5))
	if rs := next.Stats()[0].Requests; rs.Requests != 145 {
		t.Fatalf("after another run's first report: %d requests", rs.Requests)
	}
}

// TestKeptRequestCounter: the same for a fork-mode process, whose runs are told by pid.
func TestKeptRequestCounter(t *testing.T) {
	var c RequestCounter
	for _, n := range []uint64{10, 25} {
		if err := c.Report(100, countsMsg(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	kept := handOverRequests(t, map[int]KeptRequests{0: c.Kept()})[0]
	var next RequestCounter
	if err := next.Restore(kept); err != nil {
		t.Fatal(err)
	}
	if err := next.Report(100, countsMsg(t, 30)); err != nil {
		t.Fatal(err)
	}
	if rs := next.Stats(100); rs.Requests != 30 {
		t.Fatalf("the same run after the hand-over: %d requests, want 30", rs.Requests)
	}
	if err := next.Report(200, countsMsg(t, 2)); err != nil {
		t.Fatal(err)
	}
	if rs := next.Stats(200); rs.Requests != 32 {
		t.Fatalf("a new run after the hand-over: %d requests, want 32", rs.Requests)
	}
}

// TestKeptRequestsChecked: what comes from another process is checked, and refused whole.
func TestKeptRequestsChecked(t *testing.T) {
	good := func() KeptRequests {
		k := KeptRequests{Requests: 10, ByClass: [5]uint64{0, 10}, Latency: make([]uint64, latencyBuckets), LatencySum: 10}
		k.Latency[0] = 10
		return k
	}
	var report json.RawMessage
	{
		var c RequestCounter
		if err := c.Report(7, countsMsg(t, 4)); err != nil {
			t.Fatal(err)
		}
		report = c.Kept().Last
	}
	cases := []struct {
		name   string
		change func(k *KeptRequests)
		err    string
	}{
		{"as kept", func(k *KeptRequests) {}, ""},
		{"with its run's last report", func(k *KeptRequests) { k.Run, k.Last = 7, report }, ""},
		{"latency buckets missing", func(k *KeptRequests) { k.Latency = k.Latency[:3] }, "out of bounds"},
		{"a counter beyond the bound", func(k *KeptRequests) { k.Requests = 1 << 60 }, "out of bounds"},
		{"a sum that is not a number", func(k *KeptRequests) { k.LatencySum = math.Inf(1) }, "out of bounds"},
		{"a last report without its run", func(k *KeptRequests) { k.Last = report }, "last report of run 0"},
		{"a last report that is not one", func(k *KeptRequests) { k.Run, k.Last = 7, json.RawMessage(`{"requests":"x"}`) }, "last report of run 7"},
		{"a last report above the totals", func(k *KeptRequests) { k.Run, k.Last, k.Requests = 7, report, 1 }, "above the totals"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := good()
			c.change(&k)
			g := NewGroup("app", "", t.Logf)
			err := g.RestoreRequests(0, k)
			var rc RequestCounter
			errCounter := rc.Restore(k)
			for _, err := range []error{err, errCounter} {
				switch {
				case c.err == "" && err != nil:
					t.Fatalf("refused: %v", err)
				case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
					t.Fatalf("error %v, want one saying %q", err, c.err)
				}
			}
			if c.err != "" {
				if rs := g.Stats()[0].Requests; rs.Requests != 0 {
					t.Fatalf("a refused state was taken: %d requests", rs.Requests)
				}
			}
		})
	}
}
