package supervisor

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/sdnotify"
	"github.com/corral-pm/corral/internal/spec"
)

// This file is the other side of keep.go: a daemon that starts after another died (or was
// upgraded) takes over the runs it left, with their records and files from the keeper. The
// programs never notice: their pipes and channel stayed open in the keeper, and the new daemon
// reads them on from where the old one stopped.

// AdoptedRun is a run an earlier daemon started, as the keeper kept it.
type AdoptedRun struct {
	Rec   RunRecord
	Files RunFiles
	// Exit is its wait status when it exited while no daemon ran (the keeper reaped it), or
	// when its identity cannot be proven any more (Lost); nil while it runs.
	Exit *syscall.WaitStatus
	// Lost: the pid is gone, or is another program now, and no exit was recorded for it
	// (the keeper itself was restarted). It is treated as an exit of unknown status.
	Lost bool
}

// Restore creates a process slot as an earlier daemon left it (its counters and whether the
// user stopped it), with no run yet: Adopt gives it its runs.
func Restore(id, instance int, app *spec.App, hooks *Hooks, st SlotState) *Process {
	p := New(id, instance, app, hooks)
	_ = p.call(func() {
		p.runSeq = st.RunSeq
		p.seqSnapshot = st.RunSeq
		p.setUserStopped(st.UserStopped)
		p.pol = policyState{Unstable: st.Unstable, PrevDelay: st.PrevRestartDelay}
		p.update(func(i *Info) {
			i.Restarts, i.Unstable, i.PrevRestartDelay = st.Restarts, st.Unstable, st.PrevRestartDelay
			if !st.CreatedAt.IsZero() {
				i.CreatedAt = st.CreatedAt
			}
			i.Status = st.Status
			i.Exited, i.ExitCode, i.ExitSignal, i.LastError = st.Exited, st.ExitCode, st.ExitSignal, st.LastError
		})
	})
	return p
}

// Adopt takes over the runs of this slot that an earlier daemon left, and then does what that
// daemon would have done: a live run is served on (its output, its channel, its worker
// protocol, its readiness and stop in progress); a run that exited meanwhile goes through the
// restart policy; a slot that should run and has no run left is started. It returns a line per
// thing worth reporting.
func (p *Process) Adopt(runs []AdoptedRun, slot SlotState) []string {
	var notes []string
	_ = p.call(func() { notes = p.adopt(runs, slot) })
	return notes
}

func (p *Process) adopt(runs []AdoptedRun, slot SlotState) []string {
	var notes []string
	var live, ended []*run
	exits := map[*run]AdoptedRun{}
	for _, ar := range runs {
		r, err := p.adoptRun(ar)
		if err != nil {
			notes = append(notes, fmt.Sprintf("pid %d: %v", ar.Rec.PID, err))
			continue
		}
		if ar.Exit != nil || ar.Lost {
			ended = append(ended, r)
			exits[r] = ar
		} else {
			live = append(live, r)
		}
	}
	// Which live run does the slot stand for? The one that did, unless it was being
	// replaced: then the replacement (a reload the old daemon did not finish completes).
	var cur *run
	for _, r := range live {
		if r.current && !r.stopping {
			cur = r
		}
	}
	if cur == nil {
		for _, r := range live {
			if !r.current && !r.stopping {
				cur = r
				break
			}
		}
	}
	if cur == nil {
		for _, r := range live {
			if r.current {
				cur = r // stopping: a stop or restart in progress finishes below
			}
		}
	}
	for _, r := range live {
		if r == cur {
			continue
		}
		// A replaced run still draining, or a replacement that lost to the one kept: it
		// stops (gracefully, as the reload would have stopped it).
		p.old = append(p.old, r)
		r.stopping = false // beginStop arms its kill timer; it signals only what was not yet
		p.beginStop(r)
	}
	if cur != nil {
		p.cur = cur
		p.update(func(i *Info) {
			i.PID = cur.pid
			i.StartedAt = cur.started
			i.Ready = cur.ready
			switch {
			case cur.stopping:
				i.Status = StatusStopping
			case cur.ready:
				i.Status = StatusOnline
			default:
				i.Status = StatusLaunching
			}
		})
		if cur.stopping {
			// The stop or restart in progress goes on: the kill timer starts again.
			cur.stopping = false
			p.beginStop(cur)
			p.restartAfterStop(cur)
		} else if !cur.ready {
			p.awaitReady(cur)
		}
		p.emit(api.Event{Kind: api.EventAdopted, PID: cur.pid, Message: "adopted from the previous daemon"})
	}
	// Exits that happened while no daemon ran, oldest first. The one of the slot's current
	// run goes through the restart policy (unless a live run took its place).
	for _, r := range ended {
		ar := exits[r]
		code, sig := -1, ""
		if ar.Exit != nil {
			code, sig = exitOf(*ar.Exit)
		}
		if r.current && cur == nil {
			p.cur = r
			if r.stopping {
				p.restartAfterStop(r)
			}
		} else {
			p.old = append(p.old, r)
		}
		if ar.Lost {
			notes = append(notes, fmt.Sprintf("pid %d is gone and no exit status was kept for it: taken as an exit", r.pid))
		}
		go p.exitAfterOutput(r, code, sig)
	}
	if cur == nil && len(ended) == 0 && !p.userStopped && shouldRun(slot.Status) {
		// It should run, and nothing of it is left (it exited before its record was kept):
		// start it, once.
		p.update(func(i *Info) { i.Restarts++ })
		if err := p.spawn(); err != nil {
			notes = append(notes, "could not start it again: "+err.Error())
		}
	}
	return notes
}

// restartAfterStop: a stopping run whose slot the user did not stop was being restarted (a
// restart, a trigger, the memory limit): once it has exited the slot starts again, as the
// daemon that began the restart would have done. Loop only.
func (p *Process) restartAfterStop(r *run) {
	if p.userStopped {
		return
	}
	r.onExit = append(r.onExit, func() {
		if p.cur == nil && !p.userStopped && !p.deleting {
			p.update(func(i *Info) { i.Restarts++ })
			p.emit(api.Event{Kind: api.EventRestart})
			_ = p.spawn()
		}
	})
}

// shouldRun reports whether a slot in status s has a run, or is about to.
func shouldRun(s Status) bool {
	switch s {
	case StatusOnline, StatusLaunching, StatusWaitingRestart, StatusStopping:
		return true
	}
	return false
}

// adoptRun rebuilds a run from its record and files: the pumps read its pipes on, its channel
// is served again and its worker protocol resumes. The files are taken over (closed on error).
// Loop only.
func (p *Process) adoptRun(ar AdoptedRun) (*run, error) {
	rec, files := ar.Rec, ar.Files
	app := p.app()
	r := &run{
		app: app, pid: rec.PID, started: rec.Started, gone: make(chan struct{}),
		seq: rec.RunSeq, startTicks: rec.StartTicks, kept: true, adopted: true,
		ready: rec.Ready, stopping: rec.Stopping, signaled: rec.Signaled, current: rec.Current,
		pidFile: rec.PidFile, lost: ar.Lost, listened: rec.Ready && !rec.NotListened,
	}
	if rec.RunSeq > p.runSeq {
		p.runSeq = rec.RunSeq
		p.mu.Lock()
		p.seqSnapshot = p.runSeq
		p.mu.Unlock()
	}
	var drained <-chan struct{}
	if files.Out != nil && files.Err != nil {
		var fileErr error
		drained, fileErr = p.startPumps(app, FilesFor(app, p.info.ID), files.Out, files.Err)
		r.fileErr = fileErr
		if msg := p.setLogError(fileErr, true); msg != "" {
			p.emit(api.Event{Kind: api.EventLogError, Message: msg})
		}
	} else {
		for _, f := range []*os.File{files.Out, files.Err} {
			if f != nil {
				f.Close()
			}
		}
		closed := make(chan struct{})
		close(closed)
		drained = closed
	}
	r.drained = drained
	if ar.Exit != nil || ar.Lost {
		if files.IPC != nil {
			files.IPC.Close()
		}
		return r, nil
	}
	if p.protocol.Worker != nil {
		w, err := p.protocol.Worker.AdoptWorker(p.info.ID, rec.Worker, runControl{p: p, r: r})
		if err != nil {
			if files.IPC != nil {
				files.IPC.Close()
			}
			p.writeLine("err", "corral: cannot resume the cluster protocol of the adopted worker: "+err.Error())
		} else {
			r.worker = w
		}
	}
	if files.IPC != nil {
		ch, err := nodeipc.Open(files.IPC, &runIPC{p: p, r: r}, nodeipc.Options{HandleWindow: p.protocol.HandleWindow, Resume: true})
		if err != nil {
			p.writeLine("err", "corral: IPC channel: "+err.Error())
		} else {
			r.ipc = ch
		}
	}
	if r.worker != nil {
		r.worker.Attach(r.ipc, r.pid)
	}
	if rec.Notify != "" && strings.HasPrefix(rec.Notify, p.hooks.NotifyDir+"/") {
		if recv, err := sdnotify.Listen(rec.Notify, func(state map[string]string) { p.onNotify(r, state) }); err == nil {
			r.notify = recv
			r.notifyPath = rec.Notify
		}
	}
	var exited <-chan syscall.WaitStatus
	if p.hooks.WaitAdopted != nil {
		exited = p.hooks.WaitAdopted(r.pid)
	}
	go func() {
		ws, ok := <-exited // a nil channel (no way to learn) never ends: the run is served on
		code, sig := -1, ""
		if ok {
			code, sig = exitOf(ws)
		}
		p.exitAfterOutput(r, code, sig)
	}()
	return r, nil
}
