package web

import (
	"sync"
	"time"
)

// Window is how far back the charts go: a page opened now shows the last 15 minutes.
const Window = 15 * time.Minute

// maxPoints bounds each process's ring whatever the sample interval: a daemon sampling every
// 100 ms keeps the last 3,600 samples (6 minutes), not 9,000.
const maxPoints = 3600

// Point is one sample of one process, as the charts draw it.
type Point struct {
	T    int64   `json:"t"`    // Unix milliseconds
	CPU  float64 `json:"cpu"`  // percent of one CPU, whole process tree
	Mem  int64   `json:"mem"`  // RSS bytes, whole process tree
	Req  float64 `json:"req"`  // requests per second (Node cluster workers)
	Conn float64 `json:"conn"` // connections per second (cluster mode)
}

// History keeps the last Window of samples per process slot, in memory: the daemon's sampler
// adds one point per process per interval, so its size is bounded by the process count times
// the ring's capacity. A daemon that takes the apps over seeds it with the previous daemon's
// (Restore); otherwise a restart of the daemon starts it over.
type History struct {
	mu     sync.Mutex
	cap    int
	series map[int]*ring
}

type ring struct {
	buf   []Point
	start int
	n     int
}

// NewHistory keeps Window's worth of samples taken every interval.
func NewHistory(interval time.Duration) *History {
	n := maxPoints
	if interval > 0 {
		n = min(int(Window/interval)+1, maxPoints)
	}
	return &History{cap: max(n, 2), series: map[int]*ring{}}
}

// Record adds one sample per process; slots not in points (deleted) are forgotten.
func (h *History) Record(points map[int]Point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.series {
		if _, ok := points[id]; !ok {
			delete(h.series, id)
		}
	}
	for id, p := range points {
		r := h.series[id]
		if r == nil {
			r = &ring{buf: make([]Point, h.cap)}
			h.series[id] = r
		}
		if r.n < len(r.buf) {
			r.buf[(r.start+r.n)%len(r.buf)] = p
			r.n++
			continue
		}
		r.buf[r.start] = p
		r.start = (r.start + 1) % len(r.buf)
	}
}

// Snapshot copies every process's points, oldest first, dropping those older than Window.
func (h *History) Snapshot(now time.Time) map[int][]Point {
	cut := now.Add(-Window).UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int][]Point, len(h.series))
	for id, r := range h.series {
		pts := make([]Point, 0, r.n)
		for i := 0; i < r.n; i++ {
			if p := r.buf[(r.start+i)%len(r.buf)]; p.T >= cut {
				pts = append(pts, p)
			}
		}
		out[id] = pts
	}
	return out
}

// Restore seeds the history with what a previous daemon kept (the hand-over state, package
// daemon): each process's points, oldest first, of which the ring keeps the newest. It runs
// before the first Record. A series whose times do not strictly increase came wrong from the
// other process: it is dropped, not trusted.
func (h *History) Restore(series map[int][]Point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, pts := range series {
		if len(pts) == 0 || !increasing(pts) {
			continue
		}
		pts = pts[max(len(pts)-h.cap, 0):]
		r := &ring{buf: make([]Point, h.cap), n: len(pts)}
		copy(r.buf, pts)
		h.series[id] = r
	}
}

func increasing(pts []Point) bool {
	for i := 1; i < len(pts); i++ {
		if pts[i].T <= pts[i-1].T {
			return false
		}
	}
	return true
}
