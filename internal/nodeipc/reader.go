package nodeipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxRecvFDs sizes the control buffer: CmsgSpace(4*64) has room for 64 fds, far more than the
// one a well-behaved sender attaches, so that extra fds are received (and closed) instead of
// being lost to MSG_CTRUNC inside the kernel (docs/node-cluster-protocol.md §4.2).
const maxRecvFDs = 64

// readLoop is the channel's reader goroutine: recvmsg, framing, fd matching, dispatch.
func (c *Channel) readLoop() {
	defer liveGoroutines.Add(-1)
	var (
		buf   = make([]byte, c.readBufSize)
		oob   = make([]byte, unix.CmsgSpace(4*maxRecvFDs))
		fr    framer
		fds   fdQueue
		off   int64 // stream offset of the next byte to read
		cause error
	)
	for {
		n, oobn, flags, err := recvmsg(c.rc, buf, oob)
		if oobn > 0 || flags&unix.MSG_CTRUNC != 0 {
			takeRights(oob[:oobn], flags, off, &fds)
		}
		if n > 0 {
			fr.feed(buf[:n], func(line []byte, start int64) {
				c.dispatch(line, start, &fds)
			})
			off += int64(n)
		}
		if err != nil {
			cause = readCause(err)
			break
		}
	}
	fds.closeAll()
	c.finish(cause)
}

// readCause maps the error that ended reading to what HandleClose gets.
func readCause(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		// The child closed its end (ECONNRESET: with data of ours still unread). Either way
		// it is a disconnect (docs/node-cluster-protocol.md §8.6), reported as nil.
		return nil
	case errors.Is(err, net.ErrClosed):
		return ErrClosed // only we close the conn, so terminate has already set the cause
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("nodeipc: child stopped reading (EPIPE) but kept the channel open")
	default:
		return fmt.Errorf("nodeipc: read: %w", err)
	}
}

// dispatch routes one complete line. start is its stream offset, used to match fds.
func (c *Channel) dispatch(line []byte, start int64, fds *fdQueue) {
	f, err := parseLine(line)
	resumed := c.resuming
	c.resuming = false
	if c.stopped() {
		return // after Close nothing more is delivered; fds are closed by the reader
	}
	if err != nil {
		if !resumed {
			c.h.HandleBadLine(line, err)
		}
		return
	}
	switch f.cmd {
	case cmdHandleAck:
		c.handleResult(true)
	case cmdHandleNack:
		c.handleResult(false)
	case cmdHandle:
		c.receiveHandle(f, fds.take(start))
	default:
		c.h.HandleMessage(Message{Raw: f.raw, Cmd: f.cmd, Internal: isInternal(f.cmd)})
	}
}

// stopped reports whether the channel was ended from our side (Close or a fatal error).
func (c *Channel) stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.terminated
}

// receiveHandle answers an incoming NODE_HANDLE the way Node does
// (docs/node-cluster-protocol.md §4.2): with an fd, ACK first and then deliver the inner msg
// with the handle; without one (none arrived, or MSG_CTRUNC), NACK and drop the msg. Leaving a
// NODE_HANDLE unanswered would freeze the child's send queue for good
// (docs/node-cluster-protocol.md §4.3 and §8.8).
func (c *Channel) receiveHandle(f frame, fd int) {
	if fd < 0 {
		c.enqueueControl(lineHandleNack)
		return
	}
	h := os.NewFile(uintptr(fd), "nodeipc-handle")
	if !c.enqueueControl(lineHandleAck) && c.stopped() {
		h.Close()
		return
	}
	inner := f.obj["msg"]
	if len(inner) == 0 {
		inner = json.RawMessage("null") // Node dispatches an absent msg as undefined
	}
	cmd := classify(inner)
	c.h.HandleMessage(Message{
		Raw:        inner,
		Cmd:        cmd,
		Internal:   isInternal(cmd),
		Handle:     h,
		HandleType: stringField(f.obj, "type"),
	})
}
