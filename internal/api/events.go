package api

import "time"

// EventKind says what happened to a process. Clients switch on it; the Message is for people.
type EventKind string

// The kinds of events on GET /v1/events (and lines of the daemon log).
const (
	EventStart          EventKind = "start"           // a run was spawned (PID)
	EventOnline         EventKind = "online"          // the run is ready; OldPID set: a reload's replacement took over
	EventExit           EventKind = "exit"            // a run ended (ExitCode, Signal); Replaced: it was a reload's old or failed run
	EventRestart        EventKind = "restart"         // a deliberate restart began
	EventWaitingRestart EventKind = "waiting restart" // a crash restart is scheduled (DelayMS)
	EventStop           EventKind = "stop"            // the process is stopped
	EventErrored        EventKind = "errored"         // it could not start, or gave up restarting
	EventDelete         EventKind = "delete"          // the process slot was removed
	EventReload         EventKind = "reload"          // a replacement run was started (PID; OldPID is the run it replaces)
	EventReloadFailed   EventKind = "reload failed"   // the replacement did not take over; the old run keeps serving
	EventKill           EventKind = "kill"            // kill_timeout passed: SIGKILL
	EventMemoryLimit    EventKind = "memory limit"    // max_memory_restart was exceeded
	EventTrigger        EventKind = "trigger"         // cron_restart or watch asked for a restart
	EventMessage        EventKind = "message"         // the process sent a message (process.send)
	EventDropped        EventKind = "dropped"         // this reader fell behind and missed events
	EventLogError       EventKind = "log error"       // a log file could not be opened (or was refused), or the pid file written
	EventOutputLost     EventKind = "output lost"     // output a log file did not take (rate limited: the first loss, then a summary a minute)
	EventAdopted        EventKind = "adopted"         // a daemon that started after another took over the run (PID)
	EventBuild          EventKind = "build"           // the app's build began, ended or failed (Message; ID is the process whose log has its output)
)

// BuildStartedPrefix begins the Message of the EventBuild that says a build began (the others
// say how it ended).
const BuildStartedPrefix = "building: "

// Event is something that happened to a process: a line of GET /v1/events.
type Event struct {
	Time    time.Time `json:"time"`
	ID      int       `json:"pm_id"` // -1 for the daemon itself
	Name    string    `json:"name"`
	Kind    EventKind `json:"event"`
	PID     int       `json:"pid,omitempty"`
	Message string    `json:"message,omitempty"`
	// OldPID is the run a reload replaces (reload, and online when it took over).
	OldPID int `json:"old_pid,omitempty"`
	// Replaced marks the exit of a run that was no longer the process's current one: a
	// reload's old run after draining, or a replacement that failed.
	Replaced bool `json:"replaced,omitempty"`
	// Crash marks the exit of a current run that corral did not ask for and that is not one of
	// the app's stop_exit_codes: what the crash_rate alert counts.
	Crash bool `json:"crash,omitempty"`
	// ExitCode and Signal are set on exit events.
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	// DelayMS is set when a restart is scheduled.
	DelayMS int64 `json:"delay_ms,omitempty"`
}
