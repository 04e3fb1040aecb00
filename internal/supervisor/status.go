// Package supervisor runs one managed process slot (one PM2 "pm_id"): it spawns the program,
// applies PM2's restart policy when it exits, stops it gracefully (signal, then SIGKILL of its
// whole process group after kill_timeout) and reports what it is doing.
//
// Each Process has one goroutine, its loop, that owns every state change; other goroutines
// (the child's waiter, IPC reader, timers, API handlers) post closures to it. This keeps the
// restart policy free of locks and races: the only mutex guards the snapshot read by Info.
package supervisor

import (
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// Status is a process status, with PM2's names (`jlist` consumers compare these strings).
type Status string

const (
	StatusLaunching      Status = "launching"
	StatusOnline         Status = "online"
	StatusStopping       Status = "stopping"
	StatusStopped        Status = "stopped"
	StatusErrored        Status = "errored"
	StatusWaitingRestart Status = "waiting restart"
)

// Info is a snapshot of a process slot.
type Info struct {
	ID        int
	Instance  int
	App       *spec.App // never modified after it is set; Update swaps the pointer
	Status    Status
	PID       int
	Restarts  int // PM2's restart_time
	Unstable  int // consecutive runs shorter than min_uptime
	StartedAt time.Time
	CreatedAt time.Time
	// Exited is true once a run has ended; ExitCode is -1 when a signal ended it.
	Exited           bool
	ExitCode         int
	ExitSignal       string
	PrevRestartDelay time.Duration
	LastError        string // why the last spawn failed, if it did
	Files            Files
	// Ready is true once the current run is ready (online, or 'ready' received with wait_ready).
	Ready bool
	// LostLogLines and LostLogBytes count the output that did not reach a log file it was
	// meant for (a full disk, an I/O error, a file that could not be opened or was refused),
	// over every run, since the slot was created or reset. The live stream still got it.
	LostLogLines uint64
	LostLogBytes uint64
	// LogError is why a log file of the latest run could not be opened (or was refused), or its
	// pid file could not be written, if that happened.
	LogError string
}

// Files are the per-process paths derived from the app's per-app paths.
type Files struct {
	Out, Err, Combined, Pid string
}

// FilesFor resolves an app's log and pid paths for process id: "-<id>" suffixes unless logs are
// merged. Pid files are always per process.
func FilesFor(app *spec.App, id int) Files {
	return Files{
		Out:      spec.ProcessFilePath(app.OutFile, id, app.MergeLogs),
		Err:      spec.ProcessFilePath(app.ErrorFile, id, app.MergeLogs),
		Combined: spec.ProcessFilePath(app.LogFile, id, app.MergeLogs),
		Pid:      spec.ProcessFilePath(app.PidFile, id, false),
	}
}
