package nodeipc

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// These tests run real `node` children (skipped when node is not installed), spawned the way
// the daemon spawns them.

// The child's process.send arrives as plain user lines (docs/node-cluster-protocol.md §7.9);
// "shutdown" reaches its process.on('message'); when it exits, HandleClose(nil) runs once and
// Done closes.
func TestNodeUserMessagesAndExit(t *testing.T) {
	checkLeaks(t)
	r := newRecorder(t)
	nc := startNode(t, "ready.js", r)

	if got := r.next(t); string(got.Raw) != `"ready"` || got.Cmd != "" || got.Internal || got.Handle != nil {
		t.Fatalf("first message = %+v, want \"ready\"", got)
	}
	got := r.next(t)
	var stats struct {
		Type string
		N    int
		S    string
	}
	if err := json.Unmarshal(got.Raw, &stats); err != nil {
		t.Fatalf("stats %s: %v", got.Raw, err)
	}
	if stats.Type != "stats" || stats.N != 1 || stats.S != "h\u00e9llo \u20ac \U0001F600" || got.Internal {
		t.Fatalf("second message = %s (%+v)", got.Raw, got)
	}

	if err := nc.ch.Send("shutdown"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if raw := r.nextRaw(t); raw != `{"got":"shutdown"}` {
		t.Fatalf("reply = %s", raw)
	}
	if err := r.waitClosed(t); err != nil {
		t.Fatalf("HandleClose(%v), want nil (EOF)", err)
	}
	waitDone(t, nc.ch)
	if code := exitCode(t, nc.wait(t)); code != 0 {
		t.Fatalf("node exit code %d", code)
	}
	if err := nc.ch.Send("late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after disconnect = %v, want ErrClosed", err)
	}
}

// A 1 MB message (with multi-byte characters, so some are split across reads) goes to Node
// and comes back inside a larger one.
func TestNodeMegabyteBothWays(t *testing.T) {
	checkLeaks(t)
	r := newRecorder(t)
	nc := startNode(t, "echo.js", r)

	var b strings.Builder
	for b.Len() < 1<<20 {
		b.WriteString("abc\u00e9\u20ac\U0001F600\"\\\n")
	}
	big := b.String()
	if err := nc.ch.Send(big); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := r.next(t)
	var echo struct {
		Len  int
		Echo string
	}
	if err := json.Unmarshal(m.Raw, &echo); err != nil {
		t.Fatalf("echo: %v", err)
	}
	// JavaScript lengths count UTF-16 units.
	want := 0
	for _, r := range big {
		want++
		if r > 0xFFFF {
			want++
		}
	}
	if echo.Len != want || echo.Echo != big {
		t.Fatalf("echo len %d (want %d), equal=%v", echo.Len, want, echo.Echo == big)
	}
}

// Raw bytes that are not JSON written by the child go to HandleBadLine; the channel keeps
// working in both directions.
func TestNodeBadJSON(t *testing.T) {
	checkLeaks(t)
	r := newRecorder(t)
	nc := startNode(t, "badjson.js", r)

	if b := r.nextBad(t); string(b.line) != "{bad json}" || b.err == nil {
		t.Fatalf("bad line = %q, %v", b.line, b.err)
	}
	if b := r.nextBad(t); len(b.line) != 0 || !errors.Is(b.err, errEmptyLine) {
		t.Fatalf("empty line = %q, %v", b.line, b.err)
	}
	if raw := r.nextRaw(t); raw != `"after-bad"` {
		t.Fatalf("got %s, want \"after-bad\"", raw)
	}
	if err := nc.ch.Send("ping"); err != nil {
		t.Fatal(err)
	}
	if raw := r.nextRaw(t); raw != `"pong"` {
		t.Fatalf("got %s, want \"pong\"", raw)
	}
}

// A cluster-style spawn (NODE_UNIQUE_ID and a script file) sends the online message before
// user code runs (docs/node-cluster-protocol.md §2.3), as an internal message. Closing the
// channel makes the worker exit 0 at once (docs/node-cluster-protocol.md §7.8).
func TestNodeClusterOnline(t *testing.T) {
	checkLeaks(t)
	r := newRecorder(t)
	nc := startNode(t, "cluster_worker.js", r, "NODE_UNIQUE_ID=1")

	m := r.next(t)
	if string(m.Raw) != `{"cmd":"NODE_CLUSTER","act":"online","seq":0}` || m.Cmd != "NODE_CLUSTER" || !m.Internal {
		t.Fatalf("first message = %s cmd=%q internal=%v", m.Raw, m.Cmd, m.Internal)
	}
	if raw := r.nextRaw(t); raw != `{"isWorker":true,"id":1}` {
		t.Fatalf("user message = %s", raw)
	}
	if err := nc.ch.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("HandleClose(%v), want ErrClosed", err)
	}
	if code := exitCode(t, nc.wait(t)); code != 0 {
		t.Fatalf("worker exit code %d after channel close, want 0", code)
	}
}

// SendHandle passes a connected TCP socket as a user message with a net.Socket handle; Node's
// process.on('message', (m, sock)) answers the client on it.
func TestNodeSendHandleSocket(t *testing.T) {
	checkLeaks(t)
	r := newRecorder(t)
	nc := startNode(t, "recv_socket.js", r)

	client, f := acceptedTCP(t, listenTCP(t))
	result := make(chan bool, 1)
	err := nc.ch.SendHandle("net.Socket", "conn", int(f.Fd()), func(acked bool) { result <- acked })
	f.Close() // SendHandle dup'ed it; closing ours right away is allowed
	if err != nil {
		t.Fatalf("SendHandle: %v", err)
	}

	client.SetReadDeadline(time.Now().Add(waitTimeout))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "hi from node\n" {
		t.Fatalf("client read %q, %v", got, err)
	}
	select {
	case acked := <-result:
		if !acked {
			t.Fatal("onResult(false), want ACK")
		}
	case <-time.After(waitTimeout):
		t.Fatal("no onResult")
	}
	if raw := r.nextRaw(t); raw != `"served"` {
		t.Fatalf("got %s, want \"served\"", raw)
	}
}

// With a HandleWindow, several handles go out before the first ACK (each in its own sendmsg),
// and a Node child that reads them all at once still matches every socket to its own message
// (docs/node-cluster-protocol.md §4.2 and §4.4).
func TestNodePipelinedHandles(t *testing.T) {
	checkLeaks(t)
	const window, n = 4, 6
	goFile := filepath.Join(t.TempDir(), "go")
	r := newRecorder(t)
	nc := startNodeWith(t, "recv_sockets_later.js", r, Options{HandleWindow: window}, "GO_FILE="+goFile)

	ln := listenTCP(t)
	clients := make([]net.Conn, n)
	acks := make(chan bool, n)
	for i := range clients {
		var f *os.File
		clients[i], f = acceptedTCP(t, ln)
		err := nc.ch.SendHandle("net.Socket", map[string]int{"n": i}, int(f.Fd()), func(acked bool) { acks <- acked })
		f.Close()
		if err != nil {
			t.Fatalf("SendHandle %d: %v", i, err)
		}
	}
	// The child reads nothing yet: a full window is in flight, the rest waits for ACKs.
	testutil.WaitFor(t, "a full window of handles in flight", waitTimeout, func() bool {
		nc.ch.mu.Lock()
		defer nc.ch.mu.Unlock()
		return len(nc.ch.inflight) == window && !nc.ch.writing
	})
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != strconv.Itoa(i)+"\n" {
			t.Errorf("client %d read %q, %v; want its own number", i, got, err)
		}
	}
	for i := range n {
		select {
		case acked := <-acks:
			if !acked {
				t.Errorf("handle %d: NACK", i)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%d of %d handles answered", i, n)
		}
	}
}

// The child sends us handles (a listening server, then a connected socket): we ACK each (Node
// would otherwise hold every later message forever) and the handler gets Handle != nil.
func TestNodeSendsHandles(t *testing.T) {
	checkLeaks(t)
	ln := listenTCP(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()

	r := newRecorder(t)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	startNode(t, "send_handles.js", r, "GO_PORT="+port)

	// 1. The server: a listening TCP socket on the port the message names.
	m := r.next(t)
	if m.Handle == nil || m.HandleType != "net.Server" || m.Internal {
		t.Fatalf("server message %s handle=%v type=%q", m.Raw, m.Handle, m.HandleType)
	}
	var msg struct{ Port int }
	if err := json.Unmarshal(m.Raw, &msg); err != nil || msg.Port == 0 {
		t.Fatalf("server message %s: %v", m.Raw, err)
	}
	sa, err := unix.Getsockname(int(m.Handle.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if in4, ok := sa.(*unix.SockaddrInet4); !ok || in4.Port != msg.Port {
		t.Fatalf("received fd is bound to %#v, want port %d", sa, msg.Port)
	}
	if acc, err := unix.GetsockoptInt(int(m.Handle.Fd()), unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
		t.Fatalf("received fd is not listening: %d %v", acc, err)
	}
	m.Handle.Close()
	if raw := r.nextRaw(t); raw != `"after-server"` {
		t.Fatalf("got %s, want \"after-server\" (was the handle ACKed?)", raw)
	}

	// 2. The socket: writing to the fd we got reaches our own accepted end.
	m = r.next(t)
	if m.Handle == nil || m.HandleType != "net.Socket" || string(m.Raw) != `"sock"` {
		t.Fatalf("socket message %s handle=%v type=%q", m.Raw, m.Handle, m.HandleType)
	}
	sock, err := net.FileConn(m.Handle)
	m.Handle.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	var peer net.Conn
	select {
	case peer = <-accepted:
	case <-time.After(waitTimeout):
		t.Fatal("node never connected")
	}
	defer peer.Close()
	if _, err := sock.Write([]byte("via handle\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("via handle\n"))
	peer.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "via handle\n" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	if raw := r.nextRaw(t); raw != `"after-sock"` {
		t.Fatalf("got %s, want \"after-sock\"", raw)
	}
}
