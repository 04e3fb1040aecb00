package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/cpus"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
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

// StartApps runs the apps of a start request. Every app is checked before anything starts
// (its spec, its cron schedule, its instance count, that its program exists), so a bad
// request starts nothing and registers nothing. Existing apps are updated and restarted in
// "file" mode (as `pm2 start ecosystem.config.js` does); in "create" mode they are an error.
func (d *Daemon) StartApps(ctx context.Context, req api.StartRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	if len(req.Apps) == 0 {
		return resp, badRequestError{"no app to start"}
	}
	switch req.Mode {
	case "", api.ModeFile, api.ModeCreate:
	default:
		return resp, badRequestError{fmt.Sprintf("start mode %q is neither %q nor %q", req.Mode, api.ModeFile, api.ModeCreate)}
	}
	seen := map[string]bool{}
	for i := range req.Apps {
		s := &req.Apps[i]
		if err := d.checkNewSpec(s); err != nil {
			return resp, err
		}
		if seen[s.Name] {
			return resp, badRequestError{fmt.Sprintf("app %q is given twice", s.Name)}
		}
		seen[s.Name] = true
	}
	if req.Mode == api.ModeCreate {
		for _, s := range req.Apps {
			if a := d.tbl.lookup(s.Name); a != nil {
				return resp, conflictError{fmt.Sprintf("app %q already exists (ids %s): `corral restart %s` restarts it; --name starts another copy under a new name",
					s.Name, procIDs(a.snapshot().procs), s.Name)}
			}
		}
	}

	// One app after the other, in the request's order, so process ids follow the file's order.
	var touched []int
	for i := range req.Apps {
		s := req.Apps[i].Clone()
		isNew := d.tbl.lookup(s.Name) == nil
		ids, err := d.applySpec(ctx, &s, req.Mode == api.ModeCreate)
		touched = append(touched, ids...)
		if err != nil {
			resp.Errors = append(resp.Errors, err.Error())
		}
		if err == nil && isNew && s.ExecMode == spec.ModeCluster {
			if err := d.checkListening(ctx, &s, ids); err != nil {
				resp.Errors = append(resp.Errors, err.Error())
			}
		}
	}
	resp.Processes = d.processesByID(touched, false)
	return resp, nil
}

// maxListenWait bounds how long a start waits for a new cluster app's workers to listen: a
// Node server listens within a second or two; one that takes longer is simply not waited for.
const maxListenWait = 5 * time.Second

// checkListening waits, at most listen_timeout (and maxListenWait), for the first run of each of a new cluster
// app's processes to listen, and fails if one could not (a port already in use): the app is
// stopped then, rather than left crash-looping, and the error says why and what to do. A
// worker that exits or takes longer is not waited for (PM2 calls it online).
func (d *Daemon) checkListening(ctx context.Context, s *spec.App, ids []int) error {
	a := d.tbl.lookup(s.Name)
	if a == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, min(s.ListenTimeout.D(), maxListenWait))
	defer cancel()
	var procs []*supervisor.Process
	for _, p := range a.snapshot().procs {
		if slices.Contains(ids, p.ID()) {
			procs = append(procs, p)
		}
	}
	var mu sync.Mutex
	reasons := map[string]bool{}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var le *supervisor.ListenError
			if err := p.WaitStarted(wctx); errors.As(err, &le) {
				mu.Lock()
				reasons[le.Reason] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(reasons) == 0 {
		return nil
	}
	if _, err := d.Act(ctx, api.ActionStop, api.ActionRequest{Targets: []string{s.Name}}); err != nil {
		d.logf("app %s: stop after a failed listen: %v", s.Name, err)
	}
	why := slices.Sorted(maps.Keys(reasons))
	return fmt.Errorf("%s: %s: %s is stopped; free the port (or give the app another one), then `corral restart %s`",
		s.Name, strings.Join(why, "; "), s.Name, s.Name)
}

// checkNewSpec completes and checks a spec from a request (start, resurrect): everything that
// would otherwise fail once the app is registered.
func (d *Daemon) checkNewSpec(s *spec.App) error {
	d.fillDefaults(s)
	if err := s.Validate(); err != nil {
		return badRequestError{err.Error()}
	}
	if _, err := d.cronSchedule(s); err != nil {
		return badRequestError{err.Error()}
	}
	if err := alerts.Validate(s.Alerts); err != nil {
		return badRequestError{fmt.Sprintf("app %q: %v", s.Name, err)}
	}
	if _, err := instanceCount(s); err != nil {
		return err
	}
	if s.Build != "" {
		// The program may be the build's output: checked once the build has run (build.go).
		if st, err := os.Stat(s.Cwd); err != nil || !st.IsDir() {
			return badRequestError{fmt.Sprintf("app %q cannot start: cwd %s is not a directory", s.Name, s.Cwd)}
		}
		return nil
	}
	if err := supervisor.Startable(s); err != nil {
		return badRequestError{fmt.Sprintf("app %q cannot start: %v", s.Name, err)}
	}
	return nil
}

// instanceCount is how many processes spec s asks for, within the daemon's limit.
func instanceCount(s *spec.App) (int, error) {
	n := cpus.Resolve(s.Instances, cpus.Usable())
	return n, checkCount(s.Name, n)
}

// applySpec creates the app of spec s, or gives the existing one s (unless create, where an
// existing app is a conflict). An app deleted while this waited is created anew.
func (d *Daemon) applySpec(ctx context.Context, s *spec.App, create bool) ([]int, error) {
	for {
		ids, a, err := d.createApp(ctx, s, nil, nil)
		if a == nil {
			return ids, err
		}
		if create {
			return nil, conflictError{fmt.Sprintf("app %q already exists", s.Name)}
		}
		ids, err = callOp(ctx, a, opUpdate, func() ([]int, error) { return d.update(a, s) })
		if errors.Is(err, errAppGone) {
			continue
		}
		return ids, err
	}
}

// createApp registers the app of spec s and waits for its create op (see create for
// instances and start). When an app of that name exists already, nothing is done and it is
// returned instead.
func (d *Daemon) createApp(ctx context.Context, s *spec.App, instances []int, start []bool) (ids []int, existing *app, err error) {
	var created []int // written by the op, read only once it is done
	a, first := d.tbl.getOrCreate(s.Name, func() *app { return d.newApp(s) }, func(a *app) *op {
		return a.enqueue(opCreate, func() error {
			var err error
			created, err = d.create(a, instances, start)
			return err
		})
	})
	if first == nil {
		return nil, a, nil
	}
	select {
	case err := <-first.done:
		return created, nil, err
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("start of %s is still running in the daemon: %w", s.Name, ctx.Err())
	}
}

// newApp makes the app of spec s, with its loop running.
func (d *Daemon) newApp(s *spec.App) *app {
	a := newApp(s, d.onPanic)
	a.onChange = d.handoverChanged
	return a
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

// create is the first op of a new app: its ports, its processes (instances fixes their
// instance numbers, for resurrect; start says which of them to start, nil: all if autostart),
// its triggers. Loop only.
func (d *Daemon) create(a *app, instances []int, start []bool) ([]int, error) {
	s := a.st.spec
	if instances == nil {
		n, err := instanceCount(s)
		if err != nil {
			// Checked already: only a CPU count changed in between gets here.
			a.st.gone = true
			d.tbl.remove(a)
			return nil, err
		}
		for i := range n {
			instances = append(instances, i)
		}
	}
	a.st.version = readAppVersion(s)
	a.st.group, a.st.sockets = d.portsFor(s)
	added := d.addProcs(a, instances)
	ids := procIDsList(added)
	d.logf("app %s added (%s mode, %d process(es): ids %s)", s.Name, s.ExecMode, len(ids), procIDs(added))
	a.publish()
	if err := d.armTriggers(a); err != nil {
		d.logf("app %s: %v", s.Name, err)
	}
	var toStart []*supervisor.Process
	for i, p := range added {
		if (start == nil && s.Autostart) || (start != nil && start[i]) {
			toStart = append(toStart, p)
		}
	}
	if err := d.build(a, s, toStart); err != nil {
		return ids, err
	}
	return ids, forEach(toStart, func(p *supervisor.Process) error { return p.Start() })
}

// update gives an existing app a new spec (from its ecosystem file) and applies it: a rolling
// reload where the app owns its port, a restart in fork mode, a stop-switch-start when the
// mode changes (the rollback path from cluster to fork mode), then the file's instance count.
// Loop only.
func (d *Daemon) update(a *app, s *spec.App) ([]int, error) {
	want, err := instanceCount(s)
	if err != nil {
		return nil, err
	}
	if err := forkRollbackProblem(a.st.spec, s, want, a.st.group); err != nil {
		return nil, err
	}
	// Built before anything changes: a new configuration that does not build leaves the app
	// as it was.
	if err := d.build(a, s, a.st.procs); err != nil {
		return procIDsList(a.st.procs), err
	}
	d.disarmTriggers(a)
	old := a.st.spec
	a.st.spec = s
	a.st.version = readAppVersion(s)
	a.publish()
	if err := d.armTriggers(a); err != nil {
		d.logf("app %s: %v", s.Name, err)
	}
	var errs []error
	// Fewer processes first (so a switch to fork mode does not start N copies fighting over
	// one port), more processes last (they start with the new spec).
	if want < len(a.st.procs) {
		errs = append(errs, d.scaleTo(a, want))
	}
	procs := slices.Clone(a.st.procs)
	modeChanged := old.ExecMode != s.ExecMode || (s.ExecMode == spec.ModeCluster && old.SchedPolicy != s.SchedPolicy) ||
		!slices.Equal(old.Listen, s.Listen)
	switch {
	case modeChanged:
		// The protocol changes only while the processes are stopped: stop, swap, start.
		d.logf("app %s: exec mode %s -> %s: stopping, switching, starting", s.Name, old.ExecMode, s.ExecMode)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		err := forEach(procs, func(p *supervisor.Process) error { return p.Stop(ctx) })
		cancel()
		a.st.closePorts()
		a.st.group, a.st.sockets = d.portsFor(s)
		a.publish()
		protocol := d.protocolFor(a)
		err = errors.Join(err, forEach(procs, func(p *supervisor.Process) error { return p.SetProtocol(protocol) }))
		errs = append(errs, err, restartAll(procs, s))
	case a.st.ownsPort():
		d.logf("app %s: new configuration, rolling reload", s.Name)
		_, err := d.rollingReload(a, procs, s)
		errs = append(errs, err)
	default:
		d.logf("app %s: new configuration, restarting", s.Name)
		errs = append(errs, restartAll(procs, s))
	}
	if want > len(a.st.procs) {
		errs = append(errs, d.scaleTo(a, want))
	}
	return procIDsList(a.st.procs), errors.Join(errs...)
}

// forkRollbackProblem refuses the switch of a serving cluster app to fork mode with more than
// one instance: in fork mode each process binds the port itself, so every copy but the first
// would crash on EADDRINUSE until errored (the rollback of the README, done with
// `instances: 'max'` left in the file). Nothing changes; the error says what to change.
// increment_var gives each copy its own port, and is let through.
func forkRollbackProblem(old, next *spec.App, want int, g *cluster.Group) error {
	if old.ExecMode != spec.ModeCluster || next.ExecMode != spec.ModeFork || want <= 1 || next.IncrementVar != "" || g == nil {
		return nil
	}
	ports := g.Listeners()
	if len(ports) == 0 {
		return nil // the app serves no port: its copies do not compete for one
	}
	return badRequestError{fmt.Sprintf("app %q: exec_mode 'fork' with %d instances would start %d copies that each listen on %s themselves: all but one would fail with EADDRINUSE. "+
		"For the rollback to fork mode set instances: 1 in the file (or remove it), then `corral restart <file>` again; nothing was changed",
		next.Name, want, want, strings.Join(ports, ", "))}
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
		if d.keeper != nil {
			g.KeepWith(appSockets{d: d, app: s.Name})
		}
	}
	if len(s.Listen) > 0 {
		socks = cluster.NewSockets(s.Listen)
		if d.keeper != nil {
			socks.KeepWith(appSockets{d: d, app: s.Name})
		}
	}
	return g, socks
}

// addProcs creates a's process slots with the given instance numbers (not started). Loop only.
func (d *Daemon) addProcs(a *app, instances []int) []*supervisor.Process {
	hooks := d.hooksFor(a)
	ids := d.tbl.allocIDs(a, len(instances))
	added := make([]*supervisor.Process, len(ids))
	for i, id := range ids {
		added[i] = supervisor.New(id, instances[i], a.st.spec, hooks)
	}
	a.st.procs = append(a.st.procs, added...)
	slices.SortFunc(a.st.procs, func(x, y *supervisor.Process) int { return x.ID() - y.ID() })
	// The keeper learns of the new processes before any of their runs starts: a run it keeps
	// always belongs to a process the next daemon knows.
	a.publish()
	d.saveHandover()
	return added
}

// hooksFor connects an app's processes to the daemon (and to its cluster primary). Loop only.
func (d *Daemon) hooksFor(a *app) *supervisor.Hooks {
	h := &supervisor.Hooks{
		Logs:      d.logs,
		Hub:       d.hub,
		Event:     d.onEvent,
		Message:   d.onMessage,
		Internal:  d.onInternal,
		Protocol:  d.protocolFor(a),
		ExecShim:  d.exe,
		NotifyDir: d.notifyDir,
	}
	if d.keeper != nil {
		h.Keeper = keptRuns{d}
		h.WaitAdopted = d.exits.wait
	}
	return h
}

// protocolFor is how a's processes deal with the daemon: the cluster protocol in cluster mode,
// inherited sockets with `listen`. Loop only.
func (d *Daemon) protocolFor(a *app) supervisor.Protocol {
	var pr supervisor.Protocol
	if d.nodePreload != nil {
		pr.NodePreload = d.nodePreload
	}
	if a.st.group != nil {
		pr.Worker = a.st.group
		pr.HandleWindow = cluster.HandoffWindow
	}
	if a.st.sockets != nil {
		pr.Sockets = a.st.sockets
	}
	return pr
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

// maxPackageJSON bounds the package.json read for an app's version: real ones are a few KB.
const maxPackageJSON = 1 << 20

// readSmallFile reads a regular file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() > limit {
		return nil, fmt.Errorf("%s is not a regular file of at most %d bytes", path, limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// readAppVersion finds the "version" of the package.json nearest to the app's script, for the
// `ls` version column (PM2 does the same), or "N/A".
func readAppVersion(s *spec.App) string {
	dir := s.Cwd
	if !s.Shell && filepath.IsAbs(s.Script) {
		dir = filepath.Dir(s.Script)
	}
	for range 8 {
		raw, err := readSmallFile(filepath.Join(dir, "package.json"), maxPackageJSON)
		if !errors.Is(err, fs.ErrNotExist) {
			// The nearest package.json is the app's, even one that cannot be read.
			var pkg struct {
				Version string `json:"version"`
			}
			if err == nil && json.Unmarshal(raw, &pkg) == nil && pkg.Version != "" {
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
