package alerts

import (
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		in      any
		check   func(t *testing.T, a spec.Alerts)
		wantErr string
	}{
		{name: "false turns every rule off", in: false, check: func(t *testing.T, a spec.Alerts) {
			if !a.Off {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "true is the defaults", in: true, check: func(t *testing.T, a spec.Alerts) {
			if len(a.Rules) != len(defaultRules) || a.Repeat.D() != DefaultRepeat {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "the issue's example", in: map[string]any{
			"crash_rate": "3/5m", "memory": "400M",
			"notify": []any{map[string]any{"webhook": "http://127.0.0.1:9000/hook"}, map[string]any{"command": "./page-me.sh --now"}},
		}, check: func(t *testing.T, a spec.Alerts) {
			if r := a.Rules[CrashRate]; r.Threshold != 3 || r.Window != 300000 {
				t.Errorf("crash_rate %+v", r)
			}
			if r := a.Rules[Memory]; r.Threshold != 400<<20 {
				t.Errorf("memory %+v", r)
			}
			if _, on := a.Rules[EventLoop]; !on {
				t.Error("the other rules keep their defaults")
			}
			if len(a.Notify) != 2 || a.Notify[0].Webhook != "http://127.0.0.1:9000/hook" || a.Notify[1].Command != "/eco/page-me.sh --now" {
				t.Errorf("notify %+v", a.Notify)
			}
		}},
		{name: "rules off and small windows", in: map[string]any{
			"errored": false, "uneven": false, "memoryGrowth": "20M/20s", "event_loop": "150ms", "error_rate": "2.5%/1m", "repeat": "1h",
		}, check: func(t *testing.T, a spec.Alerts) {
			if _, on := a.Rules[Errored]; on {
				t.Error("errored still on")
			}
			if _, on := a.Rules[Uneven]; on {
				t.Error("uneven still on")
			}
			if r := a.Rules[MemoryGrowth]; r.Threshold != 20<<20 || r.Window != 20000 {
				t.Errorf("memory_growth %+v", r)
			}
			if r := a.Rules[EventLoop]; r.Threshold != 150 || r.Window != 30000 {
				t.Errorf("event_loop %+v", r)
			}
			if r := a.Rules[ErrorRate]; r.Threshold != 0.025 || r.Window != 60000 {
				t.Errorf("error_rate %+v", r)
			}
			if a.Repeat != 3600000 {
				t.Errorf("repeat %v", a.Repeat)
			}
		}},
		{name: "not an object", in: "yes", wantErr: `is "yes": use false, true, or an object`},
		{name: "unknown rule", in: map[string]any{"crashrate": "3/5m"}, wantErr: "crashrate: unknown rule (the rules are crash_rate"},
		{name: "crash rate without window", in: map[string]any{"crash_rate": "3"}, wantErr: `crash_rate: "3" has no window; use a value like '3/5m'`},
		{name: "bad window", in: map[string]any{"crash_rate": "3/soon"}, wantErr: "the window after '/' is not a duration"},
		{name: "bad percentage", in: map[string]any{"error_rate": "5/5m"}, wantErr: "is not a percentage"},
		{name: "memory true", in: map[string]any{"memory": true}, wantErr: "memory: has no default"},
		{name: "errored as a string", in: map[string]any{"errored": "yes"}, wantErr: `errored: is "yes": use true or false`},
		{name: "short repeat", in: map[string]any{"repeat": "10s"}, wantErr: "repeat: 10s is shorter than a minute"},
		{name: "bad webhook", in: map[string]any{"notify": []any{map[string]any{"webhook": "ftp://x"}}}, wantErr: "notify: [0].webhook: not an http or https URL"},
		{name: "sink with both", in: map[string]any{"notify": []any{map[string]any{"webhook": "http://x/", "command": "true"}}}, wantErr: "exactly one of webhook and command"},
		{name: "sink with an unknown key", in: map[string]any{"notify": []any{map[string]any{"slack": "http://x/"}}}, wantErr: `unknown key "slack"`},
		{name: "every problem at once", in: map[string]any{"crash_rate": int64(3), "memory": "lots"}, wantErr: "crash_rate: is the number 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.in, ParseOptions{BaseDir: "/eco"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, a)
		})
	}
}

func TestMemoryDefaultFromMaxMemoryRestart(t *testing.T) {
	if _, on := Defaults(0).Rules[Memory]; on {
		t.Error("memory is on without a limit")
	}
	if r := Defaults(1000).Rules[Memory]; r.Threshold != 900 {
		t.Errorf("memory %+v, want 90%% of max_memory_restart", r)
	}
	app := spec.App{MaxMemoryRestart: 1000}
	if r := Effective(&app).Rules[Memory]; r.Threshold != 900 {
		t.Errorf("effective memory %+v", r)
	}
}

func TestMaskTarget(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/XXXX": "https://hooks.slack.com/services/********",
		"http://127.0.0.1:9000/hook":                      "http://127.0.0.1:9000/hook",
		"https://user:pw@example.com/x?token=abc":         "https://********@example.com/x?********",
		"http://example.com":                              "http://example.com",
	} {
		if got := MaskTarget(KindWebhook, in); got != want {
			t.Errorf("MaskTarget(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MaskTarget(KindCommand, "curl https://u:secret@x/ -d token=abc"); strings.Contains(got, "secret") || strings.Contains(got, "abc") {
		t.Errorf("command not masked: %q", got)
	}
}

func TestValidate(t *testing.T) {
	good := Defaults(0)
	good.Notify = []spec.AlertSink{{Webhook: "http://127.0.0.1:9/x"}, {Command: "true"}}
	if err := Validate(&good); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := Validate(nil); err != nil {
		t.Errorf("nil: %v", err)
	}
	for name, a := range map[string]spec.Alerts{
		"unknown rule":   {Rules: map[string]spec.AlertRule{"crashes": {}}},
		"negative":       {Rules: map[string]spec.AlertRule{CrashRate: {Threshold: -1}}},
		"empty sink":     {Notify: []spec.AlertSink{{}}},
		"not a URL":      {Notify: []spec.AlertSink{{Webhook: "file:///etc/passwd"}}},
		"two in one":     {Notify: []spec.AlertSink{{Webhook: "http://x/", Command: "true"}}},
		"negative again": {Repeat: -1},
	} {
		if err := Validate(&a); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
