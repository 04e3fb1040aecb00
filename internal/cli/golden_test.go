package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The golden files hold what users read: each is one command as it ran (normalised: see
// testEnv.normalize), its exit code, its stdout and its stderr. Rewrite them after an intended
// change with `go test ./internal/cli -update`, and read the diff.

// TestGoldenBadInput: what a mistake on the command line prints, and that it exits 1 having
// changed nothing (the app keeps its two processes, and no other app appears).
func TestGoldenBadInput(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web", "-i", "2")
	e.waitOnline("web", 2)
	// The default process limit depends on the machine's CPUs.
	t.Setenv("CORRAL_MAX_INSTANCES", "")
	limit := regexp.MustCompile(`the limit of \d+ per app`)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown_target", []string{"stop", "nosuch"}},
		{"describe_unknown", []string{"describe", "nosuch"}},
		{"scale_below_one", []string{"scale", "web", "-5"}},
		{"scale_huge", []string{"scale", "web", "1000000000"}},
		{"scale_one_argument", []string{"scale", "web"}},
		{"scale_unknown_app", []string{"scale", "nosuch", "2"}},
		{"bad_regex", []string{"stop", "/[/"}},
		{"missing_script", []string{"start", "missing.js"}},
		{"stop_no_target", []string{"stop"}},
		{"logs_err_and_out", []string{"logs", "--err", "--out"}},
		{"ls_bad_sort", []string{"ls", "--sort", "size"}},
		{"unknown_command", []string{"strat", "web"}},
		{"typo_target", []string{"reload", "wbe"}},
		{"start_running_script", []string{"start", "script.sh", "--name", "web"}},
		{"missing_ecosystem", []string{"start", "missing.config.js"}},
		{"restart_rename", []string{"restart", "web", "--name", "new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if !strings.HasPrefix(r.stderr, "[corral] error: ") {
				t.Errorf("stderr does not start with the error prefix: %q", r.stderr)
			}
			got := limit.ReplaceAllString(e.normalize(r.String()), "the limit of <N> per app")
			golden(t, "error_"+tc.name+".golden", got)
		})
	}
	procs := e.list()
	if len(procs) != 2 {
		t.Fatalf("%d processes after refused commands, want web's 2: %+v", len(procs), procs)
	}
	for _, p := range procs {
		if p.Name != "web" || p.Status != "online" || p.Restarts != 0 {
			t.Errorf("a refused command touched %s[%d]: %s, %d restarts", p.Name, p.ID, p.Status, p.Restarts)
		}
	}
}

// TestGoldenListings: `start` of a script with -i, then `ls` and `describe` of its two
// processes, as a user sees them (pids, uptimes, cpu, memory, times, the user and the paths
// normalised; the tables redrawn to fit).
func TestGoldenListings(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	r := e.ok("start", "script.sh", "--name", "web", "-i", "2")
	golden(t, "start_script.golden", e.normalize(r.String()))
	e.waitOnline("web", 2)
	golden(t, "ls.golden", e.normalize(e.ok("ls").String()))
	golden(t, "ls_mini.golden", e.normalize(e.ok("ls", "-m").String()))
	golden(t, "describe.golden", e.normalize(e.ok("describe", "web").String()))
	golden(t, "scale_help.golden", e.normalize(e.ok("scale", "--help").String()))
	golden(t, "delete.golden", e.normalize(e.ok("delete", "web").String()))
}

// secretsApp starts an app (one process, named api) whose environment is only what its
// ecosystem file declares (filter_env: true), two secrets among it, so that env, describe and
// jlist print the same on every machine.
func (e *testEnv) secretsApp() {
	e.t.Helper()
	e.sleeper("api.sh")
	env := map[string]string{
		"CORRAL_HOME":    e.home, // the mark every app of a test carries (see testEnv)
		"PATH":           "/usr/bin:/bin",
		"PORT":           "5000",
		"SESSION_SECRET": "keyboard-cat-7f3a9c",
		"DATABASE_URL":   "postgres://app:hunter2@db.internal:5432/app",
		"LOG_LEVEL":      "info",
	}
	file, err := json.Marshal(map[string]any{"apps": []any{map[string]any{
		"name": "api", "script": "api.sh", "filter_env": true, "env": env,
	}}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.write("ecosystem.config.json", string(file), 0o644)
	e.ok("start", "ecosystem.config.json")
	e.waitOnline("api", 1)
}

// TestGoldenSecrets: env, describe and jlist mask secrets (a *_SECRET variable, a password in
// a URL) and show the rest; --reveal shows them.
func TestGoldenSecrets(t *testing.T) {
	e := newEnv(t)
	e.secretsApp()
	const secret, password = "keyboard-cat-7f3a9c", "hunter2"

	masked := e.ok("env", "api")
	golden(t, "env.golden", e.normalize(masked.String()))
	revealed := e.ok("env", "api", "--reveal")
	golden(t, "env_reveal.golden", e.normalize(revealed.String()))

	desc := e.ok("describe", "api")
	golden(t, "describe_secrets.golden", e.normalize(desc.String()))
	descRevealed := e.ok("describe", "api", "--reveal")

	jl := e.ok("jlist")
	golden(t, "jlist.golden", e.normalizeJList(jl.stdout))
	jlRevealed := e.ok("jlist", "--reveal")

	for _, r := range []result{masked, desc, jl} {
		if strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, password) {
			t.Errorf("corral %s prints a secret:\n%s", strings.Join(r.args, " "), r.stdout)
		}
	}
	for _, r := range []result{revealed, descRevealed, jlRevealed} {
		if !strings.Contains(r.stdout, secret) || !strings.Contains(r.stdout, password) {
			t.Errorf("corral %s does not reveal the secrets:\n%s", strings.Join(r.args, " "), r.stdout)
		}
	}
}

// jlistVolatile are the jlist keys (at any depth) whose values change from run to run.
var jlistVolatile = map[string]bool{
	"pid": true, "pm_uptime": true, "created_at": true, "cpu": true, "memory": true, "username": true,
}

// normalizeJList indents jlist's output, its keys sorted, with the values that change from
// run to run replaced by their key in angle brackets and the paths normalised: jlist's shape,
// which scripts written for `pm2 jlist` depend on, as it is.
func (e *testEnv) normalizeJList(out string) string {
	e.t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		e.t.Fatalf("jlist is not JSON: %v\n%s", err, out)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if jlistVolatile[k] {
					if _, isObject := val.(map[string]any); !isObject {
						x[k] = fmt.Sprintf("<%s>", k)
						continue
					}
				}
				x[k] = walk(val)
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(walk(v)); err != nil {
		e.t.Fatal(err)
	}
	return e.normalize(b.String())
}
