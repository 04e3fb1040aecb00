package nodeipc

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drainTimeout bounds how long the reader keeps going after a write found the child gone
// (EPIPE). The child normally closed its end, so EOF follows as soon as its last messages are
// read; the timeout only matters for a peer that shut down its reading side but kept the
// socket open.
const drainTimeout = 5 * time.Second

// writeLoop is the channel's writer (docs/node-cluster-protocol.md §8.1): it does every write
// but a handle sent on an idle channel (sendInline, which it waits for). Owning the writes in
// one goroutine is what makes a short sendmsg safe: the rest of the line goes out before any
// other byte, so lines never interleave, and a child that stops reading blocks only this
// goroutine, never a caller of Send (docs/node-cluster-protocol.md §8.5).
func (c *Channel) writeLoop() {
	defer liveGoroutines.Add(-1)
	defer close(c.writerDone)
	for {
		m := c.next()
		if m == nil {
			return
		}
		isHandle := m.fd >= 0 // write resets m.fd
		err := c.write(m)
		if err != nil && isHandle && isPerMessageError(err) {
			c.rejectHandle(m)
			continue
		}
		c.mu.Lock()
		c.writing = false
		if err == nil {
			c.notifyIdleLocked()
		}
		c.mu.Unlock()
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
}

// next blocks until there is a line to write and returns it, or nil when the writer must exit.
// Our own ACK/NACK lines go first and ignore the handle hold: the child may be waiting for
// them while we wait for its ACK, and Node lets them bypass its queue for the same reason
// (docs/node-cluster-protocol.md §4.3). Everything else waits while a handle is in flight,
// except a handle that fits in the window (Options.HandleWindow,
// docs/node-cluster-protocol.md §4.4).
func (c *Channel) next() *outgoing {
	for {
		select {
		case <-c.stop:
			return nil
		default:
		}
		c.mu.Lock()
		if c.inlineBusy {
			// A caller is writing a handle itself (sendInline): it wakes us when done.
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.stop:
				return nil
			}
			continue
		}
		if c.cont != nil {
			m := c.cont // the rest of sendInline's line: nothing may come between
			c.cont = nil
			c.writing = true
			c.mu.Unlock()
			return m
		}
		if len(c.ctrl) > 0 {
			line := c.ctrl[0]
			c.ctrl[0] = nil
			c.ctrl = c.ctrl[1:]
			c.writing = true
			c.mu.Unlock()
			return &outgoing{line: line, fd: -1}
		}
		if len(c.queue) > 0 && (len(c.inflight) == 0 || c.queue[0].fd >= 0 && len(c.inflight) < c.window) {
			m := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if m.fd >= 0 {
				// In flight from now on, before the write: the ACK can arrive before
				// sendmsg even returns.
				c.inflight = append(c.inflight, m)
			}
			c.writing = true
			c.mu.Unlock()
			return m
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-c.stop:
			return nil
		}
	}
}

// write puts one line on the socket. A handle line goes out with one sendmsg carrying exactly
// its one fd (docs/node-cluster-protocol.md §4.1 and §8.2). sendmsg may take only part of the
// line (it makes a single attempt); the rest follows with plain writes and without the fd,
// which the receiver handles because the fd arrives with the line's first byte
// (docs/node-cluster-protocol.md §4.2 and §8.1).
func (c *Channel) write(m *outgoing) error {
	line := m.line
	if m.fd >= 0 {
		n, err := c.sendmsg(c.rc, line, unix.UnixRights(m.fd))
		// The kernel holds its own reference while the fd is in flight
		// (docs/node-cluster-protocol.md §8.4), and after a failure nothing was sent: either
		// way our dup is no longer needed.
		if !m.borrowed {
			unix.Close(m.fd)
		}
		m.fd = -1
		if err != nil {
			return fmt.Errorf("nodeipc: sendmsg handle: %w", err)
		}
		if n < len(line) {
			c.stats.partialSendmsg.Add(1)
		}
		line = line[n:]
	}
	if len(line) > 0 {
		if err := writeAll(c.rc, line); err != nil {
			return fmt.Errorf("nodeipc: write: %w", err)
		}
	}
	return nil
}

// isPerMessageError reports a sendmsg failure that refused only this fd, with no byte sent:
// ETOOMANYREFS when too many of our fds are in flight (docs/node-cluster-protocol.md §8.3). The
// channel itself is fine.
func isPerMessageError(err error) bool {
	return errors.Is(err, syscall.ETOOMANYREFS)
}

// rejectHandle answers a handle the kernel refused (nothing was written) with false and lets
// the queue move on.
func (c *Channel) rejectHandle(m *outgoing) {
	c.mu.Lock()
	i := slices.Index(c.inflight, m) // -1 if a (stray) answer already took it
	mine := i >= 0
	if mine {
		c.inflight = slices.Delete(c.inflight, i, i+1)
	}
	c.writing = false
	c.notifyIdleLocked()
	c.mu.Unlock()
	if mine && m.onResult != nil {
		m.onResult(false)
	}
}

// writeFailed ends writing after err. EPIPE/ECONNRESET mean the child has gone (Go ignores
// SIGPIPE for non-stdio fds; docs/node-cluster-protocol.md §8.6): sending stops, but the socket
// stays open so the reader can still deliver what the child sent before it went, up to EOF. Any
// other error ends the channel.
func (c *Channel) writeFailed(err error) {
	switch {
	case errors.Is(err, net.ErrClosed):
		// Close or the reader ended the channel under us; the cause is already set.
	case isDisconnect(err):
		c.mu.Lock()
		c.sendClosed = true
		c.mu.Unlock()
		c.conn.SetReadDeadline(time.Now().Add(drainTimeout))
	default:
		c.terminate(err)
	}
}

// isDisconnect reports the errors that mean the peer closed its end.
func isDisconnect(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
