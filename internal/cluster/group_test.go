package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// handleOf returns the group's handle for key (nil if none).
func handleOf(g *Group, key string) *handle {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.handles[key]
}

func pendingLen(h *handle) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pending)
}

// waitIdle waits until no connection is in flight to any of the fakes and every worker of
// every round-robin key of their group is free again. Only the free list is a precise signal:
// onAccepted drops InFlight and closes the daemon's copy (the client sees EOF) before it
// counts the connection and releases the worker.
func waitIdle(t *testing.T, fakes ...*fakeWorker) {
	t.Helper()
	testutil.WaitFor(t, "every newconn to be answered", waitTimeout, func() bool {
		for _, f := range fakes {
			if f.stats().InFlight != 0 {
				return false
			}
		}
		if len(fakes) == 0 {
			return true
		}
		g := fakes[0].g
		g.mu.Lock()
		hs := make([]*handle, 0, len(g.handles))
		for _, h := range g.handles {
			hs = append(hs, h)
		}
		g.mu.Unlock()
		for _, h := range hs {
			h.mu.Lock()
			idle := h.shared || h.idleLocked()
			h.mu.Unlock()
			if !idle {
				return false
			}
		}
		return true
	})
}

func rawEq(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func wantFields(t *testing.T, m *wireMsg, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := m.fields(t); !slices.Equal(got, want) {
		t.Errorf("message %s has fields %v, want exactly %v", m.Raw, got, want)
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int { return testutil.FreePort(t) }

// ---------------------------------------------------------------------------------------------
// 1. queryServer reply shape.

// TestQueryServerRoundRobinReply: the round-robin reply is exactly Node's
// (docs/node-cluster-protocol.md §5.4): errno null, Node's key, ack = the query's seq, sockname
// {"::","IPv6",port}, no fd; the port is really listening; a second worker with the same query
// gets the same key and port; TLS data of the first worker is echoed to later ones even when
// their query's data is null; listening reports Ready.
func TestQueryServerRoundRobinReply(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	b := newFake(t, g, 2, "b", fakeOpts{})
	a.online()
	b.online()

	q := tcpQuery(0)
	seq := a.send(copyMap(q))
	if seq != 1 {
		t.Fatalf("queryServer seq = %d, want 1 (online is 0)", seq)
	}
	r := a.reply(seq)
	if r.Handle != nil {
		t.Fatalf("round-robin reply carries an fd")
	}
	wantFields(t, r, "cmd", "errno", "key", "ack", "data", "sockname", "seq")
	if r.Cmd != "NODE_CLUSTER" {
		t.Errorf("cmd = %q", r.Cmd)
	}
	rawEq(t, "errno", r.Errno, "null")
	rawEq(t, "data", r.Data, "null")
	if r.Key != "null:0:4:undefined:0" {
		t.Errorf("key = %q, want null:0:4:undefined:0", r.Key)
	}
	if r.Sockname == nil || r.Sockname.Port <= 0 {
		t.Fatalf("sockname = %+v", r.Sockname)
	}
	wantName := sockname{Address: "::", Family: "IPv6", Port: r.Sockname.Port}
	if !ipv6Available() {
		wantName = sockname{Address: "0.0.0.0", Family: "IPv4", Port: r.Sockname.Port}
	}
	if *r.Sockname != wantName {
		t.Errorf("sockname = %+v, want %+v", *r.Sockname, wantName)
	}
	port := r.Sockname.Port
	a.listening(q, port)
	testutil.WaitFor(t, "listening to mark the worker ready", waitTimeout, func() bool { return a.ctl.ready.Load() == 1 })
	if got := a.stats().Listening; !slices.Equal(got, []string{strconv.Itoa(port)}) {
		t.Errorf("Stats().Listening = %v, want [%d]", got, port)
	}

	// The port is really listening, and a is in rotation.
	if got := served(t, port); got != "a" {
		t.Errorf("served by %q, want a", got)
	}

	// Same query from b: same key, same port, still one listener.
	r2 := b.query(q)
	if r2.Key != r.Key || r2.Sockname == nil || *r2.Sockname != *r.Sockname {
		t.Errorf("second worker's reply %s differs from the first's %s", r2.Raw, r.Raw)
	}
	if *r2.Ack != 1 {
		t.Errorf("b's reply ack = %d, want 1", *r2.Ack)
	}
	if ls := g.Listeners(); len(ls) != 1 {
		t.Errorf("Listeners() = %v, want one", ls)
	}

	// TLS: index 1 is a new key and a new port; a's data is echoed to b and c.
	const ticket = `{"ticketKeys":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}`
	tq := tcpQuery(0)
	tq["index"] = 1
	tq["data"] = json.RawMessage(ticket)
	ra := a.query(tq)
	rawEq(t, "TLS reply data (a)", ra.Data, ticket)
	if ra.Key != "null:0:4:undefined:1" {
		t.Errorf("key = %q, want null:0:4:undefined:1", ra.Key)
	}
	if ra.Sockname == nil || ra.Sockname.Port == port {
		t.Errorf("index 1 must get its own port, got %+v (index 0: %d)", ra.Sockname, port)
	}
	tq["data"] = nil
	rb := b.query(tq)
	rawEq(t, "TLS reply data for a null query (b)", rb.Data, ticket)
	c := newFake(t, g, 3, "c", fakeOpts{})
	c.online()
	tq["data"] = json.RawMessage(`{"ticketKeys":"ff"}`)
	rc := c.query(tq)
	rawEq(t, "TLS reply data for a different query (c)", rc.Data, ticket)
}

// TestQueryServerData: the first non-null data stored for a key is what every worker that sent
// data gets back, also when the key was created by a query without data, and when workers query
// at the same time. Under -race this also checks that the key's data is not read and written
// under different locks: the first phase (a null query creates the key, a query with data
// follows) lets the race detector see it on most runs.
func TestQueryServerData(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	const n = 8
	fakes := make([]*fakeWorker, n)
	for i := range fakes {
		fakes[i] = newFake(t, g, i+1, fmt.Sprintf("w%d", i), fakeOpts{})
	}
	const ticket = `{"ticketKeys":"first"}`
	q := tcpQuery(0)
	q["index"] = 1
	rawEq(t, "data for a null query", fakes[0].query(q).Data, "null")
	q["data"] = json.RawMessage(ticket)
	rawEq(t, "data for the first query with data", fakes[1].query(q).Data, ticket)
	q["data"] = nil
	rawEq(t, "data for a later null query", fakes[2].query(q).Data, ticket)

	seqs := make([]int64, n)
	for i, f := range fakes {
		q := tcpQuery(0)
		if i%2 == 1 {
			q["data"] = json.RawMessage(fmt.Sprintf(`{"ticketKeys":"%02d"}`, i))
		}
		seqs[i] = f.send(q)
	}
	var stored string
	for i, f := range fakes {
		r := f.reply(seqs[i])
		if !isNull(r.Errno) {
			t.Fatalf("%s: %s", f.name, r.Raw)
		}
		if i%2 == 0 {
			continue
		}
		if stored == "" {
			stored = string(r.Data)
		}
		if string(r.Data) != stored {
			t.Errorf("%s got data %s, another worker got %s", f.name, r.Data, stored)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// 2. Round-robin order.

// TestRoundRobinOrder: sequential connections go to the workers in turn, in the order they
// listened, and each handed-over fd is a working TCP connection in both directions.
func TestRoundRobinOrder(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	var fakes []*fakeWorker
	for i, name := range []string{"a", "b", "c"} {
		f := newFake(t, g, i+1, name, fakeOpts{mode: modeEcho})
		f.online()
		fakes = append(fakes, f)
	}
	port := fakes[0].listen(0)
	for _, f := range fakes[1:] {
		if p := f.listen(0); p != port {
			t.Fatalf("%s listens on %d, want %d", f.name, p, port)
		}
	}
	var got []string
	for i := range 9 {
		c := dialTCP(t, port)
		req := fmt.Sprintf("req%d", i)
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		ans, err := readAnswer(t, c)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		name, echoed, _ := strings.Cut(ans, " ")
		if echoed != req {
			t.Errorf("client %d: answer %q does not echo %q", i, ans, req)
		}
		got = append(got, name)
		c.Close()
		waitIdle(t, fakes...) // the worker is free again before the next client
	}
	want := []string{"a", "b", "c", "a", "b", "c", "a", "b", "c"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	for _, f := range fakes {
		if s := f.stats(); s.Connections != 3 || s.Refused != 0 || s.InFlight != 0 {
			t.Errorf("%s: Stats %+v, want 3 connections", f.name, s)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// 3. NACK.

// TestNackRedispatch: a worker that answers NODE_HANDLE_NACK (it never got the fd) does not
// lose the connection: it goes to another worker. A NACK is not a refusal.
func TestNackRedispatch(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{raw: true, mode: modeNack})
	b := newFake(t, g, 2, "b", fakeOpts{})
	a.online()
	b.online()
	port := a.listen(0)
	b.listen(0)
	const n = 5
	for i := range n {
		if got := served(t, port); got != "b" {
			t.Fatalf("client %d served by %q, want b", i, got)
		}
		waitIdle(t, a, b)
	}
	// a is first in rotation for the first client; later its place depends on whether b
	// answers before a's NACK has been handled.
	if got := a.nacked.Load(); got < 1 || got > n {
		t.Errorf("a NACKed %d connections, want 1..%d", got, n)
	}
	if s := a.stats(); s.Connections != 0 || s.Refused != 0 || s.InFlight != 0 {
		t.Errorf("a: Stats %+v, want nothing counted", s)
	}
	if s := b.stats(); s.Connections != n {
		t.Errorf("b: Stats %+v, want %d connections", s, n)
	}
}

// TestNackOnlyWorkerIsBounded: with only a worker that NACKs every handle (a worker whose handle
// slot is wedged NACKs every later handle for good, docs/node-cluster-protocol.md §4.2), a
// connection must not bounce between the daemon and that worker forever.
func TestNackOnlyWorkerIsBounded(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{raw: true, mode: modeNack})
	a.online()
	port := a.listen(0)
	c := dialTCP(t, port)
	// The NACKing worker (its handle slot is wedged, docs/node-cluster-protocol.md §4.2) leaves
	// the rotation after one NACK and is asked to disconnect (so the supervisor replaces it); the
	// connection waits.
	deadline := time.Now().Add(waitTimeout)
	for a.nacked.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := a.nacked.Load(); n != 1 {
		t.Fatalf("the connection was handed to the NACKing worker %d times, want 1", n)
	}
	// A healthy worker on the same key serves the waiting connection.
	b := newFake(t, g, 2, "b", fakeOpts{mode: modeAccept})
	b.online()
	b.listen(0)
	if got, err := readAnswer(t, c); err != nil || strings.TrimSpace(got) != "b" {
		t.Fatalf("waiting connection: %q, %v; want it served by b", got, err)
	}
	if n := a.nacked.Load(); n != 1 {
		t.Fatalf("the NACKing worker got %d connections, want 1", n)
	}
}

// ---------------------------------------------------------------------------------------------
// 4. accepted:false everywhere.

// TestAllWorkersRefuse: when every worker answers accepted:false, the connection is closed
// after a bounded number of tries (max(4, 2 per worker)) instead of bouncing forever
// (docs/node-cluster-protocol.md §6.2 and §7.4), and the refusals are counted per slot.
func TestAllWorkersRefuse(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{mode: modeRefuse})
	b := newFake(t, g, 2, "b", fakeOpts{mode: modeRefuse})
	a.online()
	b.online()
	port := a.listen(0)
	b.listen(0)

	c := dialTCP(t, port)
	expectClosed(t, c)
	waitIdle(t, a, b)
	// Who gets which try depends on which reader goroutine handles its refusal first; the
	// total does not.
	sa, sb := a.stats(), b.stats()
	if sa.Refused+sb.Refused != 4 || sa.Refused == 0 || sa.Connections+sb.Connections != 0 {
		t.Errorf("Stats a=%+v b=%+v, want 4 refusals in all (max(4, 2 per worker)), a's first, no connections", sa, sb)
	}
	if n := a.refused.Load() + b.refused.Load(); n != 4 {
		t.Errorf("the workers were offered the connection %d times, want 4", n)
	}
	h := handleOf(g, "null:0:4:undefined:0")
	h.mu.Lock()
	dropped := h.dropped
	h.mu.Unlock()
	if dropped != 1 {
		t.Errorf("dropped = %d, want 1", dropped)
	}

	// The key keeps working once a worker accepts again.
	b.setMode(modeAccept)
	if got := served(t, port); got != "b" {
		t.Errorf("served by %q after b accepts again, want b", got)
	}
}

// ---------------------------------------------------------------------------------------------
// 5. Stuck worker.

// TestStuckWorkerDoesNotStall: a worker that never answers newconn gets no more connections
// while the others keep up (the worker with the fewest unanswered goes first), and never more
// than HandoffWindow (TestCloseListenersClosesPortAndPending); the others serve everything else.
func TestStuckWorkerDoesNotStall(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{mode: modeStuck})
	b := newFake(t, g, 2, "b", fakeOpts{})
	a.online()
	b.online()
	port := a.listen(0)
	b.listen(0)

	c0 := dialTCP(t, port)
	if e := a.nextConn(); e.mode != modeStuck {
		t.Fatalf("first connection went to a in mode %d", e.mode)
	}
	for i := range 20 {
		if got := served(t, port); got != "b" {
			t.Fatalf("client %d served by %q, want b", i, got)
		}
	}
	if n := a.heldCount(); n != 1 {
		t.Errorf("the stuck worker holds %d connections, want 1", n)
	}
	testutil.WaitFor(t, "b's answers to be counted", waitTimeout, func() bool { return b.stats().Connections == 20 })
	if s := a.stats(); s.InFlight != 1 || s.Connections != 0 {
		t.Errorf("a: Stats %+v, want 1 in flight", s)
	}
	// The stuck client is not answered while its worker lives; when it dies, it is closed.
	a.waitAcked()
	a.die()
	expectClosed(t, c0)
}

// TestStaleWorkerGetsNoMore: a worker that has left a hand-off unanswered for staleAfter gets
// no more connections, even with room in its window: they wait for a worker that answers, and
// go to it as soon as one does.
func TestStaleWorkerGetsNoMore(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	g.staleAfter = 50 * time.Millisecond
	a := newFake(t, g, 1, "a", fakeOpts{mode: modeStuck})
	a.online()
	port := a.listen(0)
	dialTCP(t, port)
	a.nextConn()
	h := handleOf(g, "null:0:4:undefined:0")
	time.Sleep(2 * g.staleAfter) // the hand-off must age; nothing else is waited for here
	c := dialTCP(t, port)
	testutil.WaitFor(t, "the connection to wait in the daemon", waitTimeout, func() bool { return pendingLen(h) == 1 })
	if n := a.heldCount(); n != 1 {
		t.Fatalf("the stale worker holds %d connections, want 1", n)
	}
	b := newFake(t, g, 2, "b", fakeOpts{})
	b.online()
	b.listen(0)
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if ans, err := readAnswer(t, c); err != nil || strings.TrimSpace(ans) != "b" {
		t.Fatalf("waiting client: answer %q, %v; want it served by b", ans, err)
	}
}

// ---------------------------------------------------------------------------------------------
// 6. Worker death with a connection in flight.

// TestWorkerDiesWithConnection: when a worker's channel closes, a connection it ACKed but did
// not answer is closed (it may have started on it), and one it never ACKed goes to another
// worker. The others keep working.
func TestWorkerDiesWithConnection(t *testing.T) {
	for _, tc := range []struct {
		name       string
		raw        bool
		mode       newconnMode
		wantServed bool
	}{
		{"acked", false, modeStuck, false},
		{"unacked", true, modeNoAck, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			g := newTestGroup(t, "")
			a := newFake(t, g, 1, "a", fakeOpts{raw: tc.raw, mode: tc.mode})
			b := newFake(t, g, 2, "b", fakeOpts{})
			a.online()
			b.online()
			port := a.listen(0)
			b.listen(0)

			c0 := dialTCP(t, port)
			if e := a.nextConn(); e.mode != tc.mode {
				t.Fatalf("first connection went to a in mode %d", e.mode)
			}
			// b serves others meanwhile.
			if got := served(t, port); got != "b" {
				t.Fatalf("served by %q, want b", got)
			}
			if !tc.raw {
				a.waitAcked()
			}
			a.die()
			if n := a.ctl.disconnected.Load(); n != 1 {
				t.Errorf("Disconnected reported %d times, want 1", n)
			}
			if tc.wantServed {
				ans, err := readAnswer(t, c0)
				if err != nil || strings.TrimSpace(ans) != "b" {
					t.Errorf("un-ACKed connection: answer %q, %v; want it re-dispatched to b", ans, err)
				}
			} else {
				expectClosed(t, c0)
			}
			for i := range 3 {
				if got := served(t, port); got != "b" {
					t.Fatalf("client %d after the death served by %q, want b", i, got)
				}
			}
			waitIdle(t, a, b)
			if s := a.stats(); s.InFlight != 0 || s.Connections != 0 {
				t.Errorf("a: Stats %+v after its death", s)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// 7. Disconnect.

// TestDisconnect: Disconnect() takes the worker out of rotation at once and sends Node's
// disconnect request (no ack field); a worker-initiated exitedAfterDisconnect is acked with
// {"ack":seq} and also leaves rotation, and a later queryServer from it is not answered.
func TestDisconnect(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	b := newFake(t, g, 2, "b", fakeOpts{})
	c := newFake(t, g, 3, "c", fakeOpts{})
	for _, f := range []*fakeWorker{a, b, c} {
		f.online()
	}
	port := a.listen(0)
	b.listen(0)
	c.listen(0)

	if !a.w.Disconnect() {
		t.Fatalf("Disconnect() = false for a connected worker")
	}
	for i := range 4 {
		if got := served(t, port); got == "a" {
			t.Fatalf("client %d served by a after Disconnect()", i)
		}
	}
	m := a.next()
	wantFields(t, m, "cmd", "act", "seq")
	if m.Cmd != "NODE_CLUSTER" || m.Act != "disconnect" || m.Handle != nil {
		t.Errorf("disconnect request = %s", m.Raw)
	}
	// Node's worker closes its servers (the primary ignores it), then the channel.
	a.send(map[string]any{"act": "close", "key": "null:0:4:undefined:0"})
	a.disconnectGracefully()
	if n := a.ctl.disconnected.Load(); n != 1 {
		t.Errorf("Disconnected reported %d times, want 1", n)
	}
	if a.w.Disconnect() {
		t.Errorf("Disconnect() = true for a worker whose channel has closed")
	}

	// b disconnects on its own (cluster.worker.disconnect()).
	b.send(map[string]any{"act": "close", "key": "null:0:4:undefined:0"})
	seq := b.send(map[string]any{"act": "exitedAfterDisconnect"})
	ack := b.reply(seq)
	wantFields(t, ack, "cmd", "ack", "seq")
	if ack.Cmd != "NODE_CLUSTER" || ack.Handle != nil {
		t.Errorf("exitedAfterDisconnect ack = %s", ack.Raw)
	}
	// A queryServer after exitedAfterDisconnect is not answered (Node's primary does not
	// either): the daemon handles messages in order, so the ack of a later message arriving
	// with nothing before it proves it.
	qseq := b.send(tcpQuery(0))
	seq2 := b.send(map[string]any{"act": "exitedAfterDisconnect"})
	b.reply(seq2)
	for _, m := range b.stash {
		if m.Ack != nil && *m.Ack == qseq {
			t.Errorf("queryServer after exitedAfterDisconnect was answered: %s", m.Raw)
		}
	}
	for i := range 4 {
		if got := served(t, port); got != "c" {
			t.Fatalf("client %d served by %q, want c (the only worker left)", i, got)
		}
	}
	b.disconnectGracefully()
}

// ---------------------------------------------------------------------------------------------
// 8. The listener belongs to the app.

// TestListenerSurvivesLastWorker: however the last worker leaves a key, the port stays open;
// a client connecting meanwhile waits and is served by the next worker that listens on the
// same key, which gets the same port.
func TestListenerSurvivesLastWorker(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(t *testing.T, a *fakeWorker)
	}{
		{"close", func(t *testing.T, a *fakeWorker) {
			a.send(map[string]any{"act": "close", "key": "null:0:4:undefined:0"})
			// Messages are handled in order: once a later query is answered, close was handled.
			q := tcpQuery(0)
			q["index"] = 1
			a.query(q)
		}},
		{"died", func(t *testing.T, a *fakeWorker) { a.die() }},
		{"Disconnect", func(t *testing.T, a *fakeWorker) {
			if !a.w.Disconnect() {
				t.Fatal("Disconnect() = false")
			}
		}},
		{"exitedAfterDisconnect", func(t *testing.T, a *fakeWorker) {
			a.reply(a.send(map[string]any{"act": "exitedAfterDisconnect"}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			g := newTestGroup(t, "")
			a := newFake(t, g, 1, "a", fakeOpts{})
			a.online()
			port := a.listen(0)
			if got := served(t, port); got != "a" {
				t.Fatalf("served by %q, want a", got)
			}
			waitIdle(t, a)
			tc.leave(t, a)

			c := dialTCP(t, port) // succeeds: the listener is still there
			b := newFake(t, g, 2, "b", fakeOpts{})
			b.online()
			if p := b.listen(0); p != port {
				t.Errorf("the next worker got port %d, want the same %d", p, port)
			}
			ans, err := readAnswer(t, c)
			if err != nil || strings.TrimSpace(ans) != "b" {
				t.Errorf("waiting client: answer %q, %v; want it served by b", ans, err)
			}
			if a.stats().Connections != 1 {
				t.Errorf("a: Stats %+v", a.stats())
			}
		})
	}
}

// TestCloseListenersClosesPortAndPending: CloseListeners closes the port (connect refused) and
// the connections waiting for a worker, which wait in the kernel's backlog (the daemon accepts
// no more than a worker can take at once: maxPending); a later listen opens the key again.
func TestCloseListenersClosesPortAndPending(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	g.staleAfter = time.Hour // however slow the machine, the stuck worker gets a full window
	a := newFake(t, g, 1, "a", fakeOpts{mode: modeStuck})
	a.online()
	port := a.listen(0)
	// The stuck worker takes a full window; the next two wait in the backlog.
	held := make([]net.Conn, HandoffWindow)
	for i := range held {
		held[i] = dialTCP(t, port)
		a.nextConn()
	}
	c1 := dialTCP(t, port)
	c2 := dialTCP(t, port)
	h := handleOf(g, "null:0:4:undefined:0")
	if n := pendingLen(h); n != 0 {
		t.Errorf("%d connections accepted with every window full, want none", n)
	}

	closeListeners(t, g)
	expectClosed(t, c1)
	expectClosed(t, c2)
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial after CloseListeners: %v, want connection refused", err)
	}
	if ls := g.Listeners(); len(ls) != 0 {
		t.Errorf("Listeners() = %v after CloseListeners", ls)
	}
	// The held ones are still the stuck worker's: the daemon closes its copies when the
	// worker answers or dies (cleanup).

	// The key opens again (listen(0): on a new port).
	b := newFake(t, g, 2, "b", fakeOpts{})
	b.online()
	p2 := b.listen(0)
	if got := served(t, p2); got != "b" {
		t.Errorf("served by %q after reopening, want b", got)
	}
}

// TestCloseListenersReturnsWhileAcceptBlocked: CloseListeners returns, and the port closes,
// while accept loops are waiting for a connection (the normal state of a serving app), for TCP
// and unix listeners alike. This depends on the listening sockets staying non-blocking: an
// accept4 blocked in the kernel would not be interrupted by closing the os.File.
func TestCloseListenersReturnsWhileAcceptBlocked(t *testing.T) {
	checkLeaks(t)
	dir, err := os.MkdirTemp("", "corral-cl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "app.sock")
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	a.online()
	port := a.listen(0)
	a.query(map[string]any{"act": "queryServer", "index": 0, "data": nil, "address": path,
		"port": -1, "addressType": -1, "backlog": 0})
	if got := served(t, port); got != "a" {
		t.Fatalf("served by %q", got)
	}
	waitIdle(t, a)
	for _, key := range []string{"null:0:4:undefined:0", path + ":-1:-1:undefined:0"} {
		h := handleOf(g, key)
		var nonblock bool
		h.sock.rc.Control(func(fd uintptr) {
			fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
			nonblock = err == nil && fl&unix.O_NONBLOCK != 0
		})
		if !nonblock {
			t.Errorf("listening socket of %s is in blocking mode", key)
		}
	}
	closeListeners(t, g)
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial after CloseListeners: %v, want connection refused", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after CloseListeners: %v, want it removed", err)
	}
}

// ---------------------------------------------------------------------------------------------
// 9. Error replies.

// TestQueryServerErrors: a listen the daemon cannot honour gets Node's error reply (errno,
// key, ack, data; no fd, no sockname) and no socket; the worker is not put in rotation, and
// the next identical query retries (Node forgets a failed key).
func TestQueryServerErrors(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	e := newFake(t, g, 2, "e", fakeOpts{})
	a.online()
	e.online()
	var port int
	for range 5 { // a free port may be taken by someone else before we bind it
		p := freePort(t)
		r := a.query(tcpQuery(p))
		if isNull(r.Errno) {
			port = p
			a.listening(tcpQuery(p), p)
			break
		}
	}
	if port == 0 {
		t.Fatal("could not listen on a fixed port")
	}
	long := "/tmp/" + strings.Repeat("x", 120) + ".sock"
	for _, tc := range []struct {
		name    string
		q       map[string]any
		key     string
		errno   int
		setData bool
	}{
		{"index 1 on the same port",
			map[string]any{"index": 1, "address": nil, "port": port, "addressType": 4, "backlog": 0},
			fmt.Sprintf("null:%d:4:undefined:1", port), -98, false},
		{"0.0.0.0 on the same port",
			map[string]any{"index": 0, "address": "0.0.0.0", "port": port, "addressType": 4, "flags": 0, "backlog": 0},
			fmt.Sprintf("0.0.0.0:%d:4:undefined:0", port), -98, true},
		{":: on the same port",
			map[string]any{"index": 0, "address": "::", "port": port, "addressType": 6, "flags": 0, "backlog": 0},
			fmt.Sprintf(":::%d:6:undefined:0", port), -98, false},
		{"listen({fd: 3})",
			map[string]any{"index": 0, "address": nil, "port": nil, "addressType": nil, "fd": 3, "backlog": 0},
			"null:null:null:3:0", -22, false},
		{"unix path too long",
			map[string]any{"index": 0, "address": long, "port": -1, "addressType": -1, "backlog": 0},
			long + ":-1:-1:undefined:0", -22, false},
		{"port out of range",
			map[string]any{"index": 0, "address": nil, "port": 70000, "addressType": 4, "backlog": 0},
			"null:70000:4:undefined:0", -22, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := copyMap(tc.q)
			q["act"] = "queryServer"
			q["data"] = nil
			wantData := "null"
			if tc.setData {
				wantData = `{"ticketKeys":"ab"}`
				q["data"] = json.RawMessage(wantData)
			}
			for try := range 2 { // Node forgets the key: the second query fails the same way
				r := e.query(q)
				if r.Handle != nil {
					t.Fatalf("error reply carries an fd")
				}
				wantFields(t, r, "cmd", "errno", "key", "ack", "data", "seq")
				rawEq(t, "errno", r.Errno, strconv.Itoa(tc.errno))
				rawEq(t, "data", r.Data, wantData)
				if r.Key != tc.key {
					t.Errorf("try %d: key = %q, want %q", try, r.Key, tc.key)
				}
			}
			if h := handleOf(g, tc.key); h != nil {
				t.Errorf("a handle was kept for the failed key %q", tc.key)
			}
		})
	}
	if ls := g.Listeners(); len(ls) != 1 {
		t.Errorf("Listeners() = %v, want only a's", ls)
	}
	// e is in no rotation: every client goes to a.
	for range 3 {
		if got := served(t, port); got != "a" {
			t.Errorf("served by %q, want a", got)
		}
		waitIdle(t, a)
	}
}

// ---------------------------------------------------------------------------------------------
// 10. Shared policy and UDP.

// sockInfo describes a socket fd received by a fake.
type sockInfo struct {
	port      int
	typ       int
	listening bool
	ino       uint64
}

func inspectSocket(t *testing.T, f *os.File) sockInfo {
	t.Helper()
	fd := int(f.Fd())
	var si sockInfo
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		si.port = a.Port
	case *unix.SockaddrInet6:
		si.port = a.Port
	default:
		t.Fatalf("received socket has address %T", sa)
	}
	if si.typ, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		t.Fatal(err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		t.Fatal(err)
	}
	si.listening = acc != 0
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	si.ino = st.Ino
	return si
}

// TestSharedPolicy: with the shared policy the reply is a NODE_HANDLE (net.Native) carrying a
// bound, not listening socket, errno 0, and every worker gets the same socket; UDP always gets
// a shared dgram.Native handle, whatever the policy.
func TestSharedPolicy(t *testing.T) {
	udp := map[string]any{"act": "queryServer", "index": 0, "data": nil, "address": "0.0.0.0",
		"port": 0, "addressType": "udp4", "fd": -1, "flags": 0}
	for _, tc := range []struct {
		name     string
		policy   string
		q        map[string]any
		typ      string
		sockType int
		key      string
	}{
		{"shared tcp", spec.PolicyShared, tcpQuery(0), "net.Native", unix.SOCK_STREAM, "null:0:4:undefined:0"},
		{"shared udp4", spec.PolicyShared, udp, "dgram.Native", unix.SOCK_DGRAM, "0.0.0.0:0:udp4:-1:0"},
		{"round-robin udp4", spec.PolicyRoundRobin, udp, "dgram.Native", unix.SOCK_DGRAM, "0.0.0.0:0:udp4:-1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			g := newTestGroup(t, tc.policy)
			a := newFake(t, g, 1, "a", fakeOpts{})
			b := newFake(t, g, 2, "b", fakeOpts{})
			a.online()
			b.online()
			var infos []sockInfo
			var files []*os.File
			for _, f := range []*fakeWorker{a, b} {
				seq := f.send(copyMap(tc.q))
				r := f.reply(seq)
				if r.Handle == nil {
					t.Fatalf("%s: shared reply without an fd: %s", f.name, r.Raw)
				}
				defer r.Handle.Close()
				if r.HandleType != tc.typ {
					t.Errorf("handle type %q, want %q", r.HandleType, tc.typ)
				}
				wantFields(t, r, "cmd", "errno", "key", "ack", "data", "seq")
				rawEq(t, "errno", r.Errno, "0")
				rawEq(t, "data", r.Data, "null")
				if r.Key != tc.key || *r.Ack != seq {
					t.Errorf("key %q ack %d, want %q %d", r.Key, *r.Ack, tc.key, seq)
				}
				si := inspectSocket(t, r.Handle)
				if si.typ != tc.sockType || si.listening || si.port == 0 {
					t.Errorf("%s got socket %+v, want a bound, not listening socket of type %d", f.name, si, tc.sockType)
				}
				infos = append(infos, si)
				files = append(files, r.Handle)
			}
			if infos[0] != infos[1] {
				t.Errorf("the workers got different sockets: %+v, %+v", infos[0], infos[1])
			}
			if tc.policy == spec.PolicyShared {
				g.mu.Lock()
				h := g.handles[tc.key]
				g.mu.Unlock()
				if fd := h.sock.fd(); pollerWatches(t, fd) {
					t.Errorf("the daemon's poller watches the shared socket (fd %d): every connection would wake the daemon", fd)
				}
			}
			port := infos[0].port
			if tc.sockType == unix.SOCK_STREAM {
				// A worker listens on it itself and accepts.
				fd := int(files[1].Fd())
				if err := unix.Listen(fd, 16); err != nil {
					t.Fatal(err)
				}
				c := dialTCP(t, port)
				nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
				if err != nil {
					t.Fatalf("accept on the shared socket: %v", err)
				}
				unix.Write(nfd, []byte("b\n"))
				unix.Close(nfd)
				if ans, _ := readAnswer(t, c); ans != "b\n" {
					t.Errorf("answer %q", ans)
				}
			} else {
				c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				fd := int(files[0].Fd())
				unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: int64(waitTimeout / time.Second)})
				buf := make([]byte, 16)
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil || string(buf[:n]) != "ping" {
					t.Errorf("datagram on the shared socket: %q, %v", buf[:n], err)
				}
			}
			a.listening(tc.q, port)
			testutil.WaitFor(t, "listening to mark a ready", waitTimeout, func() bool { return a.ctl.ready.Load() == 1 })
		})
	}
}

// ---------------------------------------------------------------------------------------------
// 11. Unix path listeners.

// TestUnixPathListener: listen(path) creates the socket file (chmod for readableAll /
// writableAll), replaces a stale one left by a closed listener, refuses a live one with
// EADDRINUSE, and CloseListeners removes the file.
func TestUnixPathListener(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string) // before the query
		perm    bool
		errno   int
	}{
		{"fresh", nil, false, 0},
		{"readableAll writableAll", nil, true, 0},
		{"stale socket replaced", func(t *testing.T, path string) {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			l.SetUnlinkOnClose(false)
			l.Close()
			if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSocket == 0 {
				t.Fatalf("no stale socket file: %v", err)
			}
		}, false, 0},
		{"live socket kept", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, false, -98},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			dir, err := os.MkdirTemp("", "corral-cl")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			path := filepath.Join(dir, "app.sock")
			if tc.prepare != nil {
				tc.prepare(t, path)
			}
			g := newTestGroup(t, "")
			a := newFake(t, g, 1, "a", fakeOpts{})
			a.online()
			q := map[string]any{"act": "queryServer", "index": 0, "data": nil, "address": path,
				"port": -1, "addressType": -1, "backlog": 0}
			if tc.perm {
				q["readableAll"] = true
				q["writableAll"] = true
			}
			r := a.query(q)
			wantFields(t, r, "cmd", "errno", "key", "ack", "data", "seq") // no sockname for paths
			if want := path + ":-1:-1:undefined:0"; r.Key != want {
				t.Errorf("key = %q, want %q", r.Key, want)
			}
			if tc.errno != 0 {
				rawEq(t, "errno", r.Errno, strconv.Itoa(tc.errno))
				if _, err := os.Lstat(path); err != nil {
					t.Errorf("the live socket file was removed: %v", err)
				}
				return
			}
			rawEq(t, "errno", r.Errno, "null")
			st, err := os.Lstat(path)
			if err != nil || st.Mode()&os.ModeSocket == 0 {
				t.Fatalf("socket file: %v %v", st, err)
			}
			if tc.perm && st.Mode().Perm() != 0o666 {
				t.Errorf("socket file mode %v, want 0666", st.Mode().Perm())
			}
			a.listening(q, 0)
			c, err := net.DialTimeout("unix", path, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ans, err := readAnswer(t, c); err != nil || ans != "a\n" {
				t.Errorf("answer %q, %v", ans, err)
			}
			closeListeners(t, g)
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket file after CloseListeners: %v, want it removed", err)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Wiring.

// TestQueryBeforeAttach: the supervisor opens the channel (which starts reading) before it
// calls Attach. A queryServer read in between must still be answered once the worker is
// attached: Node never retries it, and an unanswered listen() hangs forever
// (docs/node-cluster-protocol.md §8.8).
func TestQueryBeforeAttach(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{noAttach: true})
	a.online()
	seq := a.send(tcpQuery(0))
	// Whether the daemon's reader reaches the queryServer before or after Attach, the reply
	// must come: attach a little later, from another goroutine.
	go func() {
		time.Sleep(50 * time.Millisecond)
		a.w.Attach(a.dch, 10001)
	}()
	for range 2 { // online, queryServer
		select {
		case <-a.dipc.internal:
		case <-time.After(waitTimeout):
			t.Fatal("the daemon did not read the messages")
		}
	}
	a.reply(seq)
}

// TestStrayClusterMessages: things a worker may send that are not part of the protocol do
// not disturb the daemon: handles attached to cluster messages are closed, unknown acts and
// accepted replies for unknown seqs are ignored.
func TestStrayClusterMessages(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	a.online()
	port := a.listen(0)
	a.send(map[string]any{"act": "nonsense"})
	a.send(map[string]any{"ack": 999, "accepted": true})
	a.send(map[string]any{"ack": 998, "accepted": false})
	// A handle on a cluster message: the daemon must ACK it (else the worker's send queue
	// freezes, docs/node-cluster-protocol.md §4.3) and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	acked := make(chan bool, 1)
	err = a.cch.SendHandle("net.Native", map[string]any{"cmd": "NODE_CLUSTER", "act": "online", "seq": 50},
		int(lf.Fd()), func(ok bool) { acked <- ok })
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-acked:
		if !ok {
			t.Errorf("the daemon NACKed a handle it received")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the daemon did not answer a handle")
	}
	if got := served(t, port); got != "a" {
		t.Errorf("served by %q", got)
	}
	if n := a.dipc.bad.Load(); n != 0 {
		t.Errorf("%d bad lines", n)
	}
}

// TestAnswerAfterDisconnect: a newconn answered after Disconnect() (Node may process the
// disconnect first and refuse, docs/node-cluster-protocol.md §8.9) is re-dispatched when refused
// and counted when accepted; either way the disconnecting worker gets nothing new.
func TestAnswerAfterDisconnect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		accepted bool
		servedBy string
	}{
		{"refused", false, "b"},
		{"accepted", true, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			g := newTestGroup(t, "")
			a := newFake(t, g, 1, "a", fakeOpts{mode: modeStuck})
			b := newFake(t, g, 2, "b", fakeOpts{})
			a.online()
			b.online()
			port := a.listen(0)
			b.listen(0)
			c0 := dialTCP(t, port)
			a.nextConn()
			if !a.w.Disconnect() {
				t.Fatal("Disconnect() = false")
			}
			if m := a.next(); m.Act != "disconnect" {
				t.Fatalf("got %s, want the disconnect request", m.Raw)
			}
			a.answerHeld(tc.accepted)
			ans, err := readAnswer(t, c0)
			if err != nil || strings.TrimSpace(ans) != tc.servedBy {
				t.Errorf("answer %q, %v; want served by %s", ans, err, tc.servedBy)
			}
			want := Stats{WorkerID: 1, Listening: []string{strconv.Itoa(port)}, Connections: 1}
			if !tc.accepted {
				want.Connections, want.Refused = 0, 1
			}
			// The counters are updated after the daemon closes its copy of the connection.
			testutil.WaitFor(t, fmt.Sprintf("a's Stats to be %+v (now %+v)", want, a.stats()), waitTimeout, func() bool {
				s := a.stats()
				return s.Connections == want.Connections && s.Refused == want.Refused && s.InFlight == 0
			})
			if got := served(t, port); got != "b" {
				t.Errorf("next client served by %q, want b", got)
			}
			if n := len(a.conns); n != 0 {
				t.Errorf("the disconnecting worker got %d more newconns", n)
			}
		})
	}
}

// TestReloadKeepsSlotListening: a reload runs the new worker of a process slot next to the old
// one, then disconnects the old one. The slot's Stats must still list what the new worker
// listens on once the old one has ended.
func TestReloadKeepsSlotListening(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	old := newFake(t, g, 1, "old", fakeOpts{})
	old.online()
	port := old.listen(0)
	// Each run's messages are read on its own goroutine: let the old run's 'listening' land
	// first, as it does in a real reload (the old run listened long before).
	testutil.WaitFor(t, "the old run to be ready", waitTimeout, func() bool { return old.ctl.ready.Load() == 1 })
	next := newFake(t, g, 1, "new", fakeOpts{})
	next.online()
	next.listen(0)
	testutil.WaitFor(t, "the new run to be ready", waitTimeout, func() bool { return next.ctl.ready.Load() == 1 })
	if !old.w.Disconnect() {
		t.Fatal("Disconnect() = false")
	}
	old.disconnectGracefully()
	s := g.Stats()[1]
	if !slices.Equal(s.Listening, []string{strconv.Itoa(port)}) {
		t.Errorf("slot Stats after the reload: Listening %v, want [%d]", s.Listening, port)
	}
	if s.WorkerID != next.w.(*worker).id {
		t.Errorf("slot WorkerID %d, want the new run's %d", s.WorkerID, next.w.(*worker).id)
	}
}

// TestQueryServerSockname: the sockname of a round-robin reply for each way of listening on
// TCP (docs/node-cluster-protocol.md §5.3) is what Node's server.address() would say.
func TestQueryServerSockname(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, "")
	a := newFake(t, g, 1, "a", fakeOpts{})
	a.online()
	wild := sockname{Address: "::", Family: "IPv6"}
	if !ipv6Available() {
		wild = sockname{Address: "0.0.0.0", Family: "IPv4"}
	}
	cases := []struct {
		name string
		q    map[string]any
		key  string
		want sockname
		dial string
	}{
		{"listen(0)", tcpQuery(0), "null:0:4:undefined:0", wild, "127.0.0.1"},
		{"listen(0, 127.0.0.1)", map[string]any{"index": 0, "address": "127.0.0.1", "port": 0, "addressType": 4, "flags": 0, "backlog": 0},
			"127.0.0.1:0:4:undefined:0", sockname{Address: "127.0.0.1", Family: "IPv4"}, "127.0.0.1"},
	}
	if ipv6Available() {
		cases = append(cases, struct {
			name string
			q    map[string]any
			key  string
			want sockname
			dial string
		}{"listen({host: ::1, ipv6Only, backlog: 64})", map[string]any{"index": 0, "address": "::1", "port": 0, "addressType": 6, "flags": 1, "backlog": 64},
			"::1:0:6:undefined:0", sockname{Address: "::1", Family: "IPv6"}, "::1"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := copyMap(tc.q)
			q["act"] = "queryServer"
			q["data"] = nil
			r := a.query(q)
			rawEq(t, "errno", r.Errno, "null")
			if r.Key != tc.key {
				t.Errorf("key = %q, want %q", r.Key, tc.key)
			}
			if r.Sockname == nil || r.Sockname.Port == 0 {
				t.Fatalf("sockname %+v", r.Sockname)
			}
			want := tc.want
			want.Port = r.Sockname.Port
			if *r.Sockname != want {
				t.Errorf("sockname %+v, want %+v", *r.Sockname, want)
			}
			a.waitInRotation(r.Key)
			c, err := net.DialTimeout("tcp", net.JoinHostPort(tc.dial, strconv.Itoa(want.Port)), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ans, err := readAnswer(t, c); err != nil || ans != "a\n" {
				t.Errorf("answer %q, %v", ans, err)
			}
		})
	}
}

// pollerWatches reports whether fd is in one of this process's epoll sets (Go's poller), read
// from /proc/self/fdinfo: each epoll fd lists the fds it watches as "tfd: N".
func pollerWatches(t *testing.T, fd int) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "tfd:" && f[1] == strconv.Itoa(fd) {
				return true
			}
		}
	}
	return false
}
