package daemon

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/typo"
)

// table is the daemon's set of apps: which names exist and which app owns each process id.
// It holds membership only; each app's state belongs to the app's loop (see app). Its lock is
// never held while waiting for anything.
type table struct {
	mu     sync.Mutex
	apps   map[string]*app
	byProc map[int]*app
	nextID int
}

func newTable() *table {
	return &table{apps: map[string]*app{}, byProc: map[int]*app{}}
}

// lookup returns the app named name, or nil.
func (t *table) lookup(name string) *app {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.apps[name]
}

// ownerOf returns the app that owns process id, or nil.
func (t *table) ownerOf(id int) *app {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byProc[id]
}

// getOrCreate returns the app named name. When there is none it creates it and queues first
// (before any other op can be) the op that create returns for it.
func (t *table) getOrCreate(name string, newApp func() *app, create func(a *app) *op) (a *app, first *op) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.apps[name]; a != nil {
		return a, nil
	}
	a = newApp()
	t.apps[name] = a
	return a, create(a)
}

// allocIDs gives a n new process ids; called by a's loop.
func (t *table) allocIDs(a *app, n int) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]int, n)
	for i := range ids {
		// Like PM2, ids start again at 0 once the table is empty.
		if len(t.byProc) == 0 {
			t.nextID = 0
		}
		ids[i] = t.nextID
		t.nextID++
		t.byProc[ids[i]] = a
	}
	return ids
}

// insertAdopted puts a, an app the previous daemon ran, into the table with its process ids
// (adopt.go), before any command can see it.
func (t *table) insertAdopted(a *app, ids []int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.apps[a.name] != nil {
		return fmt.Errorf("an app of that name exists already")
	}
	for _, id := range ids {
		if t.byProc[id] != nil {
			return fmt.Errorf("process id %d is taken already", id)
		}
	}
	t.apps[a.name] = a
	for _, id := range ids {
		t.byProc[id] = a
		t.nextID = max(t.nextID, id+1)
	}
	return nil
}

// removeProc forgets process id; called by its app's loop.
func (t *table) removeProc(id int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byProc, id)
}

// remove forgets a, whose processes are gone already (its name is free again); called by a's
// loop when it deletes the app.
func (t *table) remove(a *app) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.apps[a.name] == a {
		delete(t.apps, a.name)
	}
}

// appsSorted returns the apps ordered by their first process id (apps with none last, by name).
func (t *table) appsSorted() []*app {
	t.mu.Lock()
	out := make([]*app, 0, len(t.apps))
	for _, a := range t.apps {
		out = append(out, a)
	}
	t.mu.Unlock()
	first := make(map[*app]int, len(out))
	for _, a := range out {
		first[a] = firstID(a.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		if fi, fj := first[out[i]], first[out[j]]; fi != fj {
			return fi < fj
		}
		return out[i].name < out[j].name
	})
	return out
}

func firstID(v *appView) int {
	if len(v.procs) == 0 {
		return 1 << 30
	}
	return v.procs[0].ID()
}

// target is what a command's targets select in one app: the whole app (its processes at the
// time the operation runs), or some of its processes by id.
type target struct {
	app   *app
	whole bool
	ids   []int // when not whole, sorted
}

// pick returns the target's processes among all, the app's processes now.
func (tg *target) pick(all []*supervisor.Process) []*supervisor.Process {
	if tg.whole {
		return slices.Clone(all)
	}
	var out []*supervisor.Process
	for _, p := range all {
		if slices.Contains(tg.ids, p.ID()) {
			out = append(out, p)
		}
	}
	return out
}

// selection is the result of resolving targets, one entry per app, in the apps' order.
type selection []*target

// procs returns the selected processes as the apps' published views have them now, for
// readers (listings, logs, env); operations pick from their app's own state instead.
func (s selection) procs() []*supervisor.Process {
	var out []*supervisor.Process
	for _, tg := range s {
		out = append(out, tg.pick(tg.app.snapshot().procs)...)
	}
	return out
}

func (s *selection) add(a *app, whole bool, id int) {
	for _, tg := range *s {
		if tg.app != a {
			continue
		}
		if whole {
			tg.whole, tg.ids = true, nil
		} else if !tg.whole && !slices.Contains(tg.ids, id) {
			tg.ids = append(tg.ids, id)
			slices.Sort(tg.ids)
		}
		return
	}
	tg := &target{app: a, whole: whole}
	if !whole {
		tg.ids = []int{id}
	}
	*s = append(*s, tg)
}

// notFoundError names a target that matched nothing, or an app deleted before an operation
// on it ran (gone: it then matches errAppGone).
type notFoundError struct {
	target  string
	gone    bool
	suggest string // a name the target is a likely typo of
}

func (e notFoundError) Error() string {
	if e.suggest != "" {
		return fmt.Sprintf("process or namespace %q not found: did you mean %q? (`corral ls` lists what runs)", e.target, e.suggest)
	}
	return fmt.Sprintf("process or namespace %q not found: `corral ls` lists what runs", e.target)
}

// closest returns the app name or namespace nearest to target when it is a likely typo
// (at most 2 edits, and fewer than half of target's letters), or "".
func closest(target string, apps []*app) string {
	best, bestD := "", 3
	seen := map[string]bool{}
	for _, a := range apps {
		for _, cand := range []string{a.name, a.snapshot().spec.Namespace} {
			if seen[cand] {
				continue
			}
			seen[cand] = true
			if d := typo.Distance(target, cand); d < bestD && 2*d < len([]rune(target)) {
				best, bestD = cand, d
			}
		}
	}
	return best
}

func (e notFoundError) Is(target error) bool { return e.gone && target == errAppGone }

// resolve turns targets into a selection, with PM2's grammar: "all", a process id, an app
// name, a namespace, a script (an absolute path), or /regex/ on app names. A name or namespace equal to a number wins over
// the id (names cannot be all digits in corral, so only namespaces can). Any target that
// matches nothing is an error and nothing is selected; so is a regex that does not compile.
// The operations re-check the selection when they run: an app deleted since is not found.
func (t *table) resolve(targets []string) (selection, error) {
	if len(targets) == 0 {
		return nil, badRequestError{"no target given: name an app, an id, a namespace, or all"}
	}
	apps := t.appsSorted()
	var sel selection
	for _, tgt := range targets {
		matched := false
		switch {
		case tgt == "all":
			matched = true // even on an empty table
			for _, a := range apps {
				sel.add(a, true, 0)
			}
		case len(tgt) > 2 && strings.HasPrefix(tgt, "/") && strings.HasSuffix(tgt, "/"):
			re, err := regexp.Compile(tgt[1 : len(tgt)-1])
			if err != nil {
				return nil, badRequestError{fmt.Sprintf("target %s is not a valid regular expression: %v", tgt, err)}
			}
			for _, a := range apps {
				if re.MatchString(a.name) {
					matched = true
					sel.add(a, true, 0)
				}
			}
		default:
			if a := t.lookup(tgt); a != nil {
				matched = true
				sel.add(a, true, 0)
				break
			}
			for _, a := range apps {
				if a.snapshot().spec.Namespace == tgt {
					matched = true
					sel.add(a, true, 0)
				}
			}
			if matched {
				break
			}
			if filepath.IsAbs(tgt) {
				// A script (the CLI sends it absolute): the apps that run it, as PM2 takes
				// `restart echo.js`.
				for _, a := range apps {
					if s := a.snapshot().spec; !s.Shell && s.Script == tgt {
						matched = true
						sel.add(a, true, 0)
					}
				}
				break
			}
			if id, err := strconv.Atoi(tgt); err == nil {
				if a := t.ownerOf(id); a != nil {
					matched = true
					sel.add(a, false, id)
				}
			}
		}
		if !matched {
			return nil, notFoundError{target: tgt, suggest: closest(tgt, apps)}
		}
	}
	return sel, nil
}
