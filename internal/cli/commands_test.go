package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/testutil"
)

// pids returns the pids of procs.
func pids(procs []api.Process) []int {
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.PID
	}
	return out
}

// lines returns the lines of s that start with prefix.
func lines(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestLifecycle drives one app through the command tree: start a script with -i 2, ls, scale
// +1 and -1 (flags before the count), restart, reset, reload (fork mode: a restart), stop,
// start again by name, sendSignal, pid and id, describe by /regex/, delete. After each command
// the daemon's table is what the command said.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")

	r := e.ok("start", "script.sh", "--name", "web", "-i", "2")
	if want := "[corral] Starting " + filepath.Join(e.dir, "script.sh") + " as web in fork mode (2 processes)\n"; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("start does not say what it starts:\n%s", r)
	}
	first := e.waitOnline("web", 2)
	ls := e.ok("ls")
	for _, p := range first {
		if !strings.Contains(ls.stdout, " "+strconv.Itoa(p.PID)+" ") {
			t.Errorf("ls does not show pid %d:\n%s", p.PID, ls)
		}
	}

	r = e.ok("scale", "web", "+1")
	if !strings.Contains(r.stdout, "[corral] web now runs 3 process(es)\n") {
		t.Errorf("scale +1:\n%s", r)
	}
	e.waitOnline("web", 3)
	r = e.ok("scale", "-s", "web", "-1")
	if r.stdout != "" {
		t.Errorf("scale --silent printed:\n%s", r)
	}
	procs := e.waitOnline("web", 2)

	r = e.ok("restart", "web")
	if got := lines(r.stdout, "[corral] Restarted web["); len(got) != 2 {
		t.Errorf("restart: %d 'Restarted' lines, want 2:\n%s", len(got), r)
	}
	restarted := e.waitOnline("web", 2)
	for i, p := range restarted {
		if p.PID == procs[i].PID || p.Restarts != 1 {
			t.Errorf("after restart, web[%d] has pid %d (was %d) and %d restarts", p.ID, p.PID, procs[i].PID, p.Restarts)
		}
	}
	e.ok("reset", "web")
	for _, p := range e.list() {
		if p.Restarts != 0 {
			t.Errorf("after reset, web[%d] has %d restarts", p.ID, p.Restarts)
		}
	}

	r = e.ok("reload", "web")
	if got := lines(r.stdout, "[corral] Reloaded web["); len(got) != 2 || strings.Contains(r.stdout, "Reload summary") {
		t.Errorf("reload in fork mode is a restart, process by process:\n%s", r)
	}
	e.waitOnline("web", 2)

	r = e.ok("stop", "web")
	if got := lines(r.stdout, "[corral] Stopped web["); len(got) != 2 {
		t.Errorf("stop:\n%s", r)
	}
	for _, p := range e.list() {
		if p.Status != "stopped" || p.PID != 0 {
			t.Errorf("after stop, web[%d] is %s with pid %d", p.ID, p.Status, p.PID)
		}
	}
	r = e.ok("pid", "web")
	if r.stdout != "" {
		t.Errorf("pid of a stopped app printed %q", r.stdout)
	}
	// A per-process failure: the others go on, each failure is an error line, exit 1.
	r = e.fails(1, "sendSignal", "SIGWINCH", "web")
	if got := lines(r.stderr, "[corral] error: web["); len(got) != 2 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("sendSignal to stopped processes:\n%s", r)
	}

	e.ok("start", "web") // an existing app's name: started again
	procs = e.waitOnline("web", 2)
	r = e.ok("sendSignal", "SIGWINCH", "web") // sleep ignores it
	if got := lines(r.stdout, "[corral] Signalled web["); len(got) != 2 {
		t.Errorf("sendSignal:\n%s", r)
	}
	if got := e.waitOnline("web", 2); !slices.Equal(pids(got), pids(procs)) {
		t.Errorf("SIGWINCH changed the pids: %v, were %v", pids(got), pids(procs))
	}
	r = e.ok("pid", "web")
	var printed []int
	for _, f := range strings.Fields(r.stdout) {
		n, _ := strconv.Atoi(f)
		printed = append(printed, n)
	}
	if !slices.Equal(printed, pids(procs)) {
		t.Errorf("pid web printed %q, want %v", r.stdout, pids(procs))
	}
	if r = e.ok("id", "web"); r.stdout != "[ "+strconv.Itoa(procs[0].ID)+", "+strconv.Itoa(procs[1].ID)+" ]\n" {
		t.Errorf("id web printed %q for %v", r.stdout, procs)
	}
	if r = e.ok("id", "nosuch"); r.stdout != "[]\n" {
		t.Errorf("id nosuch printed %q", r.stdout)
	}
	if r = e.ok("describe", "/^we/"); strings.Count(r.stdout, "Describing process with id") != 2 {
		t.Errorf("describe /^we/ does not describe web's two processes:\n%s", r)
	}

	r = e.ok("delete", "web")
	if got := e.list(); len(got) != 0 {
		t.Errorf("after delete: %+v", got)
	}
	if !strings.Contains(r.stdout, "[corral] Deleted web[1]\n[corral] Deleted web[2]\n") || !strings.Contains(r.stdout, "No app left") || strings.Contains(r.stdout, "│ web") {
		t.Errorf("delete does not confirm what it deleted, or its table still shows web:\n%s", r)
	}
	testutil.WaitFor(t, "web's processes to be gone", 30*time.Second, func() bool {
		for _, p := range procs {
			if !zombie(p.PID) {
				return false
			}
		}
		return true
	})
}

// TestRestartEcosystemFile: restart and stop accept an ecosystem file among their targets
// (restart re-applies the file; stop stops its apps).
func TestRestartEcosystemFile(t *testing.T) {
	e := newEnv(t)
	e.sleeper("a.sh")
	e.sleeper("b.sh")
	e.write("ecosystem.config.js", `module.exports = { apps: [
		{ name: 'a', script: 'a.sh' },
		{ name: 'b', script: 'b.sh', env: { MODE: 'one' } },
	] }`, 0o644)
	e.ok("start") // no argument: ecosystem.config.js here
	e.waitOnline("a", 1)
	before := e.waitOnline("b", 1)

	e.write("ecosystem.config.js", `module.exports = { apps: [
		{ name: 'a', script: 'a.sh' },
		{ name: 'b', script: 'b.sh', env: { MODE: 'two' } },
	] }`, 0o644)
	e.ok("restart", "ecosystem.config.js")
	after := e.waitOnline("b", 1)
	if after[0].PID == before[0].PID {
		t.Errorf("restart ecosystem.config.js did not restart b (pid %d)", after[0].PID)
	}
	if r := e.ok("env", "b"); !strings.Contains(r.stdout, "MODE: two\n") {
		t.Errorf("restart with the file did not apply its new env:\n%s", r)
	}

	r := e.ok("stop", "ecosystem.config.js")
	if got := lines(r.stdout, "[corral] Stopped "); len(got) != 2 {
		t.Errorf("stop ecosystem.config.js:\n%s", r)
	}
	for _, p := range e.list() {
		if p.Status != "stopped" {
			t.Errorf("%s is %s after stop of its file", p.Name, p.Status)
		}
	}
}

// reloadSummaryLine is one process's line of a successful rolling reload's summary.
var reloadSummaryLine = regexp.MustCompile(`^  api\[(\d+)\]  pid (\d+) -> (\d+)  ready in \d+ms$`)

// progressLine is one of the progress lines a reload prints from the event stream.
var progressLine = regexp.MustCompile(`^\[corral\] api\[\d+\]: (started replacement pid \d+ \(.*\)|pid \d+ ready, .*|old pid \d+ drained and exited)$`)

// TestReload: a rolling reload of an app that owns its port (a sh app with an inherited
// socket, ready when it has stayed up and the port answers) prints its progress from the
// event stream and a summary of every worker replaced, old pid to new.
func TestReload(t *testing.T) {
	e := newEnv(t)
	e.sleeper("srv.sh")
	// A listen_timeout far above the second of settling the probe waits for: on a loaded
	// machine, a slow probe must not fail the reload.
	e.write("eco.json", `{"apps": [{"name": "api", "script": "srv.sh", "instances": 2, "listen": "127.0.0.1:0", "listen_timeout": 30000}]}`, 0o644)
	e.ok("start", "eco.json")
	before := e.waitOnline("api", 2)
	old := map[string]string{}
	for _, p := range before {
		old[strconv.Itoa(p.ID)] = strconv.Itoa(p.PID)
	}

	r := e.ok("reload", "api")
	out := strings.Split(r.stdout, "\n")
	at := slices.Index(out, "[corral] Reload summary:")
	if at < 0 || at+2 >= len(out) {
		t.Fatalf("no reload summary:\n%s", r)
	}
	after := e.waitOnline("api", 2)
	for _, l := range out[at+1 : at+3] {
		m := reloadSummaryLine.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("summary line %q", l)
			continue
		}
		if old[m[1]] != m[2] || m[2] == m[3] {
			t.Errorf("summary line %q: api[%s] was pid %s", l, m[1], old[m[1]])
		}
		if !slices.Contains(pids(after), atoi(m[3])) {
			t.Errorf("summary line %q: the new pid is not running (%v)", l, pids(after))
		}
	}
	for _, l := range out[:at] {
		if strings.HasPrefix(l, "[corral] api[") && !progressLine.MatchString(l) {
			t.Errorf("progress line %q", l)
		}
	}
	if r := e.ok("reload", "api", "--silent"); r.stdout != "" {
		t.Errorf("reload --silent printed:\n%s", r)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestSaveResurrect: save writes the list; an empty list is refused without --force (and
// the saved one is left as it was); resurrect starts what is saved and leaves alone what
// exists.
func TestSaveResurrect(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web", "-i", "2")
	e.waitOnline("web", 2)
	dump := filepath.Join(e.home, "dump.json")

	r := e.ok("save")
	if want := "[corral] Saved 1 app (2 processes) in " + dump + "\n"; r.stdout != want {
		t.Errorf("save:\n%s", r)
	}
	saved, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}

	e.ok("delete", "all")
	r = e.fails(1, "save")
	if !strings.Contains(r.stderr, "nothing to save") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("an empty save is not refused with the way out:\n%s", r)
	}
	if now, _ := os.ReadFile(dump); string(now) != string(saved) {
		t.Errorf("a refused save changed %s", dump)
	}

	r = e.ok("resurrect")
	if !strings.Contains(r.stdout, "[corral] Resurrected web\n") {
		t.Errorf("resurrect:\n%s", r)
	}
	e.waitOnline("web", 2)
	r = e.ok("resurrect")
	if !strings.Contains(r.stdout, "[corral] web already exists: left as it is\n") {
		t.Errorf("resurrect over a running app:\n%s", r)
	}
	if n := len(e.list()); n != 2 {
		t.Errorf("%d processes after a second resurrect, want 2", n)
	}

	e.ok("delete", "all")
	r = e.ok("save", "--force")
	if !strings.Contains(r.stdout, "Saved 0 apps (0 processes)") {
		t.Errorf("save --force of nothing:\n%s", r)
	}
	r = e.ok("resurrect")
	if strings.Contains(r.stdout, "Resurrected") || len(e.list()) != 0 {
		t.Errorf("resurrect of an empty list started something:\n%s", r)
	}
}

// TestLogsAndFlush: logs prints the history with PM2's prefixes (or --raw, or --json), follows
// new lines until its context ends (Ctrl-C: exit 0), and flush empties the files.
func TestLogsAndFlush(t *testing.T) {
	e := newEnv(t)
	e.write("talk.sh", "#!/bin/sh\necho \"out-line $pm_id\"\necho \"err-line $pm_id\" >&2\nexec sleep 100000\n", 0o755)
	e.ok("start", "talk.sh", "--name", "talk")
	p := e.waitOnline("talk", 1)[0]
	testutil.WaitFor(t, "the app's lines in its log files", 30*time.Second, func() bool {
		out, _ := os.ReadFile(p.OutLog)
		errs, _ := os.ReadFile(p.ErrLog)
		return string(out) == "out-line 0\n" && string(errs) == "err-line 0\n"
	})

	r := e.ok("logs", "talk", "--nostream", "--lines", "5")
	for _, want := range []string{p.OutLog + " last lines:\n0|talk | out-line 0\n", p.ErrLog + " last lines:\n0|talk | err-line 0\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("logs --nostream lacks %q:\n%s", want, r)
		}
	}
	if r := e.ok("logs", "talk", "--nostream", "--raw"); r.stdout != "out-line 0\n" || r.stderr != "err-line 0\n" {
		t.Errorf("logs --raw:\n%s", r)
	}
	if r := e.ok("logs", "talk", "--nostream", "--err", "--raw"); r.stdout != "" || r.stderr != "err-line 0\n" {
		t.Errorf("logs --err --raw:\n%s", r)
	}
	if r := e.ok("logs", "talk", "--nostream", "--json", "--out"); r.stdout != `{"message":"out-line 0","timestamp":null,"type":"out","process_id":0,"app_name":"talk"}`+"\n" {
		t.Errorf("logs --json --out:\n%s", r)
	}

	// Following: the history, then what the app prints after a restart, until Ctrl-C.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := e.background(ctx, "logs", "talk", "--raw", "--lines", "1")
	testutil.WaitFor(t, "logs to print the history", 30*time.Second, func() bool {
		return strings.Contains(follow.out.String(), "out-line 0\n")
	})
	// The daemon subscribes before it reads the history: once the history is printed, the
	// output of the restarted app is on its way.
	e.ok("restart", "talk", "--silent")
	testutil.WaitFor(t, "logs to follow the restarted app's output", 30*time.Second, func() bool {
		out := follow.out.String()
		return strings.Count(out, "out-line 0\n") == 2 && strings.Count(out, "err-line 0\n") == 2
	})
	cancel()
	if code := follow.wait(t, 30*time.Second); code != 0 {
		t.Errorf("logs ended by Ctrl-C: exit %d\n%s", code, follow.out.String())
	}

	testutil.WaitFor(t, "the restarted app's lines in its log files", 30*time.Second, func() bool {
		out, _ := os.ReadFile(p.OutLog)
		errs, _ := os.ReadFile(p.ErrLog)
		return string(out) == "out-line 0\nout-line 0\n" && string(errs) == "err-line 0\nerr-line 0\n"
	})
	r = e.ok("flush", "talk")
	for _, f := range []string{p.OutLog, p.ErrLog} {
		if !strings.Contains(r.stdout, "[corral] Flushed "+f+"\n") {
			t.Errorf("flush does not name %s:\n%s", f, r)
		}
		if st, err := os.Stat(f); err != nil || st.Size() != 0 {
			t.Errorf("%s after flush: %v, %d bytes", f, err, st.Size())
		}
	}
	if strings.Contains(r.stdout, "corral.log") {
		t.Errorf("flush of one app flushed the daemon log:\n%s", r)
	}
	if r := e.ok("logs", "talk", "--nostream", "--raw"); r.stdout != "" || r.stderr != "" {
		t.Errorf("logs after flush:\n%s", r)
	}
	r = e.ok("flush")
	if !strings.Contains(r.stdout, "[corral] Flushed "+filepath.Join(e.home, "corral.log")+"\n") {
		t.Errorf("flush with no target does not flush the daemon log:\n%s", r)
	}
	if r := e.ok("reloadLogs"); r.stdout != "[corral] Log files reopened\n" {
		t.Errorf("reloadLogs:\n%s", r)
	}
}

// TestMonitSnapshot: with its output not a terminal, monit prints one plain snapshot (the
// table, the alerts, the apps' latest log lines, no escape code at all) and exits 0, without
// waiting for an interval or a Ctrl-C.
func TestMonitSnapshot(t *testing.T) {
	e := newEnv(t)
	// An app's colours and cursor moves must not reach the snapshot either.
	e.write("talk.sh", "#!/bin/sh\nprintf 'hello from %s \\033[32mgreen\\033[0m\\033[2J\\n' \"$pm_id\"\necho \"warning $pm_id\" >&2\nexec sleep 100000\n", 0o755)
	e.ok("start", "talk.sh", "--name", "talk", "-i", "2")
	procs := e.waitOnline("talk", 2)
	testutil.WaitFor(t, "both processes' lines in their log files", 30*time.Second, func() bool {
		for _, p := range procs {
			out, _ := os.ReadFile(p.OutLog)
			errs, _ := os.ReadFile(p.ErrLog)
			if !strings.HasPrefix(string(out), "hello from") || !strings.HasPrefix(string(errs), "warning") {
				return false
			}
		}
		return true
	})
	r := e.ok("monit", "--interval", "1h")
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("the snapshot holds escape codes:\n%q", r.stdout)
	}
	golden(t, "monit_snapshot.golden", e.normalize(r.String()))
	for _, args := range [][]string{{"monit", "--interval", "0s"}, {"monit", "--log-lines", "-1"}} {
		if r := e.run(args...); r.code != 1 || !strings.HasPrefix(r.stderr, "[corral] error: --") {
			t.Errorf("a bad flag value:\n%s", r)
		}
	}
}

// TestKill: `corral kill` stops every app and the daemon (here, the one running in this
// process: its Run returns), and says so; a second kill finds no daemon.
func TestKill(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web", "-i", "2")
	procs := e.waitOnline("web", 2)

	r := e.ok("kill")
	if r.stdout != "[corral] Every app stopped; daemon stopped\n" || r.stderr != "" {
		t.Errorf("kill:\n%s", r)
	}
	if !e.daemonExited(30 * time.Second) {
		t.Fatal("the daemon still runs after kill")
	}
	for _, p := range procs {
		if !zombie(p.PID) {
			t.Errorf("web[%d] (pid %d) outlived kill", p.ID, p.PID)
		}
	}
	if _, err := os.Stat(filepath.Join(e.home, "corral.sock")); !os.IsNotExist(err) {
		t.Errorf("the socket is still there after kill: %v", err)
	}
	if r := e.ok("kill"); r.stdout != "[corral] No daemon running\n" {
		t.Errorf("kill with no daemon:\n%s", r)
	}
}

// TestDaemonInfo: ping, --version and reloadLogs against a running daemon.
func TestDaemonInfo(t *testing.T) {
	e := newEnv(t)
	if r := e.ok("ping"); r.stdout != "{ msg: 'pong' }\n" || r.stderr != "" {
		t.Errorf("ping:\n%s", r)
	}
	if r := e.ok("--version"); r.stdout != buildinfo.Version+"\n" {
		t.Errorf("--version:\n%s", r)
	}
	if r := e.ok("ls", "--silent"); !strings.Contains(r.stdout, "│ id │") {
		t.Errorf("ls --silent must still print the asked-for table:\n%s", r)
	}
}

// TestStartFlags: the command line's flags and script arguments reach the app the daemon runs.
func TestStartFlags(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "flags", "--kill-timeout", "5s", "--max-restarts", "3", "--namespace", "batch", "--", "one", "two")
	e.waitOnline("flags", 1)
	r := e.ok("describe", "flags")
	for _, want := range []string{"│ namespace          │ batch ", "│ script args        │ one two ", "│ stop               │ SIGINT, SIGKILL after 5s ", "│ restart policy     │ max 3 unstable (min_uptime 1s) "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe lacks %q:\n%s", want, r)
		}
	}
	e.ok("stop", "flags")
	// An existing app: the flags given apply (as in PM2), the others stay as they were.
	e.ok("start", "flags", "--max-restarts", "5")
	if r := e.ok("describe", "flags"); !strings.Contains(r.stdout, "max 5 unstable") || !strings.Contains(r.stdout, "SIGKILL after 5s") {
		t.Errorf("starting an existing app with a flag:\n%s", r)
	}
	r = e.fails(1, "start", "script.sh", "--name", "bad", "--max-restarts", "many")
	if !strings.Contains(r.stderr, `max_restarts: "many" is not a whole number`) {
		t.Errorf("a bad flag value:\n%s", r)
	}
	if len(e.list()) != 1 {
		t.Errorf("a refused start created an app: %+v", e.list())
	}
}

// TestDescribeTargets: describe selects what the daemon's actions select (an app's name
// before a namespace of that name, /regex/ on names), so `describe x` shows what `stop x`
// stops.
func TestDescribeTargets(t *testing.T) {
	e := newEnv(t)
	if r := e.fails(1, "describe", "all"); !strings.Contains(r.stderr, `process or namespace "all" not found`) {
		t.Errorf("describe all with nothing running:\n%s", r)
	}
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web", "--namespace", "prod")
	e.ok("start", "script.sh", "--name", "worker", "--namespace", "prod")
	e.ok("start", "script.sh", "--name", "prod")
	e.waitOnline("prod", 1)
	described := func(args ...string) string {
		r := e.ok(append([]string{"describe"}, args...)...)
		var names []string
		for _, l := range lines(r.stdout, " Describing process with id ") {
			names = append(names, l[strings.LastIndex(l, " ")+1:])
		}
		return strings.Join(names, ",")
	}
	for target, want := range map[string]string{"prod": "prod", "/^w/": "web,worker", "1": "worker", "all": "web,worker,prod"} {
		if got := described(target); got != want {
			t.Errorf("describe %s described %s, want %s", target, got, want)
		}
	}
	r := e.ok("stop", "prod")
	if got := lines(r.stdout, "[corral] Stopped "); len(got) != 1 || !strings.HasPrefix(got[0], "[corral] Stopped prod[2]") {
		t.Errorf("stop prod stopped something else than describe prod showed:\n%s", r)
	}
}
