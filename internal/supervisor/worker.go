package supervisor

import "github.com/corral-pm/corral/internal/nodeipc"

// WorkerProtocol makes every run of a process a worker of some protocol: cluster mode uses it
// to turn Node processes into cluster workers of the daemon. Fork mode has none.
type WorkerProtocol interface {
	// NewWorker prepares the protocol side of a run that is about to be spawned.
	NewWorker(processID int, ctl WorkerControl) (Worker, error)
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
}

// WorkerControl lets a worker report its run's progress to the process.
type WorkerControl interface {
	// Ready marks the run ready (cluster: its first 'listening').
	Ready()
	// Disconnected reports that the worker's channel closed: after a Disconnect, the worker
	// has finished its in-flight work, and gets its kill signal to exit.
	Disconnected()
}
