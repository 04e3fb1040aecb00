package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"golang.org/x/sys/unix"
)

// ParseSignal turns "SIGTERM", "TERM", "sigterm" or "15" into a signal.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "" {
		return 0, fmt.Errorf("empty signal name")
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	if sig := unix.SignalNum("SIG" + n); sig != 0 {
		return sig, nil
	}
	var num int
	if _, err := fmt.Sscanf(n, "%d", &num); err == nil && num > 0 && num < 65 {
		return syscall.Signal(num), nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// killSignal is the signal that asks a run of app to stop: its kill_signal, SIGINT (PM2's
// default) if that does not parse.
func killSignal(app *spec.App) syscall.Signal {
	sig, err := ParseSignal(app.KillSignal)
	if err != nil {
		return syscall.SIGINT
	}
	return sig
}

// SignalName is the conventional name of sig ("SIGINT").
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// signalTree sends sig to the process group led by pid (each app runs in its own group, so its
// children get the signal too), or, if there is no such group any more (the program moved to
// another one), to pid itself. Never both: a program that treats a second SIGINT as "quit
// now" must get exactly one.
func signalTree(pid int, sig syscall.Signal) error {
	if syscall.Kill(-pid, sig) == nil {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil // already gone
		}
		return fmt.Errorf("signal %s to pid %d: %w", SignalName(sig), pid, err)
	}
	return nil
}

// groupAlive reports whether any process is left in the group led by pgid.
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// reapGroup makes sure nothing an app started outlives it: once the main process has exited,
// whatever is left of its process group gets sig (unless it was already sent) and, after
// timeout, SIGKILL. It runs in its own goroutine and polls with a deadline.
func reapGroup(pgid int, sig syscall.Signal, alreadySignaled bool, timeout time.Duration) {
	if !groupAlive(pgid) {
		return
	}
	if !alreadySignaled {
		_ = syscall.Kill(-pgid, sig)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !groupAlive(pgid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
