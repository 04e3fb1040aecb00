package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// alertReceiver is a local webhook sink: an HTTP server in the test that keeps every alert
// POSTed to it.
type alertReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
}

func newAlertReceiver(t *testing.T) *alertReceiver {
	r := &alertReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		if req.Method != http.MethodPost || json.NewDecoder(req.Body).Decode(&body) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, body)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// find returns the first alert received for app and rule in state.
func (r *alertReceiver) find(app, rule, state string) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.got {
		if a["app"] == app && a["rule"] == rule && a["state"] == state {
			return a
		}
	}
	return nil
}

func (r *alertReceiver) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.MarshalIndent(r.got, "", "  ")
	return string(b)
}

// waitAlert waits until the receiver has an alert for app, rule and state, and returns it.
func (e *env) waitAlert(r *alertReceiver, app, rule, state string, timeout time.Duration) map[string]any {
	e.t.Helper()
	var got map[string]any
	deadline := time.Now().Add(timeout)
	for {
		if got = r.find(app, rule, state); got != nil {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s %s %s at the webhook; received:\n%s", timeout, app, rule, state, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAlertCrashRate: an app that crashes four times, then stays up, fires crash_rate within
// the rule's window to the webhook and to the command (the alert in its environment), and
// sends resolved once the window has passed without crashes. corral alerts lists both.
func TestAlertCrashRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rcv := newAlertReceiver(t)
	e.write("flaky.sh", `#!/bin/sh
n=$(cat count 2>/dev/null || echo 0)
n=$((n+1))
echo $n > count
if [ $n -le 4 ]; then echo "crash $n"; exit 1; fi
echo "stable now"
exec sleep 100000
`)
	envLog := filepath.Join(e.dir, "alert-env.log")
	e.write("page-me.sh", `#!/bin/sh
{ env | grep '^CORRAL_ALERT_' | sort; echo ----; } >> "`+envLog+`"
`)
	for _, f := range []string{"flaky.sh", "page-me.sh"} {
		if err := os.Chmod(filepath.Join(e.dir, f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'flaky', script: './flaky.sh',
  alerts: { crash_rate: '3/10s', notify: [{ webhook: '%s/hook' }, { command: './page-me.sh' }] },
}] }`, rcv.srv.URL))
	e.ok("start", "ecosystem.config.js")

	fired := e.waitAlert(rcv, "flaky", "crash_rate", "firing", 60*time.Second)
	if v, _ := fired["value"].(float64); v < 3 || fired["threshold"] != 3.0 || fired["spec"] != "3/10s" ||
		!strings.Contains(fmt.Sprint(fired["text"]), "flaky crashed") || fired["time"] == nil || fired["id"] != nil {
		t.Errorf("firing alert: %v", fired)
	}
	e.waitStatus(0, "online", 30*time.Second)
	resolved := e.waitAlert(rcv, "flaky", "crash_rate", "resolved", 60*time.Second)
	if resolved["since"] != fired["since"] {
		t.Errorf("resolved %v does not carry the firing's since %v", resolved["since"], fired["since"])
	}

	// The command got the same, in its environment (it runs after the webhook's delivery or
	// beside it: wait for both states).
	e.waitFor("the command sink to see firing and resolved", 30*time.Second, func() bool {
		log := readFile(envLog)
		return strings.Contains(log, "CORRAL_ALERT_STATE=firing") && strings.Contains(log, "CORRAL_ALERT_STATE=resolved")
	})
	log := readFile(envLog)
	for _, want := range []string{"CORRAL_ALERT_APP=flaky", "CORRAL_ALERT_RULE=crash_rate", "CORRAL_ALERT_THRESHOLD=3",
		"CORRAL_ALERT_WORKER=\n", "CORRAL_ALERT_TEXT=flaky crashed", "CORRAL_ALERT_TIME=20"} {
		if !strings.Contains(log, want) {
			t.Errorf("the command's environment lacks %q:\n%s", want, log)
		}
	}

	out := e.ok("alerts").stdout
	if !strings.Contains(out, "no alert is firing") || !strings.Contains(out, "resolved") || !strings.Contains(out, "crash_rate") {
		t.Errorf("corral alerts:\n%s", out)
	}
	var resp struct {
		Recent []map[string]any `json:"recent"`
		Sinks  []map[string]any `json:"sinks"`
	}
	if err := json.Unmarshal([]byte(e.ok("alerts", "--json").stdout), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Recent) < 2 || len(resp.Sinks) != 2 {
		t.Errorf("corral alerts --json: %+v", resp)
	}
	test := e.ok("alerts", "test").stdout
	if strings.Count(test, "sent ") != 3 {
		t.Errorf("corral alerts test:\n%s", test)
	}
	e.waitAlert(rcv, "flaky", "test", "firing", 30*time.Second)
}

// TestAlertMemoryGrowth: a Node app whose memory rises steadily fires memory_growth for its
// process.
func TestAlertMemoryGrowth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rcv := newAlertReceiver(t)
	e.write("grow.js", `// Keeps 2 MB more every 250 ms: a leak.
const kept = [];
setInterval(() => { kept.push(Buffer.alloc(2 * 1024 * 1024, 1)); }, 250);
`)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'grow', script: 'grow.js',
  alerts: { memory_growth: '16M/12s', notify: [{ webhook: '%s' }] },
}] }`, rcv.srv.URL))
	e.ok("start", "ecosystem.config.js")
	fired := e.waitAlert(rcv, "grow", "memory_growth", "firing", 90*time.Second)
	if fired["id"] != 0.0 || fired["unit"] != "bytes" {
		t.Errorf("memory_growth alert: %v", fired)
	}
	if v, _ := fired["value"].(float64); v < 16<<20 {
		t.Errorf("value %v is below the threshold", fired["value"])
	}
	e.ok("stop", "grow")
	e.waitAlert(rcv, "grow", "memory_growth", "resolved", 30*time.Second)
}

// TestAlertEventLoopDelay: a Node cluster worker whose handler blocks for 300 ms, kept busy,
// fires event_loop.
func TestAlertEventLoopDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rcv := newAlertReceiver(t)
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.write("block.js", `// Every request blocks the event loop for 300 ms.
const http = require('http');
http.createServer((req, res) => {
  const until = Date.now() + 300;
  while (Date.now() < until) {}
  res.end('done\n');
}).listen(Number(process.env.PORT));
`)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'block', script: 'block.js', exec_mode: 'cluster', instances: 1,
  alerts: { event_loop: '200ms/4s', notify: [{ webhook: '%s' }] },
}] }`, rcv.srv.URL))
	e.ok("start", "ecosystem.config.js")
	e.waitStatus(0, "online", 60*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 10 * time.Second}
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			resp, err := client.Do(req)
			if err != nil {
				time.Sleep(50 * time.Millisecond) // the worker is not listening yet
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	fired := e.waitAlert(rcv, "block", "event_loop", "firing", 90*time.Second)
	if v, _ := fired["value"].(float64); fired["id"] != 0.0 || v <= 200 || fired["unit"] != "ms" {
		t.Errorf("event_loop alert: %v", fired)
	}
}

// count returns how many alerts were received for app and rule in state.
func (r *alertReceiver) count(app, rule, state string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.got {
		if a["app"] == app && a["rule"] == rule && a["state"] == state {
			n++
		}
	}
	return n
}

// TestAlertNotSentAgainAfterDaemonRestart: the daemon is SIGKILLed while an alert fires; the
// keeper's next daemon takes the apps over and the alert with them, and does not send it
// again. (An alert of another app that fires afterwards proves the evaluation ran: the
// webhook's deliveries are in order.)
func TestAlertNotSentAgainAfterDaemonRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh")
	rcv := newAlertReceiver(t)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'dead', script: './crash.sh', max_restarts: 2,
  alerts: { crash_rate: false, notify: [{ webhook: '%s' }] },
}] }`, rcv.srv.URL))
	e.write("later.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'later', script: './crash.sh', max_restarts: 2,
  alerts: { crash_rate: false, notify: [{ webhook: '%s' }] },
}] }`, rcv.srv.URL))
	e.ok("start", "ecosystem.config.js")
	e.waitAlert(rcv, "dead", "errored", "firing", 60*time.Second)
	// The daemon notes what fires for the next one right after sending (a daemon killed in
	// between sends it again: at least once, never lost).
	e.waitFor("the firing alert to be kept in alerts.json", 30*time.Second, func() bool {
		return strings.Contains(readFile(filepath.Join(e.home, "alerts.json")), `"app":"dead"`)
	})

	old := daemonPID(e.home)
	if old <= 0 {
		t.Fatal("no daemon pid")
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the next daemon to take the firing alert over", 60*time.Second, func() bool {
		return daemonPID(e.home) != old && strings.Contains(readFile(filepath.Join(e.home, "corral.log")), "firing alerts taken over")
	})
	e.ok("start", "later.config.js")
	e.waitAlert(rcv, "later", "errored", "firing", 60*time.Second)
	if n := rcv.count("dead", "errored", "firing"); n != 1 {
		t.Errorf("dead's errored alert was sent %d times, want once:\n%s", n, rcv)
	}
	if n := rcv.count("dead", "errored", "resolved"); n != 0 {
		t.Errorf("dead's errored alert was resolved while the process is still errored:\n%s", rcv)
	}
	if out := e.ok("alerts").stdout; !strings.Contains(out, "dead") || !strings.Contains(out, "later") {
		t.Errorf("corral alerts does not list both:\n%s", out)
	}
}

// TestAlertReloadFailed: a reload whose replacement never becomes ready fires reload_failed
// (the old worker keeps serving); the next reload that succeeds resolves it.
func TestAlertReloadFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	rcv := newAlertReceiver(t)
	mark := filepath.Join(e.dir, "broken")
	e.vars["NOT_READY_IF"] = mark
	e.vars["PORT"] = strconv.Itoa(freePort(t))
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'web', script: 'cluster_http.js', exec_mode: 'cluster', instances: 1, listen_timeout: 1500,
  alerts: { notify: [{ webhook: '%s' }] },
}] }`, rcv.srv.URL))
	e.ok("start", "ecosystem.config.js")
	e.waitStatus(0, "online", 60*time.Second)
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.fails("reload", "web")
	fired := e.waitAlert(rcv, "web", "reload_failed", "firing", 60*time.Second)
	if !strings.Contains(fmt.Sprint(fired["text"]), "reload of web failed at process 0") {
		t.Errorf("reload_failed alert: %v", fired)
	}
	if err := os.Remove(mark); err != nil {
		t.Fatal(err)
	}
	e.ok("reload", "web")
	e.waitAlert(rcv, "web", "reload_failed", "resolved", 60*time.Second)
}

// TestAlertRequests: a Node cluster app answering 10% of requests with 500 fires error_rate;
// then, its traffic carried by one keep-alive connection (so one worker answers everything),
// it fires uneven.
func TestAlertRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_status.js")
	rcv := newAlertReceiver(t)
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
  name: 'api', script: 'cluster_status.js', exec_mode: 'cluster', instances: 2,
  alerts: { error_rate: '5%%/10s', uneven: '50%%/10s', notify: [{ webhook: '%s' }] },
}] }`, rcv.srv.URL))
	e.ok("start", "ecosystem.config.js")
	e.waitStatus(0, "online", 60*time.Second)
	e.waitStatus(1, "online", 60*time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d/", port)

	// load sends requests from one goroutine until stop: every tenth asks for a 500 when
	// failing is set.
	load := func(client *http.Client, failing bool) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ctx.Err() == nil; i++ {
				url := base
				if failing && i%10 == 9 {
					url += "?status=500"
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		return func() { cancel(); <-done }
	}

	stop := load(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}, true)
	fired := e.waitAlert(rcv, "api", "error_rate", "firing", 90*time.Second)
	stop()
	if v, _ := fired["value"].(float64); v < 0.05 || fired["unit"] != "ratio" || fired["id"] != nil {
		t.Errorf("error_rate alert: %v", fired)
	}

	keepAlive := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	defer keepAlive.CloseIdleConnections()
	stop = load(&http.Client{Transport: keepAlive, Timeout: 10 * time.Second}, false)
	defer stop()
	uneven := e.waitAlert(rcv, "api", "uneven", "firing", 90*time.Second)
	if v, _ := uneven["value"].(float64); v <= 0.5 || !strings.Contains(fmt.Sprint(uneven["text"]), "fair share") {
		t.Errorf("uneven alert: %v", uneven)
	}
	e.waitAlert(rcv, "api", "error_rate", "resolved", 90*time.Second)
}
