package integration

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMonit: the live view shows the table, with the connections and request rates of a
// cluster app's workers, and its log lines, refreshing until interrupted.
func TestMonit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	startCluster(t, e, "cluster_http.js", 2)
	monit := e.background("monit", "--interval", "200ms")
	e.waitFor("monit to draw twice", 30*time.Second, func() bool {
		return strings.Count(monit.stdout.String(), "corral monit") >= 2
	})
	monit.signal(os.Kill)
	monit.wait(20 * time.Second)
	s := monit.stdout.String()
	for _, want := range []string{"cluster_http", "│ conns │ req/s │", "Alerts: none firing", "Latest log lines"} {
		if !strings.Contains(s, want) {
			t.Fatalf("monit output lacks %q:\n%s", want, s)
		}
	}
}

// TestMonitShowsFiringAlerts: a crash-looping app's crash_rate alert appears in monit.
func TestMonitShowsFiringAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [{ name: 'crashy', script: './crash.sh',
  restart_delay: 100, max_restarts: 1000, alerts: { crash_rate: '2/1m' } }] };`)
	e.ok("start", "ecosystem.config.js")
	monit := e.background("monit", "--interval", "200ms")
	e.waitFor("monit to show the firing crash_rate alert", 60*time.Second, func() bool {
		return strings.Contains(monit.stdout.String(), "Alerts firing") && strings.Contains(monit.stdout.String(), "crash_rate")
	})
	monit.signal(os.Kill)
	monit.wait(20 * time.Second)
}
