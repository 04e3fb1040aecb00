package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartShowsTheBuild: `corral start <file>` with an app's `build` shows the build's output
// as it runs (the command would otherwise wait in silence), then starts the app; a build that
// fails makes the command fail with the build's last lines, and `restart` of the file after a
// failed build leaves the running processes as they were.
func TestStartShowsTheBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [{
		name: 'web', script: './sleeper.sh', instances: 2,
		build: 'if [ -f broken ]; then echo "main.go:3: undefined: x" >&2; exit 2; fi; echo compiling; sleep 0.3; echo "linked" >&2',
	}] }`)
	r := e.ok("start", "ecosystem.config.js")
	for _, want := range []string{"web | corral: building web: if [ -f broken ]", "web | compiling\n", "web | linked\n", "web | corral: web built in "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("start's output lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stderr, "started instance=") {
		t.Errorf("start printed the app's own output:\n%s", r)
	}
	before := []int{e.waitStatus(0, "online", 30*time.Second).PID, e.waitStatus(1, "online", 30*time.Second).PID}

	if d := e.ok("describe", "web"); !strings.Contains(d.stdout, "build") || !strings.Contains(d.stdout, "(at most 15m0s)") {
		t.Errorf("describe does not show the build:\n%s", d)
	}
	if j := e.ok("jlist"); !strings.Contains(j.stdout, `"build_timeout":900000`) {
		t.Errorf("jlist does not show build_timeout:\n%s", j.stdout)
	}

	e.write("broken", "")
	r = e.fails("restart", "ecosystem.config.js")
	for _, want := range []string{
		"web | main.go:3: undefined: x",
		"[corral] error: web: build failed (exit status 2, after ",
		"[corral] error:     main.go:3: undefined: x",
		"nothing was changed: its 2 running process(es) keep serving the previous build",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("restart's output lacks %q:\n%s", want, r)
		}
	}
	for i, pid := range before {
		if p := e.proc(i); p.PID != pid || p.Pm2Env.Status != "online" {
			t.Errorf("process %d: pid %d %s after a failed build, want %d online", i, p.PID, p.Pm2Env.Status, pid)
		}
	}
	if logs := e.ok("logs", "web", "--lines", "50", "--nostream"); !strings.Contains(logs.stdout, "main.go:3: undefined: x") {
		t.Errorf("corral logs does not keep the build's output:\n%s", logs)
	}

	// A reload by name says that it builds, and where the output is (the build takes long
	// enough that its start is seen before the request returns).
	if err := os.Remove(filepath.Join(e.dir, "broken")); err != nil {
		t.Fatal(err)
	}
	r = e.ok("reload", "web")
	for _, want := range []string{"[corral] web: building: if [ -f broken ]", "(its output: `corral logs web`)", "[corral] web: built in "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reload's output lacks %q:\n%s", want, r)
		}
	}
}

// TestRunCtrlCDuringTheBuild: Ctrl-C while `corral run` builds ends the build (its whole
// process group) and the command at once, rather than after the compile or build_timeout.
func TestRunCtrlCDuringTheBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [{
		name: 'slow', script: './sleeper.sh', build: 'echo compiling; sleep 300 & wait',
	}] }`)
	run := e.background("run", "ecosystem.config.js")
	run.stdout.waitLine(t, "the build's output", 30*time.Second, func(l string) bool { return strings.HasSuffix(l, "| compiling") })
	begun := time.Now()
	run.signal(syscall.SIGINT)
	if code := run.wait(30 * time.Second); code != 0 {
		t.Fatalf("run exited with %d on Ctrl-C during the build\nstdout:\n%s\nstderr:\n%s", code, run.stdout, run.stderr)
	}
	if took := time.Since(begun); took > 15*time.Second {
		t.Errorf("run took %v to stop during a build", took)
	}
	if strings.Contains(run.stderr.String(), "[corral] error") {
		t.Errorf("run reported an error for the interrupted start:\n%s", run.stderr)
	}
	e.waitFor("the build's processes to end", 10*time.Second, func() bool { return len(pidsWithHome(e.home)) == 0 })
}
