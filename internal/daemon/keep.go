package daemon

import (
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/keeper"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// This file is what the daemon leaves for the next one (docs/daemon-survival.md): through its
// keeper (package keeper), the parent process that outlives it, it keeps
//   - "state": the hand-over state, the app table (specs, process ids, counters), rewritten
//     after every change;
//   - "run:<pid>": each running program's record, with the daemon's ends of its output pipes
//     and IPC channel;
//   - "sock:<app>:<name>": each listening socket the daemon owns for an app.
// adopt.go reads them back.

// handoverVersion versions the hand-over state's layout. A daemon reads the versions it
// knows; one that finds another leaves everything running, unmanaged, and says so.
const handoverVersion = 1

const handoverName = "state"

// handover is the app table as the next daemon needs it.
type handover struct {
	Version int           `json:"version"`
	Corral  string        `json:"corral"` // the version of the daemon that wrote it
	Written time.Time     `json:"written"`
	Apps    []handoverApp `json:"apps"`
	// History says this daemon keeps its metrics history in the keeper's "history" entry
	// (history.go). Optional: a daemon of an older corral writes tables without it, and the
	// entry it left untouched is then known stale.
	History bool `json:"history,omitempty"`
}

type handoverApp struct {
	Spec  spec.App       `json:"spec"`
	Procs []handoverProc `json:"procs"`
	// Reloads and ReloadsFailed are the app's reload counts (/metrics). Optional fields, so
	// hand-over version 1 still reads both ways: a daemon without them starts from 0.
	Reloads       uint64 `json:"reloads,omitempty"`
	ReloadsFailed uint64 `json:"reloads_failed,omitempty"`
}

type handoverProc struct {
	ID       int                  `json:"id"`
	Instance int                  `json:"instance"`
	State    supervisor.SlotState `json:"state"`
	// Conns and Refused are the cluster's connection counts for the process (describe's
	// distribution).
	Conns   uint64 `json:"conns,omitempty"`
	Refused uint64 `json:"refused,omitempty"`
}

func runKeptName(pid int) string { return "run:" + strconv.Itoa(pid) }

func sockKeptName(app, name string) string { return "sock:" + strconv.Quote(app) + ":" + name }

// keptSocket is the keeper's description of an app's socket.
type keptSocket struct {
	App  string          `json:"app"`
	Name string          `json:"name"`
	Meta json.RawMessage `json:"meta"`
}

// handoverChanged says the app table changed (after an operation, on a process event that
// changes it): its writeLoop writes it soon, once for however many changes came meanwhile. A
// start of N processes makes 2N events; writing the whole table for each would cost O(N²).
func (d *Daemon) handoverChanged() { d.writeSoon(d.handoverDirty) }

// writeSoon wakes the writeLoop that reads dirty (capacity 1), if there is a keeper.
func (d *Daemon) writeSoon(dirty chan<- struct{}) {
	if d.keeper == nil {
		return
	}
	select {
	case dirty <- struct{}{}:
	default: // a write is pending already: it will see this change too
	}
}

// writeLoop calls write each time dirty is signalled (writeSoon) until the daemon stops: one
// for the app table (saveHandover), one for the metrics history (saveHistory).
func (d *Daemon) writeLoop(dirty <-chan struct{}, write func()) {
	for {
		select {
		case <-dirty:
			write()
		case <-d.quit:
			return
		}
	}
}

// saveHandover sends the app table to the keeper now, if there is one: before a new process's
// first run starts (so that no run is kept before its process is known), after adoption and
// before an upgrade; its writeLoop for everything else. The writes are serialised: the keeper
// always ends up with the latest table.
func (d *Daemon) saveHandover() {
	if d.keeper == nil || d.adopting.Load() {
		// While the daemon adopts, the keeper keeps the previous daemon's table: a table
		// written halfway would lose the apps not taken over yet if this daemon died too.
		return
	}
	d.handoverMu.Lock()
	defer d.handoverMu.Unlock()
	h := handover{Version: handoverVersion, Corral: buildinfo.Version, Written: time.Now().UTC(), History: true}
	for _, a := range d.tbl.appsSorted() {
		v := a.snapshot()
		ha := handoverApp{Spec: *v.spec, Reloads: a.reloads.done.Load(), ReloadsFailed: a.reloads.failed.Load()}
		var stats map[int]cluster.Stats
		if v.group != nil {
			stats = v.group.Stats()
		}
		for _, p := range v.procs {
			info := p.Info()
			st := stats[info.ID]
			ha.Procs = append(ha.Procs, handoverProc{ID: info.ID, Instance: info.Instance, State: p.State(), Conns: st.Connections, Refused: st.Refused})
		}
		h.Apps = append(h.Apps, ha)
	}
	if err := d.keeper.Put(handoverName, h); err != nil {
		d.keeperFailed(err)
	}
}

// keeperFailed reports, once, that the keeper cannot be reached: the apps no longer survive a
// crash of the daemon, which otherwise carries on.
func (d *Daemon) keeperFailed(err error) {
	d.keeperOnce.Do(func() {
		d.logf("the keeper cannot be reached (%v): the apps will not survive a crash of this daemon; `corral update` restarts both", err)
	})
}

// eventChangesTable: events after which the hand-over state is written again.
func eventChangesTable(k api.EventKind) bool {
	switch k {
	case api.EventMessage, api.EventOutputLost, api.EventLogError, api.EventDropped, api.EventKill:
		return false
	}
	return true
}

// keptRuns keeps the apps' runs in the keeper (supervisor.Keeper).
type keptRuns struct{ d *Daemon }

func (k keptRuns) KeepRun(rec supervisor.RunRecord, files supervisor.RunFiles) {
	fs := []*os.File{files.Out, files.Err}
	if files.IPC != nil {
		fs = append(fs, files.IPC)
	}
	if err := k.d.keeper.Put(runKeptName(rec.PID), rec, fs...); err != nil {
		k.d.keeperFailed(err)
	}
}

func (k keptRuns) UpdateRun(rec supervisor.RunRecord) {
	if err := k.d.keeper.SetMeta(runKeptName(rec.PID), rec); err != nil {
		k.d.keeperFailed(err)
	}
}

func (k keptRuns) ReleaseRun(pid int) {
	if err := k.d.keeper.Delete(runKeptName(pid)); err != nil {
		k.d.keeperFailed(err)
	}
	k.d.exits.handled(pid)
}

// appSockets keeps one app's sockets in the keeper (cluster.SocketKeeper).
type appSockets struct {
	d   *Daemon
	app string
}

func (k appSockets) KeepSocket(name string, meta any, fd int) {
	raw, err := json.Marshal(meta)
	if err == nil {
		err = k.d.keeper.PutFDs(sockKeptName(k.app, name), keptSocket{App: k.app, Name: name, Meta: raw}, fd)
	}
	if err != nil {
		k.d.keeperFailed(err)
	}
}

func (k appSockets) DropSocket(name string) {
	if err := k.d.keeper.Delete(sockKeptName(k.app, name)); err != nil {
		k.d.keeperFailed(err)
	}
}

// exitRouter hands the exits the keeper reports (of processes it reaped: adopted runs, and
// anything else re-parented to it) to the adopted runs waiting for them.
type exitRouter struct {
	k *keeper.Client

	mu       sync.Mutex
	expected map[int]bool                    // adopted pids, from the keeper's records
	waiting  map[int]chan syscall.WaitStatus // adopted runs waiting for their exit
	early    map[int]syscall.WaitStatus      // exits that came before their run waited
	fromKeep map[int]bool                    // exits the keeper reported: acknowledged once handled
}

func newExitRouter(k *keeper.Client) *exitRouter {
	return &exitRouter{k: k, expected: map[int]bool{}, waiting: map[int]chan syscall.WaitStatus{},
		early: map[int]syscall.WaitStatus{}, fromKeep: map[int]bool{}}
}

// expect says an adopted run of pid will wait for its exit.
func (r *exitRouter) expect(pid int) {
	r.mu.Lock()
	r.expected[pid] = true
	r.mu.Unlock()
}

// reported marks pid's exit as one the keeper reported (at Load): acknowledged once handled.
func (r *exitRouter) reported(pid int) {
	r.mu.Lock()
	r.fromKeep[pid] = true
	r.mu.Unlock()
}

// isExpected reports whether an adopted run of pid waits (or will) for its exit.
func (r *exitRouter) isExpected(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expected[pid]
}

// wait returns the channel pid's exit status arrives on (supervisor.Hooks.WaitAdopted).
func (r *exitRouter) wait(pid int) <-chan syscall.WaitStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan syscall.WaitStatus, 1)
	if ws, ok := r.early[pid]; ok {
		delete(r.early, pid)
		ch <- ws
		close(ch)
		return ch
	}
	r.waiting[pid] = ch
	return ch
}

// deliver routes one exit the keeper reported. Exits of processes no run waits for (orphaned
// grandchildren of the apps, re-parented to the keeper) are acknowledged at once.
func (r *exitRouter) deliver(ex keeper.Exit) {
	r.mu.Lock()
	if !r.expected[ex.PID] {
		r.mu.Unlock()
		_ = r.k.ExitSeen(ex.PID)
		return
	}
	delete(r.expected, ex.PID)
	r.fromKeep[ex.PID] = true
	if ch := r.waiting[ex.PID]; ch != nil {
		delete(r.waiting, ex.PID)
		r.mu.Unlock()
		ch <- ex.Status
		close(ch)
		return
	}
	r.early[ex.PID] = ex.Status
	r.mu.Unlock()
}

// handled: the run of pid has exited and its exit was handled; the keeper may forget the exit.
func (r *exitRouter) handled(pid int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	_, early := r.early[pid]
	fromKeep := r.fromKeep[pid] || early
	delete(r.fromKeep, pid)
	delete(r.early, pid)
	delete(r.expected, pid)
	delete(r.waiting, pid)
	r.mu.Unlock()
	if fromKeep {
		_ = r.k.ExitSeen(pid)
	}
}

// routeExits delivers the keeper's exits until it goes away.
func (r *exitRouter) routeExits() {
	for ex := range r.k.Exits() {
		r.deliver(ex)
	}
}
