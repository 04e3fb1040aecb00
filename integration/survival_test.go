package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/procstat"
)

// The experiment of issue 8 ("the apps outlive the daemon"), its numbers in one place.
const (
	survivalKills = 5
	// survivalKillGap is the least time between two kills.
	survivalKillGap = 2 * time.Second
	// survivalComeback is how long the daemon gets to come back by itself after a kill before
	// the test does what a user would (a CLI command, which starts one).
	survivalComeback = 3 * time.Second
	// survivalClients is the number of clients per app and kind of load.
	survivalClients = 2
	// survivalBudget bounds the experiment, so that the test ends (under 90 s, cleanup
	// included) with a report even when everything breaks: a step that would start past it is
	// skipped, and says so.
	survivalBudget = 65 * time.Second
)

// survivalApp is one app of the experiment.
type survivalApp struct {
	name      string
	instances int
	port      int
	stack     string // what it is, for the report
}

func (a survivalApp) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", a.port) }

// daemonKill is what one SIGKILL of the daemon led to.
type daemonKill struct {
	n        int
	oldPID   int
	newPID   int           // the daemon answering afterwards (0: none)
	gone     bool          // the killed pid was gone within 2 s
	byItself bool          // a new daemon answered within survivalComeback without any command
	took     time.Duration // from the kill until the new daemon answered, when by itself
	cli      string        // what a CLI command found when the daemon did not come back by itself
	listed   string        // what the daemon listed afterwards, against the processes before
	skipped  string        // why this kill did not happen
}

// updateOutcome is what `corral update` did.
type updateOutcome struct {
	ran    bool
	code   int
	err    error
	took   time.Duration
	output string
}

// survival is one run of the experiment: a corral home with the apps, their loads, and what
// the kills and the update did to them. Its steps never call Fatal once the kills begin, so
// that the report is printed whatever happened; the checks come last.
type survival struct {
	t        *testing.T
	e        *env
	apps     []survivalApp
	phase    *phase
	traffic  []*traffic
	before   []jproc
	kills    []daemonKill
	update   updateOutcome
	after    []jproc
	afterErr error
	deadline time.Time
}

// TestDaemonSurvival is issue 8's "done when": 4 Node cluster workers, a fork-mode Node app and
// 2 Python workers on a corral-owned socket (`listen:`), all under load (a new connection per
// request, and keep-alive), while the daemon is SIGKILLed 5 times, 2 s apart, then `corral
// update`. The apps must not notice: no refused connection, no failed request, no restart, no
// process running twice, the same pids; the daemon must come back by itself each time, as a new
// process, and after the update list the same ids and pids.
//
// Not parallel: it loads the machine and kills daemons, and it runs alone (Go runs the
// parallel tests after the sequential ones) so that what it measures is its own.
func TestDaemonSurvival(t *testing.T) {
	s := &survival{t: t, deadline: time.Now().Add(survivalBudget), phase: newPhase("start")}
	s.e = newEnv(t, "cluster_http.js", "http.js", "py_server.py")
	t.Cleanup(func() { killHomeTree(s.e.home) })
	s.apps = []survivalApp{
		{name: "web", instances: 4, port: freePort(t), stack: "Node, cluster"},
		{name: "solo", instances: 1, port: freePort(t), stack: "Node, fork"},
		{name: "py", instances: 2, port: freePort(t), stack: "Python, listen:"},
	}
	s.start()
	s.startTraffic()
	for i := 1; i <= survivalKills; i++ {
		s.kill(i)
	}
	s.runUpdate()
	s.settle()
	for _, tr := range s.traffic {
		tr.stop()
	}
	s.after, s.afterErr = s.e.apiJList(5 * time.Second)
	t.Log("\n" + s.report())
	s.check()
}

// start runs the apps from one ecosystem file and waits until every one answers.
func (s *survival) start() {
	t, e := s.t, s.e
	web, solo, py := s.apps[0], s.apps[1], s.apps[2]
	e.write("ecosystem.config.js", fmt.Sprintf(`module.exports = { apps: [
		{ name: %q, script: './cluster_http.js', exec_mode: 'cluster', instances: %d, env: { PORT: '%d' } },
		{ name: %q, script: './http.js', env: { PORT: '%d' } },
		{ name: %q, script: './py_server.py', exec_mode: 'cluster', instances: %d, listen: %d, env: { KEEP_ALIVE: '1' } },
	] }`, web.name, web.instances, web.port, solo.name, solo.port, py.name, py.instances, py.port))
	if r, err := e.runWithin(20*time.Second, "start", "ecosystem.config.js"); err != nil || r.code != 0 {
		t.Fatalf("corral start ecosystem.config.js: %v\n%s", err, r)
	}
	want := 0
	for _, a := range s.apps {
		want += a.instances
	}
	client := newConnClient()
	client.Timeout = 2 * time.Second
	var last string
	ok := s.waitUntil(20*time.Second, func() bool {
		procs, err := e.apiJList(2 * time.Second)
		if err != nil {
			last = err.Error()
			return false
		}
		online, listening := 0, 0
		for _, p := range procs {
			if p.Pm2Env.Status == "online" {
				online++
			}
			if p.Name == web.name && p.Pm2Env.Corral.Cluster != nil && len(p.Pm2Env.Corral.Cluster.Listening) > 0 {
				listening++
			}
		}
		last = fmt.Sprintf("%d processes, %d online, %d of %s's workers listening", len(procs), online, listening, web.name)
		if len(procs) != want || online != want || listening != web.instances {
			return false
		}
		for _, a := range s.apps {
			if _, err := answeringPID(t.Context(), client, "GET", a.url()); err != nil {
				last = fmt.Sprintf("%s (%s): %v", a.name, a.url(), err)
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("the apps did not all come up and answer within 20 s: %s", last)
	}
	before, err := e.apiJList(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.before = before
	// The count of processes running twice rests on finding each app's processes by their
	// environment: make sure it finds exactly the ones listed before relying on it.
	for _, a := range s.apps {
		running := appProcesses(e.home, a.name)
		listed := pidsOf(s.before, a.name)
		if !slices.Equal(running, listed) {
			t.Fatalf("finding %s's processes by environment (CORRAL_HOME and name) gives %v, jlist lists %v: the duplicate count would be wrong", a.name, running, listed)
		}
	}
}

// startTraffic puts every app under both kinds of load and waits until each one flows.
func (s *survival) startTraffic() {
	for _, a := range s.apps {
		for _, keepAlive := range []bool{false, true} {
			tr := startTraffic(a.name, a.url(), keepAlive, survivalClients, s.phase)
			s.t.Cleanup(tr.stop)
			s.traffic = append(s.traffic, tr)
		}
	}
	s.phase.set("warm-up")
	flowing := func(tr *traffic) bool { return tr.ok.Load() >= 20 }
	if !s.waitUntil(15*time.Second, func() bool { return !slices.ContainsFunc(s.traffic, func(tr *traffic) bool { return !flowing(tr) }) }) {
		for _, tr := range s.traffic {
			if !flowing(tr) {
				s.t.Errorf("%s, %s load: not 20 answers within 15 s, before any kill (%d ok, failures %s; e.g. %s)",
					tr.app, tr.kind(), tr.ok.Load(), tr.kindSummary(), tr.sampleSummary())
			}
		}
		s.t.FailNow()
	}
}

// kill SIGKILLs the daemon named by corral.pid, then watches for a new daemon to answer by
// itself for survivalComeback, without running any command (today's CLI starts a daemon when
// none answers, which would hide the answer). If none came, it does what a user would and runs
// `corral jlist`, which starts one, and notes what that daemon lists.
func (s *survival) kill(n int) {
	e := s.e
	k := daemonKill{n: n}
	defer func() { s.kills = append(s.kills, k) }()
	// At worst: 2 s for the killed pid to go, the comeback, 10 s for the CLI, 5 for a listing.
	if left := time.Until(s.deadline); left < survivalComeback+17*time.Second {
		k.skipped = fmt.Sprintf("out of time (%v of the test's budget left)", left.Round(time.Second))
		return
	}
	s.phase.set(fmt.Sprintf("kill %d", n))
	k.oldPID = daemonPID(e.home)
	if k.oldPID == 0 || !alive(k.oldPID) {
		k.skipped = fmt.Sprintf("no daemon to kill (corral.pid names %d)", k.oldPID)
		return
	}
	killed := time.Now()
	if err := syscall.Kill(k.oldPID, syscall.SIGKILL); err != nil {
		k.skipped = fmt.Sprintf("kill %d: %v", k.oldPID, err)
		return
	}
	k.gone = s.waitUntil(2*time.Second, func() bool { return !alive(k.oldPID) })
	k.byItself = s.waitUntil(time.Until(killed.Add(survivalComeback)), func() bool {
		pid := daemonPID(e.home)
		if pid == 0 || pid == k.oldPID || !alive(pid) {
			return false
		}
		v, err := e.apiVersion(500 * time.Millisecond)
		if err != nil || v.PID != pid {
			return false
		}
		k.newPID = pid
		return true
	})
	if k.byItself {
		k.took = time.Since(killed)
		procs, err := e.apiJList(5 * time.Second)
		k.listed = s.compareListed(procs, err)
	} else {
		r, err := e.runWithin(10*time.Second, "jlist")
		var procs []jproc
		switch {
		case err != nil:
			k.cli = fmt.Sprintf("`corral jlist`: %v", err)
		case r.code != 0:
			k.cli = fmt.Sprintf("`corral jlist` exit %d: %s", r.code, strings.TrimSpace(r.stderr))
		default:
			if jerr := json.Unmarshal([]byte(r.stdout), &procs); jerr != nil {
				err = fmt.Errorf("jlist is not JSON: %v", jerr)
			}
			if v, verr := e.apiVersion(2 * time.Second); verr == nil {
				k.newPID = v.PID
			}
			k.cli = fmt.Sprintf("`corral jlist` started daemon %d", k.newPID)
		}
		k.listed = s.compareListed(procs, err)
	}
	// The next kill comes survivalKillGap after this one at the earliest.
	if wait := survivalKillGap - time.Since(killed); wait > 0 {
		time.Sleep(wait)
	}
}

// compareListed describes a listing against the one before the kills: "7 of 7 same id and pid".
func (s *survival) compareListed(procs []jproc, err error) string {
	if err != nil {
		return "unknown: " + err.Error()
	}
	same := 0
	for _, b := range s.before {
		for _, p := range procs {
			if p.ID == b.ID && p.PID == b.PID && p.Name == b.Name {
				same++
			}
		}
	}
	return fmt.Sprintf("%d listed, %d of %d same id and pid", len(procs), same, len(s.before))
}

// runUpdate runs `corral update` once, as a user upgrading would.
func (s *survival) runUpdate() {
	s.phase.set("update")
	timeout := min(30*time.Second, time.Until(s.deadline))
	if timeout < 5*time.Second {
		s.update.err = fmt.Errorf("not run: out of time (%v of the test's budget left)", timeout.Round(time.Second))
		return
	}
	s.update.ran = true
	started := time.Now()
	r, err := s.e.runWithin(timeout, "update")
	s.update.took = time.Since(started)
	s.update.code, s.update.err = r.code, err
	s.update.output = strings.TrimSpace(r.stdout + "\n" + r.stderr)
}

// settle keeps the load on a little after the update, until every load has had 10 more answers
// (at most 5 s): what fails right after the update counts too.
func (s *survival) settle() {
	s.phase.set("after update")
	target := map[*traffic]int64{}
	for _, tr := range s.traffic {
		target[tr] = tr.ok.Load() + 10
	}
	s.waitUntil(min(5*time.Second, max(time.Until(s.deadline), 0)), func() bool {
		for _, tr := range s.traffic {
			if tr.ok.Load() < target[tr] {
				return false
			}
		}
		return true
	})
}

// appState is what became of one app's processes.
type appState struct {
	restarts   string // restart_time after − before, summed ("not listed" when gone from jlist)
	running    []int  // processes found with the home's CORRAL_HOME and the app's name
	listed     []int
	duplicates int   // running beyond the app's instances
	unlisted   []int // running, not listed
	changed    []string
}

func (s *survival) state(a survivalApp) appState {
	var st appState
	st.running = appProcesses(s.e.home, a.name)
	st.listed = pidsOf(s.after, a.name)
	st.duplicates = max(len(st.running)-a.instances, 0)
	for _, p := range st.running {
		if !slices.Contains(st.listed, p) {
			st.unlisted = append(st.unlisted, p)
		}
	}
	before, after, listed := 0, 0, false
	for _, b := range s.before {
		if b.Name != a.name {
			continue
		}
		before += b.Pm2Env.RestartTime
		now := "gone"
		for _, p := range s.after {
			if p.ID == b.ID && p.Name == b.Name {
				listed = true
				after += p.Pm2Env.RestartTime
				now = strconv.Itoa(p.PID)
			}
		}
		if now != strconv.Itoa(b.PID) {
			st.changed = append(st.changed, fmt.Sprintf("id %d: %d -> %s", b.ID, b.PID, now))
		}
	}
	st.restarts = strconv.Itoa(after - before)
	if !listed {
		st.restarts = "not listed"
	}
	return st
}

// report is the experiment's table.
func (s *survival) report() string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "app\tload\tok\tfailed\tconnect errors\tby kind\tby phase\tanswered by (not listed before)")
	for _, tr := range s.traffic {
		failed, connect := tr.failures()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", tr.app, tr.kind(), tr.ok.Load(), failed, connect, tr.kindSummary(), tr.phaseSummary(), s.answering(tr))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "app\twhat\tinstances\trestarts\trunning\tlisted\tduplicates\trunning, not listed\tpids unchanged")
	for _, a := range s.apps {
		st := s.state(a)
		unchanged := "yes"
		if len(st.changed) > 0 {
			unchanged = "no: " + strings.Join(st.changed, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n", a.name, a.stack, a.instances, st.restarts, len(st.running), len(st.listed), st.duplicates, len(st.unlisted), unchanged)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "kill\tdaemon\tthen\tback by itself\tafter\tlisted")
	for _, k := range s.kills {
		if k.skipped != "" {
			fmt.Fprintf(tw, "%d\t%d\tskipped: %s\t\t\t\n", k.n, k.oldPID, k.skipped)
			continue
		}
		back := "no"
		if k.byItself {
			back = "yes"
		}
		then := fmt.Sprintf("%d", k.newPID)
		if !k.gone {
			then += " (the killed pid still ran 2 s later)"
		}
		after := k.took.Round(10 * time.Millisecond).String()
		if !k.byItself {
			after = k.cli
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", k.n, k.oldPID, then, back, after, k.listed)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\ncorral update: ")
	switch {
	case !s.update.ran:
		fmt.Fprintf(&b, "%v\n", s.update.err)
	default:
		fmt.Fprintf(&b, "exit %d in %v", s.update.code, s.update.took.Round(10*time.Millisecond))
		if s.update.err != nil {
			fmt.Fprintf(&b, " (%v)", s.update.err)
		}
		fmt.Fprintf(&b, "\n  %s\n", strings.ReplaceAll(lastLines(s.update.output, 12), "\n", "\n  "))
	}
	fmt.Fprintf(&b, "listed at the end (API, no command): %s\n", s.compareListed(s.after, s.afterErr))
	fmt.Fprintf(&b, "daemon's pid at the end: %d\n", daemonPID(s.e.home))
	return b.String()
}

// answering says how many pids answered tr's requests, and how many of them were not listed
// before the kills (processes started since, which answer on the app's port): "4 pids (0 new)".
func (s *survival) answering(tr *traffic) string {
	pids := tr.pids()
	before := pidsOf(s.before, tr.app)
	fresh := 0
	for _, p := range pids {
		if !slices.Contains(before, p) {
			fresh++
		}
	}
	return fmt.Sprintf("%d pids (%d new)", len(pids), fresh)
}

// check asserts the targets, each failure on its own line.
func (s *survival) check() {
	t := s.t
	for _, tr := range s.traffic {
		failed, connect := tr.failures()
		if connect > 0 {
			t.Errorf("%s, %s load: %d connect errors (%s)", tr.app, tr.kind(), connect, tr.kindSummary())
		}
		// A round-robin cluster's daemon is in the path of every new connection for a few
		// microseconds, between its accept and the hand-off to a worker: a connection in
		// that window when the daemon is killed dies with it (docs/daemon-survival.md §5.1).
		// So a kill may cost the cluster app's new-connection load one request, no more;
		// everything else must lose nothing.
		allowed := int64(0)
		if tr.app == s.apps[0].name && !tr.keepAlive {
			allowed = survivalKills
		}
		if failed > allowed {
			t.Errorf("%s, %s load: %d failed requests of %d (%s; by phase: %s); e.g. %s",
				tr.app, tr.kind(), failed, failed+tr.ok.Load(), tr.kindSummary(), tr.phaseSummary(), tr.sampleSummary())
		} else if failed > 0 {
			t.Logf("%s, %s load: %d failed requests of %d, at most one per kill (the accept-to-hand-off window; %s)",
				tr.app, tr.kind(), failed, failed+tr.ok.Load(), tr.phaseSummary())
		}
		before := pidsOf(s.before, tr.app)
		for _, p := range tr.pids() {
			if !slices.Contains(before, p) {
				t.Errorf("%s, %s load: answered by pid %d, not one of the app's processes before the kills %v", tr.app, tr.kind(), p, before)
			}
		}
	}
	for _, a := range s.apps {
		st := s.state(a)
		if st.restarts != "0" {
			t.Errorf("%s: restarts %s, want 0", a.name, st.restarts)
		}
		if st.duplicates > 0 {
			t.Errorf("%s: %d processes running beyond its %d instances: %v", a.name, st.duplicates, a.instances, st.running)
		}
		if len(st.unlisted) > 0 {
			t.Errorf("%s: processes %v run but are not listed (orphans of a killed daemon)", a.name, st.unlisted)
		}
		if len(st.changed) > 0 {
			t.Errorf("%s: pids changed: %s", a.name, strings.Join(st.changed, ", "))
		}
	}
	for _, k := range s.kills {
		switch {
		case k.skipped != "":
			t.Errorf("kill %d skipped: %s", k.n, k.skipped)
		case !k.byItself:
			t.Errorf("kill %d: no daemon came back by itself within %v of SIGKILL to %d (then %s)", k.n, survivalComeback, k.oldPID, k.cli)
		case k.newPID == k.oldPID || k.newPID == 0:
			t.Errorf("kill %d: the daemon's pid did not change (%d, then %d)", k.n, k.oldPID, k.newPID)
		}
	}
	if !s.update.ran || s.update.err != nil || s.update.code != 0 {
		t.Errorf("corral update: ran %v, exit %d, %v:\n%s", s.update.ran, s.update.code, s.update.err, s.update.output)
	}
	if s.afterErr != nil {
		t.Errorf("the daemon does not answer after the update: %v", s.afterErr)
	} else if got, want := idPIDs(s.after), idPIDs(s.before); got != want {
		t.Errorf("after the kills and the update jlist shows %s, before it showed %s", got, want)
	}
}

// waitUntil polls cond every 20 ms until it holds (true) or timeout passes (false).
func (s *survival) waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runWithin runs corral like run, but fails no test: a command still running after timeout is
// killed and reported as an error (the survival test must end with its report).
func (e *env) runWithin(timeout time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	cmd.WaitDelay = 2 * time.Second // a daemon it started must not hold Wait through our pipes
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("corral %s: still running after %v", strings.Join(args, " "), timeout)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		err = nil
	}
	return r, err
}

// apiJList reads jlist from the daemon's socket: unlike `corral jlist` it never starts a daemon.
func (e *env) apiJList(timeout time.Duration) ([]jproc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := e.client().JList(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("jlist over the API: %w", err)
	}
	var procs []jproc
	if err := json.Unmarshal(raw, &procs); err != nil {
		return nil, fmt.Errorf("jlist over the API is not JSON: %w", err)
	}
	return procs, nil
}

// apiVersion asks the daemon who it is, over the socket (never starting one).
func (e *env) apiVersion(timeout time.Duration) (api.Version, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return e.client().Version(ctx)
}

// daemonPID reads $CORRAL_HOME/corral.pid (0 when missing or unreadable).
func daemonPID(home string) int { return pidFile(filepath.Join(home, "corral.pid")) }

func pidFile(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0
	}
	return pid
}

// appProcesses lists, sorted, the live processes of app under home: those whose environment
// has both the home's CORRAL_HOME and the app's name (corral sets `name`, as PM2 does). Neither
// the daemon nor a keeper has `name` set to an app's.
func appProcesses(home, app string) []int {
	ofHome := procstat.PIDsWithEnv("CORRAL_HOME", home)
	var out []int
	for _, pid := range procstat.PIDsWithEnv("name", app) {
		if slices.Contains(ofHome, pid) && alive(pid) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// pidsOf returns the pids jlist lists for app, sorted.
func pidsOf(procs []jproc, app string) []int {
	var out []int
	for _, p := range procs {
		if p.Name == app && p.PID > 0 {
			out = append(out, p.PID)
		}
	}
	slices.Sort(out)
	return out
}

// idPIDs renders a listing as "0:web:1234 1:web:1235 ...", sorted by id, for comparing two.
func idPIDs(procs []jproc) string {
	sorted := slices.Clone(procs)
	slices.SortFunc(sorted, func(a, b jproc) int { return a.ID - b.ID })
	var parts []string
	for _, p := range sorted {
		parts = append(parts, fmt.Sprintf("%d:%s:%d", p.ID, p.Name, p.PID))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " ")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// killHomeTree kills everything a home started before the harness's cleanup runs `corral kill`:
// first a keeper (keeper.pid), which would otherwise start the daemon again, then every process
// whose environment names the home (the keeper and the daemon inherit CORRAL_HOME from the CLI,
// the apps from them), again until none is left or 10 s have passed, so that one forked
// meanwhile goes too.
func killHomeTree(home string) {
	if pid := pidFile(filepath.Join(home, "keeper.pid")); pid > 0 && slices.Contains(pidsWithHome(home), pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids := pidsWithHome(home)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
