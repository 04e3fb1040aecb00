package daemon

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/watch"
	"github.com/robfig/cron/v3"
)

// app groups the process slots that run one app spec. Names are unique in a daemon.
type app struct {
	// op serialises lifecycle operations on this app (start, stop, restart, reload, scale,
	// delete), so two commands never interleave on one app while other apps stay free.
	op sync.Mutex

	// Guarded by the table's mutex.
	spec    *spec.App
	procs   []*supervisor.Process // sorted by id
	version string                // from package.json, for `ls`
	watcher *watch.Watcher
	crons   map[int]cron.EntryID
	// group is the cluster primary of a cluster-mode app (nil in fork mode). It lives as long
	// as the app, so its sockets outlive every worker.
	group *cluster.Group
	// sockets are the app's inherited listening sockets (`listen`), nil without any.
	sockets *cluster.Sockets
}

// ownsPort reports whether the daemon owns a's ports (cluster mode, or inherited sockets), so
// its processes can be replaced without the port closing.
func (a *app) ownsPort() bool { return a.group != nil || a.sockets != nil }

// closePorts closes a's ports (and the connections waiting on them); they open again on use.
func (a *app) closePorts() {
	if a.group != nil {
		a.group.CloseListeners()
	}
	if a.sockets != nil {
		a.sockets.Close()
	}
}

// table is the daemon's set of apps and processes.
type table struct {
	mu     sync.Mutex
	apps   map[string]*app
	procs  map[int]*supervisor.Process
	owner  map[int]*app
	nextID int
}

func newTable() *table {
	return &table{apps: map[string]*app{}, procs: map[int]*supervisor.Process{}, owner: map[int]*app{}}
}

// allocID returns the next process id. Like PM2, ids start again at 0 once the table is empty.
func (t *table) allocID() int {
	if len(t.procs) == 0 {
		t.nextID = 0
	}
	id := t.nextID
	t.nextID++
	return id
}

// freeInstance returns the lowest instance number not used by a process of a (PM2 reuses
// numbers freed by scaling down, so NODE_APP_INSTANCE=0 always exists).
func freeInstance(a *app, taken map[int]bool) int {
	used := map[int]bool{}
	for _, p := range a.procs {
		used[p.Info().Instance] = true
	}
	for n := 0; ; n++ {
		if !used[n] && !taken[n] {
			return n
		}
	}
}

// appsSorted returns the apps ordered by their first process id.
func (t *table) appsSorted() []*app {
	out := make([]*app, 0, len(t.apps))
	for _, a := range t.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return firstID(out[i]) < firstID(out[j]) })
	return out
}

func firstID(a *app) int {
	if len(a.procs) == 0 {
		return 1 << 30
	}
	return a.procs[0].ID()
}

// allProcs returns every process, by id.
func (t *table) allProcs() []*supervisor.Process {
	out := make([]*supervisor.Process, 0, len(t.procs))
	for _, p := range t.procs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// selection is the result of resolving targets: processes grouped by app, in id order.
type selection struct {
	apps  []*app
	procs map[*app][]*supervisor.Process
}

func (s *selection) add(a *app, p *supervisor.Process) {
	if s.procs == nil {
		s.procs = map[*app][]*supervisor.Process{}
	}
	if !slices.Contains(s.apps, a) {
		s.apps = append(s.apps, a)
	}
	if !slices.Contains(s.procs[a], p) {
		s.procs[a] = append(s.procs[a], p)
	}
}

func (s *selection) count() int {
	n := 0
	for _, ps := range s.procs {
		n += len(ps)
	}
	return n
}

// notFoundError names a target that matched nothing.
type notFoundError struct{ target string }

func (e notFoundError) Error() string {
	return fmt.Sprintf("process or namespace %q not found: `corral ls` lists what runs", e.target)
}

// resolve turns targets into processes, with PM2's grammar: "all", a process id, an app name,
// a namespace, or /regex/ on app names. A name or namespace equal to a number wins over the id
// (names cannot be all digits in corral, so only namespaces can). Any target that matches
// nothing is an error and nothing is selected.
func (t *table) resolve(targets []string) (*selection, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sel := &selection{}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no target given: name an app, an id, a namespace, or all")
	}
	for _, target := range targets {
		before := sel.count()
		matchedApp := false
		switch {
		case target == "all":
			for _, a := range t.appsSorted() {
				matchedApp = true
				for _, p := range a.procs {
					sel.add(a, p)
				}
			}
		case len(target) > 2 && strings.HasPrefix(target, "/") && strings.HasSuffix(target, "/"):
			re, err := regexp.Compile(target[1 : len(target)-1])
			if err != nil {
				return nil, fmt.Errorf("target %s is not a valid regular expression: %v", target, err)
			}
			for _, a := range t.appsSorted() {
				if re.MatchString(a.spec.Name) {
					matchedApp = true
					for _, p := range a.procs {
						sel.add(a, p)
					}
				}
			}
		default:
			if a, ok := t.apps[target]; ok {
				matchedApp = true
				for _, p := range a.procs {
					sel.add(a, p)
				}
				break
			}
			for _, a := range t.appsSorted() {
				if a.spec.Namespace == target {
					matchedApp = true
					for _, p := range a.procs {
						sel.add(a, p)
					}
				}
			}
			if matchedApp {
				break
			}
			if id, err := strconv.Atoi(target); err == nil {
				if p, ok := t.procs[id]; ok {
					matchedApp = true
					sel.add(t.owner[id], p)
				}
			}
		}
		// An app with no processes (scaled to nothing is not possible, but a target of "all"
		// on an empty table is) is still a match for `all`.
		if !matchedApp && sel.count() == before && target != "all" {
			return nil, notFoundError{target}
		}
	}
	for _, a := range sel.apps {
		ps := sel.procs[a]
		sort.Slice(ps, func(i, j int) bool { return ps[i].ID() < ps[j].ID() })
	}
	return sel, nil
}
