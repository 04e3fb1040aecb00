package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/buildinfo"
)

// TestPingAndKill: ping starts the daemon and answers; kill stops every app and the daemon
// (socket and pid file gone); kill with no daemon says so and succeeds.
func TestPingAndKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	sock := filepath.Join(e.home, "corral.sock")
	r := e.ok("kill")
	if !strings.Contains(r.stdout, "No daemon running") {
		t.Fatalf("kill with no daemon:\n%s", r)
	}
	if r := e.ok("ping"); strings.TrimSpace(r.stdout) != "{ msg: 'pong' }" {
		t.Fatalf("ping printed %q", r.stdout)
	}
	daemon := e.daemonPID()
	if !pathExists(sock) || !alive(daemon) {
		t.Fatalf("after ping: socket %v, daemon pid %d alive %v", pathExists(sock), daemon, alive(daemon))
	}
	e.ok("ping") // the same daemon answers again
	if e.daemonPID() != daemon {
		t.Fatal("a second ping started another daemon")
	}
	e.ok("start", "sleeper.sh", "--name", "a")
	e.ok("start", "sleeper.sh", "--name", "b", "-i", "2")
	var pids []int
	for id := 0; id < 3; id++ {
		pids = append(pids, e.waitStatus(id, "online", 20*time.Second).PID)
	}
	r = e.ok("kill")
	if !strings.Contains(r.stdout, "daemon stopped") {
		t.Fatalf("kill does not say what it did:\n%s", r)
	}
	if pathExists(sock) || pathExists(filepath.Join(e.home, "corral.pid")) {
		t.Fatal("socket or pid file left after kill")
	}
	e.waitFor("the daemon to exit", 20*time.Second, func() bool { return !alive(daemon) })
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("app pid %d survived kill", pid)
		}
	}
	if r := e.ok("kill"); !strings.Contains(r.stdout, "No daemon running") {
		t.Fatalf("second kill:\n%s", r)
	}
	// The next command starts a fresh daemon with nothing in it (kill does not save).
	if n := len(e.jlist()); n != 0 {
		t.Fatalf("%d processes after kill", n)
	}
}

// buildVersion builds corral with another version number into a temporary directory.
func buildVersion(t *testing.T, version string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "corral")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X github.com/corral-pm/corral/internal/buildinfo.Version="+version, "-o", bin, "../cmd/corral")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build corral %s: %v\n%s", version, err, out)
	}
	return bin
}

// TestVersionMismatchAndUpdate: a CLI of another version than the daemon says so, naming both
// versions and `corral update`; update replaces the daemon with the CLI's binary, and the apps
// never notice (same pids, same statuses, no restart).
func TestVersionMismatchAndUpdate(t *testing.T) {
	t.Parallel()
	const newVersion = "9.9.9"
	if buildinfo.Version == newVersion {
		t.Fatal("the test binary already claims version", newVersion)
	}
	newBin := buildVersion(t, newVersion)
	e := newEnv(t, "sleeper.sh")
	e.ok("start", "sleeper.sh", "--name", "keep")
	e.ok("start", "sleeper.sh", "--name", "idle")
	e.waitStatus(1, "online", 20*time.Second)
	e.ok("stop", "idle")
	old := e.waitStatus(0, "online", 20*time.Second)
	oldDaemon := e.daemonPID()
	if r := e.ok("ls"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("same versions, yet a warning:\n%s", r)
	}

	e.bin = newBin
	r := e.ok("ls")
	for _, want := range []string{newVersion, buildinfo.Version, "corral update"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("a CLI of another version does not mention %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "keep") {
		t.Fatalf("ls still has to work:\n%s", r)
	}

	r = e.ok("update")
	newDaemon := e.daemonPID()
	if newDaemon == 0 || newDaemon == oldDaemon {
		t.Fatalf("update kept the daemon (pid %d, was %d)", newDaemon, oldDaemon)
	}
	e.waitFor("the old daemon to exit", 20*time.Second, func() bool { return !alive(oldDaemon) })
	if v, err := e.client().Version(context.Background()); err != nil || v.Version != newVersion {
		t.Fatalf("daemon version after update: %q (%v), want %s", v.Version, err, newVersion)
	}
	p := e.waitStatus(0, "online", 20*time.Second)
	if p.Name != "keep" || p.PID != old.PID || !alive(old.PID) || p.Pm2Env.RestartTime != old.Pm2Env.RestartTime {
		t.Fatalf("after update: %s pid %d, %d restarts (before: pid %d, %d restarts; alive: %v)",
			p.Name, p.PID, p.Pm2Env.RestartTime, old.PID, old.Pm2Env.RestartTime, alive(old.PID))
	}
	if idle := e.proc(1); idle.Name != "idle" || idle.Pm2Env.Status != "stopped" {
		t.Fatalf("after update the stopped app is %s %s", idle.Name, idle.Pm2Env.Status)
	}
	if r := e.ok("ls"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("after update the CLI still warns:\n%s", r)
	}
	// Now the old binary is the odd one out.
	e.bin = corralBin
	if r := e.ok("jlist"); !strings.Contains(r.stderr, newVersion) || !strings.Contains(r.stderr, "corral update") {
		t.Fatalf("the old CLI does not warn against the new daemon:\n%s", r.stderr)
	}
}

// TestStartupUnit: `startup systemd --unit-dir` writes corral-<user>.service starting this
// binary's daemon with --resurrect for this CORRAL_HOME; unstartup removes it.
func TestStartupUnit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := filepath.EvalSymlinks(corralBin)
	if err != nil {
		t.Fatal(err)
	}
	e.ok("startup", "systemd", "--unit-dir", dir)
	unit := filepath.Join(dir, "corral-"+u.Username+".service")
	content := readFile(unit)
	for _, want := range []string{
		"ExecStart=" + bin + " daemon --resurrect\n",
		"Environment=CORRAL_HOME=" + e.home + "\n",
		"User=" + u.Username + "\n",
		"[Install]",
	} {
		if !strings.Contains(content, want) {
			t.Errorf("%s lacks %q:\n%s", unit, want, content)
		}
	}
	e.ok("unstartup", "--unit-dir", dir)
	if pathExists(unit) {
		t.Fatal("unstartup left the unit")
	}
	if r := e.fails("startup", "upstart", "--unit-dir", dir); !strings.Contains(r.stderr, "upstart") {
		t.Fatalf("an unsupported init system is not named:\n%s", r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left in the unit directory: %v", entries)
	}
}

// TestRunForeground: `corral run <file>` runs the apps attached, printing their output with
// the id|name prefix; other commands reach it; SIGTERM stops the apps and it exits 0.
func TestRunForeground(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [
		{ name: 'fg', script: './sleeper.sh' },
		{ name: 'fg2', script: './sleeper.sh', instances: 2 },
	] }`)
	run := e.background("run", "ecosystem.config.js")
	run.stdout.waitLine(t, "the app's output with its prefix", 30*time.Second, regexp.MustCompile(`^0\|fg\s* \| started instance=0 pm_id=0 `).MatchString)
	run.stdout.waitLine(t, "the second instance's output", 30*time.Second, regexp.MustCompile(`^2\|fg2\s* \| started instance=1 pm_id=2 `).MatchString)
	if r := e.ok("ls"); !strings.Contains(r.stdout, "fg2") || strings.Count(r.stdout, "online") != 3 {
		t.Fatalf("ls while run runs:\n%s", r)
	}
	var pids []int
	for _, p := range e.jlist() {
		pids = append(pids, p.PID)
	}
	run.signal(syscall.SIGTERM)
	if code := run.wait(30 * time.Second); code != 0 {
		t.Fatalf("run exited with %d on SIGTERM, want 0\nstdout:\n%s\nstderr:\n%s", code, run.stdout, run.stderr)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("app pid %d survived run's SIGTERM", pid)
		}
	}
	// Gracefully: SIGINT, which sleeper.sh traps to exit 0 (not SIGKILL after kill_timeout).
	daemonLog := readFile(filepath.Join(e.home, "corral.log"))
	for _, p := range []string{"fg[0]", "fg2[1]", "fg2[2]"} {
		if !regexp.MustCompile(regexp.QuoteMeta(p) + ` \(pid \d+\) exited with code 0`).MatchString(daemonLog) {
			t.Errorf("%s was not stopped gracefully:\n%s", p, daemonLog)
		}
	}
	// Everything the daemon said before it returned is printed, its last line included.
	if out := run.stdout.all(); len(out) == 0 || !strings.HasSuffix(out[len(out)-1], "corral daemon stopped") {
		t.Errorf("run's output does not end with the daemon's last line:\n%s", run.stdout)
	}
	if pathExists(filepath.Join(e.home, "corral.sock")) {
		t.Fatal("run left its socket")
	}
}

// TestRunExitsWhenNothingRuns: when the only app exits for good, run exits with code 2
// (pm2-runtime's): a file whose app crashes, run with --no-autorestart (the flag applies to
// the file's app: it runs once), and a script.
func TestRunExitsWhenNothingRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [{ name: 'once', script: './crash.sh' }] }`)
	r := e.run("run", "ecosystem.config.js", "--no-autorestart")
	if r.code != 2 || !strings.Contains(r.stdout, "0|once") {
		t.Fatalf("run of an app that crashes, with --no-autorestart: want exit 2 and its output, got:\n%s", r)
	}
	if n := strings.Count(r.stdout, "crashing now"); n != 1 {
		t.Fatalf("the app ran %d times, want once (--no-autorestart):\n%s", n, r)
	}
	r = e.run("run", "crash.sh", "--no-autorestart")
	if r.code != 2 || strings.Count(r.stdout, "crashing now") != 1 {
		t.Fatalf("run crash.sh --no-autorestart: want exit 2 after one run, got:\n%s", r)
	}
	if r := e.run("run", "ecosystem.config.js", "extra.js"); r.code != 1 {
		t.Fatalf("run with two targets: want exit 1, got:\n%s", r)
	}
}

// TestInspectionCommands: pid, id, sendSignal, reset, describe, ls --sort.
func TestInspectionCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "signals.sh", "sleeper.sh")
	e.ok("start", "signals.sh", "--name", "sig", "-i", "2")
	e.ok("start", "sleeper.sh", "--name", "alpha")
	var procs []jproc
	for id := 0; id < 3; id++ {
		procs = append(procs, e.waitStatus(id, "online", 20*time.Second))
	}

	if got, want := e.ok("pid", "sig").stdout, fmt.Sprintf("%d\n%d\n", procs[0].PID, procs[1].PID); got != want {
		t.Errorf("pid sig = %q, want %q", got, want)
	}
	if got, want := e.ok("pid").stdout, fmt.Sprintf("%d\n%d\n%d\n", procs[0].PID, procs[1].PID, procs[2].PID); got != want {
		t.Errorf("pid = %q, want %q", got, want)
	}
	if got := e.ok("pid", "2").stdout; got != fmt.Sprintf("%d\n", procs[2].PID) {
		t.Errorf("pid 2 = %q", got)
	}
	if got := e.ok("id", "sig").stdout; got != "[ 0, 1 ]\n" {
		t.Errorf("id sig = %q", got)
	}
	if got := e.ok("id", "nosuch").stdout; got != "[]\n" {
		t.Errorf("id nosuch = %q", got)
	}

	for _, p := range procs[:2] {
		e.waitFor("the trap to be set", 20*time.Second, func() bool { return strings.Contains(readFile(p.Pm2Env.OutLog), "ready pid=") })
	}
	e.ok("sendSignal", "SIGUSR1", "sig")
	e.ok("sendSignal", "USR2", "1")
	e.waitFor("both instances to log SIGUSR1 and the second SIGUSR2", 20*time.Second, func() bool {
		return strings.Contains(readFile(procs[0].Pm2Env.OutLog), "got SIGUSR1") &&
			strings.Contains(readFile(procs[1].Pm2Env.OutLog), "got SIGUSR1") &&
			strings.Contains(readFile(procs[1].Pm2Env.OutLog), "got SIGUSR2")
	})
	if strings.Contains(readFile(procs[0].Pm2Env.OutLog), "got SIGUSR2") {
		t.Error("sendSignal USR2 1 reached process 0")
	}
	if p := e.proc(0); p.PID != procs[0].PID || p.Pm2Env.Status != "online" {
		t.Errorf("a handled signal restarted the app: %+v", p)
	}
	if r := e.fails("sendSignal", "SIGBOGUS", "sig"); !strings.Contains(r.stderr, "SIGBOGUS") {
		t.Errorf("an unknown signal is not named:\n%s", r)
	}

	e.ok("restart", "sig")
	e.ok("restart", "sig")
	for id := 0; id < 2; id++ {
		if n := e.waitStatus(id, "online", 20*time.Second).Pm2Env.RestartTime; n != 2 {
			t.Fatalf("restart_time %d after two restarts", n)
		}
	}
	e.ok("reset", "sig")
	for id := 0; id < 3; id++ {
		if p := e.proc(id); p.Pm2Env.RestartTime != 0 || p.Pm2Env.Status != "online" {
			t.Fatalf("after reset: %s[%d] restart_time %d, %s", p.Name, id, p.Pm2Env.RestartTime, p.Pm2Env.Status)
		}
	}

	r := e.ok("describe", "sig")
	if !strings.Contains(r.stdout, "Describing process with id 0 - name sig") || !strings.Contains(r.stdout, "Describing process with id 1 - name sig") {
		t.Errorf("describe sig does not describe both processes:\n%s", r.stdout)
	}
	if !strings.Contains(e.ok("describe", "2").stdout, "name alpha") {
		t.Error("describe by id")
	}
	r = e.fails("describe", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, `"nosuch" not found`) {
		t.Errorf("describe of an unknown app: want exit 1 naming it, got:\n%s", r)
	}

	names := func(args ...string) string {
		t.Helper()
		var out []string
		for _, line := range strings.Split(e.ok(append([]string{"ls"}, args...)...).stdout, "\n") {
			f := strings.Split(line, "│")
			if len(f) > 3 && strings.TrimSpace(f[1]) != "id" {
				out = append(out, strings.TrimSpace(f[1])+":"+strings.TrimSpace(f[2]))
			}
		}
		return strings.Join(out, " ")
	}
	if got := names("--sort", "name:desc"); got != "0:sig 1:sig 2:alpha" {
		t.Errorf("ls --sort name:desc: %s", got)
	}
	if got := names("--sort", "name"); got != "2:alpha 0:sig 1:sig" {
		t.Errorf("ls --sort name: %s", got)
	}
	if got := names("--sort", "id:desc"); got != "2:alpha 1:sig 0:sig" {
		t.Errorf("ls --sort id:desc: %s", got)
	}
	if r := e.fails("ls", "--sort", "colour"); !strings.Contains(r.stderr, "colour") {
		t.Errorf("ls --sort with an unknown field:\n%s", r)
	}
}

// TestUpdateWithNothingRunning: update with no app running restarts the daemon and leaves the
// saved list alone (an empty save would make the next boot restore nothing); as PM2's update,
// it then resurrects that list.
func TestUpdateWithNothingRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	dump := filepath.Join(e.home, "dump.json")
	e.ok("start", "sleeper.sh", "--name", "saved")
	e.ok("save")
	saved := readFile(dump)
	e.ok("delete", "all")
	oldDaemon := e.daemonPID()
	e.ok("update")
	if d := e.daemonPID(); d == oldDaemon || d == 0 {
		t.Fatalf("update kept the daemon (pid %d)", d)
	}
	if readFile(dump) != saved {
		t.Fatalf("update with nothing running overwrote the saved list:\n%s", readFile(dump))
	}
	if p := e.waitStatus(0, "online", 20*time.Second); p.Name != "saved" || len(e.jlist()) != 1 {
		t.Fatalf("after update: %v, want the saved app back", savedSlots(e.jlist()))
	}
	// With no daemon at all, update starts one and resurrects the saved list too.
	e.ok("kill")
	e.ok("update")
	if !alive(e.daemonPID()) || readFile(dump) != saved {
		t.Fatal("update with no daemon: no daemon, or the saved list changed")
	}
	e.waitStatus(0, "online", 20*time.Second)
}
