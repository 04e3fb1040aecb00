package integration

// Go servers in cluster mode, through the public package github.com/corral-pm/corral/worker:
// testdata/goworker is built and run by the real corral binary as an executable
// (interpreter 'none') with exec_mode 'cluster'.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startGoCluster runs ./goworker in cluster mode with n workers on a free port (plus extra
// ecosystem attributes) and waits until all of them listen and the port answers.
func startGoCluster(t *testing.T, e *env, n int, attrs string) string {
	t.Helper()
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	writeGoEcosystem(e, n, attrs)
	e.ok("start", "ecosystem.config.js")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServing(t, e, url, n)
	return url
}

func writeGoEcosystem(e *env, n int, attrs string) {
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
		name: 'gow', script: './goworker', interpreter: 'none',
		exec_mode: 'cluster', instances: %d, %s
	}] }`, n, attrs))
}

// newGoEnv is a test's corral home with the Go worker (testdata/goworker, built once) in its
// work dir as ./goworker.
func newGoEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	src, dst := goWorkerBin.get(t), filepath.Join(e.dir, "goworker")
	if err := os.Link(src, dst); err != nil {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// checkDrained checks that every replaced or stopped worker drained and exited on its own:
// "drained (<nil>)" in its log for each ended run.
func checkDrained(t *testing.T, e *env, runs int) {
	t.Helper()
	var logs strings.Builder
	n := 0
	for _, p := range e.jlist() {
		l := readFile(p.Pm2Env.OutLog)
		logs.WriteString(l)
		n += strings.Count(l, "drained (<nil>)")
	}
	if n < runs {
		t.Fatalf("%d runs drained, want %d; logs:\n%s", n, runs, logs.String())
	}
}

// TestWorkerRoundRobin: connections alternate between the two Go workers, and corral shows
// both listening in cluster mode.
func TestWorkerRoundRobin(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 2, "")
	for _, p := range e.jlist() {
		if p.Pm2Env.ExecMode != "cluster_mode" || p.Pm2Env.Corral.Cluster == nil || len(p.Pm2Env.Corral.Cluster.Listening) != 1 {
			t.Fatalf("process %d: %+v", p.ID, p.Pm2Env)
		}
		if !strings.Contains(readFile(p.Pm2Env.OutLog), "(cluster worker: true)") {
			t.Fatalf("process %d does not know it is a cluster worker:\n%s", p.ID, readFile(p.Pm2Env.OutLog))
		}
	}
	checkRoundRobin(t, e, url, 2)
}

// TestWorkerReloadUnderLoad: a rolling reload under continuous load, a new connection per
// request, fails no request; every worker is replaced and the old ones drained and exited 0.
func TestWorkerReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 2, "")
	before := onlinePIDs(e)
	_, l := reloadUnderLoad(t, e, url, "gow")
	checkReplaced(t, before, onlinePIDs(e))
	if len(l.byPID) < 3 {
		t.Fatalf("expected answers from old and new workers: %s", l)
	}
	checkDrained(t, e, 2)
}

// TestWorkerReloadKeepAlive: keep-alive clients lose nothing during two reloads, and every
// replaced worker drained.
func TestWorkerReloadKeepAlive(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 2, "")
	reloadTwiceKeepAlive(t, e, url, "gow")
	checkDrained(t, e, 4)
}

// TestWorkerScaleUnderLoad: scale 2 -> 1 -> 2 under load (new connections and keep-alive
// POSTs at once) fails no request.
func TestWorkerScaleUnderLoad(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 2, "")
	conns := startLoad(url, 3, false)
	keep := startLoadMethod(url, 3, true, "POST")
	conns.waitOK(e, 100)
	keep.waitOK(e, 100)
	e.ok("scale", "gow", "1")
	if n := len(e.jlist()); n != 1 {
		t.Fatalf("%d processes after scale 1", n)
	}
	conns.waitOK(e, 100)
	keep.waitOK(e, 100)
	e.ok("scale", "gow", "2")
	waitServing(t, e, url, 2)
	conns.waitOK(e, 200)
	keep.waitOK(e, 200)
	conns.stop()
	keep.stop()
	if conns.failed.Load() != 0 || keep.failed.Load() != 0 {
		t.Fatalf("scaling dropped requests: new connections: %s; keep-alive: %s", conns, keep)
	}
	// Both workers serve again, in turn, once the connections of the stopped load (cancelled
	// requests still take their turn in the rotation) are through.
	waitQuiet(t, e)
	checkRoundRobin(t, e, url, 2)
}

// waitQuiet waits until the daemon hands no connection over: none in flight to a worker, and
// the number handed over unchanged between two looks.
func waitQuiet(t *testing.T, e *env) {
	t.Helper()
	last := int64(-1)
	e.waitFor("the daemon to have no connection in flight", 60*time.Second, func() bool {
		total, busy := int64(0), false
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c != nil {
				total += int64(c.Connections)
				busy = busy || c.InFlight != 0
			}
		}
		quiet := !busy && total == last
		last = total
		return quiet
	})
}

// TestWorkerListenZero: listen(":0") gives both workers the same port, chosen by corral; the
// worker's Addr() and corral's jlist report it.
func TestWorkerListenZero(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	e.vars["PORT"] = "0"
	writeGoEcosystem(e, 2, "")
	e.ok("start", "ecosystem.config.js")
	var port string
	e.waitFor("both workers to listen", 60*time.Second, func() bool {
		ports := map[string]bool{}
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c != nil {
				for _, l := range c.Listening {
					ports[l] = true
				}
			}
		}
		if len(ports) != 1 {
			return false
		}
		for p := range ports {
			port = p
		}
		return true
	})
	if n, err := strconv.Atoi(port); err != nil || n <= 0 {
		t.Fatalf("corral reports port %q", port)
	}
	url := "http://127.0.0.1:" + port + "/"
	waitServing(t, e, url, 2)
	client := newConnClient()
	pids := map[int]bool{}
	for range 6 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			PID  int    `json:"pid"`
			Addr string `json:"addr"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if v.Addr != "[::]:"+port {
			t.Fatalf("worker %d reports address %s, corral port %s", v.PID, v.Addr, port)
		}
		pids[v.PID] = true
	}
	if len(pids) != 2 {
		t.Fatalf("answers from %d workers, want 2", len(pids))
	}
}

// TestWorkerWaitReady: with wait_ready a worker that listens is not online until it calls
// worker.Ready, and a reload waits for the new worker's Ready too.
func TestWorkerWaitReady(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	gate := filepath.Join(e.dir, "ready-gate")
	e.vars["READY_GATE"] = gate
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	writeGoEcosystem(e, 2, "wait_ready: true, listen_timeout: 120000")
	e.ok("start", "ecosystem.config.js")
	e.waitFor("both workers to listen", 60*time.Second, func() bool {
		n := 0
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c != nil && len(c.Listening) > 0 {
				n++
			}
		}
		return n == 2
	})
	// Listening, and Ready not called yet (the gate does not exist): not online.
	for _, p := range e.jlist() {
		if p.Pm2Env.Status != "launching" {
			t.Fatalf("process %d is %s before calling Ready", p.ID, p.Pm2Env.Status)
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range e.jlist() {
		e.waitStatus(p.ID, "online", 60*time.Second)
	}
	waitServing(t, e, fmt.Sprintf("http://127.0.0.1:%d/", port), 2)

	// A reload waits for the replacement's Ready: with the gate gone, it stays pending.
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	before := e.proc(0).PID
	reloaded := make(chan result, 1)
	go func() { reloaded <- e.run("reload", "gow") }()
	e.waitFor("the replacement to listen", 60*time.Second, func() bool {
		for _, p := range e.jlist() {
			if p.ID == 0 && strings.Count(readFile(p.Pm2Env.OutLog), "listening on") >= 2 {
				return true
			}
		}
		return false
	})
	select {
	case r := <-reloaded:
		t.Fatalf("reload finished before the replacement called Ready:\n%s", r)
	default:
	}
	if p := e.proc(0); p.PID != before {
		t.Fatalf("process 0 switched to pid %d before the replacement was ready", p.PID)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reloaded:
		if r.code != 0 {
			t.Fatalf("reload failed:\n%s", r)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("reload did not finish after Ready")
	}
	if p := e.proc(0); p.PID == before || p.Pm2Env.Status != "online" {
		t.Fatalf("process 0 after reload: pid %d (was %d), %s", p.PID, before, p.Pm2Env.Status)
	}
}

// TestWorkerStopDrains: a request in flight when the app is stopped is answered; the worker
// then exits 0 on its own, before kill_timeout.
func TestWorkerStopDrains(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 1, "kill_timeout: 30000")
	client := &http.Client{Timeout: 30 * time.Second}
	type res struct {
		pid int
		err error
	}
	handedOff := func() uint64 {
		if c := e.proc(0).Pm2Env.Corral.Cluster; c != nil {
			return c.Connections
		}
		return 0
	}
	before := handedOff()
	slow := make(chan res, 1)
	go func() {
		pid, err := get(t.Context(), client, url+"?delay=1500")
		slow <- res{pid, err}
	}()
	e.waitFor("the slow request to reach the worker", 30*time.Second, func() bool { return handedOff() > before })
	began := time.Now()
	e.ok("stop", "gow")
	if r := <-slow; r.err != nil {
		t.Fatalf("the request in flight failed: %v", r.err)
	}
	p := e.proc(0)
	if p.Pm2Env.Status != "stopped" || p.Pm2Env.ExitCode == nil || *p.Pm2Env.ExitCode != 0 || p.Pm2Env.Corral.ExitSignal != "" {
		t.Fatalf("after stop: status %s, exit code %v, signal %q", p.Pm2Env.Status, p.Pm2Env.ExitCode, p.Pm2Env.Corral.ExitSignal)
	}
	if d := time.Since(began); d > 25*time.Second {
		t.Fatalf("stop took %v: the worker waited for kill_timeout", d)
	}
	checkDrained(t, e, 1)
}

// TestWorkerCountsRequests: Go workers serving through worker.ServeHTTP report their requests
// as corral's Node preload does: jlist and describe show exactly what was sent, by class, and
// the Go heap, without an event-loop delay.
func TestWorkerCountsRequests(t *testing.T) {
	t.Parallel()
	e := newGoEnv(t)
	url := startGoCluster(t, e, 2, "")
	// waitServing's one successful request: wait for its report, so that it is the baseline.
	var base requestTotals
	e.waitFor("the first request counted", 30*time.Second, func() bool {
		base = jlistRequests(e)
		return base.requests >= 1 && base.byClass[1] >= 1
	})
	keepAlive := &http.Transport{MaxIdleConnsPerHost: 4}
	defer keepAlive.CloseIdleConnections()
	sendRequests(t, &http.Client{Transport: keepAlive, Timeout: 10 * time.Second}, url, 500, 4, http.StatusServiceUnavailable)
	closing := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	sendRequests(t, closing, url, 100, 2, http.StatusNotFound)
	var got requestTotals
	e.waitFor("600 more requests counted", 30*time.Second, func() bool {
		got = jlistRequests(e)
		return got.requests >= base.requests+600 && got.byClass[1]+got.byClass[3]+got.byClass[4] >= base.byClass[1]+600
	})
	want := base.byClass
	want[1] += 540
	want[3] += 10
	want[4] += 50
	if got.requests != base.requests+600 || got.byClass != want {
		t.Fatalf("jlist counts %d requests by class %v; want %d, %v", got.requests, got.byClass, base.requests+600, want)
	}
	for id, n := range got.perWorker {
		if n == 0 {
			t.Errorf("worker %d counted no request: %v", id, got.perWorker)
		}
	}
	if d := describeRequests(t, e, "gow"); sum(d) != got.requests {
		t.Errorf("describe's per-worker requests %v add up to %d, want %d", d, sum(d), got.requests)
	}
	var procs []struct {
		Pm2Env struct {
			Corral struct {
				Cluster struct {
					Runtime map[string]any `json:"runtime"`
				} `json:"cluster"`
			} `json:"corral"`
		} `json:"pm2_env"`
	}
	if err := json.Unmarshal([]byte(e.ok("jlist").stdout), &procs); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		rt := p.Pm2Env.Corral.Cluster.Runtime
		if rt["heap_used"] == nil {
			t.Errorf("no heap figure from a Go worker: %v", rt)
		}
		if _, ok := rt["event_loop_p99_ms"]; ok {
			t.Errorf("a Go worker shows an event-loop delay: %v", rt)
		}
	}
}
