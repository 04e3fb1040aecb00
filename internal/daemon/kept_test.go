package daemon

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/keeper"
	"github.com/corral-pm/corral/internal/testutil"
)

// The daemon under its keeper (keep.go, adopt.go, upgrade.go): this test binary plays both, as
// `corral daemon` and `corral daemon --kept` do, so the daemon that is killed, restarted and
// upgraded is this package's code, built with the race detector when the tests are.

// keptDaemonArg is the argument the keeper runs this binary with to make it the daemon.
const keptDaemonArg = "kept-daemon"

// keptMain runs the keeper (`keeper` [--resume-fd N ...] | --handover-version) or the daemon
// (kept-daemon) for CORRAL_HOME.
func keptMain(args []string) int {
	paths := home.At(os.Getenv("CORRAL_HOME"))
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "keeper: "+format+"\n", a...)
	}
	// The daemons write to corral.log, as under `corral daemon` (cli's keeperLog): a Go
	// panic's trace lands there.
	output := func() (*os.File, error) {
		return os.OpenFile(paths.DaemonLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	}
	switch {
	case args[0] == keptDaemonArg:
		armPanicTriggers(paths)
		d, err := New(Options{Paths: paths, SampleInterval: 200 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return keeper.ExitCannotStart
		}
		if err := d.Run(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case len(args) > 1 && args[1] == "--handover-version":
		fmt.Println(keeper.HandoverJSON(api.HandoverVersion))
		return 0
	case len(args) > 2 && args[1] == "--resume-fd":
		fd, _ := strconv.Atoi(args[2])
		err := keeper.Run(keeper.Options{Paths: paths, DaemonArgs: []string{keptDaemonArg}, ResumeFD: fd, Logf: logf, Output: output})
		if err != nil {
			logf("%v", err)
			return 1
		}
		return 0
	}
	if err := keeper.Run(keeper.Options{Paths: paths, DaemonArgs: []string{keptDaemonArg}, Logf: logf, Output: output}); err != nil {
		logf("%v", err)
		return 1
	}
	return 0
}

// keptDaemon is a keeper process and its daemon, on a home of their own.
type keptDaemon struct {
	*testDaemon // its helpers (apps, API client); its d is nil: the daemon is another process
	keeper      *exec.Cmd
	exited      chan struct{} // closed once the keeper has exited (exitErr is then set)
	exitErr     error
	log         string // the keeper's stderr (its daemons' is corral.log): race reports land in either
	metrics     string // the daemons' HTTP listener (CORRAL_HTTP_LISTEN): each binds it in turn
}

func startKept(t *testing.T) *keptDaemon {
	t.Helper()
	h, err := os.MkdirTemp("", "ck")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kd := &keptDaemon{testDaemon: &testDaemon{t: t, home: h, dir: t.TempDir(), cl: api.NewClient(home.At(h).Socket)},
		log: filepath.Join(h, "stderr.log"), exited: make(chan struct{}), metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	logFile, err := os.Create(kd.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	kd.keeper = exec.Command(self, "keeper")
	kd.keeper.Env = append(os.Environ(), "CORRAL_HOME="+h, markerVar+"="+h, "GORACE=atexit_sleep_ms=0", "CORRAL_HTTP_LISTEN="+kd.metrics)
	kd.keeper.Stdout, kd.keeper.Stderr = logFile, logFile
	kd.keeper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := kd.keeper.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { kd.exitErr = kd.keeper.Wait(); close(kd.exited) }()
	t.Cleanup(func() { kd.cleanup() })
	kd.waitDaemon(0)
	return kd
}

// cleanup kills the keeper first (so that it cannot start a daemon again), then the daemon and
// every app, and reports data races the daemons hit.
func (kd *keptDaemon) cleanup() {
	_ = kd.keeper.Process.Kill()
	<-kd.exited
	for range 3 {
		killMarked(kd.home)
	}
	for _, log := range []string{kd.log, filepath.Join(kd.home, "corral.log")} {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "DATA RACE") {
			kd.t.Errorf("a daemon hit a data race:\n%s", b)
		}
	}
	if kd.t.Failed() {
		testutil.LogTail(kd.t, "daemon log", filepath.Join(kd.home, "corral.log"), 40)
		testutil.LogTail(kd.t, "stderr", kd.log, 40)
	}
	os.RemoveAll(kd.home)
}

// waitDaemon waits until a daemon other than pid not answers, and returns its version.
func (kd *keptDaemon) waitDaemon(not int) api.Version {
	kd.t.Helper()
	var v api.Version
	testutil.WaitFor(kd.t, fmt.Sprintf("a daemon other than pid %d to answer", not), 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		v, err = kd.cl.Version(ctx)
		return err == nil && v.PID != not
	})
	return v
}

// reloads is app's corral_app_reloads_total as the daemon now running serves it.
func (kd *keptDaemon) reloads(app string) float64 {
	kd.t.Helper()
	v := value(parseText(kd.t, must(scrape(kd.t, kd.metrics, ""))), "corral_app_reloads_total", map[string]string{"app": app})
	if v == nil {
		kd.t.Fatalf("no corral_app_reloads_total for %s", app)
	}
	return *v
}

// pids returns each process id's pid.
func pidsByID(procs []api.Process) map[int]int {
	out := map[int]int{}
	for _, p := range procs {
		out[p.ID] = p.PID
	}
	return out
}

// TestKeptDaemonSurvives: the daemon is SIGKILLed and its keeper starts another, which takes
// every app over: same ids, same pids, the cluster's port open throughout and served by the
// same workers; a worker that dies together with the daemon is restarted by the next one; a
// hot upgrade keeps everything too; `kill` ends the keeper.
func TestKeptDaemonSurvives(t *testing.T) {
	kd := startKept(t)
	port := freePort(t)
	web := kd.nodeServer("web", port)
	web.Instances = 2
	kd.mustStart(web, kd.sleeper("idle"))
	kd.waitStatus("web", 2, "online")
	kd.waitStatus("idle", 1, "online")
	before := pidsByID(kd.list())
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	served := func() map[string]bool {
		seen := map[string]bool{}
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		for range 20 {
			resp, err := client.Get(url)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[string(b)] = true
		}
		return seen
	}
	served()

	// A kill: everything is taken over.
	v := kd.waitDaemon(0)
	if v.Keeper == nil || v.Keeper.Restarts != 0 {
		t.Fatalf("first daemon: %+v", v.Keeper)
	}
	if err := syscall.Kill(v.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	v2 := kd.waitDaemon(v.PID)
	if v2.Keeper == nil || v2.Keeper.Restarts != 1 || v2.Keeper.LastExit != "killed by SIGKILL" {
		t.Fatalf("after the kill: %+v", v2.Keeper)
	}
	after := kd.list()
	if got := pidsByID(after); !maps.Equal(got, before) {
		t.Fatalf("pids after the kill %v, before %v", got, before)
	}
	for _, p := range after {
		if p.Status != "online" || p.Restarts != 0 {
			t.Fatalf("after the kill: %+v", p)
		}
	}
	for pid := range served() {
		if !slices.Contains(slices.Collect(maps.Values(before)), atoi(pid)) {
			t.Fatalf("a request was served by pid %s, not one of %v", pid, before)
		}
	}

	// The adopted workers are the new daemon's to replace: a rolling reload of them (each
	// leaves through Node's cluster protocol, spoken by a daemon that did not start it).
	if resp, err := kd.act(api.ActionReload, "web"); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("reload of the adopted workers: %v %v", err, resp.Errors)
	}
	reloaded := pidsByID(kd.list())
	for id := range 2 {
		if reloaded[id] == before[id] {
			t.Fatalf("web[%d] not replaced by the reload: %v, before %v", id, reloaded, before)
		}
	}
	testutil.WaitFor(t, "the replaced workers to exit", 30*time.Second, func() bool {
		return zombie(before[0]) && zombie(before[1])
	})
	before = reloaded

	// A worker that dies with the daemon: its exit is the keeper's, and the next daemon
	// restarts it.
	victim := before[0]
	restarts := 0
	for _, p := range kd.list() {
		if p.ID == 0 {
			restarts = p.Restarts
		}
	}
	if err := syscall.Kill(v2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	v3 := kd.waitDaemon(v2.PID)
	testutil.WaitFor(t, "the killed worker to be replaced", 30*time.Second, func() bool {
		for _, p := range kd.list() {
			if p.ID == 0 {
				return p.Status == "online" && p.PID != victim && p.PID != 0 && p.Restarts == restarts+1
			}
		}
		return false
	})
	if got := pidsByID(kd.list()); got[1] != before[1] || got[2] != before[2] {
		t.Fatalf("the others changed: %v, before %v", got, before)
	}
	// The app's reload count came over with it (the hand-over state).
	if n := kd.reloads("web"); n != 1 {
		t.Errorf("corral_app_reloads_total{app=web} = %v after a reload and a takeover, want 1", n)
	}

	// A hot upgrade, to this same binary: nothing restarts.
	self, _ := os.Executable()
	keep := pidsByID(kd.list())
	if _, err := kd.cl.Update(context.Background(), api.UpdateRequest{Binary: self}); err != nil {
		t.Fatal(err)
	}
	v4 := kd.waitDaemon(v3.PID)
	if v4.Keeper == nil || v4.Keeper.Upgrades != 1 || v4.Keeper.PID != v.Keeper.PID {
		t.Fatalf("after the update: %+v (keeper before: %+v)", v4.Keeper, v.Keeper)
	}
	if got := pidsByID(kd.list()); !maps.Equal(got, keep) {
		t.Fatalf("pids after the update %v, before %v", got, keep)
	}
	served()
	if n := kd.reloads("web"); n != 1 {
		t.Errorf("corral_app_reloads_total{app=web} = %v after the update, want 1", n)
	}

	// An update to something that is not corral changes nothing.
	if _, err := kd.cl.Update(context.Background(), api.UpdateRequest{Binary: "/bin/true"}); statusCode(err) != http.StatusConflict {
		t.Fatalf("update to /bin/true: %v", err)
	}

	// kill: the apps stop, the daemon and its keeper exit.
	if _, err := kd.cl.Kill(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kd.exited:
		if kd.exitErr != nil {
			t.Fatalf("the keeper exited with %v", kd.exitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the keeper did not exit after kill")
	}
	if left := markedPIDs(kd.home); len(left) > 0 {
		t.Fatalf("left running after kill: %v", left)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
