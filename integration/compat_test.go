package integration

// The PM2 compatibility suite: what a PM2 runbook does, run against corral, one test per
// behaviour of PM2's own end-to-end scripts (written for corral, modelled on what those
// scripts check). Tests are named TestCompat*, so `go test -run TestCompat ./integration`
// runs the suite alone; it runs in CI with the rest (`go test ./...`). The deliberate
// differences are in the README's "Moving from PM2" table, and tested as such here.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// echoJS is PM2's favourite fixture: a script that prints and never listens.
const echoJS = "setInterval(() => console.log('ok'), 500);\n"

// compatEnv is an env with echo.js in its work dir.
func compatEnv(t *testing.T, fixtures ...string) *env {
	t.Helper()
	e := newEnv(t, fixtures...)
	e.write("echo.js", echoJS)
	return e
}

// jraw returns the raw jlist entries, for fields the jproc struct does not have.
func (e *env) jraw() []map[string]any {
	e.t.Helper()
	var out []map[string]any
	if err := json.Unmarshal([]byte(e.ok("jlist").stdout), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// pm2env returns pm2_env of the process with id, from the raw jlist.
func (e *env) pm2env(id int) map[string]any {
	e.t.Helper()
	for _, p := range e.jraw() {
		if int(p["pm_id"].(float64)) == id {
			return p["pm2_env"].(map[string]any)
		}
	}
	e.t.Fatalf("no process %d in jlist", id)
	return nil
}

func compatPIDs(e *env) map[int]int {
	out := map[int]int{}
	for _, p := range e.jlist() {
		out[p.ID] = p.PID
	}
	return out
}

// TestCompatClusterNoListen (1, 2): a cluster app that never calls listen() is online at once,
// as in PM2, with its readiness apart; restart and reload replace it.
func TestCompatClusterNoListen(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js", "-i", "2", "--min-uptime", "300", "--listen-timeout", "1000")
	for _, p := range e.jlist() {
		if p.Pm2Env.Status != "online" || p.Pm2Env.ExecMode != "cluster_mode" {
			t.Fatalf("process %d right after start: %s, %s; want online, cluster_mode", p.ID, p.Pm2Env.Status, p.Pm2Env.ExecMode)
		}
	}
	if ready := e.pm2env(0)["corral"].(map[string]any)["ready"]; ready != false {
		t.Fatalf("a worker that has not listened is ready: %v", ready)
	}
	before := compatPIDs(e)
	e.ok("restart", "echo")
	e.waitFor("restart to replace both workers", 30*time.Second, func() bool {
		now := compatPIDs(e)
		return now[0] != before[0] && now[1] != before[1] && now[0] > 0 && now[1] > 0
	})
	// Once listen_timeout has passed the workers count as ready: a reload replaces them one
	// by one, each judged by staying up.
	e.waitFor("workers judged ready", 30*time.Second, func() bool {
		for _, p := range e.jraw() {
			if p["pm2_env"].(map[string]any)["corral"].(map[string]any)["ready"] != true {
				return false
			}
		}
		return true
	})
	before = compatPIDs(e)
	r := e.ok("reload", "echo")
	after := compatPIDs(e)
	for id, pid := range before {
		if after[id] == pid || after[id] == 0 {
			t.Fatalf("reload left process %d at pid %d (before %d):\n%s", id, after[id], pid, r)
		}
	}
	for _, p := range e.jlist() {
		if p.Pm2Env.Status != "online" {
			t.Fatalf("process %d is %s after reload", p.ID, p.Pm2Env.Status)
		}
	}
}

// TestCompatWatchBool (9): jlist's watch is true or false, as in PM2, and stays after a stop.
func TestCompatWatchBool(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js", "--watch")
	if w := e.pm2env(0)["watch"]; w != true {
		t.Fatalf("watch = %v, want true", w)
	}
	e.ok("stop", "echo")
	if w := e.pm2env(0)["watch"]; w != true {
		t.Fatalf("watch after stop = %v, want true", w)
	}
	e.ok("start", "echo.js", "--name", "quiet")
	if w := e.pm2env(1)["watch"]; w != false {
		t.Fatalf("watch = %v, want false", w)
	}
}

var _ = fmt.Sprint
var _ = os.Getenv
var _ = filepath.Join
var _ = strings.Contains
