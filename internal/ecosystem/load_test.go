package ecosystem

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

func TestIsConfigFile(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"ecosystem.config.js", true},
		{"ecosystem.config.cjs", true},
		{"ecosystem.config.mjs", true},
		{"/srv/app/pm2.json", true},
		{"apps.json5", true},
		{"process.yml", true},
		{"process.yaml", true},
		{"app.js", false},
		{"ecosystem.js", false}, // PM2 starts it as a script
		{"server.py", false},
		{"/data.json/app.js", false}, // only the base name counts
	}
	for _, tt := range tests {
		if got := IsConfigFile(tt.path); got != tt.want {
			t.Errorf("IsConfigFile(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// Every format and root shape in testdata/formats declares "web" (app.js) and "worker"
// (worker.py) in the same directory.
func TestLoadFormatsAndRootShapes(t *testing.T) {
	wd := packageDir(t)
	dir := filepath.Join(wd, "testdata", "formats")
	tests := []struct {
		file  string
		names []string
	}{
		{"ecosystem.config.js", []string{"web", "worker"}},
		{"ecosystem.config.cjs", []string{"web", "worker"}},
		{"ecosystem.config.mjs", []string{"web", "worker"}},
		{"ecosystem.json", []string{"web", "worker"}},
		{"ecosystem.yaml", []string{"web", "worker"}},
		{"package.json", []string{"web", "worker"}},
		{"array.config.js", []string{"web", "worker"}},
		{"single.config.js", []string{"web"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := mustLoad(t, filepath.Join("testdata", "formats", tt.file), testOptions(wd))
			if want := filepath.Join(dir, tt.file); res.File != want {
				t.Errorf("File = %q, want %q", res.File, want)
			}
			if got := names(res.Apps); !slices.Equal(got, tt.names) {
				t.Fatalf("apps = %v, want %v", got, tt.names)
			}
			web := appNamed(t, res.Apps, "web")
			if web.Script != filepath.Join(dir, "app.js") || web.Interpreter != "node" || web.Cwd != dir {
				t.Errorf("web: script %q interpreter %q cwd %q", web.Script, web.Interpreter, web.Cwd)
			}
			if web.Source != res.File {
				t.Errorf("web.Source = %q, want %q", web.Source, res.File)
			}
			if err := web.Validate(); err != nil {
				t.Error(err)
			}
			if len(tt.names) > 1 {
				worker := appNamed(t, res.Apps, "worker")
				if worker.Script != filepath.Join(dir, "worker.py") || worker.Interpreter != "python3" {
					t.Errorf("worker: script %q interpreter %q", worker.Script, worker.Interpreter)
				}
			}
			if len(res.Warnings) != 0 {
				t.Errorf("unexpected warnings: %q", res.Warnings)
			}
		})
	}
}

func TestLoadFormatSpecifics(t *testing.T) {
	wd := packageDir(t)
	res := mustLoad(t, "testdata/formats/ecosystem.config.js", testOptions(wd))
	worker := appNamed(t, res.Apps, "worker")
	if want := []string{"--queue", "high prio"}; !slices.Equal(worker.Args, want) {
		t.Errorf("worker.Args = %q, want %q", worker.Args, want)
	}
	res = mustLoad(t, "testdata/formats/ecosystem.yaml", testOptions(wd))
	if got := appNamed(t, res.Apps, "worker").MaxMemoryRestart; got != 300<<20 {
		t.Errorf("yaml max_memory_restart = %d, want %d", got, 300<<20)
	}
}

func TestLoadEnvSections(t *testing.T) {
	wd := packageDir(t)
	tests := []struct {
		envName     string
		wantEnv     map[string]string
		wantWarning string
	}{
		{"", map[string]string{"NODE_ENV": "development", "PORT": "3000"}, ""},
		{"production", map[string]string{"NODE_ENV": "production", "PORT": "3000"}, ""},
		{"staging", map[string]string{"NODE_ENV": "development", "PORT": "3000"}, `no app declares "env_staging"`},
	}
	for _, tt := range tests {
		t.Run("env="+tt.envName, func(t *testing.T) {
			opt := testOptions(wd)
			opt.EnvName = tt.envName
			res := mustLoad(t, "testdata/formats/ecosystem.config.js", opt)
			web := appNamed(t, res.Apps, "web")
			if !mapsEqual(web.Env, tt.wantEnv) {
				t.Errorf("Env = %v, want %v", web.Env, tt.wantEnv)
			}
			if web.EnvName != tt.envName {
				t.Errorf("EnvName = %q, want %q", web.EnvName, tt.envName)
			}
			if web.BaseEnv["FROM_SHELL"] != "shell" {
				t.Errorf("BaseEnv lacks the CLI environment: %v", web.BaseEnv)
			}
			if tt.wantWarning != "" {
				wantWarning(t, res.Warnings, tt.wantWarning)
			} else if len(res.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", res.Warnings)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestLoadRequire(t *testing.T) {
	wd := packageDir(t)
	res := mustLoad(t, "testdata/require/ecosystem.config.js", testOptions(wd))
	api := appNamed(t, res.Apps, "api")
	want := map[string]string{
		"PORT":     "4003", // lib/ports.js: 4000 from lib/base.json + len("api")
		"VERSION":  "1.4.2",
		"HAS_NOPE": "false",
		"BASENAME": "ecosystem.config",
		"EXT":      ".gz",
		"DIR":      "/a/b",
		"REL":      "../c/d",
		"JOINED":   "b/c/",
		"ABS":      "true",
		"PLATFORM": runtime.GOOS,
		"CWD":      wd,
		"HOME_SET": "true",
		"FEATURES": `{"beta":true}`,
	}
	if !mapsEqual(api.Env, want) {
		t.Errorf("Env = %v\nwant %v", api.Env, want)
	}
	if api.Instances != runtime.NumCPU() || api.ExecMode != "fork" {
		t.Errorf("instances %d mode %s, want %d fork", api.Instances, api.ExecMode, runtime.NumCPU())
	}
}

func TestLoadDotenvAndProcessEnv(t *testing.T) {
	wd := packageDir(t)
	opt := testOptions(wd)
	opt.Environ["REMOVE_ME"] = "x"
	res := mustLoad(t, "testdata/dotenv/ecosystem.config.js", opt)
	api := appNamed(t, res.Apps, "api")
	for k, want := range map[string]string{
		"DB_HOST":    "localhost",
		"DB_PASS":    "se#cret",
		"GREETING":   "hello\nworld",
		"FROM_SHELL": "shell", // already set: dotenv does not override
		"EMPTY":      "",
		"INLINE":     "value",
		"COMPUTED":   "parsed 6",
	} {
		if got, ok := api.BaseEnv[k]; !ok || got != want {
			t.Errorf("BaseEnv[%s] = %q (set %v), want %q", k, got, ok, want)
		}
	}
	if _, ok := api.BaseEnv["REMOVE_ME"]; ok {
		t.Error("a variable deleted from process.env is still in BaseEnv")
	}
	if api.Env["DB_HOST"] != "localhost" {
		t.Errorf("env read process.env before dotenv ran: %v", api.Env)
	}
	if _, ok := opt.Environ["DB_HOST"]; ok {
		t.Error("evaluating the file changed Options.Environ")
	}
}

func TestLoadDotenvDefaultPathAndOverride(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".env":                "FROM_SHELL=from-file\nONLY_FILE=1\n",
		"app.js":              "",
		"ecosystem.config.js": `require('dotenv').config({ override: true }); module.exports = {apps: [{script: 'app.js'}]};`,
	})
	// Loaded from elsewhere: the default .env is the file's, not the CLI's working directory's.
	res := mustLoad(t, filepath.Join(dir, "ecosystem.config.js"), testOptions(t.TempDir()))
	env := res.Apps[0].BaseEnv
	if env["FROM_SHELL"] != "from-file" || env["ONLY_FILE"] != "1" {
		t.Errorf("BaseEnv = %v", env)
	}
}

func TestLoadJSErrors(t *testing.T) {
	wd := packageDir(t)
	tests := []struct {
		file  string
		wants []string
	}{
		{"syntax.config.js", []string{"syntax.config.js:4:5: SyntaxError: Unexpected token"}},
		{"throw.config.js", []string{"throw.config.js:3:", "Error: PORT must be set"}},
		{"import.config.mjs", []string{"import.config.mjs:1: import statements are not supported", "use require()"}},
		{"require.config.js", []string{"require.config.js:1:", `require("lodash")`, `available: "path", "os"`}},
		{"syntax.json", []string{"syntax.json:5: SyntaxError: unexpected end of file"}},
		{"bad.yaml", []string{"bad.yaml: yaml: line"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := Load(filepath.Join("testdata", "broken", tt.file), testOptions(wd))
			if res != nil {
				t.Errorf("got a result with an error: %+v", res)
			}
			wantErrorLines(t, err, append(tt.wants, filepath.Join(wd, "testdata", "broken", tt.file))...)
		})
	}
}

func TestLoadEndlessLoopTimesOut(t *testing.T) {
	opt := testOptions(packageDir(t))
	opt.Timeout = 200 * time.Millisecond
	_, err := Load("testdata/broken/loop.config.js", opt)
	wantErrorLines(t, err, "loop.config.js: evaluation did not finish within 200ms (the time limit for ecosystem files: an endless loop?); nothing was started")
}

func TestLoadEndlessLoopInGetterTimesOut(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ecosystem.config.js": `module.exports = { get apps() { for (;;) {} } };`,
	})
	opt := testOptions(dir)
	opt.Timeout = 200 * time.Millisecond
	_, err := Load(filepath.Join(dir, "ecosystem.config.js"), opt)
	wantErrorLines(t, err, "did not finish within 200ms")
}

func TestLoadRootErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js":                  "",
		"string.config.js":        `module.exports = "apps";`,
		"empty.json":              "  \n",
		"emptyapps.json":          `{"apps": []}`,
		"appsnotlist.json":        `{"apps": "web"}`,
		"notobject.json":          `{"apps": [{"script": "app.js"}, 42]}`,
		"function.config.js":      `module.exports = function () { return {apps: []}; };`,
		"empty.yaml":              "",
		"named.export.config.mjs": "export const apps = [];",
	})
	tests := []struct {
		file  string
		wants []string
	}{
		{"string.config.js", []string{`no apps found: expected {apps: [...]}, a list of apps, or a single app with "script"; got a string ("apps")`}},
		{"empty.json", []string{"the file is empty"}},
		{"emptyapps.json", []string{`"apps" is empty: there is no app to start`}},
		{"appsnotlist.json", []string{`"apps": expected an array of apps, got a string ("web")`}},
		{"notobject.json", []string{`app #2 (apps[1]): expected an object with the app's attributes, got a number (42)`}},
		{"function.config.js", []string{"got a function"}},
		{"empty.yaml", []string{"the file is empty"}},
		{"named.export.config.mjs", []string{"only `export default {...}` is supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join(dir, tt.file), testOptions(dir))
			wantErrorLines(t, err, tt.wants...)
		})
	}
	_, err := Load("testdata/formats/noapps.config.js", testOptions(packageDir(t)))
	wantErrorLines(t, err, "no apps found", "keys services")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "ecosystem.config.js"), testOptions(t.TempDir()))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want one that is fs.ErrNotExist", err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "notes.txt"), testOptions(t.TempDir()))
	wantErrorLines(t, err, "not an ecosystem file")
}

// Errors of every app are reported together, each naming the file, the app and the field.
func TestLoadCollectsEveryError(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.json": `{apps: [
			{name: "web", script: "app.js", max_memory_restart: "300X", instances: {}},
			{name: "envs", script: "app.js", env: "x", kill_signal: "SIGFOO"},
			{args: "--x"},
			{name: "api", script: "app.js", cwd: "nowhere"},
		]}`,
	})
	file := filepath.Join(dir, "ecosystem.json")
	res, err := Load(file, testOptions(dir))
	if res != nil {
		t.Fatalf("a file with errors gave a result: %v", names(res.Apps))
	}
	wantErrorLines(t, err,
		file+`: app "web" (apps[0]): max_memory_restart: "300X" is not a size: use bytes or a value like "300M" or "1G"`,
		file+`: app "web" (apps[0]): instances: expected a number or "max", got an object`,
		file+`: app "envs" (apps[1]): env: expected an object of NAME: value pairs, got a string ("x")`,
		file+`: app "envs" (apps[1]): kill_signal: "SIGFOO" is not a signal`,
		file+`: app #3 (apps[2]): script is missing: every app needs "script" (the file or command to run)`,
		file+`: app "api" (apps[3]): cwd: no directory `+filepath.Join(dir, "nowhere"),
	)
	if n := len(err.(*Error).Problems); n != 6 {
		t.Errorf("got %d problems, want 6:\n%v", n, err)
	}
}

func TestLoadWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `module.exports = {
			apps: [{name: "web", script: "app.js", instaces: 4, vizion: false, maxMemoryRestart: "1G",
			        exec: "other.js", frobnicate: true}],
			deploy: {production: {}},
			static: [],
			extra: 1,
			instances: 2,
		};`,
	})
	file := filepath.Join(dir, "ecosystem.config.js")
	res := mustLoad(t, file, testOptions(dir))
	wantWarning(t, res.Warnings, file+`: app "web" (apps[0]): unknown attribute "instaces" ignored (did you mean "instances"?)`)
	wantWarning(t, res.Warnings, file+`: app "web" (apps[0]): PM2 attribute "vizion" is not supported by corral; ignored`)
	wantWarning(t, res.Warnings, `unknown attribute "frobnicate" ignored`)
	wantWarning(t, res.Warnings, `"exec" ignored: "script" sets the same attribute`)
	wantWarning(t, res.Warnings, `"static" (pm2 serve apps) is not supported`)
	wantWarning(t, res.Warnings, `: top-level "instances" ignored: app attributes go inside each app of "apps"`)
	for _, w := range res.Warnings {
		if strings.Contains(w, "deploy") || strings.Contains(w, "extra") || strings.Contains(w, "frobnicate\" ignored (did") {
			t.Errorf("unexpected warning %q", w)
		}
	}
	web := res.Apps[0]
	if web.MaxMemoryRestart != 1<<30 {
		t.Errorf("camelCase maxMemoryRestart not applied: %d", web.MaxMemoryRestart)
	}
	if web.Script != filepath.Join(dir, "app.js") {
		t.Errorf("script = %q: the alias won over the PM2 name", web.Script)
	}
}

func TestLoadOnly(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `module.exports = {apps: [
			{name: "web", script: "app.js"},
			{name: "worker", script: "app.js"},
			{name: "elsewhere", script: "app.js", cwd: "/nonexistent/dir", instaces: 1},
		]};`,
	})
	file := filepath.Join(dir, "ecosystem.config.js")

	opt := testOptions(dir)
	opt.Only = []string{"worker", "web"}
	res := mustLoad(t, file, opt)
	if got := names(res.Apps); !slices.Equal(got, []string{"web", "worker"}) {
		t.Errorf("apps = %v, want file order [web worker]", got)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings about an app not selected: %q", res.Warnings)
	}

	opt.Only = []string{"web", "nope"}
	_, err := Load(file, opt)
	wantErrorLines(t, err, `--only "nope": no app of that name (apps: web, worker, elsewhere)`)

	opt.Only = nil
	_, err = Load(file, opt)
	wantErrorLines(t, err, `app "elsewhere" (apps[2]): cwd: no directory /nonexistent/dir`)
}

func TestLoadOnlyStillReportsTypeErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js":         "",
		"ecosystem.json": `{"apps": [{"name": "web", "script": "app.js"}, {"name": "bad", "script": "app.js", "instances": "lots"}]}`,
	})
	opt := testOptions(dir)
	opt.Only = []string{"web"}
	_, err := Load(filepath.Join(dir, "ecosystem.json"), opt)
	wantErrorLines(t, err, `app "bad" (apps[1]): instances: "lots" is not a number of instances`)
}

func TestLoadOverrides(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"two.config.js": `module.exports = {apps: [
			{name: "web", script: "app.js", env: {A: "file", B: "file"}},
			{name: "worker", script: "app.js", namespace: "jobs"},
		]};`,
		"one.config.js": `module.exports = {apps: [{name: "web", script: "app.js", env_production: {A: "prod"}}]};`,
	})

	opt := testOptions(t.TempDir())
	opt.Overrides = map[string]any{"watch": true, "namespace": "cli", "env": map[string]any{"B": "cli", "C": 3}, "max_restarts": "3"}
	res := mustLoad(t, filepath.Join(dir, "two.config.js"), opt)
	for _, app := range res.Apps {
		if !slices.Equal(app.Watch, []string{dir}) || app.Namespace != "cli" || app.MaxRestarts != 3 {
			t.Errorf("%s: watch %v namespace %q max_restarts %d", app.Name, app.Watch, app.Namespace, app.MaxRestarts)
		}
	}
	if env := appNamed(t, res.Apps, "web").Env; !mapsEqual(env, map[string]string{"A": "file", "B": "cli", "C": "3"}) {
		t.Errorf("web env = %v: command-line env must add to the file's", env)
	}

	opt.Overrides = map[string]any{"cwd": "sub"}
	writeFiles(t, opt.Cwd, map[string]string{"sub/app.js": ""})
	res = mustLoad(t, filepath.Join(dir, "two.config.js"), opt)
	if got := res.Apps[0]; got.Cwd != filepath.Join(opt.Cwd, "sub") || got.Script != filepath.Join(opt.Cwd, "sub", "app.js") {
		t.Errorf("--cwd override: cwd %q script %q", got.Cwd, got.Script)
	}

	opt.Overrides = map[string]any{"name": "renamed"}
	_, err := Load(filepath.Join(dir, "two.config.js"), opt)
	wantErrorLines(t, err, "name cannot be applied: the file declares 2 apps")

	opt.EnvName = "production"
	res = mustLoad(t, filepath.Join(dir, "one.config.js"), opt)
	if got := res.Apps[0]; got.Name != "renamed" || got.Env["A"] != "prod" {
		t.Errorf("name %q env %v", got.Name, got.Env)
	}
}

func TestLoadDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js":         "",
		"ecosystem.yaml": "apps:\n  - script: app.js\n  - name: other\n    script: app.js\n  - name: app\n    script: app.js\n",
	})
	_, err := Load(filepath.Join(dir, "ecosystem.yaml"), testOptions(dir))
	wantErrorLines(t, err, `app "app" is declared twice (apps[0] and apps[2]): app names must be unique`)
}

func TestLoadAppendEnvToName(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js":         "",
		"ecosystem.json": `{"apps": [{"name": "web", "script": "app.js", "append_env_to_name": true, "env_staging": {}}]}`,
	})
	opt := testOptions(dir)
	opt.EnvName = "staging"
	opt.Only = []string{"web"} // --only matches the name as written too
	res := mustLoad(t, filepath.Join(dir, "ecosystem.json"), opt)
	app := res.Apps[0]
	if app.Name != "web-staging" || app.OutFile != filepath.Join(testLogDir, "web-staging-out.log") {
		t.Errorf("name %q out_file %q", app.Name, app.OutFile)
	}
}

// Names are checked where they are declared, each problem with the file and the app's
// index; the message escapes what the name holds and cuts a long one short.
func TestLoadBadNames(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `module.exports = {apps: [
  {name: 'ok', script: 'app.js'},
  {name: 'esc\x1b[2J', script: 'app.js'},
  {name: 'bel\x07', script: 'app.js'},
  {name: 'web\n2024-01-01T00:00:00 corral: forged', script: 'app.js'},
  {name: 'x'.repeat(5000), script: 'app.js'},
  {name: 'ok2', namespace: 'ns\x1b', script: 'app.js'},
  {name: 'my app', script: 'app.js'},
]}`,
	})
	file := filepath.Join(dir, "ecosystem.config.js")
	_, err := Load(file, testOptions(dir))
	wantErrorLines(t, err,
		file+`: app #2 (apps[1]): name: "esc\x1b[2J" contains a control character (U+001B): only printable characters are allowed`,
		file+`: app #3 (apps[2]): name: "bel\a" contains a control character (U+0007)`,
		file+`: app #4 (apps[3]): name: "web\n2024-01-01T00:00:00 corral: forged" contains a control character (U+000A)`,
		file+`: app #5 (apps[4]): name: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"... (5000 bytes) is 5000 bytes long: the limit is 128`,
		file+`: app "ok2" (apps[5]): namespace: "ns\x1b" contains a control character (U+001B)`,
	)
	if e := err.(*Error); len(e.Problems) != 5 {
		t.Errorf("%d problems, want 5:\n%s", len(e.Problems), err)
	}
	if strings.ContainsAny(err.Error(), "\x1b\a") || len(err.Error()) > 2000 {
		t.Errorf("the error holds a control character or the whole long name: %q", err)
	}

	// The name append_env_to_name makes is checked too.
	writeFiles(t, dir, map[string]string{
		"long.json": `{"apps": [{"name": "` + strings.Repeat("w", spec.MaxNameLength) + `", "script": "app.js", "append_env_to_name": true}]}`,
	})
	opt := testOptions(dir)
	opt.EnvName = "staging"
	_, err = Load(filepath.Join(dir, "long.json"), opt)
	wantErrorLines(t, err, "is 136 bytes long: the limit is 128")
}

func TestLoadModernJavaScript(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `#!/usr/bin/env node
'use strict';
const base = { script: 'app.js', env: { NODE_ENV: process.env.NODE_ENV ?? 'development' } };
const ports = Array.from({ length: 3 }, (_, i) => 3000 + i);
class Namer { static of(port) { return ` + "`web-${port}`" + `; } }
module.exports = {
  apps: ports.map((port) => ({ ...base, name: Namer.of(port), port, env: { ...base.env, DEPTH: process.env.MISSING?.length ?? 0 } })),
};`,
	})
	res := mustLoad(t, filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	if got := names(res.Apps); !slices.Equal(got, []string{"web-3000", "web-3001", "web-3002"}) {
		t.Fatalf("apps = %v", got)
	}
	if env := res.Apps[2].Env; !mapsEqual(env, map[string]string{"NODE_ENV": "development", "DEPTH": "0", "PORT": "3002"}) {
		t.Errorf("env = %v", env)
	}
}

func TestLoadNestedModuleErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js":            "",
		"throws.config.js":  "const lib = require('./lib/throws');\nmodule.exports = {apps: []};",
		"lib/throws.js":     "// line 1\nthrow new TypeError('bad settings');\n",
		"syntax.config.js":  "require('./lib/syntax.js');",
		"lib/syntax.js":     "module.exports = {\n  a: 1\n  b: 2\n};\n",
		"missing.config.js": "require('./lib/nope');",
		"badjson.config.js": "require('./lib/bad.json');",
		"lib/bad.json":      "{ trailing: 'not json', }",
		"cycle.config.js":   "const a = require('./lib/a'); module.exports = {apps: [{script: 'app.js', name: a.name + a.peer}]};",
		"lib/a.js":          "exports.name = 'a'; exports.peer = require('./b').name;",
		"lib/b.js":          "const a = require('./a'); exports.name = 'b' + (a.name || '?');",
		"console.config.js": "console.log('loading', {apps: 1}); console.error('careful'); module.exports = {apps: [{script: 'app.js'}]};",
	})
	tests := []struct {
		file  string
		wants []string
	}{
		{"throws.config.js", []string{filepath.Join(dir, "lib/throws.js") + ":2:", "TypeError: bad settings"}},
		{"syntax.config.js", []string{`require("./lib/syntax.js")`, filepath.Join(dir, "lib/syntax.js") + ":3:", "SyntaxError"}},
		{"missing.config.js", []string{`require("./lib/nope"): no file ` + filepath.Join(dir, "lib/nope")}},
		{"badjson.config.js", []string{`require("./lib/bad.json")`, "SyntaxError"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join(dir, tt.file), testOptions(dir))
			wantErrorLines(t, err, tt.wants...)
		})
	}

	res := mustLoad(t, filepath.Join(dir, "cycle.config.js"), testOptions(dir))
	if res.Apps[0].Name != "aba" {
		t.Errorf("require cycle: name = %q, want aba", res.Apps[0].Name)
	}

	var out strings.Builder
	consoleOutput = &out
	defer func() { consoleOutput = os.Stderr }()
	mustLoad(t, filepath.Join(dir, "console.config.js"), testOptions(dir))
	if got := out.String(); got != "loading {\"apps\":1}\ncareful\n" {
		t.Errorf("console output = %q", got)
	}
}

func TestLoadJSONTimesOut(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ecosystem.json": `{"apps": (function () { for (;;) {} })()}`})
	opt := testOptions(dir)
	opt.Timeout = 200 * time.Millisecond
	_, err := Load(filepath.Join(dir, "ecosystem.json"), opt)
	wantErrorLines(t, err, "ecosystem.json: evaluation did not finish within 200ms")
}

func TestLoadYAMLValues(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.yml": `defaults: &defaults
  script: app.js
  max_restarts: 3
apps:
  - <<: *defaults
    name: web
    env:
      RELEASED: 2024-01-01
      RATIO: 1.5
      ENABLED: yes
      COUNT: 12
`,
	})
	res := mustLoad(t, filepath.Join(dir, "ecosystem.yml"), testOptions(dir))
	web := res.Apps[0]
	if web.MaxRestarts != 3 || !mapsEqual(web.Env, map[string]string{"RELEASED": "2024-01-01", "RATIO": "1.5", "ENABLED": "yes", "COUNT": "12"}) {
		t.Errorf("max_restarts %d env %v", web.MaxRestarts, web.Env)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
}

func TestLoadPromiseExport(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ecosystem.config.js": "module.exports = Promise.resolve({apps: []});"})
	_, err := Load(filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	wantErrorLines(t, err, "got a Promise")
}
