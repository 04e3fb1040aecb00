package cli

import (
	"strings"
	"testing"
)

// TestGoldenVerifyRefused: what verify says when it cannot run (no such app, an app in fork
// mode, bad flags), and that it then changes nothing. The checklist itself is pinned by
// internal/verify's golden file and run against real apps in integration/verify_test.go.
func TestGoldenVerifyRefused(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web", "-i", "2")
	e.waitOnline("web", 2)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no_app", []string{"verify"}},
		{"unknown_app", []string{"verify", "nosuch"}},
		{"fork_mode", []string{"verify", "web"}},
		{"min_share", []string{"verify", "web", "--min-share", "2"}},
		{"memory_slope", []string{"verify", "web", "--memory-slope", "1MB/week"}},
		{"skip", []string{"verify", "web", "--skip", "relaod"}},
		{"path", []string{"verify", "web", "--path", "health"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if !strings.HasPrefix(r.stderr, "[corral] error: ") {
				t.Errorf("stderr does not start with the error prefix: %q", r.stderr)
			}
			golden(t, "verify_"+tc.name+".golden", e.normalize(r.String()))
		})
	}
	for _, p := range e.list() {
		if p.Name != "web" || p.Status != "online" || p.Restarts != 0 {
			t.Errorf("a refused verify touched %s[%d]: %s, %d restarts", p.Name, p.ID, p.Status, p.Restarts)
		}
	}
}
