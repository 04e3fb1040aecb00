package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// orphansScript leaves grandchildren behind, re-parented to corral: five that end at once and
// one that lives until it is killed.
const orphansScript = `#!/bin/sh
for i in 1 2 3 4 5; do (sleep 0.1 &); done
(exec sleep 100000 &)
trap 'echo "got SIGHUP"' HUP
trap 'echo "got SIGQUIT"' QUIT
echo "orphans left"
trap 'exit 0' INT
while :; do sleep 0.2; done
`

// TestPID1 runs `corral run` as PID 1 of a new PID namespace, as in a container: orphans of
// the apps are reaped (the quick ones, and a grandchild killed from outside) while the exit
// status of a killed worker still reaches the daemon; output is JSON lines; on SIGTERM under
// load readiness drops at once, every in-flight request is answered, and the exit code is 0.
func TestPID1(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare is not installed")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	e.write("orphans.sh", orphansScript)
	if err := os.Chmod(filepath.Join(e.dir, "orphans.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	port, httpPort := freePort(t), freePort(t)
	e.vars["CORRAL_HTTP_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", httpPort)
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [
		{ name: 'web', script: './cluster_http.js', exec_mode: 'cluster', instances: 2,
		  kill_timeout: 15000, health_url: '/', env: { PORT: %d } },
		{ name: 'orphans', script: './orphans.sh' },
	] }`, port))
	if r := e.fails("ping", "--ready"); r.code != 1 || !strings.Contains(r.stderr, "not ready: no corral daemon is running") {
		t.Fatalf("ping --ready with no daemon: want exit 1 and the reason, got:\n%s", r)
	}
	e.bin = unshare
	run := e.background("--pid", "--fork", "--mount-proc", "--kill-child", corralBin, "run", "ecosystem.config.js", "--log-format", "json", "--grace", "30s")
	e.bin = corralBin

	probe := func(path string) int {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", httpPort, path))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	e.waitFor("/readyz to answer 200", 60*time.Second, func() bool { return probe("/readyz") == 200 })
	run.stdout.waitLine(t, "the orphans app's line, as JSON", 10*time.Second, func(l string) bool {
		var j map[string]any
		return json.Unmarshal([]byte(l), &j) == nil && j["app"] == "orphans" && j["stream"] == "stdout" &&
			j["message"] == "orphans left" && j["instance"] == float64(0) && j["time"] != nil
	})

	if r := e.ok("ping", "--ready"); r.stdout != "ready\n" {
		t.Fatalf("ping --ready: %s", r)
	}

	// corral is unshare's child; in its namespace it is PID 1.
	init := childrenOf(run.cmd.Process.Pid)
	if len(init) != 1 {
		t.Fatalf("unshare has children %v, want one (corral)", init)
	}
	pid1 := init[0]
	if ns := nsPIDs(pid1); len(ns) < 2 || ns[len(ns)-1] != 1 {
		t.Fatalf("corral's pids by namespace: %v, want it to be 1 in its own", ns)
	}

	// Kill the grandchild that lives on (from outside, as an OOM kill would) and a worker.
	sleeper := killOrphanSleeper(t, e, pid1, "corral", 10*time.Second)
	worker := e.waitStatus(0, "online", 10*time.Second)
	hostWorker := hostPID(e.home, worker.PID)
	if hostWorker == 0 {
		t.Fatalf("no host pid for worker pid %d", worker.PID)
	}
	if err := syscall.Kill(hostWorker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The daemon got its worker's real status: the reaper did not take it.
	killed := regexp.MustCompile(fmt.Sprintf(`web\[0\] \(pid %d\) was killed by SIGKILL`, worker.PID))
	e.waitFor("the daemon to see its worker killed by SIGKILL", 20*time.Second, func() bool {
		return killed.MatchString(readFile(filepath.Join(e.home, "corral.log")))
	})
	e.waitFor("no zombie among corral's children, the killed orphan reaped", 20*time.Second, func() bool {
		if _, err := procstat.ReadStat(sleeper); err == nil {
			return false
		}
		for _, c := range childrenOf(pid1) {
			if st, err := procstat.ReadStat(c); err == nil && st.Exited {
				return false
			}
		}
		return true
	})
	e.waitFor("/readyz to answer 200 again", 60*time.Second, func() bool { return probe("/readyz") == 200 })

	// As PID 1, SIGHUP is passed to the apps (the script traps it), and nothing stops.
	from := run.stdout.count()
	if err := syscall.Kill(pid1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	run.stdout.waitLineFrom(t, from, "the app to get the SIGHUP", 10*time.Second, func(l string) bool {
		return strings.Contains(l, `"message":"got SIGHUP"`)
	})
	// The Node workers have no SIGHUP handler: they end, and are restarted.
	hup := regexp.MustCompile(`web\[\d\] \(pid \d+\) was killed by SIGHUP`)
	e.waitFor("both workers to end on the SIGHUP", 20*time.Second, func() bool {
		return len(hup.FindAllString(readFile(filepath.Join(e.home, "corral.log")), -1)) == 2
	})
	e.waitFor("/readyz to answer 200 after the SIGHUP", 60*time.Second, func() bool { return probe("/readyz") == 200 })

	// SIGQUIT too (Node's default for it ends the workers, which are restarted).
	from = run.stdout.count()
	if err := syscall.Kill(pid1, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	run.stdout.waitLineFrom(t, from, "the app to get the SIGQUIT", 10*time.Second, func(l string) bool {
		return strings.Contains(l, `"message":"got SIGQUIT"`)
	})
	quit := regexp.MustCompile(`web\[\d\] \(pid \d+\) was killed by SIGQUIT`)
	e.waitFor("both workers to end on the SIGQUIT", 20*time.Second, func() bool {
		return len(quit.FindAllString(readFile(filepath.Join(e.home, "corral.log")), -1)) == 2
	})
	e.waitFor("/readyz to answer 200 after the SIGQUIT", 60*time.Second, func() bool { return probe("/readyz") == 200 })

	// SIGTERM under load: requests that take 2 s each are in flight when it comes.
	const inFlight = 6
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort)
	before := sumSeries(metrics, "corral_process_connections_total")
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, inFlight)
	var wg sync.WaitGroup
	for i := 0; i < inFlight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/?delay=2000", port))
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{code: resp.StatusCode, body: string(b), err: err}
		}()
	}
	e.waitFor("the requests to be in the workers' hands", 20*time.Second, func() bool {
		// Accepted by a worker: each then waits 2 s before it answers.
		return sumSeries(metrics, "corral_process_connections_total") >= before+inFlight
	})
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.waitFor("/readyz to drop once SIGTERM came", 10*time.Second, func() bool {
		code := probe("/readyz")
		return code == 503 || code == 0
	})
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.err != nil || a.code != 200 || !strings.Contains(a.body, `"pid"`) {
			t.Errorf("an in-flight request was not answered: code %d, body %q, err %v", a.code, a.body, a.err)
		}
	}
	if code := run.wait(60 * time.Second); code != 0 {
		t.Fatalf("corral run exited %d after SIGTERM, want 0\nstderr:\n%s", code, run.stderr)
	}
	// The port stopped accepting before any worker was asked to leave.
	log := readFile(filepath.Join(e.home, "corral.log"))
	term := strings.LastIndex(log, "received SIGTERM")
	closed := strings.Index(log[max(term, 0):], "web: closed")
	exited := regexp.MustCompile(`web\[\d\] \(pid \d+\) (exited|was killed)`).FindStringIndex(log[max(term, 0):])
	if term < 0 || closed < 0 || exited == nil || closed > exited[0] {
		t.Errorf("after SIGTERM, the port did not close before the workers left:\n%s", log[max(term, 0):])
	}
	for _, l := range run.stdout.all() {
		var j map[string]any
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Errorf("a line on stdout is not JSON: %q", l)
		}
	}
}

// TestRunExitCodes: after a stop on SIGTERM, `corral run` exits 3 when an app was errored, and
// 4 when a process outlived the grace and was killed.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "crash.sh", "sleeper.sh")
	e.write("errored.config.js", `module.exports = { apps: [
		{ name: 'ok', script: './sleeper.sh' },
		{ name: 'bad', script: './crash.sh', max_restarts: 1, min_uptime: 10000 },
	] }`)
	run := e.background("run", "errored.config.js")
	run.stdout.waitLine(t, "bad errored", 30*time.Second, func(l string) bool { return strings.Contains(l, "bad[1] errored") })
	run.stdout.waitLine(t, "ok started", 30*time.Second, func(l string) bool { return strings.Contains(l, "started instance=0") })
	run.signal(syscall.SIGTERM)
	if code := run.wait(30 * time.Second); code != 3 || !strings.Contains(run.stderr.String(), "[bad]") {
		t.Fatalf("run with an errored app, SIGTERM: exit %d, want 3\nstderr:\n%s", code, run.stderr)
	}

	// Ignores SIGINT (corral's default stop signal), its children too, from its first line on.
	e.write("stubborn.sh", "#!/bin/sh\ntrap '' INT\necho 'ignoring SIGINT'\nwhile :; do sleep 0.2; done\n")
	if err := os.Chmod(filepath.Join(e.dir, "stubborn.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.write("stubborn.config.js", `module.exports = { apps: [
		{ name: 'stubborn', script: './stubborn.sh', kill_timeout: 120000 },
	] }`)
	run = e.background("run", "stubborn.config.js", "--grace", "1s")
	run.stdout.waitLine(t, "stubborn's first line", 30*time.Second, func(l string) bool { return strings.Contains(l, "ignoring SIGINT") })
	run.signal(syscall.SIGTERM)
	if code := run.wait(30 * time.Second); code != 4 || !strings.Contains(run.stderr.String(), "killed") {
		t.Fatalf("run with a process that ignores SIGINT, --grace 1s: exit %d, want 4\nstdout:\n%s\nstderr:\n%s", code, run.stdout, run.stderr)
	}
	if r := e.run("run", "stubborn.config.js", "--log-format", "yaml"); r.code != 1 || !strings.Contains(r.stderr, "--log-format") {
		t.Fatalf("a bad --log-format: want exit 1 naming the flag, got:\n%s", r)
	}
}

// childrenOf lists pid's children (every thread's).
func childrenOf(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// nsPIDs is pid's NSpid line: its pid in each namespace, outermost first.
func nsPIDs(pid int) []int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "NSpid:"); ok {
			var out []int
			for _, x := range strings.Fields(rest) {
				n, _ := strconv.Atoi(x)
				out = append(out, n)
			}
			return out
		}
	}
	return nil
}

// hostPID finds the host pid of the process of home whose pid in its own namespace is nsPID.
func hostPID(home string, nsPID int) int {
	for _, p := range pidsWithHome(home) {
		if ns := nsPIDs(p); len(ns) > 1 && ns[len(ns)-1] == nsPID {
			return p
		}
	}
	return 0
}

// cmdline is a process's command line, arguments joined by spaces.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// sumSeries adds up every sample of a metric in a /metrics scrape (0 when it cannot be read).
func sumSeries(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// TestRunSubreaper: `corral run` that is not PID 1 makes itself the subreaper of its apps'
// orphans, and reaps them.
func TestRunSubreaper(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("orphans.sh", orphansScript)
	if err := os.Chmod(filepath.Join(e.dir, "orphans.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := e.background("run", "orphans.sh")
	self := run.cmd.Process.Pid
	sleeper := killOrphanSleeper(t, e, self, "corral run", 20*time.Second)
	e.waitFor("no zombie among corral run's children", 20*time.Second, func() bool {
		if _, err := procstat.ReadStat(sleeper); err == nil {
			return false
		}
		for _, c := range childrenOf(self) {
			if st, err := procstat.ReadStat(c); err == nil && st.Exited {
				return false
			}
		}
		return true
	})
	// Not PID 1: SIGQUIT stops, as before.
	run.signal(syscall.SIGQUIT)
	if code := run.wait(30 * time.Second); code != 0 {
		t.Fatalf("run exited %d on SIGQUIT, want 0\nstderr:\n%s", code, run.stderr)
	}
}

// killOrphanSleeper waits until the fixtures' long-lived orphan (`sleep 100000`) is a child of
// parent (re-parented to it, named who in the message), then kills it from outside, as an OOM
// kill would, and returns its pid.
func killOrphanSleeper(t *testing.T, e *env, parent int, who string, timeout time.Duration) int {
	t.Helper()
	var sleeper int
	e.waitFor("the long-lived orphan re-parented to "+who, timeout, func() bool {
		for _, c := range childrenOf(parent) {
			if cmdline(c) == "sleep 100000" {
				sleeper = c
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(sleeper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return sleeper
}
