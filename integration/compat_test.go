package integration

// The PM2 compatibility suite: what a PM2 runbook does, run against corral, one test per
// behaviour of PM2's own end-to-end scripts (written for corral, modelled on what those
// scripts check). Tests are named TestCompat*, so `go test -run TestCompat ./integration`
// runs the suite alone; it runs in CI with the rest (`go test ./...`). The deliberate
// differences are in the README's "Moving from PM2" table, and tested as such here.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestCompatClusterNoListen (1, 2): a cluster app that never calls listen() is online, as in
// PM2 (its readiness is a field apart: the supervisor's tests check it before listen_timeout);
// restart and reload replace it.
func TestCompatClusterNoListen(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js", "-i", "2", "--min-uptime", "300", "--listen-timeout", "1000")
	for _, p := range e.jlist() {
		if p.Pm2Env.Status != "online" || p.Pm2Env.ExecMode != "cluster_mode" {
			t.Fatalf("process %d right after start: %s, %s; want online, cluster_mode", p.ID, p.Pm2Env.Status, p.Pm2Env.ExecMode)
		}
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

// TestCompatValueFlags (3): -l, -o and -e take their value as the next word, as PM2's parser
// does; -l alone still means the default combined log.
func TestCompatValueFlags(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js", "-l", "combined.log", "-o", "out.log", "-e", "err.log")
	env := e.pm2env(0)
	for key, want := range map[string]string{"pm_log_path": "combined.log", "pm_out_log_path": "out.log", "pm_err_log_path": "err.log"} {
		if got, _ := env[key].(string); got != filepath.Join(e.dir, want) {
			t.Errorf("%s = %q, want %s", key, got, filepath.Join(e.dir, want))
		}
	}
	e.waitFor("lines in combined.log", 30*time.Second, func() bool {
		return strings.Contains(readFile(filepath.Join(e.dir, "combined.log")), "ok")
	})
	e.ok("start", "-l", "echo.js", "--name", "deflog")
	if got, _ := e.pm2env(1)["pm_log_path"].(string); got == "" || filepath.Dir(got) != filepath.Join(e.home, "logs") {
		t.Errorf("-l before the script: pm_log_path = %q, want the default in the home's logs", got)
	}
}

// TestCompatScriptTarget (4): a script is a target, as in PM2.
func TestCompatScriptTarget(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js")
	pid := e.waitStatus(0, "online", 20*time.Second).PID
	e.ok("restart", "echo.js")
	e.waitFor("a new pid", 20*time.Second, func() bool { p := e.proc(0); return p.PID != pid && p.PID > 0 })
	e.ok("reload", "echo.js")
	e.ok("stop", "echo.js")
	e.waitStatus(0, "stopped", 20*time.Second)
	e.ok("delete", "echo.js")
	if n := len(e.jlist()); n != 0 {
		t.Fatalf("%d processes after delete echo.js", n)
	}
}

// TestCompatVerbs (5): startOrRestart, startOrReload, startOrGracefulReload, prettylist,
// updatePM2 and init exist.
func TestCompatVerbs(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("all.json", `{"apps":[{"name":"echo","script":"echo.js"}]}`)
	e.ok("startOrRestart", "all.json")
	pid := e.waitStatus(0, "online", 20*time.Second).PID
	for _, verb := range []string{"startOrReload", "startOrGracefulReload", "startOrRestart"} {
		e.ok(verb, "all.json")
		p := e.waitStatus(0, "online", 20*time.Second)
		if p.PID == pid || p.PID == 0 {
			t.Fatalf("%s all.json did not restart echo (pid %d)", verb, p.PID)
		}
		pid = p.PID
	}
	if n := len(e.jlist()); n != 1 {
		t.Fatalf("%d processes, want 1", n)
	}
	r := e.ok("prettylist")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || !strings.Contains(r.stdout, "\n  ") {
		t.Fatalf("prettylist is not indented JSON of one process (%v):\n%s", err, r.stdout)
	}
	e.ok("updatePM2", "--help")
	e.ok("init")
	if !strings.Contains(readFile(filepath.Join(e.dir, "ecosystem.config.js")), "module.exports") {
		t.Fatal("init wrote no ecosystem.config.js")
	}
	if r := e.fails("ecosystem"); !strings.Contains(r.stderr, "exists already") {
		t.Fatalf("init over an existing file:\n%s", r)
	}
}

// TestCompatRestartFlags (6): attribute flags apply on restart and on start of an existing
// app, as in PM2.
func TestCompatRestartFlags(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js", "--no-vizion")
	e.ok("restart", "echo", "--watch")
	if w := e.pm2env(0)["watch"]; w != true {
		t.Fatalf("restart --watch: watch = %v", w)
	}
	e.ok("start", "echo", "--node-args=--harmony")
	if args := fmt.Sprint(e.pm2env(0)["node_args"]); args != "[--harmony]" {
		t.Fatalf("start echo --node-args=--harmony: node_args = %s", args)
	}
	e.ok("restart", "echo", "--cron-restart", "*/30 * * * *")
	if c := e.pm2env(0)["cron_restart"]; c != "*/30 * * * *" {
		t.Fatalf("cron_restart = %v", c)
	}
	e.ok("restart", "echo", "--cron-restart", "0")
	if c, ok := e.pm2env(0)["cron_restart"]; ok {
		t.Fatalf("--cron-restart 0 left cron_restart = %v", c)
	}
	e.write("all.json", `{"apps":[{"name":"echo","script":"echo.js"},{"name":"other","script":"echo.js"}]}`)
	e.ok("restart", "all.json", "--only", "echo")
	if n := len(e.jlist()); n != 1 {
		t.Fatalf("restart all.json --only echo started %d apps, want 1", n)
	}
	// Deliberate: a name is an app's identity; restart does not rename.
	if r := e.fails("restart", "0", "--name", "new"); !strings.Contains(r.stderr, "cannot rename") {
		t.Fatalf("restart --name:\n%s", r)
	}
}

// TestCompatOneNameOneApp (8): starting a script that runs is refused as in PM2, unless -f,
// which restarts it (deliberate: PM2 starts a second app of that name); a stopped one starts
// again; several scripts start several apps; a name made of digits is refused (deliberate: it
// would be an id).
func TestCompatOneNameOneApp(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("child.js", echoJS)
	e.write("server.js", echoJS)
	e.ok("start", "child.js", "echo.js", "server.js")
	if n := len(e.jlist()); n != 3 {
		t.Fatalf("%d processes, want 3", n)
	}
	pid := e.waitStatus(1, "online", 20*time.Second).PID
	// Running: refused, as PM2 does ("Script already launched"), with the ways forward.
	if r := e.fails("start", "echo.js"); !strings.Contains(r.stderr, "already running as echo") || !strings.Contains(r.stderr, "corral restart echo") {
		t.Errorf("start of a running script:\n%s", r)
	}
	// -f: PM2 starts a second app of the same name; corral restarts the one it has, and says so.
	r := e.ok("start", "echo.js", "-f")
	if !strings.Contains(r.stdout, "Restarted") || !strings.Contains(r.stdout, "one app per name") {
		t.Errorf("start -f of a running app does not say it restarted it:\n%s", r)
	}
	e.waitFor("echo restarted", 20*time.Second, func() bool { p := e.proc(1); return p.PID != pid && p.PID > 0 })
	if n := len(e.jlist()); n != 3 {
		t.Fatalf("start -f: %d processes, want 3 (one app per name)", n)
	}
	// Stopped: start starts it again, as PM2 does.
	e.ok("stop", "echo")
	e.ok("start", "echo.js")
	e.waitStatus(1, "online", 20*time.Second)
	if r := e.fails("start", "echo.js", "--name", "455"); !strings.Contains(r.stderr, "digits") {
		t.Fatalf("--name 455:\n%s", r)
	}
}

// TestCompatStdin (10): an ecosystem file in JSON on stdin.
func TestCompatStdin(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	cmd := exec.Command(e.bin, "start", "-")
	cmd.Dir, cmd.Env = e.dir, e.environ()
	cmd.Stdin = strings.NewReader(`{"apps":[{"name":"a","script":"echo.js"},{"name":"b","script":"echo.js"}]}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start -: %v\n%s", err, out)
	}
	if n := len(e.jlist()); n != 2 {
		t.Fatalf("%d processes, want 2", n)
	}
}

// TestCompatExitCodes (13): `corral` alone, and stop/restart all with no app, exit 1.
func TestCompatExitCodes(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.fails()
	e.fails("stop", "all")
	e.fails("restart", "all")
	e.fails("reload", "all")
	e.ok("start", "echo.js")
	e.ok("stop", "all")
	e.ok("restart", "all")
}

// TestCompatMessages: what a new user reads first.
func TestCompatMessages(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	if r := e.fails("start", "missing.config.js"); !strings.HasPrefix(r.stderr, "[corral] error: missing.config.js: no such file") {
		t.Errorf("start missing.config.js:\n%s", r)
	}
	e.ok("start", "echo.js", "--name", "web")
	r := e.fails("reload", "wbe")
	if !strings.Contains(r.stderr, `did you mean "web"?`) || strings.Contains(r.stdout, "--update-env") {
		t.Errorf("reload wbe:\n%s", r)
	}
	if r := e.fails("scale", "web"); !strings.Contains(r.stderr, "corral scale web 4") {
		t.Errorf("scale web:\n%s", r)
	}
	r = e.ok("delete", "web")
	if !strings.Contains(r.stdout, "Deleted web[0]") || strings.Contains(r.stdout, "┌") {
		t.Errorf("delete web:\n%s", r)
	}
}

// TestCompatIncrementVar (7): increment_var gives each instance the value plus its number.
func TestCompatIncrementVar(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("inc.config.js", `module.exports = { apps: [{ name: 'inc', script: 'echo.js', instances: 2,
  exec_mode: 'fork', increment_var: 'PORT', env: { PORT: 3000 } }] };`)
	e.ok("start", "inc.config.js")
	got := map[string]bool{}
	for _, p := range e.jlist() {
		r := e.ok("env", fmt.Sprint(p.ID))
		for _, port := range []string{"3000", "3001"} {
			if strings.Contains(r.stdout, "PORT: "+port+"\n") {
				got[port] = true
			}
		}
	}
	if !got["3000"] || !got["3001"] {
		t.Fatalf("the instances' PORTs: %v, want 3000 and 3001", got)
	}
}

// TestCompatLogTypeJSON (11): log_type 'json' writes PM2's JSON objects.
func TestCompatLogTypeJSON(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("json.config.js", `module.exports = { apps: [{ name: 'js', script: 'echo.js', log_type: 'json' }] };`)
	e.ok("start", "json.config.js")
	out := e.proc(0).Pm2Env.OutLog
	var first string
	e.waitFor("a line in the out log", 30*time.Second, func() bool {
		first, _, _ = strings.Cut(readFile(out), "\n")
		return first != ""
	})
	var line struct {
		Message   string `json:"message"`
		Timestamp string `json:"timestamp"`
		Type      string `json:"type"`
		ProcessID *int   `json:"process_id"`
		AppName   string `json:"app_name"`
	}
	if err := json.Unmarshal([]byte(first), &line); err != nil || line.Message != "ok" || line.Type != "out" || line.AppName != "js" || line.ProcessID == nil || line.Timestamp == "" {
		t.Fatalf("first line %q (%v): want PM2's JSON object", first, err)
	}
}

// TestCompatDeployEnv (12): --env production applies deploy.production.env too.
func TestCompatDeployEnv(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("deploy.config.js", `module.exports = {
  apps: [{ name: 'dep', script: 'echo.js', env: { OWN: 'app' } }],
  deploy: { production: { user: 'node', host: 'example.com', ref: 'origin/main', repo: 'x', path: '/srv',
    env: { FROM_DEPLOY: 'yes', OWN: 'deploy' } } },
};`)
	e.ok("start", "deploy.config.js", "--env", "production")
	r := e.ok("env", "0")
	if !strings.Contains(r.stdout, "FROM_DEPLOY: yes\n") || !strings.Contains(r.stdout, "OWN: app\n") {
		t.Fatalf("env of an app started with --env production:\n%s", r.stdout)
	}
}

// TestCompatPortInUse: a cluster app whose port is taken does not start in silence: start
// names the port and its holder, exits 1, and leaves the app stopped; restarted anyway, its
// failed listens count toward max_restarts and it ends errored. Logs write the address as a
// person does.
func TestCompatPortInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	e.vars["PORT"] = strconv.Itoa(port)
	r := e.fails("start", "cluster_http.js", "-i", "2", "--name", "web", "--max-restarts", "3")
	want := fmt.Sprintf("port %d is already in use (pid %d, ", port, os.Getpid())
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "corral restart web") {
		t.Fatalf("start on a taken port: want %q and the way out:\n%s", want, r)
	}
	for _, p := range e.jlist() {
		if p.Pm2Env.Status != "stopped" {
			t.Fatalf("process %d is %s after a start that failed to listen, want stopped", p.ID, p.Pm2Env.Status)
		}
	}
	daemonLog := readFile(filepath.Join(e.home, "corral.log"))
	if !strings.Contains(daemonLog, fmt.Sprintf("port %d is already in use", port)) || strings.Contains(daemonLog, "null:") {
		t.Fatalf("corral.log does not name the port as a person would:\n%s", daemonLog)
	}
	e.ok("restart", "web")
	for _, id := range []int{0, 1} {
		p := e.waitStatus(id, "errored", 60*time.Second)
		if p.Pm2Env.RestartTime > 3 {
			t.Fatalf("process %d restarted %d times past max_restarts 3", id, p.Pm2Env.RestartTime)
		}
	}
}

// TestCompatForkRollback: the README's rollback from cluster to fork mode with instances: 'max'
// left in the file is refused, saying what to change, and the app keeps serving in cluster
// mode; with instances: 1 it goes through and the app serves from one fork-mode process.
func TestCompatForkRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	file := func(mode, instances string) {
		e.write("ecosystem.config.js", fmt.Sprintf("module.exports = { apps: [{ name: 'web', script: 'cluster_http.js', exec_mode: '%s', instances: %s }] };\n", mode, instances))
	}
	file("cluster", "2")
	e.ok("start", "ecosystem.config.js")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServing(t, e, url, 2)
	file("fork", "2")
	r := e.fails("restart", "ecosystem.config.js")
	if !strings.Contains(r.stderr, "instances: 1") || !strings.Contains(r.stderr, "EADDRINUSE") {
		t.Fatalf("rollback with 2 instances:\n%s", r)
	}
	for _, p := range e.jlist() {
		if p.Pm2Env.ExecMode != "cluster_mode" || p.Pm2Env.Status != "online" {
			t.Fatalf("after a refused rollback process %d is %s, %s", p.ID, p.Pm2Env.ExecMode, p.Pm2Env.Status)
		}
	}
	waitServing(t, e, url, 2)
	file("fork", "1")
	e.ok("restart", "ecosystem.config.js")
	procs := e.jlist()
	if len(procs) != 1 || procs[0].Pm2Env.ExecMode != "fork_mode" {
		t.Fatalf("after the rollback: %+v", procs)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	e.waitFor("the fork-mode process to serve", 30*time.Second, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestCompatTwoAppsOnePort (14, deliberate): a second app on a port another app of corral
// serves does not crash-loop: its start says the port belongs to another app, and it is
// stopped.
func TestCompatTwoAppsOnePort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.ok("start", "cluster_http.js", "-i", "2", "--name", "a")
	waitServing(t, e, fmt.Sprintf("http://127.0.0.1:%d/", port), 2)
	r := e.fails("start", "cluster_http.js", "-i", "2", "--name", "b")
	if !strings.Contains(r.stderr, "by another app of this corral") {
		t.Fatalf("second app on the port:\n%s", r)
	}
}

// TestCompatNumbering: after scaling down and up, save and resurrect, ids follow instance
// numbers again (id 0 runs NODE_APP_INSTANCE 0), as PM2 users expect.
func TestCompatNumbering(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.ok("start", "echo.js", "-i", "2", "--name", "web", "--listen-timeout", "300")
	e.ok("scale", "web", "1")
	e.ok("scale", "web", "2")
	e.ok("save")
	e.ok("kill")
	e.ok("resurrect")
	procs := e.jlist()
	if len(procs) != 2 {
		t.Fatalf("%d processes after resurrect, want 2", len(procs))
	}
	for i, p := range procs {
		if p.ID != i || p.Pm2Env.Corral.Instance != i {
			t.Fatalf("process %d runs instance %d after resurrect: %+v", p.ID, p.Pm2Env.Corral.Instance, procs)
		}
	}
}

// TestCompatRestartCounts: every restart and reload counts once per process, by name, by
// script and with all, in cluster mode for an app that never listens, as in PM2; a reload of a
// fork-mode app falls back to a restart.
func TestCompatRestartCounts(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("child.js", echoJS)
	e.ok("start", "child.js", "-i", "2", "--listen-timeout", "500", "--min-uptime", "200")
	e.ok("start", "echo.js")
	want := func(what string, counts map[int]int) {
		t.Helper()
		for _, p := range e.jlist() {
			if n, ok := counts[p.ID]; ok && p.Pm2Env.RestartTime != n {
				t.Fatalf("after %s: process %d (%s) restart_time %d, want %d", what, p.ID, p.Name, p.Pm2Env.RestartTime, n)
			}
			if p.Pm2Env.Status != "online" {
				t.Fatalf("after %s: process %d is %s", what, p.ID, p.Pm2Env.Status)
			}
		}
	}
	e.ok("restart", "all")
	want("restart all", map[int]int{0: 1, 1: 1, 2: 1})
	e.ok("restart", "child.js")
	want("restart child.js", map[int]int{0: 2, 1: 2, 2: 1})
	e.ok("restart", "child")
	want("restart child", map[int]int{0: 3, 1: 3, 2: 1})
	e.ok("reload", "all")
	want("reload all", map[int]int{0: 4, 1: 4, 2: 2})
	e.ok("reload", "echo")
	want("reload echo", map[int]int{0: 4, 1: 4, 2: 3})
}

// TestCompatEnvRefresh: restart keeps the environment the app was started with; --update-env
// takes the shell's; several names in one command act on each (PM2's env-refresh and
// multiparam scripts).
func TestCompatEnvRefresh(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("child.js", echoJS)
	e.vars["TEST_VARIABLE"] = "hello1"
	e.ok("start", "echo.js", "--name", "env")
	e.ok("start", "child.js")
	envOf := func() string { return e.ok("env", "0").stdout }
	if !strings.Contains(envOf(), "TEST_VARIABLE: hello1\n") {
		t.Fatalf("env at start:\n%s", envOf())
	}
	e.vars["TEST_VARIABLE"] = "89hello89"
	e.ok("restart", "env", "--update-env")
	if !strings.Contains(envOf(), "TEST_VARIABLE: 89hello89\n") {
		t.Fatalf("after restart --update-env:\n%s", envOf())
	}
	e.vars["TEST_VARIABLE"] = "CLUNEWSTER"
	e.ok("restart", "env")
	if !strings.Contains(envOf(), "TEST_VARIABLE: 89hello89\n") {
		t.Fatalf("a restart without --update-env changed the environment:\n%s", envOf())
	}
	e.ok("restart", "env", "child")
	for _, p := range e.jlist() {
		if p.Pm2Env.RestartTime != map[string]int{"env": 3, "child": 1}[p.Name] {
			t.Fatalf("restart env child: %s restarted %d times", p.Name, p.Pm2Env.RestartTime)
		}
	}
	e.ok("stop", "env", "child")
	e.ok("delete", "env", "child")
	if n := len(e.jlist()); n != 0 {
		t.Fatalf("%d processes after delete env child", n)
	}
}

// TestCompatNodeArgsUpdate: node_args follow restart, start and reload with --node-args, and
// --node-args=null clears them (PM2's app-config-update script).
func TestCompatNodeArgsUpdate(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	nodeArgs := func(id int) string { return fmt.Sprint(e.pm2env(id)["node_args"]) }
	e.ok("start", "echo.js")
	if a := nodeArgs(0); a != "[]" {
		t.Fatalf("node_args at start: %s", a)
	}
	e.ok("restart", "echo.js", "--node-args=--harmony")
	if a := nodeArgs(0); a != "[--harmony]" {
		t.Fatalf("after restart --node-args: %s", a)
	}
	e.ok("delete", "all")
	e.ok("start", "echo.js", "-i", "1", "--listen-timeout", "300", "--min-uptime", "100")
	e.ok("reload", "echo.js", "--node-args=--harmony")
	if a := nodeArgs(0); a != "[--harmony]" {
		t.Fatalf("after reload --node-args in cluster mode: %s", a)
	}
	e.ok("reload", "echo.js", "--node-args=null")
	if a := nodeArgs(0); a != "[]" {
		t.Fatalf("after --node-args=null: %s", a)
	}
	if p := e.proc(0); p.Pm2Env.Status != "online" || p.Pm2Env.ExecMode != "cluster_mode" {
		t.Fatalf("after the reloads: %s, %s", p.Pm2Env.Status, p.Pm2Env.ExecMode)
	}
}

// TestCompatTargetsMore: /regex/ targets, an ecosystem file on stdin for delete, and NULL
// log paths (PM2's operate-regex, piped-config and log-null scripts).
func TestCompatTargetsMore(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	for _, n := range []string{"echo-3", "echo-1", "echo-2"} {
		e.ok("start", "echo.js", "--name", n, "-e", "NULL")
	}
	e.ok("stop", "/echo-[1,2]/")
	for _, p := range e.jlist() {
		if want := map[string]string{"echo-3": "online", "echo-1": "stopped", "echo-2": "stopped"}[p.Name]; p.Pm2Env.Status != want {
			t.Fatalf("after stop /echo-[1,2]/: %s is %s, want %s", p.Name, p.Pm2Env.Status, want)
		}
		if p.Pm2Env.ErrLog != "/dev/null" {
			t.Fatalf("-e NULL: error log %q", p.Pm2Env.ErrLog)
		}
	}
	if _, err := os.Stat(filepath.Join(e.home, "logs", "echo-1-error.log")); err == nil {
		t.Fatal("-e NULL wrote an error log")
	}
	cmd := exec.Command(e.bin, "delete", "-")
	cmd.Dir, cmd.Env = e.dir, e.environ()
	cmd.Stdin = strings.NewReader(`{"apps":[{"name":"echo-1","script":"echo.js"},{"name":"echo-3","script":"echo.js"}]}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("delete -: %v\n%s", err, out)
	}
	if procs := e.jlist(); len(procs) != 1 || procs[0].Name != "echo-2" {
		t.Fatalf("after delete - of echo-1 and echo-3: %+v", procs)
	}
}

// TestCompatEcosystemVerbs: every verb takes an ecosystem file, with --only, and start,
// restart and reload of a file whose apps are gone start them (PM2's json-file and
// homogen-json-action scripts).
func TestCompatEcosystemVerbs(t *testing.T) {
	t.Parallel()
	e := compatEnv(t)
	e.write("child.js", echoJS)
	e.write("all.json", `{"apps":[{"name":"echo","script":"echo.js"},{"name":"child","script":"child.js","instances":2,"exec_mode":"fork"}]}`)
	counts := func(what string, want int, status string) {
		t.Helper()
		procs := e.jlist()
		if len(procs) != 3 {
			t.Fatalf("after %s: %d processes, want 3", what, len(procs))
		}
		for _, p := range procs {
			if p.Pm2Env.RestartTime != want || p.Pm2Env.Status != status {
				t.Fatalf("after %s: %s[%d] restart_time %d, %s; want %d, %s", what, p.Name, p.ID, p.Pm2Env.RestartTime, p.Pm2Env.Status, want, status)
			}
		}
	}
	e.ok("start", "all.json")
	counts("start", 0, "online")
	e.ok("start", "all.json")
	counts("start again", 1, "online")
	e.ok("restart", "all.json")
	counts("restart", 2, "online")
	e.ok("reload", "all.json")
	counts("reload", 3, "online")
	e.ok("stop", "all.json")
	counts("stop", 3, "stopped")
	e.ok("start", "all.json")
	for _, p := range e.jlist() {
		if p.Pm2Env.Status != "online" {
			t.Fatalf("start of a stopped file: %s is %s", p.Name, p.Pm2Env.Status)
		}
	}
	e.ok("delete", "all.json", "--only", "echo")
	if procs := e.jlist(); len(procs) != 2 || procs[0].Name != "child" {
		t.Fatalf("after delete all.json --only echo: %+v", procs)
	}
	e.ok("delete", "all")
	e.ok("restart", "all.json")
	counts("restart after delete", 0, "online")
	e.ok("delete", "all.json")
	e.ok("reload", "all.json")
	counts("reload after delete", 0, "online")
}
