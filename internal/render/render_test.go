package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// update rewrites the golden files from the current output: go test ./internal/render -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// now is the fixed "current time" of every golden rendering.
var now = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

func app(name, mode string, instances int) spec.App {
	a := spec.Defaults()
	a.Name = name
	a.ExecMode = mode
	a.Instances = instances
	a.Script = "/srv/" + name + "/server.js"
	a.Interpreter = "node"
	a.Cwd = "/srv/" + name
	a.OutFile = "/home/deploy/.corral/logs/" + name + "-out.log"
	a.ErrorFile = "/home/deploy/.corral/logs/" + name + "-error.log"
	a.MergeLogs = mode == spec.ModeFork && instances == 1
	return a
}

// fixtures are the processes the golden files render: fork and cluster, online, stopped,
// errored, waiting restart, a very long name, CPU and memory in every unit.
func fixtures() []api.Process {
	api1 := app("api", spec.ModeFork, 1)
	api1.Env = map[string]string{"NODE_ENV": "production", "SESSION_SECRET": "********", "PORT": "3000"}
	api1.Args = []string{"--port", "3000"}
	api1.MaxMemoryRestart = 300 << 20
	api1.CronRestart = "0 3 * * *"

	web := app("web", spec.ModeCluster, 2)
	web.InterpreterArgs = []string{"--max-old-space-size=256"}
	web.ExpBackoffRestartDelay = 100
	web.StopExitCodes = []int{0, 3}
	web.Watch = []string{"/srv/web/src"}

	worker := app("billing-reconciliation-nightly-worker-for-eu-west", spec.ModeFork, 1)
	worker.Interpreter = "none"
	worker.Script = "/usr/local/bin/reconcile"
	worker.Autorestart = false

	crash := app("crashy", spec.ModeFork, 1)
	crash.RestartDelay = 2000
	crash.ShutdownWithMessage = true

	created := now.Add(-26 * time.Hour)
	return []api.Process{
		{
			ID: 0, Name: "api", Namespace: "default", Instance: 0, PID: 41234, Status: "online",
			Restarts: 3, StartedAt: now.Add(-90 * time.Second), CreatedAt: created,
			CPU: 1.25, Memory: 55_154_892, LostLogLines: 1234, LostLogBytes: 56_789,
			OutLog: api1.OutFile, ErrLog: api1.ErrorFile, PidFile: "/home/deploy/.corral/pids/api-0.pid",
			Version: "1.4.2", Username: "deploy", App: api1,
		},
		{
			ID: 1, Name: "web", Namespace: "frontend", Instance: 0, PID: 41300, Status: "online",
			Restarts: 0, StartedAt: now.Add(-3 * time.Hour), CreatedAt: created,
			CPU: 12, Memory: 1_288_490_189,
			OutLog: "/home/deploy/.corral/logs/web-out-1.log", ErrLog: "/home/deploy/.corral/logs/web-error-1.log",
			PidFile: "/home/deploy/.corral/pids/web-1.pid",
			Version: "2.0.0", Username: "deploy", Watching: true, App: web,
			Cluster: &api.WorkerStats{WorkerID: 7, Listening: []string{"0.0.0.0:8080"}, Connections: 15230, ConnPerSec: 41.5, Refused: 2, InFlight: 1,
				Requests: 120400, RequestsByClass: [5]uint64{0, 120000, 0, 388, 12}, Requests5xx: 12, ReqPerSec: 312.25,
				LatencyP50MS: 3.2, LatencyP99MS: 48.75,
				Runtime: &api.WorkerRuntime{EventLoopP50MS: ptr(10.1), EventLoopP99MS: ptr(12.4), EventLoopMaxMS: ptr(30.0), HeapUsed: 24 << 20, HeapTotal: 32 << 20}},
		},
		{
			ID: 2, Name: "web", Namespace: "frontend", Instance: 1, PID: 41301, Status: "launching",
			Restarts: 1, StartedAt: now.Add(-1 * time.Second), CreatedAt: created,
			CPU: 0.04, Memory: 900,
			OutLog: "/home/deploy/.corral/logs/web-out-2.log", ErrLog: "/home/deploy/.corral/logs/web-error-2.log",
			PidFile: "/home/deploy/.corral/pids/web-2.pid",
			Version: "2.0.0", Username: "deploy", Watching: true, App: web,
			Cluster: &api.WorkerStats{WorkerID: 9, Listening: []string{}, Connections: 0},
		},
		{
			ID: 3, Name: worker.Name, Namespace: "batch", Instance: 0, PID: 0, Status: "stopped",
			Restarts: 0, StartedAt: now.Add(-40 * 24 * time.Hour), CreatedAt: created,
			Exited: true, ExitCode: 0,
			OutLog: worker.OutFile, ErrLog: worker.ErrorFile,
			Version: "N/A", Username: "deploy", App: worker,
		},
		{
			ID: 4, Name: "crashy", Namespace: "default", Instance: 0, PID: 0, Status: "errored",
			Restarts: 15, Unstable: 16, StartedAt: now.Add(-5 * time.Minute), CreatedAt: created,
			Exited: true, ExitCode: 1, LastError: "too many unstable restarts (16): not restarting any more",
			OutLog: crash.OutFile, ErrLog: crash.ErrorFile,
			Version: "N/A", Username: "deploy", App: crash,
		},
		{
			ID: 5, Name: "crashy2", Namespace: "default", Instance: 0, PID: 0, Status: "waiting restart",
			Restarts: 2, Unstable: 2, StartedAt: now.Add(-5 * time.Second), CreatedAt: created,
			Exited: true, ExitSignal: "SIGKILL", PrevRestartDelayMS: 150, LogError: "logs: open /srv/c.log: refused a symlink",
			OutLog: crash.OutFile, ErrLog: crash.ErrorFile,
			Version: "N/A", Username: "deploy", App: crash,
		},
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), got, *update)
}

// goldenPair renders plain and coloured, compares both with testdata/name.golden and
// testdata/name_color.golden, checks that they agree and that the plain one is aligned, and
// returns the plain rendering.
func goldenPair(t *testing.T, name string, render func(Options) string) string {
	t.Helper()
	plain := render(Options{Now: now})
	coloured := render(Options{Now: now, Color: true})
	golden(t, name+".golden", plain)
	golden(t, name+"_color.golden", coloured)
	checkColour(t, plain, coloured)
	checkAligned(t, plain)
	return plain
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// checkColour: the plain rendering has no escape codes; the coloured one has some, and is the
// plain one once they are stripped (colour never shifts the alignment). No escape code is
// emitted around text that has no colour (a bare reset).
func checkColour(t *testing.T, plain, coloured string) {
	t.Helper()
	if strings.Contains(plain, "\x1b") {
		t.Errorf("plain rendering contains escape codes:\n%q", plain)
	}
	if !strings.Contains(coloured, "\x1b[") {
		t.Errorf("coloured rendering has no colour")
	}
	if stripped := ansi.ReplaceAllString(coloured, ""); stripped != plain {
		t.Errorf("coloured rendering, stripped of colour, differs from the plain one:\n%s\n---\n%s", stripped, plain)
	}
	open := false
	for _, code := range ansi.FindAllString(coloured, -1) {
		if code == ansiReset {
			if !open {
				t.Errorf("coloured rendering resets a colour it never set:\n%q", coloured)
				return
			}
			open = false
		} else {
			open = true
		}
	}
}

// checkAligned: every line of a box is as wide as the first.
func checkAligned(t *testing.T, out string) {
	t.Helper()
	width := -1
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "┌") && !strings.HasPrefix(line, "│") && !strings.HasPrefix(line, "├") && !strings.HasPrefix(line, "└") {
			width = -1 // a title between boxes
			continue
		}
		w := len([]rune(ansi.ReplaceAllString(line, "")))
		if width < 0 {
			width = w
		} else if w != width {
			t.Errorf("misaligned line (%d columns, the box has %d):\n%s", w, width, line)
		}
	}
}

func TestTableGolden(t *testing.T) {
	procs := fixtures()
	forkOnly := []api.Process{procs[0], procs[3], procs[4], procs[5]}
	for _, tc := range []struct {
		name  string
		procs []api.Process
	}{
		{"ls_fork", forkOnly},
		{"ls_cluster", procs},
		{"ls_empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goldenPair(t, tc.name, func(o Options) string { return Table(tc.procs, o) })
		})
	}
}

func TestTableColumns(t *testing.T) {
	procs := fixtures()
	out := Table([]api.Process{procs[0], procs[3]}, Options{Now: now})
	for _, want := range []string{"│ id │ name", "│ ↺ │ status", "watching │", "90s", "52.6mb", "1.3%", "41234"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "conns") {
		t.Errorf("a table without cluster apps has a conns column:\n%s", out)
	}
	// A stopped process shows no pid, uptime, cpu or memory.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "billing-reconciliation") {
			for _, want := range []string{"│ 0   ", "│ stopped", "│ 0%  ", "│ 0b  "} {
				if !strings.Contains(line, want) {
					t.Errorf("stopped row lacks %q: %s", want, line)
				}
			}
		}
	}
	if out := Table(procs, Options{Now: now}); !strings.Contains(out, "│ conns │") || !strings.Contains(out, "│ 15230 ") {
		t.Errorf("a table with cluster apps lacks their connections:\n%s", out)
	}
}

func TestDescribeGolden(t *testing.T) {
	procs := fixtures()
	for _, tc := range []struct {
		name     string
		p        api.Process
		revealed bool
	}{
		{"describe_fork_online", procs[0], false},
		{"describe_fork_online_revealed", procs[0], true},
		{"describe_cluster_online", procs[1], false},
		{"describe_stopped_long_name", procs[3], false},
		{"describe_errored", procs[4], false},
		{"describe_waiting_restart", procs[5], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goldenPair(t, tc.name, func(o Options) string { return Describe(tc.p, o, tc.revealed) })
		})
	}
}

func TestDescribeContent(t *testing.T) {
	procs := fixtures()
	out := Describe(procs[0], Options{Now: now}, false)
	for _, want := range []string{
		"Describing process with id 0 - name api", "│ status ", "online", "│ restarts ", "│ uptime             │ 90s",
		"/home/deploy/.corral/logs/api-out.log", "fork_mode", "NODE_APP_INSTANCE=0", "300.0mb",
		"secrets masked", "SESSION_SECRET", "created at         │ 2026-03-13T13:09:26.000Z",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	cl := Describe(procs[1], Options{Now: now}, false)
	for _, want := range []string{"cluster_mode", "15230", "0.0.0.0:8080"} {
		if !strings.Contains(cl, want) {
			t.Errorf("describe of a cluster worker lacks %q:\n%s", want, cl)
		}
	}
	if e := Describe(procs[4], Options{Now: now}, false); !strings.Contains(e, "too many unstable restarts") || !strings.Contains(e, "code 1") {
		t.Errorf("describe of an errored process does not say why:\n%s", e)
	}
}

func TestDistributionGolden(t *testing.T) {
	procs := fixtures()
	plain := goldenPair(t, "distribution", func(o Options) string { return Distribution(procs, o) })
	for _, want := range []string{"│ 1  │ web  │ 41300 │ 0 ", "100.0%", "0.0%"} {
		if !strings.Contains(plain, want) {
			t.Errorf("distribution lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "api") {
		t.Errorf("distribution lists a fork-mode process:\n%s", plain)
	}
	if got := Distribution(procs[:1], Options{Now: now}); got != "" {
		t.Errorf("distribution of fork-mode processes only: %q, want nothing", got)
	}
	// Nothing handed off yet: no share to compute.
	idle := []api.Process{procs[2]}
	if got := Distribution(idle, Options{Now: now}); !strings.Contains(got, "│ -     │") {
		t.Errorf("distribution with no connection at all:\n%s", got)
	}
}

func TestMiniListGolden(t *testing.T) {
	procs := fixtures()
	golden(t, "ls_mini.golden", MiniList(procs, Options{Now: now}))
}

// TestUnknownStartTime: an online process whose start time is not known yet shows an uptime
// of 0 everywhere, not the time since year 1.
func TestUnknownStartTime(t *testing.T) {
	p := fixtures()[0]
	p.StartedAt = time.Time{}
	for what, want := range map[string]*regexp.Regexp{
		Table([]api.Process{p}, Options{Now: now}):    regexp.MustCompile(`│ 41234 │ 0      │`),
		MiniList([]api.Process{p}, Options{Now: now}): regexp.MustCompile(`\nuptime : 0\n`),
		Describe(p, Options{Now: now}, false):         regexp.MustCompile(`│ uptime\s+│ 0\s+│`),
	} {
		if !want.MatchString(what) {
			t.Errorf("uptime of an unknown start time is not 0:\n%s", what)
		}
	}
	if js, _ := api.JList([]api.Process{p}); !strings.Contains(string(js), `"pm_uptime":0`) {
		t.Errorf("jlist pm_uptime of an unknown start time is not 0: %s", js)
	}
}

func TestFormatUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:         "0s",
		0:                    "0s",
		90 * time.Second:     "90s",
		119 * time.Second:    "119s",
		2 * time.Minute:      "2m",
		119 * time.Minute:    "119m",
		2 * time.Hour:        "2h",
		47 * time.Hour:       "47h",
		48 * time.Hour:       "2D",
		59 * 24 * time.Hour:  "59D",
		60 * 24 * time.Hour:  "2M",
		800 * 24 * time.Hour: "2Y",
	} {
		if got := FormatUptime(d); got != want {
			t.Errorf("FormatUptime(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFormatCPU(t *testing.T) {
	for c, want := range map[float64]string{0: "0%", 1.25: "1.3%", 12: "12%", 0.04: "0%", 99.96: "100%", 150.5: "150.5%"} {
		if got := FormatCPU(c); got != want {
			t.Errorf("FormatCPU(%v) = %q, want %q", c, got, want)
		}
	}
}

// TestJListShape checks the keys scripts written for `pm2 jlist` rely on, with their types.
func TestJListShape(t *testing.T) {
	procs := fixtures()
	procs[0].App.BaseEnv = map[string]string{"PATH": "/usr/bin", "status": "from-env", "MY_FLAG": "inherited"}
	procs[0].App.Env["MY_FLAG"] = "declared"
	custom := procs[3]
	custom.App.InstanceVar = "WORKER_NO"
	custom.Instance = 4
	raw, err := api.JList([]api.Process{procs[0], procs[1], custom})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, []byte("\n")) != 0 {
		t.Errorf("jlist is not one line (scripts read it with one readline)")
	}
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("jlist is not a JSON array: %v\n%s", err, raw)
	}
	if len(list) != 3 {
		t.Fatalf("%d entries, want 3", len(list))
	}
	get := func(m map[string]any, path string) any {
		t.Helper()
		var cur any = m
		for _, k := range strings.Split(path, ".") {
			obj, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%s: %v is not an object", path, cur)
			}
			if cur, ok = obj[k]; !ok {
				t.Fatalf("jlist entry has no %s", path)
			}
		}
		return cur
	}
	num := func(m map[string]any, path string) float64 {
		t.Helper()
		f, ok := get(m, path).(float64)
		if !ok {
			t.Fatalf("%s is %T, want a number", path, get(m, path))
		}
		return f
	}
	str := func(m map[string]any, path string) string {
		t.Helper()
		s, ok := get(m, path).(string)
		if !ok {
			t.Fatalf("%s is %T, want a string", path, get(m, path))
		}
		return s
	}

	fork, cluster, stopped := list[0], list[1], list[2]
	if num(fork, "pid") != 41234 || str(fork, "name") != "api" || num(fork, "pm_id") != 0 {
		t.Errorf("pid/name/pm_id: %v %v %v", fork["pid"], fork["name"], fork["pm_id"])
	}
	if num(fork, "monit.memory") != 55_154_892 || num(fork, "monit.cpu") != 1.3 {
		t.Errorf("monit: %v", fork["monit"])
	}
	if str(fork, "pm2_env.status") != "online" || num(fork, "pm2_env.restart_time") != 3 || num(fork, "pm2_env.unstable_restarts") != 0 {
		t.Errorf("status/restart_time: %v %v", get(fork, "pm2_env.status"), get(fork, "pm2_env.restart_time"))
	}
	if got, want := int64(num(fork, "pm2_env.pm_uptime")), now.Add(-90*time.Second).UnixMilli(); got != want {
		t.Errorf("pm_uptime %d, want %d (epoch ms of the start)", got, want)
	}
	if got, want := int64(num(fork, "pm2_env.created_at")), now.Add(-26*time.Hour).UnixMilli(); got != want {
		t.Errorf("created_at %d, want %d", got, want)
	}
	if str(fork, "pm2_env.exec_mode") != "fork_mode" || str(cluster, "pm2_env.exec_mode") != "cluster_mode" {
		t.Errorf("exec_mode: %v, %v", get(fork, "pm2_env.exec_mode"), get(cluster, "pm2_env.exec_mode"))
	}
	if num(fork, "pm2_env.NODE_APP_INSTANCE") != 0 || num(list[1], "pm2_env.NODE_APP_INSTANCE") != 0 {
		t.Errorf("NODE_APP_INSTANCE missing or not a number")
	}
	if str(stopped, "pm2_env.instance_var") != "WORKER_NO" || num(stopped, "pm2_env.WORKER_NO") != 4 || str(stopped, "pm2_env.env.WORKER_NO") != "4" {
		t.Errorf("a custom instance_var is not set: %v", get(stopped, "pm2_env.WORKER_NO"))
	}
	if str(fork, "pm2_env.pm_out_log_path") != "/home/deploy/.corral/logs/api-out.log" ||
		str(fork, "pm2_env.pm_err_log_path") != "/home/deploy/.corral/logs/api-error.log" ||
		str(fork, "pm2_env.pm_pid_path") != "/home/deploy/.corral/pids/api-0.pid" {
		t.Errorf("log paths: %v %v", get(fork, "pm2_env.pm_out_log_path"), get(fork, "pm2_env.pm_err_log_path"))
	}
	if str(fork, "pm2_env.pm_exec_path") != "/srv/api/server.js" || str(fork, "pm2_env.pm_cwd") != "/srv/api" {
		t.Errorf("pm_exec_path/pm_cwd: %v %v", get(fork, "pm2_env.pm_exec_path"), get(fork, "pm2_env.pm_cwd"))
	}
	// env: the inherited environment overlaid with the declared one, also flattened onto
	// pm2_env; PM2's own keys win over a variable of the same name.
	if str(fork, "pm2_env.env.NODE_ENV") != "production" || str(fork, "pm2_env.env.PATH") != "/usr/bin" || str(fork, "pm2_env.env.MY_FLAG") != "declared" {
		t.Errorf("pm2_env.env: %v", get(fork, "pm2_env.env"))
	}
	if str(fork, "pm2_env.NODE_ENV") != "production" || str(fork, "pm2_env.PORT") != "3000" || str(fork, "pm2_env.MY_FLAG") != "declared" {
		t.Errorf("env vars are not flattened onto pm2_env")
	}
	if str(fork, "pm2_env.status") != "online" {
		t.Errorf("an env var named status overrode pm2_env.status")
	}
	if str(fork, "pm2_env.SESSION_SECRET") != "********" {
		t.Errorf("jlist does not render the (masked) value it was given")
	}
	if args, ok := get(fork, "pm2_env.args").([]any); !ok || len(args) != 2 {
		t.Errorf("pm2_env.args: %v", get(fork, "pm2_env.args"))
	}
	if _, ok := get(stopped, "pm2_env.node_args").([]any); !ok {
		t.Errorf("pm2_env.node_args is not an array when empty")
	}
	if num(fork, "pm2_env.max_memory_restart") != 300<<20 || str(fork, "pm2_env.cron_restart") != "0 3 * * *" {
		t.Errorf("max_memory_restart/cron_restart")
	}
	// PM2's watch is a boolean; the paths are corral's extra.
	if get(cluster, "pm2_env.watch") != true {
		t.Errorf("watch: %v", get(cluster, "pm2_env.watch"))
	}
	if w, ok := get(cluster, "pm2_env.corral.watch_paths").([]any); !ok || len(w) != 1 {
		t.Errorf("watch_paths: %v", get(cluster, "pm2_env.corral.watch_paths"))
	}
	if get(fork, "pm2_env.watch") != false {
		t.Errorf("watch off is not false: %v", get(fork, "pm2_env.watch"))
	}
	if num(stopped, "pid") != 0 || str(stopped, "pm2_env.status") != "stopped" || num(stopped, "pm2_env.exit_code") != 0 {
		t.Errorf("stopped: pid %v status %v exit_code %v", stopped["pid"], get(stopped, "pm2_env.status"), get(stopped, "pm2_env.exit_code"))
	}
	if num(cluster, "pm2_env.corral.cluster.requests") != 120400 || num(cluster, "pm2_env.corral.cluster.requests_5xx") != 12 ||
		num(cluster, "pm2_env.corral.cluster.runtime.heap_used") != 24<<20 {
		t.Errorf("corral.cluster requests: %v", get(cluster, "pm2_env.corral.cluster"))
	}
	if num(cluster, "pm2_env.axm_monitor.HTTP.value") != 18735 || str(cluster, "pm2_env.axm_monitor.HTTP.unit") != "req/min" ||
		num(cluster, "pm2_env.axm_monitor.HTTP Requests.value") != 120400 || num(cluster, "pm2_env.axm_monitor.Used Heap Size.value") != 24 {
		t.Errorf("axm_monitor: %v", get(cluster, "pm2_env.axm_monitor"))
	}
	if m, ok := get(fork, "pm2_env.axm_monitor").(map[string]any); !ok || len(m) != 0 {
		t.Errorf("axm_monitor of a process without request metrics: %v", get(fork, "pm2_env.axm_monitor"))
	}
	if num(cluster, "pm2_env.corral.cluster.connections") != 15230 {
		t.Errorf("corral.cluster: %v", get(cluster, "pm2_env.corral"))
	}
	if num(fork, "pm2_env.kill_timeout") != 1600 || num(fork, "pm2_env.min_uptime") != 1000 {
		t.Errorf("durations are not milliseconds: kill_timeout %v", get(fork, "pm2_env.kill_timeout"))
	}

	empty, err := api.JList(nil)
	if err != nil || string(empty) != "[]" {
		t.Errorf("jlist of nothing is %q (%v), want []", empty, err)
	}
}

func TestDaemonLine(t *testing.T) {
	started := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	now := started.Add(3*time.Minute + 5*time.Second)
	for _, tc := range []struct {
		name string
		v    api.Version
		want string
	}{
		{"no keeper", api.Version{Version: "1.2.3", PID: 42, Started: started},
			"corral daemon 1.2.3: pid 42, up 3m; no keeper: the apps end with the daemon\n"},
		{"fresh", api.Version{Version: "1.2.3", PID: 42, Started: started, Keeper: &api.KeeperInfo{PID: 40}},
			"corral daemon 1.2.3: pid 42, up 3m; restarted never, upgraded never; apps kept by pid 40\n"},
		{"after kills and an upgrade", api.Version{Version: "1.2.3", PID: 42, Started: started,
			Keeper: &api.KeeperInfo{PID: 40, Restarts: 5, Upgrades: 1, LastExit: "killed by SIGKILL"}},
			"corral daemon 1.2.3: pid 42, up 3m; restarted 5 times, upgraded once (the previous one: killed by SIGKILL); apps kept by pid 40\n"},
		{"unadoptable", api.Version{Version: "1.2.3", PID: 42, Started: started, Keeper: &api.KeeperInfo{PID: 40, Unadoptable: "old state"}},
			"corral daemon 1.2.3: pid 42, up 3m; restarted never, upgraded never; apps kept by pid 40\nwarning: old state\n"},
	} {
		if got := Daemon(tc.v, now); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestMonitGolden: monit's table, with and without cluster workers; a worker that has
// reported requests shows its rate, one that has not shows "-".
func TestMonitGolden(t *testing.T) {
	procs := fixtures()
	out := goldenPair(t, "monit", func(o Options) string { return Monit(procs, o) })
	for _, want := range []string{"│ req/s │", "│ 312.2 ", "│ 100.0%    │ 49ms │ 12  │"} {
		if !strings.Contains(out, want) {
			t.Errorf("monit lacks %q:\n%s", want, out)
		}
	}
	forkOnly := Monit([]api.Process{procs[0], procs[3]}, Options{Now: now})
	if strings.Contains(forkOnly, "req/s") || strings.Contains(forkOnly, "conns") {
		t.Errorf("monit without cluster workers has their columns:\n%s", forkOnly)
	}
	checkAligned(t, forkOnly)
}

func ptr[T any](v T) *T { return &v }
