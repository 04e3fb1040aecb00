package integration

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentCommands runs the commands an operator's scripts may run at once, through the
// real CLI: `corral start eco.config.js & corral delete conc & corral scale conc 4`. Whatever
// order the daemon takes them in, the end must be consistent: either the app is gone (its
// port closed, none of its processes running) or every command reaches it by name, and no
// process runs that `jlist` does not list. The daemon before the app table had one owner
// failed this in about half of the runs: the app was listed online but `delete`, `stop` and
// `restart` answered "not found", its port stayed open, and extra workers crash-looped on
// EADDRINUSE.
func TestConcurrentCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	port := freePort(t)
	e.write("eco.config.js", fmt.Sprintf(`module.exports = { apps: [
		{ name: 'conc', script: './cluster_http.js', exec_mode: 'cluster', instances: 2, env: { PORT: '%d' } },
	] }`, port))
	for run := range 6 {
		var wg sync.WaitGroup
		for _, args := range [][]string{{"start", "eco.config.js"}, {"delete", "conc"}, {"scale", "conc", "4"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.run(append(args, "-s")...) // any of them may fail: the app may not exist yet, or any more
			}()
		}
		wg.Wait()
		e.waitFor(fmt.Sprintf("run %d to end consistent", run), 60*time.Second, func() bool {
			problems := concInconsistencies(e, port)
			if len(problems) > 0 {
				t.Logf("run %d: %s", run, strings.Join(problems, "; "))
			}
			return len(problems) == 0
		})
		// Every command reaches the app if it is listed.
		if len(e.jlist()) > 0 {
			for _, cmd := range []string{"restart", "stop"} {
				if r := e.run(cmd, "conc", "-s"); r.code != 0 {
					t.Fatalf("run %d: the app is listed but `%s conc` fails:\n%s", run, cmd, r)
				}
			}
		}
		e.ok("delete", "all", "-s")
		e.waitFor("the port to close after delete all", 20*time.Second, func() bool { return !tcpOpen(port) })
		if left := homePIDs(e.home); len(left) > 0 {
			t.Fatalf("run %d: processes left after delete all: %v", run, left)
		}
	}
}

// concInconsistencies compares jlist with the machine: listed runs run, unlisted ones do
// not, the port is open exactly when a worker is online, nothing is stuck half-way.
func concInconsistencies(e *env, port int) []string {
	var out []string
	procs := e.jlist()
	listed := map[int]bool{}
	online := 0
	for _, p := range procs {
		switch p.Pm2Env.Status {
		case "online":
			online++
			listed[p.PID] = true
			if !alive(p.PID) {
				out = append(out, fmt.Sprintf("%s[%d] online but pid %d is gone", p.Name, p.ID, p.PID))
			}
		case "stopped", "errored":
		default:
			out = append(out, fmt.Sprintf("%s[%d] %s (restarts %d)", p.Name, p.ID, p.Pm2Env.Status, p.Pm2Env.RestartTime))
		}
	}
	for _, pid := range homePIDs(e.home) {
		if !listed[pid] {
			out = append(out, fmt.Sprintf("pid %d runs but is not listed", pid))
		}
	}
	switch open := tcpOpen(port); {
	case online > 0 && !open:
		out = append(out, "a worker is online but the port is closed")
	case online == 0 && open:
		out = append(out, fmt.Sprintf("no worker is online (%d listed) but the port is open", len(procs)))
	}
	return out
}

// homePIDs lists the app processes of a home (not the daemon, its keeper, nor the CLI): those
// whose environment names the home, minus the daemon and the keeper.
func homePIDs(home string) []int {
	daemon, keeper := 0, 0
	if raw, err := os.ReadFile(home + "/corral.pid"); err == nil {
		daemon, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	if raw, err := os.ReadFile(home + "/keeper.pid"); err == nil {
		keeper, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	var out []int
	for _, pid := range pidsWithHome(home) {
		if pid != daemon && pid != keeper && alive(pid) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// tcpOpen reports whether something accepts connections on the loopback port.
func tcpOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestScaleRelative: `corral scale web +2` and `corral scale web -1`, as PM2 documents them,
// with flags before or after (the old CLI read -1 as an unknown flag); a count that would
// leave no process, or an absurd one, is refused with the reason and changes nothing.
func TestScaleRelative(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.ok("start", "sleeper.sh", "--name", "web")
	count := func() int { return len(e.jlist()) }
	e.ok("scale", "web", "+2", "-s")
	if n := count(); n != 3 {
		t.Fatalf("scale web +2: %d processes, want 3", n)
	}
	e.ok("scale", "-s", "web", "-1")
	if n := count(); n != 2 {
		t.Fatalf("scale web -1: %d processes, want 2", n)
	}
	if r := e.fails("scale", "web", "-5"); !strings.Contains(r.stderr, "at least 1 process") {
		t.Fatalf("scale web -5:\n%s", r)
	}
	if r := e.fails("scale", "web", "1000000000"); !strings.Contains(r.stderr, "CORRAL_MAX_INSTANCES") {
		t.Fatalf("scale web 1000000000:\n%s", r)
	}
	if n := count(); n != 2 {
		t.Fatalf("refused scales changed the count to %d", n)
	}
	if r := e.ok("scale", "--help"); !strings.Contains(r.stdout, "Usage:") {
		t.Fatalf("scale --help:\n%s", r)
	}
}
