package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/watch"
	"github.com/robfig/cron/v3"
)

// app is one app of the daemon and the single owner of its state. Every lifecycle operation
// on it (create, update, start, stop, restart, reload, scale, delete, settle after exits,
// restarts for cron, watch and the memory limit) is an op run by its loop, one at a time, in
// the order submitted; no other goroutine reads or writes its state. Other goroutines read the
// view the loop publishes after every change, so a listing never waits for a reload.
//
// This is how supervisor.Process already works for one process slot, one level up. It
// replaces a pair of locks (the table's and the app's) that commands took in turns: a
// command looked the app up, dropped the table lock, then waited for the app's, and a delete
// in between left it acting on an app that was no longer in the table.
type app struct {
	name string
	// onPanic reports an op that panicked (the daemon log).
	onPanic func(err error, stack []byte)
	// onChange, if set, runs after every op has published what it changed (the daemon
	// hands its table to the keeper).
	onChange func()

	queue opQueue
	view  atomic.Pointer[appView]
	// settlePending is set while a settle op is queued, so a burst of exits queues one.
	settlePending atomic.Bool
	// reloads counts the app's rolling reloads for /metrics (docs/metrics.md §3.2): written
	// by its ops, read by scrapes and the hand-over state, so it lives outside st.
	reloads reloadCounter

	// st is owned by the loop: only ops touch it.
	st appState
}

// appState is an app's mutable state; only its loop reads or writes it.
type appState struct {
	spec    *spec.App
	procs   []*supervisor.Process // sorted by id
	version string                // from package.json, for `ls`
	watcher *watch.Watcher
	crons   map[int]cron.EntryID
	// group is the cluster primary of a cluster-mode app (nil in fork mode). It lives as long
	// as the app, so its sockets outlive every worker.
	group *cluster.Group
	// sockets are the app's inherited listening sockets (`listen`), nil without any.
	sockets *cluster.Sockets
	// gone is set by the op that deleted the app: every later op answers not found.
	gone bool
}

// appView is an immutable snapshot of an app for readers outside its loop (listings, target
// resolution, the sampler). The processes are safe to query concurrently (Process.Info).
type appView struct {
	spec    *spec.App
	procs   []*supervisor.Process
	version string
	group   *cluster.Group
}

// publish makes the loop's current state visible to readers. Loop only.
func (a *app) publish() {
	a.view.Store(&appView{
		spec:    a.st.spec,
		procs:   append([]*supervisor.Process(nil), a.st.procs...),
		version: a.st.version,
		group:   a.st.group,
	})
}

// reloadCounter counts an app's rolling reloads (docs/metrics.md §3.2): done counts every
// reload that ran, failed those that stopped at a worker whose replacement did not become
// ready. The counts live as long as the app and pass to the next daemon in the hand-over
// state, as the processes' restart counts do.
type reloadCounter struct {
	done, failed atomic.Uint64
}

// count records one reload and whether it failed.
func (r *reloadCounter) count(err error) {
	r.done.Add(1)
	if err != nil {
		r.failed.Add(1)
	}
}

// snapshot is the app as last published.
func (a *app) snapshot() *appView { return a.view.Load() }

// ownsPort reports whether the daemon owns the app's ports (cluster mode, or inherited
// sockets), so its processes can be replaced without the port closing. Loop only.
func (st *appState) ownsPort() bool { return st.group != nil || st.sockets != nil }

// closePorts closes the app's ports (and the connections waiting on them); they open again on
// use. Loop only.
func (st *appState) closePorts() {
	if st.group != nil {
		st.group.CloseListeners()
	}
	if st.sockets != nil {
		st.sockets.Close()
	}
}

// opKind names an operation, for errors and the daemon log. The API's actions (api.Action)
// run as ops of their own name.
type opKind string

const (
	opCreate  opKind = "create"
	opUpdate  opKind = "update"
	opDelete  opKind = "delete"
	opMessage opKind = "message"
	opScale   opKind = "scale"
	opSettle  opKind = "settle"
	opTrigger opKind = "trigger"
	opAdopt   opKind = "adopt"
)

// op is one operation queued on an app's loop. run reads and writes a.st freely: it runs on
// the loop.
type op struct {
	kind opKind
	run  func() error
	done chan error // buffered: the loop never waits for the submitter
}

// errAppGone: the app was deleted before the op ran. Submitters get it as the app's
// notFoundError, which matches it (errors.Is).
var errAppGone = errors.New("app was deleted")

// opQueue is an app's FIFO of ops. Posting never blocks (process loops post settle ops from
// their event hooks while an op of the same app may be waiting for them), so it is a slice
// under a mutex rather than a channel.
type opQueue struct {
	mu      sync.Mutex
	pending []*op
	closed  bool          // the app is gone: no op is accepted
	wake    chan struct{} // capacity 1: the loop has work
}

// newApp creates an app and starts its loop. The caller inserts it into the table and
// submits its create op under the table lock, so that the create op runs first.
func newApp(s *spec.App, onPanic func(error, []byte)) *app {
	a := &app{name: s.Name, onPanic: onPanic, queue: opQueue{wake: make(chan struct{}, 1)}}
	a.st.spec = s
	a.st.crons = map[int]cron.EntryID{}
	a.publish()
	go a.loop()
	return a
}

// post queues an op; false if the app is gone.
func (a *app) post(o *op) bool {
	q := &a.queue
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.pending = append(q.pending, o)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// submit queues an op and waits for its result. A ctx that ends stops the wait, not the op:
// once queued it runs to completion, so the app's state stays consistent whoever gave up.
func (a *app) submit(ctx context.Context, kind opKind, run func() error) error {
	o := a.enqueue(kind, run)
	if o == nil {
		return notFoundError{target: a.name, gone: true}
	}
	select {
	case err := <-o.done:
		if errors.Is(err, errAppGone) {
			return notFoundError{target: a.name, gone: true}
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s of %s is still running in the daemon: %w", kind, a.name, ctx.Err())
	}
}

// callOp is submit for an op with a result. The result is only ever read once the op has
// returned it, so a caller that stops waiting never races with the loop still writing it.
func callOp[T any](ctx context.Context, a *app, kind opKind, run func() (T, error)) (T, error) {
	res := make(chan T, 1)
	err := a.submit(ctx, kind, func() error {
		v, err := run()
		res <- v
		return err
	})
	select {
	case v := <-res:
		return v, err
	default: // the op did not run, or still runs
		var zero T
		return zero, err
	}
}

// enqueue queues an op without waiting; nil if the app is gone.
func (a *app) enqueue(kind opKind, run func() error) *op {
	o := &op{kind: kind, run: run, done: make(chan error, 1)}
	if !a.post(o) {
		return nil
	}
	return o
}

// loop runs the app's ops one at a time until an op deletes the app; ops still queued then
// answer errAppGone.
func (a *app) loop() {
	for range a.queue.wake {
		for {
			a.queue.mu.Lock()
			if len(a.queue.pending) == 0 {
				a.queue.mu.Unlock()
				break
			}
			o := a.queue.pending[0]
			a.queue.pending[0] = nil
			a.queue.pending = a.queue.pending[1:]
			a.queue.mu.Unlock()

			o.done <- a.runOp(o)
			if a.st.gone {
				a.queue.mu.Lock()
				a.queue.closed = true
				rest := a.queue.pending
				a.queue.pending = nil
				a.queue.mu.Unlock()
				for _, o := range rest {
					o.done <- errAppGone
				}
				return
			}
		}
	}
}

// runOp runs one op and publishes what it changed. A panic in an op is a bug: it is turned
// into the op's error (with its stack in the daemon log) rather than taking down the daemon
// and every app with it, and what the op changed before it is still published.
func (a *app) runOp(o *op) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in %s of %s: %v", o.kind, a.name, r)
			if a.onPanic != nil {
				a.onPanic(err, debug.Stack())
			}
		}
		a.publish()
		if a.onChange != nil {
			a.onChange()
		}
	}()
	if testHookOp != nil {
		testHookOp(o.kind, a.name)
	}
	return o.run()
}

// testHookOp, when set, runs before every op. Only this package's tests set it (the kept
// daemon's tests make an op panic with it, panic_test.go): in any other binary it is nil.
var testHookOp func(kind opKind, app string)
