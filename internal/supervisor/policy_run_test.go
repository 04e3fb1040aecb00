package supervisor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// countedBody numbers the runs of a script (1, 2, ...) in $n, through the file "count", then
// runs the cases: a case statement on $n, whose default case should fall through to what
// follows (gracefulBody, say).
func countedBody(cases, rest string) string {
	return `
n=$(cat "$DIR/count" 2>/dev/null || echo 0)
n=$((n+1))
echo $n > "$DIR/count"
case $n in
` + cases + `
esac
` + rest
}

// shortRuns makes every run of these tests "unstable" (shorter than min_uptime), however slow
// the machine.
func shortRuns(a *spec.App) { a.MinUptime = 600_000 }

// TestCrashRestarts: a program that crashes is started again at once, with a new pid; each
// automatic restart counts.
func TestCrashRestarts(t *testing.T) {
	h := newHarness(t, countedBody(`1|2) exit 1 ;;`, gracefulBody), shortRuns)
	h.start()
	_, at := h.waitEvent(0, "start")
	_, at = h.waitEvent(at+1, "start")
	_, at = h.waitEvent(at+1, "start")
	h.armed(h.events.all()[at].PID)
	info := h.p.Info()
	if info.Status != StatusOnline || info.Restarts != 2 || info.Unstable != 2 || !info.Exited || info.ExitCode != 1 {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "online", "exit", "start", "online", "exit", "start", "online")
	runs := h.events.procs()
	if len(runs) != 3 || runs[0].pid == runs[1].pid || runs[1].pid == runs[2].pid || info.PID != runs[2].pid {
		t.Fatalf("runs %v, Info.PID %d", runs, info.PID)
	}
	waitDead(t, runs[0], runs[1])
}

// TestNoRestart: when the policy says not to restart (autorestart off, an exit code in
// stop_exit_codes), the process is stopped; stop_exit_codes do not apply to other codes or to
// a signal.
func TestNoRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   string // how the first run ends
		mod     func(*spec.App)
		restart bool
		message string
	}{
		{name: "autorestart off", first: "exit 1", mod: func(a *spec.App) { a.Autorestart = false }, message: "autorestart is off"},
		{name: "autorestart off, clean exit", first: "exit 0", mod: func(a *spec.App) { a.Autorestart = false }, message: "autorestart is off"},
		{name: "stop exit code", first: "exit 3", mod: func(a *spec.App) { a.StopExitCodes = []int{0, 3} }, message: "exit code is in stop_exit_codes"},
		{name: "stop exit code 0", first: "exit 0", mod: func(a *spec.App) { a.StopExitCodes = []int{0} }, message: "exit code is in stop_exit_codes"},
		{name: "other exit code", first: "exit 4", mod: func(a *spec.App) { a.StopExitCodes = []int{0, 3} }, restart: true},
		{name: "clean exit restarts", first: "exit 0", restart: true},
		{name: "signal", first: "kill -TERM $$; sleep 1000", mod: func(a *spec.App) { a.StopExitCodes = []int{-1, 0, 143} }, restart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, countedBody("1) "+tc.first+" ;;", gracefulBody), tc.mod)
			h.start()
			if !tc.restart {
				info := h.waitStatus(StatusStopped)
				if info.Restarts != 0 || !info.Exited || info.PID != 0 {
					t.Fatalf("Info = %+v", info)
				}
				h.wantEvents(0, "start", "online", "exit", "stop")
				if ev := h.events.all()[3]; ev.Message != tc.message {
					t.Fatalf("stop event message %q, want %q", ev.Message, tc.message)
				}
				return
			}
			_, at := h.waitEvent(0, "exit")
			ev, _ := h.waitEvent(at, "start")
			h.armed(ev.PID)
			if info := h.p.Info(); info.Status != StatusOnline || info.Restarts != 1 {
				t.Fatalf("Info = %+v", info)
			}
			h.wantEvents(0, "start", "online", "exit", "start", "online")
		})
	}
}

// TestMaxRestartsErrored: max_restarts consecutive runs shorter than min_uptime make the
// process errored: no more restarts, a reason in the event and in the error log.
func TestMaxRestartsErrored(t *testing.T) {
	h := newHarness(t, "exit 1\n", func(a *spec.App) {
		shortRuns(a)
		a.MaxRestarts = 3
	})
	h.start()
	info := h.waitStatus(StatusErrored)
	if info.Restarts != 2 || info.Unstable != 3 || info.PID != 0 || info.ExitCode != 1 {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "online", "exit", "start", "online", "exit", "start", "online", "exit", "errored")
	if ev := h.events.all()[9]; !strings.Contains(ev.Message, "too many unstable restarts") {
		t.Fatalf("errored event = %+v", ev)
	}
	waitFileContains(t, info.Files.Err, "not restarting (max_restarts 3)")

	// Start forgives: the process runs again, with a fresh count.
	h.script("app.sh", countedBody("1|2) exit 1 ;;", gracefulBody))
	n := h.events.len()
	h.start()
	_, at := h.waitEvent(n, "start")
	_, at = h.waitEvent(at+1, "start")
	_, at = h.waitEvent(at+1, "start")
	h.armed(h.events.all()[at].PID)
	if info := h.p.Info(); info.Status != StatusOnline {
		t.Fatalf("after Start: %+v (two more short runs must not make it errored again)", info)
	}
}

// TestMinUptimeResetsUnstable: a run that lasts min_uptime resets the count of unstable
// runs, so short runs only make the process errored when they are consecutive.
func TestMinUptimeResetsUnstable(t *testing.T) {
	// Long enough that the runs meant to be short are, on a slow machine too.
	const minUptime = 3 * time.Second
	h := newHarness(t, countedBody(`
1|2|4|5) exit 1 ;;
3) echo $$ > "$DIR/long.pid"; while [ ! -e "$DIR/crash" ]; do sleep 0.02; done; exit 1 ;;
`, gracefulBody), func(a *spec.App) {
		a.MaxRestarts = 3
		a.MinUptime = spec.Millis(minUptime.Milliseconds())
	})
	h.start()
	h.waitFile("long.pid")
	long, _ := h.readProcFile("long.pid")
	if info := h.waitPID(long.pid); info.Unstable != 2 {
		t.Fatalf("during the long run: %+v", info)
	}
	// Let the third run outlive min_uptime, then crash it.
	testutil.WaitFor(t, "the run to outlive min_uptime", waitTimeout, func() bool {
		return time.Since(h.p.Info().StartedAt) > minUptime
	})
	h.touch("crash")
	_, at := h.waitEvent(0, "exit")
	for range 4 {
		_, at = h.waitEvent(at+1, "exit")
	}
	ev, _ := h.waitEvent(at, "start")
	h.armed(ev.PID)
	info := h.p.Info()
	if info.Status != StatusOnline || info.Unstable != 2 || info.Restarts != 5 {
		t.Fatalf("Info = %+v (runs 4 and 5 were short, run 3 was not)", info)
	}
}

// TestRestartDelay: restart_delay makes the process wait before the next run, in status
// "waiting restart".
func TestRestartDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	h := newHarness(t, countedBody("1) exit 1 ;;", gracefulBody), func(a *spec.App) {
		a.RestartDelay = spec.Millis(delay.Milliseconds())
	})
	h.start()
	exit, at := h.waitEvent(0, "exit")
	waiting, _ := h.waitEvent(at, "waiting restart")
	if waiting.DelayMS != delay.Milliseconds() {
		t.Fatalf("waiting restart event = %+v", waiting)
	}
	start, _ := h.waitEvent(at, "start")
	h.armed(start.PID)
	if d := start.Time.Sub(exit.Time); d < delay {
		t.Fatalf("restarted %v after the exit, before restart_delay %v", d, delay)
	}
	h.wantEvents(0, "start", "online", "exit", "waiting restart", "start", "online")
	if info := h.p.Info(); info.Restarts != 1 || info.Status != StatusOnline || info.PrevRestartDelay != 0 {
		t.Fatalf("Info = %+v", info)
	}
}

// TestExpBackoffRestartDelay: exp_backoff_restart_delay grows the delay by half each crash;
// Reset starts it over, and zeroes the counters.
func TestExpBackoffRestartDelay(t *testing.T) {
	h := newHarness(t, countedBody(`
1|2|3|5) exit 1 ;;
4) echo $$ > "$DIR/crashing.pid"; while [ ! -e "$DIR/crash" ]; do sleep 0.02; done; exit 1 ;;
`, gracefulBody), func(a *spec.App) {
		shortRuns(a)
		a.ExpBackoffRestartDelay = 100
	})
	h.start()
	h.waitFile("crashing.pid")
	var delays []int64
	for _, ev := range h.events.all() {
		if ev.Kind == "waiting restart" {
			delays = append(delays, ev.DelayMS)
		}
	}
	if len(delays) != 3 || delays[0] != 100 || delays[1] != 150 || delays[2] != 225 {
		t.Fatalf("delays %v, want [100 150 225]", delays)
	}
	crashing, _ := h.readProcFile("crashing.pid")
	info := h.waitPID(crashing.pid)
	if info.PrevRestartDelay != 225*time.Millisecond || info.Restarts != 3 || info.Unstable != 3 {
		t.Fatalf("Info = %+v", info)
	}
	created := info.CreatedAt

	if err := h.p.Reset(); err != nil {
		t.Fatal(err)
	}
	info = h.p.Info()
	if info.PrevRestartDelay != 0 || info.Restarts != 0 || info.Unstable != 0 || !info.CreatedAt.After(created) || info.Status != StatusOnline {
		t.Fatalf("after Reset: %+v", info)
	}

	// The backoff starts over: 100 ms again, then 150.
	n := h.events.len()
	h.touch("crash")
	first, at := h.waitEvent(n, "waiting restart")
	second, at := h.waitEvent(at+1, "waiting restart")
	ev, _ := h.waitEvent(at, "start")
	h.armed(ev.PID)
	if first.DelayMS != 100 || second.DelayMS != 150 {
		t.Fatalf("delays after Reset: %d, %d; want 100, 150", first.DelayMS, second.DelayMS)
	}
	if info := h.p.Info(); info.Restarts != 2 || info.PrevRestartDelay != 150*time.Millisecond {
		t.Fatalf("Info = %+v", info)
	}
}

// TestPendingRestartCancelled: Stop and Start during restart_delay cancel the pending
// restart: no run appears later on its own.
func TestPendingRestartCancelled(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(h *harness)
		want Status
	}{
		{"Stop", func(h *harness) { h.stop() }, StatusStopped},
		{"Start", func(h *harness) { h.start() }, StatusOnline},
		{"Restart", func(h *harness) {
			if err := h.p.Restart(h.ctx(), nil); err != nil {
				h.t.Fatal(err)
			}
		}, StatusOnline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, countedBody("1) exit 1 ;;", gracefulBody), func(a *spec.App) { a.RestartDelay = 3_600_000 })
			h.start()
			h.waitStatus(StatusWaitingRestart)
			tc.op(h)
			if st := h.p.Info().Status; st != tc.want {
				t.Fatalf("status %s, want %s", st, tc.want)
			}
			h.onLoop(func() {
				if h.p.restartTimer != nil {
					t.Error("the restart is still pending")
				}
			})
		})
	}
}

// TestExitSnapshotIsWhatComesNext: when a run exits, the snapshot a listing reads goes in one
// step to what happens next (launching again, waiting, stopped, errored): never "online" with
// no pid, which `jlist` used to show between a crash and its restart. The event hook runs on
// the loop right after the snapshot changes, so it sees exactly what a listing could.
func TestExitSnapshotIsWhatComesNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*spec.App)
		want Status
	}{
		{"restart at once", func(*spec.App) {}, StatusLaunching},
		{"restart later", func(a *spec.App) { a.RestartDelay = 60_000 }, StatusWaitingRestart},
		{"no restart", func(a *spec.App) { a.Autorestart = false }, StatusStopped},
		{"errored", func(a *spec.App) { a.MaxRestarts = 0 }, StatusErrored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			app := spec.Defaults()
			app.Name = "snap"
			app.Script = "exit 3"
			app.Shell = true
			app.Cwd = dir
			app.OutFile, app.ErrorFile = filepath.Join(dir, "out.log"), filepath.Join(dir, "err.log")
			app.MinUptime = 1 << 40 // every run is short
			tc.mod(&app)
			seen := make(chan Info, 1)
			var p *Process
			p = New(1, 0, &app, &Hooks{Logs: logs.NewManager(), Event: func(ev api.Event) {
				if ev.Kind == api.EventExit {
					select {
					case seen <- p.Info():
					default:
					}
				}
			}})
			t.Cleanup(func() { _ = p.Delete(context.Background()) })
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case info := <-seen:
				if info.Status != tc.want || info.PID != 0 || !info.Exited || info.ExitCode != 3 {
					t.Fatalf("snapshot at the exit: status %s pid %d exited %v code %d; want %s, no pid", info.Status, info.PID, info.Exited, info.ExitCode, tc.want)
				}
			case <-time.After(waitTimeout):
				t.Fatal("no exit")
			}
		})
	}
}
