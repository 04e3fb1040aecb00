package nodeipc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// maxPendingFDs bounds fds received but not yet claimed by a NODE_HANDLE line. A Node sender
// has at most one in flight (it waits for our ACK, docs/node-cluster-protocol.md §4.3); the
// queue only exists so that a sender that does not wait still gets its fds matched in order.
const maxPendingFDs = 16

// pendingFD is a received fd and the stream offset at which the read that carried it began.
type pendingFD struct {
	fd        int
	readStart int64
}

// fdQueue matches received fds to NODE_HANDLE lines (docs/node-cluster-protocol.md §4.2).
// Linux returns at most one SCM_RIGHTS batch per recvmsg, together with the first byte of the
// sendmsg that carried it, and Node's receiver gives a received fd to the next NODE_HANDLE line
// parsed at or after that read. We do the same, with one refinement that only matters for
// senders that do not wait for ACKs: a line that began before the fd's read cannot own it (its
// own fd, if any, came in an earlier read), so it gets NACKed and the fd waits for the next
// line.
type fdQueue struct {
	q []pendingFD
}

// push stores the fd from a read that began at stream offset readStart. Past maxPendingFDs the
// oldest fd, which no NODE_HANDLE line claimed, is closed.
func (q *fdQueue) push(fd int, readStart int64) {
	if len(q.q) >= maxPendingFDs {
		unix.Close(q.q[0].fd)
		q.q = q.q[1:]
	}
	q.q = append(q.q, pendingFD{fd: fd, readStart: readStart})
}

// take returns the fd for a NODE_HANDLE line starting at stream offset lineStart, or -1.
func (q *fdQueue) take(lineStart int64) int {
	if len(q.q) == 0 || q.q[0].readStart > lineStart {
		return -1
	}
	fd := q.q[0].fd
	q.q = q.q[1:]
	return fd
}

// closeAll closes fds that no message claimed (the channel is ending).
func (q *fdQueue) closeAll() {
	for _, p := range q.q {
		unix.Close(p.fd)
	}
	q.q = nil
}

// takeRights extracts the fds of one recvmsg's control data into q. Only the first fd is kept:
// Node sends one per sendmsg, and with several the extra ones would end up attached to the
// wrong later message, so they are closed. With MSG_CTRUNC the batch is incomplete and treated
// as "no fd": whatever did arrive is closed and the line gets a NACK
// (docs/node-cluster-protocol.md §4.2).
func takeRights(oob []byte, flags int, readStart int64, q *fdQueue) {
	fds := parseRights(oob)
	if flags&unix.MSG_CTRUNC != 0 {
		closeFDs(fds)
		return
	}
	if len(fds) == 0 {
		return
	}
	closeFDs(fds[1:])
	q.push(fds[0], readStart)
}

// parseRights returns every fd carried by SCM_RIGHTS messages in oob. Other control messages
// are ignored; malformed control data yields what could be parsed.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds
}

// dupFD returns a close-on-exec duplicate of fd, so that it cannot leak into a child spawned
// while it is queued (docs/node-cluster-protocol.md §8.10).
func dupFD(fd int) (int, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup fd %d: %w", fd, err)
	}
	return dup, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// checkSendable refuses fds that a Node receiver cannot take. libuv classifies a received fd
// with uv_guess_handle (docs/node-cluster-protocol.md §4.2 and §4.5): TCP and UDP sockets,
// AF_UNIX stream sockets and FIFOs are fine; a regular file, character device or TTY makes the
// child abort (SIGABRT), and anything of unknown kind (a directory, an AF_UNIX datagram
// socket, ...) is never consumed, so every later handle on that channel is NACKed.
func checkSendable(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("nodeipc: send handle: fstat fd %d: %w", fd, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return nil
	case unix.S_IFSOCK:
	default:
		return fmt.Errorf("nodeipc: send handle: fd %d is not a socket or FIFO (mode %#o); Node would abort or wedge", fd, st.Mode&unix.S_IFMT)
	}
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("nodeipc: send handle: SO_DOMAIN of fd %d: %w", fd, err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("nodeipc: send handle: SO_TYPE of fd %d: %w", fd, err)
	}
	inet := domain == unix.AF_INET || domain == unix.AF_INET6
	switch {
	case typ == unix.SOCK_STREAM && (inet || domain == unix.AF_UNIX):
		return nil
	case typ == unix.SOCK_DGRAM && inet:
		return nil
	}
	return fmt.Errorf("nodeipc: send handle: fd %d is a socket of domain %d type %d, which Node cannot receive", fd, domain, typ)
}
