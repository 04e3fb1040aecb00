package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// survivalScenario is issue 8's experiment, "the apps outlive the daemon", run against each
// tool in turn: 4 Node cluster workers, a fork-mode Node app and 2 Python workers, every app
// under load (a new connection per request, and keep-alive) while the daemon is SIGKILLed 5
// times, 2 s apart, then `<tool> update`. What a user of the apps would see (failed
// requests), what the manager did (restarts, processes running twice or no longer listed,
// changed pids) and whether the daemon came back by itself.
type survivalScenario struct{}

func (survivalScenario) Name() string { return "survival" }

func (survivalScenario) Describe() string {
	return "the apps outlive the daemon: 4 Node cluster workers, a fork Node app, 2 Python workers under load while the daemon is SIGKILLed 5 times 2 s apart, then `<tool> update`: failed requests, restarts, duplicates, pids, whether the daemon comes back by itself"
}

const (
	survivalKills = 5
	// survivalKillGap is the least time between two kills.
	survivalKillGap = 2 * time.Second
	// survivalComeback is how long the daemon gets to come back by itself after a kill, before
	// the bench does what a user would (`<tool> ls`, which starts a daemon when none runs).
	survivalComeback = 3 * time.Second
	// survivalConns is the number of clients per app and kind of load.
	survivalConns = 2
	// survivalBudget bounds one tool's run.
	survivalBudget = 3 * time.Minute
	// survivalMarker is set in every app's environment to its name, so that the bench finds
	// an app's processes whether the tool lists them or not.
	survivalMarker = "CORRAL_BENCH_APP"
)

// survivalAppScript is the Node app, in cluster and fork mode: it answers with its pid.
const survivalAppScript = `// The bench's survival app: answers every request with its pid.
require('node:http').createServer((q, s) => {
  s.setHeader('content-type', 'application/json');
  s.end(JSON.stringify({ pid: process.pid }));
}).listen(process.env.PORT);
`

// survivalPyScript is the Python app. Under corral it takes its listening socket from the
// manager (fd 3, LISTEN_FDS, LISTEN_PID: corral's listen:); PM2 has no such thing, so there it
// binds PORT itself, with SO_REUSEPORT so that its 2 processes share the port. HTTP/1.1
// (keep-alive), a thread per connection.
const survivalPyScript = `# The bench's survival app in Python: answers every request with its pid.
import http.server, json, os, signal, socket, threading

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        body = json.dumps({"pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = answer
    do_POST = answer

    def log_message(self, *args):
        pass

class SharedPortServer(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
    server = http.server.ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
    server.socket = socket.socket(fileno=3)
    how = "the socket passed on fd 3"
else:
    server = SharedPortServer(("", int(os.environ["PORT"])), Handler)
    how = "port " + os.environ["PORT"]

def stop(*_):
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("serving on " + how, flush=True)
server.serve_forever(poll_interval=0.1)
`

// survivalApp is one app of the experiment.
type survivalApp struct {
	name      string
	instances int
	port      int
}

func (a survivalApp) addr() string { return "127.0.0.1:" + strconv.Itoa(a.port) }

// survivalEcosystem is the tool's ecosystem file for the apps: the same for both tools but the
// Python app, which corral runs in cluster mode on a socket it owns (listen:) and PM2 as 2
// fork-mode processes that bind the port themselves.
func survivalEcosystem(tool string, web, solo, py survivalApp) string {
	pyLine := fmt.Sprintf(`{ name: %q, script: './server.py', interpreter: 'python3', exec_mode: 'cluster', instances: %d, listen: %d, env: { %s: %q } }`,
		py.name, py.instances, py.port, survivalMarker, py.name)
	if tool != "corral" {
		pyLine = fmt.Sprintf(`{ name: %q, script: './server.py', interpreter: 'python3', exec_mode: 'fork', instances: %d, env: { PORT: '%d', %s: %q } }`,
			py.name, py.instances, py.port, survivalMarker, py.name)
	}
	return fmt.Sprintf(`module.exports = { apps: [
  { name: %q, script: './app.js', exec_mode: 'cluster', instances: %d, env: { PORT: '%d', %s: %q } },
  { name: %q, script: './app.js', exec_mode: 'fork', env: { PORT: '%d', %s: %q } },
  %s,
] };
`, web.name, web.instances, web.port, survivalMarker, web.name, solo.name, solo.port, survivalMarker, solo.name, pyLine)
}

// survivalKill is what one SIGKILL of the daemon led to.
type survivalKill struct {
	n        int
	oldPID   int
	newPID   int // the daemon afterwards (0: none)
	byItself bool
	took     time.Duration // from the kill until a new daemon's socket accepted, when by itself
	user     string        // what `<tool> ls` did when the daemon did not come back by itself
	listed   int           // processes listed afterwards (-1: unknown)
	same     int           // of them, with the id, name and pid they had before the kills
	listErr  error
	skipped  string
}

// survivalRun is one tool's run and what it saw.
type survivalRun struct {
	tool    string
	apps    []survivalApp
	total   int // processes started
	results map[string]map[bool]LoadResult
	before  []Proc
	kills   []survivalKill
	// update
	updateTook time.Duration
	updateErr  error
	after      []Proc
	afterErr   error
	running    map[string][]int // each app's processes found by survivalMarker at the end
	// answering says, per app, whether its port served a request at the end, after the
	// update (by whichever process: an orphan answers too).
	answering map[string]bool
}

func (s survivalScenario) Run(ctx context.Context, b *Bench) ([]Metric, error) {
	var order []string
	runs := map[string]*survivalRun{}
	var errs []error
	b.Note("survival: each tool alone, in turn: web (4 Node workers, cluster mode), solo (1 Node app, fork mode, its own port), py (2 Python workers: corral's cluster mode on a socket it owns, `listen:`; PM2 has no equivalent, so 2 fork-mode processes sharing the port with SO_REUSEPORT)")
	b.Note("survival: %d clients per app and kind of load (new connection per request, keep-alive), %s of load before the first kill and after the update; the daemon (pid file) SIGKILLed %d times, at least %s apart; it is back by itself when within %s a new pid is in the pid file and its socket accepts, with no command run; otherwise the bench runs `<tool> ls` as a user would",
		survivalConns, b.Opts.HTTPSettle, survivalKills, survivalKillGap, survivalComeback)
	for _, t := range b.Tools {
		if ctx.Err() != nil {
			break
		}
		order = append(order, t.Name)
		r, err := s.runTool(ctx, b, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
			b.Log.Printf("survival: %s: %v", t.Name, err)
		}
		if r != nil {
			runs[t.Name] = r
		}
	}
	return survivalMetrics(s.Name(), order, runs), errors.Join(errs...)
}

// runTool runs the experiment under one tool. It returns nil figures when the apps could not
// be started (an error of the bench); what the kills and the update did is figures, not errors.
func (s survivalScenario) runTool(ctx context.Context, b *Bench, t *Tool) (r *survivalRun, err error) {
	ctx, cancel := context.WithTimeout(ctx, survivalBudget)
	defer cancel()
	dir := filepath.Join(b.Work, "survival-"+t.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var apps []survivalApp
	for _, a := range []struct {
		name string
		n    int
	}{{"web", 4}, {"solo", 1}, {"py", 2}} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		apps = append(apps, survivalApp{name: a.name, instances: a.n, port: port})
	}
	files := map[string]string{
		"app.js":              survivalAppScript,
		"server.py":           survivalPyScript,
		"ecosystem.config.js": survivalEcosystem(t.Name, apps[0], apps[1], apps[2]),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	in, err := b.NewInstance(t, "survival")
	if err != nil {
		return nil, err
	}
	in.Dir = dir
	r = &survivalRun{tool: t.Name, apps: apps, results: map[string]map[bool]LoadResult{}, running: map[string][]int{}, answering: map[string]bool{}}
	for _, a := range apps {
		r.total += a.instances
	}
	defer func() {
		// Processes the tool no longer lists would make Shutdown report them as survivors of
		// `<tool> kill`: here they are a figure (counted above), so they go first.
		for _, a := range apps {
			for _, pid := range markedProcesses(in, a.name) {
				if r == nil || !slices.ContainsFunc(r.after, func(p Proc) bool { return p.PID == pid }) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if serr := b.Shutdown(in); serr != nil {
			err = errors.Join(err, serr)
		}
	}()

	b.Log.Printf("survival: %s: starting %d processes (ports web %d, solo %d, py %d)", t.Name, r.total, apps[0].port, apps[1].port, apps[2].port)
	if _, err := in.Time(ctx, "start", "ecosystem.config.js"); err != nil {
		return nil, err
	}
	if _, err := in.WaitOnline(ctx, r.total, 60*time.Second); err != nil {
		return nil, err
	}
	for _, a := range apps {
		if err := waitServing(ctx, a.addr(), 3, 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", a.name, err)
		}
	}
	if r.before, err = in.JList(ctx); err != nil {
		return nil, err
	}
	// The counts of duplicates and orphans rest on finding the apps' processes by their
	// environment: it must find exactly the listed ones now.
	for _, a := range apps {
		if found, listed := markedProcesses(in, a.name), listedPIDs(r.before, a.name); !slices.Equal(found, listed) {
			return nil, fmt.Errorf("%s: finding %s's processes by %s gives %v, jlist lists %v", t.Name, a.name, survivalMarker, found, listed)
		}
	}

	loads := map[string]map[bool]*Load{}
	for _, a := range apps {
		loads[a.name] = map[bool]*Load{}
		for _, ka := range []bool{false, true} {
			loads[a.name][ka] = StartLoad(ctx, LoadConfig{Addr: a.addr(), Conns: survivalConns, KeepAlive: ka, Timeout: b.Opts.HTTPTimeout})
		}
	}
	sleepCtx(ctx, b.Opts.HTTPSettle)
	for i := 1; i <= survivalKills && ctx.Err() == nil; i++ {
		k := killDaemon(ctx, in, i, r.before)
		b.Log.Printf("survival: %s: kill %d: %s", t.Name, i, k)
		r.kills = append(r.kills, k)
	}
	b.Log.Printf("survival: %s: %s update", t.Name, t.Name)
	r.updateTook, r.updateErr = in.Time(ctx, "update")
	sleepCtx(ctx, b.Opts.HTTPSettle)
	for _, a := range apps {
		r.answering[a.name] = probe(ctx, a.addr(), time.Second) == nil
	}
	for _, a := range apps {
		r.results[a.name] = map[bool]LoadResult{}
		for ka, l := range loads[a.name] {
			r.results[a.name][ka] = l.Stop()
		}
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("cut short after %s: %w", survivalBudget, ctx.Err())
	}
	r.after, r.afterErr = in.JList(ctx)
	for _, a := range apps {
		r.running[a.name] = markedProcesses(in, a.name)
	}
	return r, nil
}

// killDaemon SIGKILLs the daemon named by the instance's pid file and watches, without running
// any command, for a new one to come back by itself; if none does within survivalComeback it
// runs `<tool> ls`, as a user would. Then it reads what the daemon lists, and returns no sooner
// than survivalKillGap after the kill.
func killDaemon(ctx context.Context, in *Instance, n int, before []Proc) survivalKill {
	k := survivalKill{n: n, listed: -1}
	old, err := in.DaemonPID()
	if err != nil || !alive(old) {
		k.skipped = fmt.Sprintf("no daemon to kill (%v)", err)
		return k
	}
	k.oldPID = old
	killed := time.Now()
	defer sleepCtx(ctx, time.Until(killed.Add(survivalKillGap)))
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		k.skipped = fmt.Sprintf("kill %d: %v", old, err)
		return k
	}
	_ = waitGone(ctx, old, 2*time.Second)
	back := poll(ctx, time.Until(killed.Add(survivalComeback)), 20*time.Millisecond, func() error {
		if pid, err := in.DaemonPID(); err == nil && pid != old && alive(pid) && in.DaemonAnswers() {
			k.newPID = pid
			return nil
		}
		return errors.New("not back")
	})
	if k.byItself = back == nil; k.byItself {
		k.took = time.Since(killed)
	} else {
		d, err := in.Time(ctx, "ls")
		if err != nil {
			k.user = fmt.Sprintf("`%s ls` failed after %.0f ms: %v", in.Name, ms(d), err)
		} else {
			k.user = fmt.Sprintf("`%s ls` took %.0f ms", in.Name, ms(d))
		}
		if pid, err := in.DaemonPID(); err == nil && pid != old && alive(pid) {
			k.newPID = pid
		}
	}
	procs, err := in.JList(ctx)
	if err != nil {
		k.listErr = err
		return k
	}
	k.listed, k.same = len(procs), sameProcs(before, procs)
	return k
}

func (k survivalKill) String() string {
	if k.skipped != "" {
		return "skipped: " + k.skipped
	}
	var s string
	if k.byItself {
		s = fmt.Sprintf("daemon %d SIGKILLed, %d back by itself in %.2f s", k.oldPID, k.newPID, k.took.Seconds())
	} else {
		s = fmt.Sprintf("daemon %d SIGKILLed, not back by itself within %s; %s", k.oldPID, survivalComeback, k.user)
		if k.newPID != 0 {
			s += fmt.Sprintf(", which started daemon %d", k.newPID)
		}
	}
	if k.listErr != nil {
		return s + fmt.Sprintf("; jlist: %v", k.listErr)
	}
	return s + fmt.Sprintf("; it lists %d processes, %d as before", k.listed, k.same)
}

// sameProcs counts the processes of before listed in procs with the same id, name and pid.
func sameProcs(before, procs []Proc) int {
	n := 0
	for _, b := range before {
		if slices.ContainsFunc(procs, func(p Proc) bool { return p.PMID == b.PMID && p.Name == b.Name && p.PID == b.PID }) {
			n++
		}
	}
	return n
}

// markedProcesses lists, sorted, the live processes of app under the instance: those whose
// environment has both the instance's home and survivalMarker set to the app's name. PM2 hands
// a cluster worker the app's environment as JSON in one variable (pm2_env), which the worker
// unpacks once running, so there the marker is found inside it.
func markedProcesses(in *Instance, app string) []int {
	asVar := []byte("\x00" + survivalMarker + "=" + app + "\x00")
	asJSON := []byte(`"` + survivalMarker + `":"` + app + `"`)
	var out []int
	for _, pid := range procstat.PIDsWithEnv(in.HomeVar, in.Home) {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil || !alive(pid) {
			continue
		}
		raw = append(append([]byte{0}, raw...), 0)
		if bytes.Contains(raw, asVar) || bytes.Contains(raw, asJSON) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// listedPIDs returns the pids listed for app, sorted.
func listedPIDs(procs []Proc, app string) []int {
	var out []int
	for _, p := range procs {
		if p.Name == app && p.PID > 0 {
			out = append(out, p.PID)
		}
	}
	slices.Sort(out)
	return out
}

// survivalMetrics turns the runs into rows, one sample per tool (the experiment runs once).
func survivalMetrics(scenario string, order []string, runs map[string]*survivalRun) []Metric {
	var metrics []Metric
	add := func(name, unit, better, target, note string, value func(r *survivalRun) (float64, bool), detail func(r *survivalRun) string) {
		samples, details := map[string][]float64{}, map[string]string{}
		for tool, r := range runs {
			if v, ok := value(r); ok {
				samples[tool] = []float64{v}
			}
			if detail != nil {
				if d := detail(r); d != "" {
					details[tool] = d
				}
			}
		}
		m := newMetric(scenario, name, unit, better, target, order, samples)
		m.Note = note
		if len(details) > 0 {
			m.Details = details
		}
		if len(m.Order) > 0 || len(m.Details) > 0 {
			metrics = append(metrics, m)
		}
	}
	loadKind := map[bool]string{false: "new connection per request", true: "keep-alive"}
	for _, ka := range []bool{false, true} {
		add("failed requests, "+loadKind[ka]+", 3 apps", "requests", "lower", "0",
			"a client tries again 10 ms after a failure: while a port refuses, this grows with the time it stays refused, so between tools compare 0 against not 0",
			func(r *survivalRun) (float64, bool) {
				n := int64(0)
				for _, a := range r.apps {
					n += r.results[a.name][ka].Failed()
				}
				return float64(n), len(r.results) > 0
			},
			func(r *survivalRun) string {
				var parts []string
				for _, a := range r.apps {
					res := r.results[a.name][ka]
					parts = append(parts, fmt.Sprintf("%s %d failed of %d (%s)", a.name, res.Failed(), res.Requests+res.Failed(), res.ErrorSummary()))
				}
				return strings.Join(parts, "; ")
			})
		add("connect errors, "+loadKind[ka]+", 3 apps", "requests", "lower", "0",
			"failed while connecting: nothing accepted the connection",
			func(r *survivalRun) (float64, bool) {
				n := int64(0)
				for _, a := range r.apps {
					n += r.results[a.name][ka].Connect
				}
				return float64(n), len(r.results) > 0
			},
			func(r *survivalRun) string {
				var parts []string
				for _, a := range r.apps {
					parts = append(parts, fmt.Sprintf("%s %d", a.name, r.results[a.name][ka].Connect))
				}
				return strings.Join(parts, ", ")
			})
	}
	add("apps answering at the end (of 3)", "apps", "higher", "3",
		"one request on a new connection to each app's port after the update and the load after it: whichever process answers, listed or not",
		func(r *survivalRun) (float64, bool) {
			n := 0
			for _, ok := range r.answering {
				if ok {
					n++
				}
			}
			return float64(n), len(r.answering) > 0
		},
		func(r *survivalRun) string {
			var parts []string
			for _, a := range r.apps {
				if ok, seen := r.answering[a.name]; seen {
					parts = append(parts, fmt.Sprintf("%s %s", a.name, map[bool]string{true: "answers", false: "does not answer"}[ok]))
				}
			}
			return strings.Join(parts, ", ")
		})
	add("workers restarted (restart_time, after minus before)", "restarts", "lower", "0",
		"over the processes still listed at the end under their id",
		func(r *survivalRun) (float64, bool) {
			n, listed := survivalRestarts(r)
			return float64(n), listed > 0
		},
		func(r *survivalRun) string {
			_, listed := survivalRestarts(r)
			return fmt.Sprintf("%d of the %d processes still listed under their id", listed, r.total)
		})
	add("processes running twice", "processes", "lower", "0",
		"an app's processes found by their environment beyond its instances",
		func(r *survivalRun) (float64, bool) {
			n := 0
			for _, a := range r.apps {
				n += max(len(r.running[a.name])-a.instances, 0)
			}
			return float64(n), len(r.running) > 0
		}, survivalRunning)
	add("processes running, not listed (orphans)", "processes", "lower", "0",
		"an app's processes found by their environment that the tool no longer lists",
		func(r *survivalRun) (float64, bool) {
			n := 0
			for _, a := range r.apps {
				listed := listedPIDs(r.after, a.name)
				for _, p := range r.running[a.name] {
					if !slices.Contains(listed, p) {
						n++
					}
				}
			}
			return float64(n), r.afterErr == nil && len(r.running) > 0
		}, nil)
	add("workers with the same id and pid at the end (of 7)", "processes", "higher", "7 (pids unchanged)", "",
		func(r *survivalRun) (float64, bool) {
			return float64(sameProcs(r.before, r.after)), r.afterErr == nil && len(r.running) > 0
		},
		func(r *survivalRun) string {
			if r.afterErr != nil {
				return fmt.Sprintf("jlist at the end: %v", r.afterErr)
			}
			if n := sameProcs(r.before, r.after); n == r.total {
				return "pids unchanged: yes"
			}
			return fmt.Sprintf("pids unchanged: no: before %s; at the end %s", procsSummary(r.before), procsSummary(r.after))
		})
	add(fmt.Sprintf("kills after which the daemon came back by itself within %s (of %d)", survivalComeback, survivalKills), "kills", "higher", strconv.Itoa(survivalKills),
		"a new pid in the pid file, its socket accepting, no command run",
		func(r *survivalRun) (float64, bool) {
			n := 0
			for _, k := range r.kills {
				if k.byItself {
					n++
				}
			}
			return float64(n), len(r.kills) > 0
		},
		func(r *survivalRun) string {
			var parts []string
			for _, k := range r.kills {
				parts = append(parts, fmt.Sprintf("%d: %s", k.n, k))
			}
			return "\n      " + strings.Join(parts, "\n      ")
		})
	// The time is one sample per kill the daemon came back from by itself.
	samples := map[string][]float64{}
	for tool, r := range runs {
		for _, k := range r.kills {
			if k.byItself {
				samples[tool] = append(samples[tool], ms(k.took))
			}
		}
	}
	m := newMetric(scenario, "daemon back by itself, from SIGKILL", "ms", "lower", "~1000 (the keeper)", order, samples)
	m.Note = "one sample per kill it came back from by itself"
	if len(m.Order) > 0 {
		metrics = append(metrics, m)
	}
	add(fmt.Sprintf("processes listed after the %d kills, same id and pid (of 7)", survivalKills), "processes", "higher", "7",
		"what the user sees before `update`: the listing after the last kill (and the `ls` that started a daemon, if one had to)",
		func(r *survivalRun) (float64, bool) {
			if len(r.kills) == 0 || r.kills[len(r.kills)-1].listed < 0 {
				return 0, false
			}
			return float64(r.kills[len(r.kills)-1].same), true
		},
		func(r *survivalRun) string {
			if len(r.kills) == 0 {
				return ""
			}
			k := r.kills[len(r.kills)-1]
			if k.listed < 0 {
				return fmt.Sprintf("jlist: %v", k.listErr)
			}
			return fmt.Sprintf("%d listed, %d as before the kills", k.listed, k.same)
		})
	add("processes listed after `update`, same id and pid (of 7)", "processes", "higher", "7",
		"",
		func(r *survivalRun) (float64, bool) {
			return float64(sameProcs(r.before, r.after)), r.afterErr == nil && len(r.running) > 0
		},
		func(r *survivalRun) string {
			if r.afterErr != nil {
				return fmt.Sprintf("jlist: %v", r.afterErr)
			}
			return fmt.Sprintf("%d listed: %s", len(r.after), procsSummary(r.after))
		})
	add("update command", "ms", "lower", "",
		"wall time of `<tool> update` after the kills (corral today, PM2: save, kill the daemon, start one, resurrect)",
		func(r *survivalRun) (float64, bool) { return ms(r.updateTook), r.updateTook > 0 },
		func(r *survivalRun) string {
			if r.updateErr != nil {
				return fmt.Sprintf("failed: %v", r.updateErr)
			}
			return ""
		})
	return metrics
}

// survivalRestarts sums restart_time after minus before over the processes listed at the end
// under the id they had, and says how many those are.
func survivalRestarts(r *survivalRun) (restarts, listed int) {
	for _, b := range r.before {
		for _, p := range r.after {
			if p.PMID == b.PMID && p.Name == b.Name {
				restarts += p.PMEnv.RestartTime - b.PMEnv.RestartTime
				listed++
			}
		}
	}
	return restarts, listed
}

// survivalRunning says, per app, how many processes run (found by environment) and are listed.
func survivalRunning(r *survivalRun) string {
	var parts []string
	for _, a := range r.apps {
		parts = append(parts, fmt.Sprintf("%s: %d running (%d instances), %d listed", a.name, len(r.running[a.name]), a.instances, len(listedPIDs(r.after, a.name))))
	}
	return strings.Join(parts, "; ")
}

// procsSummary renders a listing as "0:web:1234 1:web:1235 ...", or "nothing".
func procsSummary(procs []Proc) string {
	sorted := slices.Clone(procs)
	slices.SortFunc(sorted, func(a, b Proc) int { return a.PMID - b.PMID })
	var parts []string
	for _, p := range sorted {
		parts = append(parts, fmt.Sprintf("%d:%s:%d", p.PMID, p.Name, p.PID))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " ")
}
