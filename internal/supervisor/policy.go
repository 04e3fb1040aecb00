package supervisor

import (
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// exitFacts describe how a run ended, for the restart policy.
type exitFacts struct {
	Uptime   time.Duration
	Code     int  // exit code; -1 when a signal ended the run
	Signaled bool // ended by a signal
}

// policyState is what the policy remembers between runs.
type policyState struct {
	Unstable  int           // consecutive runs shorter than min_uptime
	PrevDelay time.Duration // last exponential backoff delay
}

// decision is what to do after an unplanned exit.
type decision struct {
	Restart bool
	Errored bool // gave up: too many unstable restarts
	Delay   time.Duration
	Reason  string // why there is no restart, for events and logs
	Next    policyState
}

// decide applies PM2's restart policy (docs/pm2-compat.md §2), with one deliberate
// improvement: PM2 only counts unstable restarts in the first min_uptime × max_restarts after a
// start, so an app that starts crash-looping later restarts forever (PM2 #1496). corral counts
// consecutive short runs at any time, and a run of at least min_uptime resets the count.
func decide(app *spec.App, f exitFacts, st policyState) decision {
	next := st
	if f.Uptime >= spec.BackoffResetAfter {
		next.PrevDelay = 0
	}
	if !app.Autorestart {
		return decision{Reason: "autorestart is off", Next: next}
	}
	if !f.Signaled && isStopExitCode(app, f.Code) {
		return decision{Reason: "exit code is in stop_exit_codes", Next: next}
	}
	if f.Uptime < app.MinUptime.D() {
		next.Unstable++
		if next.Unstable >= app.MaxRestarts {
			return decision{Errored: true, Reason: "too many unstable restarts (runs shorter than min_uptime)", Next: next}
		}
	} else {
		next.Unstable = 0
	}
	delay := app.RestartDelay.D()
	if exp := app.ExpBackoffRestartDelay.D(); exp > 0 {
		if next.PrevDelay == 0 {
			delay = exp
		} else {
			delay = min(spec.MaxBackoffDelay, next.PrevDelay*3/2)
		}
		// PM2 floors the delay to whole milliseconds.
		delay = delay.Truncate(time.Millisecond)
		next.PrevDelay = delay
	}
	return decision{Restart: true, Delay: delay, Next: next}
}
