package cli

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/settings"
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

// TestSettingsLive: with a daemon running, `set http.listen` moves its HTTP listener at once
// and says where /metrics is; an address that is taken is refused with the fix, the daemon
// keeps its listener and the file keeps the previous value (so the next daemon starts);
// `unset` turns the listener off.
func TestSettingsLive(t *testing.T) {
	t.Setenv(settings.EnvHTTPListen, "")
	os.Unsetenv(settings.EnvHTTPListen) // restored by Setenv's cleanup
	e := newEnv(t)
	r := e.ok("set", "http.listen", "127.0.0.1:0")
	addr := e.d.HTTPAddr()
	if addr == "" || !strings.Contains(r.stdout, "[corral] http.listen = 127.0.0.1:0; the daemon serves /metrics on http://"+addr+"/metrics\n") {
		t.Fatalf("set with a daemon running (listener on %q):\n%s", addr, r)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics after set: %v", err)
	}
	resp.Body.Close()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r = e.fails(1, "set", "http.listen", busy.Addr().String())
	for _, want := range []string{"[corral] error: http.listen not applied: HTTP listener (setting http.listen) on " + busy.Addr().String(),
		"address already in use", "choose a free address with `corral set http.listen HOST:PORT`",
		"the daemon keeps serving /metrics on " + addr, "http.listen stays 127.0.0.1:0"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("set to a busy address lacks %q:\n%s", want, r)
		}
	}
	if got := e.d.HTTPAddr(); got != addr {
		t.Errorf("after the refused set the listener is on %q, want %s", got, addr)
	}
	if r := e.ok("get", "http.listen"); r.stdout != "127.0.0.1:0\n" {
		t.Errorf("the refused value was kept in the file:\n%s", r)
	}

	r = e.ok("unset", "http.listen")
	if r.stdout != "[corral] http.listen unset; the daemon's HTTP listener is off\n" || e.d.HTTPAddr() != "" {
		t.Errorf("unset with a daemon running (listener on %q):\n%s", e.d.HTTPAddr(), r)
	}
}
