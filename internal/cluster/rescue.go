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
// another worker's queue empties or shrinks (that one keeps up, unless it stalled lately), is
// drained by the daemon, which hands the connections to the workers that keep up as
// round-robin does, at every look while the queue stays stuck. A worker that keeps up is never
// touched, and when no queue keeps up (the whole app is saturated) there is nobody to hand to,
// so nothing is done either. A worker whose queue stalled is given no connection by the daemon
// (a rescue, an orphaned socket's, a refused one's) while another can take it, until it is
// seen accepting again or stalledFor passes without a stall.
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
	// stalledAt is the last look that found it stuck for rescueAfter; zero once its worker
	// is seen accepting (its queue shrank by itself).
	stalledAt time.Time
	// keepingUp: at the last look its queue was empty or had shrunk, and it had not stalled
	// lately. Only such workers are handed what the daemon drains.
	keepingUp bool
	// A stall episode, for the log: the rescues of this socket with less than rescueLogAfter
	// between them and no accept by its worker seen, from when the first one's queue got
	// stuck to the last one, how many, and the connections handed.
	stallFrom, stallTo time.Time
	rescues            int
	handed             uint64
}

const (
	// stalledFor is how long a stalled worker gets no connection from the daemon while no
	// look finds it stalled again and it is not seen accepting.
	stalledFor = time.Second
	// rescueLogAfter: an episode this long is logged once it is over (no rescue for as long,
	// its worker seen accepting, gone, or the socket closed). Single rescues happen now and
	// then on a saturated machine, where a worker may not run for a few ticks; the log is for
	// the workers that stop for real.
	rescueLogAfter = time.Second
)

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
		case <-t.C:
			h.mu.Lock()
			if !h.closed {
				// Not the tick's time: a late tick's would be in the past, and hand-off
				// times must follow one another (pickLocked).
				h.rescueLocked(time.Now())
			}
			h.mu.Unlock()
		}
	}
}

// stalledLately reports whether the queue was found stalled less than stalledFor before at,
// and its worker not seen accepting since.
func (w *queueWatch) stalledLately(at time.Time) bool {
	return !w.stalledAt.IsZero() && at.Sub(w.stalledAt) < stalledFor
}

// stalledLocked reports whether w accepts on a socket whose queue stalled lately, as of the
// last look. h.mu held.
func (h *handle) stalledLocked(w *worker) bool {
	for _, s := range h.socks {
		if s.owners[w] && s.watch.stalledLately(h.lookedAt) {
			return true
		}
	}
	return false
}

// rescueLocked looks at every queue once and drains those whose worker has stalled. h.mu held.
func (h *handle) rescueLocked(now time.Time) {
	h.lookedAt = now
	keepingUp := false // some worker keeps up: there is someone to hand to
	for _, s := range h.socks {
		w := &s.watch
		if len(s.owners) == 0 {
			h.endStallLocked(w) // its worker is gone; the daemon's own accept loop serves it
			*w = queueWatch{}
			continue
		}
		q, err := acceptQueue(s.fd)
		if err != nil {
			w.keepingUp = false
			continue
		}
		accepted := q < w.last // its queue shrank by itself: its worker accepts
		switch {
		case q == 0:
			w.stuckSince = time.Time{}
		case accepted:
			w.stuckSince = now
		case w.stuckSince.IsZero():
			w.stuckSince = now
		}
		w.last = q
		if accepted {
			w.stalledAt = time.Time{}
			h.endStallLocked(w)
		}
		if q > 0 && now.Sub(w.stuckSince) >= h.g.rescueAfter {
			w.stalledAt = now
		}
		if !w.stallTo.IsZero() && now.Sub(w.stallTo) >= rescueLogAfter {
			h.endStallLocked(w)
		}
		// A worker keeps up when its queue is empty or shrinking, unless it stalled lately:
		// an empty queue the daemon drained says nothing of its worker.
		w.keepingUp = (q == 0 || accepted) && !w.stalledLately(now)
		keepingUp = keepingUp || w.keepingUp
	}
	if !keepingUp {
		return // (a queue found stalled does not keep up: the one that does is another's)
	}
	for _, s := range h.socks {
		w := &s.watch
		if !w.stalledAt.Equal(now) {
			continue // not found stalled at this look, or not looked at
		}
		// Still stuck at the next look (the queue did not shrink below what is left), it is
		// drained again then, without waiting anew.
		took := h.drainLocked(s, w.last, now)
		w.last -= took
		if took > 0 {
			if w.stallFrom.IsZero() {
				w.stallFrom = w.stuckSince
			}
			w.stallTo = now
			w.rescues++
			w.handed += uint64(took)
		}
	}
}

// endStallLocked logs w's stall episode if it lasted rescueLogAfter or more, and forgets it.
// h.mu held.
func (h *handle) endStallLocked(w *queueWatch) {
	if w.stallFrom.IsZero() {
		return
	}
	if d := w.stallTo.Sub(w.stallFrom); d >= rescueLogAfter {
		h.g.logf("%s: a worker accepted nothing on its socket of %s for %d stretches of %s or more over %s (its event loop blocked?); the daemon handed the %d connections that waited to the other workers",
			h.g.app, h.addr, w.rescues, h.g.rescueAfter, d.Round(10*time.Millisecond), w.handed)
	}
	w.stallFrom, w.stallTo, w.rescues, w.handed = time.Time{}, time.Time{}, 0, 0
}

// keepsUpLocked reports whether every socket w accepts on was found keeping up at the last
// look (a worker on none, between its start and its listen, does too). h.mu held.
func (h *handle) keepsUpLocked(w *worker) bool {
	for _, s := range h.socks {
		if s.owners[w] && !s.watch.keepingUp {
			return false
		}
	}
	return true
}

// drainLocked accepts up to n connections waiting on s and hands each to a worker that does
// not accept on s and keeps up with its own socket, while one has room (pickExceptLocked); one
// accepted for a worker that then left, with no such worker left to take it, goes to the line
// (dispatchLocked) and ends the drain. It returns how many it took. h.mu held.
func (h *handle) drainLocked(s *slotSock, n uint32, now time.Time) uint32 {
	skip := func(w *worker) bool { return s.owners[w] || !h.keepsUpLocked(w) }
	var took uint32
	for took < n {
		i := h.pickExceptLocked(now, skip)
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
		case unix.EAGAIN: // its worker took the rest
			return took
		default: // EMFILE, ENFILE, ENOBUFS...: the connection stays queued; the next look retries
			h.g.logThrottled("accept on %s: %v", h.addr, err)
			return took
		}
		took++
		c := &pendingConn{fd: fd}
		for !h.handLocked(i, c, now) { // that worker left the rotation: the next one
			if i = h.pickExceptLocked(now, skip); i < 0 {
				h.pending = append([]*pendingConn{c}, h.pending...)
				h.dispatchLocked()
				return took
			}
		}
	}
	return took
}
