package supervisor

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// TestStopSendsKillSignal: Stop sends the app's kill_signal (SIGINT by default, or when it
// does not parse), and a program that exits on it is not killed.
func TestStopSendsKillSignal(t *testing.T) {
	const body = `
trap 'echo INT > "$DIR/stopped.$$"; exit 0' INT
trap 'echo TERM > "$DIR/stopped.$$"; exit 0' TERM
trap 'echo USR2 > "$DIR/stopped.$$"; exit 0' USR2
trap 'echo HUP > "$DIR/stopped.$$"; exit 0' HUP
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`
	for _, tc := range []struct {
		name       string
		killSignal string
		want       string
	}{
		{"empty", "", "INT"},
		{"default", spec.DefaultKillSignal, "INT"},
		{"SIGTERM", "SIGTERM", "TERM"},
		{"lower case without SIG", "usr2", "USR2"},
		{"number", "1", "HUP"},
		{"unknown", "SIGBOGUS", "INT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, body, func(a *spec.App) { a.KillSignal = tc.killSignal })
			pr := procOf(h.start().PID)
			h.armed(pr.pid)
			h.stop()
			if got := h.waitFile(gate("stopped", pr.pid)); got != tc.want {
				t.Fatalf("kill_signal %q: the program got SIG%s, want SIG%s", tc.killSignal, got, tc.want)
			}
			if info := h.p.Info(); info.ExitCode != 0 || info.ExitSignal != "" || info.Status != StatusStopped {
				t.Fatalf("Info = %+v", info)
			}
			if pr.alive() {
				t.Fatalf("pid %d still running", pr.pid)
			}
			h.wantEvents(0, "start", "online", "exit", "stop")
			waitGroupEmpty(t, pr.pid)
		})
	}
}

// TestStopEscalatesToSIGKILL: a program (and its child) that ignore the kill signal get
// SIGKILL, the whole process group, once kill_timeout has passed.
func TestStopEscalatesToSIGKILL(t *testing.T) {
	const killTimeout = 300 * time.Millisecond
	h := newHarness(t, `
trap '' INT TERM
sh -c 'echo $$ > "$DIR/grandchild.pid"; exec sleep 1000' >/dev/null 2>&1 &
echo $$ > "$DIR/armed.$$"
sleep 1000
`, func(a *spec.App) { a.KillTimeout = spec.Millis(killTimeout.Milliseconds()) })
	pr := procOf(h.start().PID)
	h.armed(pr.pid)
	h.waitFile("grandchild.pid")
	grandchild, _ := h.readProcFile("grandchild.pid")
	if !grandchild.alive() {
		t.Fatalf("grandchild %d not running", grandchild.pid)
	}

	began := time.Now()
	h.stop()
	if pr.alive() {
		t.Fatalf("pid %d still running after Stop returned", pr.pid)
	}
	info := h.p.Info()
	if info.Status != StatusStopped || info.ExitCode != -1 || info.ExitSignal != "SIGKILL" {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "online", "kill", "exit", "stop")
	evs := h.events.all()
	kill, exit := evs[2], evs[3]
	if kill.PID != pr.pid || !strings.Contains(kill.Message, "SIGKILL") {
		t.Fatalf("kill event = %+v", kill)
	}
	if exit.Signal != "SIGKILL" || exit.ExitCode == nil || *exit.ExitCode != -1 {
		t.Fatalf("exit event = %+v", exit)
	}
	if d := kill.Time.Sub(began); d < killTimeout {
		t.Fatalf("SIGKILL after %v, before kill_timeout %v", d, killTimeout)
	}
	waitDead(t, grandchild)
	waitGroupEmpty(t, pr.pid)
}

// TestStopReapsGroup: when the program exits on its kill signal but a child of it does not,
// the child does not outlive the stop by more than kill_timeout: it gets SIGKILL too. (The
// kill signal is SIGTERM here: a shell's background jobs ignore SIGINT.)
func TestStopReapsGroup(t *testing.T) {
	for _, tc := range []struct {
		name       string
		grandchild string
	}{
		// It exits with the program (the signal went to the whole group).
		{"grandchild exits on the signal", `sh -c 'echo $$ > "$DIR/grandchild.pid"; exec sleep 1000' >/dev/null 2>&1 &`},
		// It ignores the signal: SIGKILL once kill_timeout has passed.
		{"grandchild ignores the signal", `sh -c 'trap "" TERM; echo $$ > "$DIR/grandchild.pid"; exec sleep 1000' >/dev/null 2>&1 &`},
		// It also holds the program's stdout: the exit waits for its output, bounded.
		{"grandchild holds the output pipe", `sh -c 'trap "" TERM; echo $$ > "$DIR/grandchild.pid"; exec sleep 1000' &`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.grandchild+`
trap 'exit 0' TERM
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`, func(a *spec.App) {
				a.KillTimeout = 2000 // the program's trap runs well within it
				a.KillSignal = "SIGTERM"
			})
			pr := procOf(h.start().PID)
			h.armed(pr.pid)
			h.waitFile("grandchild.pid")
			grandchild, _ := h.readProcFile("grandchild.pid")
			h.stop()
			if pr.alive() {
				t.Fatalf("pid %d still running after Stop returned", pr.pid)
			}
			// The program itself exited on SIGTERM: its trap ran, exit code 0.
			if info := h.p.Info(); info.ExitCode != 0 || info.ExitSignal != "" {
				t.Fatalf("Info = %+v", info)
			}
			waitDead(t, grandchild)
			waitGroupEmpty(t, pr.pid)
		})
	}
}

// TestStopContextExpires: Stop gives up waiting when its context ends, but the stop goes on:
// the process is "stopping" until the program exits.
func TestStopContextExpires(t *testing.T) {
	h := newHarness(t, `
trap '' INT
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`, func(a *spec.App) { a.KillTimeout = 5000 })
	pr := procOf(h.start().PID)
	h.armed(pr.pid)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := h.p.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want a deadline error", err)
	}
	if info := h.p.Info(); info.Status != StatusStopping || info.PID != pr.pid {
		t.Fatalf("Info = %+v", info)
	}
	if err := h.p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	info := h.waitStatus(StatusStopped)
	if info.ExitSignal != "SIGKILL" {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "online", "exit", "stop")
	h.waitGone()
}
