package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// ReloadResult describes one process's reload.
type ReloadResult struct {
	ID      int           `json:"pm_id"`
	OldPID  int           `json:"old_pid"`
	NewPID  int           `json:"new_pid"`
	ReadyIn time.Duration `json:"ready_in"`
	// Started is true when the process was not running and was simply started.
	Started bool `json:"started,omitempty"`
}

// ReloadError says why a replacement did not take over; the old run is still serving.
type ReloadError struct {
	ID     int
	NewPID int
	Reason string
}

func (e *ReloadError) Error() string {
	return fmt.Sprintf("process %d: replacement (pid %d) %s; the old one keeps serving", e.ID, e.NewPID, e.Reason)
}

// Reload replaces the running program without a gap (cluster mode): a new run starts; once it
// is ready (listening, or 'ready' with wait_ready) within listen_timeout, it takes over, and
// only then is the old run taken out of rotation and stopped gracefully. Reload returns after
// the old run has exited. If the replacement is not ready in time (or dies), it is stopped,
// the old run stays, and the error says why. A process that is not running is started.
func (p *Process) Reload(ctx context.Context, app *spec.App) (ReloadResult, error) {
	res := ReloadResult{ID: p.info.ID}
	done := make(chan error, 1)
	// The takeover happens on the loop, possibly after this call has given up waiting (ctx)
	// and returned res: so it hands its time over rather than writing res.
	readyIn := make(chan time.Duration, 1)
	restartedPID := make(chan int, 1) // the new pid when the process was restarted instead
	if err := p.call(func() {
		if app != nil {
			p.setApp(app)
		}
		p.setUserStopped(false)
		if p.cur == nil || p.cur.stopping || !p.cur.ready || p.next != nil {
			// Nothing ready to keep serving: replacing means starting.
			p.cancelRestartTimer()
			res.Started = true
			if p.cur == nil {
				p.pol = policyState{}
				err := p.spawn()
				if p.cur != nil {
					res.NewPID = p.cur.pid
				}
				done <- err
				return
			}
			res.OldPID = p.cur.pid
			go func() {
				err := p.Restart(ctx, nil)
				restartedPID <- p.Info().PID
				done <- err
			}()
			return
		}
		old := p.cur
		res.OldPID = old.pid
		cfg := p.app()
		r, err := p.startRun(cfg)
		if err != nil {
			done <- &ReloadError{ID: p.info.ID, Reason: "could not start: " + err.Error()}
			return
		}
		p.next = r
		r.holdReady = true
		res.NewPID = r.pid
		began := time.Now()
		p.emit(api.Event{Kind: api.EventReload, PID: r.pid, OldPID: old.pid, Message: fmt.Sprintf("replacing pid %d", old.pid)})
		r.onReady = append(r.onReady, func() {
			took := time.Since(began)
			readyIn <- took
			prev := p.cur
			p.next = nil
			p.cur = r
			p.claimFiles(r)
			p.pol = policyState{}
			// If the old run crashed meanwhile and waits for restart_delay, that restart is
			// moot: it would spawn a run in r's place, leaving r running untracked.
			p.cancelRestartTimer()
			p.update(func(i *Info) {
				i.PID = r.pid
				i.StartedAt = r.started
				i.Status = StatusOnline
				i.Ready = true
				i.Restarts++
				i.LastError = ""
			})
			p.emit(api.Event{Kind: api.EventOnline, PID: r.pid, OldPID: old.pid, Message: fmt.Sprintf("took over from pid %d after %v", old.pid, took.Round(time.Millisecond))})
			if prev == nil || prev.exited {
				done <- nil
				return
			}
			p.old = append(p.old, prev)
			prev.onExit = append(prev.onExit, func() { done <- nil })
			p.beginStop(prev)
		})
		r.onReadyTimeout = append(r.onReadyTimeout, func() {
			if r.ready {
				return
			}
			if p.next == r {
				p.next = nil
			}
			reason := fmt.Sprintf("was not ready within listen_timeout (%v)", cfg.ListenTimeout.D())
			switch {
			case r.exited && r.exitSignal != "":
				reason = "was killed by " + r.exitSignal + " before it was ready"
			case r.exited:
				reason = fmt.Sprintf("exited with code %d before it was ready", r.exitCode)
			case p.readyOnListen(cfg):
				reason += ": it never called listen()"
			case p.protocol.Sockets != nil && !cfg.WaitReady:
				reason += ": its port did not answer"
			case cfg.WaitReady && cfg.IsNode():
				reason += ": it never sent process.send('ready')"
			case cfg.WaitReady:
				reason += ": it never sent READY=1 to $NOTIFY_SOCKET (sd_notify)"
			}
			if !r.exited {
				p.old = append(p.old, r)
				p.beginStop(r)
			}
			p.writeLine("err", "corral: reload: "+reason)
			p.emit(api.Event{Kind: api.EventReloadFailed, PID: r.pid, OldPID: res.OldPID, Message: reason})
			done <- &ReloadError{ID: p.info.ID, NewPID: r.pid, Reason: reason}
		})
		p.awaitReady(r)
		if p.readyOnListen(cfg) && !old.listened {
			// The app never called listen() (a cluster worker with no server): there is no
			// port to keep serving, so its replacement is judged as in fork mode, by staying
			// up min_uptime (at most listen_timeout) without exiting. PM2 restarts such apps.
			settle := min(cfg.MinUptime.D(), cfg.ListenTimeout.D())
			r.uptimeTimer = time.AfterFunc(settle, func() {
				p.post(func() {
					if p.next == r && !r.exited && !r.stopping {
						p.markReady(r, fmt.Sprintf("up %v without exiting (the app does not listen)", settle))
					}
				})
			})
		}
	}); err != nil {
		return res, err
	}
	select {
	case err := <-done:
		select {
		case res.ReadyIn = <-readyIn: // sent before done, on the loop
		case res.NewPID = <-restartedPID: // sent before done
		default:
		}
		return res, err
	case <-ctx.Done():
		return res, fmt.Errorf("process %d: reload did not finish in time: %w", p.info.ID, ctx.Err())
	}
}

// SetProtocol changes the protocol of the next runs (an app switched between fork and cluster
// mode, or changed its sockets).
func (p *Process) SetProtocol(pr Protocol) error {
	return p.call(func() { p.protocol = pr })
}
