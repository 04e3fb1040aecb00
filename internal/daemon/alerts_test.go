package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/secrets"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// receiver is a webhook sink that keeps what it receives.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []api.Alert
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var a api.Alert
		if err := json.NewDecoder(req.Body).Decode(&a); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, a)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// find returns the first alert received for rule in state.
func (r *receiver) find(rule, state string) (api.Alert, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.got {
		if a.Rule == rule && a.State == state {
			return a, true
		}
	}
	return api.Alert{}, false
}

func waitCond(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAlertsCrashRate: a crash-looping app fires crash_rate to the daemon-wide webhook (read
// from the settings file while the daemon runs), GET /v1/alerts and /metrics show it, and it
// resolves once the app is stopped and the window has passed.
func TestAlertsCrashRate(t *testing.T) {
	td := metricsDaemon(t)
	rcv := newReceiver(t)
	if err := settings.Save(td.d.paths.Settings, map[string]string{settings.AlertsWebhook: rcv.srv.URL + "/hook"}); err != nil {
		t.Fatal(err)
	}
	app := td.app("crasher", td.script("crash.sh", "sleep 0.2; exit 3"))
	app.Alerts = &spec.Alerts{Rules: map[string]spec.AlertRule{
		alerts.CrashRate: {Threshold: 3, Window: 3000},
	}, Repeat: 3600000}
	td.mustStart(app)

	var fired api.Alert
	waitCond(t, "crash_rate firing at the webhook", 60*time.Second, func() bool {
		var ok bool
		fired, ok = rcv.find(alerts.CrashRate, api.AlertFiring)
		return ok
	})
	if fired.App != "crasher" || fired.Value < 3 || fired.Spec != "3/3s" || !strings.Contains(fired.Text, "crashed") || fired.ID != nil {
		t.Errorf("alert %+v", fired)
	}
	resp, err := td.cl.Alerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Firing) != 1 || resp.Firing[0].Rule != alerts.CrashRate || len(resp.Sinks) != 1 || resp.Sinks[0].Sent == 0 {
		t.Errorf("GET /v1/alerts: %+v", resp)
	}
	fams := parseText(t, must(scrape(t, td.d.HTTPAddr(), "")))
	if v := value(fams, "corral_alerts_firing", map[string]string{"app": "crasher", "rule": "crash_rate"}); v == nil || *v != 1 {
		t.Errorf("corral_alerts_firing: %v", v)
	}
	if v := value(fams, "corral_alert_notifications_total", map[string]string{"sink": "webhook", "result": "sent"}); v == nil || *v < 1 {
		t.Errorf("corral_alert_notifications_total sent: %v", v)
	}
	problems, err := promlint.New(strings.NewReader(must(scrape(t, td.d.HTTPAddr(), "")))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if om := must(scrape(t, td.d.HTTPAddr(), "application/openmetrics-text")); !strings.Contains(om, "corral_alert_notifications_total{") {
		t.Errorf("OpenMetrics lacks the notifications counter")
	}

	if _, err := td.act(api.ActionStop, "crasher"); err != nil {
		t.Fatal(err)
	}
	waitCond(t, "crash_rate resolved at the webhook", 60*time.Second, func() bool {
		_, ok := rcv.find(alerts.CrashRate, api.AlertResolved)
		return ok
	})
	if log := readLog(t, td); !strings.Contains(log, "alert firing: crasher crashed") || !strings.Contains(log, "alert resolved: resolved: crasher crash_rate") {
		t.Errorf("corral.log lacks the alerts:\n%s", log)
	}

	// alerts test reaches the webhook and says so.
	test, err := td.cl.TestAlerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(test.Results) != 2 || test.Results[1].Kind != "webhook" || test.Results[1].Error != "" {
		t.Errorf("test results %+v", test.Results)
	}
	if _, ok := rcv.find(alerts.Test, api.AlertFiring); !ok {
		t.Error("the webhook got no test notification")
	}
}

func readLog(t *testing.T, td *testDaemon) string {
	t.Helper()
	b, err := os.ReadFile(td.d.paths.DaemonLog)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAlertSinksSealedAndMasked: a webhook URL is a credential: sealed in the saved list,
// masked in listings, given back whole by openAlerts.
func TestAlertSinksSealedAndMasked(t *testing.T) {
	sealer, err := secrets.OpenSealer(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	url := "https://hooks.slack.com/services/T000/B000/XXXX"
	a := &spec.Alerts{Notify: []spec.AlertSink{{Webhook: url}, {Command: "/bin/page"}}}
	sealed := sealAlerts(sealer, a)
	if strings.Contains(sealed.Notify[0].Webhook, "XXXX") || !secrets.IsSealed(sealed.Notify[0].Webhook) || a.Notify[0].Webhook != url {
		t.Errorf("sealed %+v (original %+v)", sealed.Notify, a.Notify)
	}
	opened, err := openAlerts(sealer, sealed)
	if err != nil || opened.Notify[0].Webhook != url || opened.Notify[1].Command != "/bin/page" {
		t.Errorf("opened %+v, %v", opened, err)
	}
	if m := maskAlerts(a); m.Notify[0].Webhook != "https://hooks.slack.com/services/********" {
		t.Errorf("masked %+v", m.Notify)
	}
	if sealAlerts(sealer, nil) != nil || maskAlerts(nil) != nil {
		t.Error("nil alerts are not nil")
	}
}
