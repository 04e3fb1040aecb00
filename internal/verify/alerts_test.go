package verify

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/api"
)

// alertsDaemon serves /v1/alerts, /v1/alerts/test and /v1/processes on a unix socket as a
// daemon with an alerts engine would (nil alerts: a daemon without the engine, 404).
func alertsDaemon(t *testing.T, alerts, test, procs any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	answer := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if v == nil {
				http.Error(w, `{"error":"not found","code":"not_found"}`, http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/alerts", answer(alerts))
	mux.Handle("POST /v1/alerts/test", answer(test))
	mux.Handle("GET /v1/processes", answer(procs))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func alertsCheck(t *testing.T, sock string, sendTest bool) Check {
	t.Helper()
	c := api.NewClient(sock)
	x := &run{r: &Runner{D: ClientDaemon{C: c}, Alerts: NewAlertsSource(c)}, o: Options{App: "web", SendTest: sendTest}, rep: &Report{}}
	// The app's spec as Run reads it (none when the fake daemon serves no processes).
	if procs, err := x.r.procs(context.Background(), "web"); err == nil {
		x.app = procs[0].App
	}
	x.checkAlerts(context.Background())
	return *x.rep.check(CheckAlerts)
}

func TestAlertsCheck(t *testing.T) {
	procs := func(alerts any, maxMem int64) any {
		return []any{map[string]any{"name": "web", "app": map[string]any{"alerts": alerts, "max_memory_restart": maxMem}}}
	}
	sinks := map[string]any{"sinks": []any{map[string]any{"kind": "webhook", "target": "https://hooks.example/x", "sent": 3}}}
	rules := map[string]any{"rules": map[string]any{"crash_rate": map[string]any{"threshold": 3}, "memory": map[string]any{"threshold": 1 << 30}}}

	if c := alertsCheck(t, alertsDaemon(t, nil, nil, nil), false); c.Status != Skip || c.Reason != "this daemon has no alerts engine" {
		t.Errorf("no engine: %+v", c)
	}
	if c := alertsCheck(t, alertsDaemon(t, sinks, nil, procs(rules, 0)), false); c.Status != Pass {
		t.Errorf("rules and a sink: %+v", c)
	}
	// Without the attribute the engine's defaults apply: crash_rate and memory_growth (and
	// memory with max_memory_restart).
	if c := alertsCheck(t, alertsDaemon(t, sinks, nil, procs(nil, 0)), false); c.Status != Pass {
		t.Errorf("defaults without max_memory_restart: %+v", c)
	}
	if c := alertsCheck(t, alertsDaemon(t, sinks, nil, procs(map[string]any{"rules": map[string]any{"crash_rate": map[string]any{"threshold": 3}}}, 0)), false); c.Status != Fail ||
		!strings.Contains(c.Reason, "missing a memory alert") {
		t.Errorf("crash_rate only: %+v", c)
	}
	if c := alertsCheck(t, alertsDaemon(t, sinks, nil, procs(nil, 300<<20)), false); c.Status != Pass {
		t.Errorf("defaults with max_memory_restart: %+v", c)
	}
	if c := alertsCheck(t, alertsDaemon(t, map[string]any{"sinks": []any{}}, nil, procs(map[string]any{"off": true}, 0)), false); c.Status != Fail ||
		!strings.Contains(c.Reason, "missing a crash-rate alert, a memory alert and a working sink") {
		t.Errorf("alerts off, no sink: %+v", c)
	}
	// --send-test: the sink must deliver.
	failed := map[string]any{"results": []any{map[string]any{"kind": "webhook", "target": "https://hooks.example/x", "error": "503 Service Unavailable"}}}
	if c := alertsCheck(t, alertsDaemon(t, sinks, failed, procs(rules, 0)), true); c.Status != Fail || !strings.Contains(c.Reason, "503 Service Unavailable") {
		t.Errorf("a failing sink: %+v", c)
	}
	// corral.log takes every alert, but reaches no one: it is not a working sink.
	logOnly := map[string]any{"results": []any{map[string]any{"kind": "log", "target": "/home/corral.log"}}}
	if c := alertsCheck(t, alertsDaemon(t, map[string]any{"sinks": []any{}}, logOnly, procs(rules, 0)), true); c.Status != Fail || !strings.Contains(c.Reason, "a working sink") {
		t.Errorf("corral.log only: %+v", c)
	}
	delivered := map[string]any{"results": []any{map[string]any{"kind": "webhook", "target": "https://hooks.example/x"}}}
	if c := alertsCheck(t, alertsDaemon(t, sinks, delivered, procs(rules, 0)), true); c.Status != Pass {
		t.Errorf("a delivered test: %+v", c)
	}
}
