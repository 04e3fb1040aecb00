package daemon

import (
	"context"
	"fmt"
	"io"
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

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/testutil"
)

// The dashboard in a real browser: Debian's chromium, headless, driven with chromedp (a
// test-only dependency: the corral binary does not link it). CI installs chromium
// (scripts/test), and then they must run; elsewhere, without it, they skip and say so.

// newBrowser starts a headless chromium with a fresh profile and returns a tab's context. The
// browser (and every process it started) is gone when the test ends, passed or not.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil && os.Getenv("CORRAL_TEST_CHROMIUM_REQUIRED") != "" {
		t.Fatal("chromium is not installed, and scripts/test said it would be (CORRAL_TEST_CHROMIUM_REQUIRED)")
	}
	if err != nil {
		t.Skip("chromium is not installed: the browser tests need Debian's chromium (apt-get install chromium; scripts/test installs it when run as root)")
	}
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1200),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and what it started, and waits for it
		if left := browserProcesses(profile); len(left) > 0 {
			t.Errorf("chromium processes left running after the test: %v", left)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// The first Do starts the browser, and must not have a deadline of its own (it would be
	// the browser's): a timer kills a browser that does not start instead.
	stuck := time.AfterFunc(60*time.Second, cancelAlloc)
	err = chromedp.Do(ctx)
	stuck.Stop()
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// browserProcesses lists the live (not zombie) processes whose command line names profile.
func browserProcesses(profile string) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), profile) || zombie(pid) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// pageErrors collects the page's uncaught exceptions and its error log entries (a refused
// Content-Security-Policy, a failed request) until the test ends; check reads them.
func pageErrors(t *testing.T, ctx context.Context) (check func()) {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	evCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	exceptions := chromedp.Events(evCtx, cdpruntime.ExceptionThrown)
	entries := chromedp.Events(evCtx, cdplog.EntryAdded)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			mu.Lock()
			what := ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				what += " " + ex.Description
			}
			errs = append(errs, "exception: "+what)
			mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
				mu.Unlock()
			}
		}
	}()
	do(t, ctx, "enable the log", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return err
	}))
	return func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Errorf("the page reported an error: %s", e)
		}
	}
}

// do runs browser steps with a deadline.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until expr is true in the page.
func waitJS(t *testing.T, ctx context.Context, what string, timeout time.Duration, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			screenshot(t, ctx, "timeout")
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			page, _ := chromedp.Run(c, chromedp.Evaluate[string](`(() => { const d = document.getElementById('confirm'); return 'dialog: ' + (d.open ? 'open: ' + document.getElementById('confirm-text').textContent + (document.getElementById('confirm-count-label').hidden ? '' : ' [' + document.getElementById('confirm-count').value + ']') : 'closed') + '\n' + document.getElementById('banner').textContent + '\n' + document.getElementById('apps').innerText + '\n' + document.getElementById('events').innerText; })()`))
			cancel()
			t.Fatalf("waited %v for %s (%s): last error %v; the page shows:\n%s", timeout, what, expr, err, page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// evalString evaluates expr in the page (awaiting it if it is a promise).
func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// screenshot writes the page as a PNG into $CORRAL_TEST_ARTIFACTS (when set) or the test's
// temporary directory, and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CORRAL_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts: %v", err)
		return
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}

// load sends n requests, each on a new connection, to the app on port.
func load(t *testing.T, port, n int) {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range n {
		resp, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestWebBrowserDashboard: a cluster app's workers appear on the page opened with the URL
// `corral web` prints (the token leaves the address bar), the request distribution moves
// after load, a reload clicked and confirmed on the page completes and the page shows each
// worker replaced, the alerts section says there is no engine, and the API refuses a request
// without the token. Screenshots are the test's artifacts.
func TestWebBrowserDashboard(t *testing.T) {
	ctx := newBrowser(t)
	td, tok := webDaemon(t)
	port := freePort(t)
	app := td.nodeServer("web", port)
	app.Instances = 2
	td.mustStart(app)
	before := td.waitStatus("web", 2, "online")
	// Let the daemon's history grow first: the page must start from it, not from its stream.
	testutil.WaitFor(t, "ten samples of each worker in the daemon's history", 30*time.Second, func() bool {
		h := td.d.web.Load().hist.Snapshot(time.Now())
		return len(h[before[0].ID]) >= 10 && len(h[before[1].ID]) >= 10
	})

	checkErrors := pageErrors(t, ctx)
	url := "http://" + td.d.HTTPAddr() + "/web/#token=" + tok
	do(t, ctx, "open the dashboard", chromedp.Navigate(url))
	waitJS(t, ctx, "both workers online on the page", 30*time.Second,
		`document.querySelectorAll('[data-app="web"] tr[data-id][data-status="online"]').length === 2`)
	if got := evalString(t, ctx, `location.href`); strings.Contains(got, tok) {
		t.Errorf("the token is still in the address bar: %s", got)
	}
	if got := evalString(t, ctx, `sessionStorage.getItem('corral-token')`); got != tok {
		t.Errorf("sessionStorage holds %q, want the token", got)
	}
	for _, p := range before {
		waitJS(t, ctx, fmt.Sprintf("worker %d with pid %d", p.ID, p.PID), 10*time.Second,
			fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"][data-pid="%d"]')`, p.ID, p.PID))
	}
	got := evalString(t, ctx, `String(Math.min(...[...document.querySelectorAll('[data-charts] svg')].map(s => +s.dataset.points)))`)
	if n, err := strconv.Atoi(got); err != nil || n < 10 {
		t.Errorf("a fresh page draws %s points per chart, want the daemon's history (10 or more)", got)
	}
	paint := `String(Math.round((performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime))`
	first := evalString(t, ctx, paint)
	t.Logf("first contentful paint: %s ms (a new browser's first page)", first)
	// The budget is 100 ms on loopback; a shared, loaded CI machine's headless browser takes
	// longer for any page, so only a gross regression (a blocking request, say) fails here.
	if ms, err := strconv.Atoi(first); err != nil || ms > 2000 {
		t.Errorf("first contentful paint %s ms, over 2 s", first)
	}
	do(t, ctx, "reload the page", chromedp.Evaluate[chromedp.Void](`window.beforeReload = true`), chromedp.Reload())
	waitJS(t, ctx, "the workers after a reload of the page (the token kept in sessionStorage)", 30*time.Second,
		`!window.beforeReload && document.querySelectorAll('[data-app="web"] tr[data-id][data-status="online"]').length === 2`)
	t.Logf("first contentful paint: %s ms (the page loaded again)", evalString(t, ctx, paint))
	t.Logf("timing: %s", evalString(t, ctx, `JSON.stringify({nav: performance.getEntriesByType('navigation').map(e => [e.responseEnd, e.domContentLoadedEventEnd, e.loadEventEnd].map(Math.round)), paint: performance.getEntriesByType('paint').map(e => e.name + ':' + e.startTime), res: performance.getEntriesByType('resource').map(e => e.name.split('/').pop() + ':' + Math.round(e.responseEnd))})`))
	waitJS(t, ctx, "the charts drawn from the history", 20*time.Second,
		`[...document.querySelectorAll('[data-charts] svg')].every(s => +s.dataset.points >= 2)`)
	screenshot(t, ctx, "loaded")

	// The request distribution moves with the load.
	dist := `(document.querySelector('svg.dist[data-app="web"][data-kind="requests"]') || {dataset: {}}).dataset.values || ''`
	start := evalString(t, ctx, dist)
	load(t, port, 40)
	waitJS(t, ctx, "the request distribution to count the load", 30*time.Second,
		fmt.Sprintf(`(() => { const v = (%s).split(',').map(Number); return v.length === 2 && v.reduce((a, b) => a + b, 0) >= 40 && (%s) !== %q; })()`, dist, dist, start))
	t.Logf("requests per worker: %s -> %s", start, evalString(t, ctx, dist))

	// A reload clicked and confirmed on the page, shown worker by worker.
	do(t, ctx, "click reload", chromedp.Click(chromedp.CSS(`button[data-action="reload"][data-app="web"]`)))
	waitJS(t, ctx, "the confirmation dialog", 10*time.Second, `document.getElementById('confirm').open`)
	do(t, ctx, "confirm", chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, "the reload to complete on the page", 60*time.Second,
		`(() => { const r = document.getElementById('reload-web'); return !!r && r.dataset.done === '1' && r.querySelectorAll('[data-state="replaced"]').length === 2; })()`)
	after := td.waitStatus("web", 2, "online")
	for i, p := range after {
		if p.PID == before[i].PID {
			t.Errorf("worker %d still has pid %d after the reload", p.ID, p.PID)
		}
		waitJS(t, ctx, fmt.Sprintf("worker %d replaced by pid %d on the page", p.ID, p.PID), 20*time.Second,
			fmt.Sprintf(`!!document.querySelector('tr[data-id="%d"][data-pid="%d"][data-status="online"]') && document.querySelector('#reload-web [data-reload-id="%d"]').textContent.includes('replaced by %d')`, p.ID, p.PID, p.ID, p.PID))
	}
	if got := evalString(t, ctx, `document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent`); got != "" {
		t.Errorf("the page shows an error after the reload: %s", got)
	}

	// A reload started elsewhere (the CLI) is followed on the page too, from its events.
	resp, err := td.act(api.ActionReload, "web")
	if err != nil || len(resp.Reloads) != 2 {
		t.Fatalf("reload from the API: %v %+v", err, resp)
	}
	for _, r := range resp.Reloads {
		waitJS(t, ctx, fmt.Sprintf("the CLI's reload of worker %d on the page", r.ID), 20*time.Second,
			fmt.Sprintf(`(() => { const li = document.querySelector('#reload-web [data-reload-id="%d"]'); return !!li && li.dataset.state === 'replaced' && li.textContent.includes('pid %d replaced by %d'); })()`, r.ID, r.OldPID, r.NewPID))
	}
	waitJS(t, ctx, "the CLI's reload shown done", 20*time.Second, `document.getElementById('reload-web').dataset.done === '1'`)

	// Scale from the page: Cancel changes nothing; confirmed, the app has three workers.
	do(t, ctx, "click scale", chromedp.Click(chromedp.CSS(`button[data-action="scale"][data-app="web"]`)))
	waitJS(t, ctx, "the scale dialog", 10*time.Second, `document.getElementById('confirm').open && document.getElementById('confirm-count').value === '2'`)
	do(t, ctx, "cancel", chromedp.Click(chromedp.ID("confirm-cancel")))
	waitJS(t, ctx, "the dialog to close", 10*time.Second, `!document.getElementById('confirm').open`)
	do(t, ctx, "click scale again", chromedp.Click(chromedp.CSS(`button[data-action="scale"][data-app="web"]`)))
	waitJS(t, ctx, "the scale dialog", 10*time.Second, `document.getElementById('confirm').open && document.getElementById('confirm-count').value === '2'`)
	// The dialog's close event comes in a task of its own, after it has closed: Cancel and then
	// Scale at once (in one task here, so the Cancel's close event surely comes after the dialog
	// is open again) must leave the new question to be answered by its own Confirm. (The clicks
	// above race the same way, and lost the scale about 1 run in 3 when it did not.)
	if got := evalString(t, ctx, `(() => { const d = document.getElementById('confirm'); document.getElementById('confirm-cancel').click(); const closed = !d.open; document.querySelector('button[data-action="scale"][data-app="web"]').click(); return closed + ' ' + d.open; })()`); got != "true true" {
		t.Fatalf("Cancel, then Scale at once: dialog closed, then open = %s, want true true", got)
	}
	waitJS(t, ctx, "the scale dialog asked again", 10*time.Second, `document.getElementById('confirm').open && document.getElementById('confirm-count').value === '2'`)
	do(t, ctx, "ask for 3", chromedp.SetValue(chromedp.ID("confirm-count"), "3"), chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, "three workers online on the page", 60*time.Second,
		`document.querySelectorAll('[data-app="web"] tr[data-id][data-status="online"]').length === 3`)
	if n := len(td.waitStatus("web", 3, "online")); n != 3 {
		t.Errorf("%d workers after scaling to 3", n)
	}

	// Stop, then Start (offered once processes are down), each confirmed.
	do(t, ctx, "click stop", chromedp.Click(chromedp.CSS(`button[data-action="stop"][data-app="web"]`)))
	waitJS(t, ctx, "the stop dialog", 10*time.Second, `document.getElementById('confirm').open`)
	do(t, ctx, "confirm the stop", chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, "three workers stopped and a Start button", 60*time.Second,
		`document.querySelectorAll('[data-app="web"] tr[data-id][data-status="stopped"]').length === 3 && !document.querySelector('button[data-action="start"][data-app="web"]').hidden`)
	do(t, ctx, "click start", chromedp.Click(chromedp.CSS(`button[data-action="start"][data-app="web"]`)))
	waitJS(t, ctx, "the start dialog", 10*time.Second, `document.getElementById('confirm').open`)
	do(t, ctx, "confirm the start", chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, "three workers online again, and no Start button", 60*time.Second,
		`document.querySelectorAll('[data-app="web"] tr[data-id][data-status="online"]').length === 3 && document.querySelector('button[data-action="start"][data-app="web"]').hidden`)

	// Nothing fires for a healthy app (TestWebBrowserCrashLoopAlert shows one that does).
	waitJS(t, ctx, "the alerts section", 10*time.Second, `!!document.getElementById('alerts-none')`)
	// The log tail shows the daemon's lines about the reload.
	waitJS(t, ctx, "the log tail", 20*time.Second, `document.getElementById('logs').textContent.includes('web[')`)
	// Its filter keeps the matching lines only.
	do(t, ctx, "filter the logs", chromedp.SendKeys(chromedp.ID("log-filter"), "took over"))
	waitJS(t, ctx, "only the reload's lines", 10*time.Second,
		`(() => { const l = document.getElementById('logs').textContent.split('\n'); return l.length >= 2 && l.every(x => x.includes('took over')); })()`)

	// A page in a background tab lets its stream go, and takes it up again when looked at
	// (pause and resume are what the visibilitychange handler calls, after 30 s hidden).
	subs := func() int {
		td.d.events.mu.Lock()
		defer td.d.events.mu.Unlock()
		return len(td.d.events.subs)
	}
	do(t, ctx, "pause", chromedp.Evaluate[chromedp.Void](`pause()`))
	waitJS(t, ctx, "the page paused", 10*time.Second, `document.getElementById('live').textContent === 'paused'`)
	testutil.WaitFor(t, "the paused page's stream to end", 10*time.Second, func() bool { return subs() == 0 })
	do(t, ctx, "resume", chromedp.Evaluate[chromedp.Void](`resume()`))
	waitJS(t, ctx, "the page live again", 10*time.Second, `document.getElementById('live').textContent === 'live'`)
	testutil.WaitFor(t, "the resumed page's stream", 10*time.Second, func() bool { return subs() == 1 })

	// A request without the token, below, is meant to fail: the page's errors are read first.
	checkErrors()
	// Without the token, the API answers 401, even to the page's own origin.
	if got := evalString(t, ctx, `fetch('/web/api/state').then(r => String(r.status))`); got != "401" {
		t.Errorf("a request without the token got %s, want 401", got)
	}
	screenshot(t, ctx, "reloaded")
}

// TestWebBrowserCrashLoopAlert: a crash-looping app's alert (the default crash_rate rule)
// appears on the page as firing.
func TestWebBrowserCrashLoopAlert(t *testing.T) {
	ctx := newBrowser(t)
	td, tok := webDaemon(t)
	app := td.app("crashy", td.script("crashy.sh", "exit 1"))
	app.RestartDelay = 100
	td.mustStart(app)
	do(t, ctx, "open the dashboard", chromedp.Navigate("http://"+td.d.HTTPAddr()+"/web/#token="+tok))
	waitJS(t, ctx, "a firing alert for the crash-looping app", 90*time.Second,
		`!!document.querySelector('#alerts-firing li[data-app="crashy"][data-rule="crash_rate"][data-state="firing"]')`)
	screenshot(t, ctx, "alert")
}

// TestWebBrowserWithoutAToken: opened without the token, or with a wrong one, the page shows
// nothing of the apps and says what to do; a refused token is not kept; the right token
// pasted into that tab then works.
func TestWebBrowserWithoutAToken(t *testing.T) {
	ctx := newBrowser(t)
	td, tok := webDaemon(t)
	td.mustStart(td.sleeper("quiet"))
	base := "http://" + td.d.HTTPAddr() + "/web/"
	do(t, ctx, "open without a token", chromedp.Navigate(base))
	waitJS(t, ctx, "the no-token banner", 20*time.Second, `document.getElementById('banner').textContent.includes('No token')`)
	do(t, ctx, "open with a wrong token", chromedp.Navigate(base+"#token="+strings.Repeat("0", 64)))
	waitJS(t, ctx, "the refused-token banner", 20*time.Second, `document.getElementById('banner').textContent.includes('token was refused')`)
	if got := evalString(t, ctx, `String(sessionStorage.getItem('corral-token'))`); got != "null" {
		t.Errorf("a refused token is kept: %s", got)
	}
	if got := evalString(t, ctx, `String(document.querySelectorAll('tr[data-id]').length)`); got != "0" {
		t.Errorf("the page shows %s processes without the token", got)
	}
	screenshot(t, ctx, "refused")
	// The right token pasted into the same tab (only the fragment changes: no new load).
	do(t, ctx, "open with the token", chromedp.Navigate(base+"#token="+tok))
	waitJS(t, ctx, "the app once the token is given", 20*time.Second,
		`document.getElementById('banner').hidden && !!document.querySelector('[data-app="quiet"] tr[data-id]') && location.hash === ''`)
}
