// Package api is the contract between the daemon and its clients (the CLI, monit, the
// dashboard): HTTP+JSON over a unix socket in CORRAL_HOME, under versioned paths. It holds the
// wire types and a small client.
package api

import (
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// Prefix is the path prefix of this version of the API.
const Prefix = "/v1"

// HeaderVersion carries the daemon's build version on every response.
const HeaderVersion = "Corral-Version"

// Process is one process slot as the daemon reports it. Secrets in App.Env and App.BaseEnv are
// masked unless the request asked to reveal them.
type Process struct {
	ID        int    `json:"pm_id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Instance  int    `json:"instance"`
	PID       int    `json:"pid"`
	Status    string `json:"status"`
	// Ready is whether the current run is ready: listening (cluster mode), its 'ready' sent
	// (wait_ready), its port answering (inherited sockets), or judged so after listen_timeout.
	// A cluster worker is online (PM2's status) before it is ready.
	Ready      bool      `json:"ready"`
	Restarts   int       `json:"restart_time"`
	Unstable   int       `json:"unstable_restarts"`
	StartedAt  time.Time `json:"started_at"`
	CreatedAt  time.Time `json:"created_at"`
	Exited     bool      `json:"exited,omitempty"`
	ExitCode   int       `json:"exit_code"`
	ExitSignal string    `json:"exit_signal,omitempty"`
	// PrevRestartDelayMS is the last exponential backoff delay.
	PrevRestartDelayMS int64  `json:"prev_restart_delay"`
	LastError          string `json:"last_error,omitempty"`
	// LogError is why a log file could not be opened (or was refused: a symbolic link someone
	// else planted), or the pid file written, at the latest start.
	LogError string `json:"log_error,omitempty"`
	// LostLogLines and LostLogBytes count the output that did not reach a log file it was
	// meant for (disk full, I/O error, a file that could not be opened or was refused).
	LostLogLines uint64 `json:"lost_log_lines,omitempty"`
	LostLogBytes uint64 `json:"lost_log_bytes,omitempty"`

	CPU    float64 `json:"cpu"`    // percent of one CPU, whole process tree
	Memory int64   `json:"memory"` // RSS bytes, whole process tree
	// MemoryLimit is the memory limit of the cgroup (container) corral runs in, 0 if none.
	MemoryLimit int64 `json:"memory_limit,omitempty"`

	OutLog      string `json:"pm_out_log_path"`
	ErrLog      string `json:"pm_err_log_path"`
	CombinedLog string `json:"pm_log_path,omitempty"`
	PidFile     string `json:"pm_pid_path,omitempty"`

	Version     string `json:"version"`  // from the app's package.json, or "N/A"
	Username    string `json:"username"` // who runs the daemon (and so the app)
	Watching    bool   `json:"watching"`
	NodeVersion string `json:"node_version,omitempty"`

	App spec.App `json:"app"`

	// Cluster is set for cluster-mode processes.
	Cluster *WorkerStats `json:"cluster,omitempty"`
	// Requests is set for the other processes whose preload reported request metrics
	// (fork-mode Node processes): only its request and runtime fields. Cluster processes have
	// them in Cluster.
	Requests *WorkerStats `json:"requests,omitempty"`
}

// RequestStats returns the process's request metrics, from Cluster or Requests; nil if none.
func (p *Process) RequestStats() *WorkerStats {
	if p.Cluster != nil {
		return p.Cluster
	}
	return p.Requests
}

// WorkerStats is a cluster worker's share of the app's connections.
type WorkerStats struct {
	WorkerID    int      `json:"worker_id"`    // NODE_UNIQUE_ID of the current run
	Listening   []string `json:"listening"`    // addresses the worker serves
	Connections uint64   `json:"connections"`  // handed off and accepted, since the slot was created
	ConnPerSec  float64  `json:"conn_per_sec"` // over the last sampling interval
	Refused     uint64   `json:"refused"`      // connections it answered accepted:false
	InFlight    int      `json:"in_flight"`    // handed off, not yet answered

	// Requests are what corral's preload counted inside the worker
	// (docs/node-cluster-protocol.md §10.1): on keep-alive connections, connections say little
	// about how the work is spread. Since the slot was created, across restarts and reloads.
	Requests        uint64    `json:"requests"`
	RequestsByClass [5]uint64 `json:"requests_by_class"` // responses with status 1xx..5xx
	Requests5xx     uint64    `json:"requests_5xx"`
	ReqPerSec       float64   `json:"req_per_sec"`    // between the worker's last two reports; 0 when idle
	LatencyP50MS    float64   `json:"latency_p50_ms"` // estimated from the latency histogram
	LatencyP99MS    float64   `json:"latency_p99_ms"`
	// Runtime gauges of the current run, from its last report; absent before its first.
	Runtime *WorkerRuntime `json:"runtime,omitempty"`
}

// WorkerRuntime describes a process's runtime, as its last metrics report said.
type WorkerRuntime struct {
	// Event-loop delay since the report before; absent for a runtime without an event loop
	// (a Go worker).
	EventLoopP50MS *float64 `json:"event_loop_p50_ms,omitempty"`
	EventLoopP99MS *float64 `json:"event_loop_p99_ms,omitempty"`
	EventLoopMaxMS *float64 `json:"event_loop_max_ms,omitempty"`
	HeapUsed       uint64   `json:"heap_used"`
	HeapTotal      uint64   `json:"heap_total"`
	Handles        *int     `json:"handles,omitempty"` // active handles, when the runtime says
}

// StartRequest asks the daemon to run apps. Apps that already exist are restarted with the new
// spec (as `pm2 start ecosystem.config.js` does) unless Mode is "create".
type StartRequest struct {
	Apps []spec.App `json:"apps"`
	// Mode: "file" (create or update+restart), "create" (error if the app exists).
	Mode string `json:"mode"`
}

// ActionRequest names targets for stop, restart, reload, delete, reset, signal, start.
type ActionRequest struct {
	// Targets: ids, names, namespaces, "all" or /regex/.
	Targets []string `json:"targets"`
	// UpdateEnv, when set, replaces each app's inherited environment (restart --update-env).
	UpdateEnv map[string]string `json:"update_env,omitempty"`
	// Signal for the signal action.
	Signal string `json:"signal,omitempty"`
}

// ActionResponse lists the processes an action touched, after it.
type ActionResponse struct {
	Processes []Process `json:"processes"`
	Warnings  []string  `json:"warnings,omitempty"`
	// Errors lists per-process failures (the action went on for the others).
	Errors []string `json:"errors,omitempty"`
	// Reloads details a rolling reload (cluster mode), in the order it went.
	Reloads []ReloadSummary `json:"reloads,omitempty"`
}

// ScaleRequest sets an app's number of processes: "4", "max", "+2", "-1".
type ScaleRequest struct {
	App   string `json:"app"`
	Count string `json:"count"`
}

// MessageRequest sends a message to processes' process.on('message').
type MessageRequest struct {
	Targets []string `json:"targets"`
	Data    any      `json:"data"`
}

// SaveResponse says what `save` wrote.
type SaveResponse struct {
	Path  string `json:"path"`
	Apps  int    `json:"apps"`
	Procs int    `json:"processes"`
}

// ResurrectResponse says what `resurrect` did.
type ResurrectResponse struct {
	Path       string    `json:"path"`
	FromBackup bool      `json:"from_backup"`
	Started    []string  `json:"started"`
	Skipped    []string  `json:"skipped"` // already running
	Processes  []Process `json:"processes"`
}

// Version answers GET /v1/version (and ping).
type Version struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Home    string    `json:"home"`
	Started time.Time `json:"started"`
	// Keeper is the daemon's keeper (docs/daemon-survival.md); nil when it runs without one,
	// and then the apps end with it.
	Keeper *KeeperInfo `json:"keeper,omitempty"`
}

// KeeperInfo is the daemon's keeper and the daemon's history under it.
type KeeperInfo struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Restarts counts the daemons started after one died (crash, kill -9); Upgrades the hot
	// upgrades (`corral update`).
	Restarts int    `json:"restarts"`
	Upgrades int    `json:"upgrades"`
	LastExit string `json:"last_exit,omitempty"` // how the previous daemon ended
	// Unadoptable says why the previous daemon's apps could not be taken over, if so.
	Unadoptable string `json:"unadoptable,omitempty"`
}

// HandoverVersion is the layout of the state a daemon hands to the next one through its
// keeper (internal/daemon/keep.go). `corral update` replaces a daemon only by one that reads
// it: `corral keeper --handover-version` prints what a binary reads.
const HandoverVersion = 1

// UpdateRequest is the body of POST /v1/update.
type UpdateRequest struct {
	// Binary is the corral binary to switch to (absolute; the CLI's own): "" is the one the
	// daemon runs, as it is on disk now.
	Binary string `json:"binary,omitempty"`
}

// UpdateResponse answers POST /v1/update, sent just before the daemon leaves for the binary
// on disk (the keeper starts it; every app keeps running).
type UpdateResponse struct {
	PID    int    `json:"pid"`    // the daemon that leaves
	From   string `json:"from"`   // its version
	Binary string `json:"binary"` // what the keeper starts next
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
	// Code is machine-readable: "not_found", "bad_request", "conflict", "internal".
	Code string `json:"code"`
}

// EnvResponse is the environment of one process.
type EnvResponse struct {
	ID  int               `json:"pm_id"`
	Env map[string]string `json:"env"`
}

// LogLine is one line of GET /v1/logs: PM2's `logs --json` fields, plus where a line of
// history came from.
type LogLine struct {
	Time    time.Time `json:"timestamp"`
	ProcID  int       `json:"process_id"` // -1 for the daemon
	App     string    `json:"app_name"`
	Stream  string    `json:"type"` // out, err, corral
	Message string    `json:"message"`
	History bool      `json:"history,omitempty"`
	Path    string    `json:"path,omitempty"`
}

// ReloadSummary is one process's part of a rolling reload.
type ReloadSummary struct {
	ID      int    `json:"pm_id"`
	Name    string `json:"name"`
	OldPID  int    `json:"old_pid"`
	NewPID  int    `json:"new_pid"`
	ReadyMS int64  `json:"ready_ms"`
	Started bool   `json:"started,omitempty"` // was not running: simply started
	Error   string `json:"error,omitempty"`
}

// FlushResponse lists the log files `flush` truncated.
type FlushResponse struct {
	Flushed []string `json:"flushed"`
	// Errors says which files could not be truncated, and why (the others were).
	Errors []string `json:"errors,omitempty"`
}

// KillResponse answers POST /v1/kill, sent once every app has stopped and just before the
// daemon exits.
type KillResponse struct {
	Killed bool `json:"killed"`
	PID    int  `json:"pid"`
}

// HTTPListenResponse answers POST /v1/http/listen, which makes the daemon apply the
// http.listen setting to its HTTP listener (/metrics) now.
type HTTPListenResponse struct {
	Address    string `json:"address"`    // the address bound now ("" when the listener is off)
	Configured string `json:"configured"` // the address asked for (a port 0 is bound to a free one)
	// Source is where the address comes from: "setting http.listen", or CORRAL_HTTP_LISTEN when
	// the daemon was started with it, which then wins and the setting is not applied.
	Source  string `json:"source"`
	Changed bool   `json:"changed"` // the listener was opened, moved or closed
}

// ReopenResponse answers POST /v1/logs/reopen.
type ReopenResponse struct {
	Reopened bool `json:"reopened"`
}

// Action is a lifecycle action on targets: POST /v1/actions/{action}.
type Action string

const (
	ActionStart   Action = "start"   // start stopped processes; restart running ones (PM2's "smart start")
	ActionStop    Action = "stop"    // stop gracefully
	ActionRestart Action = "restart" // stop and start (rolling where the app owns its port)
	ActionReload  Action = "reload"  // rolling replacement with no gap
	ActionDelete  Action = "delete"  // stop and remove
	ActionReset   Action = "reset"   // zero the counters
	ActionSignal  Action = "signal"  // send ActionRequest.Signal
)

// Actions lists every action, for validation and help.
var Actions = []Action{ActionStart, ActionStop, ActionRestart, ActionReload, ActionDelete, ActionReset, ActionSignal}

// Error codes of Error.Code.
const (
	CodeNotFound   = "not_found"
	CodeBadRequest = "bad_request"
	CodeConflict   = "conflict"
	CodeTooLarge   = "too_large"
	CodeInternal   = "internal"
)

// Start modes of StartRequest.Mode.
const (
	ModeFile   = "file"   // create the apps, or update and restart those that exist
	ModeCreate = "create" // create the apps; one that exists is a conflict
)
