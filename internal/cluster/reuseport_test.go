package cluster

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// queryOwnSocket sends f's queryServer on a reuseport group and returns the listening socket
// the daemon handed it.
func queryOwnSocket(t *testing.T, f *fakeWorker, port int) (*os.File, sockInfo) {
	t.Helper()
	r := f.reply(f.send(tcpQuery(port)))
	if r.Handle == nil {
		t.Fatalf("%s: reuseport reply without an fd: %s", f.name, r.Raw)
	}
	t.Cleanup(func() { r.Handle.Close() })
	rawEq(t, "errno", r.Errno, "0")
	si := inspectSocket(t, r.Handle)
	if si.typ != unix.SOCK_STREAM || !si.listening || si.port == 0 {
		t.Fatalf("%s got socket %+v, want a listening TCP socket", f.name, si)
	}
	on, err := unix.GetsockoptInt(int(r.Handle.Fd()), unix.SOL_SOCKET, unix.SO_REUSEPORT)
	if err != nil || on == 0 {
		t.Fatalf("%s's socket has no SO_REUSEPORT (%d, %v)", f.name, on, err)
	}
	return r.Handle, si
}

// TestReuseportPolicy: each slot gets its own listening socket on the same port; a reload's
// new run gets its slot's socket; a socket nobody accepts on is accepted on by the daemon,
// which hands its connections to the workers left; a new slot takes over the socket of a
// deleted one.
func TestReuseportPolicy(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, spec.PolicyReuseport)
	a := newFake(t, g, 1, "a", fakeOpts{})
	b := newFake(t, g, 2, "b", fakeOpts{})
	a.online()
	b.online()
	_, sa := queryOwnSocket(t, a, 0)
	_, sb := queryOwnSocket(t, b, 0)
	if sa.port != sb.port || sa.ino == sb.ino {
		t.Fatalf("a and b got %+v and %+v: want two sockets on one port", sa, sb)
	}
	port := sa.port

	// A reload: the slot's next run gets the same socket as the run it replaces.
	a2 := newFake(t, g, 1, "a2", fakeOpts{})
	a2.online()
	if _, s := queryOwnSocket(t, a2, 0); s.ino != sa.ino {
		t.Fatalf("slot 1's next run got socket %+v, want its slot's %+v", s, sa)
	}
	a.die()

	// b leaves: its socket stays open and the daemon accepts on it, handing the connections
	// to the slot-1 worker (a2). Connections hashed to a2's own socket wait there (the fake
	// never accepts on it), so some of these dials go through the daemon.
	b.die()
	g.Forget(2)
	for range 16 {
		dialTCP(t, port)
	}
	ev := a2.nextConn()
	if ev.key == "" {
		t.Fatalf("a2 got a connection on no key: %+v", ev)
	}

	// Scale back up: the new slot 3 takes over the deleted slot's socket.
	c := newFake(t, g, 3, "c", fakeOpts{})
	c.online()
	if _, s := queryOwnSocket(t, c, 0); s.ino != sb.ino {
		t.Fatalf("new slot 3 got socket %+v, want the deleted slot's %+v", s, sb)
	}
	waitIdle(t, a2, c)
}

// TestReuseportRefusesTakenPort: a port some other program listens on with SO_REUSEPORT is
// refused with EADDRINUSE (a reuseport group would otherwise take it over and share its
// connections), as a round-robin key's bind is.
func TestReuseportRefusesTakenPort(t *testing.T) {
	checkLeaks(t)
	other, err := openListener(listenSpec{network: "tcp", reusePort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	name, err := socknameOf(other)
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGroup(t, spec.PolicyReuseport)
	a := newFake(t, g, 1, "a", fakeOpts{})
	a.online()
	r := a.reply(a.send(tcpQuery(name.Port)))
	if r.Handle != nil {
		r.Handle.Close()
		t.Fatalf("a port taken by another reuseport listener was handed over: %s", r.Raw)
	}
	rawEq(t, "errno", r.Errno, strconv.Itoa(-int(unix.EADDRINUSE)))
}

// onOwnSockets starts a reuseport group whose rescue steps in after rescueAfter, with an
// online fake worker for each name, each handed its own socket, and returns them, their
// sockets, the port and what the group logs.
func onOwnSockets(t *testing.T, rescueAfter time.Duration, names ...string) ([]*fakeWorker, []*os.File, int, *logCapture) {
	t.Helper()
	g := newTestGroup(t, spec.PolicyReuseport)
	g.rescueAfter = rescueAfter
	logs := &logCapture{}
	g.logf = logs.logf // before any socket: the watcher reads it
	var fakes []*fakeWorker
	var socks []*os.File
	port := 0
	for i, name := range names {
		f := newFake(t, g, i+1, name, fakeOpts{})
		f.online()
		sock, si := queryOwnSocket(t, f, 0)
		fakes, socks, port = append(fakes, f), append(socks, sock), si.port
	}
	return fakes, socks, port, logs
}

// logCapture keeps what a group logs.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logCapture) find(sub string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// answeredBy dials n connections to port at once and checks that want answers each of them.
func answeredBy(t *testing.T, port, n int, want string) {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialTCP(t, port)
	}
	for i, c := range conns {
		s, err := readAnswer(t, c)
		if strings.TrimSpace(s) != want {
			t.Fatalf("client %d of %d got %q (%v), want the answer of %s, the worker that keeps up", i+1, n, s, err, want)
		}
	}
}

// acceptOwn accepts on a worker's own reuseport socket for the rest of the test, answering
// each client with name, as a worker that keeps up does.
func acceptOwn(t *testing.T, sock *os.File, name string) {
	t.Helper()
	ln, err := net.FileListener(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(name + "\n"))
			c.Close()
		}
	}()
}

// TestReuseportRescuesStalledQueue: while one worker accepts nothing on its own socket (its
// event loop is blocked) and the other keeps up, the connections the kernel puts in the
// stalled worker's queue are not left waiting for it: the daemon drains that queue and hands
// them to the worker that keeps up. Without the rescue about half the clients would wait
// until the stalled worker came back (here: never, so the reads below would time out).
func TestReuseportRescuesStalledQueue(t *testing.T) {
	checkLeaks(t)
	fakes, socks, port, _ := onOwnSockets(t, rescueAfter, "stalled", "keeper")
	stalled, keeper := fakes[0], fakes[1]
	acceptOwn(t, socks[1], "keeper")
	answeredBy(t, port, 24, "keeper")
	if got := stalled.stats().Connections; got != 0 {
		t.Fatalf("the stalled worker was handed %d connections, want none", got)
	}
	if got := keeper.stats().Connections; got == 0 {
		t.Fatalf("the daemon handed the keeper nothing: no client's connection landed in the stalled queue? (a hash over 24 connections)")
	}
}

// TestReuseportRescueSkipsStalledWorkers: with two of three workers stalled, what waits on
// either stalled socket goes to the one that keeps up, never to the other stalled worker.
func TestReuseportRescueSkipsStalledWorkers(t *testing.T) {
	checkLeaks(t)
	fakes, socks, port, _ := onOwnSockets(t, rescueAfter, "stalled1", "stalled2", "keeper")
	acceptOwn(t, socks[2], "keeper")
	answeredBy(t, port, 36, "keeper")
	for _, f := range fakes[:2] {
		if got := f.stats().Connections; got != 0 {
			t.Fatalf("%s was handed %d connections, want none", f.name, got)
		}
	}
}

// TestReuseportStallLogged: a stall of a second or more is logged once it is over, here when
// the stalled worker dies.
func TestReuseportStallLogged(t *testing.T) {
	checkLeaks(t)
	fakes, socks, port, logs := onOwnSockets(t, rescueAfter, "stalled", "keeper")
	acceptOwn(t, socks[1], "keeper")
	for start := time.Now(); time.Since(start) < rescueLogAfter+200*time.Millisecond; {
		answeredBy(t, port, 4, "keeper")
	}
	if line := logs.find("accepted nothing"); line != "" {
		t.Fatalf("a stall was logged before it was over: %s", line)
	}
	fakes[0].die()
	testutil.WaitFor(t, "the stall in the log", waitTimeout, func() bool { return logs.find("accepted nothing") != "" })
	t.Log(logs.find("accepted nothing"))
}

// TestReuseportLeavesWorkersThatKeepUp: while every worker accepts on its own socket, the
// daemon hands off nothing, bursts included, for a second and more: the rescue is for stalled
// queues only. (The rescue waits 200 ms here, not 50: a goroutine of this test that does not
// run for 50 ms on a loaded machine would be a stalled worker.)
func TestReuseportLeavesWorkersThatKeepUp(t *testing.T) {
	checkLeaks(t)
	fakes, socks, port, _ := onOwnSockets(t, 200*time.Millisecond, "a", "b")
	a, b := fakes[0], fakes[1]
	acceptOwn(t, socks[0], "a")
	acceptOwn(t, socks[1], "b")
	for start := time.Now(); time.Since(start) < time.Second; {
		var conns []net.Conn
		for range 20 {
			conns = append(conns, dialTCP(t, port))
		}
		for _, c := range conns {
			if s, err := readAnswer(t, c); s == "" {
				t.Fatalf("no answer: %v", err)
			}
			c.Close()
		}
	}
	if got := a.stats().Connections + b.stats().Connections; got != 0 {
		t.Fatalf("the daemon handed off %d connections though both workers keep up", got)
	}
}
