package supervisor

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// reloadOutcome is what a Reload run in the background returned.
type reloadOutcome struct {
	res ReloadResult
	err error
}

// reloadAsync starts a Reload on its own goroutine.
func (h *harness) reloadAsync(ctx context.Context) <-chan reloadOutcome {
	out := make(chan reloadOutcome, 1)
	go func() {
		res, err := h.p.Reload(ctx, nil)
		out <- reloadOutcome{res, err}
	}()
	return out
}

// waitReload takes a Reload's outcome.
func (h *harness) waitReload(c <-chan reloadOutcome) reloadOutcome {
	h.t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(waitTimeout):
		h.t.Fatal("Reload did not return")
	}
	panic("unreachable")
}

// startReady starts a readyGateBody process and makes its first run ready.
func (h *harness) startReady() proc {
	h.t.Helper()
	pr := procOf(h.start().PID)
	h.armed(pr.pid)
	h.touch(gate("ready", pr.pid))
	if info := h.waitStatus(StatusOnline); info.PID != pr.pid {
		h.t.Fatalf("Info = %+v", info)
	}
	return pr
}

// TestReloadReplacesWhenReady: Reload starts a replacement; the old run keeps serving until the
// replacement is ready, and only then is stopped (gracefully); Reload returns once it is gone.
func TestReloadReplacesWhenReady(t *testing.T) {
	h := newHarness(t, readyGateBody, waitReady)
	old := h.startReady()
	n := h.events.len()
	done := h.reloadAsync(h.ctx())
	ev, _ := h.waitEvent(n, "reload")
	next := procOf(ev.PID)
	if next.pid == old.pid || !strings.Contains(ev.Message, "replacing pid") {
		t.Fatalf("reload event = %+v", ev)
	}
	h.armed(next.pid)
	if info := h.p.Info(); info.PID != old.pid || info.Status != StatusOnline || info.Restarts != 0 {
		t.Fatalf("while the replacement is not ready: %+v", info)
	}
	if !old.alive() {
		t.Fatal("the old run stopped before its replacement was ready")
	}

	h.touch(gate("ready", next.pid))
	o := h.waitReload(done)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.ID != 3 || o.res.OldPID != old.pid || o.res.NewPID != next.pid || o.res.ReadyIn <= 0 || o.res.Started {
		t.Fatalf("ReloadResult = %+v", o.res)
	}
	if old.alive() {
		t.Fatalf("old pid %d still running after Reload returned", old.pid)
	}
	if got := h.waitFile(gate("stopped", old.pid)); got != "INT" {
		t.Fatalf("the old run got %s", got)
	}
	info := h.p.Info()
	if info.PID != next.pid || info.Status != StatusOnline || !info.Ready || info.Restarts != 1 {
		t.Fatalf("after Reload: %+v", info)
	}
	h.wantEvents(n, "reload", "online", "exit")
	evs := h.events.all()
	if evs[n+1].PID != next.pid || !strings.Contains(evs[n+1].Message, "took over") {
		t.Fatalf("online event = %+v", evs[n+1])
	}
	if evs[n+2].PID != old.pid || evs[n+2].Message != "replaced run exited" {
		t.Fatalf("exit event = %+v", evs[n+2])
	}
	if !next.alive() {
		t.Fatal("the replacement is not running")
	}
}

// TestReloadWithoutWaitReady: in fork mode without wait_ready a replacement is ready at once.
func TestReloadWithoutWaitReady(t *testing.T) {
	h := newHarness(t, gracefulBody, nil)
	old := procOf(h.start().PID)
	h.armed(old.pid)
	res, err := h.p.Reload(h.ctx(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OldPID != old.pid || res.NewPID == old.pid || res.Started {
		t.Fatalf("ReloadResult = %+v", res)
	}
	if info := h.p.Info(); info.PID != res.NewPID || info.Status != StatusOnline || info.Restarts != 1 {
		t.Fatalf("Info = %+v", info)
	}
	if old.alive() {
		t.Fatal("old run still running")
	}
	h.wantEvents(0, "start", "online", "reload", "online", "exit")
}

// TestReloadFails: when the replacement is not ready within listen_timeout, or exits before it
// is, Reload says why (ReloadError), the replacement is gone and the old run keeps serving.
func TestReloadFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second string // what the replacement (run 2) does instead of becoming ready
		reason string
		events []string
		exit   string // the replacement's exit event message
	}{
		{
			name:   "not ready in time",
			second: `2) echo $$ > "$DIR/armed.$$"; trap 'exit 0' INT; while :; do sleep 0.05; done ;;`,
			reason: "was not ready within listen_timeout (1s): it never sent READY=1 to $NOTIFY_SOCKET (sd_notify)",
			events: []string{"reload", "reload failed", "exit"},
			exit:   "replaced run exited", // stopped at the failure, among the runs draining
		},
		{
			name:   "exits",
			second: `2) exit 3 ;;`,
			reason: "exited with code 3 before it was ready",
			events: []string{"reload", "reload failed", "exit"},
			exit:   "replacement exited before it was ready",
		},
		{
			name:   "killed",
			second: `2) kill -KILL $$ ;;`,
			reason: "was killed by SIGKILL before it was ready",
			events: []string{"reload", "reload failed", "exit"},
			exit:   "replacement exited before it was ready",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, countedBody(tc.second, readyGateBody), func(a *spec.App) {
				a.WaitReady = true
				a.ListenTimeout = 1000 // the first run is made ready by the test, at once
			})
			old := h.startReady()
			n := h.events.len()
			res, err := h.p.Reload(h.ctx(), nil)
			var re *ReloadError
			if !errors.As(err, &re) {
				t.Fatalf("Reload = %v, want a ReloadError", err)
			}
			if re.ID != 3 || re.NewPID == 0 || re.NewPID == old.pid || re.Reason != tc.reason || res.NewPID != re.NewPID {
				t.Fatalf("ReloadError = %+v (%v), want reason %q; result %+v", re, err, tc.reason, res)
			}
			if !strings.Contains(err.Error(), "the old one keeps serving") {
				t.Fatalf("error: %v", err)
			}
			info := h.p.Info()
			if info.PID != old.pid || info.Status != StatusOnline || info.Restarts != 0 || !old.alive() {
				t.Fatalf("after the failed reload: %+v", info)
			}
			ev, _ := h.waitEvent(n, "exit")
			if ev.PID != re.NewPID || ev.Message != tc.exit {
				t.Fatalf("replacement's exit event = %+v, want message %q", ev, tc.exit)
			}
			h.wantEvents(n, tc.events...)
			waitDead(t, procOf(re.NewPID))
			waitFileContains(t, info.Files.Err, "corral: reload: ")
			if !old.alive() || h.p.Info().PID != old.pid {
				t.Fatal("the old run did not keep serving")
			}
		})
	}
}

// TestReloadCannotStart: a replacement that cannot even be spawned fails the reload at once.
func TestReloadCannotStart(t *testing.T) {
	h := newHarness(t, gracefulBody, nil)
	old := procOf(h.start().PID)
	broken := h.app.Clone()
	broken.Script = h.path("missing.sh")
	_, err := h.p.Reload(h.ctx(), &broken)
	var re *ReloadError
	if !errors.As(err, &re) || re.NewPID != 0 || !strings.HasPrefix(re.Reason, "could not start: ") {
		t.Fatalf("Reload = %v", err)
	}
	if info := h.p.Info(); info.PID != old.pid || info.Status != StatusOnline || !old.alive() {
		t.Fatalf("Info = %+v", info)
	}
}

// TestReloadStartsWhenNotServing: a process that is not running is started by Reload; one
// still launching (nothing ready to keep serving) is restarted.
func TestReloadStartsWhenNotServing(t *testing.T) {
	t.Run("stopped", func(t *testing.T) {
		h := newHarness(t, gracefulBody, nil)
		res, err := h.p.Reload(h.ctx(), nil)
		if err != nil {
			t.Fatal(err)
		}
		info := h.p.Info()
		if !res.Started || res.NewPID == 0 || res.NewPID != info.PID || res.OldPID != 0 || info.Status != StatusOnline {
			t.Fatalf("ReloadResult %+v, Info %+v", res, info)
		}
		h.wantEvents(0, "start", "online")
	})
	t.Run("launching", func(t *testing.T) {
		h := newHarness(t, readyGateBody, waitReady)
		old := procOf(h.start().PID)
		h.armed(old.pid)
		res, err := h.p.Reload(h.ctx(), nil)
		if err != nil {
			t.Fatal(err)
		}
		info := h.p.Info()
		if !res.Started || res.OldPID != old.pid || info.PID == old.pid || info.Restarts != 1 {
			t.Fatalf("ReloadResult %+v, Info %+v", res, info)
		}
		if old.alive() {
			t.Fatal("old run still running")
		}
		h.wantEvents(0, "start", "exit", "stop", "restart", "start")
	})
}

// TestReloadContextExpires: Reload stops waiting when its context ends; the replacement still
// takes over once it is ready.
//
// From the end of the Reload call to the takeover, the test reaches the loop by no means that
// would order the caller's memory accesses before the loop's (no call, no write syscall, which
// the race detector counts as synchronising with every later read syscall, such as the notify
// socket's): the replacement is made ready by a signal, so the race detector sees what the
// caller of an abandoned Reload and the loop still share.
func TestReloadContextExpires(t *testing.T) {
	// The replacement (run 2) becomes ready on SIGUSR2.
	h := newHarness(t, countedBody(`
2) trap 'go=1' USR2
   echo $$ > "$DIR/armed.$$"
   while [ -z "$go" ]; do sleep 0.02; done
   : > "$DIR/ready.$$" ;;
`, readyGateBody), waitReady)
	old := h.startReady()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := h.reloadAsync(ctx)
	ev, _ := h.waitEvent(0, "reload")
	h.armed(ev.PID)
	cancel()
	o := h.waitReload(done)
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("Reload = %v, want a context error", o.err)
	}
	if o.res.OldPID != old.pid || o.res.NewPID != ev.PID {
		t.Fatalf("ReloadResult = %+v", o.res)
	}
	if err := syscall.Kill(ev.PID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the replacement to take over", waitTimeout, func() bool { return h.p.Info().PID == ev.PID })
	waitDead(t, old)
	if info := h.p.Info(); info.Status != StatusOnline {
		t.Fatalf("Info = %+v", info)
	}
}

// TestStopDuringReload: a Stop while a replacement is pending stops both runs; the Reload
// fails.
func TestStopDuringReload(t *testing.T) {
	h := newHarness(t, readyGateBody, waitReady)
	old := h.startReady()
	n := h.events.len()
	done := h.reloadAsync(h.ctx())
	ev, _ := h.waitEvent(n, "reload")
	next := procOf(ev.PID)
	h.armed(next.pid)
	h.stop()
	if old.alive() || next.alive() {
		t.Fatalf("still running after Stop: old %v, replacement %v", old.alive(), next.alive())
	}
	var re *ReloadError
	if o := h.waitReload(done); !errors.As(o.err, &re) || re.NewPID != next.pid {
		t.Fatalf("Reload = %v, want a ReloadError for pid %d", o.err, next.pid)
	}
	if info := h.p.Info(); info.Status != StatusStopped || info.PID != 0 {
		t.Fatalf("Info = %+v", info)
	}
	h.onLoop(func() {
		if h.p.cur != nil || h.p.next != nil || len(h.p.old) != 0 {
			t.Errorf("runs left: cur %v next %v old %v", h.p.cur, h.p.next, h.p.old)
		}
	})
}

// TestReloadTakeoverCancelsPendingRestart: when the old run crashes during a reload and waits
// for restart_delay, the replacement that becomes ready takes the slot and the pending restart
// is dropped: it would otherwise spawn a run over the replacement, which nothing would stop.
func TestReloadTakeoverCancelsPendingRestart(t *testing.T) {
	// USR1 makes a run crash (exit 1).
	h := newHarness(t, `trap 'exit 1' USR1
`+readyGateBody, func(a *spec.App) {
		waitReady(a)
		a.RestartDelay = 3_600_000
	})
	old := h.startReady()
	n := h.events.len()
	done := h.reloadAsync(h.ctx())
	ev, _ := h.waitEvent(n, "reload")
	next := procOf(ev.PID)
	h.armed(next.pid)

	if err := h.p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(StatusWaitingRestart)
	waitDead(t, old)

	h.touch(gate("ready", next.pid))
	if o := h.waitReload(done); o.err != nil {
		t.Fatal(o.err)
	}
	if info := h.p.Info(); info.PID != next.pid || info.Status != StatusOnline {
		t.Fatalf("Info = %+v", info)
	}
	h.onLoop(func() {
		if h.p.restartTimer != nil {
			t.Error("a restart is still pending after the replacement took over")
		}
	})
	h.stop()
	waitDead(t, next)
}

// TestReloadPidFile: the pid file names the run serving: the replacement once it has taken
// over, the old run if the replacement failed.
func TestReloadPidFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ready bool
	}{{"replaced", true}, {"replacement not ready", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, readyGateBody, func(a *spec.App) {
				waitReady(a)
				if !tc.ready {
					a.ListenTimeout = 1000
				}
			})
			old := h.startReady()
			path := h.p.Info().Files.Pid
			n := h.events.len()
			done := h.reloadAsync(h.ctx())
			ev, _ := h.waitEvent(n, "reload")
			if tc.ready {
				h.armed(ev.PID)
				h.touch(gate("ready", ev.PID))
			}
			o := h.waitReload(done)
			if tc.ready != (o.err == nil) {
				t.Fatalf("Reload = %v", o.err)
			}
			serving := h.p.Info().PID
			if tc.ready && serving != ev.PID || !tc.ready && serving != old.pid {
				t.Fatalf("serving pid %d (old %d, replacement %d)", serving, old.pid, ev.PID)
			}
			// Whichever run is not serving exits; then the file must still name the one that is.
			h.waitEvent(n, "exit")
			if got := readPid(t, path); got != serving {
				t.Fatalf("pid file = %d, want %d (the serving run)", got, serving)
			}
			h.stop()
			if got := readPid(t, path); got != 0 {
				t.Fatalf("pid file = %d after Stop", got)
			}
		})
	}
}
