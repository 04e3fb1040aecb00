package daemon

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// buildApp is a fork-mode app of n processes whose build and processes record themselves, in
// order, in td.dir/order.log: "build" for each build, "run <instance>" for each process start.
// Each process refuses to run without the build's output (built.txt).
func (td *testDaemon) buildApp(name string, n int, build string) spec.App {
	s := td.app(name, td.script(name+".sh", `[ -f built.txt ] || { echo "not built" >&2; exit 3; }
echo "run $NODE_APP_INSTANCE" >> order.log
exec sleep 100000`))
	s.Instances = n
	s.Build = build
	s.Env = map[string]string{"FROM_SPEC": "spec-env"}
	return s
}

// order returns the lines of td.dir/order.log.
func (td *testDaemon) order() []string {
	b, _ := os.ReadFile(filepath.Join(td.dir, "order.log"))
	return strings.Fields(strings.ReplaceAll(string(b), "run ", "run-"))
}

func count(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// readText returns a file's content ("" if missing).
func readText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestBuildRunsOnceBeforeAnyProcess: a start builds once, in the app's cwd with its
// environment, before the first process starts; the build's output (both streams, in order)
// and corral's start and end lines are in the first process's logs. Restart and reload build
// again; a crash restart and a scale-up do not.
func TestBuildRunsOnceBeforeAnyProcess(t *testing.T) {
	td := newTestDaemon(t, nil)
	build := `echo build >> order.log; echo "compiling in $(pwd) with $FROM_SPEC"; echo "a warning" >&2; sleep 0.3; echo ok > built.txt`
	td.mustStart(td.buildApp("web", 3, build))
	procs := td.waitStatus("web", 3, "online")
	testutil.WaitFor(t, "3 runs recorded", 10*time.Second, func() bool { return count(td.order(), "run-") == 3 })
	if got := td.order(); got[0] != "build" || count(got, "build") != 1 {
		t.Fatalf("order %q: want one build, first", got)
	}

	out := readText(filepath.Join(td.home, "logs", "web-out-"+strconv.Itoa(procs[0].ID)+".log"))
	for _, want := range []string{
		"corral: building web: " + build + " (in " + td.dir,
		"compiling in " + td.dir + " with spec-env",
		"corral: web built in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("out log lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "corral: building"), strings.Index(out, "compiling in"); i > j {
		t.Errorf("the start line is not first:\n%s", out)
	}
	if errLog := readText(filepath.Join(td.home, "logs", "web-error-"+strconv.Itoa(procs[0].ID)+".log")); !strings.Contains(errLog, "a warning") {
		t.Errorf("error log lacks the build's stderr:\n%s", errLog)
	}
	for _, p := range procs[1:] {
		if other := readText(filepath.Join(td.home, "logs", "web-out-"+strconv.Itoa(p.ID)+".log")); strings.Contains(other, "building") {
			t.Errorf("process %d's log has the build too:\n%s", p.ID, other)
		}
	}

	// A crash restart runs the program again, not the build.
	if err := syscall.Kill(procs[1].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the crash restart", 15*time.Second, func() bool { return count(td.order(), "run-") == 4 })
	if _, err := td.scale("web", "4"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the scale-up's process", 15*time.Second, func() bool { return count(td.order(), "run-") == 5 })
	if n := count(td.order(), "build"); n != 1 {
		t.Fatalf("%d builds after a crash restart and a scale-up, want 1", n)
	}

	// restart: one build, then the 4 processes.
	if resp, err := td.act(api.ActionRestart, "web"); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("restart: %v %v", err, resp.Errors)
	}
	testutil.WaitFor(t, "the restart's runs", 15*time.Second, func() bool { return count(td.order(), "run-") == 9 })
	got := td.order()
	if count(got, "build") != 2 || got[6] != "build" {
		t.Fatalf("order after restart %q: want the second build before the restart's runs", got)
	}
}

// TestFailedBuildStartsNothing: a build that fails is the start's error, naming the app, the
// command, its exit status and its last lines; no process ran, and the app stays stopped,
// its logs keeping the build's output for `corral logs`.
func TestFailedBuildStartsNothing(t *testing.T) {
	td := newTestDaemon(t, nil)
	build := `echo compiling; echo "main.go:3:2: undefined: x" >&2; exit 2`
	resp, err := td.start(td.buildApp("web", 2, build))
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Join(resp.Errors, "\n")
	for _, want := range []string{
		"web: build failed (exit status 2, after ",
		"`" + build + "` in " + td.dir,
		"    compiling\n",
		"    main.go:3:2: undefined: x\n",
		"nothing was started: web stays stopped; fix the build, then `corral restart web`",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	procs := td.list()
	if len(procs) != 2 {
		t.Fatalf("%d processes, want the 2 of web, stopped", len(procs))
	}
	for _, p := range procs {
		if p.Status != "stopped" || p.PID != 0 {
			t.Errorf("process %d is %s (pid %d) after a failed build", p.ID, p.Status, p.PID)
		}
	}
	if got := td.order(); count(got, "run-") != 0 {
		t.Fatalf("processes ran: %q", got)
	}
	errLog := readText(filepath.Join(td.home, "logs", "web-error-"+strconv.Itoa(procs[0].ID)+".log"))
	if !strings.Contains(errLog, "undefined: x") || !strings.Contains(errLog, "corral: build of web failed (exit status 2") {
		t.Errorf("error log:\n%s", errLog)
	}

	// Fixed, then started again from the file: it builds and starts.
	s := td.buildApp("web", 2, "echo ok > built.txt")
	td.mustStart(s)
	td.waitStatus("web", 2, "online")
}

// TestFailedBuildKeepsTheOldWorkers: a reload (and a new configuration from the file) whose
// build fails changes nothing: the same workers keep serving the port.
func TestFailedBuildKeepsTheOldWorkers(t *testing.T) {
	td := newTestDaemon(t, nil)
	port := freePort(t)
	s := td.nodeServer("web", port)
	s.Instances = 2
	s.Build = `if [ -f broken ]; then echo "src/app.ts(3,1): error TS2304" >&2; exit 1; fi; echo build >> order.log`
	td.mustStart(s)
	before := pids(td.waitStatus("web", 2, "online"))
	waitServing(t, port)

	if err := os.WriteFile(filepath.Join(td.dir, "broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"reload", "restart", "start from the file"} {
		var errs []string
		switch how {
		case "reload":
			resp, err := td.act(api.ActionReload, "web")
			if err != nil {
				t.Fatal(err)
			}
			errs = resp.Errors
		case "restart":
			resp, err := td.act(api.ActionRestart, "web")
			if err != nil {
				t.Fatal(err)
			}
			errs = resp.Errors
		default:
			next := s
			next.Env = map[string]string{"PORT": strconv.Itoa(port), "NEW": "1"}
			resp, err := td.start(next)
			if err != nil {
				t.Fatal(err)
			}
			errs = resp.Errors
		}
		msg := strings.Join(errs, "\n")
		if !strings.Contains(msg, "web: build failed (exit status 1") || !strings.Contains(msg, "error TS2304") ||
			!strings.Contains(msg, "nothing was changed: its 2 running process(es) keep serving the previous build") {
			t.Fatalf("%s with a failing build: %q", how, errs)
		}
		if after := pids(td.waitStatus("web", 2, "online")); !slices.Equal(before, after) {
			t.Fatalf("%s with a failing build replaced workers: %v -> %v", how, before, after)
		}
		waitServing(t, port)
	}
	if a := td.d.tbl.lookup("web"); a.snapshot().spec.Env["NEW"] != "" {
		t.Errorf("the configuration that did not build was applied")
	}

	// Fixed: the reload builds, then replaces every worker.
	if err := os.Remove(filepath.Join(td.dir, "broken")); err != nil {
		t.Fatal(err)
	}
	if resp, err := td.act(api.ActionReload, "web"); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("reload: %v %v", err, resp.Errors)
	}
	after := pids(td.waitStatus("web", 2, "online"))
	for _, pid := range after {
		if slices.Contains(before, pid) {
			t.Errorf("worker %d was not replaced by the reload (before %v, after %v)", pid, before, after)
		}
	}
	if n := count(td.order(), "build"); n != 2 {
		t.Errorf("%d successful builds, want 2 (start, reload)", n)
	}
}

// TestStopCancelsABuild: `corral stop` during a build ends it (its whole process group) at
// once, and the start fails saying so, with nothing started.
func TestStopCancelsABuild(t *testing.T) {
	td := newTestDaemon(t, nil)
	s := td.buildApp("web", 1, `echo $$ > build.pid; sleep 300 & wait`)
	started := make(chan []string, 1)
	go func() {
		resp, err := td.start(s)
		if err != nil {
			resp.Errors = append(resp.Errors, err.Error())
		}
		started <- resp.Errors
	}()
	pidFile := filepath.Join(td.dir, "build.pid")
	testutil.WaitFor(t, "the build to run", 15*time.Second, func() bool { return readText(pidFile) != "" })
	pid, _ := strconv.Atoi(strings.TrimSpace(readText(pidFile)))
	begun := time.Now()
	if _, err := td.act(api.ActionStop, "web"); err != nil {
		t.Fatal(err)
	}
	var errs []string
	select {
	case errs = <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the start still waits for its build 20s after the stop")
	}
	if took := time.Since(begun); took > 10*time.Second {
		t.Errorf("the stop took %v", took)
	}
	if msg := strings.Join(errs, "\n"); !strings.Contains(msg, "web: build failed (cancelled") {
		t.Errorf("start's errors: %q", errs)
	}
	testutil.WaitFor(t, "the build's processes to end", 10*time.Second, func() bool {
		return len(markedPIDs(td.home)) == 0 || zombie(pid)
	})
	if got := td.order(); count(got, "run-") != 0 {
		t.Fatalf("processes ran: %q", got)
	}
}

// TestBuildMakesTheProgram: the program may be the build's output (it need not exist when the
// app is started); a build that does not make it fails the start, saying so.
func TestBuildMakesTheProgram(t *testing.T) {
	td := newTestDaemon(t, nil)
	s := td.app("made", filepath.Join(td.dir, "bin", "server"))
	s.Build = `mkdir -p bin && printf '#!/bin/sh\nexec sleep 100000\n' > bin/server && chmod +x bin/server`
	td.mustStart(s)
	td.waitStatus("made", 1, "online")

	missing := td.app("missing", filepath.Join(td.dir, "bin", "other"))
	missing.Build = "true"
	resp, err := td.start(missing)
	if err != nil {
		t.Fatal(err)
	}
	if msg := strings.Join(resp.Errors, "\n"); !strings.Contains(msg, "missing: built, but it cannot start: ") || !strings.Contains(msg, "the build (`true`) must make it; nothing was started") {
		t.Fatalf("errors: %q", resp.Errors)
	}
	td.waitStatus("missing", 1, "stopped")
}

// TestBuildTimesOut: build_timeout bounds a build.
func TestBuildTimesOut(t *testing.T) {
	td := newTestDaemon(t, nil)
	s := td.buildApp("web", 1, `sleep 300`)
	s.BuildTimeout = 500
	resp, err := td.start(s)
	if err != nil {
		t.Fatal(err)
	}
	if msg := strings.Join(resp.Errors, "\n"); !strings.Contains(msg, "web: build failed (timed out: build_timeout is 500ms") {
		t.Fatalf("errors: %q", resp.Errors)
	}
}

// TestBuildSurvivesSaveAndResurrect: the saved list keeps build and build_timeout, and a
// resurrect builds before it starts the processes.
func TestBuildSurvivesSaveAndResurrect(t *testing.T) {
	td := newTestDaemon(t, nil)
	s := td.buildApp("web", 1, `echo build >> order.log; echo ok > built.txt`)
	s.BuildTimeout = 120000
	td.mustStart(s)
	td.waitStatus("web", 1, "online")
	ctx := context.Background()
	if _, err := td.cl.Save(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := td.act(api.ActionDelete, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := td.cl.Resurrect(ctx); err != nil {
		t.Fatal(err)
	}
	td.waitStatus("web", 1, "online")
	got := td.d.tbl.lookup("web").snapshot().spec
	if got.Build != s.Build || got.BuildTimeout != 120000 {
		t.Errorf("resurrected build %q timeout %d", got.Build, got.BuildTimeout)
	}
	testutil.WaitFor(t, "the resurrected run", 10*time.Second, func() bool { return count(td.order(), "run-") == 2 })
	if order := td.order(); !slices.Equal(order, []string{"build", "run-0", "build", "run-0"}) {
		t.Errorf("order %q", order)
	}
}

func pids(procs []api.Process) []int {
	out := make([]int, 0, len(procs))
	for _, p := range procs {
		out = append(out, p.PID)
	}
	slices.Sort(out)
	return out
}

// waitServing waits until the app answers on port.
func waitServing(t *testing.T, port int) {
	t.Helper()
	testutil.WaitFor(t, "the app to answer on its port", 15*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
