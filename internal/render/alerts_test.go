package render

import (
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

func TestAlertsGolden(t *testing.T) {
	id := 3
	since := now.Add(-95 * time.Second)
	resp := api.AlertsResponse{
		Firing: []api.Alert{
			{App: "api", Rule: "memory_growth", ID: &id, State: api.AlertFiring, Value: 60 << 20, Threshold: 50 << 20, Unit: "bytes",
				Window: "10m", Spec: "50.0mb/10m", Text: "api[3] memory rose steadily by 60.0mb within 10m (threshold 50.0mb/10m)", Since: since, Time: now},
			{App: "web", Rule: "error_rate", State: api.AlertFiring, Value: 0.084, Threshold: 0.05, Unit: "ratio",
				Window: "5m", Spec: "5%/5m", Text: "web answered 8.4% of 1200 requests with 5xx within 5m (threshold 5%/5m)", Since: since, Time: now},
		},
		Recent: []api.Alert{
			{App: "web", Rule: "error_rate", State: api.AlertFiring, Text: "web answered 8.4% of 1200 requests with 5xx within 5m (threshold 5%/5m)", Since: since, Time: since},
			{App: "worker", Rule: "crash_rate", State: api.AlertResolved, Text: "resolved: worker crash_rate (firing since 2026-03-14T14:00:00Z)", Since: since, Time: since.Add(-time.Hour)},
		},
		Sinks: []api.SinkStats{
			{Kind: "webhook", Target: "https://hooks.slack.com/services/********", Sent: 4},
			{Kind: "command", Target: "/srv/web/page-me.sh", App: "web", Sent: 1, Failed: 1, Dropped: 2, LastError: "exit status 1 (after 3 attempts)"},
		},
	}
	goldenPair(t, "alerts", func(o Options) string { return Alerts(resp, o) })
	goldenPair(t, "monit_alerts", func(o Options) string { return MonitAlerts(resp.Firing, o) })
	if got := MonitAlerts(nil, Options{Now: now}); got != " Alerts: none firing\n" {
		t.Errorf("monit with no alert firing: %q", got)
	}
	golden(t, "alerts_none.golden", Alerts(api.AlertsResponse{}, Options{Now: now}))
	test := api.AlertTestResponse{Results: []api.AlertTestResult{
		{Kind: "log", Target: "/home/deploy/.corral/corral.log"},
		{Kind: "webhook", Target: "https://hooks.slack.com/services/********"},
		{Kind: "command", Target: "/srv/web/page-me.sh", App: "web", Error: "exit status 1 (after 3 attempts)"},
	}}
	goldenPair(t, "alerts_test", func(o Options) string { return AlertTest(test, o) })
}
