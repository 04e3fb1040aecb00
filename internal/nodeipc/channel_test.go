package nodeipc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

const (
	ackLine  = `{"cmd":"NODE_HANDLE_ACK"}`
	nackLine = `{"cmd":"NODE_HANDLE_NACK"}`
)

func handleLine(msg string) string {
	return `{"cmd":"NODE_HANDLE","type":"net.Native","msg":"` + msg + `"}` + "\n"
}

// sameSocket reports whether f and g are the same open socket.
func sameSocket(t *testing.T, f, g *os.File) bool {
	t.Helper()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(g.Fd()), &b); err != nil {
		t.Fatal(err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func waitResult(t *testing.T, results <-chan bool) bool {
	t.Helper()
	select {
	case ok := <-results:
		return ok
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for onResult")
		return false
	}
}

// Two Go channels talk to each other: internal classification and plain messages both ways.
func TestGoRoundTrip(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	ra, rb := newRecorder(t), newRecorder(t)
	ca := openChannel(t, a, ra, Options{})
	cb := openChannel(t, b, rb, Options{})

	if err := ca.Send(map[string]any{"cmd": "NODE_CLUSTER", "act": "online", "seq": 0}); err != nil {
		t.Fatal(err)
	}
	m := rb.next(t)
	if m.Cmd != "NODE_CLUSTER" || !m.Internal || string(m.Raw) != `{"act":"online","cmd":"NODE_CLUSTER","seq":0}` {
		t.Fatalf("got %+v", m)
	}
	if err := cb.Send("ready"); err != nil {
		t.Fatal(err)
	}
	if raw := ra.nextRaw(t); raw != `"ready"` {
		t.Fatalf("got %s", raw)
	}
	if err := ca.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ra.waitClosed(t); err != nil {
		t.Fatalf("peer Close seen as %v, want nil", err)
	}
	if err := rb.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("own Close seen as %v, want ErrClosed", err)
	}
}

// A handle line much larger than the socket buffer: sendmsg takes only part of it (with the
// fd), the writer finishes it with plain writes before the next message, and the receiver,
// reading in 97-byte chunks while its handler is slow, gets the fd with the first chunk of the
// line and still attaches it to that line (docs/node-cluster-protocol.md §4.2 and §8.1).
func TestPartialWritesAndReads(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	if err := unix.SetsockoptInt(int(a.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var seen atomic.Int32
	ra, rb := newRecorder(t), newRecorder(t)
	rb.hook = func(Message) {
		if seen.Add(1) == 1 {
			<-gate // a slow reader: nothing is read while the first message is handled
		}
	}
	ca := openChannel(t, a, ra, Options{})
	openChannel(t, b, rb, Options{readBufSize: 97})

	x1, x2 := socketPair(t)
	var sb strings.Builder
	for sb.Len() < 256<<10 {
		sb.WriteString("\u00e9\u20ac\U0001F600 split me \\ \" \n")
	}
	big := sb.String()
	results := make(chan bool, 1)
	if err := ca.Send("first"); err != nil {
		t.Fatal(err)
	}
	if err := ca.SendHandle("net.Native", big, int(x1.Fd()), func(ok bool) { results <- ok }); err != nil {
		t.Fatal(err)
	}
	if err := ca.Send("after"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "a short sendmsg", waitTimeout, func() bool { return ca.stats.partialSendmsg.Load() >= 1 })
	close(gate)

	if raw := rb.nextRaw(t); raw != `"first"` {
		t.Fatalf("got %s", raw)
	}
	m := rb.next(t)
	if m.Handle == nil || m.HandleType != "net.Native" {
		t.Fatalf("handle message without handle: type %q", m.HandleType)
	}
	if !sameSocket(t, m.Handle, x1) {
		t.Fatal("received a different socket")
	}
	m.Handle.Close()
	want, _ := encodeLine(big)
	if string(m.Raw)+"\n" != string(want) {
		t.Fatalf("big message corrupted (len %d, want %d)", len(m.Raw), len(want)-1)
	}
	if raw := rb.nextRaw(t); raw != `"after"` {
		t.Fatalf("got %s, want \"after\"", raw)
	}
	if !waitResult(t, results) {
		t.Fatal("onResult(false), want ACK")
	}
	_ = x2
}

// SendHandle holds every later message until the peer answers
// (docs/node-cluster-protocol.md §4.3); our own ACK/NACK lines are not held (else both sides
// could wait for each other); NACK reports false, ACK true; an incoming NODE_HANDLE without an
// fd is NACKed and dropped; a stray ACK is ignored.
func TestHandleHoldAndAcks(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	r := newRecorder(t)
	c := openChannel(t, a, r, Options{})
	p := newRawPeer(t, b)
	x1, _ := socketPair(t)
	results := make(chan bool, 4)
	onResult := func(ok bool) { results <- ok }

	if err := c.SendHandle("net.Native", map[string]int{"n": 1}, int(x1.Fd()), onResult); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("plain"); err != nil {
		t.Fatal(err)
	}
	line, fds := p.readLine()
	if line != `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"n":1}}` || len(fds) != 1 {
		t.Fatalf("peer got %q with %d fds", line, len(fds))
	}
	got := os.NewFile(uintptr(fds[0]), "got")
	if !sameSocket(t, got, x1) {
		t.Fatal("peer got a different socket")
	}
	got.Close()
	c.mu.Lock()
	held := len(c.inflight) == 1 && len(c.queue) == 1
	c.mu.Unlock()
	if !held {
		t.Fatal(`"plain" not held behind the unanswered handle`)
	}

	// The peer sends a handle while ours is unanswered: the ACK goes out ahead of "plain".
	y1, _ := socketPair(t)
	p.writeFDs(`{"cmd":"NODE_HANDLE","type":"net.Socket","msg":"yours"}`+"\n", int(y1.Fd()))
	p.expectLine(ackLine)
	m := r.next(t)
	if string(m.Raw) != `"yours"` || m.Handle == nil || m.HandleType != "net.Socket" || m.Internal {
		t.Fatalf("got %+v", m)
	}
	if !sameSocket(t, m.Handle, y1) {
		t.Fatal("handler got a different socket")
	}
	m.Handle.Close()

	p.write(nackLine + "\n")
	if waitResult(t, results) {
		t.Fatal("NACK reported as true")
	}
	p.expectLine(`"plain"`)

	if err := c.SendHandle("net.Native", "again", int(x1.Fd()), onResult); err != nil {
		t.Fatal(err)
	}
	_, fds = p.readLine()
	closeFDs(fds)
	p.write(ackLine + "\n")
	if !waitResult(t, results) {
		t.Fatal("ACK reported as false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	p.write(handleLine("dropped"))
	p.expectLine(nackLine)
	p.write(ackLine + "\n") // stray: nothing in flight
	p.write(`"marker"` + "\n")
	if raw := r.nextRaw(t); raw != `"marker"` {
		t.Fatalf("got %s, want \"marker\" (NACKed message must be dropped)", raw)
	}
	select {
	case ok := <-results:
		t.Fatalf("stray ACK produced onResult(%v)", ok)
	default:
	}
}

// With HandleWindow 2, two handles go out unanswered, a third waits for the first answer;
// answers go to the oldest handle first; a plain message waits until every handle before it
// is answered.
func TestHandleWindow(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	c := openChannel(t, a, newRecorder(t), Options{HandleWindow: 2})
	p := newRawPeer(t, b)
	results := make([]chan bool, 3)
	var socks []*os.File
	for i := range results {
		results[i] = make(chan bool, 1)
		x, _ := socketPair(t)
		socks = append(socks, x)
		if err := c.SendHandle("net.Native", i, int(x.Fd()), func(ok bool) { results[i] <- ok }); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send("plain"); err != nil {
		t.Fatal(err)
	}
	expectHandle := func(i int) {
		t.Helper()
		line, fds := p.readLine()
		if want := fmt.Sprintf(`{"cmd":"NODE_HANDLE","type":"net.Native","msg":%d}`, i); line != want || len(fds) != 1 {
			t.Fatalf("peer got %q with %d fds, want %s with one", line, len(fds), want)
		}
		got := os.NewFile(uintptr(fds[0]), "got")
		defer got.Close()
		if !sameSocket(t, got, socks[i]) {
			t.Fatalf("handle %d: a different socket", i)
		}
	}
	expectHandle(0)
	expectHandle(1)
	testutil.WaitFor(t, "the third handle held", waitTimeout, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.inflight) == 2 && len(c.queue) == 2 && !c.writing
	})
	p.write(ackLine + "\n")
	if !waitResult(t, results[0]) {
		t.Fatal("handle 0: ACK reported as false")
	}
	expectHandle(2)
	p.write(nackLine + "\n")
	if waitResult(t, results[1]) {
		t.Fatal("handle 1: NACK reported as true")
	}
	c.mu.Lock()
	held := len(c.queue) == 1
	c.mu.Unlock()
	if !held {
		t.Fatal(`"plain" went out before every handle was answered`)
	}
	p.write(ackLine + "\n")
	if !waitResult(t, results[2]) {
		t.Fatal("handle 2: ACK reported as false")
	}
	p.expectLine(`"plain"`)
}

// A child that never reads fills the kernel buffer, then the bounded queue: Send and
// SendHandle fail fast with ErrQueueFull instead of blocking; Close unblocks the writer and
// queued handles get onResult(false) before HandleClose.
func TestQueueFull(t *testing.T) {
	checkLeaks(t)
	a, _ := socketPair(t) // the other end is never read
	r := newRecorder(t)
	c := openChannel(t, a, r, Options{QueueLen: 4})

	if err := c.Send(strings.Repeat("x", 4<<20)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the writer to take the big message", waitTimeout, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.writing && len(c.queue) == 0
	})
	x1, _ := socketPair(t)
	results := make(chan bool, 1)
	if err := c.SendHandle("net.Native", "queued", int(x1.Fd()), func(ok bool) { results <- ok }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Send(i); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := c.Send("one too many"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send = %v, want ErrQueueFull", err)
	}
	if err := c.SendHandle("net.Native", "too", int(x1.Fd()), func(bool) { t.Error("onResult of a rejected SendHandle") }); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("SendHandle = %v, want ErrQueueFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush on a stuck child = %v, want DeadlineExceeded", err)
	}

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("HandleClose(%v), want ErrClosed", err)
	}
	select {
	case ok := <-results:
		if ok {
			t.Fatal("queued handle reported true")
		}
	default:
		t.Fatal("onResult not called before HandleClose")
	}
	waitDone(t, c)
	if err := c.Send("late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close = %v, want nil (nothing left)", err)
	}
}

// The child disappears while the daemon still has unread messages from it and writes to it:
// the write fails (EPIPE), sending stops, but every message it sent is still delivered before
// HandleClose(nil).
func TestChildGoneWhileWriting(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	gate := make(chan struct{})
	entered := make(chan struct{})
	var seen atomic.Int32
	r := newRecorder(t)
	r.hook = func(Message) {
		if seen.Add(1) == 1 {
			close(entered)
			<-gate
		}
	}
	c := openChannel(t, a, r, Options{})
	p := newRawPeer(t, b)
	p.write(`"m1"` + "\n")
	<-entered
	p.write(`"m2"` + "\n" + `"m3"` + "\n")
	p.conn.Close()
	if err := c.Send("to nobody"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the write to fail", waitTimeout, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.sendClosed
	})
	if err := c.Send("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after EPIPE = %v, want ErrClosed", err)
	}
	close(gate)
	for _, want := range []string{`"m1"`, `"m2"`, `"m3"`} {
		if raw := r.nextRaw(t); raw != want {
			t.Fatalf("got %s, want %s", raw, want)
		}
	}
	if err := r.waitClosed(t); err != nil {
		t.Fatalf("HandleClose(%v), want nil", err)
	}
}

// Close from inside a handler neither deadlocks nor delivers anything after it; an
// unanswered handle gets onResult(false) before HandleClose.
func TestCloseFromHandler(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	r := newRecorder(t)
	var cp atomic.Pointer[Channel]
	r.hook = func(m Message) {
		if string(m.Raw) == `"close"` {
			if err := cp.Load().Close(); err != nil {
				t.Errorf("Close in handler: %v", err)
			}
		}
	}
	c := openChannel(t, a, r, Options{})
	cp.Store(c)
	p := newRawPeer(t, b)
	x1, _ := socketPair(t)
	results := make(chan bool, 1)
	if err := c.SendHandle("net.Native", "unanswered", int(x1.Fd()), func(ok bool) { results <- ok }); err != nil {
		t.Fatal(err)
	}
	_, fds := p.readLine()
	closeFDs(fds)

	p.write(`"close"` + "\n" + `"never"` + "\n")
	if raw := r.nextRaw(t); raw != `"close"` {
		t.Fatalf("got %s", raw)
	}
	if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("HandleClose(%v)", err)
	}
	select {
	case ok := <-results:
		if ok {
			t.Fatal("unanswered handle reported true")
		}
	default:
		t.Fatal("onResult not called before HandleClose")
	}
	waitDone(t, c)
	select {
	case m := <-r.msgs:
		t.Fatalf("message %s delivered after Close", m.Raw)
	default:
	}
	if err := c.SendHandle("net.Native", "late", int(x1.Fd()), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendHandle after Close = %v", err)
	}
}

// Received fds that do not fit the protocol are closed, never leaked or misattributed:
// two fds in one sendmsg (the first is used), more fds than the control buffer holds
// (MSG_CTRUNC: NACK), and an fd sent with a plain line (kept for the next NODE_HANDLE line,
// as Node does).
func TestReceivedFDEdgeCases(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	r := newRecorder(t)
	openChannel(t, a, r, Options{})
	p := newRawPeer(t, b)
	x1, x2 := socketPair(t)

	p.writeFDs(handleLine("two"), int(x1.Fd()), int(x2.Fd()))
	p.expectLine(ackLine)
	m := r.next(t)
	if string(m.Raw) != `"two"` || m.Handle == nil || !sameSocket(t, m.Handle, x1) {
		t.Fatalf("got %s handle=%v", m.Raw, m.Handle)
	}
	m.Handle.Close()

	var many []int
	for i := 0; i < maxRecvFDs+6; i++ {
		fd, err := dupFD(int(x1.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		many = append(many, fd)
	}
	p.writeFDs(handleLine("many"), many...)
	closeFDs(many)
	p.expectLine(nackLine)

	p.writeFDs(`"plain"`+"\n", int(x2.Fd()))
	if raw := r.nextRaw(t); raw != `"plain"` {
		t.Fatalf("got %s", raw)
	}
	p.write(handleLine("later"))
	p.expectLine(ackLine)
	m = r.next(t)
	if string(m.Raw) != `"later"` || m.Handle == nil || !sameSocket(t, m.Handle, x2) {
		t.Fatalf("got %s handle=%v", m.Raw, m.Handle)
	}
	m.Handle.Close()
}

// Lines that are not JSON go to HandleBadLine; splits, CRLF and split UTF-8 do not matter.
func TestBadLines(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	r := newRecorder(t)
	c := openChannel(t, a, r, Options{readBufSize: 3})
	p := newRawPeer(t, b)

	p.write("{bad json}\n\n\"ok\"\r\n[1,")
	if bl := r.nextBad(t); string(bl.line) != "{bad json}" || bl.err == nil {
		t.Fatalf("bad line %q %v", bl.line, bl.err)
	}
	if bl := r.nextBad(t); len(bl.line) != 0 || !errors.Is(bl.err, errEmptyLine) {
		t.Fatalf("empty line %q %v", bl.line, bl.err)
	}
	if raw := r.nextRaw(t); raw != `"ok"` {
		t.Fatalf("got %s", raw)
	}
	p.write("2]\n\"\xe2\x82")
	p.write("\xac\"\n")
	if raw := r.nextRaw(t); raw != `[1,2]` {
		t.Fatalf("got %s", raw)
	}
	if raw := r.nextRaw(t); raw != `"€"` {
		t.Fatalf("got %s", raw)
	}
	if err := c.Send("still open"); err != nil {
		t.Fatal(err)
	}
	p.expectLine(`"still open"`)
}

// Invalid arguments fail synchronously, queue nothing and leak nothing.
func TestSendRejects(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	r := newRecorder(t)
	c := openChannel(t, a, r, Options{})
	p := newRawPeer(t, b)

	for _, cmd := range []string{"NODE_HANDLE", "NODE_HANDLE_ACK", "NODE_HANDLE_NACK"} {
		if err := c.Send(map[string]string{"cmd": cmd}); !errors.Is(err, errReservedCmd) {
			t.Errorf("Send(%s) = %v", cmd, err)
		}
	}
	if err := c.Send(make(chan int)); err == nil {
		t.Error("Send(chan) succeeded")
	}
	x1, _ := socketPair(t)
	if err := c.SendHandle("", "m", int(x1.Fd()), nil); err == nil {
		t.Error("SendHandle with empty type succeeded")
	}
	if err := c.SendHandle("net.Native", make(chan int), int(x1.Fd()), nil); err == nil {
		t.Error("SendHandle(chan) succeeded")
	}
	file, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	dgram, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFDs(dgram[:])
	for name, fd := range map[string]int{"regular file": int(file.Fd()), "directory": int(dir.Fd()), "unix dgram": dgram[0], "bad fd": -1} {
		if err := c.SendHandle("net.Native", "m", fd, nil); err == nil {
			t.Errorf("SendHandle(%s) succeeded", name)
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	results := make(chan bool, 1)
	if err := c.SendHandle("net.Native", "fifo", int(pr.Fd()), func(ok bool) { results <- ok }); err != nil {
		t.Fatalf("SendHandle(pipe): %v", err)
	}
	line, fds := p.readLine()
	closeFDs(fds)
	if line != `{"cmd":"NODE_HANDLE","type":"net.Native","msg":"fifo"}` || len(fds) != 1 {
		t.Fatalf("peer got %q with %d fds (rejected sends must queue nothing)", line, len(fds))
	}
	p.write(ackLine + "\n")
	if !waitResult(t, results) {
		t.Fatal("pipe handle not acked")
	}
}

type nopHandler struct{}

func (nopHandler) HandleMessage(m Message) {
	if m.Handle != nil {
		m.Handle.Close()
	}
}
func (nopHandler) HandleBadLine([]byte, error) {}
func (nopHandler) HandleClose(error)           {}

// Opening and closing channels from either side, with traffic, leaves no goroutine behind
// (counted by the runtime, not only by the package's own counter).
func TestNoGoroutineLeak(t *testing.T) {
	checkLeaks(t)
	base := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		a, b, err := NewPair()
		if err != nil {
			t.Fatal(err)
		}
		ca, err := Open(a, nopHandler{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		cb, err := Open(b, nopHandler{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		x1, x2, _ := NewPair()
		ca.SendHandle("net.Native", i, int(x1.Fd()), nil)
		x1.Close()
		x2.Close()
		ca.Send(strings.Repeat("y", 100<<10))
		cb.Send(i)
		if i%2 == 0 {
			ca.Close()
		} else {
			cb.Close()
		}
		waitDone(t, ca)
		waitDone(t, cb)
	}
	testutil.WaitFor(t, "goroutines to exit", waitTimeout, func() bool { return runtime.NumGoroutine() <= base })
}

// When the kernel refuses an fd (ETOOMANYREFS: too many of our fds in flight,
// docs/node-cluster-protocol.md §8.3), nothing was written: that handle gets onResult(false)
// and the channel carries on.
func TestHandleRefusedByKernel(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	r := newRecorder(t)
	var calls atomic.Int32
	refuseFirst := func(rc syscall.RawConn, line, oob []byte) (int, error) {
		if calls.Add(1) == 1 {
			return 0, os.NewSyscallError("sendmsg", syscall.ETOOMANYREFS)
		}
		return sendmsg(rc, line, oob)
	}
	c := openChannel(t, a, r, Options{sendmsg: refuseFirst})
	p := newRawPeer(t, b)
	x1, _ := socketPair(t)
	results := make(chan bool, 2)
	onResult := func(ok bool) { results <- ok }
	if err := c.SendHandle("net.Native", "refused", int(x1.Fd()), onResult); err != nil {
		t.Fatal(err)
	}
	if err := c.SendHandle("net.Native", "sent", int(x1.Fd()), onResult); err != nil {
		t.Fatal(err)
	}
	if waitResult(t, results) {
		t.Fatal("refused handle reported true")
	}
	line, fds := p.readLine()
	closeFDs(fds)
	if line != `{"cmd":"NODE_HANDLE","type":"net.Native","msg":"sent"}` || len(fds) != 1 {
		t.Fatalf("peer got %q with %d fds", line, len(fds))
	}
	p.write(ackLine + "\n")
	if !waitResult(t, results) {
		t.Fatal("second handle not acked")
	}
}

// A resumed channel (Options.Resume: a daemon that died may have read part of a line) drops a
// first line that does not parse, silently, and reads on; a first line that parses is a
// message like any other, and later bad lines are reported as usual.
func TestResumeDropsTail(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name  string
		first string
		want  string // the first message delivered
	}{
		{"tail of a line", `":"NODE_CLUSTER","act":"online"}` + "\n", `"next"`},
		{"whole line", `{"cmd":"NODE_CLUSTER","act":"online"}` + "\n", `{"cmd":"NODE_CLUSTER","act":"online"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := socketPair(t)
			r := newRecorder(t)
			openChannel(t, a, r, Options{Resume: true})
			p := newRawPeer(t, b)
			p.write(tc.first + "\"next\"\n{bad}\n")
			if raw := r.nextRaw(t); raw != tc.want {
				t.Fatalf("first message %s, want %s", raw, tc.want)
			}
			if bl := r.nextBad(t); string(bl.line) != "{bad}" {
				t.Fatalf("bad line %q, want {bad} (the only one reported)", bl.line)
			}
		})
	}
}

// On an idle channel a handle is written by SendHandle's caller itself (sendInline), before it
// returns; a line too big for the socket goes out in part with its fd, and the writer sends the
// rest before anything queued meanwhile: the peer reads the handle line whole, then the rest.
func TestHandleWrittenInline(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	c := openChannel(t, a, newRecorder(t), Options{HandleWindow: 4})
	p := newRawPeer(t, b)

	x, _ := socketPair(t)
	if err := c.SendHandle("net.Native", "small", int(x.Fd()), nil); err != nil {
		t.Fatal(err)
	}
	if n := c.stats.inlineSends.Load(); n != 1 {
		t.Fatalf("%d handles written inline, want the first one", n)
	}
	line, fds := p.readLine()
	if line != `{"cmd":"NODE_HANDLE","type":"net.Native","msg":"small"}` || len(fds) != 1 {
		t.Fatalf("peer got %q with %d fds", line, len(fds))
	}
	unix.Close(fds[0])
	p.write(ackLine + "\n")

	big := strings.Repeat("x", 1<<20) // more than the socket takes at once: a partial sendmsg
	testutil.WaitFor(t, "the channel idle", waitTimeout, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.idleLocked()
	})
	if err := c.SendHandle("net.Native", big, int(x.Fd()), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("after"); err != nil {
		t.Fatal(err)
	}
	if n, parts := c.stats.inlineSends.Load(), c.stats.partialSendmsg.Load(); n != 2 || parts != 1 {
		t.Fatalf("inline sends %d, partial %d; want 2 and 1", n, parts)
	}
	line, fds = p.readLine()
	if want := `{"cmd":"NODE_HANDLE","type":"net.Native","msg":"` + big + `"}`; line != want || len(fds) != 1 {
		t.Fatalf("peer got a line of %d bytes with %d fds, want %d bytes and one", len(line), len(fds), len(want))
	}
	unix.Close(fds[0])
	p.write(ackLine + "\n")
	p.expectLine(`"after"`)
}
