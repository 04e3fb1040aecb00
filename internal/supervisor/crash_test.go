package supervisor

import (
	"context"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// TestExitMarksCrashes: an exit event says whether it was a crash (what the crash_rate alert
// counts): an exit corral did not ask for is one, unless its code is in stop_exit_codes; a
// stop is not.
func TestExitMarksCrashes(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		mod   func(*spec.App)
		stop  bool
		crash bool
	}{
		{name: "an unexpected exit", body: "exit 1\n", mod: func(a *spec.App) { a.Autorestart = false }, crash: true},
		{name: "a stop exit code", body: "exit 3\n", mod: func(a *spec.App) { a.StopExitCodes = []int{3} }},
		{name: "a stop", body: "exec sleep 100\n", stop: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.body, tc.mod)
			if err := h.p.Start(); err != nil {
				t.Fatal(err)
			}
			if tc.stop {
				testutil.Eventually(waitTimeout, 10*time.Millisecond, func() bool { return h.events.count("start") > 0 })
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				if err := h.p.Stop(ctx); err != nil {
					t.Fatal(err)
				}
			}
			var exit *api.Event
			testutil.Eventually(waitTimeout, 10*time.Millisecond, func() bool {
				for _, ev := range h.events.all() {
					if ev.Kind == api.EventExit {
						exit = &ev
						return true
					}
				}
				return false
			})
			if exit == nil {
				t.Fatal("no exit event")
			}
			if exit.Crash != tc.crash {
				t.Errorf("exit %+v: crash %v, want %v", *exit, exit.Crash, tc.crash)
			}
		})
	}
}
