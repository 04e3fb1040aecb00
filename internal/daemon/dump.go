package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/persist"
	"github.com/corral-pm/corral/internal/secrets"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// dumpFormat versions the saved list's layout.
const dumpFormat = 1

// dumpFile is the saved process list (CORRAL_HOME/dump.json). Secret values in the apps'
// environments are sealed with the home's key (see package secrets): the file can be read,
// backed up or pasted without leaking them.
type dumpFile struct {
	Format  int       `json:"format"`
	Corral  string    `json:"corral_version"`
	SavedAt time.Time `json:"saved_at"`
	Apps    []dumpApp `json:"apps"`
}

type dumpApp struct {
	App       spec.App   `json:"app"`
	Processes []dumpProc `json:"processes"`
}

type dumpProc struct {
	ID       int    `json:"pm_id"`
	Instance int    `json:"instance"`
	Status   string `json:"status"`
}

func validDump(b []byte) error {
	var f dumpFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("not a saved process list: %w", err)
	}
	if f.Format != dumpFormat {
		return fmt.Errorf("saved process list has format %d; this corral reads format %d", f.Format, dumpFormat)
	}
	return nil
}

// Save writes the process list. An empty list is only written with force: an empty save is
// how PM2 users lose everything at the next boot.
func (d *Daemon) Save(force bool) (api.SaveResponse, error) {
	resp := api.SaveResponse{Path: d.paths.Dump}
	sealer, err := secrets.OpenSealer(d.paths.Key)
	if err != nil {
		return resp, err
	}
	f := dumpFile{Format: dumpFormat, Corral: buildinfo.Version, SavedAt: time.Now().UTC()}
	for _, a := range d.tbl.appsSorted() {
		v := a.snapshot()
		if len(v.procs) == 0 {
			continue // being created or deleted right now: nothing to restore
		}
		s := v.spec.Clone()
		s.Env = sealer.SealEnv(s.Env)
		s.BaseEnv = sealer.SealEnv(s.BaseEnv)
		s.Alerts = sealAlerts(sealer, s.Alerts)
		da := dumpApp{App: s}
		for _, p := range v.procs {
			info := p.Info()
			da.Processes = append(da.Processes, dumpProc{ID: info.ID, Instance: info.Instance, Status: string(info.Status)})
		}
		resp.Procs += len(da.Processes)
		f.Apps = append(f.Apps, da)
	}
	resp.Apps = len(f.Apps)
	if len(f.Apps) == 0 && !force {
		return resp, badRequestError{"nothing to save: no app is running, and saving an empty list would make `resurrect` restore nothing; use `corral save --force` to save it anyway"}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return resp, fmt.Errorf("encode saved list: %w", err)
	}
	if err := persist.SaveWithBackup(d.paths.Dump, append(data, '\n'), 0o600); err != nil {
		return resp, fmt.Errorf("save process list: %w", err)
	}
	d.logf("saved %d apps (%d processes) to %s", resp.Apps, resp.Procs, d.paths.Dump)
	return resp, nil
}

// Resurrect starts the saved apps that are not running. Processes saved as stopped are
// restored stopped. A corrupt list falls back to its backup.
func (d *Daemon) Resurrect(ctx context.Context) (api.ResurrectResponse, error) {
	resp := api.ResurrectResponse{Path: d.paths.Dump}
	data, fromBackup, err := persist.LoadWithFallback(d.paths.Dump, validDump)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return resp, badRequestError{fmt.Sprintf("no saved process list at %s: run `corral save` first", d.paths.Dump)}
		}
		return resp, err
	}
	resp.FromBackup = fromBackup
	if fromBackup {
		d.logf("saved process list %s is unreadable; using its backup", d.paths.Dump)
	}
	var f dumpFile
	if err := json.Unmarshal(data, &f); err != nil {
		return resp, fmt.Errorf("read saved list: %w", err)
	}
	sealer, err := secrets.OpenSealer(d.paths.Key)
	if err != nil {
		return resp, err
	}
	var ids []int
	var errs []string
	for _, da := range f.Apps {
		s := da.App.Clone()
		if d.tbl.lookup(s.Name) != nil {
			resp.Skipped = append(resp.Skipped, s.Name)
			continue
		}
		if s.Env, err = sealer.OpenEnv(s.Env); err == nil {
			s.BaseEnv, err = sealer.OpenEnv(s.BaseEnv)
		}
		if err == nil {
			s.Alerts, err = openAlerts(sealer, s.Alerts)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.Name, err))
			continue
		}
		if err := d.checkNewSpec(&s); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if len(da.Processes) == 0 {
			continue
		}
		if err := checkCount(s.Name, len(da.Processes)); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		instances := make([]int, 0, len(da.Processes))
		start := make([]bool, 0, len(da.Processes))
		for _, p := range da.Processes {
			instances = append(instances, p.Instance)
			start = append(start, p.Status != string(supervisor.StatusStopped))
		}
		created, existing, err := d.createApp(ctx, &s, instances, start)
		if existing != nil {
			resp.Skipped = append(resp.Skipped, s.Name) // started meanwhile by another command
			continue
		}
		ids = append(ids, created...)
		if err != nil {
			errs = append(errs, err.Error())
		}
		resp.Started = append(resp.Started, s.Name)
	}
	resp.Processes = d.processesByID(ids, false)
	if len(errs) > 0 {
		return resp, fmt.Errorf("resurrect: %s", joinLines(errs))
	}
	return resp, nil
}

func joinLines(ss []string) string { return strings.Join(ss, "\n") }
