// Package nodeipc is the Go side of Node.js's child_process IPC channel: the transport that
// process.send / process.on('message') and the cluster module run on: the channel, its framing,
// handle passing and the rules that go with them (docs/node-cluster-protocol.md §2–§4 and §8).
//
// A Channel owns the daemon's end of an AF_UNIX SOCK_STREAM socketpair whose other end is the
// child's NODE_CHANNEL_FD. It implements the two layers above the socket
// (docs/node-cluster-protocol.md §1.1):
//
//   - framing: one JSON value per '\n'-terminated UTF-8 line, the "json" serialization mode
//     (docs/node-cluster-protocol.md §3);
//   - the handle layer: NODE_HANDLE messages carrying one fd each via SCM_RIGHTS, answered by
//     NODE_HANDLE_ACK / NODE_HANDLE_NACK, in both directions (docs/node-cluster-protocol.md §4).
//
// Everything above that (NODE_CLUSTER seq/ack, online/listening, round-robin) is left to the
// caller: messages are delivered in order to a Handler, with Internal set for NODE_* commands.
//
// Concurrency model. Each Channel runs exactly two goroutines:
//
//   - a reader, which calls recvmsg, splits lines, matches received fds to NODE_HANDLE lines,
//     answers them, and calls the Handler;
//   - a writer, the only goroutine that ever writes to the socket, fed by a bounded queue so
//     that Send never blocks on a child that does not read
//     (docs/node-cluster-protocol.md §8.1 and §8.5).
//
// When the channel ends (EOF, error or Close) the reader stops reading, waits for the writer to
// exit, fails what is still queued, runs HandleClose once and closes Done, then exits.
//
// Ordering caveat: messages reach the Handler strictly in wire order. Node itself dispatches
// the inner msg of a NODE_HANDLE one tick after plain messages from the same read
// (docs/node-cluster-protocol.md §4.2), so a Node peer may observe a slightly different order
// than we do; never rely on ordering between a handle message and plain messages sent right
// after it.
package nodeipc
