package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/settings"
	cortest "github.com/corral-pm/corral/internal/testutil"
)

// metricsDaemon is a test daemon whose HTTP listener is on a free loopback port.
func metricsDaemon(t *testing.T) *testDaemon {
	t.Helper()
	td := newTestDaemon(t, func(d *Daemon) { d.httpListen, d.httpSource = "127.0.0.1:0", "test" })
	if td.d.HTTPAddr() == "" {
		t.Fatal("the HTTP listener is not bound")
	}
	return td
}

// scrape fetches /metrics over TCP with the given Accept header and returns the body and its
// content type.
func scrape(t *testing.T, addr, accept string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v\n%s", resp.StatusCode, err, body)
	}
	return string(body), resp.Header.Get("Content-Type")
}

// parseText parses the Prometheus text format.
func parseText(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value is the value of the series of family name whose labels include want (nil: not found).
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) *float64 {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		return &v
	}
	return nil
}

// TestMetricsOfARunningApp: /metrics over real TCP shows each process's status, restarts and
// the app's instances; it parses, lints clean, and a restart moves the counter without a new
// series (no pid label).
func TestMetricsOfARunningApp(t *testing.T) {
	td := metricsDaemon(t)
	app := td.sleeper("web")
	app.Instances = 2
	td.mustStart(app)
	procs := td.waitStatus("web", 2, "online")
	addr := td.d.HTTPAddr()

	fams := parseText(t, must(scrape(t, addr, "")))
	for _, id := range []int{procs[0].ID, procs[1].ID} {
		labels := map[string]string{"app": "web", "id": fmt.Sprint(id)}
		for name, want := range map[string]float64{"corral_process_restarts_total": 0} {
			if got := value(fams, name, labels); got == nil || *got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
		}
		online := map[string]string{"app": "web", "id": fmt.Sprint(id), "status": "online"}
		if got := value(fams, "corral_process_status", online); got == nil || *got != 1 {
			t.Errorf("corral_process_status%v = %v, want 1", online, got)
		}
		stopped := map[string]string{"app": "web", "id": fmt.Sprint(id), "status": "stopped"}
		if got := value(fams, "corral_process_status", stopped); got == nil || *got != 0 {
			t.Errorf("corral_process_status%v = %v, want 0", stopped, got)
		}
		for _, name := range []string{"corral_process_cpu_seconds_total", "corral_process_memory_bytes", "corral_process_uptime_seconds"} {
			if value(fams, name, labels) == nil {
				t.Errorf("no %s%v", name, labels)
			}
		}
	}
	for name, want := range map[string]float64{"corral_app_instances_desired": 2, "corral_app_instances_online": 2} {
		if got := value(fams, name, map[string]string{"app": "web"}); got == nil || *got != want {
			t.Errorf("%s{app=web} = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("no %s: the daemon's own metrics are missing", name)
		}
	}
	if strings.Contains(must(scrape(t, addr, "")), "pid=") {
		t.Error("a series has a pid label")
	}
	cortest.WaitFor(t, "memory sampled", 10*time.Second, func() bool {
		f := parseText(t, must(scrape(t, addr, "")))
		v := value(f, "corral_process_memory_bytes", map[string]string{"app": "web", "id": fmt.Sprint(procs[0].ID)})
		return v != nil && *v > 0
	})

	if _, err := td.act(api.ActionRestart, fmt.Sprint(procs[0].ID)); err != nil {
		t.Fatal(err)
	}
	td.waitStatus("web", 2, "online")
	cortest.WaitFor(t, "restart counted", 10*time.Second, func() bool {
		f := parseText(t, must(scrape(t, addr, "")))
		v := value(f, "corral_process_restarts_total", map[string]string{"app": "web", "id": fmt.Sprint(procs[0].ID)})
		return v != nil && *v == 1
	})
	f := parseText(t, must(scrape(t, addr, "")))
	if n := len(f["corral_process_restarts_total"].GetMetric()); n != 2 {
		t.Errorf("%d restart series after a restart, want 2 (one per process)", n)
	}

	problems, err := promlint.New(strings.NewReader(must(scrape(t, addr, "")))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsOpenMetrics: a scraper that asks for OpenMetrics gets it.
func TestMetricsOpenMetrics(t *testing.T) {
	td := metricsDaemon(t)
	td.mustStart(td.sleeper("one"))
	td.waitStatus("one", 1, "online")
	body, ctype := scrape(t, td.d.HTTPAddr(), "application/openmetrics-text;version=1.0.0")
	if !strings.HasPrefix(ctype, "application/openmetrics-text") {
		t.Errorf("content type %q, want OpenMetrics", ctype)
	}
	if !strings.HasSuffix(body, "# EOF\n") || !strings.Contains(body, `corral_process_status{app="one"`) {
		t.Errorf("not an OpenMetrics exposition of the app:\n%s", body)
	}
	for _, want := range []string{
		"# TYPE corral_process_restarts counter\n",
		`corral_process_restarts_total{app="one",id="0",instance="0"} 0` + "\n",
		"# TYPE corral_app_instances_online gauge\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("OpenMetrics exposition lacks %q:\n%s", want, body)
		}
	}
}

// TestHTTPListenerOff: without an address nothing listens; the listener closes with the daemon.
func TestHTTPListenerOff(t *testing.T) {
	t.Setenv("CORRAL_HTTP_LISTEN", "")
	td := newTestDaemon(t, nil)
	if addr := td.d.HTTPAddr(); addr != "" {
		t.Errorf("HTTP listener on %s without being asked", addr)
	}
}

func must(body, _ string) string { return body }

// TestExpositionEscapes: label values and help text with quotes, backslashes and newlines are
// escaped so that Prometheus' parser reads them back as written.
func TestExpositionEscapes(t *testing.T) {
	for _, tc := range []struct{ name, app string }{
		{"plain", "web"},
		{"quote", `we"b`},
		{"backslash", `C:\web`},
		{"newline", "we\nb"},
		{"unicode", "wéb ☃"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &family{name: "corral_test_total", typ: counter, help: "a \\ help\nline"}
			f.add(3, "app", tc.app)
			var b strings.Builder
			writeExposition(&b, []*family{f}, false)
			fams := parseText(t, b.String())
			got := fams["corral_test_total"]
			if got == nil || got.GetHelp() != f.help || len(got.GetMetric()) != 1 {
				t.Fatalf("parsed %v from:\n%s", got, b.String())
			}
			m := got.GetMetric()[0]
			if m.GetLabel()[0].GetValue() != tc.app || m.GetCounter().GetValue() != 3 {
				t.Errorf("parsed %v from:\n%s", m, b.String())
			}
		})
	}
}

// TestHTTPListenerWarnsOffLoopback: an address others can reach is served, because the user
// named it, and the daemon log says who can read it.
func TestHTTPListenerWarnsOffLoopback(t *testing.T) {
	td := newTestDaemon(t, func(d *Daemon) { d.httpListen, d.httpSource = "0.0.0.0:0", "test" })
	if td.d.HTTPAddr() == "" {
		t.Fatal("the HTTP listener is not bound")
	}
	cortest.WaitFor(t, "the warning in the daemon log", 10*time.Second, func() bool {
		data, _ := os.ReadFile(td.d.paths.DaemonLog)
		return strings.Contains(string(data), "warning: the HTTP listener (test) is on 0.0.0.0:0,") &&
			strings.Contains(string(data), "not a loopback address")
	})
}

// TestHTTPListenerBusyAddress: a daemon that cannot bind its HTTP address does not start, and
// says which address, where it came from and how to change it.
func TestHTTPListenerBusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	h, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(h)
	d, err := New(Options{Paths: home.At(h), HTTPListen: busy.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.Run(ctx)
	d.logFile.Close()
	d.lock.Close()
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) || !strings.Contains(err.Error(), "corral set http.listen") {
		t.Errorf("Run with a busy HTTP address = %v, want an error naming it and the fix", err)
	}
}

// TestMetricsClusterConnections: a cluster app's connections are counted per process, from the
// cluster primary's counters.
func TestMetricsClusterConnections(t *testing.T) {
	td := metricsDaemon(t)
	port := freePort(t)
	app := td.nodeServer("web", port)
	app.Instances = 2
	td.mustStart(app)
	td.waitStatus("web", 2, "online")
	const requests = 6
	getRoot(t, port, requests)
	addr := td.d.HTTPAddr()
	cortest.WaitFor(t, "every connection counted", 10*time.Second, func() bool {
		f := parseText(t, must(scrape(t, addr, "")))
		total := 0.0
		for _, m := range f["corral_process_connections_total"].GetMetric() {
			total += m.GetCounter().GetValue()
		}
		return len(f["corral_process_connections_total"].GetMetric()) == 2 && total == requests &&
			len(f["corral_process_connections_in_flight"].GetMetric()) == 2 &&
			len(f["corral_process_connections_refused_total"].GetMetric()) == 2
	})
	// The preload's reports: every request counted once, as a 2xx.
	cortest.WaitFor(t, "every request counted", 10*time.Second, func() bool {
		f := parseText(t, must(scrape(t, addr, "")))
		byClass := map[string]float64{}
		for _, m := range f["corral_process_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" {
					byClass[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
		answered := uint64(0)
		for _, m := range f["corral_process_request_duration_seconds"].GetMetric() {
			h := m.GetHistogram()
			if b := h.GetBucket(); len(b) == 0 || b[len(b)-1].GetCumulativeCount() > h.GetSampleCount() {
				return false
			}
			answered += h.GetSampleCount()
		}
		return byClass["2xx"] == requests && byClass["5xx"] == 0 && answered == requests &&
			len(f["corral_process_heap_used_bytes"].GetMetric()) == 2 &&
			len(f["corral_process_event_loop_delay_p99_seconds"].GetMetric()) == 2
	})
	// The request series (the histogram too) pass the linter, in the text format, and the
	// OpenMetrics exposition ends as it must.
	problems, err := promlint.New(strings.NewReader(must(scrape(t, addr, "")))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	om := must(scrape(t, addr, "application/openmetrics-text; version=1.0.0"))
	if !strings.Contains(om, "# TYPE corral_process_request_duration_seconds histogram\n") ||
		!strings.Contains(om, `le="+Inf"}`) || !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("OpenMetrics exposition without the request histogram:\n%s", om)
	}
}

// TestMetricsReloads: every rolling reload of a cluster app counts once per app, a restart of
// it too (the rolling path), and a watch trigger; one whose replacement never becomes ready
// counts as failed; a fork-mode app's restarts are not reloads.
func TestMetricsReloads(t *testing.T) {
	td := metricsDaemon(t)
	port := freePort(t)
	app := td.nodeServer("web", port)
	app.Instances = 2
	app.ListenTimeout = 1500
	watched := t.TempDir()
	app.Watch = []string{watched}
	app.WatchDelay = 100
	td.mustStart(app, td.sleeper("fork"))
	td.waitStatus("web", 2, "online")
	td.waitStatus("fork", 1, "online")
	addr := td.d.HTTPAddr()
	reloads := func(app string) (done, failed float64) {
		t.Helper()
		f := parseText(t, must(scrape(t, addr, "")))
		d := value(f, "corral_app_reloads_total", map[string]string{"app": app})
		x := value(f, "corral_app_reloads_failed_total", map[string]string{"app": app})
		if d == nil || x == nil {
			t.Fatalf("no reload series for %s", app)
		}
		return *d, *x
	}
	if d, x := reloads("web"); d != 0 || x != 0 {
		t.Fatalf("before any reload: %v reloads, %v failed", d, x)
	}
	for _, action := range []api.Action{api.ActionReload, api.ActionRestart} {
		if resp, err := td.act(action, "web"); err != nil || len(resp.Errors) > 0 {
			t.Fatalf("%s: %v %v", action, err, resp.Errors)
		}
	}
	if _, err := td.act(api.ActionRestart, "fork"); err != nil {
		t.Fatal(err)
	}
	td.waitStatus("fork", 1, "online")
	if d, x := reloads("web"); d != 2 || x != 0 {
		t.Errorf("after a reload and a restart: %v reloads, %v failed; want 2, 0", d, x)
	}
	if d, x := reloads("fork"); d != 0 || x != 0 {
		t.Errorf("a fork-mode restart counted as a reload: %v, %v failed", d, x)
	}

	// A watched file changes: the trigger replaces both workers, one reload.
	if err := os.WriteFile(filepath.Join(watched, "changed.js"), []byte("//"), 0o644); err != nil {
		t.Fatal(err)
	}
	cortest.WaitFor(t, "the watch trigger counted as a reload", 30*time.Second, func() bool {
		d, x := reloads("web")
		return d == 3 && x == 0
	})
	td.waitStatus("web", 2, "online")

	// The script now never listens: the first replacement is not ready in listen_timeout, the
	// reload stops there and the old workers keep serving.
	if err := os.WriteFile(app.Script, []byte(`setInterval(() => {}, 1000)`), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := td.act(api.ActionReload, "web")
	if err != nil || len(resp.Errors) == 0 {
		t.Fatalf("reload to a script that never listens: %v %v, want an error", err, resp.Errors)
	}
	if d, x := reloads("web"); d != 4 || x != 1 {
		t.Errorf("after a failed reload: %v reloads, %v failed; want 4, 1", d, x)
	}
	if !portOpen(port) {
		t.Error("the port closed after a failed reload")
	}
}

// metricsAnswer reports whether /metrics answers on addr.
func metricsAnswer(addr string) bool {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestHTTPListenerRebind: the daemon applies the http.listen setting while it runs (POST
// /v1/http/listen): it opens the listener, moves it, keeps the old one when the new address
// is taken (the error names the address and the fix), and closes it on unset.
func TestHTTPListenerRebind(t *testing.T) {
	t.Setenv(settings.EnvHTTPListen, "")
	os.Unsetenv(settings.EnvHTTPListen) // restored by Setenv's cleanup
	td := newTestDaemon(t, nil)
	if addr := td.d.HTTPAddr(); addr != "" {
		t.Fatalf("HTTP listener on %s without being asked", addr)
	}
	apply := func(value string) (api.HTTPListenResponse, error) {
		t.Helper()
		values := map[string]string{}
		if value != "" {
			values[settings.HTTPListen] = value
		}
		if err := settings.Save(td.d.paths.Settings, values); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return td.cl.ApplyHTTPListen(ctx)
	}

	resp, err := apply("127.0.0.1:0")
	if err != nil || !resp.Changed || resp.Address == "" || resp.Address != td.d.HTTPAddr() || resp.Source != "setting http.listen" {
		t.Fatalf("open: %+v %v (bound %q)", resp, err, td.d.HTTPAddr())
	}
	first := resp.Address
	if !metricsAnswer(first) {
		t.Fatalf("no /metrics on %s", first)
	}
	// The same setting again changes nothing (the port 0 picked stays).
	if resp, err := apply("127.0.0.1:0"); err != nil || resp.Changed || resp.Address != first {
		t.Errorf("the same setting again: %+v %v, want unchanged on %s", resp, err, first)
	}

	second := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	resp, err = apply(second)
	if err != nil || !resp.Changed || resp.Address != second {
		t.Fatalf("move to %s: %+v %v", second, resp, err)
	}
	if !metricsAnswer(second) || metricsAnswer(first) {
		t.Errorf("after the move: /metrics on %s %v, on %s %v; want only the new one", second, metricsAnswer(second), first, metricsAnswer(first))
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = apply(busy.Addr().String())
	if statusCode(err) != http.StatusConflict || !strings.Contains(err.Error(), busy.Addr().String()) ||
		!strings.Contains(err.Error(), "corral set http.listen") || !strings.Contains(err.Error(), "keeps serving /metrics on "+second) {
		t.Errorf("move to a busy address: %v, want a conflict naming it, the fix and the address kept", err)
	}
	if td.d.HTTPAddr() != second || !metricsAnswer(second) {
		t.Errorf("after a failed move the listener is on %q, want %s still serving", td.d.HTTPAddr(), second)
	}

	if resp, err := apply("not-an-address"); statusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "corral unset http.listen") {
		t.Errorf("a bad address in the file: %+v %v, want a bad request naming the fix", resp, err)
	}

	resp, err = apply("")
	if err != nil || !resp.Changed || resp.Address != "" || td.d.HTTPAddr() != "" {
		t.Fatalf("unset: %+v %v", resp, err)
	}
	if metricsAnswer(second) {
		t.Errorf("/metrics still answers on %s after unset", second)
	}
}

// TestHTTPListenerEnvWins: an address CORRAL_HTTP_LISTEN gave the daemon at start is kept when
// the setting changes, and the answer says why.
func TestHTTPListenerEnvWins(t *testing.T) {
	t.Setenv(settings.EnvHTTPListen, "127.0.0.1:0")
	td := newTestDaemon(t, nil)
	bound := td.d.HTTPAddr()
	if bound == "" {
		t.Fatal("CORRAL_HTTP_LISTEN not applied at start")
	}
	if err := settings.Save(td.d.paths.Settings, map[string]string{settings.HTTPListen: fmt.Sprintf("127.0.0.1:%d", freePort(t))}); err != nil {
		t.Fatal(err)
	}
	resp, err := td.cl.ApplyHTTPListen(context.Background())
	if err != nil || resp.Changed || resp.Source != settings.EnvHTTPListen || resp.Address != bound || resp.Configured != "127.0.0.1:0" {
		t.Errorf("apply under CORRAL_HTTP_LISTEN: %+v %v, want unchanged on %s from the variable", resp, err, bound)
	}
	if !metricsAnswer(bound) {
		t.Errorf("/metrics no longer answers on %s", bound)
	}
}
