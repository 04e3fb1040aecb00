package nodeipc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// NewPair returns the daemon's end and the child's end of a new channel.
//
// It is socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC), exactly what libuv creates for
// stdio 'ipc' (docs/node-cluster-protocol.md §2.2). SOCK_STREAM matters: datagram pairs happen
// to work for small messages but truncate anything above Node's 64 KiB read buffer. Both ends
// are close-on-exec so that no other child inherits them (docs/node-cluster-protocol.md §8.10);
// exec.Cmd.ExtraFiles clears the flag on the child's copy only.
//
// The child's end goes into exec.Cmd.ExtraFiles. The caller must close its copy of the child
// end right after Start: while the daemon holds it, the pair stays alive and the daemon never
// sees EOF when the child dies.
func NewPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("nodeipc: socketpair: %w", os.NewSyscallError("socketpair", err))
	}
	parent = os.NewFile(uintptr(fds[0]), "nodeipc-parent")
	child = os.NewFile(uintptr(fds[1]), "nodeipc-child")
	return parent, child, nil
}

// Env returns the variables a child needs to open its end of the channel as fd childFD
// (3 when the child end is ExtraFiles[0]).
//
// The serialization mode is always json (docs/node-cluster-protocol.md §3.4): the "advanced"
// mode is V8's serializer, which is not worth implementing. Cluster workers additionally need
// NODE_UNIQUE_ID, which is the cluster layer's business, not the channel's
// (docs/node-cluster-protocol.md §2.1).
func Env(childFD int) []string {
	return []string{
		"NODE_CHANNEL_FD=" + strconv.Itoa(childFD),
		"NODE_CHANNEL_SERIALIZATION_MODE=json",
	}
}

// The variables that give a cluster worker that is not a Node.js program (corral's Go package,
// github.com/corral-pm/corral/worker) the same channel: corral's own names, because a Node
// grandchild that inherited NODE_CHANNEL_FD / NODE_UNIQUE_ID would take itself for a worker.
const (
	ChannelFDEnv = "CORRAL_CHANNEL_FD"
	WorkerIDEnv  = "CORRAL_WORKER_ID"
)
