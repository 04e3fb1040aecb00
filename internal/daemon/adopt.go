package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/corral-pm/corral/internal/keeper"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// adopt takes over what the previous daemon left with the keeper (keep.go): its app table,
// the listening sockets, and every run, live or exited meanwhile. It runs before the API
// serves, so no command sees a half-adopted table. Nothing it cannot prove to be its own is
// killed: a run whose pid now names another program is taken as exited, a record it cannot
// place is reported and left with the keeper (its program keeps running).
func (d *Daemon) adopt() {
	entries, exits, info, err := d.keeper.Load()
	if err != nil {
		d.logf("cannot read what the keeper holds (%v): starting with no app; whatever runs is left running", err)
		return
	}
	d.keeperInfo = info
	exited := make(map[int]syscall.WaitStatus, len(exits))
	for _, ex := range exits {
		exited[ex.PID] = ex.Status
	}
	var state *keeper.Entry
	var history []byte
	historyFound := false
	runs := map[int][]keptRun{} // by process id
	sockets := map[string][]keeptSocketFile{}
	var stray []string
	for i := range entries {
		e := entries[i]
		switch {
		case e.Name == handoverName:
			state = &entries[i]
		case e.Name == historyName:
			history, historyFound = e.Meta, true
		case strings.HasPrefix(e.Name, "run:"):
			var rec supervisor.RunRecord
			if err := json.Unmarshal(e.Meta, &rec); err != nil || rec.PID <= 0 || runKeptName(rec.PID) != e.Name {
				stray = append(stray, fmt.Sprintf("%s: unreadable record", e.Name))
				continue
			}
			runs[rec.ProcID] = append(runs[rec.ProcID], keptRun{rec: rec, Entry: e})
			d.exits.expect(rec.PID)
			if _, ok := exited[rec.PID]; ok {
				d.exits.reported(rec.PID)
			}
		case strings.HasPrefix(e.Name, "sock:"):
			var ks keptSocket
			if err := json.Unmarshal(e.Meta, &ks); err != nil || len(e.Files) != 1 || sockKeptName(ks.App, ks.Name) != e.Name {
				d.logf("kept socket %s: unreadable or without its socket: closed", e.Name)
				closeFiles(e.Files)
				_ = d.keeper.Delete(e.Name)
				continue
			}
			sockets[ks.App] = append(sockets[ks.App], keeptSocketFile{ks, e.Files[0]})
		default:
			stray = append(stray, e.Name)
		}
	}
	// Exits of processes no record names (the apps' orphaned children) are of no use.
	for pid := range exited {
		if !d.exits.isExpected(pid) {
			_ = d.keeper.ExitSeen(pid)
		}
	}
	go d.exits.routeExits()

	if state == nil {
		if len(runs) > 0 || len(sockets) > 0 {
			d.logf("the keeper holds %d runs and the sockets of %d apps but no app table: they are left running, unmanaged", len(runs), len(sockets))
		}
		d.noteStray(stray)
		return
	}
	var h handover
	if err := json.Unmarshal(state.Meta, &h); err != nil || h.Version != handoverVersion {
		version := "unreadable"
		if err == nil {
			version = fmt.Sprintf("version %d, from corral %s", h.Version, h.Corral)
		}
		d.unadoptable = fmt.Sprintf("the previous daemon's hand-over state (%s) is not one this corral (hand-over version %d) reads: its apps are left running, unmanaged, with their sockets held by the keeper; `corral kill` then `corral resurrect` takes them over the hard way", version, handoverVersion)
		d.logf("%s", d.unadoptable)
		return
	}
	d.takeHistory(history, historyFound, h.History)
	adopted, notes := 0, []string(nil)
	for _, ha := range h.Apps {
		s := ha.Spec.Clone()
		n, appNotes := d.adoptApp(&s, ha, runs, exited, sockets[s.Name])
		delete(sockets, s.Name)
		for _, hp := range ha.Procs {
			delete(runs, hp.ID)
		}
		adopted += n
		notes = append(notes, appNotes...)
	}
	for id, es := range runs {
		for _, e := range es {
			notes = append(notes, fmt.Sprintf("%s of process %d, which the app table does not name: left running, unmanaged", e.Name, id))
			closeFiles(e.Files) // the keeper keeps its copies: the program's channel stays open
		}
	}
	for app, ss := range sockets {
		for _, ks := range ss {
			d.logf("kept socket %s of app %s, which the app table does not name: closed", ks.Name, app)
			ks.f.Close()
			_ = d.keeper.Delete(sockKeptName(ks.App, ks.Name))
		}
	}
	d.noteStray(stray)
	for _, n := range notes {
		d.logf("adopt: %s", n)
	}
	d.logf("took over %d apps and %d running processes from the previous daemon (%s)", len(h.Apps), adopted, d.describeKeeper())
}

type keeptSocketFile struct {
	keptSocket
	f *os.File
}

func (d *Daemon) noteStray(stray []string) {
	for _, s := range stray {
		d.logf("the keeper holds %s, which this corral does not know: left as it is", s)
	}
}

// adoptApp recreates one app of the hand-over state, with its ids, sockets and processes, and
// gives each process its runs. It returns how many live runs it took over, and what is worth
// reporting.
func (d *Daemon) adoptApp(s *spec.App, ha handoverApp, runs map[int][]keptRun, exited map[int]syscall.WaitStatus, socks []keeptSocketFile) (int, []string) {
	procs := ha.Procs
	ids := make([]int, len(procs))
	for i, hp := range procs {
		ids[i] = hp.ID
	}
	a := d.newApp(s)
	a.reloads.done.Store(ha.Reloads)
	a.reloads.failed.Store(ha.ReloadsFailed)
	if err := d.tbl.insertAdopted(a, ids); err != nil {
		for _, ks := range socks {
			ks.f.Close()
		}
		return 0, []string{fmt.Sprintf("app %s: %v: left running, unmanaged", s.Name, err)}
	}
	live := 0
	var notes []string
	note := func(format string, args ...any) { notes = append(notes, s.Name+": "+fmt.Sprintf(format, args...)) }
	err := a.submit(context.Background(), opAdopt, func() error {
		a.st.version = readAppVersion(s)
		a.st.group, a.st.sockets = d.portsFor(s)
		listen, listenFiles := map[string]json.RawMessage{}, map[string]*os.File{}
		for _, ks := range socks {
			var err error
			switch {
			case a.st.group != nil && strings.HasPrefix(ks.Name, "handle:"):
				err = a.st.group.RestoreHandle(ks.Meta, ks.f)
			case a.st.sockets != nil && strings.HasPrefix(ks.Name, "listen:"):
				listen[ks.Name], listenFiles[ks.Name] = ks.Meta, ks.f
				continue
			default:
				ks.f.Close()
				err = fmt.Errorf("not a socket of its mode")
			}
			if err != nil {
				note("kept socket %s: %v: closed", ks.Name, err)
				_ = d.keeper.Delete(sockKeptName(ks.App, ks.Name))
			}
		}
		if len(listen) > 0 {
			if err := a.st.sockets.Restore(listen, listenFiles); err != nil {
				note("kept sockets: %v: closed; they open anew", err)
				for name := range listen {
					_ = d.keeper.Delete(sockKeptName(s.Name, name))
				}
			}
		}
		hooks := d.hooksFor(a)
		for _, hp := range procs {
			if a.st.group != nil {
				a.st.group.RestoreStats(hp.ID, hp.Conns, hp.Refused)
			}
			if k, ok := d.keptRequests[hp.ID]; ok {
				// Before the process's runs are adopted: the run the counts name goes on
				// from its last report (cluster.KeptRequests).
				var err error
				if a.st.group != nil {
					err = a.st.group.RestoreRequests(hp.ID, k)
				} else {
					err = d.forkReq.counter(hp.ID).Restore(k)
				}
				if err != nil {
					note("process %d: %v: its request counts start afresh", hp.ID, err)
				}
			}
			a.st.procs = append(a.st.procs, supervisor.Restore(hp.ID, hp.Instance, s, hooks, hp.State))
		}
		slices.SortFunc(a.st.procs, func(x, y *supervisor.Process) int { return x.ID() - y.ID() })
		a.publish()
		if err := d.armTriggers(a); err != nil {
			note("%v", err)
		}
		for _, hp := range procs {
			p := a.st.procs[slices.IndexFunc(a.st.procs, func(p *supervisor.Process) bool { return p.ID() == hp.ID })]
			ars := adoptedRuns(runs[hp.ID], exited)
			for _, ar := range ars {
				if ar.Exit == nil && !ar.Lost {
					live++
				}
			}
			for _, n := range p.Adopt(ars, hp.State) {
				note("process %d: %s", hp.ID, n)
			}
		}
		return nil
	})
	if err != nil {
		note("%v", err)
	}
	return live, notes
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// keptRun is a run the keeper holds, with its record read (once, when sorted by process).
type keptRun struct {
	keeper.Entry
	rec supervisor.RunRecord
}

// adoptedRuns turns a process's kept runs into what supervisor.Adopt takes, proving each live
// one's identity: its pid must still be the program that started at the recorded time.
func adoptedRuns(es []keptRun, exited map[int]syscall.WaitStatus) []supervisor.AdoptedRun {
	var out []supervisor.AdoptedRun
	for _, e := range es {
		rec := e.rec
		ar := supervisor.AdoptedRun{Rec: rec}
		if len(e.Files) >= 2 {
			ar.Files.Out, ar.Files.Err = e.Files[0], e.Files[1]
		}
		if len(e.Files) >= 3 && rec.HasIPC {
			ar.Files.IPC = e.Files[2]
		}
		for _, f := range e.Files[min(len(e.Files), 3):] {
			f.Close()
		}
		if ws, ok := exited[rec.PID]; ok {
			ar.Exit = &ws
		} else if st, err := procstat.ReadStat(rec.PID); err != nil || st.StartTicks != rec.StartTicks {
			// Gone, or another program now: taken as exited, and never signalled. (One that
			// has just exited is a zombie with its own start time: it is adopted, and the
			// keeper, which reaps it, reports its exit.)
			ar.Lost = true
		}
		out = append(out, ar)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rec.Started.Before(out[j].Rec.Started) })
	return out
}

// describeKeeper says who keeps the apps, for the log.
func (d *Daemon) describeKeeper() string {
	i := d.keeperInfo
	s := fmt.Sprintf("keeper pid %d, daemon restarts %d, upgrades %d", i.KeeperPID, max(i.DaemonStarts-1, 0), i.Upgrades)
	if i.LastExit != "" {
		s += "; the previous daemon: " + i.LastExit
	}
	return s
}
