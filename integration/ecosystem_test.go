package integration

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestBadEcosystemStartsNothing: a file that cannot be loaded, or has one bad app among good
// ones, starts nothing at all: exit 1, and the error names the file, the app and the field.
func TestBadEcosystemStartsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.ok("ping") // the daemon runs: a bad file must not reach it either
	for _, tc := range []struct {
		name, file, content string
		want                []string // in stderr, beside the file's path
	}{
		{"syntax error", "syntax.config.js",
			"module.exports = { apps: [ { name: 'a', script: './sleeper.sh', }\n",
			[]string{"SyntaxError"}},
		{"object for instances", "instances.config.js",
			"module.exports = { apps: [ { name: 'inst', script: './sleeper.sh', instances: {} } ] }\n",
			[]string{`"inst"`, "instances"}},
		{"bad size", "size.config.js",
			"module.exports = { apps: [ { name: 'mem', script: './sleeper.sh', max_memory_restart: '300X' } ] }\n",
			[]string{`"mem"`, "max_memory_restart", "300X"}},
		{"missing script", "missing.config.js",
			"module.exports = { apps: [ { name: 'miss', script: './no-such-script.sh' } ] }\n",
			[]string{`"miss"`, "script", "no-such-script.sh"}},
		{"endless loop", "loop.config.js",
			"while (true) {}\nmodule.exports = { apps: [ { name: 'loop', script: './sleeper.sh' } ] }\n",
			[]string{"endless loop"}},
		{"second app bad", "second.config.js",
			"module.exports = { apps: [\n  { name: 'good', script: './sleeper.sh' },\n  { name: 'bad', script: './sleeper.sh', kill_timeout: 'soon' },\n] }\n",
			[]string{`"bad"`, "kill_timeout", "soon"}},
		{"throws", "throws.config.js",
			"throw new Error('no config for you')\n",
			[]string{"no config for you"}},
		{"duplicate names", "dup.config.js",
			"module.exports = { apps: [ { name: 'twin', script: './sleeper.sh' }, { name: 'twin', script: './sleeper.sh' } ] }\n",
			[]string{`"twin"`}},
		{"json wrong type", "bad.json",
			`{"apps": [{"name": "js", "script": "./sleeper.sh", "instances": "lots"}]}`,
			[]string{`"js"`, "instances"}},
		{"yaml wrong type", "bad.yaml",
			"apps:\n  - name: ym\n    script: ./sleeper.sh\n    autorestart: [1, 2]\n",
			[]string{`"ym"`, "autorestart"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := e.write(tc.file, tc.content)
			r := e.run("start", tc.file)
			if r.code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", r.code, r)
			}
			if !strings.Contains(r.stderr, path) {
				t.Errorf("stderr does not name the file %s:\n%s", path, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not mention %s:\n%s", w, r.stderr)
				}
			}
			if out := strings.TrimSpace(e.ok("jlist").stdout); out != "[]" {
				t.Fatalf("jlist after a failed start: %s", out)
			}
		})
	}
}

// TestEcosystemUnknownAttribute: an attribute corral does not know is named in a warning, and
// the app starts all the same.
func TestEcosystemUnknownAttribute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [{ name: 'unk', script: './sleeper.sh', colour: 'blue' }] }`)
	r := e.ok("start", "ecosystem.config.js")
	if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "colour") || !strings.Contains(r.stderr, `"unk"`) {
		t.Fatalf("no warning naming the unknown attribute and its app:\n%s", r)
	}
	e.waitStatus(0, "online", 20*time.Second)
}

// TestEcosystemFormats: JSON and YAML files work as JavaScript ones do (env included), and a
// bare `start` picks ecosystem.config.js.
func TestEcosystemFormats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("apps.json", `{"apps": [{"name": "fromjson", "script": "./sleeper.sh", "env": {"APP_MODE": "json-mode"}}]}`)
	e.write("apps.yaml", "apps:\n  - name: fromyaml\n    script: ./sleeper.sh\n    instances: 2\n    env:\n      APP_MODE: yaml-mode\n")
	e.write("ecosystem.config.js", `module.exports = { apps: [{ name: 'fromjs', script: './sleeper.sh', env: { APP_MODE: 'js-mode' } }] }`)
	e.ok("start", "apps.json")
	e.ok("start", "apps.yaml")
	e.ok("start") // ecosystem.config.js
	want := map[string]string{"fromjson": "json-mode", "fromyaml": "yaml-mode", "fromjs": "js-mode"}
	procs := e.jlist()
	if len(procs) != 4 {
		t.Fatalf("%d processes, want 4 (1 + 2 + 1)", len(procs))
	}
	for _, p := range procs {
		p = e.waitStatus(p.ID, "online", 20*time.Second)
		line := fmt.Sprintf("started instance=%d pm_id=%d", p.Pm2Env.Corral.Instance, p.ID)
		e.waitFor(p.Name+" output", 20*time.Second, func() bool {
			log := readFile(p.Pm2Env.OutLog)
			return strings.Contains(log, line) && strings.Contains(log, "APP_MODE="+want[p.Name])
		})
	}
}

// TestEcosystemOnly: --only starts the named apps of a file and no other; a later --only adds
// the next one.
func TestEcosystemOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [
		{ name: 'one', script: './sleeper.sh' },
		{ name: 'two', script: './sleeper.sh' },
		{ name: 'three', script: './sleeper.sh' },
	] }`)
	names := func() string {
		var out []string
		for _, p := range e.jlist() {
			out = append(out, p.Name)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	e.ok("start", "ecosystem.config.js", "--only", "one,three")
	if got := names(); got != "one,three" {
		t.Fatalf("--only one,three started %s", got)
	}
	e.ok("start", "ecosystem.config.js", "--only", "two")
	if got := names(); got != "one,three,two" {
		t.Fatalf("then --only two: %s", got)
	}
	if r := e.fails("start", "ecosystem.config.js", "--only", "nosuch"); !strings.Contains(r.stderr, "nosuch") {
		t.Fatalf("--only with an unknown app does not name it:\n%s", r)
	}
}

// TestRestartEcosystemReappliesEnv: `restart <file>` reads the file again, so a changed env
// reaches the process (same id, one more restart).
func TestRestartEcosystemReappliesEnv(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	conf := `module.exports = { apps: [{ name: 'conf', script: './sleeper.sh', env: { APP_MODE: '%s' } }] }`
	e.write("ecosystem.config.js", fmt.Sprintf(conf, "before"))
	e.ok("start", "ecosystem.config.js")
	p := e.waitStatus(0, "online", 20*time.Second)
	e.waitFor("first env", 20*time.Second, func() bool { return strings.Contains(readFile(p.Pm2Env.OutLog), "APP_MODE=before") })

	path := e.write("ecosystem.config.js", fmt.Sprintf(conf, "after"))
	// Make sure the file looks changed even to a loader that caches by modification time.
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	e.ok("restart", "ecosystem.config.js")
	e.waitFor("the changed env", 20*time.Second, func() bool { return strings.Contains(readFile(p.Pm2Env.OutLog), "APP_MODE=after") })
	q := e.waitStatus(0, "online", 20*time.Second)
	if q.Pm2Env.RestartTime != 1 || q.PID == p.PID || len(e.jlist()) != 1 {
		t.Fatalf("after restart: %d restarts, pid %d (was %d), %d processes; want 1 restart, a new pid, 1 process",
			q.Pm2Env.RestartTime, q.PID, p.PID, len(e.jlist()))
	}
	if q.Pm2Env.Env["APP_MODE"] != "after" {
		t.Fatalf("jlist env APP_MODE=%q, want after", q.Pm2Env.Env["APP_MODE"])
	}
}
