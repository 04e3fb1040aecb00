package integration

import (
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The reuseport policy (docs/node-cluster-protocol.md §6.6): each worker accepts on its own
// SO_REUSEPORT socket, all held by the daemon. These tests run unmodified Node workers.

// startReuseport starts cluster_http.js with n workers under the reuseport policy.
func startReuseport(t *testing.T, e *env, n int) string {
	t.Helper()
	_, url := startCluster(t, e, "cluster_http.js", n, "--sched-policy", "reuseport")
	return url
}

// handedOff is how many connections the daemon handed to workers in all (jlist).
func handedOff(e *env) uint64 {
	var n uint64
	for _, p := range e.jlist() {
		if c := p.Pm2Env.Corral.Cluster; c != nil {
			n += c.Connections
		}
	}
	return n
}

// TestReuseportSpreadsConnections: the kernel spreads new connections over both workers'
// sockets, the daemon hands off (nearly) none, and the workers' own request counts show the
// distribution in jlist.
func TestReuseportSpreadsConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	url := startReuseport(t, e, 2)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	byPID := map[int]int{}
	const n = 400
	for range n {
		pid, err := get(t.Context(), client, url)
		if err != nil {
			t.Fatalf("request failed: %v", err)
		}
		byPID[pid]++
	}
	// A hash over 400 connections: each of 2 workers gets 200 ± 10 (one standard deviation);
	// under 30 % means the kernel is not spreading at all.
	if len(byPID) != 2 {
		t.Fatalf("%d connections answered by %v: want both workers", n, byPID)
	}
	for pid, c := range byPID {
		if c < n*3/10 {
			t.Fatalf("worker pid %d answered %d of %d connections: %v", pid, c, n, byPID)
		}
	}
	// Every worker has its own socket, so the daemon hands off nothing, but for its rescue
	// of a worker that did not run for 50 ms (on a loaded machine, now and then: a few).
	if h := handedOff(e); h > n/10 {
		t.Fatalf("the daemon handed off %d of %d connections: every worker has its own socket, it should hand off (nearly) none", h, n)
	}
	// The workers count what they answer (waitServing's probes too): at least the 400.
	e.waitFor("the workers' reports of 400 requests", 30*time.Second, func() bool {
		return jlistRequests(e).requests >= n
	})
}

// TestReuseportReloadUnderLoad: rolling reloads under new-connection and keep-alive load fail
// no request: each slot's next run takes over the same socket and its queue.
func TestReuseportReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	url := startReuseport(t, e, 2)
	before := onlinePIDs(e)
	reloadUnderLoad(t, e, url, "cluster_http")
	checkReplaced(t, before, onlinePIDs(e))
	reloadTwiceKeepAlive(t, e, url, "cluster_http")
}

// TestReuseportScaleUnderLoad: scale 2 -> 1 -> 2 under both kinds of load fails no request:
// the daemon accepts on the socket of the slot scaled away and hands its connections to the
// worker left, and the next new slot takes that socket over.
func TestReuseportScaleUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	url := startReuseport(t, e, 2)
	scaleDownUpUnderLoad(t, e, url, "cluster_http", nil)
	// The new slot took the old socket over: the daemon hands off nothing any more (once the
	// answers to its last hand-offs are in), but for its rescue of a worker that did not run
	// for 50 ms, a few at most; a socket still orphaned would make it about half.
	waitQuiet(t, e)
	last := handedOff(e)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range 50 {
		if _, err := get(t.Context(), client, url); err != nil {
			t.Fatalf("request failed: %v", err)
		}
	}
	if h := handedOff(e); h-last >= 10 {
		t.Fatalf("after scaling back to 2, the daemon still hands off connections (%d, then %d, over 50 requests)", last, h)
	}
}

// scaleDownUpUnderLoad scales app 2 -> 1 -> 2 (then runs then, if any) under new-connection
// and keep-alive load at once, and fails the test if a request failed. After scale 1 the
// daemon must be accepting on the socket scaled away (it hands connections off).
func scaleDownUpUnderLoad(t *testing.T, e *env, url, app string, then func()) {
	t.Helper()
	conns := startLoad(url, 3, false)
	keep := startLoadMethod(url, 3, true, "POST")
	defer conns.stop()
	defer keep.stop()
	conns.waitOK(e, 100)
	keep.waitOK(e, 100)
	e.ok("scale", app, "1")
	conns.waitOK(e, 200)
	keep.waitOK(e, 200)
	if handedOff(e) == 0 {
		t.Fatalf("after scale 1, nobody accepts on the second socket: the daemon handed off nothing")
	}
	e.ok("scale", app, "2")
	waitServing(t, e, url, 2)
	conns.waitOK(e, 200)
	keep.waitOK(e, 200)
	if then != nil {
		then()
		conns.waitOK(e, 200)
		keep.waitOK(e, 200)
	}
	conns.stop()
	keep.stop()
	if conns.failed.Load() != 0 || keep.failed.Load() != 0 {
		t.Fatalf("requests failed: new connections: %s; keep-alive: %s", conns, keep)
	}
}

// TestReuseportWorkerKilled: kill -9 of a worker under new-connection load fails at most the
// requests that worker had in hand; connections that arrive on its socket meanwhile wait for
// the daemon, which hands them to the other worker until the replacement listens.
func TestReuseportWorkerKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	url := startReuseport(t, e, 2)
	const conc = 4
	l := startLoad(url, conc, false)
	defer l.stop()
	l.waitOK(e, 200)
	victim := e.proc(0).PID
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor("process 0 replaced", 60*time.Second, func() bool {
		p := e.proc(0)
		return p.PID != victim && p.Pm2Env.Status == "online"
	})
	waitServing(t, e, url, 2)
	l.waitOK(e, 300)
	l.stop()
	// Each client has one request in flight at a time: the victim held at most conc.
	t.Logf("load across the kill: %s", l)
	if f := l.failed.Load(); f > conc {
		t.Fatalf("killing one worker failed %d requests, more than the %d it could have had in hand: %s", f, conc, l)
	}
}

// TestReuseportStalledWorker: while one worker runs nothing at all (SIGSTOP, as a blocked
// event loop looks from outside), every new connection is answered by the other worker: the
// connections the kernel put in the stopped worker's queue do not wait for it (the daemon's
// rescue, docs/node-cluster-protocol.md §6.6). Once it runs again, it serves its own queue.
func TestReuseportStalledWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	url := startReuseport(t, e, 2)
	victim, other := e.proc(0).PID, e.proc(1).PID
	if err := syscall.Kill(victim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped, stoppedAt := true, time.Now()
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(victim, syscall.SIGCONT)
		}
	})
	// A client gives up on a request after 30 s; without the rescue, half of them would wait
	// for the stopped worker, that is for ever.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	// At least 40 requests, over 2 s at least: the daemon logs a stall of a second or more.
	for i := 0; i < 40 || time.Since(stoppedAt) < 2*time.Second; i++ {
		pid, err := get(t.Context(), client, url)
		if err != nil {
			t.Fatalf("request %d with worker %d stopped: %v", i+1, victim, err)
		}
		if pid != other {
			t.Fatalf("request %d answered by pid %d, want the running worker %d", i+1, pid, other)
		}
	}
	if err := syscall.Kill(victim, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	e.waitFor("the worker that was stopped to answer again", 30*time.Second, func() bool {
		pid, err := get(t.Context(), client, url)
		return err == nil && pid == victim
	})
	// The operator learns of a stall that long, once it is over.
	e.waitFor("the daemon log to tell of the stall", 30*time.Second, func() bool {
		return strings.Contains(readFile(filepath.Join(e.home, "corral.log")), "a worker accepted nothing on its socket")
	})
}

// TestReuseportOutlivesDaemon: the keeper keeps every worker's socket; with the daemon killed
// the workers go on accepting on their own, and the next daemon takes the sockets over so that
// a reload after it still fails nothing.
func TestReuseportOutlivesDaemon(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	url := startReuseport(t, e, 2)
	l := startLoad(url, 4, false)
	defer l.stop()
	l.waitOK(e, 100)
	old := e.daemonPID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l.waitOK(e, 200) // served with no daemon at all, or by the next one
	e.waitFor("a new daemon", 30*time.Second, func() bool {
		pid := e.daemonPID()
		return pid != 0 && pid != old
	})
	before := onlinePIDs(e)
	e.ok("reload", "cluster_http")
	l.waitOK(e, 200)
	l.stop()
	checkReplaced(t, before, onlinePIDs(e))
	if l.failed.Load() != 0 {
		t.Fatalf("requests failed across a daemon kill and a reload: %s", l)
	}
}

// TestReuseportGoWorker: Go workers (package worker) under the reuseport policy: a scale
// 2 -> 1 -> 2 and a reload under both kinds of load fail no request. After scale 1 the daemon
// hands the remaining Go worker the connections of the socket scaled away, which its listener
// takes beside its own.
func TestReuseportGoWorker(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 2, "sched_policy: 'reuseport'")
	scaleDownUpUnderLoad(t, e, url, "gow", func() { e.ok("reload", "gow") })
}
