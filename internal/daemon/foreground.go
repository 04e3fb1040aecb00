package daemon

import (
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/supervisor"
)

// What `corral run` adds to the daemon it runs in its own process: signals forwarded to the
// apps when it is a container's PID 1, a stop bounded by a grace period, and a report of how
// the stop went, from which `corral run` picks its exit code (docs/containers.md).

// foreground is the state of that mode; the zero value is the background daemon's.
type foreground struct {
	mu   sync.Mutex
	opts api.ForegroundOptions
	// draining is set when a stop begins: /readyz and `ping --ready` answer "not ready" from
	// then on, so an orchestrator stops sending traffic while the apps drain.
	draining atomic.Bool
	// killed counts EventKill events seen while draining.
	killed atomic.Int64
	report api.StopReport
}

// SetForeground configures the foreground mode; call it before Run.
func (d *Daemon) SetForeground(o api.ForegroundOptions) {
	d.fg.mu.Lock()
	d.fg.opts = o
	d.fg.mu.Unlock()
}

func (d *Daemon) foregroundOptions() api.ForegroundOptions {
	d.fg.mu.Lock()
	defer d.fg.mu.Unlock()
	return d.fg.opts
}

// StopReport says how the last stop went; valid once Run has returned.
func (d *Daemon) StopReport() api.StopReport {
	d.fg.mu.Lock()
	defer d.fg.mu.Unlock()
	r := d.fg.report
	r.Errored = append([]string(nil), r.Errored...)
	r.Killed = int(d.fg.killed.Load())
	return r
}

// Draining reports whether a stop has begun.
func (d *Daemon) Draining() bool { return d.fg.draining.Load() }

// forwardSignal passes sig to every running process of every app (their process groups, as
// `corral sendSignal` does), when the foreground mode asks for it; it reports whether it did.
func (d *Daemon) forwardSignal(sig syscall.Signal) bool {
	if !d.foregroundOptions().ForwardSignals {
		return false
	}
	n := d.signalRunning(sig)
	d.logf("received %s: forwarded to %d processes", supervisor.SignalName(sig), n)
	return true
}

// signalRunning sends sig to every process that runs now and says to how many it went.
func (d *Daemon) signalRunning(sig syscall.Signal) int {
	n := 0
	for _, l := range d.listing() {
		if l.p.Info().PID > 0 && l.p.Signal(sig) == nil {
			n++
		}
	}
	return n
}

// beginDrain marks the start of a stop: readiness drops at once, and the apps that have an
// errored process now are noted for the report. sig is the signal that asked for it, if any.
// Only the first call counts (`corral kill` stops the apps before Run's own stop).
func (d *Daemon) beginDrain(sig string) {
	d.builds.cancelAll() // a build would hold its app's stop up until it ended
	if d.fg.draining.Load() {
		return
	}
	errored := map[string]bool{}
	for _, l := range d.listing() {
		if l.p.Info().Status == supervisor.StatusErrored {
			errored[l.view.spec.Name] = true
		}
	}
	names := make([]string, 0, len(errored))
	for n := range errored {
		names = append(names, n)
	}
	sort.Strings(names)
	d.fg.mu.Lock()
	d.fg.report = api.StopReport{Signal: sig, Errored: names}
	d.fg.mu.Unlock()
	d.fg.draining.Store(true)
}

// noteStopEvent counts the kills of a stop (onEvent calls it for every event).
func (d *Daemon) noteStopEvent(ev api.Event) {
	if ev.Kind == api.EventKill && d.fg.draining.Load() {
		d.fg.killed.Add(1)
	}
}

// stopAllWithin stops every app (deleteAll). With a grace period, processes still running
// when it runs out are killed, so the whole stop ends within it: an orchestrator's own
// SIGKILL (Kubernetes' terminationGracePeriodSeconds) would otherwise take the daemon down
// before it could say how the stop went.
func (d *Daemon) stopAllWithin() {
	grace := d.foregroundOptions().Grace
	if grace <= 0 {
		d.deleteAll()
		return
	}
	done := make(chan struct{})
	go func() { defer close(done); d.deleteAll() }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	n := d.signalRunning(syscall.SIGKILL)
	d.fg.killed.Add(int64(n))
	d.logf("the grace period (%v) ran out: killed %d processes still running", grace, n)
	<-done
}
