package alerts

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// Snapshot is what the daemon knows at one sampling tick: every app with its rules and
// processes. Counters are cumulative over a process slot's life (they never go down while the
// slot exists), so rates are differences between ticks.
type Snapshot struct {
	Time time.Time
	Apps []AppSample
}

// AppSample is one app at a tick.
type AppSample struct {
	Name  string
	Rules spec.Alerts // effective (Effective)
	Procs []ProcSample
}

// ProcSample is one process slot at a tick.
type ProcSample struct {
	ID     int
	PID    int    // 0 when it does not run
	Status string // PM2's status names
	RSS    int64  // resident memory of the tree, bytes (0 when unknown)
	// Requests and Errors5xx are cumulative answers and 5xx answers (Node cluster workers).
	Requests, Errors5xx uint64
	// LoopP99MS is the event loop's p99 delay at the worker's last report; LoopKnown when the
	// worker reports at all.
	LoopP99MS float64
	LoopKnown bool
}

// EventKind is what the daemon tells the engine between ticks.
type EventKind int

const (
	EventCrash        EventKind = iota // a run ended without corral asking it to
	EventReloadFailed                  // a replacement did not take over
	EventReloaded                      // a replacement took over
)

// Event is a process event the engine counts.
type Event struct {
	Time    time.Time
	App     string
	ID      int
	Kind    EventKind
	Message string
}

// memoryResolveBelow: a firing memory alert resolves below this fraction of its limit.
const memoryResolveBelow = 0.9

// HistorySize is how many transitions (firing, resolved) the engine remembers for listings.
const HistorySize = 100

// maxEvents bounds the events kept per app (a crash loop of thousands must not grow memory).
const maxEvents = 256

// Engine evaluates the rules. It is safe for concurrent use: the daemon records events from
// process loops (Record takes a lock and appends, nothing else) and evaluates from its
// sampler. It has no clock of its own: time comes with the snapshots and events.
type Engine struct {
	mu      sync.Mutex
	apps    map[string]*appState
	active  map[string]*alertState // by key: firing alerts
	history []api.Alert            // ring, newest last
}

type appState struct {
	crashes      []time.Time
	reloadFailed *Event // the last reload failure not followed by a success
	// seededText is the text of a reload_failed alert taken over by Seed (its event is gone).
	seededText string
	series     map[int][]point
	appSeries  []appPoint
}

// point is one process sample kept for windows.
type point struct {
	t         time.Time
	pid       int
	rss       int64
	loopP99   float64
	loopKnown bool
}

// appPoint is the request counters of every process at one tick.
type appPoint struct {
	t        time.Time
	requests map[int]uint64
	errors   map[int]uint64
}

type alertState struct {
	alert      api.Alert
	notifiedAt time.Time
	holdUntil  time.Time // Seed: not resolved before, for lack of data
}

// NewEngine returns an engine with nothing firing.
func NewEngine() *Engine {
	return &Engine{apps: map[string]*appState{}, active: map[string]*alertState{}}
}

// Record counts an event. It never waits for anything but the engine's lock, which
// evaluation holds only while computing.
func (e *Engine) Record(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.app(ev.App)
	switch ev.Kind {
	case EventCrash:
		st.crashes = append(st.crashes, ev.Time)
		if len(st.crashes) > maxEvents {
			st.crashes = st.crashes[len(st.crashes)-maxEvents:]
		}
	case EventReloadFailed:
		x := ev
		st.reloadFailed, st.seededText = &x, ""
	case EventReloaded:
		st.reloadFailed = nil
	}
}

func (e *Engine) app(name string) *appState {
	st, ok := e.apps[name]
	if !ok {
		st = &appState{series: map[int][]point{}}
		e.apps[name] = st
	}
	return st
}

// Seed takes over the alerts a previous daemon had sent as firing (docs/alerts.md §5): they
// are firing and notified already, so they are not sent again. What the previous daemon
// counted is gone, so an alert over a window is not resolved before a whole window has been
// observed since now; a failed reload stays firing until a reload succeeds.
func (e *Engine) Seed(firing []api.Alert, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range firing {
		if a.State != api.AlertFiring || a.Rule == Test {
			continue
		}
		st := &alertState{alert: a, notifiedAt: a.Time}
		if w, err := time.ParseDuration(a.Window); err == nil && w > 0 {
			st.holdUntil = now.Add(w)
		}
		if a.Rule == ReloadFailed {
			st := e.app(a.App)
			st.reloadFailed = &Event{Time: a.Since, App: a.App, Kind: EventReloadFailed}
			st.seededText = a.Text
		}
		e.active[key(a.App, a.Rule, a.ID)] = st
	}
}

// key identifies an alert: app, rule, and the process for per-process rules.
func key(app, rule string, id *int) string {
	k := app + "\x00" + rule
	if id != nil {
		k += "\x00" + strconv.Itoa(*id)
	}
	return k
}

// Evaluate runs every rule over snap and returns the notifications to send: alerts that
// started firing, that keep firing and are due again (Repeat), and that resolved.
func (e *Engine) Evaluate(snap Snapshot) []api.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := snap.Time
	conds := map[string]api.Alert{} // what holds now, by key
	repeats := map[string]time.Duration{}
	seen := map[string]bool{}
	for _, a := range snap.Apps {
		seen[a.Name] = true
		st := e.app(a.Name)
		st.observe(a, now)
		if a.Rules.Off {
			continue
		}
		firing := func(rule string, id *int) bool { _, ok := e.active[key(a.Name, rule, id)]; return ok }
		for _, c := range st.evaluate(a, now, firing) {
			k := key(c.App, c.Rule, c.ID)
			conds[k] = c
			repeats[k] = a.Rules.Repeat.D()
		}
	}
	for name := range e.apps {
		if !seen[name] {
			delete(e.apps, name) // deleted: what it kept means nothing for an app of that name later
		}
	}

	var out []api.Alert
	keys := make([]string, 0, len(conds))
	for k := range conds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := conds[k]
		cur, firing := e.active[k]
		switch {
		case !firing:
			c.State, c.Since, c.Time = api.AlertFiring, now, now
			e.active[k] = &alertState{alert: c, notifiedAt: now}
			out = append(out, c)
			e.remember(c)
		default:
			c.State, c.Since, c.Time = api.AlertFiring, cur.alert.Since, now
			cur.alert = c
			if r := repeats[k]; r > 0 && now.Sub(cur.notifiedAt) >= r {
				cur.notifiedAt = now
				c.Repeat = true
				out = append(out, c)
			}
		}
	}
	var gone []string
	for k, st := range e.active {
		if _, holds := conds[k]; !holds && !now.Before(st.holdUntil) {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		a := e.active[k].alert
		delete(e.active, k)
		a.State, a.Time = api.AlertResolved, now
		a.Text = resolvedText(a)
		out = append(out, a)
		e.remember(a)
	}
	return out
}

func (e *Engine) remember(a api.Alert) {
	e.history = append(e.history, a)
	if len(e.history) > HistorySize {
		e.history = append(e.history[:0:0], e.history[len(e.history)-HistorySize:]...)
	}
}

// Firing lists the alerts firing now, by app, rule and process.
func (e *Engine) Firing() []api.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]api.Alert, 0, len(e.active))
	for _, st := range e.active {
		out = append(out, st.alert)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return idOf(a) < idOf(b)
	})
	return out
}

// Recent lists the last transitions, newest first.
func (e *Engine) Recent() []api.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]api.Alert, len(e.history))
	for i, a := range e.history {
		out[len(out)-1-i] = a
	}
	return out
}

func idOf(a api.Alert) int {
	if a.ID == nil {
		return -1
	}
	return *a.ID
}

// observe adds the tick's samples to the app's series and drops what no window needs.
func (st *appState) observe(a AppSample, now time.Time) {
	keep := maxWindow(a.Rules) + time.Minute
	present := map[int]bool{}
	ap := appPoint{t: now, requests: map[int]uint64{}, errors: map[int]uint64{}}
	for _, p := range a.Procs {
		present[p.ID] = true
		s := st.series[p.ID]
		if p.PID > 0 {
			s = append(s, point{t: now, pid: p.PID, rss: p.RSS, loopP99: p.LoopP99MS, loopKnown: p.LoopKnown})
		}
		st.series[p.ID] = trim(s, now.Add(-keep), func(x point) time.Time { return x.t })
		if p.PID > 0 {
			// Only running processes: a stopped worker gets no requests and is not uneven.
			ap.requests[p.ID] = p.Requests
			ap.errors[p.ID] = p.Errors5xx
		}
	}
	for id := range st.series {
		if !present[id] {
			delete(st.series, id)
		}
	}
	st.appSeries = trim(append(st.appSeries, ap), now.Add(-keep), func(x appPoint) time.Time { return x.t })
	cutoff := now.Add(-keep)
	i := 0
	for i < len(st.crashes) && st.crashes[i].Before(cutoff) {
		i++
	}
	st.crashes = st.crashes[i:]
}

// trim drops the points before cutoff, keeping the last one before it: the baseline a window
// that starts at cutoff measures from.
func trim[T any](s []T, cutoff time.Time, at func(T) time.Time) []T {
	i := 0
	for i+1 < len(s) && !at(s[i+1]).After(cutoff) {
		i++
	}
	// Re-slicing, not copying: append moves the live points to a new array when the old one
	// is full, so memory stays bounded by the window.
	return s[i:]
}

func maxWindow(r spec.Alerts) time.Duration {
	var w time.Duration
	for _, rule := range r.Rules {
		w = max(w, rule.Window.D())
	}
	return w
}

// evaluate returns the alerts whose condition holds at now, without state or times.
// firing says whether an alert is firing already (the memory rule's hysteresis).
func (st *appState) evaluate(a AppSample, now time.Time, firing func(rule string, id *int) bool) []api.Alert {
	var out []api.Alert
	base := func(rule string, id *int, value float64, unit string, r spec.AlertRule) api.Alert {
		return api.Alert{App: a.Name, Rule: rule, ID: id, Value: value, Unit: unit,
			Threshold: r.Threshold, Window: formatDuration(r.Window.D()), Spec: FormatThreshold(rule, r)}
	}
	if r, on := a.Rules.Rules[CrashRate]; on {
		from := now.Add(-r.Window.D())
		n := 0
		for _, t := range st.crashes {
			if t.After(from) {
				n++
			}
		}
		if float64(n) >= r.Threshold {
			al := base(CrashRate, nil, float64(n), "crashes", r)
			al.Text = fmt.Sprintf("%s crashed %d times within %s (threshold %s)", a.Name, n, al.Window, al.Spec)
			out = append(out, al)
		}
	}
	if r, on := a.Rules.Rules[ReloadFailed]; on && st.reloadFailed != nil {
		ev := st.reloadFailed
		al := base(ReloadFailed, nil, 1, "", r)
		al.Window, al.Spec = "", "on"
		al.Text = fmt.Sprintf("reload of %s failed at process %d: %s", a.Name, ev.ID, ev.Message)
		if st.seededText != "" {
			al.Text = st.seededText
		}
		out = append(out, al)
	}
	for _, p := range a.Procs {
		id := p.ID
		if r, on := a.Rules.Rules[Errored]; on && p.Status == "errored" {
			al := base(Errored, &id, 1, "", r)
			al.Window, al.Spec = "", "on"
			al.Text = fmt.Sprintf("%s[%d] is errored: it gave up restarting", a.Name, id)
			out = append(out, al)
		}
		series := st.series[p.ID]
		if p.PID == 0 || len(series) == 0 || series[len(series)-1].t != now {
			continue // not running: the memory and loop rules describe a run
		}
		run := currentRun(series)
		// Memory resolves only below 90% of the limit: a garbage-collected heap saw-tooths
		// around any line, and each crossing would be a notification.
		if r, on := a.Rules.Rules[Memory]; on && (float64(p.RSS) > r.Threshold || firing(Memory, &id) && float64(p.RSS) > r.Threshold*memoryResolveBelow) {
			al := base(Memory, &id, float64(p.RSS), "bytes", r)
			al.Window = ""
			al.Text = fmt.Sprintf("%s[%d] uses %s of memory (limit %s)", a.Name, id, spec.FormatSize(p.RSS), al.Spec)
			out = append(out, al)
		}
		if r, on := a.Rules.Rules[MemoryGrowth]; on {
			if grew, ok := steadyGrowth(run, now.Add(-r.Window.D()), r.Threshold); ok {
				al := base(MemoryGrowth, &id, grew, "bytes", r)
				al.Text = fmt.Sprintf("%s[%d] memory rose steadily by %s within %s (threshold %s)", a.Name, id, spec.FormatSize(int64(grew)), al.Window, al.Spec)
				out = append(out, al)
			}
		}
		if r, on := a.Rules.Rules[EventLoop]; on {
			if low, ok := loopAbove(run, now.Add(-r.Window.D()), r.Threshold); ok {
				al := base(EventLoop, &id, low, "ms", r)
				al.Text = fmt.Sprintf("%s[%d] event loop delay p99 stayed above %gms for %s (lowest %.0fms)", a.Name, id, r.Threshold, al.Window, low)
				out = append(out, al)
			}
		}
	}
	if r, on := a.Rules.Rules[ErrorRate]; on {
		if reqs, errs, ok := st.windowCounts(now.Add(-r.Window.D())); ok {
			var total, bad uint64
			for id, n := range reqs {
				total += n
				bad += errs[id]
			}
			if total >= MinRequests && float64(bad) > r.Threshold*float64(total) {
				ratio := float64(bad) / float64(total)
				al := base(ErrorRate, nil, ratio, "ratio", r)
				al.Text = fmt.Sprintf("%s answered %.1f%% of %d requests with 5xx within %s (threshold %s)", a.Name, ratio*100, total, al.Window, al.Spec)
				out = append(out, al)
			}
		}
	}
	if r, on := a.Rules.Rules[Uneven]; on {
		if reqs, _, ok := st.windowCounts(now.Add(-r.Window.D())); ok && len(reqs) >= 2 {
			var total uint64
			for _, n := range reqs {
				total += n
			}
			workers := len(reqs)
			if total >= uint64(MinRequestsPerWorker*workers) {
				fair := float64(total) / float64(workers)
				worst, worstID := 0.0, -1
				for id, n := range reqs {
					dev := (float64(n) - fair) / fair
					if dev < 0 {
						dev = -dev
					}
					if dev > worst || dev == worst && id < worstID {
						worst, worstID = dev, id
					}
				}
				if worst > r.Threshold {
					al := base(Uneven, nil, worst, "ratio", r)
					al.Text = fmt.Sprintf("%s: process %d served %d of %d requests within %s, %.0f%% off its fair share of %.0f (threshold %s)",
						a.Name, worstID, reqs[worstID], total, al.Window, worst*100, fair, al.Spec)
					out = append(out, al)
				}
			}
		}
	}
	return out
}

// windowCounts returns each process's requests and 5xx answers since the tick at or before
// from, for the processes present both then and now; ok is false while the series does not
// reach back to from.
func (st *appState) windowCounts(from time.Time) (reqs, errs map[int]uint64, ok bool) {
	s := st.appSeries
	if len(s) < 2 || s[0].t.After(from) {
		return nil, nil, false
	}
	baseline := s[0]
	for _, p := range s {
		if p.t.After(from) {
			break
		}
		baseline = p
	}
	last := s[len(s)-1]
	reqs, errs = map[int]uint64{}, map[int]uint64{}
	for id, n := range last.requests {
		b, present := baseline.requests[id]
		if !present || n < b {
			continue
		}
		reqs[id] = n - b
		errs[id] = last.errors[id] - min(baseline.errors[id], last.errors[id])
	}
	return reqs, errs, true
}

// currentRun is the tail of series with the latest pid: a restart starts memory and loop
// figures afresh.
func currentRun(s []point) []point {
	if len(s) == 0 {
		return s
	}
	pid := s[len(s)-1].pid
	i := len(s) - 1
	for i > 0 && s[i-1].pid == pid {
		i--
	}
	return s[i:]
}

// steadyGrowth reports whether memory rose by at least threshold bytes over the window that
// starts at from, steadily: the run's samples must reach back to from, and the lowest sample
// of each quarter of the window must be above the lowest of the quarter before. Lows, not
// highs or averages, because a garbage-collected heap saw-tooths: what a leak raises is the
// floor. It returns the rise from the first quarter's low to the last's.
func steadyGrowth(run []point, from time.Time, threshold float64) (float64, bool) {
	i := 0
	for i+1 < len(run) && !run[i+1].t.After(from) {
		i++
	}
	if len(run) == 0 || run[i].t.After(from) {
		return 0, false // the run is younger than the window
	}
	w := run[i:]
	if len(w) < 4 {
		return 0, false
	}
	var lows [4]int64
	for q := range lows {
		part := w[q*len(w)/4 : (q+1)*len(w)/4]
		lows[q] = part[0].rss
		for _, p := range part {
			lows[q] = min(lows[q], p.rss)
		}
		if q > 0 && lows[q] <= lows[q-1] {
			return 0, false
		}
	}
	grew := float64(lows[3] - lows[0])
	return grew, grew >= threshold
}

// loopAbove reports whether every report of the run within the window that starts at from was
// above threshold ms, the run reaching back to from; it returns the lowest.
func loopAbove(run []point, from time.Time, threshold float64) (float64, bool) {
	if len(run) == 0 || run[0].t.After(from) {
		return 0, false
	}
	low := -1.0
	for _, p := range run {
		if p.t.Before(from) {
			continue
		}
		if !p.loopKnown || p.loopP99 <= threshold {
			return 0, false
		}
		if low < 0 || p.loopP99 < low {
			low = p.loopP99
		}
	}
	return low, low >= 0
}

func resolvedText(a api.Alert) string {
	who := a.App
	if a.ID != nil {
		who = fmt.Sprintf("%s[%d]", a.App, *a.ID)
	}
	return fmt.Sprintf("resolved: %s %s (firing since %s)", who, a.Rule, a.Since.UTC().Format(time.RFC3339))
}
