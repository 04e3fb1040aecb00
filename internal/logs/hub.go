package logs

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Stream names in Line.Stream.
const (
	StreamOut    = "out"
	StreamErr    = "err"
	StreamCorral = "corral" // the daemon's own lines, and notices such as skipped lines
)

// DaemonProcID is Line.ProcID for the daemon's own lines.
const DaemonProcID = -1

// DefaultBuffer is the subscriber buffer used when Subscribe is given none: enough for a burst
// of a few thousand lines while a terminal catches up.
const DefaultBuffer = 4096

// Line is one line of output as streamed to `corral logs` (and its --json form, PM2's shape).
type Line struct {
	Time    time.Time `json:"timestamp"`
	ProcID  int       `json:"process_id"` // -1 for the daemon's own lines
	App     string    `json:"app_name"`
	Stream  string    `json:"type"`    // "out", "err", or "corral" for the daemon
	Message string    `json:"message"` // without the trailing newline
}

// Hub fans lines out to live readers. Publish never blocks: the processes whose output is being
// read must never wait on a `corral logs` client, however slow its terminal or connection. Each
// subscriber has a bounded queue of its own; what does not fit is counted and the subscriber is
// told how many lines it missed, so it can say so instead of silently showing a gapped stream.
type Hub struct {
	mu     sync.RWMutex
	subs   map[*Subscription]struct{}
	closed bool
	// n counts subscribers so a Stream can skip building Lines (a string allocation per line)
	// while nobody is listening, which is most of the time.
	n atomic.Int32
}

// NewHub returns a Hub with no subscribers.
func NewHub() *Hub {
	return &Hub{subs: make(map[*Subscription]struct{})}
}

// Publish offers l to every subscriber whose filter accepts it. It never blocks; a subscriber
// whose buffer is full misses l and is told so later. Filters run on the caller's goroutine
// and must be quick.
func (h *Hub) Publish(l Line) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if s.filter == nil || s.filter(l) {
			s.offer(l)
		}
	}
}

// active reports whether anyone is subscribed, without locking.
func (h *Hub) active() bool { return h.n.Load() > 0 }

// Subscribe starts a reader of the lines that filter accepts (every line when filter is nil).
// buffer is how many lines may wait for the reader before it starts missing some;
// buffer <= 0 means DefaultBuffer. Lines arrive on Subscription.C, which is closed by Close
// (and by Hub.Close). A subscription taken on a closed Hub is already closed. The line being
// handed to the reader counts against the buffer until the reader has taken it.
func (h *Hub) Subscribe(filter func(Line) bool, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	c := make(chan Line)
	s := &Subscription{
		C:      c,
		c:      c,
		hub:    h,
		filter: filter,
		ring:   make([]entry, buffer),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go s.run()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.Close()
		return s
	}
	h.subs[s] = struct{}{}
	h.n.Add(1)
	h.mu.Unlock()
	return s
}

// Close closes every subscription and makes later ones start closed; for daemon shutdown, so
// that `corral logs` clients see the end of the stream.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	subs := make([]*Subscription, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.n.Add(-1)
	}
	h.mu.Unlock()
}

// Subscription is one live reader of a Hub.
//
// Lines wait in a ring of the subscriber's buffer size; a goroutine of the subscription hands
// them to C one by one. Keeping the ring ours rather than using a buffered channel lets a line
// stay counted against the buffer until the reader has actually taken it (so "fill the buffer"
// means exactly buffer lines), and lets the skipped-lines notice be queued the moment a slot
// frees up, at the exact place in the stream where the lines went missing.
type Subscription struct {
	// C delivers the lines. It is closed once the subscription is closed.
	C <-chan Line

	c      chan Line
	hub    *Hub
	filter func(Line) bool

	mu      sync.Mutex
	ring    []entry
	head    int  // index of the oldest entry
	n       int  // entries in ring
	sending bool // ring[head] is being handed to the reader: Publish must not change it
	skipped int  // lines missed after the newest entry and not yet in a notice

	wake   chan struct{} // tells run that the ring is no longer empty
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when run returns
	once   sync.Once
}

// entry is a line waiting for the reader, or (skipped > 0) a notice of missed lines.
type entry struct {
	line    Line
	skipped int
}

// offer queues l, or counts it as skipped when the ring is full.
func (s *Subscription) offer(l Line) {
	s.mu.Lock()
	wasEmpty := s.n == 0
	if s.n < len(s.ring) {
		if s.skipped > 0 { // defensive: run turns skips into a notice as soon as a slot frees
			s.push(entry{line: Line{Time: time.Now()}, skipped: s.skipped})
			s.skipped = 0
		}
	}
	if s.n < len(s.ring) {
		s.push(entry{line: l})
	} else if tail := (s.head + s.n - 1) % len(s.ring); s.ring[tail].skipped > 0 && !(tail == s.head && s.sending) {
		// The newest entry is a notice not yet handed over: the missed line belongs right
		// after it, so count it there rather than starting another notice.
		s.ring[tail].skipped++
	} else {
		s.skipped++
	}
	s.mu.Unlock()
	if wasEmpty {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// push appends e; the caller holds mu and has checked there is room.
func (s *Subscription) push(e entry) {
	s.ring[(s.head+s.n)%len(s.ring)] = e
	s.n++
}

// run hands queued entries to the reader until Close.
func (s *Subscription) run() {
	defer close(s.exited)
	defer close(s.c)
	for {
		s.mu.Lock()
		if s.n == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		e := s.ring[s.head]
		s.sending = true
		s.mu.Unlock()

		l := e.line
		if e.skipped > 0 {
			l = skippedNotice(e.skipped, e.line.Time)
		}
		select {
		case s.c <- l:
		case <-s.done:
			return
		}

		s.mu.Lock()
		s.ring[s.head] = entry{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		s.sending = false
		if s.skipped > 0 {
			// A slot is free: tell the reader now, not at the next published line, which may
			// never come.
			s.push(entry{line: Line{Time: time.Now()}, skipped: s.skipped})
			s.skipped = 0
		}
		s.mu.Unlock()
	}
}

// skippedNotice is the line that tells a reader it missed n lines.
func skippedNotice(n int, at time.Time) Line {
	unit := "lines"
	if n == 1 {
		unit = "line"
	}
	return Line{
		Time:    at,
		ProcID:  DaemonProcID,
		Stream:  StreamCorral,
		Message: fmt.Sprintf("corral: %d %s skipped: this reader fell behind", n, unit),
	}
}

// Close stops the subscription: C is closed, and lines still queued are dropped (the reader
// asked for that). Close is idempotent, safe concurrently with Publish, and returns once C is
// closed.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.remove(s)
		close(s.done)
	})
	<-s.exited
}
