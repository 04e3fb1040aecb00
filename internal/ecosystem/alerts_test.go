package ecosystem

import (
	"path/filepath"
	"testing"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/spec"
)

func TestAlertsAttribute(t *testing.T) {
	runAttrCases(t, []attrCase{
		{name: "absent: the daemon's defaults", raw: map[string]any{}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Alerts != nil {
				t.Errorf("alerts %+v", a.Alerts)
			}
		}},
		{name: "false", raw: map[string]any{"alerts": false}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Alerts == nil || !a.Alerts.Off {
				t.Errorf("alerts %+v", a.Alerts)
			}
		}},
		{name: "rules, sinks and a limit from max_memory_restart", raw: map[string]any{
			"max_memory_restart": "100M",
			"alerts": map[string]any{"crash_rate": "3/10s", "event_loop": false,
				"notify": []any{map[string]any{"command": "./page-me.sh"}, map[string]any{"webhook": "https://hooks.example.com/a/b"}}},
		}, check: func(t *testing.T, a spec.App, dir string) {
			r := a.Alerts.Rules
			if r[alerts.CrashRate].Threshold != 3 || r[alerts.CrashRate].Window != 10000 {
				t.Errorf("crash_rate %+v", r[alerts.CrashRate])
			}
			if _, on := r[alerts.EventLoop]; on {
				t.Error("event_loop is on")
			}
			if r[alerts.Memory].Threshold != 90<<20 {
				t.Errorf("memory %+v", r[alerts.Memory])
			}
			if n := a.Alerts.Notify; len(n) != 2 || n[0].Command != filepath.Join(dir, "page-me.sh") {
				t.Errorf("notify %+v (dir %s)", n, dir)
			}
		}},
		{name: "camelCase attribute name", raw: map[string]any{"alerts": map[string]any{"crashRate": "5/1m"}}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Alerts.Rules[alerts.CrashRate].Threshold != 5 {
				t.Errorf("alerts %+v", a.Alerts)
			}
		}},
		{name: "a bad rule names the attribute and the fix", raw: map[string]any{"alerts": map[string]any{"crash_rate": "lots"}},
			wantErr: `alerts: crash_rate: "lots" has no window; use a value like '3/5m'`},
		{name: "a bad sink", raw: map[string]any{"alerts": map[string]any{"notify": []any{map[string]any{"webhook": "hooks.slack.com/x"}}}},
			wantErr: "alerts: notify: [0].webhook: not an http or https URL"},
		{name: "a wrong type", raw: map[string]any{"alerts": "on"}, wantErr: `alerts: is "on": use false, true, or an object`},
	})
}
