package cluster

import (
	"time"

	"golang.org/x/sys/unix"
)

// The reuseport policy's rescue of a stalled worker's queue, docs/node-cluster-protocol.md §6.6.
// A socket per worker has one weakness that round-robin and a shared socket do not: the kernel
// picks a connection's socket by a hash, not knowing whether its worker is free, so while one
// worker's event loop is blocked (a synchronous bcrypt, a big JSON.parse, a long regular
// expression) the connections hashed to it wait in its queue until it is free, though the
// other workers are idle. The daemon holds every socket, so it watches their queues: a queue
// that is not empty and has not shrunk for rescueAfter (its worker accepts nothing), while
// another worker's queue empties or shrinks (that one keeps up), is drained by the daemon,
// which hands the connections to the other workers as round-robin does, until the worker
// accepts again. A worker that keeps up is never touched, and when every queue grows (the
// whole app is saturated) there is nobody to hand to, so nothing is done either.
//
// Watching costs a wake-up every rescueTick and one getsockopt per socket that has a worker;
// nothing per connection.

const (
	// rescueTick is how often the queues are read.
	rescueTick = 10 * time.Millisecond
	// rescueAfter is how long a queue may wait on its worker before the daemon steps in:
	// the longest a connection waits behind a blocked worker, give or take a tick.
	rescueAfter = 50 * time.Millisecond
)

// queueWatch is what the watcher knows of one reuseport socket's queue. h.mu held.
type queueWatch struct {
	last uint32 // connections waiting at the last look (after the daemon's own accepts)
	// stuckSince is when the queue last was empty or shrank (its worker accepted); zero
	// while it is empty.
	stuckSince time.Time
	// A stall: the rescues of this socket with less than rescueLogAfter between them, from
	// when the first one's queue got stuck to the last one, and the connections handed.
	stallFrom, stallTo time.Time
	handed             uint64
}

// rescueLogAfter: a stall this long is logged once it is over (no rescue for as long). Single
// rescues happen now and then on a saturated machine, where a worker may not run for a few
// ticks; the log is for the workers that stop for real.
const rescueLogAfter = time.Second

// acceptQueue is how many connections wait in listening socket fd's accept queue: for a
// listener, Linux reports it in TCP_INFO's unacked field.
func acceptQueue(fd int) (uint32, error) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, err
	}
	return info.Unacked, nil
}

// watchQueues runs the rescue for h until it closes (one per reuseport key, from its first
// socket).
func (h *handle) watchQueues(stop <-chan struct{}) {
	defer h.g.wg.Done()
	t := time.NewTicker(h.g.rescueTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			h.mu.Lock()
			if !h.closed {
				h.rescueLocked(now)
			}
			h.mu.Unlock()
		}
	}
}

// rescueLocked looks at every queue once and drains those whose worker has stalled. h.mu held.
func (h *handle) rescueLocked(now time.Time) {
	type look struct {
		s *slotSock
		q uint32
	}
	var looks []look
	keepingUp := false
	for _, s := range h.socks {
		if len(s.owners) == 0 {
			s.watch = queueWatch{} // the daemon's own accept loop serves it
			continue
		}
		q, err := acceptQueue(s.fd)
		if err != nil {
			continue
		}
		w := &s.watch
		switch {
		case q == 0:
			w.stuckSince = time.Time{}
			keepingUp = true
		case q < w.last:
			w.stuckSince = now // its worker accepted since the last look
			keepingUp = true
		case w.stuckSince.IsZero():
			w.stuckSince = now
		}
		w.last = q
		if !w.stallTo.IsZero() && now.Sub(w.stallTo) >= rescueLogAfter {
			h.endStallLocked(w)
		}
		looks = append(looks, look{s, q})
	}
	if len(looks) < 2 || !keepingUp {
		return
	}
	for _, l := range looks {
		w := &l.s.watch
		if l.q == 0 || w.stuckSince.IsZero() || now.Sub(w.stuckSince) < h.g.rescueAfter {
			continue
		}
		// Still stuck at the next look (the queue did not shrink below what is left), it is
		// drained again then, without waiting anew.
		took := h.drainLocked(l.s, l.q, now)
		w.last = l.q - took
		if took > 0 {
			if w.stallFrom.IsZero() {
				w.stallFrom = w.stuckSince
			}
			w.stallTo = now
			w.handed += uint64(took)
		}
	}
}

// endStallLocked logs a stall of w's socket that lasted rescueLogAfter or more, now that it
// is over, and forgets it. h.mu held.
func (h *handle) endStallLocked(w *queueWatch) {
	if d := w.stallTo.Sub(w.stallFrom); d >= rescueLogAfter {
		h.g.logf("%s: a worker accepted nothing on its socket of %s for about %s (its event loop was blocked?); the others took the %d connections that waited for it",
			h.g.app, h.addr, d.Round(10*time.Millisecond), w.handed)
	}
	w.stallFrom, w.stallTo, w.handed = time.Time{}, time.Time{}, 0
}

// drainLocked accepts up to n connections waiting on s and hands each to a worker that does
// not own s, while one has room (pickLocked); it returns how many it took. h.mu held.
func (h *handle) drainLocked(s *slotSock, n uint32, now time.Time) uint32 {
	var took uint32
drain:
	for took < n {
		i := h.pickExceptLocked(now, s.owners)
		if i < 0 {
			break
		}
		fd, err := rawAccept(s.fd)
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.ECONNABORTED: // the client gave up: one fewer waiting
			took++
			continue
		default:
			break drain // EAGAIN: its worker took the rest; anything else: the next look retries
		}
		took++
		h.handLocked(i, &pendingConn{fd: fd}, now)
	}
	if len(h.pending) > 0 {
		h.dispatchLocked() // a worker could not take one: it went back in line
	}
	return took
}
