package alerts

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// handOver is what a daemon and the next do with an engine: Export, JSON (the keeper holds
// bytes), Restore into a new engine.
func handOver(t *testing.T, e *Engine, now time.Time) *Engine {
	t.Helper()
	b, err := json.Marshal(e.Export())
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	next := NewEngine()
	next.Restore(st, now)
	return next
}

// TestStateCarriesOn: an engine handed over (Export, JSON, Restore) in the middle of its
// windows goes on exactly as one that never stopped: the alert firing is not sent again, its
// repeat keeps its clock, a window half observed fires on time, and what fired resolves on
// time with its since; the transitions listed come along.
func TestStateCarriesOn(t *testing.T) {
	mb := int64(1 << 20)
	c := newClock()
	r := spec.Alerts{Repeat: ms(20 * time.Second), Rules: map[string]spec.AlertRule{
		CrashRate:    {Threshold: 2, Window: ms(10 * time.Second)},
		MemoryGrowth: {Threshold: float64(10 * mb), Window: ms(16 * time.Second)},
		EventLoop:    {Threshold: 100, Window: ms(20 * time.Second)},
		ReloadFailed: {},
	}}
	snap := func(i int) Snapshot {
		return Snapshot{Time: c.now, Apps: []AppSample{{Name: "web", Rules: r, Procs: []ProcSample{
			{ID: 0, PID: 10, Status: "online", RSS: 100*mb + int64(i)*3*mb, LoopP99MS: 150, LoopKnown: true},
			{ID: 1, PID: 11, Status: "online", RSS: 100 * mb}}}}}
	}
	orig := NewEngine()
	for i := range 6 { // 12 s: crash_rate fires; the growth and loop windows are part-observed
		c.tick(2 * time.Second)
		if i == 2 {
			orig.Record(Event{Time: c.now, App: "web", Kind: EventCrash})
			orig.Record(Event{Time: c.now, App: "web", Kind: EventCrash})
			orig.Record(Event{Time: c.now, App: "web", ID: 1, Kind: EventReloadFailed, Message: "not ready"})
		}
		orig.Evaluate(snap(i))
	}
	if f := orig.Firing(); len(f) != 2 {
		t.Fatalf("before the hand-over, firing %v", states(f))
	}
	next := handOver(t, orig, c.now)
	if !reflect.DeepEqual(next.Firing(), orig.Firing()) || !reflect.DeepEqual(next.Recent(), orig.Recent()) {
		t.Fatalf("after the hand-over, firing %+v recent %+v; before %+v %+v", next.Firing(), next.Recent(), orig.Firing(), orig.Recent())
	}
	var sent []string
	for i := 6; i < 20; i++ {
		c.tick(2 * time.Second)
		want, got := orig.Evaluate(snap(i)), next.Evaluate(snap(i))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tick %d: the handed-over engine sent %+v, the one that never stopped %+v", i, got, want)
		}
		for _, a := range got {
			sent = append(sent, fmt.Sprintf("%d:%s", i, states([]api.Alert{a})[0]))
		}
	}
	// What the windows say, for the reader: a repeat 20 s after the first notification, the
	// growth and the loop over their whole windows, crash_rate resolved 10 s after the crashes.
	for _, want := range []string{"crash_rate/resolved", "memory_growth/firing", "event_loop/firing", "reload_failed/firing/repeat"} {
		if !strings.Contains(strings.Join(sent, " "), want) {
			t.Errorf("sent %v: no %s", sent, want)
		}
	}
}

// TestRestoreBounds: a state from another process is checked, never trusted.
func TestRestoreBounds(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	firing := func(app, rule string) ActiveAlert {
		return ActiveAlert{Alert: api.Alert{App: app, Rule: rule, State: api.AlertFiring, Since: now.Add(-time.Minute), Time: now}, NotifiedAt: now}
	}
	points := func(n int, step time.Duration) [][4]float64 {
		out := make([][4]float64, n)
		for i := range out {
			out[i] = [4]float64{float64(ms(-time.Duration(n-i) * step)), 10, 1 << 20, -1}
		}
		return out
	}
	cases := []struct {
		name  string
		st    State
		check func(t *testing.T, e *Engine)
	}{
		{"not firing, a test's, nameless or twice: dropped", State{Active: []ActiveAlert{
			firing("web", Errored),
			{Alert: api.Alert{App: "web", Rule: CrashRate, State: api.AlertResolved}},
			{Alert: api.Alert{App: "web", Rule: Test, State: api.AlertFiring}},
			{Alert: api.Alert{Rule: Errored, State: api.AlertFiring}},
			firing("web", Errored),
		}}, func(t *testing.T, e *Engine) {
			if f := e.Firing(); len(f) != 1 || f[0].Rule != Errored {
				t.Fatalf("firing %+v", f)
			}
		}},
		{"too many alerts", State{Active: func() []ActiveAlert {
			var out []ActiveAlert
			for i := range maxKeptAlerts + 5 {
				out = append(out, firing(fmt.Sprint("app", i), Errored))
			}
			return out
		}()}, func(t *testing.T, e *Engine) {
			if n := len(e.Firing()); n != maxKeptAlerts {
				t.Fatalf("%d firing, want %d", n, maxKeptAlerts)
			}
		}},
		{"a huge text is clipped", State{Active: []ActiveAlert{{Alert: api.Alert{App: "w", Rule: ReloadFailed, State: api.AlertFiring, Text: strings.Repeat("x", 1<<20)}}}},
			func(t *testing.T, e *Engine) {
				if f := e.Firing(); len(f) != 1 || len(f[0].Text) != maxKeptTextLen {
					t.Fatalf("firing %d, text of %d bytes", len(f), len(f[0].Text))
				}
			}},
		{"history beyond its size: the newest", State{History: func() []api.Alert {
			var out []api.Alert
			for i := range HistorySize + 50 {
				out = append(out, api.Alert{App: "w", Rule: CrashRate, State: api.AlertResolved, Value: float64(i)})
			}
			return append(out, api.Alert{App: "w", State: "bogus"})
		}()}, func(t *testing.T, e *Engine) {
			r := e.Recent()
			if len(r) != HistorySize-1 || r[0].Value != HistorySize+49 {
				t.Fatalf("%d transitions, the newest %v", len(r), r[0].Value)
			}
		}},
		{"samples beyond the bound: the newest", State{Apps: []AppWindows{{Name: "w", Procs: []ProcWindow{{ID: 0, Points: points(keptSamples+100, time.Second)}}}}},
			func(t *testing.T, e *Engine) {
				s := e.apps["w"].series[0]
				if len(s) != keptSamples || s[len(s)-1].t.UnixMilli() != ms(-time.Second) {
					t.Fatalf("%d samples", len(s))
				}
			}},
		{"samples out of order or from the future: that series dropped", State{Apps: []AppWindows{{Name: "w", Procs: []ProcWindow{
			{ID: 0, Points: [][4]float64{{float64(ms(-time.Second)), 1, 1, -1}, {float64(ms(-2 * time.Second)), 1, 1, -1}}},
			{ID: 1, Points: [][4]float64{{float64(ms(time.Hour)), 1, 1, -1}}},
			{ID: 2, Points: points(3, time.Second)},
		}}}}, func(t *testing.T, e *Engine) {
			s := e.apps["w"].series
			if len(s) != 1 || len(s[2]) != 3 {
				t.Fatalf("series %v", s)
			}
		}},
		{"crashes: the newest maxEvents, ties allowed, disorder dropped", State{Apps: []AppWindows{
			{Name: "a", Crashes: func() []int64 {
				out := make([]int64, maxEvents+10)
				for i := range out {
					out[i] = ms(-time.Duration(len(out)-i/2) * time.Millisecond)
				}
				return out
			}()},
			{Name: "b", Crashes: []int64{ms(-time.Second), ms(-2 * time.Second)}},
		}}, func(t *testing.T, e *Engine) {
			if n := len(e.apps["a"].crashes); n != maxEvents {
				t.Fatalf("%d crashes kept, want %d", n, maxEvents)
			}
			if n := len(e.apps["b"].crashes); n != 0 {
				t.Fatalf("%d crashes out of order kept", n)
			}
		}},
		{"a tick with too many processes: the request window starts again", State{Apps: []AppWindows{{Name: "w", Ticks: []TickCounts{
			{T: ms(-2 * time.Second), Requests: map[int]uint64{0: 1}},
			{T: ms(-time.Second), Requests: func() map[int]uint64 {
				m := map[int]uint64{}
				for i := range maxKeptProcs + 1 {
					m[i] = 1
				}
				return m
			}()},
		}}}}, func(t *testing.T, e *Engine) {
			if n := len(e.apps["w"].appSeries); n != 0 {
				t.Fatalf("%d ticks kept", n)
			}
		}},
		{"an empty state: nothing", State{}, func(t *testing.T, e *Engine) {
			if len(e.Firing()) != 0 || len(e.Recent()) != 0 || len(e.apps) != 0 {
				t.Fatal("an empty state restored something")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewEngine()
			e.Restore(c.st, now)
			c.check(t, e)
		})
	}
}
