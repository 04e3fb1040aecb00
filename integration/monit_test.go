package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// TestMonitSnapshotPiped: with its output piped, monit prints one plain snapshot, with the
// connections and request rates of a cluster app's workers, and exits 0.
func TestMonitSnapshotPiped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	startCluster(t, e, "cluster_http.js", 2)
	r := e.ok("monit")
	for _, want := range []string{"cluster_http", "│ conns │ req/s │", "Connection distribution", "Alerts: none firing", "Latest log lines"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("monit's snapshot lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "\x1b") {
		t.Errorf("monit's snapshot holds escape codes:\n%q", r.stdout)
	}
}

// TestMonitShowsFiringAlerts: a crash-looping app's crash_rate alert appears in monit.
func TestMonitShowsFiringAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [{ name: 'crashy', script: './crash.sh',
  restart_delay: 100, max_restarts: 1000, alerts: { crash_rate: '2/1m' } }] };`)
	e.ok("start", "ecosystem.config.js")
	e.waitFor("monit to show the firing crash_rate alert", 60*time.Second, func() bool {
		out := e.ok("monit", "--log-lines", "0").stdout
		return strings.Contains(out, "Alerts firing") && strings.Contains(out, "crash_rate")
	})
}

// TestMonitInTerminal: monit in a real terminal, against a real daemon and real processes: it
// draws the apps and their processes, the selection moves with the keys, the selected
// process's log history shows (its own lines only), r then y restarts exactly that process,
// and q quits with exit code 0 and leaves the alternate screen.
func TestMonitInTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("alpha.sh", "#!/bin/sh\necho \"alpha says hello\"\nexec sleep 100000\n")
	e.write("beta.sh", "#!/bin/sh\necho \"beta instance $NODE_APP_INSTANCE says hello\"\nexec sleep 100000\n")
	for _, f := range []string{"alpha.sh", "beta.sh"} {
		if err := os.Chmod(e.dir+"/"+f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.ok("start", "alpha.sh")
	e.ok("start", "beta.sh", "-i", "2")
	cl := e.client()
	processes := func() []api.Process {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		procs, err := cl.Processes(ctx, false)
		if err != nil {
			t.Fatalf("list the processes: %v", err)
		}
		return procs
	}
	// Every line is in its log file before monit starts: what monit shows is history.
	e.waitFor("the three processes online with their first line written", 30*time.Second, func() bool {
		procs := processes()
		if len(procs) != 3 {
			return false
		}
		for _, p := range procs {
			if p.Status != "online" || !strings.Contains(readFile(p.OutLog), "says hello") {
				return false
			}
		}
		return true
	})
	before := map[int]int{}
	for _, p := range processes() {
		before[p.ID] = p.Restarts
	}

	term := e.runInTerminal("monit", "--interval", "200ms")
	term.waitScreen("the apps and their processes", 60*time.Second, func(s string) bool {
		return strings.Contains(s, "alpha") && strings.Contains(s, "beta") && strings.Contains(s, "3 processes") &&
			strings.Contains(s, "Alerts: none firing")
	})
	if !term.altScreen() {
		t.Errorf("monit draws outside the alternate screen")
	}
	// The rows: alpha, its process 0, beta, its processes 1 and 2. Down to beta[2], a key at a
	// time, each seen to move the selection before the next.
	for _, step := range []struct{ key, title string }{
		{"j", "╭─ alpha[0] · online"},
		{"\x1b[B", "╭─ beta · 2 processes"}, // the down arrow
		{"j", "╭─ beta[1] · online"},
		{"k", "╭─ beta · 2 processes"},
		{"jj", "╭─ beta[2] · online"},
	} {
		term.press(step.key)
		term.waitScreen(fmt.Sprintf("%q to select %q", step.key, step.title), 30*time.Second, func(s string) bool {
			return strings.Contains(s, step.title)
		})
	}
	term.waitScreen("beta[2]'s log history", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "Logs of beta[2]") && strings.Contains(s, "2|beta | beta instance 1 says hello")
	})
	if s := term.text(); strings.Contains(s, "beta instance 0 says hello") || strings.Contains(s, "alpha says hello") {
		t.Errorf("the log pane of beta[2] shows other processes' lines:\n%s", s)
	}

	term.press("r")
	term.waitScreen("the confirmation line", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "Restart beta[2]? y/n")
	})
	term.press("y")
	e.waitFor("process 2 restarted", 60*time.Second, func() bool {
		for _, p := range processes() {
			if p.ID == 2 {
				return p.Restarts == before[2]+1 && p.Status == "online"
			}
		}
		return false
	})
	for _, p := range processes() {
		if p.ID != 2 && p.Restarts != before[p.ID] {
			t.Errorf("%s[%d] restarted too: %d restarts, had %d", p.Name, p.ID, p.Restarts, before[p.ID])
		}
	}
	term.waitScreen("the restart reported", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "restart beta[2]: done") && strings.Contains(s, "↺ 1")
	})

	term.quit("q", "monit quit with q")
	// Fixed colours only: nothing asks the terminal for its background.
	if out := term.output(); strings.Contains(string(out), "\x1b]11;?") {
		t.Errorf("monit queried the terminal's background colour")
	}
}

// TestMonitCtrlCInTerminal: Ctrl-C quits monit as q does: exit code 0, the terminal given back.
func TestMonitCtrlCInTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("idle.sh", "#!/bin/sh\nexec sleep 100000\n")
	if err := os.Chmod(e.dir+"/idle.sh", 0o755); err != nil {
		t.Fatal(err)
	}
	e.ok("start", "idle.sh")
	term := e.runInTerminal("monit")
	term.waitScreen("the app", 60*time.Second, func(s string) bool {
		return strings.Contains(s, "idle") && strings.Contains(s, "1/1 online")
	})
	term.quit("\x03", "monit ended by Ctrl-C")
}
