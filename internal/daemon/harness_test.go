package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// testDaemon is a real daemon, in this test process, on a home of its own, driven through its
// real API socket. Its apps are real processes (sh scripts, Node); every one of them carries
// the home in its environment, so whatever a failed test leaves is found and killed.
type testDaemon struct {
	t    *testing.T
	d    *Daemon
	home string
	dir  string // the apps' working directory
	cl   *api.Client
	done chan error
	stop context.CancelFunc
}

// markerVar is set in every test app's environment to the daemon's home.
const markerVar = "CORRAL_DAEMON_TEST_HOME"

// newTestDaemon starts a daemon; tune (if not nil) adjusts it before it serves.
func newTestDaemon(t *testing.T, tune func(d *Daemon)) *testDaemon {
	t.Helper()
	// Short: the control socket's path must fit a sockaddr_un.
	h, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Paths: home.At(h), SampleInterval: 200 * time.Millisecond})
	if err != nil {
		os.RemoveAll(h)
		t.Fatal(err)
	}
	if tune != nil {
		tune(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{t: t, d: d, home: h, dir: t.TempDir(), cl: api.NewClient(d.paths.Socket), done: make(chan error, 1), stop: cancel}
	go func() { td.done <- d.Run(ctx) }()
	t.Cleanup(td.close)
	select {
	case <-d.Ready():
	case err := <-td.done:
		t.Fatalf("daemon did not start: %v", err)
	}
	return td
}

// close stops the daemon (which stops every app), then kills whatever is left and fails the
// test if anything was.
func (td *testDaemon) close() {
	td.stop()
	select {
	case err := <-td.done:
		if err != nil {
			td.t.Errorf("daemon Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		td.t.Errorf("the daemon did not stop within 60s")
	}
	if left := killMarked(td.home); len(left) > 0 {
		td.t.Errorf("processes left behind after the daemon stopped: %v", left)
	}
	if td.t.Failed() {
		testutil.LogTail(td.t, "daemon log", td.d.paths.DaemonLog, 80)
	}
	os.RemoveAll(td.home)
}

// markedPIDs lists the live processes whose environment carries the marker of home.
func markedPIDs(home string) []int { return procstat.PIDsWithEnv(markerVar, home) }

// zombie reports whether pid has exited (and may wait to be reaped).
func zombie(pid int) bool {
	st, err := procstat.ReadStat(pid)
	return err != nil || st.Exited
}

// killMarked kills the processes of home and returns their pids.
func killMarked(home string) []int {
	pids := markedPIDs(home)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return pids
}

// script writes an executable sh script into the apps' directory and returns its path.
func (td *testDaemon) script(name, body string) string {
	td.t.Helper()
	p := filepath.Join(td.dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		td.t.Fatal(err)
	}
	return p
}

// app returns the spec of an app running script (a path) directly, marked as this daemon's.
func (td *testDaemon) app(name, script string) spec.App {
	s := spec.Defaults()
	s.Name = name
	s.Script = script
	s.Interpreter = "none"
	s.Cwd = td.dir
	s.KillTimeout = 3000
	s.BaseEnv = map[string]string{"PATH": os.Getenv("PATH"), markerVar: td.home}
	return s
}

// sleeper is an app that runs until stopped.
func (td *testDaemon) sleeper(name string) spec.App {
	return td.app(name, td.script("sleeper.sh", "exec sleep 100000"))
}

// nodeServer is a Node HTTP server on port, to run in cluster mode.
func (td *testDaemon) nodeServer(name string, port int) spec.App {
	td.t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		td.t.Skip("node is not installed")
	}
	p := filepath.Join(td.dir, "server.js")
	if err := os.WriteFile(p, []byte(`require('http').createServer((q, s) => s.end(String(process.pid))).listen(Number(process.env.PORT))`), 0o644); err != nil {
		td.t.Fatal(err)
	}
	s := td.app(name, p)
	s.Interpreter = node
	s.ExecMode = spec.ModeCluster
	s.Env = map[string]string{"PORT": strconv.Itoa(port)}
	return s
}

// start asks the daemon to start apps (file mode: create or update).
func (td *testDaemon) start(apps ...spec.App) (api.ActionResponse, error) {
	return td.cl.Start(context.Background(), api.StartRequest{Apps: apps, Mode: api.ModeFile})
}

// mustStart starts apps and fails the test on any error.
func (td *testDaemon) mustStart(apps ...spec.App) api.ActionResponse {
	td.t.Helper()
	resp, err := td.start(apps...)
	if err != nil || len(resp.Errors) > 0 {
		td.t.Fatalf("start: %v %v", err, resp.Errors)
	}
	return resp
}

// act runs an action on targets.
func (td *testDaemon) act(action api.Action, targets ...string) (api.ActionResponse, error) {
	return td.cl.Act(context.Background(), action, api.ActionRequest{Targets: targets})
}

// scale scales app to count.
func (td *testDaemon) scale(app, count string) (api.ActionResponse, error) {
	return td.cl.Scale(context.Background(), api.ScaleRequest{App: app, Count: count})
}

// list returns every process.
func (td *testDaemon) list() []api.Process {
	td.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	procs, err := td.cl.Processes(ctx, false)
	if err != nil {
		td.t.Fatalf("list: %v", err)
	}
	return procs
}

// waitStatus waits until every process of app has status and returns them.
func (td *testDaemon) waitStatus(app string, n int, status string) []api.Process {
	td.t.Helper()
	var got []api.Process
	testutil.WaitFor(td.t, fmt.Sprintf("%d process(es) of %s %s", n, app, status), 30*time.Second, func() bool {
		got = got[:0]
		for _, p := range td.list() {
			if p.Name == app {
				if p.Status != status {
					return false
				}
				got = append(got, p)
			}
		}
		return len(got) == n
	})
	return got
}

// statusCode is the HTTP status of an API error (0 for nil, -1 for an error that is not one).
func statusCode(err error) int {
	if err == nil {
		return 0
	}
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return -1
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int { return testutil.FreePort(t) }

// portOpen reports whether something accepts connections on port.
func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// getRoot GETs http://127.0.0.1:port/ n times, each on a connection of its own, and discards
// the answers.
func getRoot(t *testing.T, port, n int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range n {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// notifyServer is an app that owns port through the daemon (inherited socket) and is ready
// when it says so with sd_notify: the test binary in its notify role.
func (td *testDaemon) notifyServer(name string, port int) spec.App {
	td.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		td.t.Fatal(err)
	}
	s := td.app(name, exe)
	sock, err := spec.ParseSocket(strconv.Itoa(port))
	if err != nil {
		td.t.Fatal(err)
	}
	s.Listen = []spec.Socket{sock}
	s.WaitReady = true
	s.Env = map[string]string{roleVar: roleNotify}
	return s
}
