package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/spec"
)

// TestScaleArgs: a signed count is an argument wherever it stands (`scale web -1` is one
// fewer, not a flag named 1), so is everything after "--", and flags may come before, between
// or after the arguments.
func TestScaleArgs(t *testing.T) {
	for _, tc := range []struct {
		raw         []string
		args, flags []string
	}{
		{[]string{"web", "4"}, []string{"web", "4"}, nil},
		{[]string{"web", "-1"}, []string{"web", "-1"}, nil},
		{[]string{"web", "+2"}, []string{"web", "+2"}, nil},
		{[]string{"web", "max"}, []string{"web", "max"}, nil},
		{[]string{"-s", "web", "-1"}, []string{"web", "-1"}, []string{"-s"}},
		{[]string{"web", "-s", "-1"}, []string{"web", "-1"}, []string{"-s"}},
		{[]string{"web", "-1", "--silent", "--no-color"}, []string{"web", "-1"}, []string{"--silent", "--no-color"}},
		{[]string{"-10", "web"}, []string{"-10", "web"}, nil},
		{[]string{"web", "--", "-1"}, []string{"web", "-1"}, nil},
		{[]string{"-s", "--", "web", "--silent"}, []string{"web", "--silent"}, []string{"-s"}},
		{[]string{"web", "--"}, []string{"web"}, nil},
		{[]string{"--help"}, nil, []string{"--help"}},
		{[]string{"web", "-h"}, []string{"web"}, []string{"-h"}},
		{[]string{"web", "-1.5"}, []string{"web"}, []string{"-1.5"}}, // not a count: pflag refuses it
		{nil, nil, nil},
	} {
		args, flags := scaleArgs(tc.raw)
		if !slices.Equal(args, tc.args) || !slices.Equal(flags, tc.flags) {
			t.Errorf("scaleArgs(%q) = args %q, flags %q; want %q, %q", tc.raw, args, flags, tc.args, tc.flags)
		}
	}
}

// TestScaleCommandParsesFlagsAnywhere: the scale command itself (flag parsing disabled, see
// scaleArgs) takes --silent before or after a negative count, shows its help for -h, and
// refuses an unknown flag, before it asks the daemon anything: none runs here.
func TestScaleCommandParsesFlagsAnywhere(t *testing.T) {
	e := newHome(t)
	for _, tc := range []struct {
		args    []string
		code    int
		inOut   string
		inError string
	}{
		{[]string{"scale", "web", "-h"}, 0, "Usage:\n  corral scale <app> <N|max|+N|-N>", ""},
		{[]string{"scale", "-s", "--bogus", "web", "-1"}, 1, "", "unknown flag: --bogus"},
		{[]string{"scale", "web", "-1", "-s", "extra"}, 1, "", "got 3 argument(s)"},
		{[]string{"scale", "--silent"}, 1, "", "got 0 argument(s)"},
	} {
		r := e.run(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.inOut) || !strings.Contains(r.stderr, tc.inError) {
			t.Errorf("want exit %d, %q in stdout, %q in stderr; got\n%s", tc.code, tc.inOut, tc.inError, r)
		}
	}
}

// TestExpandTargets: an ecosystem file among the targets stands for the names of its apps
// (--only does not apply: every app of the file); anything else, including a name that merely
// looks like a file and is not one, passes as it is.
func TestExpandTargets(t *testing.T) {
	e := newHome(t)
	e.write("ecosystem.config.js", `module.exports = { apps: [
		{ name: 'api', script: 'api.sh' },
		{ name: 'worker', script: 'worker.sh', instances: 2 },
	] }`, 0o644)
	e.write("other.json", `{"apps": [{"name": "cron", "script": "cron.sh"}]}`, 0o644)
	for _, s := range []string{"api.sh", "worker.sh", "cron.sh"} {
		e.sleeper(s)
	}
	c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"web"}, []string{"web"}},
		{[]string{"ecosystem.config.js"}, []string{"api", "worker"}},
		{[]string{"3", "ecosystem.config.js", "all", "other.json", "/re/"}, []string{"3", "api", "worker", "all", "cron", "/re/"}},
		{[]string{"missing.config.js"}, []string{"missing.config.js"}},
	} {
		got, err := c.expandTargets(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("expandTargets(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	e.write("broken.json", `{"apps": [`, 0o644)
	if got, err := c.expandTargets([]string{"web", "broken.json"}); err == nil {
		t.Errorf("expandTargets with a broken ecosystem file = %q, want its error", got)
	}
}

// procs is a process table for the pure helpers: two apps in the default namespace, two in
// prod, and an app whose name is another app's namespace.
func testProcs() []api.Process {
	at := func(min int) time.Time { return time.Date(2026, 1, 2, 3, min, 0, 0, time.UTC) }
	return []api.Process{
		{ID: 0, Name: "web", Namespace: "default", PID: 300, Status: "online", CPU: 5, Memory: 30 << 20, Restarts: 2, StartedAt: at(10)},
		{ID: 1, Name: "web", Namespace: "default", PID: 100, Status: "online", CPU: 0.5, Memory: 10 << 20, Restarts: 0, StartedAt: at(30)},
		{ID: 2, Name: "api", Namespace: "prod", PID: 200, Status: "stopped", CPU: 0, Memory: 0, Restarts: 7, StartedAt: at(20)},
		{ID: 3, Name: "worker", Namespace: "prod", PID: 400, Status: "errored", CPU: 9, Memory: 20 << 20, Restarts: 1, StartedAt: at(40)},
		{ID: 4, Name: "prod", Namespace: "default", PID: 500, Status: "online", CPU: 1, Memory: 5 << 20, Restarts: 3, StartedAt: at(0)},
	}
}

func ids(procs []api.Process) []int {
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.ID
	}
	return out
}

// TestSortProcesses: `ls --sort field[:asc|desc]`; equal keys keep the daemon's order (id);
// uptime ascending is the most recently started first.
func TestSortProcesses(t *testing.T) {
	for _, tc := range []struct {
		by   string
		want []int
	}{
		{"", []int{0, 1, 2, 3, 4}},
		{"name", []int{2, 4, 0, 1, 3}},
		{"name:desc", []int{3, 0, 1, 4, 2}},
		{"namespace", []int{0, 1, 4, 2, 3}},
		{"pid", []int{1, 2, 0, 3, 4}},
		{"id:desc", []int{4, 3, 2, 1, 0}},
		{"cpu", []int{2, 1, 4, 0, 3}},
		{"cpu:desc", []int{3, 0, 4, 1, 2}},
		{"memory", []int{2, 4, 1, 3, 0}},
		{"uptime", []int{3, 1, 2, 0, 4}},
		{"uptime:desc", []int{4, 0, 2, 1, 3}},
		{"status", []int{3, 0, 1, 4, 2}},
		{"restarts:asc", []int{1, 3, 0, 4, 2}},
	} {
		procs := testProcs()
		if err := sortProcesses(procs, tc.by); err != nil {
			t.Errorf("sort %q: %v", tc.by, err)
			continue
		}
		if got := ids(procs); !slices.Equal(got, tc.want) {
			t.Errorf("sort %q: ids %v, want %v", tc.by, got, tc.want)
		}
	}
	for _, by := range []string{"size", "name:up", "Name"} {
		procs := testProcs()
		if err := sortProcesses(procs, by); err == nil {
			t.Errorf("sort %q: no error", by)
		}
		if got := ids(procs); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
			t.Errorf("a refused sort %q reordered the processes: %v", by, got)
		}
	}
}

// TestLogPrinter: PM2's log line format ("<id>|<name> | line", names padded to the widest),
// the header before each file's history, --raw (bare lines, stderr to stderr, corral's own
// left out), --json (null timestamp for history), --timestamp, and colours only when asked.
func TestLogPrinter(t *testing.T) {
	live := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	lines := []api.LogLine{
		{ProcID: 0, App: "web", Stream: "out", Message: "old out", History: true, Path: "/l/web-out-0.log"},
		{ProcID: 0, App: "web", Stream: "out", Message: "older out", History: true, Path: "/l/web-out-0.log"},
		{ProcID: 0, App: "web", Stream: "err", Message: "old err", History: true, Path: "/l/web-error-0.log"},
		{ProcID: 12, App: "worker", Stream: "out", Message: "live out", Time: live},
		{ProcID: 0, App: "web", Stream: "err", Message: "live err", Time: live},
		{ProcID: -1, App: "corral", Stream: "corral", Message: "web[0] online", Time: live},
		{ProcID: 0, App: "web", Stream: "out", Message: "history again", History: true, Path: "/l/web-out-0.log"},
	}
	tf, err := logs.NewTimeFormat("YYYY-MM-DD HH:mm:ss")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		lp        logPrinter
		out, errs string
	}{
		{"plain", logPrinter{nameWidth: len("12|worker") - 2}, `/l/web-out-0.log last lines:
0|web     | old out
0|web     | older out
/l/web-error-0.log last lines:
0|web     | old err
12|worker | live out
0|web     | live err
corral    | web[0] online
/l/web-out-0.log last lines:
0|web     | history again
`, ""},
		{"timestamps", logPrinter{nameWidth: 3, timestamp: tf}, `/l/web-out-0.log last lines:
0|web | old out
0|web | older out
/l/web-error-0.log last lines:
0|web | old err
2026-03-04 05:06:07 12|worker | live out
2026-03-04 05:06:07 0|web | live err
2026-03-04 05:06:07 corral | web[0] online
/l/web-out-0.log last lines:
0|web | history again
`, ""},
		{"color", logPrinter{nameWidth: 3, color: true}, "\x1b[90m/l/web-out-0.log last lines:\x1b[0m\n" +
			"\x1b[32m0|web | \x1b[0mold out\n" +
			"\x1b[32m0|web | \x1b[0molder out\n" +
			"\x1b[90m/l/web-error-0.log last lines:\x1b[0m\n" +
			"\x1b[31m0|web | \x1b[0mold err\n" +
			"\x1b[32m12|worker | \x1b[0mlive out\n" +
			"\x1b[31m0|web | \x1b[0mlive err\n" +
			"\x1b[34mcorral | \x1b[0mweb[0] online\n" +
			"\x1b[90m/l/web-out-0.log last lines:\x1b[0m\n" +
			"\x1b[32m0|web | \x1b[0mhistory again\n", ""},
		{"raw", logPrinter{raw: true, color: true, timestamp: tf}, "old out\nolder out\nlive out\nhistory again\n", "old err\nlive err\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			lp := tc.lp
			lp.out, lp.errOut = &out, &errs
			for _, l := range lines {
				lp.print(l)
			}
			if out.String() != tc.out || errs.String() != tc.errs {
				t.Errorf("stdout:\n%q\nwant\n%q\nstderr:\n%q\nwant\n%q", out.String(), tc.out, errs.String(), tc.errs)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		var out, errs bytes.Buffer
		lp := logPrinter{out: &out, errOut: &errs, asJSON: true, color: true}
		for _, l := range lines {
			lp.print(l)
		}
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(got) != len(lines) || errs.Len() != 0 {
			t.Fatalf("%d JSON lines for %d log lines (stderr %q):\n%s", len(got), len(lines), errs.String(), out.String())
		}
		if want := `{"message":"old err","timestamp":null,"type":"err","process_id":0,"app_name":"web"}`; got[2] != want {
			t.Errorf("a line of history:\n%s\nwant\n%s", got[2], want)
		}
		if want := `{"message":"web[0] online","timestamp":"2026-03-04T05:06:07Z","type":"corral","process_id":-1,"app_name":"corral"}`; got[5] != want {
			t.Errorf("a live line:\n%s\nwant\n%s", got[5], want)
		}
		for _, g := range got {
			var v map[string]any
			if err := json.Unmarshal([]byte(g), &v); err != nil || len(v) != 5 {
				t.Errorf("not one JSON object of 5 fields: %s (%v)", g, err)
			}
		}
	})
}

// TestInstancesText: how `start` says how many processes an app gets (0 is max, -N is max
// minus N, as in PM2).
func TestInstancesText(t *testing.T) {
	for n, want := range map[int]string{
		0: "one process per CPU", -1: "one process per CPU minus 1", -3: "one process per CPU minus 3",
		2: "2 processes", 16: "16 processes",
	} {
		if got := instancesText(n); got != want {
			t.Errorf("instancesText(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestDisplayScript: a script is named by its path, a shell command quoted.
func TestDisplayScript(t *testing.T) {
	for _, tc := range []struct {
		app  spec.App
		want string
	}{
		{spec.App{Name: "web", Script: "/srv/app.js"}, "/srv/app.js as web"},
		{spec.App{Name: "files", Script: "python3 -m http.server 8000", Shell: true}, `"python3 -m http.server 8000" as files`},
		{spec.App{Name: "q", Script: `echo "hi"`, Shell: true}, `"echo \"hi\"" as q`},
	} {
		if got := displayScript(tc.app); got != tc.want {
			t.Errorf("displayScript(%+v) = %q, want %q", tc.app, got, tc.want)
		}
	}
}

// TestRedrawBoxes checks the golden files' normaliser: cells replaced by column (or row key),
// the table redrawn to fit, text around tables untouched.
func TestRedrawBoxes(t *testing.T) {
	in := "before\n" +
		"┌────┬───────┐\n" +
		"│ id │ pid   │\n" +
		"├────┼───────┤\n" +
		"│ 0  │ 12345 │\n" +
		"└────┴───────┘\n" +
		"┌─────┬───┐\n" +
		"│ pid │ 7 │\n" +
		"└─────┴───┘\n" +
		"after\n"
	want := "before\n" +
		"┌────┬───────┐\n" +
		"│ id │ pid   │\n" +
		"├────┼───────┤\n" +
		"│ 0  │ <pid> │\n" +
		"└────┴───────┘\n" +
		"┌─────┬───────┐\n" +
		"│ pid │ <pid> │\n" +
		"└─────┴───────┘\n" +
		"after\n"
	if got := redrawBoxes(in, volatileCell); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := redrawBoxes("no table\n│ pid │\n", volatileCell); got != "no table\n│ pid │\n" {
		t.Errorf("text without tables changed: %q", got)
	}
}

// TestOverrides: only the flags given become attributes, each under its PM2 name and in the
// type the ecosystem loader takes (lists split on commas, negated and boolean flags, --watch
// and --log with or without a value, -x as exec_mode fork).
func TestOverrides(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  map[string]any
	}{
		{nil, map[string]any{}},
		{[]string{"--name", "web", "-i", "max", "--kill-timeout", "5s", "--node-args", "--max-old-space-size=100"},
			map[string]any{"name": "web", "instances": "max", "kill_timeout": "5s", "interpreter_args": "--max-old-space-size=100"}},
		{[]string{"--watch", "--ignore-watch", "node_modules, logs,", "--log", "--time", "--merge-logs"},
			map[string]any{"watch": true, "ignore_watch": []any{"node_modules", "logs"}, "log_file": true, "time": true, "merge_logs": true}},
		{[]string{"--watch=src,lib", "--log=/var/log/web.log", "--time=false"},
			map[string]any{"watch": []any{"src", "lib"}, "log_file": "/var/log/web.log", "time": false}},
		{[]string{"--watch=false", "--no-autorestart", "--no-autostart", "--wait-ready", "-x", "--stop-exit-codes", "0,3"},
			map[string]any{"watch": false, "autorestart": false, "autostart": false, "wait_ready": true, "exec_mode": "fork", "stop_exit_codes": []any{"0", "3"}}},
		{[]string{"--cron", "0 * * * *", "--filter-env", "AWS_,SECRET", "-o", "/o.log", "-e", "/e.log"},
			map[string]any{"cron_restart": "0 * * * *", "filter_env": []any{"AWS_", "SECRET"}, "out_file": "/o.log", "error_file": "/e.log"}},
		// Flags that are not attributes stay out.
		{[]string{"--env", "production", "--only", "a,b", "-f", "--update-env"}, map[string]any{}},
	} {
		cmd := (&cli{}).startCommand()
		if err := cmd.ParseFlags(tc.flags); err != nil {
			t.Fatalf("%q: %v", tc.flags, err)
		}
		if got := overrides(cmd.Flags()); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("overrides(%q) =\n%#v\nwant\n%#v", tc.flags, got, tc.want)
		}
	}
}
