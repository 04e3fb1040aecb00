package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/daemon"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/testutil"
)

// update rewrites the golden files from the current output: go test ./internal/cli -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// testEnv is one test's corral: a CORRAL_HOME of its own (CORRAL_HOME is set for the test,
// and the working directory is the apps' directory, so tests in this package do not run in
// parallel) and, once started, a real daemon serving it in this test process. Commands run
// the real command tree in this process too, against that daemon's socket: the CLI finds it
// and never spawns a background daemon.
//
// Every app started by a command inherits the test's environment, CORRAL_HOME included:
// whatever a failed test leaves is found by it and killed at cleanup.
type testEnv struct {
	t    *testing.T
	home string      // short, under /tmp: the control socket's path must fit a sockaddr_un
	dir  string      // the apps' directory, and the working directory of the commands
	cl   *api.Client // talks to the daemon directly, to check what commands did

	d       *daemon.Daemon
	stop    context.CancelFunc
	exited  chan struct{} // closed when Run has returned
	exitErr error         // what Run returned
}

// newHome makes a home and a working directory, without a daemon.
func newHome(t *testing.T) *testEnv {
	t.Helper()
	h, err := os.MkdirTemp("", "cc")
	if err != nil {
		t.Fatal(err)
	}
	if h, err = filepath.EvalSymlinks(h); err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, home: h, dir: dir, cl: api.NewClient(filepath.Join(h, "corral.sock"))}
	t.Setenv("CORRAL_HOME", h)
	t.Chdir(dir)
	t.Cleanup(e.cleanup)
	return e
}

// newEnv makes a home with a daemon running.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newHome(t)
	e.startDaemon()
	return e
}

// startDaemon runs a daemon for the home in this process, as `corral daemon` would.
func (e *testEnv) startDaemon() {
	e.t.Helper()
	// New takes the process down to one P (the daemon's own choice, for its hot path); the
	// tests want the CLI and the daemon to interleave as they do as two processes.
	procs := runtime.GOMAXPROCS(0)
	d, err := daemon.New(daemon.Options{Paths: home.At(e.home), SampleInterval: 200 * time.Millisecond})
	runtime.GOMAXPROCS(procs)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.d, e.stop, e.exited = d, cancel, make(chan struct{})
	go func() {
		e.exitErr = d.Run(ctx)
		close(e.exited)
	}()
	select {
	case <-d.Ready():
	case <-e.exited:
		e.t.Fatalf("daemon did not start: %v", e.exitErr)
	}
}

// daemonExited waits (up to timeout) for the daemon's Run to return and reports whether it did.
func (e *testEnv) daemonExited(timeout time.Duration) bool {
	if e.exited == nil {
		return true // none was started
	}
	select {
	case <-e.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// cleanup stops the daemon (which stops every app), kills whatever carries the home in its
// environment and fails the test if anything did, and removes the home.
func (e *testEnv) cleanup() {
	if e.d != nil {
		e.stop()
		if !e.daemonExited(60 * time.Second) {
			e.t.Errorf("the daemon did not stop within 60s")
		} else if e.exitErr != nil {
			e.t.Errorf("daemon Run: %v", e.exitErr)
		}
	}
	if left := killMarked(e.home); len(left) > 0 {
		e.t.Errorf("processes left behind: %v", left)
	}
	if e.t.Failed() {
		testutil.LogTail(e.t, "daemon log", filepath.Join(e.home, "corral.log"), 80)
	}
	os.RemoveAll(e.home)
}

// markedPIDs lists the live processes whose environment sets CORRAL_HOME to home: the apps of
// its daemon (they inherit the CLI's environment) and their children.
func markedPIDs(home string) []int { return procstat.PIDsWithEnv("CORRAL_HOME", home) }

// zombie reports whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// killMarked kills the processes of home and returns their pids.
func killMarked(home string) []int {
	pids := markedPIDs(home)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return pids
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, as the os.File the CLI writes to
// in real use is.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what one command printed and its exit code.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("$ corral %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// commandTimeout bounds one command (the machine is slow and shared: generous).
const commandTimeout = 60 * time.Second

// run runs one corral command line through the real command tree, in this process, as Main
// does (same exit codes, same error lines), with its output captured.
func (e *testEnv) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var out, errb syncBuffer
	c := &cli{stdout: &out, stderr: &errb, newDaemon: newDaemon}
	code := c.execute(ctx, args)
	return result{args: args, stdout: out.String(), stderr: errb.String(), code: code}
}

// bgCommand is a command running in the background (logs, monit, daemon): what it prints so
// far, stdout and stderr together, and its exit code once done is closed.
type bgCommand struct {
	out  syncBuffer
	done chan struct{}
	code int
}

// background starts a command that runs until ctx ends (Ctrl-C) or it is stopped otherwise.
func (e *testEnv) background(ctx context.Context, args ...string) *bgCommand {
	b := &bgCommand{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		c := &cli{stdout: &b.out, stderr: &b.out, newDaemon: newDaemon}
		b.code = c.execute(ctx, args)
	}()
	return b
}

// wait waits (up to timeout) for the command to end and returns its exit code, or fails the
// test.
func (b *bgCommand) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
		return b.code
	case <-time.After(timeout):
		t.Fatalf("the command did not end within %v; it printed:\n%s", timeout, b.out.String())
		return -1
	}
}

// newDaemon is cmd/corral's: the daemon `corral run` runs in this process.
func newDaemon(paths home.Paths, resurrect bool) (Daemon, error) {
	return daemon.New(daemon.Options{Paths: paths, Resurrect: resurrect})
}

// ok runs a command and fails the test unless it exits 0.
func (e *testEnv) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("command failed:\n%s", r)
	}
	return r
}

// fails runs a command and fails the test unless it exits with code.
func (e *testEnv) fails(code int, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != code {
		e.t.Fatalf("want exit %d:\n%s", code, r)
	}
	return r
}

// write creates a file in the apps' directory and returns its path.
func (e *testEnv) write(name, content string, mode os.FileMode) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// sleeper writes an executable sh script that runs until stopped.
func (e *testEnv) sleeper(name string) string {
	return e.write(name, "#!/bin/sh\nexec sleep 100000\n", 0o755)
}

// list returns every process, straight from the API.
func (e *testEnv) list() []api.Process {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	procs, err := e.cl.Processes(ctx, false)
	if err != nil {
		e.t.Fatalf("list: %v", err)
	}
	return procs
}

// waitOnline waits until app has n processes, every one online with a pid, and returns them.
func (e *testEnv) waitOnline(app string, n int) []api.Process {
	e.t.Helper()
	var got []api.Process
	testutil.WaitFor(e.t, fmt.Sprintf("%d process(es) of %s online", n, app), 30*time.Second, func() bool {
		got = got[:0]
		for _, p := range e.list() {
			if p.Name == app {
				if p.Status != "online" || p.PID <= 0 {
					return false
				}
				got = append(got, p)
			}
		}
		return len(got) == n
	})
	return got
}

// pkgDir is this package's directory (tests change the working directory).
var pkgDir, _ = os.Getwd()

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	testutil.Golden(t, filepath.Join(pkgDir, "testdata", name), got, *update)
}
