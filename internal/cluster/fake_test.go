package cluster

// Test harness: a fake Node cluster worker written in Go.
//
// The daemon side of every fake is wired exactly as internal/supervisor wires a real run
// (run.go): g.NewWorker(procID, ctl), nodeipc.Open(parent end, handler) with a handler that
// forwards internal messages to Worker.HandleInternal and HandleClose to
// Worker.HandleChannelClose, then Worker.Attach(ch, pid).
//
// The child side plays the worker's Node runtime. By default it is a nodeipc.Channel on the
// child end of the socketpair (so NODE_HANDLE_ACK is automatic when an fd arrives, as in Node).
// A "raw" fake instead reads the socket itself with recvmsg, which is the only way to answer a
// handle with NODE_HANDLE_NACK, or not at all, while holding the fd.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// waitTimeout bounds every wait in these tests. Nothing should take more than a fraction of a
// second; the bound is generous for -race on a loaded machine.
const waitTimeout = 10 * time.Second

// ---------------------------------------------------------------------------------------------
// Leak checks.

// checkLeaks records the number of open fds and goroutines now and, when the test ends (after
// every cleanup registered later: cleanups run last-in first-out), waits until both are back
// to where they were. Call it first in a test. The tests of this package are not parallel, so
// the process-wide counts are meaningful.
func checkLeaks(t testing.TB) {
	t.Helper()
	testutil.CheckFDs(t, waitTimeout, testutil.Goroutines())
}

// ---------------------------------------------------------------------------------------------
// Group set-up and tear-down.

// newTestGroup returns a Group whose sockets are closed when the test ends (after the fakes
// registered later have died).
func newTestGroup(t testing.TB, policy string) *Group {
	t.Helper()
	g := NewGroup("app", policy, func(format string, args ...any) {
		if tt, ok := t.(*testing.T); ok && testing.Verbose() {
			tt.Logf("group: "+format, args...)
		}
	})
	t.Cleanup(func() { closeListeners(t, g) })
	return g
}

// closeListeners calls g.CloseListeners and fails the test if it does not return.
func closeListeners(t testing.TB, g *Group) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		g.CloseListeners()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("CloseListeners did not return")
	}
}

// ---------------------------------------------------------------------------------------------
// The fake WorkerControl and the daemon-side channel handler.

type fakeCtl struct {
	ready        atomic.Int32
	disconnected atomic.Int32
	changed      atomic.Int32
}

func (c *fakeCtl) StateChanged() { c.changed.Add(1) }

func (c *fakeCtl) Ready()              { c.ready.Add(1) }
func (c *fakeCtl) Disconnected()       { c.disconnected.Add(1) }
func (c *fakeCtl) ListenFailed(string) {}

// daemonIPC is what supervisor's runIPC does for a cluster run.
type daemonIPC struct {
	w        supervisor.Worker
	bad      atomic.Int32
	internal chan struct{} // if set, signalled after every HandleInternal
}

func (d *daemonIPC) HandleMessage(m nodeipc.Message) {
	if m.Internal {
		d.w.HandleInternal(m)
		if d.internal != nil {
			d.internal <- struct{}{}
		}
		return
	}
	if m.Handle != nil {
		m.Handle.Close()
	}
}

func (d *daemonIPC) HandleBadLine([]byte, error) { d.bad.Add(1) }
func (d *daemonIPC) HandleClose(error)           { d.w.HandleChannelClose() }

// ---------------------------------------------------------------------------------------------
// The fake worker.

// newconnMode is how a fake answers newconn.
type newconnMode int32

const (
	modeAccept newconnMode = iota // ACK, write "<name>\n" to the connection, close it, accepted:true
	modeEcho                      // ACK, read one line from the client, answer "<name> <line>", accepted:true
	modeRefuse                    // ACK, close the fd, accepted:false (server.maxConnections reached)
	modeStuck                     // ACK, keep the fd, never answer (busy event loop)
	modeNack                      // raw fakes only: close the fd, NODE_HANDLE_NACK
	modeNoAck                     // raw fakes only: keep the fd, answer nothing at all
)

// wireMsg is what a fake receives from the daemon.
type wireMsg struct {
	Raw        json.RawMessage // the message (the inner msg for NODE_HANDLE)
	Handle     *os.File        // the fd of a NODE_HANDLE, owned by the test
	HandleType string

	Cmd      string          `json:"cmd"`
	Act      string          `json:"act"`
	Seq      *int64          `json:"seq"`
	Ack      *int64          `json:"ack"`
	Key      string          `json:"key"`
	Errno    json.RawMessage `json:"errno"`
	Data     json.RawMessage `json:"data"`
	Sockname *sockname       `json:"sockname"`
	Accepted *bool           `json:"accepted"`
}

// fields returns the top-level field names of the message, sorted.
func (m *wireMsg) fields(t testing.TB) []string {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.Raw, &obj); err != nil {
		t.Fatalf("message %s: %v", m.Raw, err)
	}
	var out []string
	for k := range obj {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// newconnEvent records one newconn the fake received and what it did with it.
type newconnEvent struct {
	seq  int64
	key  string
	mode newconnMode
}

type fakeWorker struct {
	t      testing.TB
	name   string
	procID int
	g      *Group
	ctl    *fakeCtl
	w      supervisor.Worker
	dipc   *daemonIPC
	dch    *nodeipc.Channel // daemon's end

	cch     *nodeipc.Channel // child's end (nodeipc fakes)
	raw     *net.UnixConn    // child's end (raw fakes)
	rawDone chan struct{}
	rawMu   sync.Mutex // raw writes

	seq   atomic.Int64 // the worker's cluster seq: online is 0
	mode  atomic.Int32
	msgs  chan *wireMsg     // everything but newconn
	conns chan newconnEvent // newconns, in arrival order (dropped when full)
	stash []*wireMsg        // test goroutine only: messages skipped by reply()
	held  struct {          // connections kept by modeStuck / modeNoAck
		sync.Mutex
		conns []heldConn
	}
	served  atomic.Int64
	refused atomic.Int64
	nacked  atomic.Int64

	closed  chan struct{} // the child side saw the channel end
	dieOnce sync.Once
}

// fakeOpts configures newFake.
type fakeOpts struct {
	raw      bool // read the child end ourselves (NACK / no ACK)
	noAttach bool // do not call Attach (the test does it)
	mode     newconnMode
}

// newFake wires a fake worker for process slot procID into g. It dies (channel closed from
// the child side) when the test ends.
func newFake(t testing.TB, g *Group, procID int, name string, o fakeOpts) *fakeWorker {
	t.Helper()
	f := &fakeWorker{
		t:      t,
		name:   name,
		procID: procID,
		g:      g,
		ctl:    &fakeCtl{},
		msgs:   make(chan *wireMsg, 1024),
		conns:  make(chan newconnEvent, 4096),
		closed: make(chan struct{}),
	}
	f.mode.Store(int32(o.mode))
	w, err := g.NewWorker(procID, f.ctl)
	if err != nil {
		t.Fatalf("NewWorker: %v", err)
	}
	f.w = w
	parent, child, err := nodeipc.NewPair()
	if err != nil {
		t.Fatalf("NewPair: %v", err)
	}
	f.dipc = &daemonIPC{w: w}
	if o.noAttach {
		f.dipc.internal = make(chan struct{}, 64)
	}
	f.dch, err = nodeipc.Open(parent, f.dipc, nodeipc.Options{HandleWindow: HandoffWindow})
	if err != nil {
		t.Fatalf("Open daemon end: %v", err)
	}
	if !o.noAttach {
		w.Attach(f.dch, 10000+procID)
	}
	if o.raw {
		fc, err := net.FileConn(child)
		child.Close()
		if err != nil {
			t.Fatalf("FileConn child end: %v", err)
		}
		f.raw = fc.(*net.UnixConn)
		f.rawDone = make(chan struct{})
		go f.rawReadLoop()
	} else {
		f.cch, err = nodeipc.Open(child, &childIPC{f: f}, nodeipc.Options{})
		if err != nil {
			t.Fatalf("Open child end: %v", err)
		}
	}
	t.Cleanup(f.die)
	return f
}

func (f *fakeWorker) setMode(m newconnMode) { f.mode.Store(int32(m)) }

// childIPC is the child side's handler for nodeipc fakes.
type childIPC struct{ f *fakeWorker }

func (c *childIPC) HandleMessage(m nodeipc.Message) {
	c.f.receive(m.Raw, m.Handle, m.HandleType)
}
func (c *childIPC) HandleBadLine(line []byte, err error) {
	c.f.t.Errorf("%s: the daemon sent a line that is not JSON (%v): %q", c.f.name, err, line)
}
func (c *childIPC) HandleClose(error) { close(c.f.closed) }

// rawReadLoop is the child side of raw fakes: recvmsg, one fd per NODE_HANDLE line in order.
func (f *fakeWorker) rawReadLoop() {
	defer close(f.rawDone)
	defer close(f.closed)
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*16))
	var pending []byte
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for {
		n, oobn, _, _, err := f.raw.ReadMsgUnix(buf, oob)
		n, oobn = max(n, 0), max(oobn, 0)
		if oobn > 0 {
			msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
			if perr == nil {
				for i := range msgs {
					got, _ := unix.ParseUnixRights(&msgs[i])
					fds = append(fds, got...)
				}
			}
		}
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			line := bytes.Clone(pending[:i])
			pending = pending[i+1:]
			f.rawLine(line, &fds)
		}
		if err != nil {
			return
		}
	}
}

func (f *fakeWorker) rawLine(line []byte, fds *[]int) {
	var env struct {
		Cmd  string          `json:"cmd"`
		Type string          `json:"type"`
		Msg  json.RawMessage `json:"msg"`
	}
	if err := json.Unmarshal(line, &env); err != nil {
		f.t.Errorf("%s: the daemon sent a line that is not JSON (%v): %q", f.name, err, line)
		return
	}
	if env.Cmd != "NODE_HANDLE" {
		f.receive(json.RawMessage(line), nil, "")
		return
	}
	if len(*fds) == 0 {
		f.t.Errorf("%s: NODE_HANDLE without an fd: %s", f.name, line)
		f.rawWrite(`{"cmd":"NODE_HANDLE_NACK"}`)
		return
	}
	fd := (*fds)[0]
	*fds = (*fds)[1:]
	file := os.NewFile(uintptr(fd), "fake-handle")
	switch newconnMode(f.mode.Load()) {
	case modeNack:
		file.Close()
		f.nacked.Add(1)
		f.rawWrite(`{"cmd":"NODE_HANDLE_NACK"}`)
		var inner wireMsg
		json.Unmarshal(env.Msg, &inner)
		f.recordConn(inner.Seq, inner.Key, modeNack)
	case modeNoAck:
		var inner wireMsg
		json.Unmarshal(env.Msg, &inner)
		f.hold(inner.Seq, file)
		f.recordConn(inner.Seq, inner.Key, modeNoAck)
	default:
		f.rawWrite(`{"cmd":"NODE_HANDLE_ACK"}`)
		f.receive(env.Msg, file, env.Type)
	}
}

func (f *fakeWorker) rawWrite(line string) {
	f.rawMu.Lock()
	defer f.rawMu.Unlock()
	f.raw.Write([]byte(line + "\n")) // fails once the fake died; nothing to do then
}

// heldConn is a connection a fake keeps without answering its newconn.
type heldConn struct {
	seq  int64
	file *os.File
}

func (f *fakeWorker) hold(seq *int64, file *os.File) {
	var s int64 = -1
	if seq != nil {
		s = *seq
	}
	f.held.Lock()
	f.held.conns = append(f.held.conns, heldConn{s, file})
	f.held.Unlock()
}

// answerHeld answers the oldest held newconn late: accepted → served like modeAccept,
// refused → closed; then the accepted reply.
func (f *fakeWorker) answerHeld(accepted bool) {
	f.t.Helper()
	f.held.Lock()
	if len(f.held.conns) == 0 {
		f.held.Unlock()
		f.t.Fatalf("%s holds no connection", f.name)
	}
	hc := f.held.conns[0]
	f.held.conns = f.held.conns[1:]
	f.held.Unlock()
	if accepted {
		f.serve(hc.file, false)
		f.served.Add(1)
	} else {
		hc.file.Close()
		f.refused.Add(1)
	}
	f.send(map[string]any{"ack": hc.seq, "accepted": accepted})
}

func (f *fakeWorker) recordConn(seq *int64, key string, mode newconnMode) {
	var s int64 = -1
	if seq != nil {
		s = *seq
	}
	select {
	case f.conns <- newconnEvent{seq: s, key: key, mode: mode}:
	default:
	}
}

// receive handles one message from the daemon on the child's reader goroutine: newconn is
// answered according to the mode, everything else goes to f.msgs.
func (f *fakeWorker) receive(raw json.RawMessage, handle *os.File, typ string) {
	m := &wireMsg{}
	if err := json.Unmarshal(raw, m); err != nil {
		// Not an object: a user message. Keep it for the test.
		m = &wireMsg{}
	}
	m.Raw, m.Handle, m.HandleType = raw, handle, typ
	if m.Cmd == "NODE_CLUSTER" && m.Act == "newconn" {
		f.newconn(m)
		return
	}
	f.msgs <- m
}

func (f *fakeWorker) newconn(m *wireMsg) {
	mode := newconnMode(f.mode.Load())
	f.recordConn(m.Seq, m.Key, mode)
	if m.Handle == nil {
		f.t.Errorf("%s: newconn without a handle: %s", f.name, m.Raw)
		return
	}
	if m.Seq == nil {
		f.t.Errorf("%s: newconn without seq: %s", f.name, m.Raw)
		m.Handle.Close()
		return
	}
	if m.Ack != nil {
		// Only replies carry an ack (docs/node-cluster-protocol.md §5.1).
		f.t.Errorf("%s: newconn carries an ack (only replies do): %s", f.name, m.Raw)
	}
	switch mode {
	case modeAccept, modeEcho:
		f.serve(m.Handle, mode == modeEcho)
		f.served.Add(1)
		f.send(map[string]any{"ack": *m.Seq, "accepted": true})
	case modeRefuse:
		m.Handle.Close()
		f.refused.Add(1)
		f.send(map[string]any{"ack": *m.Seq, "accepted": false})
	default: // modeStuck, or a NACK mode on a nodeipc fake
		f.hold(m.Seq, m.Handle)
	}
}

// serve answers a client through the fd the daemon handed over, proving it is a working
// connected socket.
func (f *fakeWorker) serve(file *os.File, echo bool) {
	defer file.Close()
	if !echo {
		if _, err := unix.Write(int(file.Fd()), []byte(f.name+"\n")); err != nil {
			f.t.Errorf("%s: write to handed-over connection: %v", f.name, err)
		}
		return
	}
	c, err := net.FileConn(file)
	if err != nil {
		f.t.Errorf("%s: handed-over fd is not a connection: %v", f.name, err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		f.t.Errorf("%s: read from handed-over connection: %v", f.name, err)
		return
	}
	if _, err := c.Write([]byte(f.name + " " + string(buf[:n]))); err != nil {
		f.t.Errorf("%s: write to handed-over connection: %v", f.name, err)
	}
}

// send sends a NODE_CLUSTER message with the worker's next seq and returns that seq.
func (f *fakeWorker) send(fields map[string]any) int64 {
	seq := f.seq.Add(1) - 1
	fields["cmd"] = "NODE_CLUSTER"
	fields["seq"] = seq
	if f.raw != nil {
		b, err := json.Marshal(fields)
		if err != nil {
			f.t.Errorf("marshal: %v", err)
			return seq
		}
		f.rawWrite(string(b))
		return seq
	}
	if err := f.cch.Send(fields); err != nil && !errors.Is(err, nodeipc.ErrClosed) {
		f.t.Errorf("%s: send: %v", f.name, err)
	}
	return seq
}

// online sends Node's boot message (docs/node-cluster-protocol.md §2.3).
func (f *fakeWorker) online() { f.send(map[string]any{"act": "online"}) }

// tcpQuery is the queryServer of http.createServer().listen(port)
// (docs/node-cluster-protocol.md §5.3).
func tcpQuery(port int) map[string]any {
	return map[string]any{
		"act": "queryServer", "index": 0, "data": nil, "address": nil,
		"port": port, "addressType": 4, "backlog": 0,
	}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// query sends a queryServer and returns the daemon's reply.
func (f *fakeWorker) query(q map[string]any) *wireMsg {
	f.t.Helper()
	seq := f.send(copyMap(q))
	return f.reply(seq)
}

// listening sends the 'listening' notification for a query, with the bound port
// (docs/node-cluster-protocol.md §5.2 and §5.3).
func (f *fakeWorker) listening(q map[string]any, port int) {
	l := copyMap(q)
	l["act"] = "listening"
	if port != 0 {
		l["port"] = port
	}
	f.send(l)
}

// listen is query + listening for a round-robin TCP listen(port); it returns the real port.
func (f *fakeWorker) listen(port int) int {
	f.t.Helper()
	q := tcpQuery(port)
	r := f.query(q)
	if !isNull(r.Errno) || r.Sockname == nil {
		f.t.Fatalf("%s: listen(%d): %s", f.name, port, r.Raw)
	}
	f.waitInRotation(r.Key)
	f.listening(q, r.Sockname.Port)
	return r.Sockname.Port
}

// waitInRotation waits until the daemon has put the worker in rotation for key. The daemon
// queues the reply before it does (so that the reply precedes any newconn), so a worker that
// got its reply is not necessarily in rotation yet; tests that depend on the rotation order
// wait for it.
func (f *fakeWorker) waitInRotation(key string) {
	f.t.Helper()
	testutil.WaitFor(f.t, f.name+" to be in rotation for "+key, waitTimeout, func() bool {
		f.g.mu.Lock()
		h := f.g.handles[key]
		f.g.mu.Unlock()
		if h == nil {
			return false
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		_, in := h.workers[f.w.(*worker)]
		return in
	})
}

// next returns the next message the fake received (other than newconn).
func (f *fakeWorker) next() *wireMsg {
	f.t.Helper()
	if len(f.stash) > 0 {
		m := f.stash[0]
		f.stash = f.stash[1:]
		return m
	}
	select {
	case m := <-f.msgs:
		return m
	case <-time.After(waitTimeout):
		f.t.Fatalf("%s: timed out waiting for a message from the daemon", f.name)
		return nil
	}
}

// reply returns the message with ack == seq; others are kept for next().
func (f *fakeWorker) reply(seq int64) *wireMsg {
	f.t.Helper()
	for i, m := range f.stash {
		if m.Ack != nil && *m.Ack == seq {
			f.stash = append(f.stash[:i:i], f.stash[i+1:]...)
			return m
		}
	}
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-f.msgs:
			if m.Ack != nil && *m.Ack == seq {
				return m
			}
			f.stash = append(f.stash, m)
		case <-deadline:
			f.t.Fatalf("%s: timed out waiting for the reply to seq %d", f.name, seq)
			return nil
		}
	}
}

// nextConn returns the next newconn the fake received.
func (f *fakeWorker) nextConn() newconnEvent {
	f.t.Helper()
	select {
	case e := <-f.conns:
		return e
	case <-time.After(waitTimeout):
		f.t.Fatalf("%s: timed out waiting for a newconn", f.name)
		return newconnEvent{}
	}
}

// waitAcked waits until the daemon has received the NODE_HANDLE_ACK of every newconn it has
// in flight to the worker. The fake's channel sends the ACK on its own goroutine, so a fake
// that got a connection has not necessarily acknowledged it yet (the scheduler can delay it by
// milliseconds under load); tests of the ACKed-but-unanswered state wait for it.
func (f *fakeWorker) waitAcked() {
	f.t.Helper()
	w := f.w.(*worker)
	testutil.WaitFor(f.t, f.name+"'s ACKs to reach the daemon", waitTimeout, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, ic := range w.inflight {
			if !ic.acked {
				return false
			}
		}
		return len(w.inflight) > 0
	})
}

// heldCount is the number of connection fds the fake keeps without answering.
func (f *fakeWorker) heldCount() int {
	f.held.Lock()
	defer f.held.Unlock()
	return len(f.held.conns)
}

// die is the worker process dying: the child end of the channel closes (so the daemon reads
// EOF) and the fds the worker held are closed by the kernel. It waits for the daemon side to
// finish, then reports the exit (Worker.Ended), as the supervisor does.
func (f *fakeWorker) die() {
	f.dieOnce.Do(func() {
		if f.raw != nil {
			f.raw.Close()
			<-f.rawDone
		} else {
			f.cch.Close()
			<-f.cch.Done()
		}
		f.held.Lock()
		for _, hc := range f.held.conns {
			hc.file.Close()
		}
		f.held.conns = nil
		f.held.Unlock()
		select {
		case <-f.dch.Done():
		case <-time.After(waitTimeout):
			f.t.Errorf("%s: the daemon's channel did not end after the worker died", f.name)
		}
		f.w.Ended()
		// Whatever the daemon sent and the test did not consume.
		for _, m := range f.stash {
			if m.Handle != nil {
				m.Handle.Close()
			}
		}
		f.stash = nil
		for {
			select {
			case m := <-f.msgs:
				if m.Handle != nil {
					m.Handle.Close()
				}
				continue
			default:
			}
			break
		}
	})
}

// disconnectGracefully is the end of a worker that was told to disconnect: it flushes what
// it sent, then closes its end of the channel (process.disconnect()).
func (f *fakeWorker) disconnectGracefully() {
	f.t.Helper()
	if f.cch != nil {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := f.cch.Flush(ctx); err != nil {
			f.t.Fatalf("%s: flush: %v", f.name, err)
		}
	}
	f.die()
}

func (f *fakeWorker) stats() Stats { return f.g.Stats()[f.procID] }

// ---------------------------------------------------------------------------------------------
// Clients.

func dialTCP(t testing.TB, port int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout)
	if err != nil {
		t.Fatalf("dial 127.0.0.1:%d: %v", port, err)
	}
	c.SetDeadline(time.Now().Add(waitTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// readAnswer reads what the server sends until it closes the connection; a reset counts as
// the end too. It returns the bytes read and whether the connection was closed.
func readAnswer(t testing.TB, c net.Conn) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c)
	return string(b), err
}

// served dials port, reads the answer and returns the name of the worker that served it.
func served(t testing.TB, port int) string {
	t.Helper()
	c := dialTCP(t, port)
	defer c.Close()
	s, err := readAnswer(t, c)
	if err != nil {
		t.Fatalf("read answer: %v (got %q)", err, s)
	}
	return strings.TrimSpace(s)
}

// expectClosed checks that the server side closed c without sending anything (EOF or reset).
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	s, err := readAnswer(t, c)
	if s != "" {
		t.Fatalf("connection answered %q, want it closed", s)
	}
	if err != nil && !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("connection not closed: %v", err)
	}
}

func ipv6Available() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
