package cluster

import (
	"os"
	"strconv"
	"testing"

	"github.com/corral-pm/corral/internal/spec"
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
