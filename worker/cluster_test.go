package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestOnlineFirst(t *testing.T) {
	p := newPrimary(t, 1)
	p.expect(`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`)
	if !p.rt.cluster || p.rt.id != 1 {
		t.Fatalf("process is not a cluster worker: cluster=%v id=%d", p.rt.cluster, p.rt.id)
	}
}

// TestChannelWithoutWorkerID: a channel without a worker id is not a cluster worker: no
// online, Listen is net.Listen, but 'ready' still goes to corral.
func TestChannelWithoutWorkerID(t *testing.T) {
	p := newPrimary(t, 0)
	ln, err := p.rt.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := p.rt.ready(); err != nil {
		t.Fatal(err)
	}
	p.expect(`"ready"`)
}

// TestListenRoundRobin: Node's queryServer and listening shapes, the real port from sockname,
// connections from newconn with their accepted replies, and close with the key.
func TestListenRoundRobin(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	port := p.socket().Addr().(*net.TCPAddr).Port
	key := "null:0:4:undefined:0"

	done := p.listenAsync("tcp", ":0")
	q := p.expect(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}`)
	p.replyRR(q, key, port)
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":null,"port":%d,"addressType":4,"backlog":0,"seq":2}`, port))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	ln := r.ln
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.Port != port || !a.IP.Equal(net.IPv6zero) {
		t.Fatalf("Addr() = %v, want [::]:%d", ln.Addr(), port)
	}

	for i := range 3 {
		client, seq := p.handOff(key)
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		p.expectAccepted(seq, true)
		fmt.Fprintf(c, "hello %d\n", i)
		c.Close()
		client.SetDeadline(time.Now().Add(waitTimeout))
		got, _ := io.ReadAll(client)
		if string(got) != fmt.Sprintf("hello %d\n", i) {
			t.Fatalf("client read %q", got)
		}
	}

	ln.Close()
	m := p.expectAct("close")
	if m.str("key") != key || len(m.fields) != 4 {
		t.Fatalf("close message %s", m.Raw)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	// A connection handed to a closed listener goes back.
	_, seq := p.handOff(key)
	p.expectAccepted(seq, false)
}

// TestQueryShapes: the queryServer fields for each way of listening
// (docs/node-cluster-protocol.md §5.3), and Node's index numbering per address tuple
// (docs/node-cluster-protocol.md §5.6).
func TestQueryShapes(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	t.Chdir(dir)
	cases := []struct {
		network, address string
		want             string // without cmd/act/seq
	}{
		{"tcp", ":5077", `"index":0,"data":null,"address":null,"port":5077,"addressType":4,"backlog":0`},
		{"tcp", "127.0.0.1:5078", `"index":0,"data":null,"address":"127.0.0.1","port":5078,"addressType":4,"flags":0,"backlog":0`},
		{"tcp", "localhost:5078", `"index":0,"data":null,"address":"127.0.0.1","port":5078,"addressType":4,"flags":0,"backlog":0`},
		{"tcp6", "[::1]:5079", `"index":0,"data":null,"address":"::1","port":5079,"addressType":6,"flags":1,"backlog":0`},
		{"tcp", "[::1]:5079", `"index":0,"data":null,"address":"::1","port":5079,"addressType":6,"flags":0,"backlog":0`},
		{"tcp4", ":5080", `"index":0,"data":null,"address":"0.0.0.0","port":5080,"addressType":4,"flags":0,"backlog":0`},
		{"tcp6", ":5080", `"index":0,"data":null,"address":"::","port":5080,"addressType":6,"flags":1,"backlog":0`},
		{"tcp", ":http", `"index":0,"data":null,"address":null,"port":80,"addressType":4,"backlog":0`},
		{"unix", "app.sock", `"index":0,"data":null,"address":"` + sock + `","port":-1,"addressType":-1,"backlog":0`},
	}
	for _, c := range cases {
		q, err := makeQuery(c.network, c.address)
		if err != nil {
			t.Fatalf("%s %s: %v", c.network, c.address, err)
		}
		m := q.msg("queryServer", 0, q.port, 1)
		b, _ := json.Marshal(m)
		want := `{"cmd":"NODE_CLUSTER","act":"queryServer",` + c.want + `,"seq":1}`
		if string(b) != want {
			t.Errorf("%s %q:\n  got  %s\n  want %s", c.network, c.address, b, want)
		}
	}
	for _, bad := range [][2]string{{"tcp", "nocolon"}, {"tcp", ":99999"}, {"tcp4", "[::1]:80"}, {"tcp6", "127.0.0.1:80"}, {"unix", ""}} {
		if _, err := makeQuery(bad[0], bad[1]); err == nil {
			t.Errorf("makeQuery(%q, %q) succeeded", bad[0], bad[1])
		}
	}

	// Index numbering: concurrent listens on one tuple count up; after all are closed the
	// count starts again at 0.
	p := newPrimary(t, 1)
	p.expectAct("online")
	a, qa := p.listenRR("tcp", ":7000", "null:7000:4:undefined:0")
	b, qb := p.listenRR("tcp", ":7000", "null:7000:4:undefined:1")
	c, qc := p.listenRR("tcp", "127.0.0.1:7000", "127.0.0.1:7000:4:undefined:0")
	if qa.int("index") != 0 || qb.int("index") != 1 || qc.int("index") != 0 {
		t.Fatalf("indexes %d %d %d, want 0 1 0", qa.int("index"), qb.int("index"), qc.int("index"))
	}
	a.Close()
	p.expectAct("close")
	d, qd := p.listenRR("tcp", ":7000", "null:7000:4:undefined:2")
	if qd.int("index") != 2 {
		t.Fatalf("index %d while index 1 is open, want 2", qd.int("index"))
	}
	b.Close()
	d.Close()
	p.expectAct("close")
	p.expectAct("close")
	e, qe := p.listenRR("tcp", ":7000", "null:7000:4:undefined:0")
	if qe.int("index") != 0 {
		t.Fatalf("index %d after all closed, want 0", qe.int("index"))
	}
	c.Close()
	e.Close()
}

// TestListenErrno: an errno reply is a bind error naming the address; nothing else is sent
// and the index is free again.
func TestListenErrno(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	done := p.listenAsync("tcp", ":5000")
	q := p.expectAct("queryServer")
	p.send(map[string]any{"errno": -98, "key": "null:5000:4:undefined:0", "ack": q.int("seq"), "data": nil})
	err := (<-done).err
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), ":5000") || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("error %v, want a bind EADDRINUSE naming :5000", err)
	}
	p.expectNothing(50 * time.Millisecond)
	_, q2 := p.listenRR("tcp", ":5000", "null:5000:4:undefined:0")
	if q2.int("index") != 0 {
		t.Fatalf("index %d after a failed listen, want 0", q2.int("index"))
	}
}

// TestPortMismatch: a sockname port other than the one asked for is EADDRINUSE (Node's rule),
// and the worker leaves the key it was put on.
func TestPortMismatch(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	done := p.listenAsync("tcp", ":5000")
	q := p.expectAct("queryServer")
	p.replyRR(q, "k", 5001)
	if err := (<-done).err; !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("error %v, want EADDRINUSE", err)
	}
	if m := p.expectAct("close"); m.str("key") != "k" {
		t.Fatalf("close %s", m.Raw)
	}
}

// TestCloseGivesBackQueued: connections handed over but not accepted go back when the listener
// closes, after the close message (so that the daemon does not hand them back here).
func TestCloseGivesBackQueued(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	ln, _ := p.listenRR("tcp", ":0", "k")
	_, s1 := p.handOff("k")
	_, s2 := p.handOff("k")
	// Wait until both are queued in the listener.
	rr := ln.(*rrListener)
	testutil.WaitFor(t, "two queued connections", waitTimeout, func() bool {
		rr.mu.Lock()
		defer rr.mu.Unlock()
		return len(rr.queue) == 2
	})
	ln.Close()
	p.expectAct("close")
	p.expectAccepted(s1, false)
	p.expectAccepted(s2, false)
}

// TestDisconnect: the daemon's disconnect closes the listeners (Accept fails), closes Shutdown
// with its cause, and, with no ServeHTTP running, the worker leaves at once: exitedAfterDisconnect,
// and once the daemon has answered it, the channel closes.
func TestDisconnect(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	ln, _ := p.listenRR("tcp", ":0", "k")
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		acceptErr <- err
	}()
	p.send(map[string]any{"act": "disconnect"})
	select {
	case <-p.rt.shutdownChan():
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown did not close")
	}
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept: %v", err)
	}
	if cause := context.Cause(p.rt.context()); !errors.Is(cause, errDisconnect) {
		t.Fatalf("cause %v", cause)
	}
	p.expectAct("close")
	p.ackLeave(p.expectAct("exitedAfterDisconnect"))
	// Listen after the disconnect fails at once.
	if _, err := p.rt.listen("tcp", ":0"); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("listen after disconnect: %v", err)
	}
}

// TestDisconnectLateConnection: a connection the daemon queued right after its disconnect
// (concurrently with it) is given back before the worker closes the channel, although the
// channel acknowledged the handle by itself: the worker's answer is ahead of its close.
func TestDisconnectLateConnection(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	p.listenRR("tcp", ":0", "k")
	p.send(map[string]any{"act": "disconnect"})
	_, seq := p.handOff("k")
	// The answer and exitedAfterDisconnect may come in either order, but both before the
	// channel closes (messages reach the handler before its close).
	answered := false
	for done := false; !done; {
		select {
		case m := <-p.msgs:
			switch {
			case m.str("act") == "exitedAfterDisconnect":
				p.send(map[string]any{"ack": m.int("seq")})
			case m.has("ack") && m.int("ack") == seq:
				if !strings.Contains(m.Raw, `"accepted":false`) {
					t.Fatalf("answer %s", m.Raw)
				}
				answered = true
			}
		case <-p.closed:
			done = len(p.msgs) == 0
		case <-time.After(waitTimeout):
			t.Fatal("the worker did not close the channel")
		}
	}
	if !answered {
		t.Fatal("the channel closed before the late connection was answered")
	}
}

// TestDisconnectFailsPendingListen: the daemon does not answer a queryServer once it asked the
// worker to disconnect; the pending Listen fails instead of hanging.
func TestDisconnectFailsPendingListen(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	done := p.listenAsync("tcp", ":0")
	p.expectAct("queryServer")
	p.send(map[string]any{"act": "disconnect"})
	select {
	case r := <-done:
		if r.err == nil {
			t.Fatal("listen succeeded")
		}
	case <-time.After(waitTimeout):
		t.Fatal("listen still pending after disconnect")
	}
}

// TestShutdownMessageLeaves: PM2's 'shutdown' message closes Shutdown; the worker says it is
// leaving (exitedAfterDisconnect), waits for the ack, then closes the channel.
func TestShutdownMessageLeaves(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	ln, _ := p.listenRR("tcp", ":0", "k")
	if err := p.ch.Send("shutdown"); err != nil {
		t.Fatal(err)
	}
	<-p.rt.shutdownChan()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept: %v", err)
	}
	p.expectAct("close")
	p.ackLeave(p.expect(`{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":4}`))
}

// TestChannelLostShutsDown: the daemon going away (channel closed from its side) shuts a
// cluster worker down.
func TestChannelLostShutsDown(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	ln, _ := p.listenRR("tcp", ":0", "k")
	p.ch.Close()
	select {
	case <-p.rt.shutdownChan():
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown did not close")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept: %v", err)
	}
}

func TestReady(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	if err := p.rt.ready(); err != nil {
		t.Fatal(err)
	}
	p.expect(`"ready"`)
}

// TestIgnoresUnknown: unknown acts, unknown acks, other internal commands and user messages
// are ignored; the worker keeps working.
func TestIgnoresUnknown(t *testing.T) {
	p := newPrimary(t, 1)
	p.expectAct("online")
	p.send(map[string]any{"act": "somethingNew"})
	p.send(map[string]any{"ack": 999})
	if err := p.ch.Send(map[string]any{"cmd": "NODE_OTHER"}); err != nil {
		t.Fatal(err)
	}
	if err := p.ch.Send(map[string]any{"hello": "world"}); err != nil {
		t.Fatal(err)
	}
	if err := p.ch.Send(42); err != nil {
		t.Fatal(err)
	}
	ln, _ := p.listenRR("tcp", ":0", "k")
	ln.Close()
	if p.rt.isShutdown() {
		t.Fatal("shut down by an unknown message")
	}
}

// TestBadLinesNotFatal: a line that is not JSON is reported on stderr and skipped.
func TestBadLinesNotFatal(t *testing.T) {
	parent, child, err := nodeipc.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	var logs logSink
	rt := newProcess()
	rt.logf = logs.logf
	if err := rt.open(child, 1); err != nil {
		t.Fatal(err)
	}
	defer rt.ch.Close()
	r := bufio.NewReader(parent)
	if line, _ := r.ReadString('\n'); !strings.Contains(line, `"online"`) {
		t.Fatalf("first line %q", line)
	}
	parent.Write([]byte("{bad json}\n\n" + `{"cmd":"NODE_CLUSTER","act":"newconn","key":"x"}` + "\n" + `{"cmd":"NODE_CLUSTER","act":"disconnect","seq":1}` + "\n"))
	select {
	case <-rt.shutdownChan():
	case <-time.After(waitTimeout):
		t.Fatal("the disconnect after bad lines was not handled")
	}
	testutil.WaitFor(t, "the bad lines to be logged", waitTimeout, func() bool { return strings.Count(logs.String(), "not JSON") == 2 })
}

// TestSharedHandle: with the shared policy the reply carries the bound socket itself; the
// worker listens on it and accepts directly.
func TestSharedHandle(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	port := sa.(*unix.SockaddrInet4).Port

	done := p.listenAsync("tcp", "127.0.0.1:0")
	q := p.expectAct("queryServer")
	acked := make(chan bool, 1)
	reply := map[string]any{"cmd": "NODE_CLUSTER", "errno": 0, "key": "shared-key", "ack": q.int("seq"), "data": nil, "seq": p.seq.Add(1)}
	if err := p.ch.SendHandle("net.Native", reply, fd, func(ok bool) { acked <- ok }); err != nil {
		t.Fatal(err)
	}
	if !<-acked {
		t.Fatal("the handle was NACKed")
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	ln := r.ln
	if l := p.expectAct("listening"); l.int("port") != int64(port) {
		t.Fatalf("listening %s, want port %d", l.Raw, port)
	}
	if ln.Addr().(*net.TCPAddr).Port != port {
		t.Fatalf("Addr %v, want port %d", ln.Addr(), port)
	}
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ln.Close()
	if m := p.expectAct("close"); m.str("key") != "shared-key" {
		t.Fatalf("close %s", m.Raw)
	}
}

// TestAcceptConcurrency: many Accept goroutines, connections handed over while Close runs:
// every newconn is answered exactly once, accepted or not, and nothing deadlocks. Run with
// -race.
func TestAcceptConcurrency(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	ln, _ := p.listenRR("tcp", ":0", "k")
	const acceptors, conns = 8, 200
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for range acceptors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("Accept: %v", err)
					}
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
	}
	seqs := map[int64]bool{}
	for i := range conns {
		_, seq := p.handOff("k")
		seqs[seq] = true
		if i == conns/2 {
			go ln.Close()
		}
	}
	answered := map[int64]bool{}
	var yes, no int64
	closeSeen := false
	for len(answered) < conns {
		m := p.next()
		if m.str("act") == "close" {
			closeSeen = true
			continue
		}
		ack := m.int("ack")
		if !seqs[ack] || answered[ack] {
			t.Fatalf("unexpected or repeated answer %s", m.Raw)
		}
		answered[ack] = true
		if strings.Contains(m.Raw, `"accepted":true`) {
			yes++
		} else {
			no++
		}
	}
	wg.Wait()
	if !closeSeen {
		p.expectAct("close")
	}
	if yes != accepted.Load() || yes+no != conns {
		t.Fatalf("accepted %d (Accept returned %d), refused %d, of %d", yes, accepted.Load(), no, conns)
	}
}

// TestListenFallback: outside corral and without LISTEN_FDS, Listen is net.Listen and Ready a
// no-op.
func TestListenFallback(t *testing.T) {
	rt := newProcess()
	close(rt.opened)
	t.Setenv("NOTIFY_SOCKET", "")
	ln, err := rt.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, ok := ln.(*net.TCPListener); !ok {
		t.Fatalf("listener %T, want *net.TCPListener", ln)
	}
	if err := rt.ready(); err != nil {
		t.Fatal(err)
	}
	if rt.cluster || InCluster() {
		t.Fatal("InCluster outside corral")
	}
}

// TestReadyNotify: Ready sends READY=1 to NOTIFY_SOCKET.
func TestReadyNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	rt := newProcess()
	close(rt.opened)
	if err := rt.ready(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket got %q, %v", buf[:n], err)
	}
}

// TestInheritedBeforeCluster: a cluster worker that also inherited sockets (an app in cluster
// mode with corral `listen` sockets) takes the inherited socket bound to the address, tells the
// daemon it listens, and asks the daemon for other addresses.
func TestInheritedBeforeCluster(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	p := newPrimary(t, 1)
	p.expectAct("online")
	own, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := own.(*net.TCPListener).File()
	own.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := &inherited{fd: fd, name: "web"}
	if !describe(s) {
		t.Fatal("not a stream socket")
	}
	p.rt.act = &activation{socks: []*inherited{s}}
	addr := s.addr.(*net.TCPAddr)

	ln, err := p.rt.listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != addr.String() {
		t.Fatalf("Addr %v, want the inherited %v", ln.Addr(), addr)
	}
	p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":%d,"addressType":4,"backlog":0,"seq":1}`, addr.Port))
	// Another address: the daemon's.
	l2, q := p.listenRR("tcp", ":0", "k")
	defer l2.Close()
	if q.int("seq") != 2 {
		t.Fatalf("queryServer %s", q.Raw)
	}
}
