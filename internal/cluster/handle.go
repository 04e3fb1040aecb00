package cluster

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxPending bounds connections accepted but not yet handed to a worker: one. The daemon
// accepts a connection only when it can hand it on at once; while every worker has a full
// window (HandoffWindow) the next clients wait in the kernel's backlog instead. They are not
// refused there, and, unlike a connection the daemon holds, the backlog belongs to the socket,
// which the daemon's keeper holds too: a daemon killed at that moment loses no client (a
// connection it had accepted would die with it). A cluster whose workers all hang cannot make
// the daemon hoard fds either.
const maxPending = 1

// HandoffWindow is how many connections one worker may have been handed on a key without
// answering yet. Node's primary hands a worker its next connection only after the worker
// answered the last one (a window of 1), so under load every connection costs the primary a
// wake-up for the answer before the next can go. With a few in flight, one wake-up hands over
// whatever the accept found, and a busy worker finds several connections in one read.
//
// The next connection goes to the worker with the fewest unanswered; among equals, to the one
// whose oldest unanswered hand-off is the most recent (it is keeping up), and round-robin when
// none has any, so connections alternate while workers keep up. A worker that has left a
// hand-off unanswered for staleHandoff gets no more until it answers (Node's rule, and the
// others take its share), so a hung worker holds at most this many connections.
const HandoffWindow = 4

// staleHandoff is how long a worker may leave a hand-off unanswered and still get more
// connections (Group.staleAfter; tests change it).
const staleHandoff = time.Second

// handle is one server key of an app (docs/node-cluster-protocol.md §5.6 and §6): the socket the
// daemon owns, the workers that listen on it, and, for round-robin, the connections waiting for
// a worker.
type handle struct {
	g      *Group
	key    string
	shared bool // the socket is handed to every worker (shared policy, and always UDP)
	udp    bool
	sock   *socketFile // nil for reuseport: see socks
	// reuse: the reuseport policy (reuseport.go): one listening socket per process slot,
	// socks, each handed to its slot's worker; ls is how to open one more.
	reuse bool
	ls    listenSpec
	name  *sockname // what workers see as server.address(); nil for unix paths
	addr  string    // for humans: "[::]:5000", "/tmp/app.sock"

	mu   sync.Mutex
	cond *sync.Cond
	// data is the TLS session ticket keys etc.: the first worker's, echoed to all
	// (docs/node-cluster-protocol.md §5.4).
	data json.RawMessage
	// workers are the workers that listen on this key, each with when it was handed the
	// connections it has not answered yet, oldest first (round-robin only).
	workers map[*worker][]time.Time
	ring    []*worker // the round-robin workers, in the order they joined
	next    int       // where the round-robin scan starts in ring
	pending []*pendingConn
	socks   []*slotSock // reuseport only
	// stopWatch ends the reuseport queue watcher (rescue.go); nil until the first socket.
	// lookedAt is the time of its last look.
	stopWatch chan struct{}
	lookedAt  time.Time
	closed    bool
	dropped   uint64 // connections closed because every worker refused them
}

// pendingConn is an accepted connection on its way to a worker.
type pendingConn struct {
	fd    int
	tries int // times a worker answered accepted:false
}

func newHandle(g *Group, key string, sock *socketFile, shared, udp bool) *handle {
	h := &handle{g: g, key: key, sock: sock, shared: shared, udp: udp, workers: map[*worker][]time.Time{}}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// add puts w in rotation: it will get the next connection.
func (h *handle) add(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, in := h.workers[w]; h.closed || in {
		return
	}
	h.workers[w] = nil
	if !h.shared {
		h.ring = append(h.ring, w)
		h.dispatchLocked()
		h.cond.Broadcast() // the accept loop may have been waiting for a first worker
	}
}

// remove takes w out of rotation for this key.
func (h *handle) remove(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(w)
}

// removeLocked takes w off this key: it gets no more connections on it, and the daemon
// accepts on a reuseport socket it was the last to listen on.
func (h *handle) removeLocked(w *worker) {
	delete(h.workers, w)
	h.disownLocked(w)
	i := slices.Index(h.ring, w)
	if i < 0 {
		return
	}
	h.ring = slices.Delete(h.ring, i, i+1)
	if i < h.next {
		h.next--
	}
	if h.next >= len(h.ring) {
		h.next = 0
	}
}

// pickLocked chooses the worker for the next connection (see HandoffWindow) and returns its
// index in ring, or -1 when every worker has a full window or a stale hand-off.
// Under reuseport a worker whose queue has stalled (rescue.go) gets a connection only when no
// other worker can take one.
func (h *handle) pickLocked(now time.Time) int {
	if h.reuse {
		if i := h.pickExceptLocked(now, h.stalledLocked); i >= 0 {
			return i
		}
	}
	return h.pickExceptLocked(now, nil)
}

// pickExceptLocked is pickLocked among the workers for which skip (if not nil) is false.
func (h *handle) pickExceptLocked(now time.Time, skip func(*worker) bool) int {
	best := -1
	var bestOut []time.Time
	for k := range h.ring {
		i := (h.next + k) % len(h.ring)
		if skip != nil && skip(h.ring[i]) {
			continue
		}
		out := h.workers[h.ring[i]]
		if len(out) >= HandoffWindow || len(out) > 0 && now.Sub(out[0]) >= h.g.staleAfter {
			continue
		}
		if best < 0 || len(out) < len(bestOut) || len(out) == len(bestOut) && len(out) > 0 && out[0].After(bestOut[0]) {
			best, bestOut = i, out
		}
	}
	return best
}

// idleLocked reports whether no connection is waiting for a worker's answer on this key.
func (h *handle) idleLocked() bool {
	for _, out := range h.workers {
		if len(out) > 0 {
			return false
		}
	}
	return true
}

// maxTriesLocked bounds how often one connection may be refused before it is closed: every
// worker twice, at least four times. Node retries forever (docs/node-cluster-protocol.md §7.4).
func (h *handle) maxTriesLocked() int {
	return max(4, 2*len(h.workers))
}

// acceptLoop accepts connections while at least one worker listens on this key, and pauses
// (leaving clients in the kernel's backlog) while none does or too many wait.
func (h *handle) acceptLoop() { h.acceptFrom(h.sock, nil) }

// acceptFrom accepts on sock as acceptLoop says, and also pauses while s (a reuseport socket,
// nil for the key's own socket) has a worker accepting on it directly.
func (h *handle) acceptFrom(sock *socketFile, s *slotSock) {
	defer h.g.wg.Done()
	for {
		h.mu.Lock()
		// Accept only what a worker can take at once (see maxPending): while every window is
		// full, clients wait in the backlog.
		for !h.closed && (s != nil && len(s.owners) > 0 || len(h.workers) == 0 || len(h.pending) >= maxPending || h.pickLocked(time.Now()) < 0) {
			if s != nil && len(s.owners) > 0 {
				s.idleLocked() // a worker accepts on it: out of the daemon's poller
			}
			h.cond.Wait()
		}
		if h.closed {
			h.mu.Unlock()
			return
		}
		if s != nil {
			acc, err := s.accepterLocked()
			if err != nil {
				h.mu.Unlock()
				h.g.logThrottled("accept on %s: %v", h.addr, err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			sock = acc
			// Under h.mu: a worker taking the socket over sets the deadline after this,
			// which wakes the accept below (reuseport.go).
			_ = sock.f.SetReadDeadline(time.Time{})
		}
		h.mu.Unlock()

		fd, err := sock.accept()
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // a worker took the socket over: look again
			}
			h.mu.Lock()
			closed := h.closed
			h.mu.Unlock()
			if closed {
				return
			}
			// EMFILE, ENFILE, ENOBUFS...: the daemon is out of something; the connection
			// stays in the backlog. Report once in a while and retry.
			h.g.logThrottled("accept on %s: %v", h.addr, err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			unix.Close(fd)
			return
		}
		h.pending = append(h.pending, &pendingConn{fd: fd})
		h.dispatchLocked()
		h.mu.Unlock()
	}
}

// dispatchLocked hands pending connections to workers (pickLocked), first come first served.
func (h *handle) dispatchLocked() {
	for len(h.pending) > 0 {
		now := time.Now() // one per hand-off: the tie-break compares hand-off times
		i := h.pickLocked(now)
		if i < 0 {
			break
		}
		if h.handLocked(i, h.pending[0], now) { // if not, it stays first, for the next worker
			h.pending = h.pending[1:]
		}
	}
	if len(h.pending) < maxPending {
		h.cond.Broadcast()
	}
}

// handLocked sends c to the worker at ring[i] and reports whether it went. A worker that
// cannot take it (its channel closed, or its queue is full) leaves the rotation of this key;
// c is still the caller's, for the next one. h.mu held.
func (h *handle) handLocked(i int, c *pendingConn, now time.Time) bool {
	w := h.ring[i]
	if err := w.sendConn(h, c); err != nil {
		h.removeLocked(w)
		h.g.logThrottled("worker %d (%s) cannot take connections on %s: %v", w.id, h.g.app, h.addr, err)
		return false
	}
	h.workers[w] = append(h.workers[w], now)
	h.next = (i + 1) % len(h.ring)
	return true
}

// requeue puts a connection a worker did not take (refused it, NACKed it, or died before
// receiving it) back at the front of the line. Every such return counts as a try, so no
// connection circulates forever.
func (h *handle) requeue(c *pendingConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.tries++
	if h.closed || c.tries >= h.maxTriesLocked() {
		unix.Close(c.fd)
		if !h.closed {
			h.dropped++
			h.g.logThrottled("closed a connection on %s that every worker refused (server.maxConnections reached?)", h.addr)
		}
		return
	}
	h.pending = append([]*pendingConn{c}, h.pending...)
	h.dispatchLocked()
}

// release counts w's answer to a newconn on this key: it has room for one more.
func (h *handle) release(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out := h.workers[w]; len(out) > 0 {
		h.workers[w] = out[1:] // answers come in the order of the hand-offs
	}
	h.dispatchLocked()
}

// close shuts the socket (the port closes) and every connection still waiting.
func (h *handle) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	if h.stopWatch != nil {
		close(h.stopWatch)
	}
	for _, s := range h.socks {
		h.endStallLocked(&s.watch)
	}
	pending := h.pending
	h.pending = nil
	h.ring, h.next, h.workers = nil, 0, map[*worker][]time.Time{}
	h.cond.Broadcast()
	socks := h.socks
	h.mu.Unlock()
	for _, c := range pending {
		unix.Close(c.fd)
	}
	if h.sock != nil {
		h.sock.close()
	}
	for _, s := range socks {
		h.mu.Lock()
		s.close()
		h.mu.Unlock()
	}
}
