package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
	"github.com/corral-pm/corral/internal/web"
)

// webHistory is the dashboard's chart of process id, as the daemon now running serves it.
func (kd *keptDaemon) webHistory(id int) []web.Point {
	kd.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := kd.cl.Web(ctx)
	if err != nil || info.Token == "" {
		kd.t.Fatalf("GET /v1/web: %+v %v", info, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+kd.metrics+"/web/api/state", nil)
	req.Header.Set("Authorization", "Bearer "+info.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		kd.t.Fatalf("GET /web/api/state: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st WebState
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		kd.t.Fatalf("GET /web/api/state: %d %s", resp.StatusCode, b)
	}
	return st.History[id]
}

func (kd *keptDaemon) alerts() api.AlertsResponse {
	kd.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kd.cl.Alerts(ctx)
	if err != nil {
		kd.t.Fatalf("GET /v1/alerts: %v", err)
	}
	return resp
}

// notifications are the lines the alert command wrote, one per notification.
func notifications(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "/"))
}

// TestKeptDaemonKeepsHistory: the metrics history passes to the daemon that takes over after a
// SIGKILL, and to the one after a hot upgrade: an alert firing and notified stays firing, with its since, and is not notified
// again (its resolution is, once); the transitions `corral alerts` lists are kept; the
// dashboard's charts keep their points.
func TestKeptDaemonKeepsHistory(t *testing.T) {
	kd := startKept(t)
	notes := filepath.Join(kd.dir, "notifications")
	okFile := filepath.Join(kd.dir, "ok")
	flaky := kd.app("flaky", kd.script("flaky.sh", fmt.Sprintf("[ -f %s ] || exit 1\nexec sleep 100000", okFile)))
	flaky.MaxRestarts, flaky.RestartDelay = 1, 0
	flaky.Alerts = &spec.Alerts{Rules: map[string]spec.AlertRule{alerts.Errored: {}}, Repeat: spec.Millis(time.Hour / time.Millisecond),
		Notify: []spec.AlertSink{{Command: fmt.Sprintf(`echo "$CORRAL_ALERT_RULE $CORRAL_ALERT_STATE" >> %s`, notes)}}}
	kd.mustStart(kd.sleeper("idle"), flaky)
	idle := kd.waitStatus("idle", 1, "online")[0].ID

	testutil.WaitFor(t, "the errored alert to be notified", 30*time.Second, func() bool {
		return slices.Equal(notifications(t, notes), []string{"errored/firing"})
	})
	// Enough samples that the history was written after the alert (every historyEvery).
	samplesThen := len(kd.webHistory(idle))
	testutil.WaitFor(t, "samples for a periodic write of the history", 30*time.Second, func() bool {
		return len(kd.webHistory(idle)) >= samplesThen+2*historyEvery
	})
	before := kd.alerts()
	chart := kd.webHistory(idle)
	if len(before.Firing) != 1 || before.Firing[0].Rule != alerts.Errored || len(before.Recent) != 1 {
		t.Fatalf("before the kill: firing %+v, recent %+v", before.Firing, before.Recent)
	}

	v := kd.waitDaemon(0)
	if err := syscall.Kill(v.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	kd.waitDaemon(v.PID)

	after := kd.alerts()
	if len(after.Firing) != 1 || after.Firing[0].Rule != alerts.Errored || !after.Firing[0].Since.Equal(before.Firing[0].Since) {
		t.Fatalf("after the kill, firing %+v; before %+v", after.Firing, before.Firing)
	}
	if len(after.Recent) != 1 || !after.Recent[0].Since.Equal(before.Recent[0].Since) {
		t.Fatalf("after the kill, the transitions %+v; before %+v", after.Recent, before.Recent)
	}
	kept := kd.webHistory(idle)
	if len(kept) == 0 || kept[0].T != chart[0].T || len(kept) < len(chart)-historyEvery {
		t.Fatalf("after the kill, the chart has %d points from %d; before, %d from %d", len(kept), pointT(kept), len(chart), chart[0].T)
	}

	// A hot upgrade writes the history last thing: nothing of it is lost.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	v = kd.waitDaemon(0)
	chart = kd.webHistory(idle)
	if _, err := kd.cl.Update(context.Background(), api.UpdateRequest{Binary: self}); err != nil {
		t.Fatal(err)
	}
	kd.waitDaemon(v.PID)
	if upgraded := kd.alerts(); len(upgraded.Firing) != 1 || !upgraded.Firing[0].Since.Equal(before.Firing[0].Since) || len(upgraded.Recent) != 1 {
		t.Fatalf("after the upgrade, firing %+v, recent %+v", upgraded.Firing, upgraded.Recent)
	}
	if kept := kd.webHistory(idle); len(kept) < len(chart) || kept[0].T != chart[0].T {
		t.Fatalf("after the upgrade, the chart has %d points from %d; before, %d from %d", len(kept), pointT(kept), len(chart), chart[0].T)
	}

	// The next notification of the errored alert is its resolution: nothing was sent again
	// (a sink's notifications go out in order).
	if err := os.WriteFile(okFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, err := kd.act(api.ActionRestart, "flaky"); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("restart flaky: %v %v", err, resp.Errors)
	}
	testutil.WaitFor(t, "the errored alert to resolve", 30*time.Second, func() bool {
		return len(notifications(t, notes)) >= 2
	})
	if got := notifications(t, notes); !slices.Equal(got, []string{"errored/firing", "errored/resolved"}) {
		t.Fatalf("notifications %v, want the firing once, then the resolution", got)
	}
}

func pointT(pts []web.Point) int64 {
	if len(pts) == 0 {
		return 0
	}
	return pts[0].T
}

// TestKeptDaemonKeepsRequestCounts: a cluster app's request counts go on across a SIGKILL of
// the daemon: the next daemon shows them at once, and the workers' next reports add only what
// they answered since (nothing counted twice).
func TestKeptDaemonKeepsRequestCounts(t *testing.T) {
	kd := startKept(t)
	port := freePort(t)
	app := kd.nodeServer("web", port)
	app.Instances = 2
	kd.mustStart(app)
	first := kd.waitStatus("web", 2, "online")[0].ID
	total := func() uint64 {
		var n uint64
		for _, p := range kd.list() {
			if rs := p.RequestStats(); p.Name == "web" && rs != nil {
				n += rs.Requests
			}
		}
		return n
	}
	getRoot(t, port, 30)
	testutil.WaitFor(t, "the workers to report 30 requests", 30*time.Second, func() bool { return total() == 30 })
	// Enough samples for a periodic write of the history after the reports.
	samplesThen := len(kd.webHistory(first))
	testutil.WaitFor(t, "samples for a periodic write of the history", 30*time.Second, func() bool {
		return len(kd.webHistory(first)) >= samplesThen+2*historyEvery
	})

	v := kd.waitDaemon(0)
	if err := syscall.Kill(v.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	kd.waitDaemon(v.PID)
	if n := total(); n != 30 {
		t.Fatalf("after the kill, %d requests; before, 30", n)
	}
	getRoot(t, port, 20)
	testutil.WaitFor(t, "the workers to report 20 more", 30*time.Second, func() bool { return total() >= 50 })
	if n := total(); n != 50 {
		t.Fatalf("after 20 more requests, %d; want 50", n)
	}
}
