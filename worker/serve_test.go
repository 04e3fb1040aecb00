package worker

// ServeHTTP tests. The primary here is the real one, internal/cluster's Group, wired in-process
// exactly as internal/supervisor wires a run (as internal/cluster/fake_test.go does), with this
// package's worker on the other end of each channel: round-robin, disconnect and drain are the
// daemon's own code against the worker's.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/testutil"
)

type groupCtl struct{ ready, disconnected atomic.Int32 }

func (c *groupCtl) Ready()              { c.ready.Add(1) }
func (c *groupCtl) Disconnected()       { c.disconnected.Add(1) }
func (c *groupCtl) StateChanged()       {}
func (c *groupCtl) ListenFailed(string) {}

// daemonIPC is what supervisor's runIPC does for a cluster run.
type daemonIPC struct{ w supervisor.Worker }

func (d *daemonIPC) HandleMessage(m nodeipc.Message) {
	if m.Internal {
		d.w.HandleInternal(m)
		return
	}
	if m.Handle != nil {
		m.Handle.Close()
	}
}
func (d *daemonIPC) HandleBadLine([]byte, error) {}
func (d *daemonIPC) HandleClose(error)           { d.w.HandleChannelClose() }

// groupWorker is one worker process: this package's side and the daemon's side of its channel.
type groupWorker struct {
	name   string
	rt     *process
	w      supervisor.Worker
	ctl    *groupCtl
	dch    *nodeipc.Channel
	served chan error // ServeHTTP's result
}

func newTestGroup(t *testing.T) *cluster.Group {
	g := cluster.NewGroup("app", "", func(string, ...any) {})
	t.Cleanup(g.CloseListeners)
	return g
}

// startGroupWorker starts a worker on g that serves HTTP on "127.0.0.1:0" (the same daemon
// socket for every worker of g) with ServeHTTP, answering its name after delay (?delay=ms),
// with status (?status=404; 200 by default).
func startGroupWorker(t *testing.T, g *cluster.Group, procID int, opts ...ServeOption) *groupWorker {
	t.Helper()
	ctl := &groupCtl{}
	w, err := g.NewWorker(procID, ctl)
	if err != nil {
		t.Fatal(err)
	}
	parent, child, err := nodeipc.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	dch, err := nodeipc.Open(parent, &daemonIPC{w: w}, nodeipc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Attach(dch, 10000+procID)
	id, _ := strconv.Atoi(strings.TrimPrefix(w.Env()[0], "NODE_UNIQUE_ID="))
	gw := &groupWorker{name: fmt.Sprintf("w%d", procID), rt: newProcess(), w: w, ctl: ctl, dch: dch, served: make(chan error, 1)}
	if err := gw.rt.open(child, id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gw.rt.ch.Close()
		select {
		case <-dch.Done():
		case <-time.After(waitTimeout):
			t.Errorf("%s: the daemon's channel did not end", gw.name)
		}
		w.Ended()
	})
	ln, err := gw.rt.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if ms, _ := strconv.Atoi(r.URL.Query().Get("delay")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		if status, _ := strconv.Atoi(r.URL.Query().Get("status")); status > 0 {
			w.WriteHeader(status)
		}
		fmt.Fprint(w, gw.name)
	})}
	go func() { gw.served <- gw.rt.serveHTTP(srv, ln, opts...) }()
	testutil.WaitFor(t, gw.name+" to listen", waitTimeout, func() bool { return ctl.ready.Load() > 0 })
	return gw
}

func groupURL(t *testing.T, g *cluster.Group) string {
	t.Helper()
	ls := g.Listeners()
	if len(ls) != 1 {
		t.Fatalf("listeners %v", ls)
	}
	return "http://" + ls[0] + "/"
}

func body(resp *http.Response, err error) (string, error) {
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

// TestServeHTTPBothWorkers: both workers of the daemon's rotation serve. (The strict
// round-robin order is checked by the integration tests, with separate processes: in one
// process nothing observable tells when the daemon has put a worker back in rotation.)
func TestServeHTTPBothWorkers(t *testing.T) {
	g := newTestGroup(t)
	startGroupWorker(t, g, 0)
	startGroupWorker(t, g, 1)
	url := groupURL(t, g)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}
	seen := map[string]int{}
	for range 10 {
		s, err := body(client.Get(url))
		if err != nil {
			t.Fatal(err)
		}
		seen[s]++
	}
	if seen["w0"] == 0 || seen["w1"] == 0 {
		t.Fatalf("answers by worker: %v", seen)
	}
	testutil.WaitFor(t, "the daemon to count 10 accepted connections", waitTimeout, func() bool {
		st := g.Stats()
		return st[0].Connections+st[1].Connections == 10
	})
	if st := g.Stats(); st[0].Refused+st[1].Refused != 0 {
		t.Fatalf("daemon stats %+v", st)
	}
}

// loadGen sends POSTs from conc goroutines until stopped (POST: the client never retries it,
// so a connection closed under a client shows as a failure).
type loadGen struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	byWorker   map[string]int
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoadGen(url string, conc int, keepAlive bool) *loadGen {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadGen{cancel: cancel, byWorker: map[string]int{}}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: conc}, Timeout: waitTimeout}
	for range conc {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader("x"))
				s, err := body(client.Do(req))
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.errs = append(l.errs, err.Error())
				} else {
					l.ok.Add(1)
					l.byWorker[s]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *loadGen) waitOK(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	testutil.WaitFor(t, fmt.Sprintf("%d more successful requests", n), waitTimeout, func() bool { return l.ok.Load() >= target })
}

func (l *loadGen) stop() { l.cancel(); l.wg.Wait() }

func (l *loadGen) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errs
	if len(errs) > 5 {
		errs = errs[:5]
	}
	return fmt.Sprintf("%d ok, %d failed %v, by worker %v", l.ok.Load(), l.failed.Load(), errs, l.byWorker)
}

// TestServeHTTPDisconnectUnderLoad: the daemon disconnects a worker (a reload's or a scale
// down's second half) under keep-alive POST load and under new-connection load: no request
// fails, the worker's ServeHTTP returns nil, and its channel closes only after that.
func TestServeHTTPDisconnectUnderLoad(t *testing.T) {
	for _, keepAlive := range []bool{true, false} {
		t.Run(fmt.Sprintf("keepAlive=%v", keepAlive), func(t *testing.T) {
			testutil.CheckFDs(t, waitTimeout)
			g := newTestGroup(t)
			a := startGroupWorker(t, g, 0)
			b := startGroupWorker(t, g, 1)
			l := startLoadGen(groupURL(t, g), 8, keepAlive)
			l.waitOK(t, 300)
			if !a.w.Disconnect() {
				t.Fatal("Disconnect refused")
			}
			select {
			case err := <-a.served:
				if err != nil {
					t.Fatalf("ServeHTTP: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("ServeHTTP did not return after the disconnect")
			}
			testutil.WaitFor(t, "the channel to close", waitTimeout, func() bool { return a.ctl.disconnected.Load() == 1 })
			l.waitOK(t, 300)
			l.stop()
			if l.failed.Load() != 0 {
				t.Fatalf("requests failed: %s; daemon stats %+v", l, g.Stats())
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.byWorker[b.name] == 0 || l.byWorker[a.name] == 0 {
				t.Fatalf("distribution %v", l.byWorker)
			}
		})
	}
}

// TestServeHTTPDrainOrder: a request in flight at the disconnect finishes (with Connection:
// close); an idle keep-alive connection still gets its next request answered during the
// grace period; the channel closes only once both are done.
func TestServeHTTPDrainOrder(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	g := newTestGroup(t)
	a := startGroupWorker(t, g, 0, DrainGrace(waitTimeout))
	url := groupURL(t, g)
	var dials atomic.Int32
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	idle := &http.Client{Transport: tr, Timeout: waitTimeout}
	if _, err := body(idle.Post(url, "text/plain", strings.NewReader("1"))); err != nil {
		t.Fatal(err)
	}
	// A slow request on another connection.
	slowDone := make(chan *http.Response, 1)
	slowClient := &http.Client{Transport: &http.Transport{}, Timeout: waitTimeout}
	go func() {
		resp, err := slowClient.Post(url+"?delay=400", "text/plain", strings.NewReader("2"))
		if err != nil {
			t.Error(err)
		}
		slowDone <- resp
	}()
	testutil.WaitFor(t, "the slow request to be accepted", waitTimeout, func() bool { return g.Stats()[0].Connections == 2 })
	a.w.Disconnect()
	<-a.rt.shutdownChan()

	resp := <-slowDone
	if resp == nil {
		t.FailNow()
	}
	resp.Body.Close()
	if !resp.Close {
		t.Fatal("the in-flight request's response did not say Connection: close")
	}
	if a.ctl.disconnected.Load() != 0 {
		t.Fatal("the channel closed while a keep-alive connection was still open")
	}
	// The idle connection: its next request is answered, and it is the last one on it.
	resp, err := idle.Post(url, "text/plain", strings.NewReader("3"))
	if _, err := body(resp, err); err != nil {
		t.Fatalf("request on the idle connection during the drain: %v", err)
	}
	if !resp.Close || dials.Load() != 1 {
		t.Fatalf("close=%v dials=%d: want the idle connection reused and closed", resp.Close, dials.Load())
	}
	// Every connection is gone: the drain ends long before the grace period.
	select {
	case err := <-a.served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout / 2):
		t.Fatal("ServeHTTP did not return once every connection had closed")
	}
	testutil.WaitFor(t, "the channel to close", waitTimeout, func() bool { return a.ctl.disconnected.Load() == 1 })
}

// TestServeHTTPPreconnected: connections opened ahead of need (no request yet, as Go's
// Transport and browsers do) are answered if a request comes during the grace period, and
// closed after it; the drain does not wait for net/http's 5 s rule for new connections, during
// which it would drop, unanswered, any request read on them.
func TestServeHTTPPreconnected(t *testing.T) {
	testutil.CheckFDs(t, waitTimeout)
	g := newTestGroup(t)
	a := startGroupWorker(t, g, 0, DrainGrace(1500*time.Millisecond))
	addr := strings.TrimPrefix(strings.TrimSuffix(groupURL(t, g), "/"), "http://")
	used, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer used.Close()
	unused, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	testutil.WaitFor(t, "the worker to take both connections", waitTimeout, func() bool {
		a.rt.serveMu.Lock()
		defer a.rt.serveMu.Unlock()
		for _, d := range a.rt.drains {
			return d.count() == 2
		}
		return false
	})
	a.w.Disconnect()
	<-a.rt.shutdownChan()
	began := time.Now()
	used.SetDeadline(time.Now().Add(waitTimeout))
	fmt.Fprint(used, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
	resp, err := http.ReadResponse(bufio.NewReader(used), nil)
	if err != nil {
		t.Fatalf("request on a preconnected connection during the grace period: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("status %d, close %v", resp.StatusCode, resp.Close)
	}
	unused.SetDeadline(time.Now().Add(waitTimeout))
	if n, err := unused.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the unused connection: %d bytes, %v; want it closed", n, err)
	}
	if err := <-a.served; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 4500*time.Millisecond {
		t.Fatalf("the drain took %v: it waited for net/http's rule for new connections", d)
	}
}

// TestServeHTTPStandalone: without corral, a shutdown (a signal) drains and ServeHTTP returns
// nil; the port is closed.
func TestServeHTTPStandalone(t *testing.T) {
	rt := newProcess()
	close(rt.opened)
	ln, err := rt.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })}
	served := make(chan error, 1)
	go func() { served <- rt.serveHTTP(srv, ln, DrainGrace(time.Minute)) }()
	url := "http://" + ln.Addr().String() + "/"
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitTimeout}
	if s, err := body(client.Get(url)); err != nil || s != "ok" {
		t.Fatalf("%q %v", s, err)
	}
	rt.trigger(errors.New("test: SIGTERM"))
	// The idle keep-alive connection keeps the drain going (grace: a minute) until its next
	// request, which closes it.
	select {
	case err := <-served:
		t.Fatalf("ServeHTTP returned %v with an idle connection in its grace period", err)
	case <-time.After(100 * time.Millisecond):
	}
	resp, err := client.Get(url)
	if _, err := body(resp, err); err != nil || !resp.Close {
		t.Fatalf("request during the drain: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("ServeHTTP did not return")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("the port still accepts connections")
	}
	// After the shutdown, ServeHTTP returns at once.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := rt.serveHTTP(&http.Server{}, ln2); err != nil {
		t.Fatal(err)
	}
}

// TestServeHTTPDrainTimeout: with a DrainTimeout, a request that never finishes does not hold
// the drain: its connection is closed and ServeHTTP returns nil. Without one, it would wait.
func TestServeHTTPDrainTimeout(t *testing.T) {
	rt := newProcess()
	close(rt.opened)
	ln, err := rt.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release // stuck until the test ends
	})}
	served := make(chan error, 1)
	go func() { served <- rt.serveHTTP(srv, ln, DrainGrace(time.Minute), DrainTimeout(300*time.Millisecond)) }()
	client := &http.Client{Transport: &http.Transport{}, Timeout: waitTimeout}
	got := make(chan error, 1)
	go func() {
		_, err := body(client.Get("http://" + ln.Addr().String() + "/"))
		got <- err
	}()
	<-entered
	rt.trigger(errors.New("test: SIGTERM"))
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("ServeHTTP did not return after its drain timeout")
	}
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("the stuck request got an answer; want its connection closed")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the stuck request's connection was not closed")
	}
}

// TestServeHTTPServerClosedByCaller: a server shut down by other means returns Serve's error.
func TestServeHTTPServerClosedByCaller(t *testing.T) {
	rt := newProcess()
	close(rt.opened)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{}
	served := make(chan error, 1)
	go func() { served <- rt.serveHTTP(srv, ln) }()
	testutil.WaitFor(t, "the server to serve", waitTimeout, func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	srv.Shutdown(context.Background())
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("ServeHTTP: %v", err)
	}
	rt.serveMu.Lock()
	n := len(rt.drains)
	rt.serveMu.Unlock()
	if n != 0 {
		t.Fatalf("%d drain states left", n)
	}
}

// TestServeHTTPWriterTransparent: handlers keep what net/http's writer offers: Flusher,
// Hijacker, io.ReaderFrom, http.ResponseController's deadlines; a draining response says
// Connection: close even when it starts with Flush.
func TestServeHTTPWriterTransparent(t *testing.T) {
	rt := newProcess()
	close(rt.opened)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		_, f := w.(http.Flusher)
		_, h := w.(http.Hijacker)
		_, rf := w.(io.ReaderFrom)
		if !f || !h || !rf {
			http.Error(w, fmt.Sprintf("flusher %v hijacker %v readerfrom %v", f, h, rf), 500)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(waitTimeout)); err != nil {
			http.Error(w, "SetWriteDeadline: "+err.Error(), 500)
			return
		}
		if err := rc.Flush(); err != nil {
			http.Error(w, "Flush: "+err.Error(), 500)
			return
		}
		fmt.Fprint(w, "flushed")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		bw.Flush()
		c.Close()
	})
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- rt.serveHTTP(srv, ln, DrainGrace(waitTimeout)) }()
	base := "http://" + ln.Addr().String()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitTimeout}
	for _, c := range []struct{ path, want string }{{"/hijack", "hijacked"}, {"/flush", "flushed"}} {
		if s, err := body(client.Get(base + c.path)); err != nil || s != c.want {
			t.Fatalf("%s: %q %v", c.path, s, err)
		}
	}
	// Draining: the idle keep-alive connection's next response closes it, Flush first or not.
	rt.trigger(errors.New("test"))
	resp, err := client.Get(base + "/flush")
	if s, err := body(resp, err); err != nil || s != "flushed" || !resp.Close {
		t.Fatalf("during the drain: %q %v close=%v", s, err, resp != nil && resp.Close)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
