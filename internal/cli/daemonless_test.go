package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/testutil"
)

// fakeDaemon serves the API socket of e's home with handler, every answer carrying version
// in the version header: a daemon of another build, for the one thing a real daemon in this
// process cannot be.
func (e *testEnv) fakeDaemon(version string, handler http.HandlerFunc) {
	e.t.Helper()
	ln, err := net.Listen("unix", filepath.Join(e.home, "corral.sock"))
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderVersion, version)
		handler(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	e.t.Cleanup(srv.Close)
}

// TestVersionMismatch: a CLI talking to a daemon of another version warns once per command,
// on stderr, and says what to do; the command still does its work.
func TestVersionMismatch(t *testing.T) {
	e := newHome(t)
	var requests atomic.Int32
	web := api.Process{ID: 0, Name: "web", Namespace: "default", Status: "online", PID: 4242, Version: "N/A", Username: "someone"}
	web.App.ExecMode = "fork"
	e.fakeDaemon("9.9.9-old", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case api.Prefix + "/processes":
			json.NewEncoder(w).Encode([]api.Process{web})
		case api.Prefix + "/version":
			json.NewEncoder(w).Encode(api.Version{Version: "9.9.9-old", PID: 1, Home: e.home})
		case api.Prefix + "/actions/restart":
			json.NewEncoder(w).Encode(api.ActionResponse{Processes: []api.Process{web}})
		default:
			http.NotFound(w, r)
		}
	})

	r := e.ok("ls")
	golden(t, "version_mismatch.golden", e.normalize(strings.ReplaceAll(r.String(), buildinfo.Version, "$VERSION")))

	// restart: the events stream (404 here), the action and the table: three requests, one
	// warning.
	requests.Store(0)
	r = e.ok("restart", "web")
	if n := strings.Count(r.stderr, "warning: this corral is version"); n != 1 || requests.Load() < 3 {
		t.Errorf("%d requests, %d version warnings, want 1:\n%s", requests.Load(), n, r)
	}
	if !strings.Contains(r.stdout, "[corral] Restarted web[0]: online\n") {
		t.Errorf("restart against an older daemon:\n%s", r)
	}
	if r := e.ok("ping"); r.stdout != "{ msg: 'pong' }\n" || !strings.Contains(r.stderr, "is version 9.9.9-old") {
		t.Errorf("ping:\n%s", r)
	}
}

// TestNoDaemon: kill does not start a daemon to stop it: with no socket, or a socket nothing
// answers on (a daemon that died), it says there is none and exits 0, creating nothing.
func TestNoDaemon(t *testing.T) {
	e := newHome(t)
	if r := e.ok("kill"); r.stdout != "[corral] No daemon running\n" || r.stderr != "" {
		t.Errorf("kill without a socket:\n%s", r)
	}
	if ents, _ := os.ReadDir(e.home); len(ents) != 0 {
		t.Errorf("kill without a daemon created %v in the home", ents)
	}

	// A socket left by a daemon that died: it exists, nothing listens.
	sock := filepath.Join(e.home, "corral.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if r := e.ok("kill"); r.stdout != "[corral] No daemon running\n" || r.stderr != "" {
		t.Errorf("kill with a dead daemon's socket:\n%s", r)
	}
}

// TestSpawnedDaemonExits: a command that needs the daemon and finds none starts one in the
// background (here the test binary, which refuses to be one: see TestMain); when it exits at
// start, the command says so with the last lines of the daemon log, and exits 1.
func TestSpawnedDaemonExits(t *testing.T) {
	e := newHome(t)
	r := e.fails(1, "ls")
	golden(t, "error_daemon_exited.golden", e.normalize(r.String()))
	if !strings.Contains(r.stderr, refusedDaemon) {
		t.Errorf("the error does not show the daemon log's last lines:\n%s", r)
	}
}

// keepProcs undoes, at the end of the test, the daemon's GOMAXPROCS(1) (daemon.New), for a
// test that has the CLI create a daemon in this process.
func keepProcs(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
}

// TestDaemonCommand: `corral daemon --no-keeper` serves in the foreground until `corral kill`
// stops it, then exits 0. (Plain `corral daemon` is the keeper, which reaps every child of its
// process: it cannot run inside the test process; TestKeptDaemon runs it in a child.)
func TestDaemonCommand(t *testing.T) {
	e := newHome(t)
	keepProcs(t)
	fg := e.background(context.Background(), "daemon", "--no-keeper")
	t.Cleanup(func() {
		select {
		case <-fg.done:
		default:
			// The test failed before kill: stop the daemon the way a user would.
			e.run("kill")
			fg.wait(t, 60*time.Second)
		}
	})
	// Not just the socket's existence: a command dialling between its bind and its listen
	// would be refused, take the daemon for dead and start one.
	testutil.WaitFor(t, "the daemon to answer", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := e.cl.Version(ctx)
		return err == nil
	})
	if r := e.ok("ping"); r.stdout != "{ msg: 'pong' }\n" || r.stderr != "" {
		t.Errorf("ping:\n%s", r)
	}
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web")
	e.waitOnline("web", 1)
	if r := e.ok("kill"); r.stdout != "[corral] Every app stopped; daemon stopped\n" {
		t.Errorf("kill:\n%s", r)
	}
	if code := fg.wait(t, 30*time.Second); code != 0 {
		t.Errorf("corral daemon exited %d:\n%s", code, fg.out.String())
	}
}

// TestRunForeground: `corral run` runs the daemon and the app in the foreground, prints the
// app's output with PM2's prefixes, and exits 2 once no app is left running.
func TestRunForeground(t *testing.T) {
	e := newHome(t)
	keepProcs(t)
	e.write("once.sh", "#!/bin/sh\necho hello from run\n", 0o755)
	r := e.run("run", "once.sh", "--no-autorestart")
	if r.code != exitNothingRunning {
		t.Fatalf("want exit %d:\n%s", exitNothingRunning, r)
	}
	if !strings.Contains(r.stdout, "0|once         | hello from run\n") {
		t.Errorf("run does not print the app's output:\n%s", r)
	}
	if !strings.HasSuffix(r.stderr, "[corral] no app is running any more: exiting\n") {
		t.Errorf("run does not say why it exits:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(e.home, "corral.sock")); !os.IsNotExist(err) {
		t.Errorf("the socket outlived corral run: %v", err)
	}
}

// TestStartupUnitDir: startup writes a systemd unit running this binary's daemon for this
// CORRAL_HOME (with --unit-dir: neither /etc nor systemctl is touched); unstartup removes it;
// another init system is refused.
func TestStartupUnitDir(t *testing.T) {
	e := newHome(t)
	units := t.TempDir()
	r := e.ok("startup", "systemd", "--unit-dir", units, "-u", "corral-test", "--hp", "/home/corral-test")
	unit := filepath.Join(units, "corral-corral-test.service")
	if !strings.Contains(r.stdout, "[corral] Wrote "+unit+"\n") || strings.Contains(r.stdout, "Enabled") {
		t.Errorf("startup --unit-dir:\n%s", r)
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	for _, want := range []string{"Type=notify", "User=corral-test", "CORRAL_HOME=" + e.home, exe} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the unit lacks %q:\n%s", want, b)
		}
	}
	if r := e.ok("unstartup", "--unit-dir", units, "-u", "corral-test", "--hp", "/home/corral-test"); !strings.Contains(r.stdout, "Removed "+unit) {
		t.Errorf("unstartup:\n%s", r)
	}
	if _, err := os.Stat(unit); !os.IsNotExist(err) {
		t.Errorf("the unit is still there: %v", err)
	}
	r = e.fails(1, "startup", "upstart", "--unit-dir", units)
	if !strings.Contains(r.stderr, `init system "upstart" is not supported`) {
		t.Errorf("startup upstart:\n%s", r)
	}
}

// TestKeptDaemon: `corral daemon` is the keeper: its daemon, SIGKILLed, is started again and
// answers; `corral kill` stops the daemon and the keeper with it (exit 0, keeper.pid removed).
// The keeper and its daemon are this test binary run as corral, in a process group of their
// own that the cleanup kills.
func TestKeptDaemon(t *testing.T) {
	e := newHome(t)
	log := filepath.Join(t.TempDir(), "keeper.log")
	logf, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "daemon")
	cmd.Env = append(os.Environ(), keptVar+"=1")
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			testutil.LogTail(t, "keeper and daemon log", log, 40)
		}
	})
	daemonPID := func(not int) int {
		t.Helper()
		var pid int
		testutil.WaitFor(t, fmt.Sprintf("a daemon other than pid %d to answer", not), 60*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			v, err := e.cl.Version(ctx)
			pid = v.PID
			return err == nil && pid != not
		})
		return pid
	}
	first := daemonPID(0)
	if b, err := os.ReadFile(filepath.Join(e.home, "keeper.pid")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("keeper.pid: %q, %v; the keeper is pid %d", b, err, cmd.Process.Pid)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	daemonPID(first)
	if r := e.ok("kill"); r.stdout != "[corral] Every app stopped; daemon stopped\n" {
		t.Errorf("kill:\n%s", r)
	}
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("the keeper exited %d", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the keeper did not exit after corral kill")
	}
	if _, err := os.Stat(filepath.Join(e.home, "keeper.pid")); !os.IsNotExist(err) {
		t.Errorf("keeper.pid outlived the keeper: %v", err)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), fmt.Sprintf("keeper: corral daemon (pid %d) was killed by SIGKILL", first)) {
		t.Errorf("the log does not tell the restart:\n%s", b)
	}
	r := e.ok("keeper", "--handover-version")
	if r.stdout != `{"keeper":1,"protocol":1,"daemon":1}`+"\n" {
		t.Errorf("keeper --handover-version printed %q", r.stdout)
	}
}
