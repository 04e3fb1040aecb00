package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// Act runs a lifecycle action on targets: one op per app, the apps in parallel. An app that
// was deleted before its op ran is reported as not found; the others go on.
func (d *Daemon) Act(ctx context.Context, action api.Action, req api.ActionRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	if !slices.Contains(api.Actions, action) {
		return resp, badRequestError{fmt.Sprintf("unknown action %q (one of %v)", action, api.Actions)}
	}
	var sig syscall.Signal
	if action == api.ActionSignal {
		s, err := supervisor.ParseSignal(req.Signal)
		if err != nil {
			return resp, badRequestError{err.Error()}
		}
		sig = s
	}
	sel, err := d.tbl.resolve(req.Targets)
	if err != nil {
		return resp, err
	}
	if action == api.ActionStop || action == api.ActionDelete {
		// A stop does not wait for a build to end: it cancels it (the start it belonged to
		// then fails, and starts nothing).
		for _, tg := range sel {
			d.builds.cancel(tg.app.name)
		}
	}
	type outcome struct {
		ids     []int
		reloads []api.ReloadSummary
	}
	results := make([]outcome, len(sel))
	errs := make([]error, len(sel))
	var wg sync.WaitGroup
	for i, tg := range sel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = callOp(ctx, tg.app, opKind(action), func() (outcome, error) {
				procs := tg.pick(tg.app.st.procs)
				reloads, err := d.actOnApp(action, tg.app, procs, req, sig)
				return outcome{ids: procIDsList(procs), reloads: reloads}, err
			})
		}()
	}
	wg.Wait()
	var ids []int
	gone := 0
	for i := range sel {
		ids = append(ids, results[i].ids...)
		resp.Reloads = append(resp.Reloads, results[i].reloads...)
		if errors.Is(errs[i], errAppGone) {
			gone++
		}
		if errs[i] != nil {
			resp.Errors = append(resp.Errors, errs[i].Error())
		}
	}
	if gone > 0 && gone == len(sel) {
		// Every app asked for was deleted before its turn: the request as a whole failed.
		return api.ActionResponse{}, errs[0]
	}
	if action != api.ActionDelete {
		resp.Processes = d.processesByID(ids, false)
	}
	return resp, nil
}

// actOnApp carries out action on procs of a, and says what a rolling reload did. Loop only.
func (d *Daemon) actOnApp(action api.Action, a *app, procs []*supervisor.Process, req api.ActionRequest, sig syscall.Signal) ([]api.ReloadSummary, error) {
	s := a.st.spec
	var next *spec.App // restart and reload with --update-env: the spec they run with
	if (action == api.ActionRestart || action == api.ActionReload) && req.UpdateEnv != nil {
		n := s.Clone()
		n.BaseEnv = req.UpdateEnv
		next = &n
	}
	switch action {
	case api.ActionStart, api.ActionRestart, api.ActionReload:
		// Built (with the environment it will run with) before anything changes, and before
		// the operation's own time starts: a build that fails leaves the app as it was, its
		// processes serving.
		built := s
		if next != nil {
			built = next
		}
		if err := d.build(a, built, procs); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
	defer cancel()
	switch action {
	case api.ActionStop:
		err := forEach(procs, func(p *supervisor.Process) error { return p.Stop(ctx) })
		d.settle(a)
		return nil, err
	case api.ActionStart:
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
		// PM2's "smart start": starting a running app restarts it (rolling where the app owns
		// its port).
		if a.st.ownsPort() {
			reloads, rerr := d.rollingReload(a, running, nil)
			return reloads, errors.Join(err, rerr)
		}
		return nil, errors.Join(err, forEach(running, func(p *supervisor.Process) error { return p.Restart(ctx, nil) }))
	case api.ActionRestart, api.ActionReload:
		if next != nil {
			a.st.spec = next
		}
		if a.st.ownsPort() {
			// The app owns its port (cluster mode, inherited sockets): both are the rolling
			// path, which keeps the app serving.
			return d.rollingReload(a, procs, next)
		}
		return nil, forEach(procs, func(p *supervisor.Process) error { return p.Restart(ctx, next) })
	case api.ActionDelete:
		return nil, d.deleteProcs(a, procs)
	case api.ActionReset:
		return nil, forEach(procs, func(p *supervisor.Process) error { return p.Reset() })
	case api.ActionSignal:
		return nil, forEach(procs, func(p *supervisor.Process) error { return p.Signal(sig) })
	}
	return nil, nil
}

// deleteAll deletes every app, gracefully, in parallel (the daemon is stopping).
func (d *Daemon) deleteAll() {
	var wg sync.WaitGroup
	for _, a := range d.tbl.appsSorted() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = a.submit(context.Background(), opDelete, func() error {
				// Stop accepting first: a connection that comes now is refused at once (the
				// client or the load balancer tries elsewhere) instead of waiting in the
				// backlog for workers that are leaving (docs/containers.md §3.1).
				a.st.closePorts()
				return d.deleteProcs(a, slices.Clone(a.st.procs))
			})
		}()
	}
	wg.Wait()
}

// deleteProcs stops and removes procs of a. The app goes when its last process does (an app
// with none left, such as one whose create failed, goes too). Loop only.
func (d *Daemon) deleteProcs(a *app, procs []*supervisor.Process) error {
	s := a.st.spec
	err := forEach(procs, func(p *supervisor.Process) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout(s))
		defer cancel()
		return p.Delete(ctx)
	})
	for _, p := range procs {
		d.disarmCron(a, p.ID())
		if a.st.group != nil {
			a.st.group.Forget(p.ID())
		}
		d.tbl.removeProc(p.ID())
		a.st.procs = slices.DeleteFunc(a.st.procs, func(x *supervisor.Process) bool { return x == p })
	}
	if len(a.st.procs) > 0 {
		d.settle(a)
		return err
	}
	d.disarmTriggers(a)
	a.st.closePorts()
	a.st.gone = true
	d.tbl.remove(a)
	d.logf("app %s deleted", s.Name)
	return err
}

// Message delivers data to the targets' process.on('message').
func (d *Daemon) Message(ctx context.Context, req api.MessageRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	sel, err := d.tbl.resolve(req.Targets)
	if err != nil {
		return resp, err
	}
	var ids []int
	for _, tg := range sel {
		touched, err := callOp(ctx, tg.app, opMessage, func() ([]int, error) {
			var ids []int
			var errs []error
			for _, p := range tg.pick(tg.app.st.procs) {
				ids = append(ids, p.ID())
				errs = append(errs, p.Send(req.Data))
			}
			return ids, errors.Join(errs...)
		})
		ids = append(ids, touched...)
		if err != nil {
			resp.Errors = append(resp.Errors, err.Error())
		}
	}
	resp.Processes = d.processesByID(ids, false)
	return resp, nil
}

// onMessage publishes a user message a process sent (process.send) on the event stream.
func (d *Daemon) onMessage(id int, m nodeipc.Message) {
	name := ""
	if a := d.tbl.ownerOf(id); a != nil {
		name = a.name
	}
	d.events.publish(api.Event{Time: time.Now(), ID: id, Name: name, Kind: api.EventMessage, Message: string(m.Raw)})
}
