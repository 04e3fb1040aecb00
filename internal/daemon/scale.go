package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cpus"
	"github.com/corral-pm/corral/internal/supervisor"
)

// Scale sets an app's number of processes (PM2's `scale`): "N", "max", "+N" or "-N", relative
// to the count when the operation runs. Scaling up starts new processes with the lowest free
// instance numbers; scaling down stops the processes with the lowest ids (as PM2 does), each
// drained gracefully first.
func (d *Daemon) Scale(ctx context.Context, req api.ScaleRequest) (api.ActionResponse, error) {
	var resp api.ActionResponse
	a := d.tbl.lookup(req.App)
	if a == nil {
		if id, err := strconv.Atoi(req.App); err == nil {
			a = d.tbl.ownerOf(id)
		}
	}
	if a == nil {
		return resp, notFoundError{target: req.App}
	}
	count, err := parseScaleCount(req.Count)
	if err != nil {
		return resp, badRequestError{err.Error()}
	}
	ids, err := callOp(ctx, a, opScale, func() ([]int, error) {
		want, err := count.target(len(a.st.procs))
		if err != nil {
			return nil, badRequestError{err.Error()}
		}
		if err := checkCount(a.name, want); err != nil {
			return nil, err
		}
		err = d.scaleTo(a, want)
		return procIDsList(a.st.procs), err
	})
	switch {
	case errors.As(err, new(notFoundError)), errors.As(err, new(badRequestError)):
		return resp, err
	case err != nil:
		resp.Errors = append(resp.Errors, err.Error())
	}
	resp.Processes = d.processesByID(ids, false)
	return resp, nil
}

// scaleTo brings a to want processes. Loop only.
func (d *Daemon) scaleTo(a *app, want int) error {
	s := a.st.spec
	current := len(a.st.procs)
	switch {
	case want < current:
		victims := slices.Clone(a.st.procs[:current-want])
		d.logf("scaling %s from %d to %d: stopping %s", s.Name, current, want, procIDs(victims))
		return d.deleteProcs(a, victims)
	case want > current:
		used := map[int]bool{}
		for _, p := range a.st.procs {
			used[p.Info().Instance] = true
		}
		var instances []int
		for n := 0; len(instances) < want-current; n++ {
			if !used[n] {
				instances = append(instances, n)
			}
		}
		added := d.addProcs(a, instances)
		a.publish()
		d.logf("scaling %s from %d to %d: starting %s", s.Name, current, want, procIDs(added))
		for _, p := range added {
			d.armCron(a, p)
		}
		return forEach(added, func(p *supervisor.Process) error { return p.Start() })
	}
	return nil
}

// scaleCount is a parsed scale count: "N", "max", "+N" or "-N".
type scaleCount struct {
	n        int
	max      bool
	relative bool // n is added to the current count (negative for "-N")
}

// parseScaleCount reads a scale count; its meaning depends on the count when the scale runs.
func parseScaleCount(count string) (scaleCount, error) {
	c := strings.TrimSpace(count)
	bad := fmt.Errorf("scale count %q: use N, max, +N or -N", count)
	switch {
	case c == "max" || c == "0":
		return scaleCount{max: true}, nil
	case strings.HasPrefix(c, "+") || strings.HasPrefix(c, "-"):
		n, err := strconv.Atoi(c[1:])
		if err != nil || n < 0 || strings.HasPrefix(c[1:], "+") || strings.HasPrefix(c[1:], "-") {
			return scaleCount{}, bad
		}
		if c[0] == '-' {
			n = -n
		}
		return scaleCount{n: n, relative: true}, nil
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 0 {
		return scaleCount{}, bad
	}
	return scaleCount{n: n}, nil
}

// target is the number of processes the count asks for, given the current one.
func (sc scaleCount) target(current int) (int, error) {
	want := sc.n
	switch {
	case sc.max:
		want = cpus.Usable()
	case sc.relative:
		want = current + sc.n
	}
	switch {
	case want >= 1:
		return want, nil
	case sc.relative:
		return 0, fmt.Errorf("an app keeps at least 1 process (it runs %d, and %+d would leave %d): use `corral stop` or `corral delete` to stop it", current, sc.n, want)
	}
	return 0, fmt.Errorf("an app keeps at least 1 process (asked for %d): use `corral stop` or `corral delete` to stop it", want)
}
