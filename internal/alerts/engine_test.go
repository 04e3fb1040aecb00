package alerts

import (
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// clock is the tests' time: evaluation takes time from its arguments only.
type clock struct{ now time.Time }

func (c *clock) tick(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func rules(r map[string]spec.AlertRule) spec.Alerts {
	return spec.Alerts{Rules: r, Repeat: spec.Millis(time.Hour / time.Millisecond)}
}

func ms(d time.Duration) spec.Millis { return spec.Millis(d / time.Millisecond) }

// states summarises notifications as "rule/state" strings.
func states(out []api.Alert) []string {
	var s []string
	for _, a := range out {
		st := a.Rule + "/" + a.State
		if a.Repeat {
			st += "/repeat"
		}
		s = append(s, st)
	}
	return s
}

func wantStates(t *testing.T, step string, out []api.Alert, want ...string) {
	t.Helper()
	got := states(out)
	if len(got) != len(want) {
		t.Fatalf("%s: notifications %v, want %v", step, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: notifications %v, want %v", step, got, want)
		}
	}
}

func TestCrashRateFiresResolvesAndRepeats(t *testing.T) {
	c := newClock()
	e := NewEngine()
	app := AppSample{Name: "web", Rules: rules(map[string]spec.AlertRule{CrashRate: {Threshold: 3, Window: ms(10 * time.Second)}}),
		Procs: []ProcSample{{ID: 0, PID: 10, Status: "online"}}}
	snap := func() Snapshot { return Snapshot{Time: c.now, Apps: []AppSample{app}} }
	wantStates(t, "quiet", e.Evaluate(snap()))
	for range 2 {
		e.Record(Event{Time: c.tick(time.Second), App: "web", Kind: EventCrash})
	}
	wantStates(t, "two crashes", e.Evaluate(snap()))
	e.Record(Event{Time: c.tick(time.Second), App: "web", Kind: EventCrash})
	out := e.Evaluate(snap())
	wantStates(t, "three crashes", out, "crash_rate/firing")
	if out[0].Value != 3 || out[0].Threshold != 3 || out[0].ID != nil || out[0].Spec != "3/10s" || out[0].Text == "" {
		t.Errorf("alert %+v", out[0])
	}
	c.tick(2 * time.Second)
	wantStates(t, "still firing: deduplicated", e.Evaluate(snap()))
	if f := e.Firing(); len(f) != 1 || f[0].Rule != CrashRate {
		t.Errorf("firing %+v", f)
	}
	c.tick(10 * time.Second)
	out = e.Evaluate(snap())
	wantStates(t, "window passed", out, "crash_rate/resolved")
	if !out[0].Since.Before(out[0].Time) {
		t.Errorf("resolved %+v", out[0])
	}
	if len(e.Firing()) != 0 || len(e.Recent()) != 2 || e.Recent()[0].State != api.AlertResolved {
		t.Errorf("firing %v recent %v", e.Firing(), e.Recent())
	}

	// Repeat: a crash loop that goes on is sent again after Repeat, not before.
	app.Rules.Repeat = ms(time.Minute)
	for range 3 {
		e.Record(Event{Time: c.tick(time.Second), App: "web", Kind: EventCrash})
	}
	wantStates(t, "fires again", e.Evaluate(snap()), "crash_rate/firing")
	for i := 0; i < 30; i++ {
		e.Record(Event{Time: c.tick(2 * time.Second), App: "web", Kind: EventCrash})
		out = e.Evaluate(snap())
		if i < 29 && len(out) != 0 {
			t.Fatalf("tick %d: %v before the repeat interval", i, states(out))
		}
	}
	wantStates(t, "after a minute", out, "crash_rate/firing/repeat")
}

func TestErroredPerProcessAndDeletedApps(t *testing.T) {
	c := newClock()
	e := NewEngine()
	app := AppSample{Name: "api", Rules: Defaults(0), Procs: []ProcSample{{ID: 3, Status: "errored"}, {ID: 4, PID: 9, Status: "online"}}}
	out := e.Evaluate(Snapshot{Time: c.now, Apps: []AppSample{app}})
	wantStates(t, "errored", out, "errored/firing")
	if out[0].ID == nil || *out[0].ID != 3 {
		t.Errorf("id %+v", out[0].ID)
	}
	// alerts: false while firing resolves it; so does deleting the app.
	app.Rules = spec.Alerts{Off: true}
	wantStates(t, "alerts off", e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}}), "errored/resolved")
	app.Rules = Defaults(0)
	wantStates(t, "on again", e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}}), "errored/firing")
	wantStates(t, "deleted", e.Evaluate(Snapshot{Time: c.tick(time.Second)}), "errored/resolved")
}

func TestReloadFailed(t *testing.T) {
	c := newClock()
	e := NewEngine()
	app := AppSample{Name: "web", Rules: Defaults(0)}
	e.Record(Event{Time: c.now, App: "web", ID: 1, Kind: EventReloadFailed, Message: "not ready within 3s"})
	out := e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}})
	wantStates(t, "failed", out, "reload_failed/firing")
	e.Record(Event{Time: c.now, App: "web", ID: 1, Kind: EventReloaded})
	wantStates(t, "reloaded", e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}}), "reload_failed/resolved")

	// Taken over by the next daemon: still firing (not sent again) until a reload succeeds.
	e = NewEngine()
	e.Seed([]api.Alert{{App: "web", Rule: ReloadFailed, State: api.AlertFiring, Text: out[0].Text, Since: c.now, Time: c.now}}, c.now)
	wantStates(t, "adopted", e.Evaluate(Snapshot{Time: c.tick(time.Hour), Apps: []AppSample{app}}))
	if f := e.Firing(); len(f) != 1 || f[0].Text != "reload of web failed at process 1: not ready within 3s" {
		t.Errorf("firing after adoption %+v", f)
	}
	e.Record(Event{Time: c.now, App: "web", ID: 1, Kind: EventReloaded})
	wantStates(t, "reloaded after adoption", e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}}), "reload_failed/resolved")
}

func TestMemoryRules(t *testing.T) {
	mb := int64(1 << 20)
	cases := []struct {
		name string
		rss  func(i int) int64 // sample i, every 2 s
		pid  func(i int) int
		want []string // after 30 samples
	}{
		{name: "steady leak", rss: func(i int) int64 { return 100*mb + int64(i)*5*mb }, want: []string{"memory/firing", "memory_growth/firing"}},
		{name: "saw-tooth over a rising floor", rss: func(i int) int64 { return 100*mb + int64(i)*3*mb + int64(i%3)*20*mb }, want: []string{"memory/firing", "memory_growth/firing"}},
		{name: "flat with garbage collection", rss: func(i int) int64 { return 100*mb + int64(i%4)*30*mb }, want: []string{"memory/firing"}},
		{name: "a warm-up that stopped", rss: func(i int) int64 { return 100*mb + int64(min(i, 5))*10*mb }},
		{name: "a restart starts afresh", rss: func(i int) int64 { return 100*mb + int64(i%15)*5*mb }, pid: func(i int) int { return 10 + i/15 }, want: []string{"memory/firing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			e := NewEngine()
			r := rules(map[string]spec.AlertRule{Memory: {Threshold: float64(150 * mb)}, MemoryGrowth: {Threshold: float64(30 * mb), Window: ms(40 * time.Second)}})
			var fired []api.Alert
			for i := range 30 {
				pid := 10
				if tc.pid != nil {
					pid = tc.pid(i)
				}
				out := e.Evaluate(Snapshot{Time: c.tick(2 * time.Second), Apps: []AppSample{{Name: "w", Rules: r,
					Procs: []ProcSample{{ID: 0, PID: pid, Status: "online", RSS: tc.rss(i)}}}}})
				for _, a := range out {
					if a.State == api.AlertFiring {
						fired = append(fired, a)
					}
				}
			}
			seen := map[string]bool{}
			for _, a := range fired {
				seen[a.Rule+"/"+a.State] = true
			}
			if len(seen) != len(tc.want) {
				t.Fatalf("fired %v, want %v", states(fired), tc.want)
			}
			for _, w := range tc.want {
				if !seen[w] {
					t.Fatalf("fired %v, want %v", states(fired), tc.want)
				}
			}
		})
	}
}

func TestEventLoop(t *testing.T) {
	c := newClock()
	e := NewEngine()
	r := rules(map[string]spec.AlertRule{EventLoop: {Threshold: 200, Window: ms(6 * time.Second)}})
	eval := func(p99 float64, known bool) []api.Alert {
		return e.Evaluate(Snapshot{Time: c.tick(2 * time.Second), Apps: []AppSample{{Name: "n", Rules: r,
			Procs: []ProcSample{{ID: 1, PID: 5, Status: "online", LoopP99MS: p99, LoopKnown: known}}}}})
	}
	wantStates(t, "unknown", eval(0, false))
	for i := range 3 {
		wantStates(t, "young", eval(300, true))
		_ = i
	}
	wantStates(t, "high for the whole window", eval(290, true), "event_loop/firing")
	wantStates(t, "one dip resolves", eval(20, true), "event_loop/resolved")
	wantStates(t, "a spike alone does not fire", eval(900, true))
}

func TestRequestRules(t *testing.T) {
	c := newClock()
	e := NewEngine()
	r := rules(map[string]spec.AlertRule{ErrorRate: {Threshold: 0.05, Window: ms(10 * time.Second)}, Uneven: {Threshold: 0.5, Window: ms(10 * time.Second)}})
	var reqs, errs [3]uint64
	eval := func() []api.Alert {
		var procs []ProcSample
		for i := range reqs {
			procs = append(procs, ProcSample{ID: i, PID: 100 + i, Status: "online", Requests: reqs[i], Errors5xx: errs[i]})
		}
		return e.Evaluate(Snapshot{Time: c.tick(2 * time.Second), Apps: []AppSample{{Name: "web", Rules: r, Procs: procs}}})
	}
	// Even, healthy traffic; then too few requests to judge however bad; then 10% 5xx.
	for range 6 {
		for i := range reqs {
			reqs[i] += 100
			errs[i] += 1
		}
		wantStates(t, "healthy", eval())
	}
	for range 6 {
		reqs[0] += 3
		errs[0] += 3
		wantStates(t, "too few requests", eval())
	}
	var out []api.Alert
	for range 6 {
		for i := range reqs {
			reqs[i] += 100
			errs[i] += 10
		}
		out = append(out, eval()...)
	}
	wantStates(t, "5xx", out, "error_rate/firing")
	// Worker 2 stops getting requests.
	out = nil
	for range 6 {
		reqs[0] += 200
		reqs[1] += 200
		out = append(out, eval()...)
	}
	wantStates(t, "uneven", out, "uneven/firing", "error_rate/resolved")
	// Worker 2 is stopped on purpose: the two left share evenly, and it resolves.
	out = nil
	for range 8 {
		reqs[0] += 200
		reqs[1] += 200
		var procs []ProcSample
		for i := range reqs {
			pid := 100 + i
			if i == 2 {
				pid = 0
			}
			procs = append(procs, ProcSample{ID: i, PID: pid, Status: "online", Requests: reqs[i], Errors5xx: errs[i]})
		}
		out = append(out, e.Evaluate(Snapshot{Time: c.tick(2 * time.Second), Apps: []AppSample{{Name: "web", Rules: r, Procs: procs}}})...)
	}
	wantStates(t, "stopped worker", out, "uneven/resolved")
	if a := out[0]; a.Value < 0.5 || a.ID != nil {
		t.Errorf("uneven %+v", a)
	}
}

func TestSeedDoesNotRenotify(t *testing.T) {
	c := newClock()
	e := NewEngine()
	id := 3
	e.Seed([]api.Alert{{App: "api", Rule: Errored, ID: &id, State: api.AlertFiring, Since: c.now, Time: c.now},
		{App: "api", Rule: CrashRate, State: api.AlertFiring, Window: "10s", Since: c.now, Time: c.now}}, c.now)
	app := AppSample{Name: "api", Rules: Defaults(0), Procs: []ProcSample{{ID: 3, Status: "errored"}}}
	wantStates(t, "adopted, still errored", e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}}))
	app.Procs[0].Status = "online"
	wantStates(t, "fixed", e.Evaluate(Snapshot{Time: c.tick(time.Second), Apps: []AppSample{app}}), "errored/resolved")
	// crash_rate had no crashes seen since adoption: resolved only after a whole window.
	wantStates(t, "window not yet observed", e.Evaluate(Snapshot{Time: c.tick(5 * time.Second), Apps: []AppSample{app}}))
	wantStates(t, "window observed", e.Evaluate(Snapshot{Time: c.tick(5 * time.Second), Apps: []AppSample{app}}), "crash_rate/resolved")
}
