package daemon

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// stormApp is one app of the storm, with the port it owns (0: none).
type stormApp struct {
	spec spec.App
	port int
}

// TestStorm throws concurrent start/delete/scale/reload/restart/stop commands at three apps
// (a fork-mode script, a server that owns its port through an inherited socket, and Node
// cluster workers) and checks after every round that the daemon's state is consistent with
// the machine's: every listed app answers to its name, every process listed as running runs,
// no process runs that is not listed, and a port is open exactly when its app has a process
// running. On the old daemon, `start & delete & scale` left an app listed but "not found" to
// every command, its port open and extra workers crash-looping.
func TestStorm(t *testing.T) {
	rounds, perRound := 20, 50
	if testing.Short() {
		rounds = 3
	}
	if v, err := strconv.Atoi(os.Getenv("CORRAL_STORM_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	td := newTestDaemon(t, nil)
	apps := []stormApp{{spec: td.sleeper("fork")}}
	p := freePort(t)
	apps = append(apps, stormApp{spec: td.notifyServer("sock", p), port: p})
	p = freePort(t)
	apps = append(apps, stormApp{spec: td.nodeServer("node", p), port: p})
	for i := range apps {
		apps[i].spec.KillTimeout = 2000
		apps[i].spec.ListenTimeout = 20000 // a busy machine is slow, not broken
		apps[i].spec.Instances = 2
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (CORRAL_STORM_SEED to repeat)", seed)
	if v, err := strconv.ParseUint(os.Getenv("CORRAL_STORM_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	outcomes := &stormOutcomes{counts: map[string]int{}}
	defer func() { t.Logf("answers: %s", outcomes) }()
	for round := range rounds {
		cmds := make([]stormCommand, perRound)
		for i := range cmds {
			cmds[i] = randomCommand(rng, apps)
		}
		var wg sync.WaitGroup
		failures := make(chan string, perRound)
		for _, c := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg, status := c.run(td)
				if msg != "" {
					failures <- msg
				}
				outcomes.add(strings.Fields(c.what)[0], status)
			}()
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Errorf("round %d: %s", round, f)
		}
		td.checkConsistent(t, fmt.Sprintf("round %d", round), apps)
		if t.Failed() {
			t.FailNow()
		}
	}
	// And the end: everything goes away.
	if _, err := td.act(api.ActionDelete, "all"); err != nil {
		t.Fatalf("delete all: %v", err)
	}
	td.checkConsistent(t, "after delete all", apps)
	if procs := td.list(); len(procs) != 0 {
		t.Fatalf("%d processes after delete all", len(procs))
	}
}

// stormCommand is one command of a storm round.
type stormCommand struct {
	what string
	// run returns "" or what was wrong with the answer, and the answer's HTTP status.
	run func(td *testDaemon) (string, int)
}

// stormOutcomes counts the answers of a storm by command and status, to show that it did more
// than collect "not found".
type stormOutcomes struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *stormOutcomes) add(cmd string, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	o.mu.Lock()
	o.counts[fmt.Sprintf("%s %d", cmd, status)]++
	o.mu.Unlock()
}

func (o *stormOutcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	keys := make([]string, 0, len(o.counts))
	for k := range o.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, o.counts[k])
	}
	return b.String()
}

func randomCommand(rng *rand.Rand, apps []stormApp) stormCommand {
	a := apps[rng.IntN(len(apps))]
	name := a.spec.Name
	// Answers that are fine in a storm: not found (deleted by another command), a conflict,
	// a refused scale to zero. A 500, or an answer the client cannot read, is not.
	acceptable := func(what string, err error, errs []string) (string, int) {
		status := statusCode(err)
		switch status {
		case 0, http.StatusNotFound, http.StatusConflict, http.StatusBadRequest:
		default:
			return fmt.Sprintf("%s: %v", what, err), status
		}
		for _, e := range errs {
			if strings.Contains(e, "internal error") || strings.Contains(e, "did not stop in time") {
				return fmt.Sprintf("%s: %s", what, e), status
			}
		}
		return "", status
	}
	switch n := rng.IntN(100); {
	case n < 20:
		s := a.spec.Clone()
		return stormCommand{"start " + name, func(td *testDaemon) (string, int) {
			resp, err := td.start(s)
			return acceptable("start "+name, err, resp.Errors)
		}}
	case n < 40:
		return stormCommand{"delete " + name, func(td *testDaemon) (string, int) {
			resp, err := td.act(api.ActionDelete, name)
			return acceptable("delete "+name, err, resp.Errors)
		}}
	case n < 65:
		count := []string{"1", "2", "3", "+1", "-1"}[rng.IntN(5)]
		return stormCommand{"scale " + name + " " + count, func(td *testDaemon) (string, int) {
			resp, err := td.scale(name, count)
			return acceptable("scale "+name+" "+count, err, resp.Errors)
		}}
	case n < 80:
		return stormCommand{"reload " + name, func(td *testDaemon) (string, int) {
			resp, err := td.act(api.ActionReload, name)
			return acceptable("reload "+name, err, resp.Errors)
		}}
	case n < 95:
		return stormCommand{"restart " + name, func(td *testDaemon) (string, int) {
			resp, err := td.act(api.ActionRestart, name)
			return acceptable("restart "+name, err, resp.Errors)
		}}
	default:
		return stormCommand{"stop " + name, func(td *testDaemon) (string, int) {
			resp, err := td.act(api.ActionStop, name)
			return acceptable("stop "+name, err, resp.Errors)
		}}
	}
}

// checkConsistent compares the daemon's view with the machine once every command has
// returned: it waits a while for crash restarts to settle, then fails t with what differs.
func (td *testDaemon) checkConsistent(t *testing.T, when string, apps []stormApp) {
	t.Helper()
	var problems []string
	ok := testutil.Eventually(20*time.Second, 50*time.Millisecond, func() bool {
		problems = td.inconsistencies(apps)
		return len(problems) == 0
	})
	if !ok {
		t.Errorf("%s: the daemon's state is not the machine's:\n  %s", when, strings.Join(problems, "\n  "))
	}
}

func (td *testDaemon) inconsistencies(apps []stormApp) []string {
	var out []string
	procs := td.list()
	byApp := map[string][]api.Process{}
	listed := map[int]bool{}
	for _, p := range procs {
		byApp[p.Name] = append(byApp[p.Name], p)
		if p.PID > 0 {
			listed[p.PID] = true
		}
		switch p.Status {
		case "online", "launching":
			if p.PID <= 0 || zombie(p.PID) {
				out = append(out, fmt.Sprintf("%s[%d] is %s but pid %d does not run", p.Name, p.ID, p.Status, p.PID))
			}
		case "stopped", "errored":
		default:
			out = append(out, fmt.Sprintf("%s[%d] is still %s", p.Name, p.ID, p.Status))
		}
	}
	for name := range byApp {
		// Reachable by name: an action on it works.
		if _, err := td.act(api.ActionReset, name); err != nil {
			out = append(out, fmt.Sprintf("%s is listed but `reset %s` answers: %v", name, name, err))
		}
	}
	var orphans []int
	for _, pid := range markedPIDs(td.home) {
		if !listed[pid] {
			orphans = append(orphans, pid)
		}
	}
	if len(orphans) > 0 {
		sort.Ints(orphans)
		out = append(out, fmt.Sprintf("processes run that no listed process is: %v", orphans))
	}
	for _, a := range apps {
		if a.port == 0 {
			continue
		}
		running := slices.ContainsFunc(byApp[a.spec.Name], func(p api.Process) bool { return p.Status == "online" })
		allDown := !slices.ContainsFunc(byApp[a.spec.Name], func(p api.Process) bool {
			return p.Status != "stopped" && p.Status != "errored"
		})
		switch open := portOpen(a.port); {
		case running && !open:
			out = append(out, fmt.Sprintf("%s has a process online but its port %d is closed", a.spec.Name, a.port))
		case allDown && open:
			out = append(out, fmt.Sprintf("%s has no process running (%d listed) but its port %d is open", a.spec.Name, len(byApp[a.spec.Name]), a.port))
		}
	}
	return out
}

// TestStartDeleteScaleRace is the issue's reproduction, repeated: `start eco & delete conc &
// scale conc 4` at once, then the app must be either gone (port closed, nothing running) or
// fully reachable.
func TestStartDeleteScaleRace(t *testing.T) {
	td := newTestDaemon(t, nil)
	port := freePort(t)
	app := stormApp{spec: td.notifyServer("conc", port), port: port}
	app.spec.Instances = 2
	for round := range 15 {
		var wg sync.WaitGroup
		for _, f := range []func(){
			func() { _, _ = td.start(app.spec) },
			func() { _, _ = td.act(api.ActionDelete, "conc") },
			func() { _, _ = td.scale("conc", "4") },
		} {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
		td.checkConsistent(t, fmt.Sprintf("round %d", round), []stormApp{app})
		if t.Failed() {
			t.FailNow()
		}
		if _, err := td.act(api.ActionDelete, "all"); err != nil {
			t.Fatalf("delete all: %v", err)
		}
		if portOpen(port) {
			t.Fatalf("round %d: port %d open after delete all", round, port)
		}
	}
}
