package alerts

import (
	"maps"
	"slices"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// State is what an engine knows that the next daemon needs to carry on where this one stopped
// (docs/alerts.md §5, docs/daemon-survival.md §4): the alerts firing, with when each was last
// notified (so nothing is sent twice and `repeat` keeps its clock), the transitions `corral
// alerts` lists, and what each app's windows have counted (crashes, a failed reload, the
// samples the memory, event-loop and request rules judge), so that a rule over a window does
// not start its window again. Export takes it; Restore gives it to a new engine, which checks
// every size and order first: it comes from another process.
//
// Samples are arrays of numbers rather than objects, and times Unix milliseconds: a slot keeps
// a window's worth of samples, and the state lives in the keeper's memory.
type State struct {
	Active  []ActiveAlert `json:"active,omitempty"`
	History []api.Alert   `json:"history,omitempty"` // oldest first
	Apps    []AppWindows  `json:"apps,omitempty"`
}

// ActiveAlert is a firing alert with its notification clock.
type ActiveAlert struct {
	Alert      api.Alert `json:"alert"`
	NotifiedAt time.Time `json:"notified_at"`
	// HoldUntil: not resolved before, for lack of data (an alert taken over by Seed).
	HoldUntil time.Time `json:"hold_until,omitzero"`
}

// AppWindows is what the engine counted for one app.
type AppWindows struct {
	Name    string  `json:"name"`
	Crashes []int64 `json:"crashes,omitempty"` // Unix ms, oldest first
	// ReloadFailed is the last reload failure not followed by a success.
	ReloadFailed *FailedReload `json:"reload_failed,omitempty"`
	SeededText   string        `json:"seeded_text,omitempty"`
	Procs        []ProcWindow  `json:"procs,omitempty"`
	Ticks        []TickCounts  `json:"ticks,omitempty"` // oldest first
}

// FailedReload is a reload_failed event.
type FailedReload struct {
	T       int64  `json:"t"` // Unix ms
	ID      int    `json:"id"`
	Message string `json:"message,omitempty"`
}

// ProcWindow is one process slot's samples: each [Unix ms, pid, RSS bytes, event-loop p99 ms
// or -1 when the worker did not report it], oldest first.
type ProcWindow struct {
	ID     int          `json:"id"`
	Points [][4]float64 `json:"points"`
}

// TickCounts is the request counters of the app's running processes at one tick.
type TickCounts struct {
	T        int64          `json:"t"` // Unix ms
	Requests map[int]uint64 `json:"req,omitempty"`
	Errors   map[int]uint64 `json:"err,omitempty"`
}

// Bounds Restore enforces on a state it did not make. An engine's own stay well within them:
// its windows trim its samples (keptSamples covers a 4-hour window at 2 s).
const (
	maxKeptAlerts  = 10_000
	maxKeptApps    = 10_000
	maxKeptProcs   = 10_000 // per app
	keptSamples    = 8_192  // per process, and ticks per app
	maxKeptTextLen = 4 << 10
)

// Export copies what the engine knows, for the next daemon.
func (e *Engine) Export() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var st State
	for _, k := range slices.Sorted(maps.Keys(e.active)) {
		a := e.active[k]
		st.Active = append(st.Active, ActiveAlert{Alert: a.alert, NotifiedAt: a.notifiedAt, HoldUntil: a.holdUntil})
	}
	st.History = slices.Clone(e.history)
	for _, name := range slices.Sorted(maps.Keys(e.apps)) {
		as := e.apps[name]
		w := AppWindows{Name: name, SeededText: as.seededText}
		for _, t := range as.crashes {
			w.Crashes = append(w.Crashes, t.UnixMilli())
		}
		if ev := as.reloadFailed; ev != nil {
			w.ReloadFailed = &FailedReload{T: ev.Time.UnixMilli(), ID: ev.ID, Message: ev.Message}
		}
		for _, id := range slices.Sorted(maps.Keys(as.series)) {
			pw := ProcWindow{ID: id, Points: make([][4]float64, 0, len(as.series[id]))}
			for _, p := range as.series[id] {
				loop := -1.0
				if p.loopKnown {
					loop = p.loopP99
				}
				pw.Points = append(pw.Points, [4]float64{float64(p.t.UnixMilli()), float64(p.pid), float64(p.rss), loop})
			}
			w.Procs = append(w.Procs, pw)
		}
		for _, tk := range as.appSeries {
			w.Ticks = append(w.Ticks, TickCounts{T: tk.t.UnixMilli(), Requests: copyCounts(tk.requests), Errors: copyCounts(tk.errors)})
		}
		st.Apps = append(st.Apps, w)
	}
	return st
}

// copyCounts copies m (nil when empty: omitted from the JSON).
func copyCounts(m map[int]uint64) map[int]uint64 {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// Restore takes over st, a previous daemon's Export, into an engine that has evaluated
// nothing yet. What breaks a bound or an order is dropped, never trusted: alerts beyond
// maxKeptAlerts, not firing, or a test's; samples out of time order or of a time after now;
// the oldest samples beyond keptSamples. It returns how many firing alerts it took over.
func (e *Engine) Restore(st State, now time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	limit := now.Add(time.Minute).UnixMilli() // a little slack for clocks that moved back
	for _, a := range st.Active {
		al := a.Alert
		if len(e.active) >= maxKeptAlerts {
			break
		}
		if al.State != api.AlertFiring || al.Rule == Test || al.App == "" || al.Rule == "" || al.Since.UnixMilli() > limit {
			continue
		}
		k := key(al.App, al.Rule, al.ID)
		if _, dup := e.active[k]; dup {
			continue
		}
		al.Text = clip(al.Text)
		notified := a.NotifiedAt
		if notified.IsZero() || notified.UnixMilli() > limit {
			notified = al.Time
		}
		e.active[k] = &alertState{alert: al, notifiedAt: notified, holdUntil: a.HoldUntil}
	}
	for _, a := range lastN(st.History, HistorySize) {
		if a.State != api.AlertFiring && a.State != api.AlertResolved {
			continue
		}
		a.Text = clip(a.Text)
		e.history = append(e.history, a)
	}
	for _, w := range st.Apps {
		if len(e.apps) >= maxKeptApps {
			break
		}
		if _, dup := e.apps[w.Name]; dup || w.Name == "" {
			continue
		}
		as := &appState{series: map[int][]point{}, seededText: clip(w.SeededText)}
		if crashes := lastN(w.Crashes, maxEvents); inOrder(crashes, func(t int64) int64 { return t }, false, limit) {
			for _, t := range crashes {
				as.crashes = append(as.crashes, time.UnixMilli(t))
			}
		}
		if r := w.ReloadFailed; r != nil && r.T <= limit {
			as.reloadFailed = &Event{Time: time.UnixMilli(r.T), App: w.Name, ID: r.ID, Kind: EventReloadFailed, Message: clip(r.Message)}
		}
		for _, pw := range w.Procs {
			if len(as.series) >= maxKeptProcs {
				break
			}
			pts := lastN(pw.Points, keptSamples)
			if _, dup := as.series[pw.ID]; dup || len(pts) == 0 || !inOrder(pts, func(p [4]float64) int64 { return int64(p[0]) }, true, limit) {
				continue
			}
			s := make([]point, 0, len(pts))
			for _, p := range pts {
				s = append(s, point{t: time.UnixMilli(int64(p[0])), pid: int(p[1]), rss: int64(p[2]), loopP99: p[3], loopKnown: p[3] >= 0})
			}
			as.series[pw.ID] = s
		}
		if ticks := lastN(w.Ticks, keptSamples); inOrder(ticks, func(t TickCounts) int64 { return t.T }, true, limit) {
			for _, tk := range ticks {
				if len(tk.Requests) > maxKeptProcs || len(tk.Errors) > maxKeptProcs {
					as.appSeries = nil // a tick that cannot be right: the window starts again
					break
				}
				as.appSeries = append(as.appSeries, appPoint{t: time.UnixMilli(tk.T), requests: orEmpty(tk.Requests), errors: orEmpty(tk.Errors)})
			}
		}
		e.apps[w.Name] = as
	}
	return len(e.active)
}

// lastN is the last n elements of s.
func lastN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// inOrder reports whether the times of s (at) increase (strictly: no two alike) and none is
// after limit. Two crashes may share a millisecond; two samples may not.
func inOrder[T any](s []T, at func(T) int64, strictly bool, limit int64) bool {
	for i, x := range s {
		t := at(x)
		if t > limit || i > 0 && (t < at(s[i-1]) || strictly && t == at(s[i-1])) {
			return false
		}
	}
	return true
}

func orEmpty(m map[int]uint64) map[int]uint64 {
	if m == nil {
		return map[int]uint64{}
	}
	return m
}

// clip bounds a text taken over from another process.
func clip(s string) string {
	if len(s) > maxKeptTextLen {
		return s[:maxKeptTextLen]
	}
	return s
}
