package supervisor

import (
	"context"
	"encoding/json"
	"os"

	"github.com/corral-pm/corral/internal/nodeipc"
)

// WorkerProtocol makes every run of a process a worker of some protocol: cluster mode uses it
// to turn Node processes into cluster workers of the daemon. Fork mode has none.
type WorkerProtocol interface {
	// NewWorker prepares the protocol side of a run that is about to be spawned.
	NewWorker(processID int, ctl WorkerControl) (Worker, error)
	// AdoptWorker recreates the protocol side of a run an earlier daemon started, from what
	// its Worker.State said (adopt.go). Attach follows, with the run's channel.
	AdoptWorker(processID int, state json.RawMessage, ctl WorkerControl) (Worker, error)
}

// Worker is the protocol side of one run. Its methods may be called from the run's IPC reader
// goroutine and from the process loop, so implementations synchronise themselves.
type Worker interface {
	// Env is added to the run's environment (NODE_UNIQUE_ID, ...).
	Env() []string
	// Attach is called right after spawn with the run's IPC channel (nil if it has none).
	Attach(ch *nodeipc.Channel, pid int)
	// HandleInternal receives internal IPC messages (cmd NODE_*), on the reader goroutine.
	HandleInternal(m nodeipc.Message)
	// HandleChannelClose is called (on the reader goroutine) when the run's IPC channel closes.
	HandleChannelClose()
	// Disconnect asks the worker to stop gracefully through the protocol: out of rotation,
	// then let it finish what it is doing. false means the protocol cannot, and the process
	// gets its kill signal at once instead.
	Disconnect() bool
	// Ended is called once the run has exited.
	Ended()
	// State describes where the worker stands in the protocol, for a daemon that adopts the
	// run (AdoptWorker). It calls WorkerControl.StateChanged when it changes.
	State() json.RawMessage
}

// WorkerControl lets a worker report its run's progress to the process.
type WorkerControl interface {
	// Ready marks the run ready (cluster: its first 'listening').
	Ready()
	// Disconnected reports that the worker's channel closed: after a Disconnect, the worker
	// has finished its in-flight work, and gets its kill signal to exit.
	Disconnected()
	// StateChanged reports that Worker.State changed (the keeper's record is updated).
	StateChanged()
	// ListenFailed reports that the run's listen() was refused (the port is taken...),
	// saying why as a person would: the run's exit then counts as unstable, whatever its
	// uptime, and a start waiting for the run hears the reason.
	ListenFailed(reason string)
}

// Protocol is how a process's runs deal with the daemon beyond signals and pipes. It is fixed
// per app mode and changed only while the process is stopped (SetProtocol).
type Protocol struct {
	// Worker makes every run a worker of the cluster protocol (cluster mode).
	Worker WorkerProtocol
	// NodePreload is loaded into Node processes with --require (when it has a path): cluster
	// workers, and fork-mode processes unless their app has pmx: false.
	NodePreload Preload
	// HandleWindow is how many handles the run's IPC channel may send before their
	// acknowledgements (nodeipc.Options.HandleWindow): the cluster's hand-off window.
	HandleWindow int
	// Sockets are inherited by every run as fds 3.. (systemd's socket activation), and tell
	// when a run that does not speak sd_notify is ready.
	Sockets SocketSource
}

// Preload is a file Node cluster workers load (home.Pinned): Path checks it before each spawn
// and returns "" when it must not be used.
type Preload interface {
	Path() string
}

// SocketSource is an app's inherited listening sockets (cluster.Sockets).
type SocketSource interface {
	// Files returns copies of the sockets for one child (closed by the caller once it has
	// started) and their names.
	Files() ([]*os.File, []string, error)
	// Probe returns nil once the port answers: a connection is accepted by some process.
	Probe(ctx context.Context) error
}

// replaceable reports whether a running process can be replaced without a gap: its port is
// owned by the daemon (cluster mode, or inherited sockets).
func (pr Protocol) replaceable() bool { return pr.Worker != nil || pr.Sockets != nil }
