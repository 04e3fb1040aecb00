package keeper

import (
	"net"
	"sync"
)

// sender sends the keeper's messages to one daemon from a goroutine of its own, so that a
// daemon that does not read (busy, stuck, dying) never blocks the keeper's loop: what it has
// not taken waits in a queue.
type sender struct {
	conn *net.UnixConn
	logf func(format string, args ...any)

	mu      sync.Mutex
	pending []outgoing
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

// outgoing is a message waiting to be sent; its fds are the sender's to close once sent.
type outgoing struct {
	h    header
	body []byte
	fds  []int
}

func newSender(conn *net.UnixConn, logf func(string, ...any)) *sender {
	s := &sender{conn: conn, logf: logf, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// queue adds a message; the sender takes its fds.
func (s *sender) queue(h header, body []byte, fds []int) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		closeAll(fds)
		return
	}
	s.pending = append(s.pending, outgoing{h, body, fds})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) run() {
	defer close(s.done)
	failed := false
	for range s.wake {
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		closed := s.closed
		s.mu.Unlock()
		for _, o := range batch {
			if !failed {
				if err := send(s.conn, o.h, o.body, o.fds); err != nil {
					// The daemon is gone or going: what is left would not reach it either.
					s.logf("send %s to the daemon: %v", o.h.Op, err)
					failed = true
				}
			}
			closeAll(o.fds)
		}
		if closed {
			return
		}
	}
}

// close stops the sender, dropping what it has not sent (the caller then closes the
// connection, which ends a send in progress), and waits for it.
func (s *sender) close() {
	s.mu.Lock()
	s.closed = true
	for _, o := range s.pending {
		closeAll(o.fds)
	}
	s.pending = nil
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// wait waits for the sender's goroutine to end (after close).
func (s *sender) wait() { <-s.done }
