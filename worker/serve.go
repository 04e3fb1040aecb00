package worker

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ServeOption configures ServeHTTP.
type ServeOption func(*serveOptions)

type serveOptions struct {
	grace   time.Duration
	timeout time.Duration // 0: no limit
}

// DrainGrace sets how long a draining ServeHTTP keeps idle keep-alive connections open, so that
// a client that sends its next request on one of them is answered (with "Connection: close")
// instead of finding the connection closed. The default is one second, or CORRAL_DRAIN_GRACE_MS.
func DrainGrace(d time.Duration) ServeOption {
	return func(o *serveOptions) { o.grace = max(d, 0) }
}

// DrainTimeout bounds a draining ServeHTTP: d after the drain begins (Shutdown closes), the
// connections still open, requests in flight included, are closed (srv.Close) and ServeHTTP
// returns. It bounds the whole drain, the grace period of DrainGrace included. Zero, the
// default, means no limit: the drain waits for every request in flight, and only corral's
// kill_timeout bounds it, while nothing does for a server run standalone.
func DrainTimeout(d time.Duration) ServeOption {
	return func(o *serveOptions) { o.timeout = max(d, 0) }
}

// defaultGrace is the grace period of corral's Node workers: CORRAL_DRAIN_GRACE_MS, else 1 s.
func defaultGrace() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("CORRAL_DRAIN_GRACE_MS")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return time.Second
}

// httpDrain is the graceful end of one http.Server, shared by every ServeHTTP call on it.
type httpDrain struct {
	srv      *http.Server
	draining atomic.Bool
	users    int // ServeHTTP calls on srv; under process.serveMu

	mu      sync.Mutex
	conns   map[net.Conn]http.ConnState
	changed chan struct{} // cap 1: a connection closed

	// loops counts srv.Serve calls still running: net/http drops a request read after
	// srv.Shutdown has begun, so the drain waits until no Serve can hand over another
	// connection.
	loops gauge

	once sync.Once
	done chan struct{} // closed once the drain is over
}

func (rt *process) serveHTTP(srv *http.Server, ln net.Listener, opts ...ServeOption) error {
	o := serveOptions{grace: defaultGrace()}
	for _, opt := range opts {
		opt(&o)
	}
	rt.watchSignals()
	rt.serves.add()
	d := rt.drainFor(srv)
	drained := func() error {
		<-d.done
		rt.releaseDrain(d)
		rt.serves.done()
		// In cluster mode, return only once corral knows the worker is done: the worker's
		// last answers are on their way, and main may return.
		<-rt.leftDone
		return nil
	}
	if rt.isShutdown() {
		ln.Close()
		d.start(rt, o)
		return drained()
	}
	errc := make(chan error, 1)
	d.loops.add()
	go func() {
		err := srv.Serve(ln)
		d.loops.done()
		errc <- err
	}()
	select {
	case err := <-errc:
		if !rt.isShutdown() && !d.started() {
			rt.releaseDrain(d)
			rt.serves.done()
			return err
		}
		// The shutdown closed the listener (a cluster listener), or another ServeHTTP on
		// srv is draining it.
		d.start(rt, o)
		return drained()
	case <-rt.shutdown:
	}
	d.start(rt, o)
	ln.Close() // no new connections; Serve returns
	<-errc
	return drained()
}

// drainFor returns srv's drain state, wrapping srv's Handler and ConnState on first use.
func (rt *process) drainFor(srv *http.Server) *httpDrain {
	rt.serveMu.Lock()
	defer rt.serveMu.Unlock()
	d := rt.drains[srv]
	if d == nil {
		if h, ok := srv.Handler.(*drainHandler); ok && h.d.srv == srv {
			d = h.d // served before: wrapped already
		} else {
			d = &httpDrain{
				srv: srv, conns: map[net.Conn]http.ConnState{}, changed: make(chan struct{}, 1),
				done: make(chan struct{}),
			}
			d.wrap(rt.requestMetrics())
		}
		rt.drains[srv] = d
	}
	d.users++
	return d
}

func (rt *process) releaseDrain(d *httpDrain) {
	rt.serveMu.Lock()
	defer rt.serveMu.Unlock()
	d.users--
	if d.users == 0 && rt.drains[d.srv] == d {
		delete(rt.drains, d.srv)
	}
}

// wrap makes the server's responses say "Connection: close" while draining, counts its
// connections, and counts its requests into m (nil: not counted).
func (d *httpDrain) wrap(m *reqMetrics) {
	h := d.srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	d.srv.Handler = &drainHandler{d: d, next: h, m: m}
	prev := d.srv.ConnState
	d.srv.ConnState = func(c net.Conn, s http.ConnState) {
		d.track(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
}

// drainHandler is srv's handler while ServeHTTP serves it.
type drainHandler struct {
	d    *httpDrain
	next http.Handler
	m    *reqMetrics // nil: requests are not counted
}

func (h *drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		if rw, ok := w.(http1Writer); ok {
			// HTTP/2 needs nothing: srv.Shutdown sends GOAWAY.
			dw := &drainWriter{rw: rw, d: h.d}
			if h.m == nil {
				h.next.ServeHTTP(dw, r)
				return
			}
			// The writer that drains also notes the status: no other wrapper per request.
			start := h.m.begin()
			h.next.ServeHTTP(dw, r)
			if !dw.hijacked {
				h.m.finish(start, finalStatus(dw.status))
			}
			return
		}
	}
	if h.m == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	start := h.m.begin()
	h.next.ServeHTTP(sw, r)
	h.m.finish(start, finalStatus(sw.status))
}

// finalStatus is the status a response went out with: net/http sends 200 when the handler
// set none, even when it wrote nothing.
func finalStatus(status int) int {
	if status == 0 {
		return http.StatusOK
	}
	return status
}

// isFinal reports whether code is a response's status, not an informational 1xx header.
func isFinal(code int) bool { return code >= 200 || code == http.StatusSwitchingProtocols }

// statusWriter notes the status of a response other than HTTP/1's (HTTP/2), for the request
// metrics; Unwrap gives http.ResponseController the server's own writer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && isFinal(code) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (d *httpDrain) track(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	switch s {
	case http.StateNew, http.StateActive, http.StateIdle:
		d.conns[c] = s
	case http.StateHijacked, http.StateClosed:
		delete(d.conns, c)
		select {
		case d.changed <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
}

func (d *httpDrain) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// closeWaiting closes the connections that wait for a request: idle keep-alive ones, and new
// ones on which no request has come yet (clients and browsers open some ahead of need).
func (d *httpDrain) closeWaiting() {
	d.mu.Lock()
	var waiting []net.Conn
	for c, s := range d.conns {
		if s == http.StateNew || s == http.StateIdle {
			waiting = append(waiting, c)
		}
	}
	d.mu.Unlock()
	for _, c := range waiting {
		c.Close()
	}
}

func (d *httpDrain) started() bool { return d.draining.Load() }

func (d *httpDrain) start(rt *process, o serveOptions) {
	d.once.Do(func() {
		d.draining.Store(true)
		go d.run(rt, o)
	})
}

// run drains the server: every next response closes its connection. After the grace period,
// the connections still waiting for a request are closed, and srv.Shutdown waits for the active
// ones (and sends HTTP/2's GOAWAY). The waiting ones are closed here and not left to
// srv.Shutdown, because net/http keeps a connection on which no request has come yet open for
// 5 s during a shutdown, and drops without an answer a request it reads on it meanwhile.
// srv.Shutdown also waits for every Serve loop to end (their listeners are closed), so that no
// connection is handed to a server already shutting down.
//
// With a DrainTimeout, srv.Shutdown gets a context that ends at the time limit (which also cuts
// the grace period short), and srv.Close then closes whatever is still open.
func (d *httpDrain) run(rt *process, o serveOptions) {
	defer close(d.done)
	ctx := context.Background()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	t := time.NewTimer(o.grace)
	defer t.Stop()
	d.loops.wait()
wait:
	for d.count() > 0 {
		select {
		case <-t.C:
			break wait
		case <-ctx.Done():
			break wait
		case <-d.changed:
		}
	}
	d.closeWaiting()
	if err := d.srv.Shutdown(ctx); err != nil && ctx.Err() != nil {
		_ = d.srv.Close()
	}
}

// http1Writer is what net/http's HTTP/1 ResponseWriter implements.
type http1Writer interface {
	http.ResponseWriter
	http.Flusher
	http.Hijacker
	io.ReaderFrom
	io.StringWriter
	http.CloseNotifier //nolint:staticcheck // net/http's writer still has it; old handlers assert it
}

// drainWriter makes a response say "Connection: close" when the server is draining by the time
// the response starts, so net/http closes the connection after it and the client opens its next
// one elsewhere (to another worker). It is transparent otherwise: it has the methods of
// net/http's own writer, and Unwrap for http.ResponseController.
type drainWriter struct {
	rw       http1Writer
	d        *httpDrain
	started  bool
	status   int  // the response's status, once it started (request metrics)
	hijacked bool // the handler took the connection: no response to count
}

func (w *drainWriter) begin() {
	if !w.started {
		w.started = true
		if w.status == 0 {
			w.status = http.StatusOK
		}
		if w.d.draining.Load() {
			w.rw.Header().Set("Connection", "close")
		}
	}
}

func (w *drainWriter) Header() http.Header { return w.rw.Header() }

func (w *drainWriter) WriteHeader(code int) {
	if isFinal(code) { // 1xx informational headers are not the response
		if !w.started {
			w.status = code
		}
		w.begin()
	}
	w.rw.WriteHeader(code)
}

func (w *drainWriter) Write(p []byte) (int, error) {
	w.begin()
	return w.rw.Write(p)
}

func (w *drainWriter) WriteString(s string) (int, error) {
	w.begin()
	return w.rw.WriteString(s)
}

func (w *drainWriter) ReadFrom(r io.Reader) (int64, error) {
	w.begin()
	return w.rw.ReadFrom(r)
}

func (w *drainWriter) Flush() {
	w.begin()
	w.rw.Flush()
}

func (w *drainWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.rw.Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

func (w *drainWriter) CloseNotify() <-chan bool { return w.rw.CloseNotify() }

// Unwrap gives http.ResponseController the server's own writer (deadlines, full duplex).
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.rw }
