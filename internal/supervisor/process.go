package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/spec"
)

// ErrDeleted is returned by calls on a process that has been deleted.
var ErrDeleted = errors.New("process was deleted")

// Hooks connect a process to the daemon around it. Every field may be nil/zero except Logs.
type Hooks struct {
	Logs *logs.Manager
	Hub  *logs.Hub
	// Event is called on the process loop; it must not block.
	Event func(api.Event)
	// Message receives the user messages a Node process sends with process.send.
	Message func(id int, m nodeipc.Message)
	// Internal receives the internal messages (cmd NODE_*) of runs that are no cluster worker,
	// such as the request metrics of corral's preload in fork mode, with the run's pid. On the
	// run's IPC reader goroutine; it must not block.
	Internal func(id, pid int, m nodeipc.Message)
	// Protocol is the processes' protocol at creation (see SetProtocol).
	Protocol Protocol
	// ExecShim is the corral binary: runs with inherited sockets start through it, so that
	// LISTEN_PID is the program's own pid (it is only known after fork).
	ExecShim string
	// NotifyDir, when set, gets a NOTIFY_SOCKET per run: sd_notify's READY=1 marks it ready.
	NotifyDir string
	// Keeper, when set, keeps every run's record and files so that a later daemon can adopt
	// the run (keep.go); nil: runs end with the daemon.
	Keeper Keeper
	// WaitAdopted tells when an adopted run exits: it is not the daemon's child, so the keeper
	// that reaps it reports its status (adopt.go).
	WaitAdopted func(pid int) <-chan syscall.WaitStatus
}

// Process is one managed process slot. Its runs (one OS process each) come and go; the slot,
// its id, instance number and counters stay.
type Process struct {
	hooks *Hooks

	ops  chan func()
	done chan struct{} // closed when the process is deleted and its loop has ended

	mu   sync.Mutex // guards info; only the loop writes it
	info Info

	// Owned by the loop goroutine.
	cur          *run   // the run the restart policy applies to
	next         *run   // a reload's replacement, until it is ready
	old          []*run // runs being replaced (reload) and still draining
	pol          policyState
	restartTimer *time.Timer
	userStopped  bool // stopped on purpose: cron and watch leave it alone
	protocol     Protocol
	runSeq       int  // numbers runs, for their notify sockets
	deleting     bool // Delete has begun: no run may start any more (spawn refuses)
	deleted      bool
	// stoppedByUser and seqSnapshot mirror userStopped and runSeq for State (under mu).
	stoppedByUser bool
	seqSnapshot   int

	loss *logs.Loss // output its log files did not take, over all runs
}

// New creates a process slot; it starts nothing (see Start).
func New(id, instance int, app *spec.App, hooks *Hooks) *Process {
	p := &Process{
		hooks: hooks,
		ops:   make(chan func(), 16),
		done:  make(chan struct{}),
		info: Info{
			ID:        id,
			Instance:  instance,
			App:       app,
			Status:    StatusStopped,
			CreatedAt: time.Now(),
			Files:     FilesFor(app, id),
		},
	}
	p.protocol = hooks.Protocol
	p.loss = &logs.Loss{Report: func(msg string) { p.note(api.Event{Kind: api.EventOutputLost, Message: msg}) }}
	go p.loop()
	return p
}

// setUserStopped records whether the user stopped the process (cron and watch leave it alone,
// and an adopted process stays stopped). Loop only.
func (p *Process) setUserStopped(v bool) {
	p.userStopped = v
	p.mu.Lock()
	p.stoppedByUser = v
	p.mu.Unlock()
}

// note emits ev from any goroutine, without waiting: a pump must never block on the loop.
func (p *Process) note(ev api.Event) {
	go p.post(func() { p.emit(ev) })
}

func (p *Process) loop() {
	for {
		select {
		case f := <-p.ops:
			f()
			if p.deleted {
				close(p.done)
				return
			}
		}
	}
}

// post queues f to run on the loop; false if the process is gone.
func (p *Process) post(f func()) bool {
	select {
	case p.ops <- f:
		return true
	case <-p.done:
		return false
	}
}

// call runs f on the loop and waits for it to return.
func (p *Process) call(f func()) error {
	ran := make(chan struct{})
	if !p.post(func() { f(); close(ran) }) {
		return ErrDeleted
	}
	select {
	case <-ran:
		return nil
	case <-p.done:
		// f itself may have deleted the process; it ran all the same.
		select {
		case <-ran:
			return nil
		default:
			return ErrDeleted
		}
	}
}

// Info returns a snapshot.
func (p *Process) Info() Info {
	p.mu.Lock()
	info := p.info
	p.mu.Unlock()
	info.LostLogLines, info.LostLogBytes = p.loss.Lines(), p.loss.Bytes()
	return info
}

// ID is the process id (PM2's pm_id).
func (p *Process) ID() int { return p.info.ID }

// update changes the snapshot; loop only.
func (p *Process) update(f func(*Info)) {
	p.mu.Lock()
	f(&p.info)
	p.mu.Unlock()
}

func (p *Process) app() *spec.App { return p.info.App }

func (p *Process) setStatus(s Status) { p.update(func(i *Info) { i.Status = s }) }

func (p *Process) emit(ev api.Event) {
	if p.hooks.Event == nil {
		return
	}
	ev.Time = time.Now()
	ev.ID = p.info.ID
	ev.Name = p.info.App.Name
	p.hooks.Event(ev)
}

// Start starts the process unless it is already running. It returns once the program has been
// spawned (or failed to).
func (p *Process) Start() error {
	var err error
	if e := p.call(func() {
		p.setUserStopped(false)
		switch {
		case p.cur != nil && p.cur.stopping:
			r := p.cur
			r.onExit = append(r.onExit, func() {
				if p.cur == nil && !p.userStopped {
					_ = p.spawn()
				}
			})
		case p.cur != nil:
			// Already running.
		default:
			p.cancelRestartTimer()
			p.pol = policyState{}
			err = p.spawn()
		}
	}); e != nil {
		return e
	}
	return err
}

// Stop stops the process gracefully and waits until it has exited (or ctx ends).
func (p *Process) Stop(ctx context.Context) error {
	stopped := make(chan struct{})
	if err := p.call(func() { p.stopAll(func() { close(stopped) }) }); err != nil {
		return err
	}
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("process %d did not stop in time: %w", p.info.ID, ctx.Err())
	}
}

// stopAll stops the current run and any draining ones; then calls done. Loop only.
func (p *Process) stopAll(done func()) {
	p.setUserStopped(true)
	p.cancelRestartTimer()
	runs := append([]*run(nil), p.old...)
	for _, r := range []*run{p.cur, p.next} {
		if r != nil {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		if p.info.Status != StatusStopped {
			p.setStatus(StatusStopped)
			p.emit(api.Event{Kind: api.EventStop})
		}
		done()
		return
	}
	left := len(runs)
	for _, r := range runs {
		r.onExit = append(r.onExit, func() {
			if left--; left == 0 {
				done()
			}
		})
		p.beginStop(r)
	}
}

// Restart stops the process (gracefully) and starts it again, with app as its new spec when app
// is not nil. It returns once the new run has been spawned.
func (p *Process) Restart(ctx context.Context, app *spec.App) error {
	result := make(chan error, 1)
	if err := p.call(func() {
		if app != nil {
			p.setApp(app)
		}
		p.setUserStopped(false)
		p.cancelRestartTimer()
		p.pol = policyState{} // a deliberate restart forgives earlier crashes
		startNew := func() {
			if p.deleting {
				result <- ErrDeleted
				return
			}
			if p.cur != nil || p.userStopped {
				result <- nil // another restart or a stop got there first
				return
			}
			p.update(func(i *Info) { i.Restarts++ })
			p.emit(api.Event{Kind: api.EventRestart})
			result <- p.spawn()
		}
		if p.cur == nil {
			startNew()
			return
		}
		p.cur.onExit = append(p.cur.onExit, startNew)
		p.beginStop(p.cur)
	}); err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("process %d did not restart in time: %w", p.info.ID, ctx.Err())
	}
}

// Update replaces the app spec without restarting; the next run uses it.
func (p *Process) Update(app *spec.App) error {
	return p.call(func() { p.setApp(app) })
}

func (p *Process) setApp(app *spec.App) {
	p.update(func(i *Info) {
		i.App = app
		i.Files = FilesFor(app, i.ID)
	})
}

// Delete stops the process and ends its slot. The Process is unusable afterwards.
//
// The slot ends on the loop, in the same step as the exit of its last run: an operation that
// was waiting for that exit (a Start or Restart made while Delete stopped the run) finds the
// process deleting and starts nothing, so no program outlives its slot. (When Delete ended
// the slot in a call of its own after Stop returned, such an operation spawned a run in
// between, which nothing stopped or collected any more.)
func (p *Process) Delete(ctx context.Context) error {
	deleted := make(chan struct{})
	err := p.call(func() {
		p.deleting = true
		p.stopAll(func() {
			if !p.deleted { // another Delete may have ended it in this step
				p.emit(api.Event{Kind: api.EventDelete})
				p.deleted = true
			}
			close(deleted)
		})
	})
	if errors.Is(err, ErrDeleted) {
		return nil
	}
	select {
	case <-deleted:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("process %d was not deleted in time: %w", p.info.ID, ctx.Err())
	}
}

// Reset zeroes the counters, as `pm2 reset` does.
func (p *Process) Reset() error {
	return p.call(func() {
		p.pol = policyState{}
		p.loss.Reset()
		p.update(func(i *Info) {
			i.Restarts, i.Unstable, i.PrevRestartDelay = 0, 0, 0
			i.CreatedAt = time.Now()
		})
	})
}

// Signal sends sig to the running program's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	var err error
	if e := p.call(func() {
		if p.cur == nil {
			err = fmt.Errorf("process %d (%s) is not running", p.info.ID, p.info.App.Name)
			return
		}
		err = signalTree(p.cur.pid, sig)
	}); e != nil {
		return e
	}
	return err
}

// Send delivers a message to the running Node program (process.on('message')).
func (p *Process) Send(v any) error {
	var err error
	if e := p.call(func() {
		switch {
		case p.cur == nil:
			err = fmt.Errorf("process %d (%s) is not running", p.info.ID, p.info.App.Name)
		case p.cur.ipc == nil:
			err = fmt.Errorf("process %d (%s) has no IPC channel (only Node.js apps have one)", p.info.ID, p.info.App.Name)
		default:
			err = p.cur.ipc.Send(v)
		}
	}); e != nil {
		return e
	}
	return err
}

// MemoryExceeded restarts the process gracefully because its process tree uses rss bytes,
// more than max_memory_restart allows (the daemon's sampler measured it). It returns once the
// replacement has taken over, so the daemon can serialise it with the app's other operations.
// A process that is stopping or stopped by the user is left alone.
func (p *Process) MemoryExceeded(ctx context.Context, rss int64) error {
	return p.replace(ctx, func() (api.Event, bool) {
		if p.cur == nil || p.cur.stopping || p.userStopped {
			return api.Event{}, false
		}
		return api.Event{Kind: api.EventMemoryLimit, Message: fmt.Sprintf("using %s, over max_memory_restart %s: restarting",
			spec.FormatSize(rss), spec.FormatSize(p.app().MaxMemoryRestart))}, true
	})
}

// Trigger restarts the process for a cron schedule or a watched file change, and returns once
// it has been replaced. A process stopped by the user stays stopped; one that exited on its
// own (a job with autorestart off) is started again, which is how PM2 users run periodic jobs.
func (p *Process) Trigger(ctx context.Context, reason string) error {
	return p.replace(ctx, func() (api.Event, bool) {
		if p.userStopped || p.deleted {
			return api.Event{}, false
		}
		return api.Event{Kind: api.EventTrigger, Message: reason}, true
	})
}

// replace restarts the process if check (run on the loop) says so: a rolling reload where the
// daemon owns the port and the run is ready (so its app keeps serving, as PM2 does for
// max_memory_restart), a restart otherwise.
func (p *Process) replace(ctx context.Context, check func() (api.Event, bool)) error {
	var want, rolling bool
	if err := p.call(func() {
		var ev api.Event
		if ev, want = check(); want {
			p.emit(ev)
			rolling = p.protocol.replaceable() && p.cur != nil && p.cur.ready
		}
	}); err != nil || !want {
		return err
	}
	if rolling {
		_, err := p.Reload(ctx, nil)
		return err
	}
	return p.Restart(ctx, nil)
}

func (p *Process) cancelRestartTimer() {
	if p.restartTimer != nil {
		p.restartTimer.Stop()
		p.restartTimer = nil
	}
}

// spawn starts a new current run. Loop only.
func (p *Process) spawn() error {
	if p.deleting {
		return ErrDeleted
	}
	app := p.app()
	r, err := p.startRun(app)
	if err != nil {
		p.update(func(i *Info) {
			i.Status = StatusErrored
			i.LastError = err.Error()
			i.PID = 0
		})
		p.writeLine("err", "corral: cannot start: "+err.Error())
		p.emit(api.Event{Kind: api.EventErrored, Message: err.Error()})
		return err
	}
	p.cur = r
	p.claimFiles(r)
	// PM2 shows a cluster worker online as soon as it runs; whether it listens yet is its
	// own field (Info.Ready, jlist's pm2_env.corral.ready). With wait_ready, or inherited
	// sockets that must answer first, it is launching until then.
	status := StatusLaunching
	if p.readyOnListen(app) {
		status = StatusOnline
	}
	p.update(func(i *Info) {
		i.PID = r.pid
		i.StartedAt = r.started
		i.Status = status
		i.LastError = ""
		i.Ready = false
	})
	p.emit(api.Event{Kind: api.EventStart, PID: r.pid})
	p.awaitReady(r)
	return nil
}

// awaitReady arranges for r to be marked ready. Loop only.
//   - wait_ready: the app says so (process.send('ready') or sd_notify READY=1);
//   - cluster mode: its first 'listening';
//   - inherited sockets: the process is up and the port answers (a probe connection is
//     accepted);
//   - otherwise at once (PM2's fork mode).
//
// Where the signal does not come, listen_timeout passes and the run is called online anyway,
// as PM2 does (a reload treats that as a failure instead).
func (p *Process) awaitReady(r *run) {
	app := r.app
	probe := p.protocol.Sockets != nil && !app.WaitReady
	if !probe && p.protocol.Worker == nil && !app.WaitReady {
		p.markReady(r, "")
		return
	}
	r.readyTimer = time.AfterFunc(app.ListenTimeout.D(), func() {
		p.post(func() { p.readyTimeout(r) })
	})
	if probe {
		go p.probeReady(r, p.protocol.Sockets)
	}
}

// probeReady marks r ready once it has stayed up a while (a second, or half of listen_timeout
// if that is shorter) and the app's port answers.
func (p *Process) probeReady(r *run, sockets SocketSource) {
	timeout := r.app.ListenTimeout.D()
	settle := min(time.Second, timeout/2)
	select {
	case <-time.After(settle):
	case <-r.gone:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout-settle)
	defer cancel()
	for {
		err := sockets.Probe(ctx)
		if err == nil {
			p.post(func() { p.markReady(r, "port answers") })
			return
		}
		select {
		case <-ctx.Done():
			return // readyTimeout decides
		case <-r.gone:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readyTimeout: the run did not report ready within listen_timeout. In fork mode PM2 carries
// on and calls it online; reload (cluster mode) treats it as a failure instead.
func (p *Process) readyTimeout(r *run) {
	if r.ready || r.exited {
		return
	}
	r.readyTimedOut = true
	for _, f := range r.onReadyTimeout {
		f()
	}
	r.onReadyTimeout = nil
	if r == p.cur && !r.stopping && !r.holdReady {
		p.markReady(r, "listen_timeout passed without a ready signal")
	}
}

// markReady records that r is ready. Loop only.
func (p *Process) markReady(r *run, note string) {
	if r.ready || r.exited {
		return
	}
	r.ready = true
	if r.readyTimer != nil {
		r.readyTimer.Stop()
	}
	if r == p.cur && !r.stopping {
		p.update(func(i *Info) {
			i.Status = StatusOnline
			i.Ready = true
		})
		p.emit(api.Event{Kind: api.EventOnline, PID: r.pid, Message: note})
	}
	for _, f := range r.onReady {
		f()
	}
	r.onReady = nil
	p.recordChanged(r)
}

// beginStop asks r to stop: the shutdown message or kill_signal, then SIGKILL of the whole
// group after kill_timeout. Loop only.
func (p *Process) beginStop(r *run) {
	if r.stopping || r.exited {
		return
	}
	r.stopping = true
	app := r.app
	if r == p.cur {
		p.setStatus(StatusStopping)
	}
	if r.readyTimer != nil {
		r.readyTimer.Stop()
	}
	// An adopted run may have been asked to stop by the previous daemon already: it is not
	// asked twice (a second SIGINT means "quit now" to some programs).
	already := r.signaled
	sent := already
	if !already && app.ShutdownWithMessage && r.ipc != nil {
		sent = r.ipc.Send("shutdown") == nil
	}
	if !already && r.worker != nil && r.worker.Disconnect() {
		// A cluster worker leaves the rotation and drains first; its kill signal follows
		// when its channel closes (runControl.Disconnected).
		sent = true
	}
	if !sent {
		if err := signalTree(r.pid, killSignal(app)); err != nil {
			p.writeLine("err", "corral: "+err.Error())
		}
		r.signaled = true
	}
	p.recordChanged(r)
	r.killTimer = time.AfterFunc(app.KillTimeout.D(), func() {
		p.post(func() {
			if r.exited {
				return
			}
			p.emit(api.Event{Kind: api.EventKill, PID: r.pid, Message: fmt.Sprintf("still running %v after the stop request: SIGKILL", app.KillTimeout.D())})
			_ = signalTree(r.pid, syscall.SIGKILL)
		})
	})
}

// onExit handles the end of run r, which exited with code (-1 when a signal killed it) or
// signal sigName. Loop only.
func (p *Process) onExit(r *run, code int, sigName string) {
	r.exited = true
	close(r.gone)
	if r.killTimer != nil {
		r.killTimer.Stop()
	}
	if r.uptimeTimer != nil {
		r.uptimeTimer.Stop()
	}
	if r.readyTimer != nil {
		r.readyTimer.Stop()
	}
	r.release()
	p.releaseRun(r)
	uptime := time.Since(r.started)
	app := r.app
	if !r.lost {
		go reapGroup(r.pid, killSignal(app), r.signaled, app.KillTimeout.D())
	}

	ev := api.Event{Kind: api.EventExit, PID: r.pid, ExitCode: &code, Signal: sigName}
	callbacks := r.onExit
	r.onExit = nil
	r.exitCode, r.exitSignal = code, sigName
	wasNext := r == p.next // a reload's callback below clears p.next
	for _, f := range r.onReadyTimeout {
		f() // a reload waiting for this run learns it is gone
	}
	r.onReadyTimeout = nil

	if r != p.cur {
		ev.Replaced = true
		p.old = removeRun(p.old, r)
		if wasNext {
			p.next = nil
			ev.Message = "replacement exited before it was ready"
		} else {
			ev.Message = "replaced run exited"
		}
		p.emit(ev)
		runAll(callbacks)
		return
	}
	p.cur = nil
	// The snapshot changes in one step, to what comes next: a listing never sees the process
	// "online" without a pid, between its exit and its restart.
	var d decision
	status := StatusStopped
	if !r.stopping {
		if r.listenFailed != "" {
			// A run that could not listen crashed for that reason, however long Node took to
			// get there: it counts toward max_restarts.
			uptime = 0
		}
		d = decide(app, exitFacts{Uptime: uptime, Code: code, Signaled: sigName != ""}, p.pol)
		p.pol = d.Next
		switch {
		case d.Errored:
			status = StatusErrored
		case !d.Restart:
		case d.Delay > 0:
			status = StatusWaitingRestart
		default:
			status = StatusLaunching
		}
	}
	p.update(func(i *Info) {
		i.PID = 0
		i.Exited = true
		i.ExitCode = code
		i.ExitSignal = sigName
		i.Ready = false
		i.Status = status
		if !r.stopping {
			i.Unstable = d.Next.Unstable
			i.PrevRestartDelay = d.Next.PrevDelay
		}
	})
	ev.Crash = !r.stopping && !isStopExitCode(app, code)
	p.emit(ev)
	if r.stopping {
		p.emit(api.Event{Kind: api.EventStop})
		runAll(callbacks)
		return
	}
	switch { // the status is set already
	case d.Errored:
		p.writeLine("err", fmt.Sprintf("corral: %s: not restarting (max_restarts %d); fix the app, then `corral restart %s`", d.Reason, app.MaxRestarts, app.Name))
		p.emit(api.Event{Kind: api.EventErrored, Message: d.Reason})
	case !d.Restart:
		p.emit(api.Event{Kind: api.EventStop, Message: d.Reason})
	case d.Delay > 0:
		p.emit(api.Event{Kind: api.EventWaitingRestart, DelayMS: d.Delay.Milliseconds()})
		var t *time.Timer
		t = time.AfterFunc(d.Delay, func() {
			p.post(func() {
				if p.restartTimer != t {
					return // cancelled or superseded
				}
				p.restartTimer = nil
				p.update(func(i *Info) { i.Restarts++ })
				_ = p.spawn()
			})
		})
		p.restartTimer = t
	default:
		p.update(func(i *Info) { i.Restarts++ })
		_ = p.spawn()
	}
	runAll(callbacks)
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

func removeRun(rs []*run, r *run) []*run {
	out := rs[:0]
	for _, x := range rs {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// ListenError: a run's listen() was refused (its port is taken...); Reason says so as a
// person would.
type ListenError struct{ Reason string }

func (e *ListenError) Error() string { return e.Reason }

// WaitStarted waits until the current run is ready or listening, has failed to listen, or has
// exited, and says which: nil when it is ready or listening, or ctx ended first (PM2 calls it online then too); the
// reason otherwise. A start uses it to report a taken port instead of a silent crash loop.
func (p *Process) WaitStarted(ctx context.Context) error {
	ch := make(chan error, 1)
	send := func(err error) {
		select {
		case ch <- err:
		default:
		}
	}
	if err := p.call(func() {
		r := p.cur
		switch {
		case r == nil, r.ready, r.listened:
			send(nil)
			return
		case r.listenFailed != "":
			send(&ListenError{Reason: r.listenFailed})
			return
		}
		r.onReady = append(r.onReady, func() { send(nil) })
		r.onListened = append(r.onListened, func() { send(nil) })
		r.onListenFailed = append(r.onListenFailed, func(reason string) { send(&ListenError{Reason: reason}) })
		r.onExit = append(r.onExit, func() {
			if r.exitSignal != "" {
				send(fmt.Errorf("exited (killed by %s) before it was ready", r.exitSignal))
			} else {
				send(fmt.Errorf("exited with code %d before it was ready", r.exitCode))
			}
		})
	}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return nil
	}
}

// readyOnListen reports whether a run of app is ready once its cluster worker listens: a
// cluster worker with no inherited sockets to probe and no wait_ready.
func (p *Process) readyOnListen(app *spec.App) bool {
	return p.protocol.Worker != nil && p.protocol.Sockets == nil && !app.WaitReady
}
