package integration

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsListener: the real binary, started with CORRAL_HTTP_LISTEN, serves /metrics on
// that address, with the app's series; a bad address stops the daemon from starting, and the
// error names the variable.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	e.vars["CORRAL_HTTP_LISTEN"] = addr
	e.ok("start", "sleeper.sh", "--name", "web", "-i", "2")
	e.waitStatus(0, "online", 30*time.Second)
	e.waitStatus(1, "online", 30*time.Second)

	var body string
	e.waitFor("/metrics shows both processes online", 30*time.Second, func() bool {
		body = scrapeMetrics(t, addr)
		return strings.Contains(body, `corral_process_status{app="web",id="0",instance="0",status="online"} 1`) &&
			strings.Contains(body, `corral_process_status{app="web",id="1",instance="1",status="online"} 1`)
	})
	for _, want := range []string{
		`corral_app_instances_desired{app="web"} 2`,
		`corral_app_instances_online{app="web"} 2`,
		`corral_process_restarts_total{app="web",id="0",instance="0"} 0`,
		"# TYPE corral_process_cpu_seconds_total counter",
		"# TYPE go_goroutines gauge",
		"# TYPE process_resident_memory_bytes gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// `corral update` is how a setting change is applied (docs/metrics.md §1.2): the next
	// daemon binds the same address, and the apps carry on.
	e.ok("update")
	e.waitFor("/metrics served by the new daemon", 30*time.Second, func() bool {
		return strings.Contains(scrapeMetrics(t, addr), `corral_app_instances_online{app="web"} 2`)
	})
	e.ok("kill")

	bad := newEnv(t)
	bad.vars["CORRAL_HTTP_LISTEN"] = "9615"
	r := bad.fails("ping")
	if !strings.Contains(r.stdout+r.stderr, "CORRAL_HTTP_LISTEN") {
		t.Errorf("a bad CORRAL_HTTP_LISTEN: the error does not name it:\n%s", r)
	}
}

// scrapeMetrics GETs /metrics from addr ("" on any error: the caller waits).
func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(data)
}
