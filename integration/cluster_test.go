package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startCluster starts script in cluster mode with n workers on a free port and waits until
// every worker is online (listening).
func startCluster(t *testing.T, e *env, script string, n int, extra ...string) (port int, url string) {
	t.Helper()
	port = freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	args := append([]string{"start", script, "-i", strconv.Itoa(n)}, extra...)
	e.ok(args...)
	url = fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServing(t, e, url, n)
	return port, url
}

// waitServing waits until n workers are listening and the port answers. (Status alone is not
// enough: a worker slow to boot is called online when listen_timeout passes, as in PM2.)
func waitServing(t *testing.T, e *env, url string, n int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	e.waitFor(fmt.Sprintf("%d workers listening", n), 60*time.Second, func() bool {
		listening := 0
		for _, p := range e.jlist() {
			if p.Pm2Env.Corral.Cluster != nil && len(p.Pm2Env.Corral.Cluster.Listening) > 0 {
				listening++
			}
		}
		if listening < n {
			return false
		}
		_, err := get(t.Context(), client, url)
		return err == nil
	})
}

// onlinePIDs returns the pid of every online process, by id.
func onlinePIDs(e *env) map[int]int {
	out := map[int]int{}
	for _, p := range e.jlist() {
		if p.Pm2Env.Status == "online" {
			out[p.ID] = p.PID
		}
	}
	return out
}

// checkRoundRobin sends sequential requests, a new connection each, and checks that every
// window of n consecutive answers comes from n different workers: round-robin order. Turns
// alternate strictly only while no hand-off is waiting for its worker's answer (a worker may
// answer the client before the daemon reads its answer to the hand-off, and a worker with one
// unanswered is not next; docs/node-cluster-protocol.md §6.2), so each request waits for that.
func checkRoundRobin(t *testing.T, e *env, url string, n int) {
	t.Helper()
	client := newConnClient()
	var seq []int
	for range n * 6 {
		waitNoInFlight(t, e)
		pid, err := get(t.Context(), client, url)
		if err != nil {
			t.Fatalf("request failed: %v", err)
		}
		seq = append(seq, pid)
	}
	for i := 0; i+n <= len(seq); i++ {
		seen := map[int]bool{}
		for _, p := range seq[i : i+n] {
			seen[p] = true
		}
		if len(seen) != n {
			t.Fatalf("answers are not round-robin over %d workers: %v", n, seq)
		}
	}
}

// waitNoInFlight waits until every connection the daemon handed to a worker was answered.
func waitNoInFlight(t *testing.T, e *env) {
	t.Helper()
	e.waitFor("every hand-off to be answered", 30*time.Second, func() bool {
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c != nil && c.InFlight != 0 {
				return false
			}
		}
		return true
	})
}

// reloadUnderLoad reloads app while 4 clients send requests to url, a new connection each, and
// fails the test if a request failed. It returns the reload's output and the stopped load.
func reloadUnderLoad(t *testing.T, e *env, url, app string) (result, *load) {
	t.Helper()
	l := startLoad(url, 4, false)
	l.waitOK(e, 200)
	r := e.ok("reload", app)
	l.waitOK(e, 200)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("reload dropped requests: %s\nreload output:\n%s", l, r)
	}
	return r, l
}

// checkReplaced fails the test unless every process online before (pids by id, see onlinePIDs)
// is online after with another pid.
func checkReplaced(t *testing.T, before, after map[int]int) {
	t.Helper()
	for id, pid := range before {
		if after[id] == pid || after[id] == 0 {
			t.Fatalf("process %d not replaced: %v -> %v", id, before, after)
		}
	}
}

// reloadTwiceKeepAlive reloads app twice while 8 keep-alive clients send requests to url, and
// fails the test if one failed. POST, so the client cannot hide a failure by retrying.
func reloadTwiceKeepAlive(t *testing.T, e *env, url, app string) {
	t.Helper()
	l := startLoadMethod(url, 8, true, "POST")
	l.waitOK(e, 300)
	e.ok("reload", app)
	l.waitOK(e, 300)
	e.ok("reload", app)
	l.waitOK(e, 300)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("keep-alive requests failed during two reloads: %s", l)
	}
}

func TestClusterRoundRobinPlainHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 3)
	if got := e.proc(0).Pm2Env.ExecMode; got != "cluster_mode" {
		t.Fatalf("exec_mode %q, want cluster_mode", got)
	}
	checkRoundRobin(t, e, url, 3)
	// Distribution is visible: every worker has connections in jlist, ls and describe.
	r := e.ok("ls")
	if !strings.Contains(r.stdout, "conns") {
		t.Fatalf("ls has no connection column:\n%s", r.stdout)
	}
	d := e.ok("describe", "cluster_http").stdout
	if !strings.Contains(d, "connections") {
		t.Fatalf("describe shows no distribution:\n%s", d)
	}
}

func TestClusterRoundRobinExpress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_express.js")
	linkNodeModules(t, e)
	_, url := startCluster(t, e, "cluster_express.js", 2)
	checkRoundRobin(t, e, url, 2)
}

// linkNodeModules makes the npm fixtures (installed by the test setup) visible to apps in the
// test's work dir.
func linkNodeModules(t *testing.T, e *env) {
	t.Helper()
	abs, err := filepath.Abs("testdata/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(e.dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
}

// TestClusterReloadUnderLoad: a rolling reload under continuous load, a new connection per
// request, fails no request; every worker is replaced.
func TestClusterReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 2)
	before := onlinePIDs(e)
	r, _ := reloadUnderLoad(t, e, url, "cluster_http")
	checkReplaced(t, before, onlinePIDs(e))
	if !strings.Contains(r.stdout, "Reload summary") || !strings.Contains(r.stdout, "ready in") {
		t.Fatalf("reload prints no summary:\n%s", r)
	}
	// restart in cluster mode takes the same rolling path.
	l := startLoad(url, 4, false)
	l.waitOK(e, 100)
	e.ok("restart", "cluster_http")
	l.waitOK(e, 100)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("restart dropped requests: %s", l)
	}
}

// TestClusterWorkerKilled: kill -9 of one worker under load keeps the port open; failures are
// at most the requests in flight on that worker, and the worker is replaced.
func TestClusterWorkerKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 2)
	victim := e.proc(0)
	const conc = 4
	l := startLoad(url, conc, false)
	l.waitOK(e, 200)
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the killed worker to be replaced", 30*time.Second, func() bool {
		p := e.proc(0)
		return p.Pm2Env.Status == "online" && p.PID != victim.PID
	})
	l.waitOK(e, 200)
	l.stop()
	if l.failed.Load() > conc {
		t.Fatalf("%d requests failed, more than the %d that can be in flight: %s", l.failed.Load(), conc, l)
	}
	for msg := range l.errors {
		if strings.Contains(msg, "refused") {
			t.Fatalf("the port refused connections: %s", l)
		}
	}
}

// TestClusterScaleUnderLoad: scale 4 -> 1 -> 4 under load fails no request.
func TestClusterScaleUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 4)
	l := startLoad(url, 4, false)
	l.waitOK(e, 200)
	e.ok("scale", "cluster_http", "1")
	if n := len(e.jlist()); n != 1 {
		t.Fatalf("%d processes after scale 1", n)
	}
	l.waitOK(e, 200)
	e.ok("scale", "cluster_http", "4")
	waitServing(t, e, url, 4)
	l.waitOK(e, 400)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("scaling dropped requests: %s", l)
	}
	// Instance numbers are reused: 0..3 again.
	seen := map[string]bool{}
	for _, p := range e.jlist() {
		seen[p.Pm2Env.Env["NODE_APP_INSTANCE"]] = true
	}
	for i := range 4 {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("instance %d missing after scaling: %v", i, seen)
		}
	}
}

// TestClusterReloadNeverReady: a replacement that never listens aborts the reload; the old
// workers keep serving and the command says which worker failed and why.
func TestClusterReloadNeverReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	mark := filepath.Join(e.dir, "broken")
	e.vars["NOT_READY_IF"] = mark
	_, url := startCluster(t, e, "cluster_http.js", 2, "--listen-timeout", "1500")
	before := onlinePIDs(e)
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := startLoad(url, 2, false)
	l.waitOK(e, 50)
	r := e.fails("reload", "cluster_http")
	l.waitOK(e, 50)
	l.stop()
	if !strings.Contains(r.stderr+r.stdout, "never called listen()") || !strings.Contains(r.stderr+r.stdout, "process 0") {
		t.Fatalf("reload failure does not say which worker and why:\n%s", r)
	}
	if l.failed.Load() != 0 {
		t.Fatalf("requests failed during the aborted reload: %s", l)
	}
	if after := onlinePIDs(e); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("workers changed although the reload aborted: %v -> %v", before, after)
	}
}

// TestClusterPortBelongsToApp: the port stays open while the only worker restarts, and closes
// when the app is stopped.
func TestClusterPortBelongsToApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 1)
	victim := e.proc(0).PID
	l := startLoad(url, 2, false)
	l.waitOK(e, 50)
	_ = syscall.Kill(victim, syscall.SIGKILL)
	e.waitFor("replacement", 30*time.Second, func() bool { p := e.proc(0); return p.PID != victim && p.Pm2Env.Status == "online" })
	l.waitOK(e, 50)
	l.stop()
	for msg := range l.errors {
		if strings.Contains(msg, "refused") {
			t.Fatalf("the port refused connections while its only worker restarted: %s", l)
		}
	}
	e.ok("stop", "cluster_http")
	client := &http.Client{Timeout: 5 * time.Second}
	if _, err := get(t.Context(), client, url); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("port still open after stop: %v", err)
	}
	e.ok("start", "cluster_http")
	waitServing(t, e, url, 1)
	if _, err := get(t.Context(), client, url); err != nil {
		t.Fatalf("port not reopened by start: %v", err)
	}
}

// TestClusterDaemonFDsStable: the daemon holds as many fds after 10,000 connections as before.
func TestClusterDaemonFDsStable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 2)
	daemonPID := e.daemonPID()
	count := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", daemonPID))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := count()
	l := startLoad(url, 8, false)
	e.waitFor("10,000 connections", 180*time.Second, func() bool { return l.ok.Load()+l.failed.Load() >= 10000 })
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("requests failed: %s", l)
	}
	e.waitFor(fmt.Sprintf("the daemon's fds to return to %d", before), 20*time.Second, func() bool { return count() <= before })
}

// TestClusterRollbacks: the three ways back from cluster mode. scale to 1 and back to max;
// the ecosystem file switched to fork mode and restarted; stop + delete.
func TestClusterRollbacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	file := func(mode string, instances string) {
		e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
			name: 'web', script: './cluster_http.js', exec_mode: %q, instances: %s,
		}] }`, mode, instances))
	}
	file("cluster", "2")
	e.ok("start", "ecosystem.config.js")
	waitServing(t, e, url, 2)

	// 1. scale to one worker, then back to one per CPU.
	l := startLoad(url, 2, false)
	l.waitOK(e, 50)
	e.ok("scale", "web", "1")
	l.waitOK(e, 50)
	e.ok("scale", "web", "max")
	l.waitOK(e, 50)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("scale 1 / max dropped requests: %s", l)
	}

	// 2. the file says fork mode now: restart applies it; the app binds the port itself.
	file("fork", "1")
	e.ok("restart", "ecosystem.config.js")
	procs := e.jlist()
	if len(procs) != 1 || procs[0].Pm2Env.ExecMode != "fork_mode" {
		t.Fatalf("after switching to fork mode: %+v", procs)
	}
	client := newConnClient()
	e.waitFor("the fork-mode app to serve", 30*time.Second, func() bool { _, err := get(t.Context(), client, url); return err == nil })

	// 3. stop + delete: corral lets go of everything.
	e.ok("stop", "web")
	e.ok("delete", "web")
	if _, err := get(t.Context(), client, url); err == nil {
		t.Fatal("the port still answers after delete")
	}
}

// TestClusterSharedPolicy: sched_policy 'shared' hands the listening socket to every worker.
func TestClusterSharedPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 2, "--sched-policy", "shared")
	l := startLoad(url, 4, false)
	l.waitOK(e, 300)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("requests failed: %s", l)
	}
	// The kernel, not corral, chooses the worker: corral counts no hand-offs.
	for _, p := range e.jlist() {
		if c := p.Pm2Env.Corral.Cluster; c == nil || c.Connections != 0 || len(c.Listening) == 0 {
			t.Fatalf("shared policy stats: %+v", c)
		}
	}
}

// TestClusterReloadKeepAlive: keep-alive clients lose nothing either. The workers' preload
// makes a draining server answer each next request with Connection: close instead of closing
// idle connections under the clients. POST, so the client cannot hide failures by retrying.
func TestClusterReloadKeepAlive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	_, url := startCluster(t, e, "cluster_http.js", 2)
	reloadTwiceKeepAlive(t, e, url, "cluster_http")
}
