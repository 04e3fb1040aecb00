package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// TestTargets starts, stops, restarts and deletes by every target form: id, name, namespace,
// all, an ecosystem file, several at once; an unknown target exits 1 and says so.
func TestTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [
		{ name: 'api', script: './sleeper.sh', namespace: 'backend' },
		{ name: 'jobs', script: './sleeper.sh', namespace: 'backend' },
	] }`)
	e.ok("start", "ecosystem.config.js")
	e.ok("start", "sleeper.sh", "--name", "web")
	for id := 0; id < 3; id++ {
		e.waitStatus(id, "online", 20*time.Second)
	}

	status := func() map[string]string {
		out := map[string]string{}
		for _, p := range e.jlist() {
			out[p.Name] = p.Pm2Env.Status
		}
		return out
	}
	expect := func(step string, want map[string]string) {
		t.Helper()
		e.waitFor(step, 20*time.Second, func() bool { return fmt.Sprint(status()) == fmt.Sprint(want) })
	}

	e.ok("stop", "0") // by id
	expect("stop by id", map[string]string{"api": "stopped", "jobs": "online", "web": "online"})
	e.ok("stop", "web") // by name
	expect("stop by name", map[string]string{"api": "stopped", "jobs": "online", "web": "stopped"})
	e.ok("start", "backend") // by namespace
	expect("start by namespace", map[string]string{"api": "online", "jobs": "online", "web": "stopped"})
	e.ok("stop", "ecosystem.config.js") // by file
	expect("stop by file", map[string]string{"api": "stopped", "jobs": "stopped", "web": "stopped"})
	e.ok("restart", "api", "web") // several
	expect("restart several", map[string]string{"api": "online", "jobs": "stopped", "web": "online"})
	e.ok("stop", "all")
	expect("stop all", map[string]string{"api": "stopped", "jobs": "stopped", "web": "stopped"})

	r := e.fails("stop", "nosuchapp")
	if r.code != 1 || !strings.Contains(r.stderr, `"nosuchapp" not found`) {
		t.Fatalf("unknown target: want exit 1 naming it, got:\n%s", r)
	}
	// A failing target leaves the others untouched.
	r = e.fails("start", "web", "nosuchapp")
	if status()["web"] != "stopped" {
		t.Fatalf("web started although the command failed:\n%s", r)
	}

	e.ok("delete", "jobs")
	e.fails("delete", "1") // jobs had id 1
	e.ok("delete", "all")
	if n := len(e.jlist()); n != 0 {
		t.Fatalf("%d processes left after delete all", n)
	}
}

// TestEnvInheritance: every process gets the CLI's environment plus the app's env, and --env
// selects env_<name>.
func TestEnvInheritance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.vars["DATABASE_URL"] = "postgres://app:s3cret@db.internal:5432/app"
	e.vars["SESSION_SECRET"] = "keyboard-cat"
	e.vars["NODE_OPTIONS"] = "--max-old-space-size=256"
	e.write("ecosystem.config.js", `module.exports = { apps: [{
		name: 'envapp', script: './sleeper.sh', instances: 2,
		env: { APP_MODE: 'dev' }, env_production: { APP_MODE: 'prod' },
	}] }`)
	e.ok("start", "ecosystem.config.js", "--env", "production")
	for id := 0; id < 2; id++ {
		p := e.waitStatus(id, "online", 20*time.Second)
		want := fmt.Sprintf("started instance=%d pm_id=%d DATABASE_URL=postgres://app:s3cret@db.internal:5432/app SESSION_SECRET=keyboard-cat NODE_OPTIONS=--max-old-space-size=256 APP_MODE=prod", id, id)
		e.waitFor("env line in "+p.Pm2Env.OutLog, 20*time.Second, func() bool {
			return strings.Contains(readFile(p.Pm2Env.OutLog), want)
		})
	}
	// jlist and env mask secrets; --reveal shows them.
	r := e.ok("jlist")
	for _, secret := range []string{"keyboard-cat", "s3cret"} {
		if strings.Contains(r.stdout, secret) {
			t.Fatalf("jlist shows the secret %q", secret)
		}
	}
	if !strings.Contains(e.ok("jlist", "--reveal").stdout, "keyboard-cat") {
		t.Fatal("jlist --reveal does not show the secret")
	}
	envOut := e.ok("env", "0").stdout
	if strings.Contains(envOut, "keyboard-cat") || !strings.Contains(envOut, "SESSION_SECRET: ********") ||
		!strings.Contains(envOut, "DATABASE_URL: postgres://app:********@db.internal:5432/app") {
		t.Fatalf("env does not mask secrets as expected:\n%s", envOut)
	}
	if !strings.Contains(e.ok("describe", "envapp").stdout, "APP_MODE") {
		t.Fatal("describe does not show the declared env")
	}

	// restart --update-env takes the new shell environment, dropping what was unset.
	delete(e.vars, "NODE_OPTIONS")
	e.vars["SESSION_SECRET"] = "rotated"
	e.ok("restart", "envapp", "--update-env")
	p := e.waitStatus(0, "online", 20*time.Second)
	e.waitFor("updated env", 20*time.Second, func() bool {
		return strings.Contains(readFile(p.Pm2Env.OutLog), "SESSION_SECRET=rotated NODE_OPTIONS= APP_MODE=prod")
	})
}

// TestStopSignalThenKill: SIGINT first, SIGKILL after kill_timeout, and the app's children go
// with it.
func TestStopSignalThenKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "stubborn.js")
	e.ok("start", "stubborn.js", "--kill-timeout", "700")
	p := e.waitStatus(0, "online", 20*time.Second)
	var child int
	e.waitFor("child pid in the log", 20*time.Second, func() bool {
		for _, line := range strings.Split(readFile(p.Pm2Env.OutLog), "\n") {
			if strings.HasPrefix(line, "child ") {
				child, _ = strconv.Atoi(strings.TrimPrefix(line, "child "))
			}
		}
		return child > 0
	})
	e.ok("stop", "stubborn")
	if alive(p.PID) {
		t.Fatalf("main process %d survived stop", p.PID)
	}
	e.waitFor("the child to be killed with its group", 20*time.Second, func() bool { return !alive(child) })
	if !strings.Contains(readFile(p.Pm2Env.OutLog), "got SIGINT, ignoring it") {
		t.Fatal("the app never got SIGINT before SIGKILL")
	}
	after := e.proc(0)
	if after.Pm2Env.Status != "stopped" || after.Pm2Env.Corral.ExitSignal != "SIGKILL" {
		t.Fatalf("after stop: status %s, exit signal %q; want stopped by SIGKILL", after.Pm2Env.Status, after.Pm2Env.Corral.ExitSignal)
	}
}

// TestKillSignalOption: kill_signal replaces SIGINT.
func TestKillSignalOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "stubborn.js")
	e.ok("start", "stubborn.js", "--kill-signal", "SIGTERM", "--kill-timeout", "5000")
	p := e.waitStatus(0, "online", 20*time.Second)
	e.ok("stop", "0")
	if got := e.proc(0).Pm2Env.Corral.ExitSignal; got != "SIGTERM" {
		t.Fatalf("stopped by %q, want SIGTERM (kill_signal)", got)
	}
	if strings.Contains(readFile(p.Pm2Env.OutLog), "got SIGINT") {
		t.Fatal("SIGINT was sent although kill_signal is SIGTERM")
	}
}

// TestCrashLoopErrored: an app that keeps dying at once ends errored after max_restarts.
func TestCrashLoopErrored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh")
	e.ok("start", "crash.sh", "--max-restarts", "3")
	p := e.waitStatus(0, "errored", 30*time.Second)
	if p.Pm2Env.RestartTime != 2 || p.Pm2Env.Unstable != 3 {
		t.Fatalf("errored after %d restarts (%d unstable), want 2 restarts and 3 unstable runs", p.Pm2Env.RestartTime, p.Pm2Env.Unstable)
	}
	errLog := readFile(p.Pm2Env.ErrLog)
	if !strings.Contains(errLog, "too many unstable restarts") {
		t.Fatalf("the error log does not say why it stopped restarting:\n%s", errLog)
	}
	if n := strings.Count(readFile(p.Pm2Env.OutLog), "crashing now"); n != 3 {
		t.Fatalf("ran %d times, want 3", n)
	}
	// A restart by hand forgives the past.
	e.ok("restart", "crash")
	e.waitStatus(0, "errored", 30*time.Second)
}

// TestStopExitCodesAndNoAutorestart: exits listed in stop_exit_codes, or any exit with
// autorestart off, leave the app stopped.
func TestStopExitCodesAndNoAutorestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh")
	e.ok("start", "crash.sh", "--name", "codes", "--stop-exit-codes", "1")
	e.ok("start", "crash.sh", "--name", "once", "--no-autorestart")
	for id := 0; id < 2; id++ {
		p := e.waitStatus(id, "stopped", 20*time.Second)
		if p.Pm2Env.RestartTime != 0 || p.Pm2Env.ExitCode == nil || *p.Pm2Env.ExitCode != 1 {
			t.Fatalf("%s: restarts %d, exit code %v; want 0 restarts, exit 1", p.Name, p.Pm2Env.RestartTime, p.Pm2Env.ExitCode)
		}
	}
}

// TestBackoffDelaysGrow: exp_backoff_restart_delay multiplies the delay by 1.5 per crash.
func TestBackoffDelaysGrow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("slowcrash.sh", "#!/bin/sh\nexit 1\n")
	e.ok("ping")
	evs := eventsStream(t, e)
	e.ok("start", "slowcrash.sh", "--exp-backoff-restart-delay", "100", "--max-restarts", "50")
	var delays []int64
	deadline := time.After(60 * time.Second)
	for len(delays) < 4 {
		select {
		case ev := <-evs:
			if ev.Kind == api.EventWaitingRestart {
				delays = append(delays, ev.DelayMS)
			}
		case <-deadline:
			t.Fatalf("saw delays %v only", delays)
		}
	}
	want := []int64{100, 150, 225, 337}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Fatalf("backoff delays %v, want %v", delays, want)
	}
	if got := e.proc(0).Pm2Env.PrevRestartDelay; got < 337 {
		t.Fatalf("prev_restart_delay %d, want ≥ 337", got)
	}
}

// eventsStream subscribes to GET /v1/events and returns once the subscription is live.
func eventsStream(t *testing.T, e *env) <-chan api.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan api.Event, 1024)
	opened := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		defer close(ch)
		err := e.client().Events(ctx, func() { close(opened) }, func(ev api.Event) error {
			ch <- ev
			return nil
		})
		failed <- err
	}()
	select {
	case <-opened:
	case err := <-failed:
		t.Fatalf("events: %v", err)
	}
	return ch
}

// TestMemoryLimitRestarts: a leaking process is restarted when its tree passes
// max_memory_restart.
func TestMemoryLimitRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "leak.js")
	e.ok("start", "leak.js", "--max-memory-restart", "150M")
	e.waitFor("a memory restart", 60*time.Second, func() bool { return e.proc(0).Pm2Env.RestartTime >= 1 })
	if !strings.Contains(readFile(e.home+"/corral.log"), "memory limit") {
		t.Fatal("the daemon log does not say why it restarted")
	}
}

// TestCronRestart: cron_restart restarts on schedule, and a job that exits on its own is run
// again by the schedule.
func TestCronRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("job.sh", "#!/bin/sh\necho job ran\n")
	e.ok("start", "sleeper.sh", "--name", "svc", "--cron-restart", "*/2 * * * * *")
	e.ok("start", "job.sh", "--name", "job", "--no-autorestart", "--cron", "*/2 * * * * *")
	e.waitFor("cron restarts", 60*time.Second, func() bool {
		return e.proc(0).Pm2Env.RestartTime >= 2 && e.proc(1).Pm2Env.RestartTime >= 2
	})
	// A process stopped by hand is left alone by cron.
	e.ok("stop", "svc")
	before := e.proc(0).Pm2Env.RestartTime
	e.waitFor("job to run again", 30*time.Second, func() bool { return e.proc(1).Pm2Env.RestartTime >= 4 })
	if p := e.proc(0); p.Pm2Env.Status != "stopped" || p.Pm2Env.RestartTime != before {
		t.Fatalf("cron touched a stopped app: %+v", p.Pm2Env)
	}
}

// TestWaitReady: with wait_ready the app stays launching until it sends 'ready'.
func TestWaitReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "ready.js")
	e.vars["READY_DELAY"] = "1500"
	e.ok("start", "ready.js", "--wait-ready", "--listen-timeout", "60000")
	if s := e.proc(0).Pm2Env.Status; s != "launching" {
		t.Fatalf("status %s right after start, want launching", s)
	}
	p := e.waitStatus(0, "online", 30*time.Second)
	if !strings.Contains(readFile(p.Pm2Env.OutLog), "sending ready") {
		t.Fatal("online before the app sent ready")
	}
	// Without a ready message, listen_timeout makes it online anyway (PM2's fork-mode rule).
	e.vars["READY_DELAY"] = "never"
	e.ok("start", "ready.js", "--name", "never", "--wait-ready", "--listen-timeout", "500")
	e.waitStatus(1, "online", 30*time.Second)
}

// TestShutdownWithMessage: stop sends the 'shutdown' message instead of a signal.
func TestShutdownWithMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "shutdown.js")
	e.ok("start", "shutdown.js", "--shutdown-with-message", "--kill-timeout", "10000")
	p := e.waitStatus(0, "online", 20*time.Second)
	e.ok("stop", "shutdown")
	log := readFile(p.Pm2Env.OutLog)
	if !strings.Contains(log, "got shutdown message") || strings.Contains(log, "got SIGINT") {
		t.Fatalf("stop did not use the shutdown message:\n%s", log)
	}
	if code := e.proc(0).Pm2Env.ExitCode; code == nil || *code != 0 {
		t.Fatalf("exit code %v, want 0", code)
	}
}

// TestWatchRestarts: a change under a watched directory restarts the app; ignored paths do not.
func TestWatchRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("src/a.txt", "one")
	e.write("node_modules/x.txt", "one")
	e.ok("start", "sleeper.sh", "--watch=src")
	e.waitStatus(0, "online", 20*time.Second)
	e.write("node_modules/x.txt", "two")
	e.write("src/a.txt", "two")
	e.waitFor("restart on change", 30*time.Second, func() bool { return e.proc(0).Pm2Env.RestartTime == 1 })
	if !strings.Contains(e.ok("ls").stdout, "enabled") {
		t.Fatal("ls does not show watching enabled")
	}
}
