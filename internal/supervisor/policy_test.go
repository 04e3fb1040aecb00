package supervisor

import (
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

func TestDecideBackoffGrowsAndCaps(t *testing.T) {
	app := spec.Defaults()
	app.ExpBackoffRestartDelay = 100
	app.MaxRestarts = 1000
	st := policyState{}
	var got []time.Duration
	for range 12 {
		d := decide(&app, exitFacts{Uptime: 5 * time.Second}, st)
		if !d.Restart {
			t.Fatalf("no restart: %+v", d)
		}
		got = append(got, d.Delay)
		st = d.Next
	}
	want := []time.Duration{100, 150, 225, 337, 505, 757, 1135, 1702, 2553, 3829, 5743, 8614}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v (all: %v)", i, got[i], want[i]*time.Millisecond, got)
		}
	}
	for range 10 {
		st = decide(&app, exitFacts{Uptime: 5 * time.Second}, st).Next
	}
	if st.PrevDelay != spec.MaxBackoffDelay {
		t.Fatalf("delay not capped: %v", st.PrevDelay)
	}
	// A long run resets the backoff.
	if d := decide(&app, exitFacts{Uptime: time.Minute}, st); d.Delay != 100*time.Millisecond {
		t.Fatalf("after a long run delay = %v, want 100ms", d.Delay)
	}
}

func TestDecide(t *testing.T) {
	base := spec.Defaults()
	for _, tc := range []struct {
		name    string
		mod     func(*spec.App)
		facts   exitFacts
		st      policyState
		restart bool
		errored bool
		delay   time.Duration
	}{
		{name: "plain crash restarts at once", facts: exitFacts{Uptime: 5 * time.Second, Code: 1}, restart: true},
		{name: "restart_delay", mod: func(a *spec.App) { a.RestartDelay = 250 }, facts: exitFacts{Uptime: 5 * time.Second, Code: 1}, restart: true, delay: 250 * time.Millisecond},
		{name: "autorestart off", mod: func(a *spec.App) { a.Autorestart = false }, facts: exitFacts{Uptime: 5 * time.Second, Code: 1}},
		{name: "stop exit code", mod: func(a *spec.App) { a.StopExitCodes = []int{0, 3} }, facts: exitFacts{Uptime: 5 * time.Second, Code: 3}},
		{name: "stop exit codes ignore signals", mod: func(a *spec.App) { a.StopExitCodes = []int{-1} }, facts: exitFacts{Uptime: 5 * time.Second, Code: -1, Signaled: true}, restart: true},
		{name: "unstable below limit", facts: exitFacts{Uptime: 10 * time.Millisecond, Code: 1}, st: policyState{Unstable: 14}, restart: true},
		{name: "unstable reaches limit", facts: exitFacts{Uptime: 10 * time.Millisecond, Code: 1}, st: policyState{Unstable: 15}, errored: true},
		{name: "stable run resets count", facts: exitFacts{Uptime: 2 * time.Second, Code: 1}, st: policyState{Unstable: 15}, restart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := base.Clone()
			if tc.mod != nil {
				tc.mod(&app)
			}
			d := decide(&app, tc.facts, tc.st)
			if d.Restart != tc.restart || d.Errored != tc.errored || d.Delay != tc.delay {
				t.Fatalf("decide = %+v; want restart=%v errored=%v delay=%v", d, tc.restart, tc.errored, tc.delay)
			}
		})
	}
}
