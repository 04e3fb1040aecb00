package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/cpus"
	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/watch"
	"github.com/robfig/cron/v3"
)

// opTimeout bounds one lifecycle operation on one process. Stops end with SIGKILL after
// kill_timeout, so this is only reached when the kernel cannot kill a process.
func opTimeout(s *spec.App) time.Duration {
	return 2*s.KillTimeout.D() + 2*s.ListenTimeout.D() + 30*time.Second
}

// conflictError: an app exists where the request wanted a new one.
type conflictError struct{ msg string }

func (e conflictError) Error() string { return e.msg }

// badRequestError: the request itself is wrong.
type badRequestError struct{ msg string }

func (e badRequestError) Error() string { return e.msg }

// StartApps runs the apps of a start request. Every app is checked before anything starts, so a
// bad request starts nothing. Existing apps are updated and restarted in "file" mode (as
// `pm2 start ecosystem.config.js` does); in "create" mode they are an error.
func (d *Daemon) StartApps(req api.StartRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	if len(req.Apps) == 0 {
		return resp, badRequestError{"no app to start"}
	}
	seen := map[string]bool{}
	for i := range req.Apps {
		s := &req.Apps[i]
		d.fillDefaults(s)
		if err := s.Validate(); err != nil {
			return resp, badRequestError{err.Error()}
		}
		if seen[s.Name] {
			return resp, badRequestError{fmt.Sprintf("app %q is given twice", s.Name)}
		}
		seen[s.Name] = true
		if _, err := d.cronSchedule(s); err != nil {
			return resp, badRequestError{err.Error()}
		}
	}
	d.tbl.mu.Lock()
	for _, s := range req.Apps {
		if a, ok := d.tbl.apps[s.Name]; ok && req.Mode == "create" {
			ids := procIDs(a.procs)
			d.tbl.mu.Unlock()
			return resp, conflictError{fmt.Sprintf("app %q already exists (ids %s): `corral restart %s` restarts it; --name starts another copy under a new name",
				s.Name, ids, s.Name)}
		}
	}
	d.tbl.mu.Unlock()

	var touched []int
	var errs []string
	for i := range req.Apps {
		s := req.Apps[i].Clone()
		d.tbl.mu.Lock()
		existing := d.tbl.apps[s.Name]
		d.tbl.mu.Unlock()
		var ids []int
		var err error
		if existing != nil {
			ids, err = d.updateApp(existing, &s)
		} else {
			ids, err = d.createApp(&s, nil, nil)
		}
		touched = append(touched, ids...)
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	resp.Processes = d.processesByID(touched, false)
	resp.Errors = errs
	return resp, nil
}

// fillDefaults sets what only the daemon knows: default log and pid paths in its home.
func (d *Daemon) fillDefaults(s *spec.App) {
	safe := spec.SafeFileName(s.Name)
	if s.OutFile == "" {
		s.OutFile = filepath.Join(d.paths.LogDir, safe+"-out.log")
	}
	if s.ErrorFile == "" {
		s.ErrorFile = filepath.Join(d.paths.LogDir, safe+"-error.log")
	}
	if s.PidFile == "" {
		s.PidFile = filepath.Join(d.paths.PidDir, safe+".pid")
	}
	if s.Namespace == "" {
		s.Namespace = spec.DefaultNamespace
	}
	if s.InstanceVar == "" {
		s.InstanceVar = spec.DefaultInstanceVar
	}
	if s.KillSignal == "" {
		s.KillSignal = spec.DefaultKillSignal
	}
}

// createApp adds a new app. instances, when given, fixes the instance numbers (resurrect);
// start says which of them to start (nil: all, if autostart).
func (d *Daemon) createApp(s *spec.App, instances []int, start []bool) ([]int, error) {
	a := &app{spec: s, version: readAppVersion(s), crons: map[int]cron.EntryID{}}
	a.group, a.sockets = d.portsFor(s)
	a.op.Lock()
	defer a.op.Unlock()
	if instances == nil {
		n := cpus.Resolve(s.Instances, cpus.Usable())
		for i := range n {
			instances = append(instances, i)
		}
	}
	d.tbl.mu.Lock()
	if _, ok := d.tbl.apps[s.Name]; ok {
		d.tbl.mu.Unlock()
		return nil, conflictError{fmt.Sprintf("app %q already exists", s.Name)}
	}
	ids := procIDsList(d.addProcsLocked(a, instances))
	d.tbl.apps[s.Name] = a
	d.tbl.mu.Unlock()
	d.logf("app %s added (%s mode, %d process(es): ids %s)", s.Name, s.ExecMode, len(ids), procIDs(a.procs))

	if err := d.armTriggers(a); err != nil {
		d.logf("app %s: %v", s.Name, err)
	}
	var errs []string
	for i, p := range a.procs {
		want := s.Autostart
		if start != nil {
			want = start[i]
		}
		if !want {
			continue
		}
		if err := p.Start(); err != nil {
			errs = append(errs, fmt.Sprintf("%s[%d]: %v", s.Name, p.ID(), err))
		}
	}
	if len(errs) > 0 {
		return ids, errors.New(strings.Join(errs, "; "))
	}
	return ids, nil
}

// updateApp gives an existing app a new spec (from its ecosystem file) and applies it: a
// rolling reload in cluster mode, a restart in fork mode, a stop-switch-start when the mode
// changes (the rollback path from cluster to fork mode), then the file's instance count.
func (d *Daemon) updateApp(a *app, s *spec.App) ([]int, error) {
	a.op.Lock()
	defer a.op.Unlock()
	d.disarmTriggers(a)
	d.tbl.mu.Lock()
	old := a.spec
	a.spec = s
	a.version = readAppVersion(s)
	procs := append([]*supervisor.Process(nil), a.procs...)
	d.tbl.mu.Unlock()
	if err := d.armTriggers(a); err != nil {
		d.logf("app %s: %v", s.Name, err)
	}
	var errs []string
	// Fewer processes first (so a switch to fork mode does not start N copies fighting over
	// one port), more processes last (they start with the new spec).
	want := cpus.Resolve(s.Instances, cpus.Usable())
	if want < len(procs) {
		errs = append(errs, d.scaleLocked(a, want)...)
		d.tbl.mu.Lock()
		procs = append([]*supervisor.Process(nil), a.procs...)
		d.tbl.mu.Unlock()
	}
	modeChanged := old.ExecMode != s.ExecMode || (s.ExecMode == spec.ModeCluster && old.SchedPolicy != s.SchedPolicy) ||
		!slices.Equal(old.Listen, s.Listen)
	var err error
	switch {
	case modeChanged:
		// The protocol changes only while the processes are stopped: stop, swap, start.
		d.logf("app %s: exec mode %s -> %s: stopping, switching, starting", s.Name, old.ExecMode, s.ExecMode)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		err = forEach(procs, func(p *supervisor.Process) error { return p.Stop(ctx) })
		cancel()
		a.closePorts()
		d.tbl.mu.Lock()
		a.group, a.sockets = d.portsFor(s)
		protocol := d.protocolFor(a)
		d.tbl.mu.Unlock()
		err = errors.Join(err, forEach(procs, func(p *supervisor.Process) error { return p.SetProtocol(protocol) }))
		err = errors.Join(err, restartAll(procs, s))
	case a.ownsPort():
		d.logf("app %s: new configuration, rolling reload", s.Name)
		err = d.rollingReload(a, procs, s, &reloadLog{})
	default:
		d.logf("app %s: new configuration, restarting", s.Name)
		err = restartAll(procs, s)
	}
	if err != nil {
		errs = append(errs, err.Error())
	}
	if want > len(procs) {
		errs = append(errs, d.scaleLocked(a, want)...)
	}
	d.tbl.mu.Lock()
	ids := procIDsList(a.procs)
	d.tbl.mu.Unlock()
	if len(errs) > 0 {
		return ids, errors.New(strings.Join(errs, "; "))
	}
	return ids, nil
}

// restartAll restarts procs in parallel with spec s (fork mode: each process stops, then starts).
func restartAll(procs []*supervisor.Process, s *spec.App) error {
	return forEach(procs, func(p *supervisor.Process) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		defer cancel()
		return p.Restart(ctx, s)
	})
}

// portsFor creates what owns an app's ports: its cluster primary in cluster mode, its
// inherited sockets with `listen`.
func (d *Daemon) portsFor(s *spec.App) (*cluster.Group, *cluster.Sockets) {
	var g *cluster.Group
	var socks *cluster.Sockets
	if s.ExecMode == spec.ModeCluster {
		g = d.newGroup(s)
	}
	if len(s.Listen) > 0 {
		socks = cluster.NewSockets(s.Listen)
	}
	return g, socks
}

// addProcsLocked creates a's process slots with the given instance numbers (not started);
// the table lock is held.
func (d *Daemon) addProcsLocked(a *app, instances []int) []*supervisor.Process {
	hooks := d.hooksFor(a)
	var added []*supervisor.Process
	for _, inst := range instances {
		id := d.tbl.allocID()
		p := supervisor.New(id, inst, a.spec, hooks)
		a.procs = append(a.procs, p)
		d.tbl.procs[id] = p
		d.tbl.owner[id] = a
		added = append(added, p)
	}
	return added
}

// hooksFor connects an app's processes to the daemon (and to its cluster primary).
func (d *Daemon) hooksFor(a *app) *supervisor.Hooks {
	return &supervisor.Hooks{
		Logs:      d.logs,
		Hub:       d.hub,
		Event:     d.onEvent,
		Message:   d.onMessage,
		Protocol:  d.protocolFor(a),
		ExecShim:  d.exe,
		NotifyDir: d.notifyDir,
	}
}

// protocolFor is how a's processes deal with the daemon: the cluster protocol in cluster mode,
// inherited sockets with `listen`.
func (d *Daemon) protocolFor(a *app) supervisor.Protocol {
	var pr supervisor.Protocol
	if a.group != nil {
		pr.Worker = a.group
		pr.NodePreload = d.nodePreload
		pr.HandleWindow = cluster.HandoffWindow
	}
	if a.sockets != nil {
		pr.Sockets = a.sockets
	}
	return pr
}

// Act runs a lifecycle action on targets: apps in parallel, each app's processes as the
// action requires.
func (d *Daemon) Act(action string, req api.ActionRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	var sig syscall.Signal
	switch action {
	case "start", "stop", "restart", "reload", "delete", "reset":
	case "signal":
		s, err := supervisor.ParseSignal(req.Signal)
		if err != nil {
			return resp, badRequestError{err.Error()}
		}
		sig = s
	default:
		return resp, badRequestError{fmt.Sprintf("unknown action %q", action)}
	}
	sel, err := d.tbl.resolve(req.Targets)
	if err != nil {
		return resp, err
	}
	var mu sync.Mutex
	var ids []int
	var wg sync.WaitGroup
	for _, a := range sel.apps {
		procs := sel.procs[a]
		ids = append(ids, procIDsList(procs)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rl := &reloadLog{}
			err := d.actOnApp(action, a, procs, req, sig, rl)
			mu.Lock()
			resp.Reloads = append(resp.Reloads, rl.entries...)
			if err != nil {
				resp.Errors = append(resp.Errors, err.Error())
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if action != "delete" {
		resp.Processes = d.processesByID(ids, false)
	}
	return resp, nil
}

func (d *Daemon) actOnApp(action string, a *app, procs []*supervisor.Process, req api.ActionRequest, sig syscall.Signal, resp *reloadLog) error {
	a.op.Lock()
	defer a.op.Unlock()
	d.tbl.mu.Lock()
	s := a.spec
	d.tbl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
	defer cancel()
	switch action {
	case "stop":
		err := forEach(procs, func(p *supervisor.Process) error { return p.Stop(ctx) })
		d.settleCluster(a)
		return err
	case "start":
		var running, stopped []*supervisor.Process
		for _, p := range procs {
			switch p.Info().Status {
			case supervisor.StatusOnline, supervisor.StatusLaunching:
				running = append(running, p)
			default:
				stopped = append(stopped, p)
			}
		}
		err := forEach(stopped, func(p *supervisor.Process) error { return p.Start() })
		// PM2's "smart start": starting a running app restarts it (rolling in cluster mode).
		if a.ownsPort() {
			return errors.Join(err, d.rollingReload(a, running, nil, resp))
		}
		return errors.Join(err, forEach(running, func(p *supervisor.Process) error { return p.Restart(ctx, nil) }))
	case "restart", "reload":
		var next *spec.App
		if req.UpdateEnv != nil {
			n := s.Clone()
			n.BaseEnv = req.UpdateEnv
			next = &n
			d.tbl.mu.Lock()
			a.spec = next
			d.tbl.mu.Unlock()
		}
		if a.ownsPort() {
			// The app owns its port (cluster mode, inherited sockets): both are the rolling
			// path, which keeps the app serving.
			return d.rollingReload(a, procs, next, resp)
		}
		return forEach(procs, func(p *supervisor.Process) error { return p.Restart(ctx, next) })
	case "delete":
		return d.deleteProcs(a, procs)
	case "reset":
		return forEach(procs, func(p *supervisor.Process) error { return p.Reset() })
	case "signal":
		return forEach(procs, func(p *supervisor.Process) error { return p.Signal(sig) })
	}
	return nil
}

// deleteApp stops and removes every process of a; op must not be held. procs nil = all.
func (d *Daemon) deleteApp(a *app, procs []*supervisor.Process) error {
	a.op.Lock()
	defer a.op.Unlock()
	if procs == nil {
		d.tbl.mu.Lock()
		procs = append([]*supervisor.Process(nil), a.procs...)
		d.tbl.mu.Unlock()
	}
	return d.deleteProcs(a, procs)
}

// deleteProcs stops and removes procs of a (a.op held). The app goes when its last process does.
func (d *Daemon) deleteProcs(a *app, procs []*supervisor.Process) error {
	d.tbl.mu.Lock()
	s := a.spec
	d.tbl.mu.Unlock()
	err := forEach(procs, func(p *supervisor.Process) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		defer cancel()
		err := p.Delete(ctx)
		d.disarmCron(a, p.ID())
		if a.group != nil {
			a.group.Forget(p.ID())
		}
		d.tbl.mu.Lock()
		delete(d.tbl.procs, p.ID())
		delete(d.tbl.owner, p.ID())
		a.procs = removeProc(a.procs, p)
		d.tbl.mu.Unlock()
		return err
	})
	d.tbl.mu.Lock()
	empty := len(a.procs) == 0
	if empty && d.tbl.apps[s.Name] == a {
		delete(d.tbl.apps, s.Name)
	}
	d.tbl.mu.Unlock()
	if empty {
		d.disarmTriggers(a)
		a.closePorts()
		d.logf("app %s deleted", s.Name)
	} else {
		d.settleCluster(a)
	}
	return err
}

// forEach runs f on every process in parallel and joins the errors.
func forEach(procs []*supervisor.Process, f func(*supervisor.Process) error) error {
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(p); err != nil {
				errs[i] = fmt.Errorf("%s[%d]: %w", p.Info().App.Name, p.ID(), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func removeProc(ps []*supervisor.Process, p *supervisor.Process) []*supervisor.Process {
	out := ps[:0]
	for _, x := range ps {
		if x != p {
			out = append(out, x)
		}
	}
	return out
}

func procIDsList(ps []*supervisor.Process) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.ID()
	}
	return out
}

func procIDs(ps []*supervisor.Process) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%d", p.ID())
	}
	return b.String()
}

// Message delivers data to the targets' process.on('message').
func (d *Daemon) Message(req api.MessageRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	sel, err := d.tbl.resolve(req.Targets)
	if err != nil {
		return resp, err
	}
	var ids []int
	for _, a := range sel.apps {
		for _, p := range sel.procs[a] {
			ids = append(ids, p.ID())
			if err := p.Send(req.Data); err != nil {
				resp.Errors = append(resp.Errors, err.Error())
			}
		}
	}
	resp.Processes = d.processesByID(ids, false)
	return resp, nil
}

// onMessage publishes a user message a process sent (process.send) on the event stream.
func (d *Daemon) onMessage(id int, m nodeipc.Message) {
	d.events.publish(supervisor.Event{Time: time.Now(), ID: id, Name: d.nameOf(id), Event: "message", Message: string(m.Raw)})
}

func (d *Daemon) nameOf(id int) string {
	d.tbl.mu.Lock()
	defer d.tbl.mu.Unlock()
	if a, ok := d.tbl.owner[id]; ok {
		return a.spec.Name
	}
	return ""
}

// readAppVersion finds the "version" of the package.json nearest to the app's script, for the
// `ls` version column (PM2 does the same), or "N/A".
func readAppVersion(s *spec.App) string {
	dir := s.Cwd
	if !s.Shell && filepath.IsAbs(s.Script) {
		dir = filepath.Dir(s.Script)
	}
	for range 8 {
		raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
		if err == nil {
			var pkg struct {
				Version string `json:"version"`
			}
			if json.Unmarshal(raw, &pkg) == nil && pkg.Version != "" {
				return pkg.Version
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "N/A"
}

// armTriggers sets up cron_restart and watch for a's processes.
func (d *Daemon) armTriggers(a *app) error {
	d.tbl.mu.Lock()
	s := a.spec
	procs := append([]*supervisor.Process(nil), a.procs...)
	d.tbl.mu.Unlock()
	for _, p := range procs {
		d.armCron(a, p)
	}
	if len(s.Watch) == 0 {
		return nil
	}
	w, err := watch.New(watch.Options{Paths: s.Watch, Ignore: s.IgnoreWatch, Delay: s.WatchDelay.D()}, func(path string) {
		d.tbl.mu.Lock()
		procs := append([]*supervisor.Process(nil), a.procs...)
		d.tbl.mu.Unlock()
		for _, p := range procs {
			p.Trigger("file changed: " + path)
		}
	})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	d.tbl.mu.Lock()
	a.watcher = w
	d.tbl.mu.Unlock()
	return nil
}

func (d *Daemon) disarmTriggers(a *app) {
	d.tbl.mu.Lock()
	w := a.watcher
	a.watcher = nil
	ids := make([]int, 0, len(a.crons))
	for id := range a.crons {
		ids = append(ids, id)
	}
	d.tbl.mu.Unlock()
	if w != nil {
		w.Close()
	}
	for _, id := range ids {
		d.disarmCron(a, id)
	}
}
