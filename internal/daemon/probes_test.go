package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	cortest "github.com/corral-pm/corral/internal/testutil"
)

// probe GETs path on the HTTP listener and returns the status and body.
func probe(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProbeHealthAndReady: /healthz answers while the daemon lives; /readyz only once every
// app has its processes online and its health_url answers, and not for an app stopped on
// purpose; the control socket's answer (`corral ping --ready`) agrees; readiness drops as
// soon as a stop begins.
func TestProbeHealthAndReady(t *testing.T) {
	td := metricsDaemon(t)
	addr := td.d.HTTPAddr()
	ctx := context.Background()

	if code, body := probe(t, addr, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := probe(t, addr, "/readyz"); code != 503 || !strings.Contains(body, "no app is running") {
		t.Fatalf("/readyz with no app = %d %q", code, body)
	}

	port := cortest.FreePort(t)
	web := td.nodeServer("web", port)
	web.Instances = 2
	web.HealthURL = "/healthz"
	td.mustStart(web)
	td.waitStatus("web", 2, "online")
	cortest.WaitFor(t, "web ready", 20*time.Second, func() bool {
		code, _ := probe(t, addr, "/readyz")
		return code == 200
	})
	if rd, err := td.cl.Ready(ctx); err != nil || !rd.Ready {
		t.Fatalf("control API readiness = %+v, %v", rd, err)
	}

	// An app whose health URL does not answer keeps the daemon not ready, and says why.
	closed := cortest.FreePort(t)
	sick := td.sleeper("sick")
	sick.HealthURL = fmt.Sprintf("http://127.0.0.1:%d/healthz", closed)
	td.mustStart(sick)
	td.waitStatus("sick", 1, "online")
	code, body := probe(t, addr, "/readyz")
	if code != 503 || !strings.Contains(body, "app sick: health_url") || strings.Contains(body, "app web") {
		t.Fatalf("/readyz with a sick app = %d %q", code, body)
	}
	rd, err := td.cl.Ready(ctx)
	if err != nil || rd.Ready || len(rd.Reasons) != 1 || !strings.HasPrefix(rd.Reasons[0], "app sick: health_url") {
		t.Fatalf("control API readiness = %+v, %v", rd, err)
	}

	// Stopped on purpose: not wanted online, so not a reason.
	if _, err := td.act(api.ActionStop, "sick"); err != nil {
		t.Fatal(err)
	}
	td.waitStatus("sick", 1, "stopped")
	if code, body := probe(t, addr, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz with the sick app stopped = %d %q", code, body)
	}

	// A one-off job that ended by itself (autorestart off) is not wanted online either.
	job := td.app("job", td.script("job.sh", "exit 0"))
	job.Autorestart = false
	td.mustStart(job)
	td.waitStatus("job", 1, "stopped")
	if code, body := probe(t, addr, "/readyz"); code != 200 {
		t.Fatalf("/readyz with a finished job = %d %q", code, body)
	}

	td.d.beginDrain("SIGTERM")
	if code, body := probe(t, addr, "/readyz"); code != 503 || !strings.Contains(body, "stopping") {
		t.Fatalf("/readyz while draining = %d %q", code, body)
	}
	if code, _ := probe(t, addr, "/healthz"); code != 200 {
		t.Fatalf("/healthz while draining = %d, want 200 (alive)", code)
	}
}

// TestProbeReadyCountsProcesses: an app short of its processes is named, with how many are
// online and what the others are doing.
func TestProbeReadyCountsProcesses(t *testing.T) {
	td := metricsDaemon(t)
	crash := td.app("crash", td.script("crash.sh", "exit 3"))
	crash.MaxRestarts = 1
	crash.MinUptime = 10000
	td.mustStart(crash)
	td.waitStatus("crash", 1, "errored")
	rd := td.d.Readiness(context.Background())
	if rd.Ready || len(rd.Reasons) != 1 || rd.Reasons[0] != "app crash: 0 of 1 processes ready (1 errored)" {
		t.Fatalf("readiness = %+v", rd)
	}
	td.d.beginDrain("SIGTERM")
	if r := td.d.StopReport(); len(r.Errored) != 1 || r.Errored[0] != "crash" || r.Signal != "SIGTERM" {
		t.Fatalf("stop report = %+v", r)
	}
}

// TestProbeReadyWaitsForListen: a cluster worker is online as soon as it runs (as in PM2), but
// the app is not ready until it listens: a pod must not get traffic its workers refuse.
func TestProbeReadyWaitsForListen(t *testing.T) {
	td := metricsDaemon(t)
	slow := td.nodeServer("slow", cortest.FreePort(t))
	// It listens only once the file exists; listen_timeout is long enough not to pass.
	gate := filepath.Join(td.dir, "listen-now")
	if err := os.WriteFile(slow.Script, []byte(`const fs = require('fs');
const t = setInterval(() => {
  if (!fs.existsSync(`+strconv.Quote(gate)+`)) return;
  clearInterval(t);
  require('http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT));
}, 20);
`), 0o644); err != nil {
		t.Fatal(err)
	}
	slow.ListenTimeout = 600000
	td.mustStart(slow)
	td.waitStatus("slow", 1, "online")
	rd := td.d.Readiness(context.Background())
	if rd.Ready || len(rd.Reasons) != 1 || rd.Reasons[0] != "app slow: 0 of 1 processes ready (1 online, not ready yet)" {
		t.Fatalf("readiness before listen = %+v", rd)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cortest.WaitFor(t, "slow ready once it listens", 20*time.Second, func() bool {
		return td.d.Readiness(context.Background()).Ready
	})
}

// TestProbeReadyAsksEachWorker: with health_url, /readyz asks every worker on its own: a
// cluster worker through a connection handed to it alone, under every sched_policy; a
// fork-mode process on its own port (increment_var). A worker that is up but answers 503
// keeps the daemon not ready, named with its pid, every time (not only when the rotation
// happens to reach it), and the healthy one is not named; once it heals, ready.
func TestProbeReadyAsksEachWorker(t *testing.T) {
	path := func(int) string { return "/healthz" }
	fullURL := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d/healthz", port) }
	for _, tc := range []struct {
		name, mode, policy string
		healthURL          func(port int) string // health_url, for the app's port
		shown              func(port int) string // the health_url in worker 1's reason
	}{
		{"cluster rr", spec.ModeCluster, spec.PolicyRoundRobin, path, path},
		{"cluster rr, a full URL on the app's port", spec.ModeCluster, spec.PolicyRoundRobin, fullURL, fullURL},
		{"cluster shared", spec.ModeCluster, spec.PolicyShared, path, path},
		{"cluster reuseport", spec.ModeCluster, spec.PolicyReuseport, path, path},
		{"fork increment_var", spec.ModeFork, "", path, func(port int) string { return fmt.Sprintf("http://localhost:%d/healthz", port+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := metricsDaemon(t)
			addr := td.d.HTTPAddr()
			port := freePortPair(t)
			web := td.nodeServer("web", port)
			// Instance 1 is sick until the file exists.
			healed := filepath.Join(td.dir, "healed")
			if err := os.WriteFile(web.Script, []byte(`const fs = require('fs');
require('http').createServer((q, s) => {
  const sick = process.env.NODE_APP_INSTANCE === '1' && !fs.existsSync(`+strconv.Quote(healed)+`);
  s.statusCode = q.url === '/healthz' && sick ? 503 : 200;
  s.end(String(process.pid));
}).listen(Number(process.env.PORT));
`), 0o644); err != nil {
				t.Fatal(err)
			}
			web.Instances = 2
			web.HealthURL = tc.healthURL(port)
			web.ExecMode = tc.mode
			web.SchedPolicy = tc.policy
			if tc.mode == spec.ModeFork {
				web.IncrementVar = "PORT"
			}
			td.mustStart(web)
			td.waitStatus("web", 2, "online")
			sick := 0
			for _, p := range td.list() {
				if p.Name == "web" && p.ID == 1 {
					sick = p.PID
				}
			}
			want := fmt.Sprintf("app web: worker 1 (pid %d): health_url %s: 503 Service Unavailable", sick, tc.shown(port))
			// A fork-mode process is ready once it runs; both must listen before the question.
			cortest.WaitFor(t, "both workers listening, worker 1 sick", 20*time.Second, func() bool {
				rd := td.d.Readiness(context.Background())
				return len(rd.Reasons) == 1 && rd.Reasons[0] == want
			})
			for i := range 8 {
				code, body := probe(t, addr, "/readyz")
				if code != 503 || body != "not ready:\n  "+want+"\n" {
					t.Fatalf("/readyz %d with worker 1 sick = %d %q, want 503 naming worker 1 alone: %q", i, code, body, want)
				}
			}
			rd, err := td.cl.Ready(context.Background())
			if err != nil || rd.Ready || len(rd.Reasons) != 1 || rd.Reasons[0] != want {
				t.Fatalf("control API readiness = %+v, %v", rd, err)
			}

			if err := os.WriteFile(healed, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if code, body := probe(t, addr, "/readyz"); code != 200 || body != "ready\n" {
					t.Fatalf("/readyz %d with both workers healthy = %d %q", i, code, body)
				}
			}
		})
	}
}

// freePortPair returns a port p such that p and p+1 were both free a moment ago (for
// increment_var: instance 0 on p, instance 1 on p+1).
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		a, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", ":"+strconv.Itoa(p+1))
		a.Close()
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}
