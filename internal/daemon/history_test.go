package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/web"
)

// sampleHistory is a history as a daemon writes it: a firing alert, charts, CPU seconds.
func sampleHistory(t *testing.T, now time.Time) keptHistory {
	t.Helper()
	e := alerts.NewEngine()
	id := 0
	e.Restore(alerts.State{Active: []alerts.ActiveAlert{{Alert: api.Alert{App: "web", Rule: alerts.Errored, ID: &id,
		State: api.AlertFiring, Since: now.Add(-time.Minute), Time: now}, NotifiedAt: now.Add(-time.Minute)}}}, now)
	st := e.Export()
	series := map[int][]web.Point{}
	for id := range 3 {
		for i := range 10 {
			series[id] = append(series[id], web.Point{T: now.UnixMilli() - int64(10-i)*2000, CPU: float64(i) / 4, Mem: int64(i) << 20, Req: 1.5, Conn: 0.25})
		}
	}
	return keptHistory{Version: historyVersion, Corral: "test", Written: now.UTC(), Alerts: &st,
		Web: encodeWeb(series), CPU: map[int]float64{0: 1.25, 1: 0, 2: 3},
		Requests: map[int]cluster.KeptRequests{1: {Requests: 5, ByClass: [5]uint64{0, 5}, Latency: make([]uint64, 13), LatencySum: 2.5,
			Run: 4, Last: json.RawMessage(`{"requests":5}`)}}}
}

// TestHistoryRoundTrip: what a daemon writes, the next reads back as it was, charts included.
func TestHistoryRoundTrip(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	h := sampleHistory(t, now)
	body, dropped, err := encodeHistory(h, maxHistoryBytes)
	if err != nil || dropped != "" {
		t.Fatalf("encode: %v (dropped %q)", err, dropped)
	}
	got, ok, err := historyToTake(body, true, true)
	if err != nil || !ok {
		t.Fatalf("read back: %v", err)
	}
	again, _ := json.Marshal(got)
	if !bytes.Equal(again, body) {
		t.Fatalf("read back as\n%s\nwritten as\n%s", again, body)
	}
	charts := decodeWeb(got.Web)
	if len(charts) != 3 || len(charts[2]) != 10 || charts[2][9].CPU != 9.0/4 || charts[2][9].Mem != 9<<20 || charts[2][9].Conn != 0.25 {
		t.Fatalf("charts %+v", charts[2])
	}
	e := alerts.NewEngine()
	if n := e.Restore(*got.Alerts, now); n != 1 || e.Firing()[0].Since.UnixMilli() != now.Add(-time.Minute).UnixMilli() {
		t.Fatalf("alerts restored: %d %+v", n, e.Firing())
	}
}

// TestHistoryBounds: the charts keep their newest points within maxKeptWebPoints together;
// an entry over its limit loses the charts' older halves, then the charts, then the alert
// windows, never the firing alerts.
func TestHistoryBounds(t *testing.T) {
	now := time.Now()
	series := map[int][]web.Point{}
	procs := 300
	for id := range procs {
		for i := range 451 { // 15 minutes at 2 s
			series[id] = append(series[id], web.Point{T: int64(i)})
		}
	}
	enc := encodeWeb(series)
	total := 0
	for _, pts := range enc {
		total += len(pts)
		if pts[len(pts)-1][0] != 450 {
			t.Fatalf("the newest point was not kept: %v", pts[len(pts)-1])
		}
	}
	if total > maxKeptWebPoints || total < maxKeptWebPoints-procs {
		t.Fatalf("%d points kept, want at most %d", total, maxKeptWebPoints)
	}

	h := sampleHistory(t, now)
	h.Alerts.Apps = []alerts.AppWindows{{Name: "web", Crashes: []int64{now.UnixMilli()}}}
	full, _, _ := encodeHistory(h, maxHistoryBytes)
	noCharts := h
	noCharts.Web = nil
	withoutCharts, _ := json.Marshal(noCharts)
	cases := []struct {
		name    string
		limit   int
		dropped string
		wantErr bool
		points  int // each chart's points (0: no charts)
		windows bool
	}{
		{"within", len(full), "", false, 10, true},
		{"the charts' older halves dropped", len(full) - 1, "the older part of the dashboard's charts", false, 5, true},
		{"charts dropped", len(withoutCharts), "the dashboard's charts", false, 0, true},
		{"windows dropped", len(withoutCharts) - 1, "the dashboard's charts and the alert windows", false, 0, false},
		{"nothing fits", 10, "the dashboard's charts and the alert windows", true, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, dropped, err := encodeHistory(h, c.limit)
			if dropped != c.dropped || (err != nil) != c.wantErr {
				t.Fatalf("dropped %q, err %v", dropped, err)
			}
			if err != nil {
				return
			}
			if len(body) > c.limit {
				t.Fatalf("%d bytes over the limit of %d", len(body), c.limit)
			}
			got, _, err := historyToTake(body, true, true)
			if err != nil {
				t.Fatal(err)
			}
			points := 0
			for _, pts := range got.Web {
				if points = len(pts); pts[len(pts)-1][0] != h.Web[0][9][0] {
					t.Fatalf("the newest point was dropped")
				}
			}
			if points != c.points || (got.Alerts.Apps != nil) != c.windows || len(got.Alerts.Active) != 1 {
				t.Fatalf("charts of %d points, windows %v, firing %d", points, got.Alerts.Apps != nil, len(got.Alerts.Active))
			}
		})
	}
	if h.Alerts.Apps == nil || h.Web == nil {
		t.Fatal("encodeHistory changed the history it was given")
	}
}

// TestHistoryToTake: which entries the next daemon reads; any other is reported, never misread.
func TestHistoryToTake(t *testing.T) {
	good, _, err := encodeHistory(sampleHistory(t, time.Now()), maxHistoryBytes)
	if err != nil {
		t.Fatal(err)
	}
	many := map[int][][5]float64{}
	for id := range maxKeptProcesses + 1 {
		many[id] = nil
	}
	tooMany, _ := json.Marshal(keptHistory{Version: historyVersion, Web: many})
	cases := []struct {
		name          string
		entry         string
		found, marked bool
		take          bool
		err           string // in the error; "" for none
	}{
		{"none kept", "", false, true, false, ""},
		{"as written", string(good), true, true, true, ""},
		{"without charts, CPU or alerts", `{"version":1,"corral":"0.9.0"}`, true, true, true, ""},
		{"left by an older corral: the table has no mark", string(good), true, false, false, "not written by the previous daemon"},
		{"a newer version", `{"version":2,"corral":"9.9.9","web":{"0":[[1,2,3,4,5]]}}`, true, true, false, "of version 2, from corral 9.9.9"},
		{"no version", `{"corral":"0.9.0"}`, true, true, false, "of version 0"},
		{"garbage", `{"version":1,`, true, true, false, "unreadable"},
		{"wrong types", `{"version":1,"web":{"0":"x"}}`, true, true, false, "unreadable"},
		{"over the size bound", `{"version":1,"corral":"` + strings.Repeat("x", maxHistoryBytes) + `"}`, true, true, false, "over the bound"},
		{"more charts than processes kept", string(tooMany), true, true, false, "for more processes than a daemon keeps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, take, err := historyToTake([]byte(c.entry), c.found, c.marked)
			if take != c.take {
				t.Fatalf("taken %v, want %v (%v)", take, c.take, err)
			}
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one saying %q", err, c.err)
			}
		})
	}
	if _, _, err := historyToTake(good, true, false); !errors.Is(err, errStaleHistory) {
		t.Fatalf("stale: %v", err)
	}
}

// TestHandoverWithoutHistoryMark: a table written by a daemon that keeps no history (hand-over
// version 1 as corral wrote it before the "history" entry) still reads, unmarked; the table
// written now carries the mark.
func TestHandoverWithoutHistoryMark(t *testing.T) {
	old := `{"version":1,"corral":"0.8.0","written":"2026-12-01T12:00:00Z","apps":[{"spec":{"name":"web"},"procs":[{"id":0,"instance":0,"state":{"restarts":2}}]}]}`
	var h handover
	if err := json.Unmarshal([]byte(old), &h); err != nil || h.Version != handoverVersion || h.History || len(h.Apps) != 1 {
		t.Fatalf("an older table: %+v, %v", h, err)
	}
	b, _ := json.Marshal(handover{Version: handoverVersion, History: true})
	if !strings.Contains(string(b), `"history":true`) {
		t.Fatalf("a table now: %s", b)
	}
}
