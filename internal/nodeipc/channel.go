package nodeipc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Message is one message received from the child.
type Message struct {
	// Raw is the message as a JSON value; for NODE_HANDLE it is the inner "msg"
	// (docs/node-cluster-protocol.md §4.1).
	Raw json.RawMessage
	// Cmd is the top-level "cmd" field when the message is an object with a string cmd.
	Cmd string
	// Internal is Node's rule (docs/node-cluster-protocol.md §1.2): Cmd starts with "NODE_"
	// and is longer than 5 characters. Node never shows internal messages to user 'message'
	// listeners.
	Internal bool
	// Handle is the fd the child attached (NODE_HANDLE), else nil. The handler owns it and
	// must close it. It is close-on-exec.
	Handle *os.File
	// HandleType is the "type" of the NODE_HANDLE envelope ("net.Native", "net.Socket",
	// "net.Server", "dgram.Native", ...) when Handle is set, else "".
	HandleType string
}

// Handler receives what the child sends. All three methods run on the channel's reader
// goroutine, one at a time, so a slow handler delays further reads (the child then buffers;
// docs/node-cluster-protocol.md §8.5) but never the writer. A handler may call Send, SendHandle
// and Close; it must not wait for Done.
type Handler interface {
	// HandleMessage gets every message in arrival order, except the handle-layer commands
	// NODE_HANDLE_ACK / NODE_HANDLE_NACK, which the channel consumes itself.
	HandleMessage(m Message)
	// HandleBadLine gets a line that is not one JSON value (including an empty line). The
	// channel stays open: a worker writing garbage must not kill the daemon's reader.
	HandleBadLine(line []byte, err error)
	// HandleClose runs exactly once, after the last HandleMessage/HandleBadLine and after
	// every pending SendHandle callback: err is nil when the child went away (EOF, or
	// ECONNRESET / EPIPE, which mean the same), ErrClosed after Close, else the error that
	// ended the channel (a read or write failure, or a peer flooding handles unread).
	HandleClose(err error)
}

// Options configures a Channel.
type Options struct {
	// QueueLen bounds the send queue (messages accepted by Send/SendHandle but not yet
	// written, including those held back behind an unacknowledged handle). Default 1024.
	QueueLen int
	// HandleWindow is how many handles may await their ACK/NACK at once. Node's own sender
	// allows one (docs/node-cluster-protocol.md §4.3): after a handle, everything waits for its
	// answer. Handles sent back to back, each in its own sendmsg, reach a Node receiver intact
	// (docs/node-cluster-protocol.md §4.2), so a sender may pipeline them: one wake-up of the
	// daemon then hands over several connections, and one of the child's reads may find several
	// waiting. Plain messages still wait until every handle before them is answered, so nothing
	// overtakes a handle. 0 or 1: Node's rule. See docs/node-cluster-protocol.md §4.4.
	HandleWindow int
	// Resume says the channel was read before, by another daemon that may have stopped in the
	// middle of a line: a first line that is not JSON is the tail of that line and is dropped
	// without a HandleBadLine. (Node's messages are JSON objects: a proper tail of one never
	// parses.)
	Resume bool

	readBufSize int // recvmsg data buffer; tests shrink it to force split reads
	// sendmsg replaces the handle-carrying sendmsg; tests inject kernel refusals with it.
	sendmsg func(rc syscall.RawConn, line, oob []byte) (int, error)
}

// DefaultQueueLen is the send queue bound used when Options.QueueLen is not positive.
const DefaultQueueLen = 1024

// defaultReadBufSize is libuv's read size for the channel (docs/node-cluster-protocol.md §2.2).
// Lines longer than this are reassembled by the framer.
const defaultReadBufSize = 64 << 10

var (
	// ErrQueueFull is returned by Send and SendHandle when the bounded send queue is full,
	// i.e. the child is not reading (docs/node-cluster-protocol.md §8.5). What to do then
	// (drop, kill) is policy.
	ErrQueueFull = errors.New("nodeipc: send queue full")
	// ErrClosed is returned by Send and SendHandle once the channel is closed or the child
	// has disconnected, by a second Close, and passed to HandleClose after Close.
	ErrClosed = errors.New("nodeipc: channel closed")
)

// liveGoroutines counts the reader and writer goroutines of all channels, so tests can prove
// that none leak.
var liveGoroutines atomic.Int64

// outgoing is one queued line. fd >= 0 makes it a handle message: fd is the channel's own dup
// of the caller's fd, closed by the writer right after sendmsg
// (docs/node-cluster-protocol.md §8.4) or by the reader's cleanup if it is never sent; or,
// borrowed, the caller's own fd (SendHandleBorrowed).
type outgoing struct {
	line     []byte
	fd       int
	borrowed bool // fd belongs to the caller: never closed here
	onResult func(acked bool)
}

// Channel is the daemon's end of one Node IPC channel. Create it with Open.
type Channel struct {
	conn        *net.UnixConn
	rc          syscall.RawConn // conn's, for the reads and writes (rawio.go)
	h           Handler
	queueLen    int
	window      int // handles awaiting an answer at once (Options.HandleWindow)
	readBufSize int
	sendmsg     func(rc syscall.RawConn, line, oob []byte) (int, error)
	// resuming: the next line may be a tail (Options.Resume); reader goroutine only.
	resuming bool

	mu       sync.Mutex
	queue    []*outgoing // Send/SendHandle, FIFO, at most queueLen
	ctrl     [][]byte    // our ACK/NACK lines: never held (docs/node-cluster-protocol.md §4.3)
	inflight []*outgoing // handles being written or awaiting ACK/NACK, oldest first; hold back the queue
	writing  bool        // the writer is in the middle of a line
	// inlineBusy: a caller of SendHandle is writing its handle itself (sendInline); the
	// writer waits. cont is the rest of a line whose first part (and fd) sendInline wrote: it
	// goes out before anything else.
	inlineBusy bool
	// inlineWG counts sendInline calls under way, for finish to wait for (none starts once
	// the channel is terminated: enqueue checks sendClosed under mu first).
	inlineWG   sync.WaitGroup
	cont       *outgoing
	inlineOK   bool          // sendInline may be used (not with a test's sendmsg)
	sendClosed bool          // Send/SendHandle fail with ErrClosed
	terminated bool          // the socket is closed (or closing); cause is final
	cause      error         // what HandleClose gets
	idle       chan struct{} // closed when nothing is left to write (Flush); nil if no waiter

	wake       chan struct{} // cap 1: something was queued or the handle hold was lifted
	stop       chan struct{} // closed when the writer must exit
	stopOnce   sync.Once
	writerDone chan struct{}
	done       chan struct{}

	stats struct {
		partialSendmsg atomic.Int64 // sendmsg wrote part of a handle line (tests)
		inlineSends    atomic.Int64 // handles sendInline wrote (tests)
	}
}

// Open starts serving the channel on f, the daemon's end from NewPair. It takes ownership of f
// (also on error) and starts the reader and writer goroutines; h gets everything the child
// sends until HandleClose.
func Open(f *os.File, h Handler, opt Options) (*Channel, error) {
	if f == nil {
		return nil, errors.New("nodeipc: open: nil file")
	}
	if h == nil {
		f.Close()
		return nil, errors.New("nodeipc: open: nil handler")
	}
	conn, rc, err := unixStreamConn(f)
	if err != nil {
		return nil, err
	}
	c := &Channel{
		conn:        conn,
		rc:          rc,
		h:           h,
		queueLen:    opt.QueueLen,
		window:      max(opt.HandleWindow, 1),
		readBufSize: opt.readBufSize,
		sendmsg:     opt.sendmsg,
		inlineOK:    opt.sendmsg == nil,
		resuming:    opt.Resume,
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		writerDone:  make(chan struct{}),
		done:        make(chan struct{}),
	}
	if c.queueLen <= 0 {
		c.queueLen = DefaultQueueLen
	}
	if c.readBufSize <= 0 {
		c.readBufSize = defaultReadBufSize
	}
	if c.sendmsg == nil {
		c.sendmsg = sendmsg
	}
	liveGoroutines.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// unixStreamConn turns f into a pollable *net.UnixConn (net.FileConn dups f; f is closed), with
// its RawConn, and checks that it is a stream socket, which the framing relies on
// (docs/node-cluster-protocol.md §2.2).
func unixStreamConn(f *os.File) (*net.UnixConn, syscall.RawConn, error) {
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("nodeipc: open channel fd: %w", err)
	}
	conn, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, nil, fmt.Errorf("nodeipc: open channel fd: %T is not a unix socket", fc)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("nodeipc: open channel fd: %w", err)
	}
	typ, serr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		serr = err
	}
	if serr != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("nodeipc: open channel fd: SO_TYPE: %w", serr)
	}
	if typ != unix.SOCK_STREAM {
		conn.Close()
		return nil, nil, fmt.Errorf("nodeipc: open channel fd: socket type %d, want SOCK_STREAM", typ)
	}
	return conn, rc, nil
}

// Send queues v as one JSON line ("json" framing, docs/node-cluster-protocol.md §3.1). It never
// blocks: the line is written by the channel's writer goroutine, after any earlier message and,
// like Node's own sender, only once an earlier SendHandle has been answered
// (docs/node-cluster-protocol.md §4.3). It returns ErrQueueFull when the queue is full and
// ErrClosed once the channel is closed; a nil error means queued, not delivered.
//
// v is encoded with encoding/json, so no blank or non-JSON line can be produced (both kill a
// Node child, docs/node-cluster-protocol.md §8.7). Handle-layer commands (NODE_HANDLE*) are
// rejected; everything else is sent as is — note that Node swallows other NODE_* objects as
// internal messages (docs/node-cluster-protocol.md §1.2).
func (c *Channel) Send(v any) error {
	line, err := encodeLine(v)
	if err != nil {
		return err
	}
	if err := checkReserved(line); err != nil {
		return err
	}
	return c.enqueue(&outgoing{line: line, fd: -1})
}

// SendHandle queues {"cmd":"NODE_HANDLE","type":typ,"msg":v} with fd attached: one sendmsg
// whose data is exactly that line and whose SCM_RIGHTS carries exactly that fd
// (docs/node-cluster-protocol.md §4.1 and §8.2). typ is "net.Native" for cluster use
// ("dgram.Native" for UDP, "net.Socket" / "net.Server" for user messages that Node should wrap).
//
// fd is dup'ed at call time: the caller keeps its copy and may close it whenever it likes.
// Only fds a Node receiver can take are accepted — TCP/UDP sockets, AF_UNIX stream sockets and
// FIFOs; anything else would abort the child or wedge its handle slot for good
// (docs/node-cluster-protocol.md §4.2).
//
// Like Node's sender, every later message is held back until the child answers
// NODE_HANDLE_ACK or NODE_HANDLE_NACK (a later handle only while Options.HandleWindow handles
// are unanswered: with the default window of 1, always); onResult(acked) is then called on the
// reader goroutine (it must not block). It is called with false if the channel closes first or
// the kernel refuses the fd (ETOOMANYREFS, docs/node-cluster-protocol.md §8.3). Nothing is
// retransmitted on NACK (Node does that for net.Socket only); that is up to onResult. If
// SendHandle returns an error, onResult is never called and nothing was queued.
func (c *Channel) SendHandle(typ string, v any, fd int, onResult func(acked bool)) error {
	line, err := encodeHandleLine(typ, v)
	if err != nil {
		return err
	}
	if err := checkSendable(fd); err != nil {
		return err
	}
	dup, err := dupFD(fd)
	if err != nil {
		return fmt.Errorf("nodeipc: send handle: %w", err)
	}
	if err := c.enqueue(&outgoing{line: line, fd: dup, onResult: onResult}); err != nil {
		unix.Close(dup)
		return err
	}
	return nil
}

// SendHandleBorrowed is SendHandle for the hot path of the cluster primary, which hands
// thousands of connections a second: no dup and no check of the fd's kind (five syscalls per
// connection). The caller guarantees that fd is a socket Node can take, and that it stays open
// until onResult has been called (or SendHandleBorrowed has returned an error).
func (c *Channel) SendHandleBorrowed(typ string, v any, fd int, onResult func(acked bool)) error {
	line, err := encodeHandleLine(typ, v)
	if err != nil {
		return err
	}
	return c.enqueue(&outgoing{line: line, fd: fd, borrowed: true, onResult: onResult})
}

// enqueue appends m to the send queue and wakes the writer.
func (c *Channel) enqueue(m *outgoing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sendClosed {
		return ErrClosed
	}
	if len(c.queue) >= c.queueLen {
		return ErrQueueFull
	}
	if m.fd >= 0 && c.inlineOK && !c.writing && !c.inlineBusy && c.cont == nil &&
		len(c.ctrl) == 0 && len(c.queue) == 0 && len(c.inflight) < c.window {
		c.sendInline(m) // unlocks and locks c.mu
		return nil
	}
	c.queue = append(c.queue, m)
	c.wakeWriter()
	return nil
}

// sendInline writes handle m on the caller's goroutine, when nothing else is queued or being
// written: one sendmsg attempt, without waiting. The cluster primary hands thousands of
// connections a second; written here, each goes out before the daemon accepts the next one,
// with no hop to the writer goroutine: the connection is in the daemon's hands alone for two
// system calls (docs/daemon-survival.md §5.1), and the hop's wake-up is saved. If the socket
// is full or refuses the fd, nothing was sent and m goes to the writer, at the front, to be
// sent (or refused) as any other; if only part of the line went out, the writer sends the
// rest before anything else. Called and returns with c.mu held.
func (c *Channel) sendInline(m *outgoing) {
	c.inlineBusy = true
	c.inlineWG.Add(1)
	defer c.inlineWG.Done()
	c.inflight = append(c.inflight, m) // before the write: the ACK can come before it returns
	c.mu.Unlock()
	n, err := trySendmsg(c.rc, m.line, unix.UnixRights(m.fd))
	c.mu.Lock()
	c.inlineBusy = false
	if err != nil || n == 0 {
		if i := slices.Index(c.inflight, m); i >= 0 {
			c.inflight = slices.Delete(c.inflight, i, i+1)
		}
		c.queue = append([]*outgoing{m}, c.queue...)
		c.wakeWriter()
		return
	}
	c.stats.inlineSends.Add(1)
	if !m.borrowed {
		unix.Close(m.fd) // the kernel holds its own reference while the fd is in flight
	}
	m.fd = -1
	if n < len(m.line) {
		c.stats.partialSendmsg.Add(1)
		c.cont = &outgoing{line: m.line[n:], fd: -1}
	}
	if c.cont != nil || len(c.queue) > 0 || len(c.ctrl) > 0 {
		c.wakeWriter()
	}
	c.notifyIdleLocked()
}

// enqueueControl queues an ACK/NACK line. It reports false when the channel is going away.
// Control lines are bounded separately: a Node sender has at most one handle waiting for our
// answer (docs/node-cluster-protocol.md §4.3), so a full control queue means a peer that floods
// handles and reads nothing; the channel is ended rather than letting the reader block or grow
// without bound.
func (c *Channel) enqueueControl(line []byte) bool {
	c.mu.Lock()
	if c.sendClosed {
		c.mu.Unlock()
		return false
	}
	if len(c.ctrl) >= c.queueLen {
		c.mu.Unlock()
		c.terminate(fmt.Errorf("nodeipc: peer sent %d handles without reading their acknowledgements", c.queueLen))
		return false
	}
	c.ctrl = append(c.ctrl, line)
	c.wakeWriter()
	c.mu.Unlock()
	return true
}

// wakeWriter nudges the writer goroutine; it never blocks.
func (c *Channel) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// idleLocked reports whether everything accepted so far has been written and answered.
func (c *Channel) idleLocked() bool {
	return len(c.queue) == 0 && len(c.ctrl) == 0 && len(c.inflight) == 0 && !c.writing && !c.inlineBusy && c.cont == nil
}

// notifyIdleLocked releases Flush waiters once the channel is idle.
func (c *Channel) notifyIdleLocked() {
	if c.idle != nil && c.idleLocked() {
		close(c.idle)
		c.idle = nil
	}
}

// Flush waits until every message queued so far has been written to the socket and every
// handle sent has been answered, or until ctx is done (ctx.Err()) or the channel ends first
// (ErrClosed). Written means handed to the kernel, not read by the child. It lets a caller
// send a last message and then Close without losing it.
func (c *Channel) Flush(ctx context.Context) error {
	c.mu.Lock()
	if c.idleLocked() {
		c.mu.Unlock()
		return nil
	}
	if c.terminated {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the socket at once; queued messages are dropped. The reader then finishes on
// its own goroutine: queued and unanswered SendHandle callbacks get false, HandleClose gets
// ErrClosed, and Done is closed. Close does not wait for that (it may be called from a
// handler); wait on Done. A second Close, or Close after the child disconnected, returns
// ErrClosed. For a cluster worker, closing the channel makes it exit(0) at once
// (docs/node-cluster-protocol.md §7.8).
func (c *Channel) Close() error {
	if !c.terminate(ErrClosed) {
		return ErrClosed
	}
	return nil
}

// Done is closed after HandleClose has returned.
func (c *Channel) Done() <-chan struct{} { return c.done }

// terminate ends the channel with cause unless it has already ended, closing the socket, which
// wakes a blocked reader and writer. It reports whether this call ended it.
func (c *Channel) terminate(cause error) bool {
	c.mu.Lock()
	if c.terminated {
		c.mu.Unlock()
		return false
	}
	c.terminated = true
	c.sendClosed = true
	c.cause = cause
	c.mu.Unlock()
	c.stopWriter()
	c.conn.Close()
	return true
}

// stopWriter makes the writer goroutine exit at its next wait.
func (c *Channel) stopWriter() {
	c.stopOnce.Do(func() { close(c.stop) })
}

// handleResult processes NODE_HANDLE_ACK / NODE_HANDLE_NACK from the child: it answers the
// oldest handle in flight (the child answers them in the order it reads them) and lifts the
// hold on the queue (docs/node-cluster-protocol.md §4.3). A stray answer is ignored, as Node
// ignores it.
func (c *Channel) handleResult(acked bool) {
	c.mu.Lock()
	var m *outgoing
	if len(c.inflight) > 0 {
		m = c.inflight[0]
		c.inflight[0] = nil
		c.inflight = c.inflight[1:]
	}
	if m != nil {
		c.notifyIdleLocked()
		c.wakeWriter()
	}
	c.mu.Unlock()
	if m != nil && m.onResult != nil {
		m.onResult(acked)
	}
}

// finish runs on the reader goroutine once reading has stopped: it waits for the writer,
// fails everything still queued, and reports the end to the handler exactly once.
func (c *Channel) finish(readCause error) {
	c.terminate(readCause) // no-op if Close or a write error came first
	<-c.writerDone
	// A sendInline under way: what it sends must not be failed (and its fd closed by the
	// caller's onResult) while the kernel may still be reading it.
	c.inlineWG.Wait()
	c.mu.Lock()
	failed := make([]*outgoing, 0, len(c.inflight)+len(c.queue))
	failed = append(failed, c.inflight...)
	failed = append(failed, c.queue...)
	c.queue, c.ctrl, c.inflight = nil, nil, nil
	cause := c.cause
	c.mu.Unlock()
	for _, m := range failed {
		if m.fd >= 0 && !m.borrowed {
			unix.Close(m.fd)
		}
		m.fd = -1
		if m.onResult != nil {
			m.onResult(false)
		}
	}
	c.h.HandleClose(cause)
	close(c.done)
}
