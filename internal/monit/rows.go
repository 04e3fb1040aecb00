package monit

import (
	"strconv"

	"github.com/corral-pm/corral/internal/api"
)

// row is one line of the process list: an app, or one of its processes (a worker).
type row struct {
	app   string
	procs []api.Process // an app's processes; a worker row's one process
	proc  bool          // a worker row
}

// key names the row across polls, so the selection stays on it when the list changes.
func (r row) key() string {
	if r.proc {
		return "proc " + strconv.Itoa(r.procs[0].ID)
	}
	return "app " + r.app
}

// target is what an action or a log query on the row names: the app's name, or the process's
// id (actions on an id touch that process only).
func (r row) target() string {
	if r.proc {
		return strconv.Itoa(r.procs[0].ID)
	}
	return r.app
}

// label names the row for people: "web", or "web[3]" (PM2's name[id]).
func (r row) label() string {
	if r.proc {
		return r.app + "[" + strconv.Itoa(r.procs[0].ID) + "]"
	}
	return r.app
}

// buildRows lists each app, in the order of its first process, followed by its processes.
func buildRows(procs []api.Process) []row {
	var apps []string
	byApp := map[string][]api.Process{}
	for _, p := range procs {
		if _, ok := byApp[p.Name]; !ok {
			apps = append(apps, p.Name)
		}
		byApp[p.Name] = append(byApp[p.Name], p)
	}
	rows := make([]row, 0, len(apps)+len(procs))
	for _, a := range apps {
		rows = append(rows, row{app: a, procs: byApp[a]})
		for _, p := range byApp[a] {
			rows = append(rows, row{app: a, procs: []api.Process{p}, proc: true})
		}
	}
	return rows
}

// appProcs is every process of the row's app (a worker row's siblings too): what the
// distribution compares.
func appProcs(rows []row, app string) []api.Process {
	for _, r := range rows {
		if !r.proc && r.app == app {
			return r.procs
		}
	}
	return nil
}
