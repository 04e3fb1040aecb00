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

// maxPending bounds connections accepted but not yet handed to a worker. Past it the daemon
// stops accepting and the kernel's backlog holds further clients (they wait, they are not
// refused), so a cluster whose workers all hang cannot make the daemon hoard fds.
const maxPending = 1024

// handle is one server key of an app (spec §6): the socket the daemon owns, the workers that
// listen on it, and, for round-robin, the connections waiting for a worker.
type handle struct {
	g      *Group
	key    string
	shared bool // the socket is handed to every worker (shared policy, and always UDP)
	udp    bool
	sock   *socketFile
	name   *sockname // what workers see as server.address(); nil for unix paths
	addr   string    // for humans: "[::]:5000", "/tmp/app.sock"

	mu      sync.Mutex
	cond    *sync.Cond
	data    json.RawMessage // TLS session ticket keys etc.: the first worker's, echoed to all (spec §5.3)
	all     map[*worker]bool
	free    []*worker // workers with no newconn outstanding on this key, oldest first
	pending []*pendingConn
	closed  bool
	dropped uint64 // connections closed because every worker refused them
}

// pendingConn is an accepted connection on its way to a worker.
type pendingConn struct {
	fd    int
	tries int // times a worker answered accepted:false
}

func newHandle(g *Group, key string, sock *socketFile, shared, udp bool) *handle {
	h := &handle{g: g, key: key, sock: sock, shared: shared, udp: udp, all: map[*worker]bool{}}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// add puts w in rotation: it will get the next connection.
func (h *handle) add(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.all[w] {
		return
	}
	h.all[w] = true
	if !h.shared {
		h.free = append(h.free, w)
		h.dispatchLocked()
		h.cond.Broadcast() // the accept loop may have been waiting for a first worker
	}
}

// remove takes w out of rotation for this key.
func (h *handle) remove(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.all, w)
	h.free = slices.DeleteFunc(h.free, func(x *worker) bool { return x == w })
}

// maxTriesLocked bounds how often one connection may be refused before it is closed: every
// worker twice, at least four times. Node retries forever (spec §7.4).
func (h *handle) maxTriesLocked() int {
	return max(4, 2*len(h.all))
}

// acceptLoop accepts connections while at least one worker listens on this key, and pauses
// (leaving clients in the kernel's backlog) while none does or too many wait.
func (h *handle) acceptLoop() {
	defer h.g.wg.Done()
	for {
		h.mu.Lock()
		for !h.closed && (len(h.all) == 0 || len(h.pending) >= maxPending) {
			h.cond.Wait()
		}
		if h.closed {
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()

		fd, err := h.sock.accept()
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
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

// dispatchLocked hands pending connections to free workers, first come first served.
func (h *handle) dispatchLocked() {
	for len(h.pending) > 0 && len(h.free) > 0 {
		w := h.free[0]
		h.free = h.free[1:]
		c := h.pending[0]
		h.pending = h.pending[1:]
		if err := w.sendConn(h, c); err != nil {
			// The worker cannot take it (channel closed or its queue is full): it leaves the
			// rotation of this key, and the connection goes to the next one.
			h.pending = append([]*pendingConn{c}, h.pending...)
			delete(h.all, w)
			h.g.logThrottled("worker %d (%s) cannot take connections on %s: %v", w.id, h.g.app, h.addr, err)
		}
	}
	if len(h.pending) < maxPending {
		h.cond.Broadcast()
	}
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

// release makes w free again on this key after it answered a newconn.
func (h *handle) release(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed && h.all[w] && !slices.Contains(h.free, w) {
		h.free = append(h.free, w)
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
	pending := h.pending
	h.pending = nil
	h.free = nil
	h.all = map[*worker]bool{}
	h.cond.Broadcast()
	h.mu.Unlock()
	for _, c := range pending {
		unix.Close(c.fd)
	}
	h.sock.close()
}
