package integration

// /readyz and `corral ping --ready` ask health_url of each cluster worker on its own
// (docs/containers.md §5): a worker that is up and listening but answers 503 keeps the daemon
// not ready every time, not only when the rotation happens to hand it the probe.

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadyzPerWorker: a Node cluster app and a Go one (the worker package), two workers
// each, instance 1 sick: /readyz is 503 naming worker 1 and its pid, on every probe, and
// `corral ping --ready` agrees; once it heals, ready.
func TestReadyzPerWorker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string // the app's script attributes
		newEnv func(t *testing.T) *env
	}{
		{"node", "script: './cluster_health.js'", func(t *testing.T) *env {
			if _, err := exec.LookPath("node"); err != nil {
				t.Skip("node is not installed")
			}
			return newEnv(t, "cluster_health.js")
		}},
		{"go worker package", "script: './goworker', interpreter: 'none'", newGoEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := tc.newEnv(t)
			port, httpPort := freePort(t), freePort(t)
			e.vars["CORRAL_HTTP_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", httpPort)
			healed := filepath.Join(e.dir, "healed")
			e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [{
				name: 'web', %s, exec_mode: 'cluster', instances: 2, health_url: '/healthz',
				env: { PORT: '%d', SICK_INSTANCE: '1', HEALED_IF: %q },
			}] }`, tc.script, port, healed))
			e.ok("start", "ecosystem.config.js")
			e.waitStatus(0, "online", 30*time.Second)
			sick := e.waitStatus(1, "online", 30*time.Second)

			probe := func() (int, string) {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort))
				if err != nil {
					return 0, err.Error()
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			want := fmt.Sprintf("app web: worker 1 (pid %d): health_url /healthz: 503 Service Unavailable", sick.PID)
			e.waitFor("/readyz to name worker 1 once both workers listen", 30*time.Second, func() bool {
				_, body := probe()
				return body == "not ready:\n  "+want+"\n"
			})
			for i := range 10 {
				if code, body := probe(); code != 503 || body != "not ready:\n  "+want+"\n" {
					t.Fatalf("/readyz %d with worker 1 sick = %d %q, want 503 and %q alone", i, code, body, want)
				}
			}
			if r := e.fails("ping", "--ready"); r.code != 1 || !strings.Contains(r.stderr, "not ready: "+want) {
				t.Fatalf("ping --ready with worker 1 sick: want exit 1 and %q, got:\n%s", want, r)
			}

			e.write("healed", "")
			for i := range 10 {
				if code, body := probe(); code != 200 || body != "ready\n" {
					t.Fatalf("/readyz %d with both workers healthy = %d %q", i, code, body)
				}
			}
			if r := e.ok("ping", "--ready"); r.stdout != "ready\n" {
				t.Fatalf("ping --ready with both workers healthy: %s", r)
			}
		})
	}
}
