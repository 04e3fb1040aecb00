package supervisor

import (
	"encoding/json"
	"os"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// This file is what a run leaves behind for the next daemon: a record of it, and the daemon's
// ends of its pipes and IPC channel, handed to a Keeper (the daemon's keeper process) so that
// neither the program nor its channel notices when the daemon dies. See adopt.go for the other
// side, and docs/daemon-survival.md for the whole picture.

// Keeper keeps what runs need to outlive the daemon. Calls come from process loops, in the
// order things happened to each run; implementations must not block for long.
type Keeper interface {
	// KeepRun is called once a run has been spawned (before its channel is read), with the
	// daemon's ends of its pipes and channel; the callee dups what it keeps.
	KeepRun(rec RunRecord, files RunFiles)
	// UpdateRun is called when the record of a kept run changes (ready, stopping, its worker
	// protocol's state, a reload's replacement taking over).
	UpdateRun(rec RunRecord)
	// ReleaseRun is called once the run has exited and its exit has been handled: nothing of
	// it needs keeping any more.
	ReleaseRun(pid int)
}

// RunRecord describes one running program for a daemon that will adopt it.
type RunRecord struct {
	ProcID int `json:"proc_id"`
	PID    int `json:"pid"`
	// StartTicks is the program's start time (procstat.Stat.StartTicks): with the pid, the
	// proof that a live pid is still this program and not a reuse of its number.
	StartTicks uint64    `json:"start_ticks"`
	Started    time.Time `json:"started"`
	// Current: the run the process stands for; false for a reload's replacement that has not
	// taken over yet and for a replaced run that is draining.
	Current bool `json:"current"`
	Ready   bool `json:"ready"`
	// NotListened: a cluster worker's run that was ready without ever calling listen() (an
	// app with no server). Absent in older records: a ready run is taken to have listened,
	// which is the safer reading for a reload.
	NotListened bool `json:"not_listened,omitempty"`
	Stopping    bool `json:"stopping,omitempty"`
	Signaled    bool `json:"signaled,omitempty"`
	// Notify is its NOTIFY_SOCKET path; RunSeq the number in it.
	Notify string `json:"notify,omitempty"`
	RunSeq int    `json:"run_seq"`
	HasIPC bool   `json:"has_ipc,omitempty"`
	// Worker is the worker protocol's state (Worker.State), for WorkerProtocol.AdoptWorker.
	Worker  json.RawMessage `json:"worker,omitempty"`
	PidFile string          `json:"pid_file,omitempty"`
}

// RunFiles are the daemon's ends of a run's output pipes and IPC channel (nil when it has none).
type RunFiles struct {
	Out, Err, IPC *os.File
}

// Close closes the files that are set.
func (f RunFiles) Close() {
	for _, x := range []*os.File{f.Out, f.Err, f.IPC} {
		if x != nil {
			x.Close()
		}
	}
}

// SlotState is a process slot's counters and intent, as the hand-over state keeps them.
type SlotState struct {
	Restarts         int           `json:"restarts"`
	Unstable         int           `json:"unstable,omitempty"`
	PrevRestartDelay time.Duration `json:"prev_restart_delay,omitempty"`
	CreatedAt        time.Time     `json:"created_at"`
	Status           Status        `json:"status"`
	// UserStopped: stopped on purpose, so nothing starts it but the user.
	UserStopped bool   `json:"user_stopped,omitempty"`
	Exited      bool   `json:"exited,omitempty"`
	ExitCode    int    `json:"exit_code,omitempty"`
	ExitSignal  string `json:"exit_signal,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	RunSeq      int    `json:"run_seq,omitempty"`
}

// State returns the slot's counters and intent for the hand-over state.
func (p *Process) State() SlotState {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.info
	return SlotState{
		Restarts: i.Restarts, Unstable: i.Unstable, PrevRestartDelay: i.PrevRestartDelay,
		CreatedAt: i.CreatedAt, Status: i.Status, UserStopped: p.stoppedByUser,
		Exited: i.Exited, ExitCode: i.ExitCode, ExitSignal: i.ExitSignal, LastError: i.LastError,
		RunSeq: p.seqSnapshot,
	}
}

// record describes r for the keeper. Loop only.
func (p *Process) record(r *run) RunRecord {
	rec := RunRecord{
		ProcID: p.info.ID, PID: r.pid, StartTicks: r.startTicks, Started: r.started,
		Current: r == p.cur, Ready: r.ready, Stopping: r.stopping, Signaled: r.signaled,
		Notify: r.notifyPath, RunSeq: r.seq, HasIPC: r.ipc != nil, PidFile: r.pidFile,
		NotListened: r.worker != nil && r.ready && !r.listened,
	}
	if r.worker != nil {
		rec.Worker = r.worker.State()
	}
	return rec
}

// keepRun hands a new run to the keeper. Loop only.
func (p *Process) keepRun(r *run, files RunFiles) {
	if p.hooks.Keeper == nil {
		return
	}
	if st, err := procstat.ReadStat(r.pid); err == nil {
		r.startTicks = st.StartTicks
	}
	r.kept = true
	p.hooks.Keeper.KeepRun(p.record(r), files)
}

// recordChanged tells the keeper that r's record changed. Loop only.
func (p *Process) recordChanged(r *run) {
	if p.hooks.Keeper == nil || r == nil || !r.kept || r.exited {
		return
	}
	p.hooks.Keeper.UpdateRun(p.record(r))
}

// releaseRun tells the keeper that r is over. Loop only.
func (p *Process) releaseRun(r *run) {
	if p.hooks.Keeper == nil || !r.kept {
		return
	}
	r.kept = false
	p.hooks.Keeper.ReleaseRun(r.pid)
}

// exitOf reads an exit code (-1 when killed by a signal) and the signal name from a wait status.
func exitOf(ws syscall.WaitStatus) (int, string) {
	if ws.Signaled() {
		return -1, SignalName(ws.Signal())
	}
	return ws.ExitStatus(), ""
}

// exitAfterOutput hands the exit of r to the loop once the pumps have written the program's
// last lines (a stop or a kill must not return with output still in the pipes; an adopted run
// that exited while no daemon ran left its last lines there). A grandchild can keep a pipe
// open, so the wait is bounded. It blocks: run it on a goroutine of its own.
func (p *Process) exitAfterOutput(r *run, code int, sig string) {
	select {
	case <-r.drained:
	case <-time.After(pumpDrainTimeout):
	}
	p.post(func() { p.onExit(r, code, sig) })
}
