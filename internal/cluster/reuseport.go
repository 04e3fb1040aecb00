package cluster

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// The reuseport policy (docs/node-cluster-protocol.md §6.6): every process slot gets its own
// listening socket, all bound to the app's address with SO_REUSEPORT, so the kernel spreads
// new connections over the slots by a hash of the connection and each worker accepts its own
// directly, with no hand-off through the daemon. The daemon creates and holds every socket:
//
//   - A listener's queue belongs to its socket, and the socket lives as long as anyone holds
//     it. The daemon always does, so a worker that exits, is killed or is replaced closes
//     nothing: connections that arrive for its slot wait in that socket's queue.
//   - A reload gives the slot's next run the same socket: old and new accept from one queue
//     while they overlap, and the old one simply stops.
//   - While no worker listens on a socket (its worker crashed and is restarting, or the slot
//     was scaled away), the daemon accepts on it and hands the connections to the app's other
//     workers, as round-robin does: nothing waits for a worker that is not coming.
//   - A socket whose slot was deleted is given to the next new slot (scale back up), so the
//     app never has more sockets than it had slots at once. Sockets close with the app.

// slotSock is one reuseport socket of a key. The daemon holds it as a raw fd, outside Go's
// poller: a listening socket in the poller wakes the daemon at every connection that arrives
// on it (edge-triggered readiness), though a worker accepts it, which costs the daemon a
// wake-up per connection for nothing. Only while the daemon accepts on it (no worker does)
// is a duplicate, acc, in the poller.
type slotSock struct {
	index int // its place in handle.socks, and in its keeper name
	fd    int // the daemon's copy: close-on-exec, non-blocking, not in the poller
	acc   *socketFile
	// slot is the process slot whose workers it is handed to; noSlot until one asks.
	slot int
	// owners are the workers it was handed to that still accept on it (a reload's old and
	// new run overlap); while there are none, the daemon accepts on it.
	owners map[*worker]bool
	watch  queueWatch // the rescue's view of its queue (rescue.go)
}

const noSlot = -1

// reusePolicy is the policy name, as spec.PolicyReuseport (kept here so the two files agree).
const reusePolicy = "reuseport"

// socketForLocked returns the socket to hand worker w: its slot's, or one no live slot has, or
// a new one. live are the process slots the group knows now (deleted ones are not). h.mu held.
func (h *handle) socketForLocked(w *worker, live map[int]bool) (*slotSock, error) {
	var spare *slotSock
	for _, s := range h.socks {
		if s.slot == w.procID {
			return s, nil
		}
		if spare == nil && len(s.owners) == 0 && (s.slot == noSlot || !live[s.slot]) {
			spare = s
		}
	}
	if spare != nil {
		spare.slot = w.procID
		h.g.keepSlotSockLocked(h, spare)
		return spare, nil
	}
	ls, err := h.moreLocked()
	if err != nil {
		return nil, err
	}
	sock, err := openListener(ls)
	if err != nil {
		return nil, err
	}
	s := h.addSlotSockLocked(sock.fd(), w.procID)
	h.g.keepSlotSockLocked(h, s)
	return s, nil
}

// addSlotSockLocked adds a reuseport socket (fd, now h's) to h and starts the daemon's accept
// loop on it, which runs whenever no worker owns the socket. h.mu held.
func (h *handle) addSlotSockLocked(fd int, slot int) *slotSock {
	index := 0
	for _, o := range h.socks {
		index = max(index, o.index+1)
	}
	s := &slotSock{index: index, fd: fd, slot: slot, owners: map[*worker]bool{}}
	h.socks = append(h.socks, s)
	h.g.wg.Add(1)
	go h.acceptFrom(nil, s)
	if h.stopWatch == nil {
		h.stopWatch = make(chan struct{})
		h.g.wg.Add(1)
		go h.watchQueues(h.stopWatch)
	}
	return s
}

// ownLocked records that w accepts on s: the daemon's accept loop on it pauses, and one
// blocked in accept now is woken by the deadline. h.mu held.
func (h *handle) ownLocked(s *slotSock, w *worker) {
	s.owners[w] = true
	if s.acc != nil {
		_ = s.acc.f.SetReadDeadline(time.Now())
	}
}

// accepterLocked is the polled duplicate the daemon accepts s on, made when first needed.
// h.mu held.
func (s *slotSock) accepterLocked() (*socketFile, error) {
	if s.acc == nil {
		dup, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("duplicate a reuseport socket to accept on: %w", err)
		}
		if s.acc, err = newSocketFile(dup, "reuseport", ""); err != nil {
			return nil, err
		}
	}
	return s.acc, nil
}

// idleLocked takes s's polled duplicate out of the poller: a worker accepts on s now.
// h.mu held.
func (s *slotSock) idleLocked() {
	if s.acc != nil {
		s.acc.close()
		s.acc = nil
	}
}

// close releases the daemon's copies of s (its accept loop, if blocked, returns).
func (s *slotSock) close() {
	if s.acc != nil {
		s.acc.close()
	}
	unix.Close(s.fd)
}

// disownLocked drops w from the sockets it accepted on; one that no worker accepts on any
// more is accepted on by the daemon. h.mu held.
func (h *handle) disownLocked(w *worker) {
	for _, s := range h.socks {
		if s.owners[w] {
			delete(s.owners, w)
			if len(s.owners) == 0 {
				h.cond.Broadcast()
			}
		}
	}
}

// takeSlotSock hands w its slot's socket (socketForLocked) and records it as the owner. The
// caller sends the socket's fd to the worker, and calls the returned undo if that fails.
func (h *handle) takeSlotSock(w *worker, live map[int]bool) (*slotSock, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, fmt.Errorf("%s is closed", h.addr)
	}
	s, err := h.socketForLocked(w, live)
	if err != nil {
		return nil, nil, err
	}
	h.ownLocked(s, w)
	undo := func() {
		h.mu.Lock()
		delete(s.owners, w)
		h.cond.Broadcast()
		h.mu.Unlock()
	}
	return s, undo, nil
}

// resumeOwner: an adopted worker of slot procID still holds the socket an earlier daemon
// handed it (the one recorded for its slot), and accepts on it again.
func (h *handle) resumeOwner(w *worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.socks {
		if s.slot == w.procID {
			h.ownLocked(s, w)
		}
	}
}

// liveSlots lists the process slots the group knows (deleted slots were Forgotten).
func (g *Group) liveSlots() map[int]bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[int]bool, len(g.slots))
	for id := range g.slots {
		out[id] = true
	}
	return out
}

// moreLocked is how to open one more socket of the group: as the first was asked for, on the
// port it got (listen(0)), with SO_REUSEPORT. A handle taken over from an earlier daemon knows
// only its sockets, so the spec is read back from one of them. h.mu held.
func (h *handle) moreLocked() (listenSpec, error) {
	ls := h.ls
	if ls.network == "" {
		if len(h.socks) == 0 {
			return ls, fmt.Errorf("%s: no socket to copy", h.addr)
		}
		var err error
		if ls, err = listenSpecOf(h.socks[0].fd); err != nil {
			return ls, err
		}
		h.ls = ls
	}
	if h.name != nil {
		ls.port = h.name.Port // listen(0): the port the first socket got
	}
	ls.reusePort = true
	return ls, nil
}
