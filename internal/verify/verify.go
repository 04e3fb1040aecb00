// Package verify is `corral verify`: the deployment's production checklist run against a live
// app. It loads the app with internal/loadgen, reads per-worker counters from the daemon, and
// changes the app only through corral's own zero-downtime operations (a rolling reload, live
// scaling), restoring the worker count whatever happens. The outcome is a Report, rendered as
// a text checklist, JSON for CI, and a self-contained HTML page with charts.
package verify

import (
	"time"
)

// Status is a check's outcome.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip" // not run, or nothing to judge: the reason says why
)

// Check IDs, in the order the checklist shows them.
const (
	CheckLoad         = "load"
	CheckDistribution = "distribution"
	CheckSessions     = "sessions"
	CheckReload       = "reload"
	CheckRollback     = "rollback"
	CheckMemory       = "memory"
	CheckSaved        = "saved"
	CheckAlerts       = "alerts"
)

// CheckIDs lists every check, in checklist order.
var CheckIDs = []string{CheckLoad, CheckDistribution, CheckSessions, CheckReload, CheckRollback, CheckMemory, CheckSaved, CheckAlerts}

// Check is one line of the checklist.
type Check struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Figure is what was measured, Threshold what passes; Reason says, for a failure or a
	// skip, why, in words a person can act on.
	Figure    string   `json:"figure,omitempty"`
	Threshold string   `json:"threshold,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Workers   []Worker `json:"workers,omitempty"`
	// Values are the check's figures as numbers, for CI to compare runs.
	Values map[string]float64 `json:"values,omitempty"`
}

// Worker is one worker's part in a check.
type Worker struct {
	ID     int    `json:"pm_id"`
	PID    int    `json:"pid"`
	Figure string `json:"figure"`
	OK     bool   `json:"ok"`
}

// Event is something verify did to the app, at T seconds from the start.
type Event struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

// Point is one sample of a series: T seconds from the start.
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// WorkerSeries is one worker's samples (a process slot: the pid may change on reload).
type WorkerSeries struct {
	ID     int     `json:"pm_id"`
	Points []Point `json:"points"`
}

// Share is one worker's part of the steady load.
type Share struct {
	ID       int     `json:"pm_id"`
	PID      int     `json:"pid"`
	Requests float64 `json:"requests"` // share, 0..1
	CPU      float64 `json:"cpu"`      // share, 0..1; -1 when unknown
}

// Report is everything one run found.
type Report struct {
	App     string    `json:"app"`
	Started time.Time `json:"started"`
	Elapsed float64   `json:"elapsed_s"`
	Workers int       `json:"workers"`
	Target  string    `json:"target"`
	Load    string    `json:"load"` // how the load was made, in words
	Passed  bool      `json:"passed"`
	Checks  []Check   `json:"checks"`
	// Restored says how the app was put back, when it had to be (or why it could not be).
	Restored string `json:"restored,omitempty"`

	// What the HTML report plots.
	Throughput []Tick         `json:"throughput"` // the loads, second by second
	Events     []Event        `json:"events"`
	Shares     []Share        `json:"shares"`
	Memory     []WorkerSeries `json:"memory"` // RSS bytes
	Latency    Latency        `json:"latency"`
}

// Tick is one second (or less, at a load's end) of a load: T and Length in seconds from the
// start of the run.
type Tick struct {
	T        float64 `json:"t"`
	Length   float64 `json:"length_s"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
}

// Latency is the steady load's latency percentiles, in ms.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// check returns the report's check with id (added if missing).
func (r *Report) check(id string) *Check {
	for i := range r.Checks {
		if r.Checks[i].ID == id {
			return &r.Checks[i]
		}
	}
	r.Checks = append(r.Checks, Check{ID: id, Status: Skip})
	return &r.Checks[len(r.Checks)-1]
}

// finish orders the checks and sets Passed.
func (r *Report) finish() {
	ordered := make([]Check, 0, len(r.Checks))
	for _, id := range CheckIDs {
		for _, c := range r.Checks {
			if c.ID == id {
				ordered = append(ordered, c)
			}
		}
	}
	r.Checks = ordered
	r.Passed = true
	for _, c := range r.Checks {
		if c.Status == Fail {
			r.Passed = false
		}
	}
}

// Counts returns how many checks passed, failed, were skipped.
func (r *Report) Counts() (pass, fail, skip int) {
	for _, c := range r.Checks {
		switch c.Status {
		case Pass:
			pass++
		case Fail:
			fail++
		default:
			skip++
		}
	}
	return
}
