package supervisor

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// TestLifecycle walks one slot through Start, a second Start, Stop, a second Stop, Start
// again and Delete, checking its Info and its events at each step.
func TestLifecycle(t *testing.T) {
	h := newHarness(t, gracefulBody, nil)

	info := h.p.Info()
	if info.Status != StatusStopped || info.PID != 0 || info.Exited || info.ID != 3 || info.Instance != 0 {
		t.Fatalf("new slot: %+v", info)
	}
	if info.Files.Out != h.path("logs/app-out-3.log") || info.Files.Err != h.path("logs/app-error-3.log") || info.Files.Pid != h.path("pids/app-3.pid") {
		t.Fatalf("files: %+v", info.Files)
	}
	if h.p.ID() != 3 {
		t.Fatalf("ID() = %d", h.p.ID())
	}

	// Start returns once the program is spawned; in fork mode without wait_ready it is
	// online at once.
	info = h.start()
	first := procOf(info.PID)
	if info.Status != StatusOnline || !info.Ready || info.PID <= 0 || info.StartedAt.IsZero() || info.Restarts != 0 {
		t.Fatalf("after Start: %+v", info)
	}
	if !first.alive() {
		t.Fatalf("pid %d is not running", info.PID)
	}
	if st, _ := readStat(info.PID); st.pgrp != info.PID {
		t.Fatalf("the run leads no process group of its own: pgrp %d, pid %d", st.pgrp, info.PID)
	}
	h.wantEvents(0, "start", "online")
	if evs := h.events.all(); evs[0].PID != info.PID || evs[1].PID != info.PID || evs[0].ID != 3 || evs[0].Name != "app" || evs[0].Time.IsZero() {
		t.Fatalf("events: %+v", evs)
	}

	h.armed(info.PID)

	// Starting a running process changes nothing.
	if err := h.p.Start(); err != nil {
		t.Fatal(err)
	}
	if again := h.p.Info(); again.PID != info.PID || again.Status != StatusOnline {
		t.Fatalf("second Start: %+v", again)
	}
	h.wantEvents(0, "start", "online")

	// Stop returns once the program has exited (gracefully: its trap ran, exit code 0).
	h.stop()
	info = h.p.Info()
	if info.Status != StatusStopped || info.PID != 0 || !info.Exited || info.ExitCode != 0 || info.ExitSignal != "" || info.Ready {
		t.Fatalf("after Stop: %+v", info)
	}
	if got := h.waitFile(gate("stopped", first.pid)); got != "INT" {
		t.Fatalf("the program got %s, want SIGINT (the default kill_signal)", got)
	}
	if first.alive() {
		t.Fatalf("pid %d still running after Stop returned", first.pid)
	}
	h.wantEvents(0, "start", "online", "exit", "stop")
	exit := h.events.all()[2]
	if exit.PID != first.pid || exit.ExitCode == nil || *exit.ExitCode != 0 || exit.Signal != "" {
		t.Fatalf("exit event: %+v", exit)
	}

	// Stopping a stopped process changes nothing.
	h.stop()
	h.wantEvents(0, "start", "online", "exit", "stop")

	// Start again: a new run; Start is not a restart.
	info = h.start()
	if info.PID == first.pid || info.Status != StatusOnline || info.Restarts != 0 {
		t.Fatalf("second run: %+v", info)
	}
	second := procOf(info.PID)
	h.wantEvents(0, "start", "online", "exit", "stop", "start", "online")

	// Delete stops the run, then ends the slot.
	if err := h.p.Delete(h.ctx()); err != nil {
		t.Fatal(err)
	}
	h.wantEvents(0, "start", "online", "exit", "stop", "start", "online", "exit", "stop", "delete")
	if second.alive() {
		t.Fatalf("pid %d still running after Delete returned", second.pid)
	}
	if info := h.p.Info(); info.Status != StatusStopped || info.PID != 0 {
		t.Fatalf("after Delete: %+v", info)
	}
}

// TestCallsAfterDelete: every call on a deleted process says so (Delete itself is idempotent)
// and emits nothing.
func TestCallsAfterDelete(t *testing.T) {
	h := newHarness(t, gracefulBody, nil)
	h.start()
	if err := h.p.Delete(h.ctx()); err != nil {
		t.Fatal(err)
	}
	n := h.events.len()
	app := h.app.Clone()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Start", h.p.Start},
		{"Stop", func() error { return h.p.Stop(h.ctx()) }},
		{"Restart", func() error { return h.p.Restart(h.ctx(), nil) }},
		{"Reload", func() error { _, err := h.p.Reload(h.ctx(), nil); return err }},
		{"Reset", h.p.Reset},
		{"Signal", func() error { return h.p.Signal(syscall.SIGUSR1) }},
		{"Send", func() error { return h.p.Send("hello") }},
		{"Update", func() error { return h.p.Update(&app) }},
		{"SetProtocol", func() error { return h.p.SetProtocol(Protocol{}) }},
	} {
		if err := tc.call(); !errors.Is(err, ErrDeleted) {
			t.Errorf("%s after Delete = %v, want ErrDeleted", tc.name, err)
		}
	}
	// The daemon's restarts for cron, watch and the memory limit find it gone too.
	if err := h.p.Trigger(h.ctx(), "cron"); !errors.Is(err, ErrDeleted) {
		t.Errorf("Trigger after Delete = %v, want ErrDeleted", err)
	}
	if err := h.p.MemoryExceeded(h.ctx(), 1<<30); !errors.Is(err, ErrDeleted) {
		t.Errorf("MemoryExceeded after Delete = %v, want ErrDeleted", err)
	}
	if err := h.p.Delete(h.ctx()); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if got := h.events.names()[n:]; len(got) != 0 {
		t.Errorf("events after Delete: %q", got)
	}
}

// TestExitStatus: how a run ended is in Info and in the exit event, for an exit code, a
// signal, and a clean exit.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		code     int
		signal   string
		exitCode int // in the event
	}{
		{name: "exit code", body: "exit 7\n", code: 7, exitCode: 7},
		{name: "clean exit", body: "exit 0\n", code: 0, exitCode: 0},
		{name: "killed by a signal", body: "kill -TERM $$\nsleep 1000\n", code: -1, signal: "SIGTERM", exitCode: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.body, func(a *spec.App) { a.Autorestart = false })
			h.start()
			info := h.waitStatus(StatusStopped)
			if !info.Exited || info.ExitCode != tc.code || info.ExitSignal != tc.signal || info.PID != 0 || info.Restarts != 0 {
				t.Fatalf("Info = %+v; want exit code %d, signal %q", info, tc.code, tc.signal)
			}
			h.wantEvents(0, "start", "online", "exit", "stop")
			evs := h.events.all()
			exit, stop := evs[2], evs[3]
			if exit.ExitCode == nil || *exit.ExitCode != tc.exitCode || exit.Signal != tc.signal || exit.PID != evs[0].PID {
				t.Fatalf("exit event = %+v", exit)
			}
			if stop.Message != "autorestart is off" {
				t.Fatalf("stop event message = %q", stop.Message)
			}
		})
	}
}

// TestRestart: Restart stops the run gracefully and starts a new one, counting a restart; a
// new spec given to Restart is the one the new run gets; a stopped process is simply started.
func TestRestart(t *testing.T) {
	h := newHarness(t, `echo "$VERSION" > "$DIR/version.$$"`+"\n"+gracefulBody, func(a *spec.App) {
		a.Env["VERSION"] = "1"
	})
	first := procOf(h.start().PID)
	h.armed(first.pid)
	if v := h.waitFile(gate("version", first.pid)); v != "1" {
		t.Fatalf("VERSION = %q", v)
	}

	next := h.app.Clone()
	next.Env["VERSION"] = "2"
	if err := h.p.Restart(h.ctx(), &next); err != nil {
		t.Fatal(err)
	}
	info := h.p.Info()
	if info.PID == first.pid || info.PID == 0 || info.Restarts != 1 || info.App != &next {
		t.Fatalf("after Restart: %+v", info)
	}
	if first.alive() {
		t.Fatalf("old pid %d still running", first.pid)
	}
	if got := h.waitFile(gate("stopped", first.pid)); got != "INT" {
		t.Fatalf("old run got %s", got)
	}
	if v := h.waitFile(gate("version", info.PID)); v != "2" {
		t.Fatalf("VERSION of the new run = %q, want the new spec's", v)
	}
	h.wantEvents(0, "start", "online", "exit", "stop", "restart", "start", "online")

	// Restarting a stopped process starts it (and counts).
	h.stop()
	n := h.events.len()
	if err := h.p.Restart(h.ctx(), nil); err != nil {
		t.Fatal(err)
	}
	if info := h.p.Info(); info.Status != StatusOnline || info.Restarts != 2 {
		t.Fatalf("Restart of a stopped process: %+v", info)
	}
	h.wantEvents(n, "restart", "start", "online")
}

// TestUpdate: Update changes the spec of the next run, not of the running one.
func TestUpdate(t *testing.T) {
	h := newHarness(t, `echo "$VERSION" > "$DIR/version.$$"`+"\n"+gracefulBody, func(a *spec.App) {
		a.Env["VERSION"] = "1"
	})
	first := h.start().PID
	h.armed(first)
	next := h.app.Clone()
	next.Env["VERSION"] = "2"
	if err := h.p.Update(&next); err != nil {
		t.Fatal(err)
	}
	if info := h.p.Info(); info.PID != first || info.App != &next {
		t.Fatalf("after Update: %+v", info)
	}
	if v := h.waitFile(gate("version", first)); v != "1" {
		t.Fatalf("running VERSION = %q", v)
	}
	h.stop()
	if v := h.waitFile(gate("version", h.start().PID)); v != "2" {
		t.Fatalf("VERSION after Update and Start = %q", v)
	}
}

// TestSignal: Signal reaches the running program (its whole group); without one it is an
// error.
func TestSignal(t *testing.T) {
	h := newHarness(t, `
trap 'echo USR1 > "$DIR/usr1.$$"' USR1
trap 'exit 0' INT
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`, nil)
	if err := h.p.Signal(syscall.SIGUSR1); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Signal before Start = %v", err)
	}
	pid := h.start().PID
	h.armed(pid)
	if err := h.p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if got := h.waitFile(gate("usr1", pid)); got != "USR1" {
		t.Fatalf("marker = %q", got)
	}
	if info := h.p.Info(); info.PID != pid || info.Status != StatusOnline {
		t.Fatalf("after a handled signal: %+v", info)
	}
}

// TestSpawnFailure: a program that cannot be started leaves the process errored, with the
// reason in Info, in an event and in its error log; once fixed it starts.
func TestSpawnFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(h *harness)
		want   string
	}{
		{"not executable", func(h *harness) { os.Chmod(h.app.Script, 0o644) }, "permission denied"},
		{"missing", func(h *harness) { os.Rename(h.app.Script, h.app.Script+".away") }, "no such file"},
		{"cwd missing", func(h *harness) { h.app.Cwd = h.path("nowhere") }, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, gracefulBody, nil)
			saved := *h.app
			tc.break_(h)
			err := h.p.Start()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want an error with %q", err, tc.want)
			}
			info := h.p.Info()
			if info.Status != StatusErrored || info.PID != 0 || !strings.Contains(info.LastError, tc.want) {
				t.Fatalf("Info = %+v", info)
			}
			h.wantEvents(0, "errored")
			if ev := h.events.all()[0]; !strings.Contains(ev.Message, tc.want) {
				t.Fatalf("errored event = %+v", ev)
			}
			waitFileContains(t, info.Files.Err, "corral: cannot start: ")

			// Fixed, it starts, and the error is cleared.
			os.Chmod(saved.Script, 0o755)
			os.Rename(saved.Script+".away", saved.Script)
			if err := h.p.Update(&saved); err != nil {
				t.Fatal(err)
			}
			if info := h.start(); info.Status != StatusOnline || info.LastError != "" {
				t.Fatalf("after the fix: %+v", info)
			}
		})
	}
}

// TestStartWhileStopping: a Start during a graceful stop starts a new run once the old one
// has exited, and the Stop still returns.
func TestStartWhileStopping(t *testing.T) {
	// The trap waits for the test's go-ahead (the file "exit") before exiting.
	h := newHarness(t, `
trap 'echo INT > "$DIR/stopping.$$"; while [ ! -e "$DIR/exit" ]; do sleep 0.02; done; exit 0' INT
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`, nil)
	first := h.start().PID
	h.armed(first)
	stopped := make(chan error, 1)
	go func() { stopped <- h.p.Stop(context.Background()) }()
	h.waitFile(gate("stopping", first))
	if st := h.p.Info().Status; st != StatusStopping {
		t.Fatalf("status during the stop = %s", st)
	}
	if err := h.p.Start(); err != nil {
		t.Fatal(err)
	}
	if info := h.p.Info(); info.PID != first {
		t.Fatalf("Start during a stop spawned at once: %+v", info)
	}
	h.touch("exit")
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-h.ctx().Done():
		t.Fatal("Stop did not return")
	}
	_, at := h.waitEvent(0, "stop")
	h.waitEvent(at, "online")
	if info := h.p.Info(); info.PID == first || info.PID == 0 || info.Status != StatusOnline {
		t.Fatalf("after the stop: %+v", info)
	}
	h.wantEvents(0, "start", "online", "exit", "stop", "start", "online")
}

// TestDeleteWithoutRun: a slot with no run is deleted at once, whatever its state, and a
// pending restart never happens.
func TestDeleteWithoutRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		mod    func(*spec.App)
		state  Status
		events []string
	}{
		{"never started", gracefulBody, nil, StatusStopped, []string{"delete"}},
		{"errored", "exit 1\n", func(a *spec.App) { a.MaxRestarts, a.MinUptime = 1, 600_000 }, StatusErrored, []string{"stop", "delete"}},
		{"waiting restart", "exit 1\n", func(a *spec.App) { a.RestartDelay = 3_600_000 }, StatusWaitingRestart, []string{"stop", "delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.body, tc.mod)
			if tc.state != StatusStopped {
				h.start()
			}
			h.waitStatus(tc.state)
			n := h.events.len()
			if err := h.p.Delete(h.ctx()); err != nil {
				t.Fatal(err)
			}
			h.wantEvents(n, tc.events...)
			if info := h.p.Info(); info.Status != StatusStopped {
				t.Fatalf("Info = %+v", info)
			}
			select {
			case <-h.p.done:
			case <-time.After(waitTimeout):
				t.Fatal("the loop has not ended")
			}
		})
	}
}
