package ecosystem

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

// attrCase is one raw app and either a check of the result or the error it must give. Apps
// run app.js in a temporary directory unless raw says otherwise.
type attrCase struct {
	name    string
	raw     map[string]any
	check   func(t *testing.T, app spec.App, dir string)
	wantErr string
}

func runAttrCases(t *testing.T, cases []attrCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				"app.js": "", "worker.py": "", "run.sh": "", "tool.rb": "", "page.php": "", "x.pl": "",
				"mod.mjs": "", "mod.cjs": "", "main.ts": "", "notes.txt": "", "bin/server*": "#!/bin/sh\n",
			})
			raw := map[string]any{"script": "app.js"}
			for k, v := range tc.raw {
				raw[k] = v
			}
			app, _, err := normalizeIn(t, dir, raw)
			if tc.wantErr != "" {
				wantErrorLines(t, err, tc.wantErr)
				if !strings.HasPrefix(err.Error(), "command line: ") {
					t.Errorf("error does not start with the where label: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, app, dir)
		})
	}
}

func TestUnitParsing(t *testing.T) {
	runAttrCases(t, []attrCase{
		{name: "durations as numbers and strings", raw: map[string]any{
			"min_uptime": "10s", "restart_delay": 250, "kill_timeout": "1600", "listen_timeout": 1.5e3,
			"exp_backoff_restart_delay": "100ms", "watch_delay": "2m",
		}, check: func(t *testing.T, a spec.App, _ string) {
			if a.MinUptime != 10000 || a.RestartDelay != 250 || a.KillTimeout != 1600 || a.ListenTimeout != 1500 ||
				a.ExpBackoffRestartDelay != 100 || a.WatchDelay != 120000 {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "sizes", raw: map[string]any{"max_memory_restart": "512K", "log_max_size": 1048576}, check: func(t *testing.T, a spec.App, _ string) {
			if a.MaxMemoryRestart != 512<<10 || a.LogMaxSize != 1<<20 {
				t.Errorf("max_memory_restart %d log_max_size %d", a.MaxMemoryRestart, a.LogMaxSize)
			}
		}},
		{name: "numeric strings and boolean strings", raw: map[string]any{
			"max_restarts": "3", "log_retain": 0, "autorestart": "false", "wait_ready": true, "shutdown_with_message": "true",
		}, check: func(t *testing.T, a spec.App, _ string) {
			if a.MaxRestarts != 3 || a.LogRetain != 0 || a.Autorestart || !a.WaitReady || !a.ShutdownWithMessage {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "metrics on by default", raw: map[string]any{}, check: func(t *testing.T, a spec.App, _ string) {
			if a.NoPMX {
				t.Errorf("metrics off without pmx or automation")
			}
		}},
		{name: "pmx false", raw: map[string]any{"pmx": false}, check: func(t *testing.T, a spec.App, _ string) {
			if !a.NoPMX {
				t.Errorf("pmx: false left the metrics on")
			}
		}},
		{name: "automation false", raw: map[string]any{"automation": "false", "pmx": true}, check: func(t *testing.T, a spec.App, _ string) {
			if !a.NoPMX {
				t.Errorf("automation: false left the metrics on")
			}
		}},
		{name: "stop_exit_codes number", raw: map[string]any{"stop_exit_codes": 0}, check: func(t *testing.T, a spec.App, _ string) {
			if !slices.Equal(a.StopExitCodes, []int{0}) {
				t.Errorf("stop_exit_codes %v", a.StopExitCodes)
			}
		}},
		{name: "stop_exit_codes array", raw: map[string]any{"stop_exit_codes": []any{0, "3", 143}}, check: func(t *testing.T, a spec.App, _ string) {
			if !slices.Equal(a.StopExitCodes, []int{0, 3, 143}) {
				t.Errorf("stop_exit_codes %v", a.StopExitCodes)
			}
		}},
		{name: "cron with seconds", raw: map[string]any{"cron_restart": "*/30 * * * * *"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.CronRestart != "*/30 * * * * *" {
				t.Errorf("cron %q", a.CronRestart)
			}
		}},
		{name: "cron descriptor via alias", raw: map[string]any{"cron": "@hourly"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.CronRestart != "@hourly" {
				t.Errorf("cron %q", a.CronRestart)
			}
		}},
		{name: "cron disabled by 0", raw: map[string]any{"cron_restart": 0}, check: func(t *testing.T, a spec.App, _ string) {
			if a.CronRestart != "" {
				t.Errorf("cron %q", a.CronRestart)
			}
		}},
		{name: "cron disabled by false", raw: map[string]any{"cron_restart": false}, check: func(t *testing.T, a spec.App, _ string) {
			if a.CronRestart != "" {
				t.Errorf("cron %q", a.CronRestart)
			}
		}},
		{name: "kill_signal spellings", raw: map[string]any{"kill_signal": "term"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.KillSignal != "SIGTERM" {
				t.Errorf("kill_signal %q", a.KillSignal)
			}
		}},
		{name: "instances max", raw: map[string]any{"instances": "max"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Instances != 0 {
				t.Errorf("instances %d", a.Instances)
			}
		}},
		{name: "instances negative string", raw: map[string]any{"instances": "-1"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Instances != -1 {
				t.Errorf("instances %d", a.Instances)
			}
		}},
		{name: "time sets the date format", raw: map[string]any{"time": true}, check: func(t *testing.T, a spec.App, _ string) {
			if a.LogDateFormat != "YYYY-MM-DDTHH:mm:ss" {
				t.Errorf("log_date_format %q", a.LogDateFormat)
			}
		}},
		{name: "time keeps an explicit date format", raw: map[string]any{"time": true, "log_date_format": "HH:mm"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.LogDateFormat != "HH:mm" {
				t.Errorf("log_date_format %q", a.LogDateFormat)
			}
		}},
		{name: "args array with numbers", raw: map[string]any{"args": []any{"--port", 3000, true}}, check: func(t *testing.T, a spec.App, _ string) {
			if !slices.Equal(a.Args, []string{"--port", "3000", "true"}) {
				t.Errorf("args %q", a.Args)
			}
		}},
		{name: "node_args string split", raw: map[string]any{"node_args": "--max-old-space-size=4096 --inspect"}, check: func(t *testing.T, a spec.App, _ string) {
			if !slices.Equal(a.InterpreterArgs, []string{"--max-old-space-size=4096", "--inspect"}) {
				t.Errorf("interpreter_args %q", a.InterpreterArgs)
			}
		}},
		{name: "port sets PORT over env", raw: map[string]any{"port": "8080", "env": map[string]any{"PORT": 1, "DEBUG": false, "RATIO": 0.5, "OBJ": map[string]any{"a": 1}, "GONE": nil}},
			check: func(t *testing.T, a spec.App, _ string) {
				want := map[string]string{"PORT": "8080", "DEBUG": "false", "RATIO": "0.5", "OBJ": `{"a":1}`}
				if !mapsEqual(a.Env, want) {
					t.Errorf("env %v, want %v", a.Env, want)
				}
			}},
		{name: "watch true", raw: map[string]any{"watch": true}, check: func(t *testing.T, a spec.App, dir string) {
			if !slices.Equal(a.Watch, []string{dir}) || !slices.Equal(a.IgnoreWatch, []string{"node_modules", ".git", "*.log"}) {
				t.Errorf("watch %v ignore %v", a.Watch, a.IgnoreWatch)
			}
		}},
		{name: "watch paths", raw: map[string]any{"watch": []any{"src", "/etc/app.conf"}, "ignore_watch": "tmp"}, check: func(t *testing.T, a spec.App, dir string) {
			if !slices.Equal(a.Watch, []string{filepath.Join(dir, "src"), "/etc/app.conf"}) || !slices.Equal(a.IgnoreWatch, []string{"tmp"}) {
				t.Errorf("watch %v ignore %v", a.Watch, a.IgnoreWatch)
			}
		}},
		{name: "sched_policy shared in cluster", raw: map[string]any{"exec_mode": "cluster", "sched_policy": "shared"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.SchedPolicy != spec.PolicyShared {
				t.Errorf("sched_policy %q", a.SchedPolicy)
			}
		}},

		{name: "bad size", raw: map[string]any{"max_memory_restart": "300X"}, wantErr: `max_memory_restart: "300X" is not a size: use bytes or a value like "300M" or "1G"`},
		{name: "bad duration", raw: map[string]any{"min_uptime": "soon"}, wantErr: `min_uptime: "soon" is not a duration`},
		{name: "negative duration", raw: map[string]any{"kill_timeout": -5}, wantErr: `kill_timeout: -5 is not a duration`},
		{name: "fractional restarts", raw: map[string]any{"max_restarts": 1.5}, wantErr: `max_restarts: 1.5 is not a whole number`},
		{name: "negative log_retain", raw: map[string]any{"log_retain": -1}, wantErr: `log_retain: -1 is out of range`},
		{name: "bool type", raw: map[string]any{"autorestart": "yes"}, wantErr: `autorestart: expected true or false, got a string ("yes")`},
		{name: "instances type", raw: map[string]any{"instances": map[string]any{}}, wantErr: `instances: expected a number or "max", got an object`},
		{name: "env type", raw: map[string]any{"env": "x"}, wantErr: `env: expected an object of NAME: value pairs, got a string ("x")`},
		{name: "env_name type", raw: map[string]any{"env_production": []any{}}, wantErr: `env_production: expected an object of NAME: value pairs, got an array`},
		{name: "exec_mode value", raw: map[string]any{"exec_mode": "forking"}, wantErr: `exec_mode: "forking" is not an exec mode: use "fork" or "cluster"`},
		{name: "cron value", raw: map[string]any{"cron_restart": "every day"}, wantErr: `cron_restart: "every day" is not a cron expression`},
		{name: "cron true", raw: map[string]any{"cron_restart": true}, wantErr: `cron_restart: true is not a cron expression`},
		{name: "signal", raw: map[string]any{"kill_signal": "SIGNOPE"}, wantErr: `kill_signal: "SIGNOPE" is not a signal`},
		{name: "exit code range", raw: map[string]any{"stop_exit_codes": []any{0, 300}}, wantErr: `stop_exit_codes: 300 is not an exit code (0-255)`},
		{name: "sched_policy value", raw: map[string]any{"sched_policy": "random"}, wantErr: `sched_policy: "random" is not a policy`},
		{name: "args quote", raw: map[string]any{"args": `--name "unterminated`}, wantErr: `args: "--name \"unterminated" has an unterminated quote`},
		{name: "watch type", raw: map[string]any{"watch": 3}, wantErr: `watch: expected true, false, a path or an array of paths, got a number (3)`},
		{name: "out_file type", raw: map[string]any{"out_file": false}, wantErr: `out_file: expected a string, got a boolean (false)`},
		{name: "camelCase key named in error", raw: map[string]any{"maxMemoryRestart": "lots"}, wantErr: `maxMemoryRestart: "lots" is not a size`},
		{name: "name all digits", raw: map[string]any{"name": "123"}, wantErr: `name: "123" is made only of digits`},
		{name: "name all", raw: map[string]any{"name": "all"}, wantErr: `name: "all" is reserved`},
		{name: "name slash", raw: map[string]any{"name": "a/b"}, wantErr: `name: "a/b" must not contain '/'`},
		{name: "name ESC", raw: map[string]any{"name": "web\x1b[31m"}, wantErr: `name: "web\x1b[31m" contains a control character (U+001B)`},
		{name: "name BEL", raw: map[string]any{"name": "web\a"}, wantErr: `name: "web\a" contains a control character (U+0007)`},
		{name: "name newline", raw: map[string]any{"name": "web\nforged line"}, wantErr: `name: "web\nforged line" contains a control character (U+000A)`},
		{name: "name 5000 bytes", raw: map[string]any{"name": strings.Repeat("w", 5000)}, wantErr: `name: "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww"... (5000 bytes) is 5000 bytes long: the limit is 128`},
		{name: "name invalid UTF-8", raw: map[string]any{"name": "web\xff"}, wantErr: `name: "web\xff" is not valid UTF-8`},
		{name: "name zero-width space", raw: map[string]any{"name": "web\u200b"}, wantErr: `name: "web\u200b" contains an invisible character (U+200B)`},
		{name: "name trailing space", raw: map[string]any{"name": "web "}, wantErr: `name: "web " starts or ends with a space`},
		{name: "namespace ESC", raw: map[string]any{"namespace": "prod\x1b]0;title\a"}, wantErr: `namespace: "prod\x1b]0;title\a" contains a control character (U+001B)`},
		{name: "namespace 5000 bytes", raw: map[string]any{"namespace": strings.Repeat("n", 5000)}, wantErr: `namespace: "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"... (5000 bytes) is 5000 bytes long`},
		{name: "function value", raw: map[string]any{"instances": jsValue{kind: "a function"}}, wantErr: `instances: expected a number or "max", got a function`},
	})
}

func TestInterpreterDetection(t *testing.T) {
	interp := func(want string) func(*testing.T, spec.App, string) {
		return func(t *testing.T, a spec.App, _ string) {
			if a.Interpreter != want {
				t.Errorf("interpreter %q, want %q", a.Interpreter, want)
			}
		}
	}
	runAttrCases(t, []attrCase{
		{name: ".js", raw: map[string]any{"script": "app.js"}, check: interp("node")},
		{name: ".mjs", raw: map[string]any{"script": "mod.mjs"}, check: interp("node")},
		{name: ".cjs", raw: map[string]any{"script": "mod.cjs"}, check: interp("node")},
		{name: ".py", raw: map[string]any{"script": "worker.py"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Interpreter != "python3" || a.Env["PYTHONUNBUFFERED"] != "1" {
				t.Errorf("interpreter %q env %v", a.Interpreter, a.Env)
			}
		}},
		{name: ".sh", raw: map[string]any{"script": "run.sh"}, check: interp("bash")},
		{name: ".rb", raw: map[string]any{"script": "tool.rb"}, check: interp("ruby")},
		{name: ".php", raw: map[string]any{"script": "page.php"}, check: interp("php")},
		{name: ".pl", raw: map[string]any{"script": "x.pl"}, check: interp("perl")},
		{name: "executable", raw: map[string]any{"script": "bin/server"}, check: func(t *testing.T, a spec.App, dir string) {
			if a.Interpreter != "none" || a.Script != filepath.Join(dir, "bin/server") || a.Name != "server" {
				t.Errorf("interpreter %q script %q name %q", a.Interpreter, a.Script, a.Name)
			}
			if argv := a.Argv(); !slices.Equal(argv, []string{filepath.Join(dir, "bin/server")}) {
				t.Errorf("argv %q", argv)
			}
		}},
		{name: "explicit interpreter", raw: map[string]any{"script": "main.ts", "interpreter": "bun", "interpreter_args": "--smol"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Interpreter != "bun" || !slices.Equal(a.InterpreterArgs, []string{"--smol"}) {
				t.Errorf("interpreter %q args %q", a.Interpreter, a.InterpreterArgs)
			}
		}},
		{name: "exec_interpreter alias", raw: map[string]any{"script": "app.js", "exec_interpreter": "/usr/local/bin/node"}, check: interp("/usr/local/bin/node")},
		{name: "explicit none on executable", raw: map[string]any{"script": "bin/server", "interpreter": "none"}, check: interp("none")},
		{name: "unknown extension, not executable", raw: map[string]any{"script": "notes.txt"}, wantErr: `is not executable and its extension does not say what runs it: set "interpreter"`},
		{name: "none but not executable", raw: map[string]any{"script": "app.js", "interpreter": "none"}, wantErr: `is not executable: make it executable (chmod +x) or set "interpreter"`},
		{name: "directory", raw: map[string]any{"script": "bin"}, wantErr: `is a directory, not a program`},
		{name: "missing relative path", raw: map[string]any{"script": "./missing.js"}, wantErr: `script: no file `},
	})
}

func TestClusterInferenceAndMergeLogs(t *testing.T) {
	mode := func(wantMode string, wantMerge bool, wantInstances int) func(*testing.T, spec.App, string) {
		return func(t *testing.T, a spec.App, _ string) {
			if a.ExecMode != wantMode || a.MergeLogs != wantMerge || a.Instances != wantInstances {
				t.Errorf("exec_mode %q merge_logs %v instances %d, want %q %v %d", a.ExecMode, a.MergeLogs, a.Instances, wantMode, wantMerge, wantInstances)
			}
			if a.ExecMode == spec.ModeCluster && a.SchedPolicy != spec.PolicyRoundRobin {
				t.Errorf("cluster app without the default policy: %q", a.SchedPolicy)
			}
		}
	}
	runAttrCases(t, []attrCase{
		{name: "node without instances: fork, merged", raw: map[string]any{}, check: mode("fork", true, 1)},
		{name: "node with instances: cluster", raw: map[string]any{"instances": 4}, check: mode("cluster", false, 4)},
		{name: "node with instances max: cluster", raw: map[string]any{"instances": "max"}, check: mode("cluster", false, 0)},
		{name: "python with instances: fork copies", raw: map[string]any{"script": "worker.py", "instances": 2}, check: mode("fork", false, 2)},
		{name: "explicit fork wins", raw: map[string]any{"instances": 2, "exec_mode": "fork_mode"}, check: mode("fork", false, 2)},
		{name: "explicit cluster for any language", raw: map[string]any{"script": "worker.py", "exec_mode": "cluster_mode"}, check: mode("cluster", false, 1)},
		{name: "explicit merge_logs", raw: map[string]any{"instances": 2, "combine_logs": true}, check: mode("cluster", true, 2)},
	})
}

func TestDefaultLogPaths(t *testing.T) {
	runAttrCases(t, []attrCase{
		{name: "defaults", raw: map[string]any{"name": "web"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.OutFile != testLogDir+"/web-out.log" || a.ErrorFile != testLogDir+"/web-error.log" ||
				a.PidFile != testPidDir+"/web.pid" || a.LogFile != "" {
				t.Errorf("out %q err %q pid %q log %q", a.OutFile, a.ErrorFile, a.PidFile, a.LogFile)
			}
		}},
		{name: "unsafe name", raw: map[string]any{"name": "my app:v2", "log_file": true}, check: func(t *testing.T, a spec.App, _ string) {
			if a.OutFile != testLogDir+"/my-app-v2-out.log" || a.LogFile != testLogDir+"/my-app-v2.log" {
				t.Errorf("out %q log %q", a.OutFile, a.LogFile)
			}
		}},
		{name: "explicit paths", raw: map[string]any{"out": "logs/out.log", "err_file": "NULL", "log": "/var/log/app.log", "pid": "/dev/null"},
			check: func(t *testing.T, a spec.App, dir string) {
				if a.OutFile != filepath.Join(dir, "logs/out.log") || a.ErrorFile != spec.NullPath ||
					a.LogFile != "/var/log/app.log" || a.PidFile != spec.NullPath {
					t.Errorf("out %q err %q log %q pid %q", a.OutFile, a.ErrorFile, a.LogFile, a.PidFile)
				}
			}},
		{name: "relative to cwd", raw: map[string]any{"cwd": "bin", "script": "server", "error_file": "../err.log"}, check: func(t *testing.T, a spec.App, dir string) {
			if a.Cwd != filepath.Join(dir, "bin") || a.ErrorFile != filepath.Join(dir, "err.log") {
				t.Errorf("cwd %q err %q", a.Cwd, a.ErrorFile)
			}
		}},
	})
}

func TestFilterEnv(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.js": ""})
	opt := testOptions(dir)
	opt.Environ["SECRET_KEY"] = "s"
	opt.Environ["MY_TOKEN"] = "t"
	tests := []struct {
		filter any
		want   []string // variables kept
		gone   []string
	}{
		{false, []string{"PATH", "SECRET_KEY", "MY_TOKEN"}, nil},
		{true, nil, []string{"PATH", "SECRET_KEY", "MY_TOKEN", "HOME"}},
		{"SECRET", []string{"PATH", "MY_TOKEN"}, []string{"SECRET_KEY"}},
		{[]any{"SECRET", "TOKEN"}, []string{"PATH", "HOME"}, []string{"SECRET_KEY", "MY_TOKEN"}},
	}
	for _, tt := range tests {
		app, _, err := Normalize("command line", map[string]any{"script": "app.js", "filter_env": tt.filter, "env": map[string]any{"OWN": "1"}}, opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range tt.want {
			if _, ok := app.BaseEnv[k]; !ok {
				t.Errorf("filter_env %v dropped %s", tt.filter, k)
			}
		}
		for _, k := range tt.gone {
			if _, ok := app.BaseEnv[k]; ok {
				t.Errorf("filter_env %v kept %s", tt.filter, k)
			}
		}
		if app.Env["OWN"] != "1" {
			t.Errorf("filter_env %v touched the app's own env: %v", tt.filter, app.Env)
		}
	}
	if _, ok := opt.Environ["SECRET_KEY"]; !ok {
		t.Error("filter_env modified Options.Environ")
	}
}

func TestNormalizeCommandLine(t *testing.T) {
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep in PATH")
	}
	sleepPath, _ = filepath.Abs(sleepPath)
	dir := t.TempDir()

	app, warnings, err := normalizeIn(t, dir, map[string]any{"script": "sleep", "args": []string{"1000"}, "instances": 2})
	if err != nil {
		t.Fatal(err)
	}
	if app.Script != sleepPath || app.Interpreter != "none" || app.Name != "sleep" || app.Shell || app.Cwd != dir {
		t.Errorf("script %q interpreter %q name %q shell %v cwd %q", app.Script, app.Interpreter, app.Name, app.Shell, app.Cwd)
	}
	if app.ExecMode != spec.ModeFork || app.Source != "" || len(warnings) != 0 {
		t.Errorf("exec_mode %q source %q warnings %q", app.ExecMode, app.Source, warnings)
	}
	if argv := app.Argv(); !slices.Equal(argv, []string{sleepPath, "1000"}) {
		t.Errorf("argv %q", argv)
	}

	app, _, err = normalizeIn(t, dir, map[string]any{"script": "echo hi && sleep 10", "args": []any{"it's"}})
	if err != nil {
		t.Fatal(err)
	}
	if !app.Shell || app.Interpreter != "none" || app.Name != "echo" || app.Script != `echo hi && sleep 10 'it'\''s'` || app.Args != nil {
		t.Errorf("shell %v interpreter %q name %q script %q args %q", app.Shell, app.Interpreter, app.Name, app.Script, app.Args)
	}
	if argv := app.Argv(); argv[0] != "/bin/sh" || argv[1] != "-c" {
		t.Errorf("argv %q", argv)
	}

	_, _, err = normalizeIn(t, dir, map[string]any{"script": "no-such-program-xyz"})
	wantErrorLines(t, err, `command line: script: no file `+filepath.Join(dir, "no-such-program-xyz")+` and no program "no-such-program-xyz" in PATH`)

	_, _, err = normalizeIn(t, dir, map[string]any{"name": "web"})
	wantErrorLines(t, err, `command line: script is missing`)

	_, _, err = Normalize("command line", map[string]any{"script": "sleep", "cwd": "missing"}, testOptions(dir))
	wantErrorLines(t, err, "command line: cwd: no directory "+filepath.Join(dir, "missing"))
}

func TestNormalizeWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bin*": ""})
	_, warnings, err := normalizeIn(t, dir, map[string]any{
		"script": "./bin", "interpreter_args": "--x", "sched_policy": "rr", "treekill": false, "autorestar": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantWarning(t, warnings, `command line: interpreter_args ignored: the script runs without an interpreter`)
	wantWarning(t, warnings, `command line: sched_policy ignored: it only applies in cluster mode`)
	wantWarning(t, warnings, `command line: PM2 attribute "treekill" is not supported by corral; ignored`)
	wantWarning(t, warnings, `command line: unknown attribute "autorestar" ignored (did you mean "autorestart"?)`)
}

func TestNormalizeOverrides(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.js": ""})
	opt := testOptions(dir)
	opt.Overrides = map[string]any{"name": "api", "maxMemoryRestart": "1G"}
	app, _, err := Normalize("command line", map[string]any{"script": "app.js", "name": "web"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if app.Name != "api" || app.MaxMemoryRestart != 1<<30 {
		t.Errorf("name %q max_memory_restart %d", app.Name, app.MaxMemoryRestart)
	}
}
