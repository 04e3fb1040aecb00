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

// TestLoadAlertsFromAFile: in a JS file, the alerts attribute is read with its JS values, a
// relative command is taken from the file's directory (not the app's cwd), and a bad rule is
// reported with the file, the app and the rule.
func TestLoadAlertsFromAFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"srv/app.js": "",
		"ecosystem.config.js": `module.exports = { apps: [{
			name: "web", script: "app.js", cwd: "srv",
			alerts: { crash_rate: '3/10s', memory_growth: '20M/20s', notify: [{ command: './page-me.sh --loud' }] },
		}] }`,
		"bad.config.js": `module.exports = { apps: [{ name: "web", script: "srv/app.js", alerts: { event_loop: 'slow' } }] }`,
	})
	res, err := Load(filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	a := res.Apps[0].Alerts
	if a == nil || a.Rules[alerts.CrashRate].Window != 10000 || a.Rules[alerts.MemoryGrowth].Threshold != 20<<20 ||
		len(a.Notify) != 1 || a.Notify[0].Command != filepath.Join(dir, "page-me.sh")+" --loud" {
		t.Errorf("alerts %+v", a)
	}
	bad := filepath.Join(dir, "bad.config.js")
	_, err = Load(bad, testOptions(dir))
	wantErrorLines(t, err, bad+`: app "web" (apps[0]): alerts: event_loop: "slow": the threshold before '/' is not understood; use a value like '200ms/30s'`)
}
