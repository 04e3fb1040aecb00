package worker

// Test harness: a fake cluster primary (the daemon's side of the channel) built from
// internal/nodeipc, like internal/cluster/fake_test.go the other way round. The worker under
// test is a process value opened on the child end of the socketpair, exactly as the package opens
// CORRAL_CHANNEL_FD at init.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/nodeipc"
)

// waitTimeout bounds every wait; nothing should take more than a fraction of a second, but
// -race on a loaded two-core machine is slow.
const waitTimeout = 15 * time.Second

// fromWorker is one message the fake primary received.
type fromWorker struct {
	Raw    string
	Handle *os.File
	fields map[string]json.RawMessage
}

func (m fromWorker) str(key string) string {
	var s string
	_ = json.Unmarshal(m.fields[key], &s)
	return s
}

func (m fromWorker) int(key string) int64 {
	var n int64
	if err := json.Unmarshal(m.fields[key], &n); err != nil {
		return -1 << 40
	}
	return n
}

func (m fromWorker) has(key string) bool { _, ok := m.fields[key]; return ok }

// primary is the fake daemon side of one worker's channel.
type primary struct {
	t      testing.TB
	ch     *nodeipc.Channel
	rt     *process // the worker
	msgs   chan fromWorker
	closed chan struct{} // the worker's side closed the channel
	bad    atomic.Int32
	seq    atomic.Int64
	logs   logSink

	sockMu sync.Mutex
	ln     net.Listener // the primary's own socket, for handing off real connections
}

type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// newPrimary starts a worker process value with cluster worker id (0: a channel but no cluster) and
// its fake primary. The worker's channel is closed when the test ends.
func newPrimary(t testing.TB, id int) *primary {
	t.Helper()
	parent, child, err := nodeipc.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	p := &primary{t: t, msgs: make(chan fromWorker, 4096), closed: make(chan struct{})}
	p.ch, err = nodeipc.Open(parent, (*primaryIPC)(p), nodeipc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rt := newProcess()
	rt.logf = p.logs.logf
	if err := rt.open(child, id); err != nil {
		t.Fatal(err)
	}
	p.rt = rt
	t.Cleanup(func() {
		p.ch.Close()
		select {
		case <-p.ch.Done():
		case <-time.After(waitTimeout):
			t.Errorf("the primary's channel did not end")
		}
		if rt.ch != nil {
			select {
			case <-rt.ch.Done():
			case <-time.After(waitTimeout):
				t.Errorf("the worker's channel did not end")
			}
		}
		p.sockMu.Lock()
		if p.ln != nil {
			p.ln.Close()
		}
		p.sockMu.Unlock()
		for {
			select {
			case m := <-p.msgs:
				if m.Handle != nil {
					m.Handle.Close()
				}
				continue
			default:
			}
			break
		}
	})
	return p
}

type primaryIPC primary

func (h *primaryIPC) HandleMessage(m nodeipc.Message) {
	fw := fromWorker{Raw: string(m.Raw), Handle: m.Handle}
	_ = json.Unmarshal(m.Raw, &fw.fields)
	h.msgs <- fw
}
func (h *primaryIPC) HandleBadLine(line []byte, err error) {
	h.bad.Add(1)
	h.t.Errorf("the worker sent a line that is not JSON (%v): %q", err, line)
}
func (h *primaryIPC) HandleClose(error) { close(h.closed) }

// next returns the next message from the worker.
func (p *primary) next() fromWorker {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(waitTimeout):
		p.t.Fatalf("timed out waiting for a message from the worker")
		return fromWorker{}
	}
}

// expect checks that the next message is exactly want (Node's field order included).
func (p *primary) expect(want string) fromWorker {
	p.t.Helper()
	m := p.next()
	if m.Raw != want {
		p.t.Fatalf("worker sent\n  %s\nwant\n  %s", m.Raw, want)
	}
	return m
}

// expectAct returns the next message, which must be a cluster message with act.
func (p *primary) expectAct(act string) fromWorker {
	p.t.Helper()
	m := p.next()
	if m.str("cmd") != "NODE_CLUSTER" || m.str("act") != act {
		p.t.Fatalf("worker sent %s, want act %q", m.Raw, act)
	}
	return m
}

// expectAccepted returns the next message, which must answer newconn seq.
func (p *primary) expectAccepted(seq int64, accepted bool) fromWorker {
	p.t.Helper()
	m := p.next()
	want := fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":%v,"seq":%d}`, seq, accepted, m.int("seq"))
	if m.Raw != want {
		p.t.Fatalf("worker sent %s, want %s", m.Raw, want)
	}
	return m
}

// expectNothing checks that the worker sends nothing for a moment.
func (p *primary) expectNothing(d time.Duration) {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		p.t.Fatalf("unexpected message from the worker: %s", m.Raw)
	case <-time.After(d):
	}
}

// send sends a NODE_CLUSTER message with the primary's next seq.
func (p *primary) send(fields map[string]any) int64 {
	p.t.Helper()
	seq := p.seq.Add(1)
	fields["cmd"] = "NODE_CLUSTER"
	fields["seq"] = seq
	if err := p.ch.Send(fields); err != nil {
		p.t.Fatalf("primary send: %v", err)
	}
	return seq
}

// replyRR answers a queryServer for round-robin with key and the primary's own socket's port.
func (p *primary) replyRR(q fromWorker, key string, port int) {
	p.t.Helper()
	p.send(map[string]any{
		"errno": nil, "key": key, "ack": q.int("seq"), "data": nil,
		"sockname": map[string]any{"address": "::", "family": "IPv6", "port": port},
	})
}

// ackLeave answers the worker's exitedAfterDisconnect m, after checking that the worker keeps the
// channel open until then, and waits for the worker to close the channel.
func (p *primary) ackLeave(m fromWorker) {
	p.t.Helper()
	select {
	case <-p.closed:
		p.t.Fatal("channel closed before the daemon answered exitedAfterDisconnect")
	case <-time.After(50 * time.Millisecond):
	}
	p.send(map[string]any{"ack": m.int("seq")})
	select {
	case <-p.closed:
	case <-time.After(waitTimeout):
		p.t.Fatal("the worker did not close the channel after the ack")
	}
}

// socket returns the primary's own listening socket (created once), whose accepted
// connections it hands off.
func (p *primary) socket() net.Listener {
	p.sockMu.Lock()
	defer p.sockMu.Unlock()
	if p.ln == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.t.Fatal(err)
		}
		p.ln = ln
	}
	return p.ln
}

// handOff makes a client connection to the primary's socket and hands the accepted end to the
// worker (newconn on key). It returns the client end and the newconn's seq.
func (p *primary) handOff(key string) (net.Conn, int64) {
	p.t.Helper()
	ln := p.socket()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		p.t.Fatal(err)
	}
	f, err := server.(*net.TCPConn).File()
	server.Close()
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close() // SendHandle has its own copy
	seq := p.seq.Add(1)
	msg := map[string]any{"cmd": "NODE_CLUSTER", "act": "newconn", "key": key, "seq": seq}
	if err := p.ch.SendHandle("net.Native", msg, int(f.Fd()), nil); err != nil {
		p.t.Fatal(err)
	}
	return client, seq
}

// listened is the result of a Listen.
type listened struct {
	ln  net.Listener
	err error
}

// listenAsync runs rt.listen(network, address) on a goroutine of its own, so that the test can
// play the primary's part meanwhile; the result comes on the channel.
func (p *primary) listenAsync(network, address string) <-chan listened {
	done := make(chan listened, 1)
	go func() {
		ln, err := p.rt.listen(network, address)
		done <- listened{ln, err}
	}()
	return done
}

// listenRR runs rt.listen(network, address) against the fake primary's round-robin reply and
// returns the listener and the queryServer message.
func (p *primary) listenRR(network, address, key string) (net.Listener, fromWorker) {
	p.t.Helper()
	done := p.listenAsync(network, address)
	q := p.expectAct("queryServer")
	port := int(q.int("port"))
	if port <= 0 {
		port = p.socket().Addr().(*net.TCPAddr).Port
	}
	p.replyRR(q, key, port)
	r := <-done
	if r.err != nil {
		p.t.Fatalf("listen %s %s: %v", network, address, r.err)
	}
	l := p.expectAct("listening")
	if l.int("port") != int64(port) {
		p.t.Fatalf("listening reports port %d, want %d: %s", l.int("port"), port, l.Raw)
	}
	return r.ln, q
}
