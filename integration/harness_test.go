// Package integration runs the real corral binary against real processes: Node.js and shell
// apps, signals, sockets, files. Each test gets its own CORRAL_HOME (so its own daemon) and
// cleans up every process it started, even when it fails.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/testutil"
)

// corralBin is the binary under test, built once by TestMain.
var corralBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corral-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	corralBin = filepath.Join(dir, "corral")
	args := []string{"build", "-o", corralBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/corral")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build corral:", err)
		os.Exit(1)
	}
	if err := installNodeFixtures(); err != nil {
		fmt.Fprintln(os.Stderr, "install npm fixtures:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goBinary is a Go program of this repository that tests run, built on first use, at most once
// per test binary run, next to the corral binary (TestMain removes that directory at the end).
type goBinary struct {
	pkg  string // the package, relative to this directory
	once sync.Once
	path string
	err  error
	out  []byte
}

var (
	refappBin   = &goBinary{pkg: "../examples/refapp"}
	goWorkerBin = &goBinary{pkg: "./testdata/goworker"}
)

// get builds the program if no test has yet and returns its path.
func (b *goBinary) get(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		b.path = filepath.Join(filepath.Dir(corralBin), filepath.Base(b.pkg))
		b.out, b.err = exec.Command("go", "build", "-o", b.path, b.pkg).CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("build %s: %v\n%s", b.pkg, b.err, b.out)
	}
	return b.path
}

// nodeFixtures are the folders whose npm packages the tests need (express, express-session,
// connect-pg-simple...): installed from their package-lock.json by the test setup, never
// committed.
var nodeFixtures = []string{filepath.Join("testdata", "node"), filepath.Join("..", "examples", "refapp-node")}

// installNodeFixtures runs `npm ci` where node_modules is missing or older than the lock file.
func installNodeFixtures() error {
	for _, dir := range nodeFixtures {
		lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			return err
		}
		if st, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !st.ModTime().Before(lock.ModTime()) {
			continue
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("npm ci in %s: %w", dir, err)
		}
	}
	return nil
}

// env is one test's corral installation: a home, a working directory, the binary.
type env struct {
	t    *testing.T
	home string // CORRAL_HOME: short, under /tmp, because of the unix socket path limit
	dir  string // the apps' directory (fixtures are copied here)
	bin  string
	vars map[string]string // extra environment for every corral command
}

// in is e for a subtest: its failures end t instead of the test that made e (a subtest must
// not call FailNow on its parent).
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// newEnv prepares a home and copies the named fixtures from testdata into the work dir.
func newEnv(t *testing.T, fixtures ...string) *env {
	t.Helper()
	h, err := os.MkdirTemp("", "ch")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{t: t, home: h, dir: dir, bin: corralBin, vars: map[string]string{}}
	for _, f := range fixtures {
		e.copyFixture(f)
	}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) copyFixture(name string) {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		e.t.Fatal(err)
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(name, ".sh") {
		mode = 0o755
	}
	if err := os.WriteFile(filepath.Join(e.dir, filepath.Base(name)), data, mode); err != nil {
		e.t.Fatal(err)
	}
}

// write creates a file in the work dir.
func (e *env) write(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// cleanup stops the daemon and kills anything this home started that is still alive.
func (e *env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "kill")
	cmd.Env = e.environ()
	_ = cmd.Run()
	// The keeper first: it would start a daemon killed before it again.
	for _, name := range []string{"keeper.pid", "corral.pid"} {
		if raw, err := os.ReadFile(filepath.Join(e.home, name)); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	killByHome(e.home)
	e.checkRaces()
	if e.t.Failed() {
		testutil.LogTail(e.t, "daemon log", filepath.Join(e.home, "corral.log"), 60)
	}
	os.RemoveAll(e.home)
}

// checkRaces fails the test if the race detector reported a data race in the daemon: the
// daemon's stderr is its log.
func (e *env) checkRaces() {
	logs, _ := filepath.Glob(filepath.Join(e.home, "corral.log*"))
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
			report := b[i:]
			if end := bytes.Index(report, []byte("==================")); end > 0 {
				report = report[:end]
			}
			e.t.Errorf("the daemon had a data race (%s):\n%s", path, report)
		}
	}
}

// killByHome kills every process whose environment names this CORRAL_HOME: the apps inherit
// the CLI's environment, so nothing a test started escapes.
func killByHome(home string) {
	for _, pid := range pidsWithHome(home) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsWithHome lists the processes whose environment sets CORRAL_HOME to home: its daemon and
// the apps it started.
func pidsWithHome(home string) []int { return procstat.PIDsWithEnv("CORRAL_HOME", home) }

func (e *env) environ() []string {
	out := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CORRAL_HOME=") && !strings.HasPrefix(kv, "NO_COLOR=") {
			out = append(out, kv)
		}
	}
	out = append(out, "CORRAL_HOME="+e.home, "NO_COLOR=1")
	for k, v := range e.vars {
		out = append(out, k+"="+v)
	}
	return out
}

// result of one command.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs corral with args in the work dir (60 s limit).
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			e.t.Fatalf("corral %v: %v", args, err)
		}
	}
	return r
}

// ok runs corral and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("corral %s failed:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs corral and fails the test unless it exits non-zero.
func (e *env) fails(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code == 0 {
		e.t.Fatalf("corral %s succeeded, expected a failure:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// jproc is the part of a jlist entry tests look at.
type jproc struct {
	PID    int    `json:"pid"`
	Name   string `json:"name"`
	ID     int    `json:"pm_id"`
	Pm2Env struct {
		Status           string            `json:"status"`
		RestartTime      int               `json:"restart_time"`
		Unstable         int               `json:"unstable_restarts"`
		Namespace        string            `json:"namespace"`
		ExecMode         string            `json:"exec_mode"`
		PrevRestartDelay int64             `json:"prev_restart_delay"`
		ExitCode         *int              `json:"exit_code"`
		Env              map[string]string `json:"env"`
		OutLog           string            `json:"pm_out_log_path"`
		ErrLog           string            `json:"pm_err_log_path"`
		Corral           struct {
			ExitSignal string `json:"exit_signal"`
			Instance   int    `json:"instance"`
			Cluster    *struct {
				Listening   []string `json:"listening"`
				Connections uint64   `json:"connections"`
				Refused     uint64   `json:"refused"`
				InFlight    int      `json:"in_flight"`

				Requests        uint64    `json:"requests"`
				RequestsByClass [5]uint64 `json:"requests_by_class"`
			} `json:"cluster"`
			// Requests: a fork-mode process's request metrics.
			Requests *struct {
				Requests        uint64    `json:"requests"`
				RequestsByClass [5]uint64 `json:"requests_by_class"`
				Runtime         *struct {
					HeapUsed       uint64   `json:"heap_used"`
					EventLoopP99MS *float64 `json:"event_loop_p99_ms"`
				} `json:"runtime"`
			} `json:"requests"`
		} `json:"corral"`
	} `json:"pm2_env"`
}

func (e *env) jlist() []jproc {
	e.t.Helper()
	r := e.ok("jlist")
	var out []jproc
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		e.t.Fatalf("jlist is not JSON: %v\n%s", err, r.stdout)
	}
	return out
}

// proc returns the jlist entry with id, or fails.
func (e *env) proc(id int) jproc {
	e.t.Helper()
	for _, p := range e.jlist() {
		if p.ID == id {
			return p
		}
	}
	e.t.Fatalf("no process %d in jlist", id)
	return jproc{}
}

// waitFor polls cond until it holds or the deadline passes (the machine is slow and noisy:
// deadlines are generous, and nothing here measures time).
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStatus waits until process id has status.
func (e *env) waitStatus(id int, status string, timeout time.Duration) jproc {
	e.t.Helper()
	var last jproc
	e.waitFor(fmt.Sprintf("process %d to be %s", id, status), timeout, func() bool {
		for _, p := range e.jlist() {
			if p.ID == id {
				last = p
				return p.Pm2Env.Status == status
			}
		}
		return false
	})
	return last
}

// client talks to the daemon's API directly (events stream).
func (e *env) client() *api.Client {
	return api.NewClient(filepath.Join(e.home, "corral.sock"))
}

// readFile returns a file's content ("" if missing).
func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// alive reports whether pid exists (and is not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := procstat.ReadStat(pid)
	return err == nil && !st.Exited
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int { return testutil.FreePort(t) }

// unixHTTPClient is an HTTP client for the daemon's socket (for streams the api client wraps).
func unixHTTPClient(e *env) *http.Client {
	sock := filepath.Join(e.home, "corral.sock")
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}
