package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/corral-pm/corral/internal/api"
)

// savedList is what the saved check reads of the daemon's dump.json (internal/daemon/dump.go):
// the apps and their process slots. Secrets in it are sealed; they are not read.
type savedList struct {
	Apps []struct {
		App struct {
			Name     string   `json:"name"`
			Script   string   `json:"script"`
			Args     []string `json:"args"`
			ExecMode string   `json:"exec_mode"`
		} `json:"app"`
		Processes []struct {
			ID int `json:"pm_id"`
		} `json:"processes"`
	} `json:"apps"`
}

// checkSaved compares the saved process list with what runs: after a reboot, `resurrect`
// (and the startup unit) brings back what was saved, not what runs.
func (x *run) checkSaved(ctx context.Context, procs []api.Process) {
	c := x.rep.check(CheckSaved)
	c.Threshold = "the saved list has the app as it runs"
	fix := fmt.Sprintf("run corral save, so that a reboot (corral startup, corral resurrect) brings back %s as it runs now", x.o.App)
	raw, err := os.ReadFile(x.r.DumpPath)
	if errors.Is(err, fs.ErrNotExist) {
		c.Status, c.Reason = Fail, "nothing is saved: "+fix
		return
	}
	if err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("cannot read the saved list: %v", err)
		return
	}
	var list savedList
	if err := json.Unmarshal(raw, &list); err != nil {
		c.Status, c.Reason = Fail, fmt.Sprintf("the saved list %s does not parse (%v): %s", x.r.DumpPath, err, fix)
		return
	}
	cur := procs[0].App
	for _, a := range list.Apps {
		if a.App.Name != x.o.App {
			continue
		}
		var diff []string
		if n := len(a.Processes); n != len(procs) {
			diff = append(diff, fmt.Sprintf("%d processes saved, %d running", n, len(procs)))
		}
		if a.App.Script != cur.Script || !slices.Equal(a.App.Args, cur.Args) {
			diff = append(diff, fmt.Sprintf("saved script %q, running %q", strings.TrimSpace(a.App.Script+" "+strings.Join(a.App.Args, " ")), strings.TrimSpace(cur.Script+" "+strings.Join(cur.Args, " "))))
		}
		if a.App.ExecMode != cur.ExecMode {
			diff = append(diff, fmt.Sprintf("saved in %s mode, running in %s mode", a.App.ExecMode, cur.ExecMode))
		}
		c.Figure = fmt.Sprintf("saved: %s, %d processes, %s mode", x.o.App, len(a.Processes), a.App.ExecMode)
		if len(diff) > 0 {
			c.Status, c.Reason = Fail, "the saved list differs from what runs ("+strings.Join(diff, "; ")+"): "+fix
			return
		}
		c.Status = Pass
		return
	}
	c.Status, c.Reason = Fail, fmt.Sprintf("%s is not in the saved list: %s", x.o.App, fix)
}
