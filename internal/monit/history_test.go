package monit

import (
	"testing"

	"github.com/corral-pm/corral/internal/api"
)

// TestSparkline: bars scaled to the largest value (or the floor), from 0 or from the smallest,
// the newest on the right, blanks on the left while there are fewer values than the width.
func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  []float64
		width   int
		floor   float64
		fromMin bool
		want    string
	}{
		{"no values", nil, 4, 1, false, "    "},
		{"fewer values than the width", []float64{1, 2}, 4, 0, false, "  ▄█"},
		{"scaled to the largest", []float64{0, 25, 50, 100}, 4, 1, false, "▁▂▄█"},
		{"the newest width values", []float64{100, 0, 0, 0, 100}, 3, 1, false, "▁▁█"},
		{"idle under the floor", []float64{0.1, 0.2}, 2, 100, false, "▁▁"},
		{"zero width", []float64{1}, 0, 1, false, ""},
		{"memory flat: low bars", []float64{50 << 20, 50 << 20}, 2, 1 << 20, true, "▁▁"},
		{"memory growing from its smallest", []float64{50 << 20, 52 << 20, 54 << 20, 58 << 20}, 4, 1 << 20, true, "▁▂▄█"},
		{"memory noise under the floor", []float64{100, 200, 150}, 3, 1 << 20, true, "▁▁▁"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sparkline(tc.values, tc.width, tc.floor, tc.fromMin); got != tc.want {
				t.Errorf("sparkline(%v, %d, %v, %v) = %q, want %q", tc.values, tc.width, tc.floor, tc.fromMin, got, tc.want)
			}
		})
	}
}

// TestHistory: each poll adds a point per process, series keep historyPoints at most, and a
// process gone is forgotten.
func TestHistory(t *testing.T) {
	h := history{}
	for i := range historyPoints + 10 {
		h.record([]api.Process{
			{ID: 0, CPU: float64(i), Memory: 1 << 20},
			{ID: 1, CPU: 1, Cluster: &api.WorkerStats{ReqPerSec: 5}},
		})
	}
	if n := len(h[0].cpu.values); n != historyPoints {
		t.Errorf("%d points kept, want %d", n, historyPoints)
	}
	if first, last := h[0].cpu.values[0], h[0].cpu.last(); first != 10 || last != historyPoints+9 {
		t.Errorf("cpu series runs from %v to %v, want the newest: 10 to %d", first, last, historyPoints+9)
	}
	if got := h[1].req.last(); got != 5 {
		t.Errorf("req/s %v, want the worker's 5", got)
	}
	h.record([]api.Process{{ID: 1}})
	if _, ok := h[0]; ok {
		t.Errorf("process 0 is gone but its history is kept")
	}
}
