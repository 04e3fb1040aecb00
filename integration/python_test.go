package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// startPython starts py_server.py (a Python server that takes its socket from corral, systemd
// style) with the given attributes and waits until the port answers.
func startPython(t *testing.T, e *env, attrs string) string {
	t.Helper()
	port := freePort(t)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
		name: 'py', script: 'py_server.py', listen: %d, %s
	}] }`, port, attrs))
	e.ok("start", "ecosystem.config.js")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := newConnClient()
	e.waitFor("the Python server to answer", 60*time.Second, func() bool { _, err := get(t.Context(), client, url); return err == nil })
	return url
}

// TestPythonClusterInheritedSocket: any program that takes an inherited socket runs in
// cluster mode (LISTEN_FDS, LISTEN_PID equal to its own pid, LISTEN_FDNAMES) and reloads under
// load without a failed request.
func TestPythonClusterInheritedSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "py_server.py")
	url := startPython(t, e, "exec_mode: 'cluster', instances: 2")
	for _, p := range e.jlist() {
		e.waitStatus(p.ID, "online", 30*time.Second)
		e.waitFor(fmt.Sprintf("worker %d to serve on its inherited socket", p.ID), 30*time.Second, func() bool {
			return strings.Contains(readFile(p.Pm2Env.OutLog), "serving on fd 3 (listen)")
		})
	}
	before := onlinePIDs(e)
	_, l := reloadUnderLoad(t, e, url, "py")
	after := onlinePIDs(e)
	for id, pid := range before {
		if after[id] == pid {
			t.Fatalf("process %d not replaced: %v -> %v", id, before, after)
		}
	}
	if len(l.byPID) < 2 {
		t.Fatalf("only one worker answered: %s", l)
	}
}

// TestForkModeInheritedSocketReload: even one process in fork mode reloads without refusing a
// connection when corral owns its socket.
func TestForkModeInheritedSocketReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "py_server.py")
	url := startPython(t, e, "")
	e.waitStatus(0, "online", 30*time.Second)
	if got := e.proc(0).Pm2Env.ExecMode; got != "fork_mode" {
		t.Fatalf("exec mode %s", got)
	}
	pid := e.proc(0).PID
	l := startLoad(url, 2, false)
	l.waitOK(e, 100)
	e.ok("reload", "py")
	l.waitOK(e, 100)
	e.ok("restart", "py")
	l.waitOK(e, 100)
	l.stop()
	if l.failed.Load() != 0 {
		t.Fatalf("reload/restart of a fork-mode app with an inherited socket dropped requests: %s", l)
	}
	if e.proc(0).PID == pid {
		t.Fatal("the process was not replaced")
	}
}

// TestSdNotifyReady: with wait_ready, a program is online once it sends READY=1 to
// NOTIFY_SOCKET (sd_notify), as under systemd's Type=notify.
func TestSdNotifyReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "py_server.py")
	e.vars["SD_NOTIFY"] = "1"
	startPython(t, e, "wait_ready: true, listen_timeout: 60000")
	e.waitStatus(0, "online", 30*time.Second)
	if !strings.Contains(readFile(e.home+"/corral.log"), "online (sd_notify READY=1)") {
		t.Fatalf("not made online by sd_notify:\n%s", readFile(e.home+"/corral.log"))
	}
}
