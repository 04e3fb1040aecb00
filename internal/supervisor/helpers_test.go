package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/listenexec"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/sdnotify"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// These tests run real programs: /bin/sh scripts written into the test's directory, with trap
// handlers, real signals and real process groups. Nothing about the OS is mocked.
//
// Every wait is on a condition with a deadline (waitTimeout, generous: -race on a busy 2-core
// machine), never a sleep; no test asserts how long something took, only lower bounds that
// timers guarantee (a timer never fires early).
//
// The tests do not run in parallel: each checks that it leaves no goroutine and no fd behind,
// and those counts are process-wide.

// waitTimeout bounds every wait on a condition.
const waitTimeout = 30 * time.Second

// helperEnv names the mode in which the test binary, re-executed by a script, acts as a small
// helper program instead of running the tests (as cloudflare/tableflip's tests do).
const helperEnv = "SUPERVISOR_TEST_HELPER"

func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == listenexec.Command {
		// The exec shim, as cmd/corral has it: LISTEN_PID is our pid, which exec keeps.
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		err := syscall.Exec(os.Args[2], os.Args[3:], os.Environ())
		fmt.Fprintf(os.Stderr, "exec shim: %v\n", err)
		os.Exit(126)
	}
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperMain is the helper program:
//   - notify ASSIGNMENT...: sends one sd_notify datagram ("READY=1") to $NOTIFY_SOCKET, as
//     systemd-notify does;
//   - serve: a server on the socket it inherits as fd 3 (socket activation): it writes its
//     LISTEN_* variables to $DIR/listen.<pid>, then answers "ok" to every connection until
//     SIGINT or SIGTERM.
func helperMain(mode string, args []string) int {
	switch mode {
	case "serve":
		return serve()
	case "notify":
		sent, err := sdnotify.Notify(strings.Join(args, "\n"))
		if err != nil || !sent {
			fmt.Fprintf(os.Stderr, "notify: sent=%v err=%v\n", sent, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

func serve() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	env := os.Getenv("LISTEN_PID") + " " + os.Getenv("LISTEN_FDS") + " " + os.Getenv("LISTEN_FDNAMES") + "\n"
	if err := os.WriteFile(filepath.Join(os.Getenv("DIR"), gate("listen", os.Getpid())), []byte(env), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
	<-sigs
	return 0
}

// notifyCmd is the shell command a script runs to send READY=1 through the helper.
const notifyCmd = helperEnv + `=notify "$HELPER" READY=1`

// harness is one process slot under test, with everything it is connected to.
type harness struct {
	t      *testing.T
	dir    string // the test's directory: scripts, gate and marker files, logs, sockets
	logs   *logs.Manager
	hub    *logs.Hub
	hooks  *Hooks
	events *recorder
	p      *Process
	app    *spec.App // the app the process was created with
}

// newHarness creates a process slot (not started) for the script body, which runs under
// /bin/sh with $DIR (the test's directory) and $HELPER (this test binary) set. mod adjusts
// the app before the slot is created. Cleanups delete the slot and make sure that no program
// the test started is left running, even when the test fails; then the fd and goroutine
// counts must come back to where they were.
func newHarness(t *testing.T, body string, mod func(*spec.App)) *harness {
	t.Helper()
	return newHarnessHooks(t, body, mod, nil)
}

// newHarnessHooks is newHarness with a change to the hooks (a protocol, say) before the slot
// is created.
func newHarnessHooks(t *testing.T, body string, mod func(*spec.App), hooks func(*Hooks)) *harness {
	t.Helper()
	testutil.CheckFDs(t, waitTimeout, testutil.Goroutines())
	// A short temporary directory: unix socket paths (NOTIFY_SOCKET) are limited to 107 bytes,
	// and t.TempDir's path includes the test's name.
	dir, err := os.MkdirTemp("", "sup")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, logs: logs.NewManager(), hub: logs.NewHub(), events: &recorder{}}
	app := spec.Defaults()
	app.Name = "app"
	app.Script = h.script("app.sh", body)
	app.Interpreter = "none"
	app.Cwd = dir
	app.OutFile = filepath.Join(dir, "logs", "app-out.log")
	app.ErrorFile = filepath.Join(dir, "logs", "app-error.log")
	app.PidFile = filepath.Join(dir, "pids", "app.pid")
	// Long enough that a graceful stop is never cut short by a SIGKILL on a slow machine;
	// the tests of kill_timeout set their own.
	app.KillTimeout = 10_000
	app.BaseEnv = map[string]string{"PATH": os.Getenv("PATH")}
	// GORACE: a helper built with -race would otherwise sleep a second before it exits.
	app.Env = map[string]string{"DIR": dir, "HELPER": self, "GORACE": "atexit_sleep_ms=0"}
	if mod != nil {
		mod(&app)
	}
	h.app = &app
	notifyDir := filepath.Join(dir, "notify")
	if err := os.Mkdir(notifyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.hooks = &Hooks{Logs: h.logs, Hub: h.hub, Event: h.events.add, NotifyDir: notifyDir}
	if hooks != nil {
		hooks(h.hooks)
	}
	h.p = New(3, 0, h.app, h.hooks)
	t.Cleanup(h.cleanup)
	return h
}

// cleanup deletes the process, then checks that nothing the test started is still running,
// killing (and reporting) what is: Delete returns once every run has exited; what a run
// started (a grandchild that wrote its pid into a "*.pid" file of the test's directory) may
// take the reaper's kill_timeout more.
func (h *harness) cleanup() {
	t := h.t
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	deleted := make(chan error, 1)
	go func() { deleted <- h.p.Delete(ctx) }()
	select {
	case err := <-deleted:
		if err != nil {
			t.Errorf("cleanup: Delete: %v", err)
		}
	case <-time.After(2 * waitTimeout):
		t.Errorf("cleanup: Delete hangs (the process loop is stuck?)")
	}
	kill := func(pr proc, what string) {
		if pr.alive() {
			t.Errorf("cleanup: pid %d (%s) is still running; killing it", pr.pid, what)
			_ = syscall.Kill(pr.pid, syscall.SIGKILL)
		}
	}
	for _, pr := range h.events.procs() {
		kill(pr, "a run, after Delete returned")
	}
	grandchildren := h.grandchildren()
	testutil.Eventually(waitTimeout, 10*time.Millisecond, func() bool {
		for _, pr := range grandchildren {
			if pr.alive() {
				return false
			}
		}
		return true
	})
	for _, pr := range grandchildren {
		kill(pr, "a grandchild")
	}
	h.hub.Close()
}

// grandchildren are the programs whose pids scripts wrote into "*.pid" files of the test's
// directory.
func (h *harness) grandchildren() []proc {
	var procs []proc
	files, _ := filepath.Glob(filepath.Join(h.dir, "*.pid"))
	for _, f := range files {
		if pr, ok := h.readProcFile(filepath.Base(f)); ok {
			procs = append(procs, pr)
		}
	}
	return procs
}

// script writes an executable /bin/sh script into the test's directory.
func (h *harness) script(name, body string) string {
	h.t.Helper()
	path := filepath.Join(h.dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// path is a file in the test's directory.
func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

// touch creates a file in the test's directory: scripts wait for such gates.
func (h *harness) touch(name string) {
	h.t.Helper()
	if err := os.WriteFile(h.path(name), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// waitFile waits until a script has written the file name (and a trailing newline: the write
// is complete), and returns its content without the newline.
func (h *harness) waitFile(name string) string {
	h.t.Helper()
	var content string
	testutil.WaitFor(h.t, "file "+name, waitTimeout, func() bool {
		b, err := os.ReadFile(h.path(name))
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		content = strings.TrimSuffix(string(b), "\n")
		return true
	})
	return content
}

// readProcFile reads a pid a script wrote into name, as a proc (the program must still have
// been running when it is read for the first time; see procOf).
func (h *harness) readProcFile(name string) (proc, bool) {
	b, err := os.ReadFile(h.path(name))
	if err != nil {
		return proc{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return proc{}, false
	}
	return procOf(pid), true
}

// waitStatus waits until the process has status st and returns its Info. The loop's step that
// set it has ended too (see sync): its events have been emitted.
func (h *harness) waitStatus(st Status) Info {
	h.t.Helper()
	var info Info
	testutil.WaitFor(h.t, "status "+string(st), waitTimeout, func() bool {
		info = h.p.Info()
		return info.Status == st
	})
	h.sync()
	return info
}

// sync waits until the loop has finished what it is doing: a step that changes Info emits its
// events after the change, so a test that saw the change and wants the events syncs first.
// A deleted process has nothing left to do.
func (h *harness) sync() {
	h.t.Helper()
	if err := h.p.call(func() {}); err != nil && !errors.Is(err, ErrDeleted) {
		h.t.Fatal(err)
	}
}

// waitPID waits until the process's current run is pid and returns its Info. (A script can
// run before the loop has recorded its spawn: Info may still show the exit of the run before.)
func (h *harness) waitPID(pid int) Info {
	h.t.Helper()
	var info Info
	testutil.WaitFor(h.t, fmt.Sprintf("pid %d in Info", pid), waitTimeout, func() bool {
		info = h.p.Info()
		return info.PID == pid
	})
	h.sync()
	return info
}

// waitEvent waits for the next event named name at or after index from, and returns it and
// its index.
func (h *harness) waitEvent(from int, name string) (api.Event, int) {
	h.t.Helper()
	var ev api.Event
	at := -1
	if !testutil.Eventually(waitTimeout, time.Millisecond, func() bool {
		evs := h.events.all()
		for i := from; i < len(evs); i++ {
			if string(evs[i].Kind) == name {
				ev, at = evs[i], i
				return true
			}
		}
		return false
	}) {
		h.t.Fatalf("timed out after %v waiting for event %q from #%d; events: %q", waitTimeout, name, from, h.events.names())
	}
	return ev, at
}

// start starts the process and fails the test if that fails.
func (h *harness) start() Info {
	h.t.Helper()
	if err := h.p.Start(); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	return h.p.Info()
}

// stop stops the process and fails the test if that fails.
func (h *harness) stop() {
	h.t.Helper()
	if err := h.p.Stop(h.ctx()); err != nil {
		h.t.Fatalf("Stop: %v", err)
	}
}

// ctx is a context for one operation, ended at waitTimeout and when the test ends.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	h.t.Cleanup(cancel)
	return ctx
}

// onLoop runs f on the process loop (to look at loop-owned state) and fails the test if the
// process is gone.
func (h *harness) onLoop(f func()) {
	h.t.Helper()
	if err := h.p.call(f); err != nil {
		h.t.Fatalf("call: %v", err)
	}
}

// wantEvents checks that the events from index from on are named want, in order, exactly,
// once the loop has finished its current step (see sync).
func (h *harness) wantEvents(from int, want ...string) {
	h.t.Helper()
	h.sync()
	got := h.events.names()
	if from > len(got) {
		from = len(got)
	}
	if !slices.Equal(got[from:], want) {
		h.t.Fatalf("events from #%d = %q, want %q (all: %q)", from, got[from:], want, got)
	}
}

// waitGone waits until no program the test has seen is running.
func (h *harness) waitGone() {
	h.t.Helper()
	waitDead(h.t, append(h.events.procs(), h.grandchildren()...)...)
}

// recorder records the events a process emits (Hooks.Event) and the programs they name.
type recorder struct {
	mu      sync.Mutex
	events  []api.Event
	spawned []proc
}

// add is Hooks.Event: called on the process loop, it must not block (it reads one /proc file
// per spawn).
func (r *recorder) add(ev api.Event) {
	var pr proc
	track := ev.PID > 0 && (ev.Kind == "start" || ev.Kind == "reload")
	if track {
		pr = procOf(ev.PID) // the run was spawned just now, before its exit can be handled
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if track {
		r.spawned = append(r.spawned, pr)
	}
}

func (r *recorder) all() []api.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.events))
	for i, ev := range r.events {
		out[i] = string(ev.Kind)
	}
	return out
}

// procs are the runs spawned so far (start and reload events), oldest first.
func (r *recorder) procs() []proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spawned)
}

// count returns how many events are named name.
func (r *recorder) count(name string) int {
	n := 0
	for _, s := range r.names() {
		if s == name {
			n++
		}
	}
	return n
}

// proc identifies one program: its pid and its start time (in clock ticks since boot), so that
// a pid reused by another program is not taken for it.
type proc struct {
	pid   int
	start uint64 // 0: the program had already ended when it was looked up
}

// procStat is what the tests read from /proc/<pid>/stat.
type procStat struct {
	state byte // R, S, Z, ...
	pgrp  int
	start uint64
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name, in parentheses, may hold spaces: fields are counted after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, false
	}
	pgrp, _ := strconv.Atoi(f[2])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, true
}

// procOf identifies the program running as pid now.
func procOf(pid int) proc {
	st, ok := readStat(pid)
	if !ok || st.state == 'Z' {
		return proc{pid: pid}
	}
	return proc{pid: pid, start: st.start}
}

// alive reports whether the program is still running. A zombie counts as gone: it has ended,
// only its parent (init, for an orphaned grandchild) has not collected it yet.
func (pr proc) alive() bool {
	if pr.start == 0 {
		return false
	}
	st, ok := readStat(pr.pid)
	return ok && st.state != 'Z' && st.start == pr.start
}

// groupMembers lists the running (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgrp == pgid && st.state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitDead waits until none of procs is running.
func waitDead(t *testing.T, procs ...proc) {
	t.Helper()
	var left []int
	if !testutil.Eventually(waitTimeout, 10*time.Millisecond, func() bool {
		left = left[:0]
		for _, pr := range procs {
			if pr.alive() {
				left = append(left, pr.pid)
			}
		}
		return len(left) == 0
	}) {
		t.Fatalf("pids %v still running after %v", left, waitTimeout)
	}
}

// waitGroupEmpty waits until process group pgid has no running member.
func waitGroupEmpty(t *testing.T, pgid int) {
	t.Helper()
	var left []int
	if !testutil.Eventually(waitTimeout, 10*time.Millisecond, func() bool {
		left = groupMembers(pgid)
		return len(left) == 0
	}) {
		t.Fatalf("process group %d still has %v after %v", pgid, left, waitTimeout)
	}
}

// readFile returns the content of path ("" if it does not exist).
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// waitFileContains waits until the file at path contains s.
func waitFileContains(t *testing.T, path, s string) string {
	t.Helper()
	var content string
	testutil.WaitFor(t, fmt.Sprintf("%s to contain %q", path, s), waitTimeout, func() bool {
		b, _ := os.ReadFile(path)
		content = string(b)
		return strings.Contains(content, s)
	})
	return content
}

// Script fragments.
const (
	// gracefulBody exits 0 on SIGINT or SIGTERM, writing the signal's name to the file
	// "stopped.<pid>" first; the file "armed.<pid>" says the traps are set. It sleeps in the
	// foreground, in short steps: the signal ends the step (the group gets it) and the trap
	// runs. (A long sleep in the background would ignore SIGINT, and dash has a window in
	// which its trap does not know the background job's pid yet, so it could not kill it.)
	gracefulBody = `
trap 'echo INT > "$DIR/stopped.$$"; exit 0' INT
trap 'echo TERM > "$DIR/stopped.$$"; exit 0' TERM
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`
	// readyGateBody is gracefulBody for wait_ready: it sends READY=1 once the file
	// "ready.<pid>" exists.
	readyGateBody = `
trap 'echo INT > "$DIR/stopped.$$"; exit 0' INT
trap 'echo TERM > "$DIR/stopped.$$"; exit 0' TERM
echo $$ > "$DIR/armed.$$"
while [ ! -e "$DIR/ready.$$" ]; do sleep 0.02; done
` + notifyCmd + `
while :; do sleep 0.05; done
`
)

// armed waits until the run pid has set its traps (its script wrote "armed.<pid>").
func (h *harness) armed(pid int) {
	h.t.Helper()
	h.waitFile(gate("armed", pid))
}

// gate names a run's files: "ready.<pid>" and such.
func gate(name string, pid int) string { return name + "." + strconv.Itoa(pid) }
