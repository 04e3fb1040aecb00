package integration

// `corral verify` against the reference apps on PostgreSQL (every check passes, but alerts,
// which this daemon does not have yet) and against deliberately broken apps, each failing
// exactly its check with a reason a person understands. The loads are short (flags): these
// tests are about what verify finds, not about figures.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/verify"
)

// verifyFlags keep each run to a few seconds of load. A run this short cannot tell a leak of
// 1 MB/min from a fresh runtime settling (a fresh Node worker gains about 100 MB/min in its
// first seconds under load): the memory threshold is raised, well below what the leaking
// fixture leaks (900 MB/min). The load is paced, as staging traffic is: a closed loop at full
// speed on a shared 2-core machine measures the neighbours (a worker the scheduler starves
// answers its hand-offs late, and the daemon rightly gives it less), not how corral spreads
// the work.
var verifyFlags = []string{"--duration", "2s", "--concurrency", "8", "--memory-slope", "400MB/min", "--rate", "200"}

// verifyResult is one run of corral verify: its output and the JSON report.
type verifyResult struct {
	result
	rep  verify.Report
	json string // path of the JSON report
	html string // path of the HTML report
}

// runVerify runs `corral verify app` with the test flags and the extra ones, writing both
// reports into the work dir.
func runVerify(t *testing.T, e *env, app string, extra ...string) verifyResult {
	t.Helper()
	v := verifyResult{json: filepath.Join(e.dir, app+"-verify.json"), html: filepath.Join(e.dir, app+"-verify.html")}
	args := append([]string{"verify", app, "--json", v.json, "--report", v.html}, verifyFlags...)
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	v.stdout, v.stderr = out.String(), errb.String()
	if ee, ok := err.(*exec.ExitError); ok {
		v.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("corral verify %s: %v", app, err)
	}
	raw, err := os.ReadFile(v.json)
	if err != nil {
		t.Fatalf("verify wrote no JSON report: %v\n%s", err, v.result)
	}
	if err := json.Unmarshal(raw, &v.rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, raw)
	}
	if st, err := os.Stat(v.html); err != nil || st.Size() == 0 {
		t.Fatalf("verify wrote no HTML report: %v\n%s", err, v.result)
	}
	t.Logf("corral %s:\n%s", strings.Join(args, " "), v.stdout)
	return v
}

// wantChecks fails the test unless each check has the wanted status (pass when not listed)
// and the exit code says whether any failed.
func wantChecks(t *testing.T, v verifyResult, want map[string]verify.Status) {
	t.Helper()
	if len(v.rep.Checks) != len(verify.CheckIDs) {
		t.Fatalf("%d checks in the report, want %d: %+v", len(v.rep.Checks), len(verify.CheckIDs), v.rep.Checks)
	}
	failing := false
	for _, c := range v.rep.Checks {
		w, ok := want[c.ID]
		if !ok {
			w = verify.Pass
		}
		failing = failing || w == verify.Fail
		if c.Status != w {
			t.Errorf("check %s: %s, want %s: %s %s", c.ID, c.Status, w, c.Figure, c.Reason)
		}
	}
	if wantCode := map[bool]int{false: 0, true: 1}[failing]; v.code != wantCode {
		t.Errorf("exit %d, want %d\n%s", v.code, wantCode, v.result)
	}
	// The checklist lists every check with its mark.
	for _, c := range v.rep.Checks {
		mark := map[verify.Status]string{verify.Pass: "✔", verify.Fail: "✗", verify.Skip: "–"}[c.Status]
		if !strings.Contains(v.stdout, mark+" "+c.ID) {
			t.Errorf("the checklist has no line %q:\n%s", mark+" "+c.ID, v.stdout)
		}
	}
	if len(v.rep.Throughput) == 0 || len(v.rep.Memory) == 0 {
		t.Errorf("the report has no series to plot: %d seconds of throughput, %d workers' memory", len(v.rep.Throughput), len(v.rep.Memory))
	}
}

// reasonOf returns a check's reason.
func reasonOf(v verifyResult, id string) string {
	for _, c := range v.rep.Checks {
		if c.ID == id {
			return c.Reason
		}
	}
	return ""
}

// wantWorkers fails the test unless the app runs n online workers: verify leaves it as it
// found it.
func wantWorkers(t *testing.T, e *env, app string, n int) {
	t.Helper()
	online := 0
	for _, p := range e.in(t).jlist() {
		if p.Name == app && p.Pm2Env.Status == "online" {
			online++
		}
	}
	if online != n {
		t.Errorf("%s runs %d online workers after verify, want %d", app, online, n)
	}
}

// verifySection is the reference apps' `verify` attribute: health for the load, and the
// login, /api/me and logout of user u.
func verifySection(u sessUser) map[string]any {
	return map[string]any{
		"path":   "/api/health",
		"login":  map[string]any{"path": "/api/auth/login", "body": map[string]string{"email": u.Email, "password": u.Password}},
		"check":  map[string]any{"path": "/api/me", "status": 200, "logged_out_status": 401},
		"logout": map[string]any{"path": "/api/auth/logout"},
	}
}

func TestVerifyNodeRefapp(t *testing.T) {
	t.Parallel()
	testVerifyRefapp(t, "node")
}

func TestVerifyGoRefapp(t *testing.T) {
	t.Parallel()
	testVerifyRefapp(t, "go")
}

// testVerifyRefapp: the reference app with 2 workers, its sessions in PostgreSQL, its verify
// section in the ecosystem file and a webhook in its alerts: every check passes, the alerts
// check with a test notification delivered to that webhook (--send-test).
func testVerifyRefapp(t *testing.T, stack string) {
	d := newSessionDB(t)
	users := migrateSessionDB(t, d)
	e := newEnv(t)
	a := newStackApp(t, e, d, stack, "refapp", 2)
	a.entry["verify"] = verifySection(users[0])
	var hooks atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	a.entry["alerts"] = map[string]any{"notify": []any{map[string]any{"webhook": hook.URL + "/hook"}}}
	startSessionApps(t, e, a)
	e.ok("save")
	extra := []string{"--send-test"}
	if stack == "go" {
		extra = append(extra, "--scaling") // 1 worker against 2, once
	}
	v := runVerify(t, e, a.name, extra...)
	wantChecks(t, v, nil)
	if hooks.Load() == 0 {
		t.Errorf("--send-test: the app's webhook got no test notification")
	}
	if stack == "go" {
		if f := v.rep.Checks[0].Values["scaling_factor"]; f <= 0 || !strings.Contains(v.rep.Checks[0].Figure, "on 1 worker") {
			t.Errorf("--scaling: factor %v, figure %q", f, v.rep.Checks[0].Figure)
		}
	}
	// The session check names what each worker answered.
	for _, c := range v.rep.Checks {
		if c.ID == verify.CheckSessions && (len(c.Workers) != 2 || !strings.Contains(c.Workers[0].Figure, "logged in: 200") || !strings.Contains(c.Workers[0].Figure, "logged out: 401")) {
			t.Errorf("sessions: %+v", c.Workers)
		}
	}
	if !strings.Contains(v.stderr, "changes it only through corral's zero-downtime operations") {
		t.Errorf("verify did not say what it would change before it started:\n%s", v.stderr)
	}
	wantWorkers(t, e, a.name, 2)
	a.waitServing(t)
	if stack == "node" {
		t.Run("ReportInChromium", func(t *testing.T) { openReport(t, v.html) })
	}
}

var verifyExitBin = &goBinary{pkg: "./testdata/verifyexit"}

// brokenApp starts a fixture in cluster mode with 2 workers and saves the list. A fixture
// ending in .js is a Node script in testdata; any other name is a Go program in testdata.
func brokenApp(t *testing.T, fixture string, nodeModules bool) (*env, string) {
	t.Helper()
	var e *env
	var script, interpreter string
	name := strings.TrimSuffix(fixture, ".js")
	if strings.HasSuffix(fixture, ".js") {
		e = newEnv(t, fixture)
		script = filepath.Join(e.dir, fixture)
	} else {
		e = newEnv(t)
		if fixture != "verifyexit" {
			t.Fatalf("no Go fixture %s", fixture)
		}
		script, interpreter = verifyExitBin.get(t), ", interpreter: 'none'"
	}
	if nodeModules {
		abs, err := filepath.Abs(filepath.Join("..", "examples", "refapp-node", "node_modules"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(e.dir, "node_modules")); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	// A webhook that takes every notification, so that the alerts check passes and each app
	// fails exactly its own check.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{ name: %q, script: %q%s, exec_mode: 'cluster',
  instances: 2, listen_timeout: 30000, env: { PORT: %d }, alerts: { notify: [{ webhook: %q }] } }] };`, name, script, interpreter, port, hook.URL+"/hook"))
	e.ok("start", "ecosystem.config.js")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	e.waitFor("2 workers serving", time.Minute, func() bool {
		listening := 0
		for _, p := range e.jlist() {
			if p.Pm2Env.Corral.Cluster != nil && len(p.Pm2Env.Corral.Cluster.Listening) > 0 {
				listening++
			}
		}
		if listening < 2 {
			return false
		}
		res, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/api/health")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	e.ok("save")
	return e, name
}

// TestVerifyMemoryStore: express-session's default MemoryStore keeps a session in the worker
// that made it: the session check fails, naming the workers that did not know the user.
func TestVerifyMemoryStore(t *testing.T) {
	t.Parallel()
	e, app := brokenApp(t, "verify_memstore.js", true)
	v := runVerify(t, e, app, "--path", "/api/health",
		"--login-path", "/api/auth/login", "--login-body", `{"email":"a@example.com","password":"pw"}`,
		"--check-path", "/api/me", "--logout-path", "/api/auth/logout")
	wantChecks(t, v, map[string]verify.Status{verify.CheckSessions: verify.Fail})
	if r := reasonOf(v, verify.CheckSessions); !strings.Contains(r, "answered 401 while logged in") || !strings.Contains(r, "MemoryStore") {
		t.Errorf("sessions reason: %q", r)
	}
	wantWorkers(t, e, app, 2)
}

// TestVerifyExitOnSIGINT: an app that exits on SIGINT without closing its server cuts the
// requests it was answering: the reload check fails. (testdata/verifyexit says why it is a Go
// server: corral drains a Node worker before the signal.) (Scaling down stops workers the same way
// and fails alike: rollback is skipped here so that this test pins the reload check.)
func TestVerifyExitOnSIGINT(t *testing.T) {
	t.Parallel()
	e, app := brokenApp(t, "verifyexit", false)
	v := runVerify(t, e, app, "--skip", "rollback")
	wantChecks(t, v, map[string]verify.Status{verify.CheckReload: verify.Fail, verify.CheckRollback: verify.Skip,
		verify.CheckSessions: verify.Skip})
	if r := reasonOf(v, verify.CheckReload); !strings.Contains(r, "requests failed during the rolling reload") || !strings.Contains(r, "SIGINT") {
		t.Errorf("reload reason: %q", r)
	}
	wantWorkers(t, e, app, 2)
}

// TestVerifyLeak: an app whose memory grows (15 MB/s) fails the memory check, naming the worker.
func TestVerifyLeak(t *testing.T) {
	t.Parallel()
	e, app := brokenApp(t, "verify_leak.js", false)
	v := runVerify(t, e, app)
	wantChecks(t, v, map[string]verify.Status{verify.CheckMemory: verify.Fail, verify.CheckSessions: verify.Skip})
	if r := reasonOf(v, verify.CheckMemory); !strings.Contains(r, "worker ") || !strings.Contains(r, "MB/min") {
		t.Errorf("memory reason: %q", r)
	}
	wantWorkers(t, e, app, 2)
}

// TestVerifyPinned: under keep-alive, an app whose first worker answers at once and the other
// after 50 ms has the first serve most requests: the distribution check fails.
func TestVerifyPinned(t *testing.T) {
	t.Parallel()
	e, app := brokenApp(t, "verify_pinned.js", false)
	// Unpaced: the fast worker serves as fast as its clients ask.
	v := runVerify(t, e, app, "--keep-alive", "--rate", "0")
	wantChecks(t, v, map[string]verify.Status{verify.CheckDistribution: verify.Fail, verify.CheckSessions: verify.Skip})
	if r := reasonOf(v, verify.CheckDistribution); !strings.Contains(r, "of the requests") || !strings.Contains(r, "not spread over the workers") {
		t.Errorf("distribution reason: %q", r)
	}
	wantWorkers(t, e, app, 2)
}

// TestVerifyInterrupted: Ctrl-C while verify has the app scaled down to 1 worker: verify
// stops, and the app is back to its 2 workers.
func TestVerifyInterrupted(t *testing.T) {
	t.Parallel()
	e, app := brokenApp(t, "cluster_http.js", false)
	report := filepath.Join(e.dir, "interrupted.json")
	// --scaling keeps the app on 1 worker for a whole load phase: room to press Ctrl-C then.
	args := append([]string{"verify", app, "--json", report, "--skip", "reload", "--scaling"}, verifyFlags...)
	cmd := exec.Command(e.bin, args...)
	cmd.Dir, cmd.Env = e.dir, e.environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	e.waitFor("verify to scale the app down to 1 worker", 2*time.Minute, func() bool {
		n := 0
		for _, p := range e.jlist() {
			if p.Name == app {
				n++
			}
		}
		return n == 1
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("verify ended with %v after Ctrl-C, want exit 1:\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("verify did not end within 2 minutes of Ctrl-C:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "verify interrupted") {
		t.Errorf("verify did not say it was interrupted:\n%s", out.String())
	}
	wantWorkers(t, e, app, 2)
	var rep verify.Report
	raw, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("no JSON report after Ctrl-C: %v\n%s", err, out.String())
	}
	for _, c := range rep.Checks {
		if c.ID == verify.CheckRollback && (c.Status != verify.Skip || !strings.HasPrefix(c.Reason, "interrupted")) {
			t.Errorf("rollback cut by Ctrl-C: %s %q", c.Status, c.Reason)
		}
	}
	if !strings.Contains(rep.Restored, "scaled back from 1 to 2 workers") {
		t.Errorf("the report says %q about restoring the app", rep.Restored)
	}
	t.Logf("after Ctrl-C:\n%s", out.String())
}
