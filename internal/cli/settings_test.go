package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSettings: set, get and unset edit settings.json in the home (0600) without a daemon, and
// refuse unknown keys and bad addresses naming the setting and the fix. The whole session is
// one golden file.
func TestSettings(t *testing.T) {
	e := newHome(t)
	var out strings.Builder
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"get"}, 0},
		{[]string{"set", "http.listen", "127.0.0.1:9615"}, 0},
		{[]string{"get", "http.listen"}, 0},
		{[]string{"get"}, 0},
		{[]string{"set", "http.listen", "9615"}, 1},
		{[]string{"set", "http.listen", ":9615"}, 1},
		{[]string{"set", "http.listen", "127.0.0.1:99999"}, 1},
		{[]string{"set", "http.lisen", "127.0.0.1:9615"}, 1},
		{[]string{"get", "nosuch"}, 1},
		{[]string{"set", "http.listen", "0.0.0.0:9615"}, 0},
		{[]string{"unset", "http.listen"}, 0},
		{[]string{"get", "http.listen"}, 0},
		{[]string{"set", "http.listen", "[::1]:9615"}, 0},
		{[]string{"set", "http.listen", ""}, 0},
		{[]string{"set", "alerts.webhook", "https://hooks.slack.com/services/T000/B000/XXXX"}, 0},
		{[]string{"set", "alerts.webhook", "hooks.slack.com/services/T000"}, 1},
		{[]string{"set", "alerts.command", "/usr/local/bin/page-me --now"}, 0},
		{[]string{"unset", "alerts.webhook"}, 0},
		{[]string{"get", "alerts.webhook"}, 0},
		{[]string{"set", "alerts.webhook", "https://hooks.slack.com/services/T000/B000/XXXX"}, 0},
		{[]string{"get"}, 0},
		{[]string{"get", "alerts.webhook", "--reveal"}, 0},
	} {
		r := e.run(tc.args...)
		if r.code != tc.code {
			t.Errorf("exit %d, want %d:\n%s", r.code, tc.code, r)
		}
		out.WriteString(e.normalize(r.String()) + "\n")
	}
	golden(t, "settings.golden", out.String())

	e.ok("set", "http.listen", "localhost:9615")
	path := filepath.Join(e.home, "settings.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("settings.json has mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), `"http.listen": "localhost:9615"`) {
		t.Errorf("settings.json: %s %v", data, err)
	}
}
