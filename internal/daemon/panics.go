package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
)

// What the daemon does when one of its goroutines panics (docs/daemon-survival.md §7): a panic
// is a bug, and the state it interrupted may be half-changed, so under a keeper the daemon logs
// the stack and exits, and the keeper starts a fresh daemon that takes every app over. The
// goroutines fall in three groups:
//   - an app's ops (owner.go runOp) and the API's and the HTTP listener's handlers
//     (recoverHandler) recover the panic and call onPanic, which logs the stack in corral.log
//     and exits with exitPanic;
//   - net/http would otherwise recover a handler's panic itself, log it and serve on: a
//     handler that panicked holding a lock would leave the daemon limping, hence
//     recoverHandler;
//   - every other goroutine (the sampler, the process loops, the cluster's readers, cron
//     jobs) has no recover: Go prints the trace on stderr, which the keeper points at
//     corral.log, and the process exits with code 2; the keeper restarts it all the same.

// exitPanic is the daemon's exit code after a panic it recovered (EX_SOFTWARE, sysexits.h).
const exitPanic = 70

// onPanic handles a panic recovered in an op or a handler. Under a keeper the daemon logs the
// stack and exits, and the keeper starts a fresh one that takes every app over (the apps do not
// notice); that is safer than carrying on with state the panic may have left half-changed.
// Without a keeper, exiting would take every app down with it, so it logs and carries on.
func (d *Daemon) onPanic(err error, stack []byte) {
	d.logf("%v\n%s", err, stack)
	if d.keeper != nil {
		d.logf("exiting after an internal error: the keeper starts a new daemon, which takes every app over")
		d.logFile.Close()
		os.Exit(exitPanic)
	}
}

// recoverHandler makes a panic in h, which serves the API or the HTTP listener, the daemon's
// (onPanic) rather than net/http's. http.ErrAbortHandler is no bug (a handler's way to abort
// its answer) and goes on to net/http. Without a keeper, onPanic returns and the connection is
// aborted as net/http would, without its second copy of the stack.
func recoverHandler(server string, onPanic func(error, []byte), h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			onPanic(fmt.Errorf("internal error in the %s serving %s %s: %v", server, r.Method, r.URL.Path, v), debug.Stack())
			panic(http.ErrAbortHandler)
		}()
		h.ServeHTTP(w, r)
	})
}
