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
	for _, want := range []string{"cluster_http", "│ conns │ req/s │", "Latest log lines"} {
		if !strings.Contains(s, want) {
			t.Fatalf("monit output lacks %q:\n%s", want, s)
		}
	}
}
