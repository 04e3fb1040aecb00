package integration

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// requestTotals adds up the request counters of every worker in jlist.
type requestTotals struct {
	requests    uint64
	byClass     [5]uint64
	connections uint64
	perWorker   map[int]uint64
}

func jlistRequests(e *env) requestTotals {
	out := requestTotals{perWorker: map[int]uint64{}}
	for _, p := range e.jlist() {
		c := p.Pm2Env.Corral.Cluster
		if c == nil {
			continue
		}
		out.requests += c.Requests
		out.connections += c.Connections
		for i, n := range c.RequestsByClass {
			out.byClass[i] += n
		}
		out.perWorker[p.ID] = c.Requests
	}
	return out
}

// describeRequests reads the requests column of describe's distribution table, by process id.
func describeRequests(t *testing.T, e *env, app string) map[int]uint64 {
	t.Helper()
	out := e.ok("describe", app).stdout
	var idCol, reqCol = -1, -1
	rows := map[int]uint64{}
	for _, line := range strings.Split(out, "\n") {
		cells := strings.Split(line, "│")
		if len(cells) < 3 {
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if idCol < 0 {
			if !strings.Contains(line, "req share") {
				continue
			}
			for i, c := range cells {
				switch c {
				case "id":
					idCol = i
				case "requests":
					reqCol = i
				}
			}
			if idCol < 0 || reqCol < 0 {
				t.Fatalf("describe's distribution header has no id or requests column:\n%s", out)
			}
			continue
		}
		if len(cells) <= reqCol {
			continue
		}
		id, err := strconv.Atoi(cells[idCol])
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(cells[reqCol], 10, 64)
		if err != nil {
			t.Fatalf("process %d: requests %q in describe:\n%s", id, cells[reqCol], out)
		}
		rows[id] = n
	}
	if idCol < 0 {
		t.Fatalf("describe shows no request distribution:\n%s", out)
	}
	return rows
}

// metricsRequests scrapes the daemon's /metrics at addr and adds up
// corral_process_requests_total of app, by process id.
func metricsRequests(t *testing.T, addr, app string) map[int]uint64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[int]uint64{}
	fam := fams["corral_process_requests_total"]
	if fam == nil {
		t.Fatalf("/metrics has no corral_process_requests_total")
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["app"] != app {
			continue
		}
		id, err := strconv.Atoi(labels["id"])
		if err != nil {
			t.Fatalf("corral_process_requests_total with id %q", labels["id"])
		}
		out[id] += uint64(m.GetCounter().GetValue())
	}
	return out
}

func sum(m map[int]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// sendRequests sends n requests to base from conc goroutines: every tenth asks for status (so
// n/10 answers of that class), the others get 200. It fails the test on a transport error or
// an unexpected status.
func sendRequests(t *testing.T, client *http.Client, base string, n, conc int, status int) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, n)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				url, want := base, http.StatusOK
				if i%10 == 9 {
					url, want = fmt.Sprintf("%s?status=%d", base, status), status
				}
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					errs <- fmt.Errorf("%s: status %d, want %d", url, resp.StatusCode, want)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("request failed: %v", err)
	}
}

// TestClusterCountsRequests: corral's preload counts every request inside the workers, with no
// change to the app, and describe, jlist and /metrics show exactly what was sent: first 1,000
// requests a connection each, then 1,000 over a few keep-alive connections (where connection
// counts say nothing about requests).
func TestClusterCountsRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_status.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.vars["CORRAL_HTTP_LISTEN"] = metricsAddr
	e.ok("start", "cluster_status.js", "-i", "2")
	// Wait on the workers' own listening messages, not on a request: every request counts.
	e.waitFor("2 workers listening", 60*time.Second, func() bool {
		listening := 0
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c != nil && len(c.Listening) > 0 {
				listening++
			}
		}
		return listening == 2
	})
	base := fmt.Sprintf("http://127.0.0.1:%d/", port)

	// 1,000 requests, a new connection each; 100 of them answered 500.
	closing := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	sendRequests(t, closing, base, 1000, 4, http.StatusInternalServerError)
	var got requestTotals
	e.waitFor("1,000 requests counted", 30*time.Second, func() bool {
		got = jlistRequests(e)
		return got.requests >= 1000 && got.byClass[1]+got.byClass[4] >= 1000
	})
	if got.requests != 1000 || got.byClass != [5]uint64{0, 900, 0, 0, 100} {
		t.Fatalf("after 1,000 requests, jlist counts %d requests, by class %v; want 1000, [0 900 0 0 100]", got.requests, got.byClass)
	}
	for id, n := range got.perWorker {
		if n == 0 {
			t.Errorf("worker %d answered none of 1,000 requests on new connections: %v", id, got.perWorker)
		}
	}
	if d := describeRequests(t, e, "cluster_status"); len(d) != 2 || sum(d) != 1000 {
		t.Fatalf("describe's per-worker requests %v add up to %d, want 1000 over 2 workers", d, sum(d))
	}
	if m := metricsRequests(t, metricsAddr, "cluster_status"); len(m) != 2 || sum(m) != 1000 {
		t.Fatalf("/metrics' per-worker requests %v add up to %d, want 1000 over 2 workers", m, sum(m))
	}
	connsBefore := got.connections

	// 1,000 more over 4 keep-alive connections; 100 of them answered 404.
	keepAlive := &http.Transport{MaxIdleConnsPerHost: 4}
	defer keepAlive.CloseIdleConnections()
	sendRequests(t, &http.Client{Transport: keepAlive, Timeout: 10 * time.Second}, base, 1000, 4, http.StatusNotFound)
	e.waitFor("2,000 requests counted", 30*time.Second, func() bool {
		got = jlistRequests(e)
		return got.requests >= 2000 && got.byClass[1]+got.byClass[3]+got.byClass[4] >= 2000
	})
	if got.requests != 2000 || got.byClass != [5]uint64{0, 1800, 0, 100, 100} {
		t.Fatalf("after 2,000 requests, jlist counts %d requests, by class %v; want 2000, [0 1800 0 100 100]", got.requests, got.byClass)
	}
	if conns := got.connections - connsBefore; conns >= 500 {
		t.Errorf("1,000 keep-alive requests took %d connections: the client did not keep them alive", conns)
	}
	if d := describeRequests(t, e, "cluster_status"); sum(d) != 2000 {
		t.Fatalf("describe's per-worker requests %v add up to %d, want 2000", d, sum(d))
	}
	if m := metricsRequests(t, metricsAddr, "cluster_status"); sum(m) != 2000 {
		t.Fatalf("/metrics' per-worker requests %v add up to %d, want 2000", m, sum(m))
	}
	// The reports are internal messages: the app's process.on('message') saw none of them.
	// (Its log says "serving" first, so an empty or missing log cannot pass.)
	procs := e.jlist()
	e.waitFor("both workers' out logs", 30*time.Second, func() bool {
		for _, p := range procs {
			if !strings.Contains(readFile(p.Pm2Env.OutLog), "serving") {
				return false
			}
		}
		return true
	})
	for _, p := range procs {
		if out := readFile(p.Pm2Env.OutLog); strings.Contains(out, "app got a message") {
			t.Errorf("process %d's app received a message:\n%s", p.ID, out)
		}
	}
}

// TestForkCountsRequests: a fork-mode Node process gets corral's preload too (its IPC channel
// carries the reports), and jlist shows exactly what was sent, with its runtime gauges; an app
// with --no-pmx (PM2's pmx: false) runs without the preload.
func TestForkCountsRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_status.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.ok("start", "cluster_status.js", "--name", "forked")
	var p jproc
	e.waitFor("the fork-mode app serving", 60*time.Second, func() bool {
		for _, q := range e.jlist() {
			if q.Name == "forked" {
				p = q
			}
		}
		return p.PID > 0 && strings.Contains(readFile(p.Pm2Env.OutLog), "serving")
	})
	if p.Pm2Env.ExecMode != "fork_mode" {
		t.Fatalf("exec mode %q, want fork_mode", p.Pm2Env.ExecMode)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d/", port)
	keepAlive := &http.Transport{MaxIdleConnsPerHost: 4}
	defer keepAlive.CloseIdleConnections()
	sendRequests(t, &http.Client{Transport: keepAlive, Timeout: 10 * time.Second}, base, 1000, 4, http.StatusInternalServerError)
	closing := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	sendRequests(t, closing, base, 100, 2, http.StatusNotFound)

	forked := func() jproc {
		for _, q := range e.jlist() {
			if q.Name == "forked" {
				return q
			}
		}
		t.Fatalf("forked is not listed")
		return jproc{}
	}
	e.waitFor("1,100 requests counted", 30*time.Second, func() bool {
		r := forked().Pm2Env.Corral.Requests
		return r != nil && r.Requests >= 1100 && r.RequestsByClass[1]+r.RequestsByClass[3]+r.RequestsByClass[4] >= 1100
	})
	got := forked()
	r := got.Pm2Env.Corral.Requests
	if r.Requests != 1100 || r.RequestsByClass != [5]uint64{0, 990, 0, 10, 100} {
		t.Fatalf("after 1,100 requests, jlist counts %d, by class %v; want 1100, [0 990 0 10 100]", r.Requests, r.RequestsByClass)
	}
	if r.Runtime == nil || r.Runtime.HeapUsed == 0 || r.Runtime.EventLoopP99MS == nil {
		t.Errorf("no runtime gauges (heap, event loop) for the fork-mode process: %+v", r.Runtime)
	}
	if got.Pm2Env.Corral.Cluster != nil {
		t.Errorf("a fork-mode process shows cluster statistics")
	}
	if out := e.ok("describe", "forked").stdout; !strings.Contains(out, "1100 (") || !strings.Contains(out, "event loop delay") {
		t.Errorf("describe shows no requests or event-loop delay for the fork-mode process:\n%s", out)
	}
	if out := readFile(got.Pm2Env.OutLog); strings.Contains(out, "app got a message") {
		t.Errorf("the app received a message:\n%s", out)
	}

	// --no-pmx: no preload in the process at all.
	port2 := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port2)
	e.ok("start", "cluster_status.js", "--name", "bare", "--no-pmx")
	var bare jproc
	e.waitFor("the --no-pmx app serving", 60*time.Second, func() bool {
		for _, q := range e.jlist() {
			if q.Name == "bare" {
				bare = q
			}
		}
		return bare.PID > 0 && strings.Contains(readFile(bare.Pm2Env.OutLog), "serving")
	})
	cmdline := readFile(fmt.Sprintf("/proc/%d/cmdline", bare.PID))
	if strings.Contains(cmdline, "--require") {
		t.Errorf("the --no-pmx app was started with a preload: %q", cmdline)
	}
	if !strings.Contains(readFile(fmt.Sprintf("/proc/%d/cmdline", got.PID)), "--require") {
		t.Errorf("the fork-mode app was started without the preload")
	}
}
