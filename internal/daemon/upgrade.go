package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/keeper"
)

// version is what GET /v1/version answers: this daemon, and its keeper's history.
func (d *Daemon) version() api.Version {
	v := api.Version{Version: buildinfo.Version, PID: os.Getpid(), Home: d.paths.Home, Started: d.started}
	if d.keeper != nil {
		i := d.keeperInfo
		v.Keeper = &api.KeeperInfo{PID: i.KeeperPID, Started: i.KeeperStarted, Restarts: max(i.DaemonStarts-1, 0),
			Upgrades: i.Upgrades, LastExit: i.LastExit, Unadoptable: d.unadoptable}
	}
	return v
}

// checkUpgrade asks the binary on disk which keeper protocol and hand-over state it reads,
// and refuses an upgrade to one that cannot take this daemon's apps over.
func (d *Daemon) checkUpgrade(ctx context.Context) error {
	if d.keeper == nil {
		return conflictError{"this daemon runs without a keeper (started with --no-keeper, or by `corral run`): a hot upgrade needs one; stop it and start corral again"}
	}
	if d.exe == "" {
		return errors.New("cannot tell which binary this daemon runs")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.exe, "keeper", "--handover-version").Output()
	if err != nil {
		return conflictError{fmt.Sprintf("%s cannot say which hand-over state it reads (%v): it is too old for a hot upgrade, or not corral; nothing changed", d.exe, err)}
	}
	var v keeper.Versions
	if err := json.Unmarshal(out, &v); err != nil {
		return conflictError{fmt.Sprintf("%s keeper --handover-version answered %q: nothing changed", d.exe, out)}
	}
	if want := (keeper.Versions{Keeper: keeper.HandoverVersion, Protocol: keeper.ProtocolVersion, Daemon: api.HandoverVersion}); v != want {
		return conflictError{fmt.Sprintf("%s reads keeper state %d, keeper protocol %d and daemon state %d; this corral has %d, %d and %d: it could not take the apps over, so nothing changed (to change anyway: `corral save`, `corral kill`, then `corral resurrect` with the new binary)",
			d.exe, v.Keeper, v.Protocol, v.Daemon, want.Keeper, want.Protocol, want.Daemon)}
	}
	return nil
}

// handleUpdate is POST /v1/update: a hot upgrade. The answer is sent first; then the daemon
// leaves without stopping anything (leaveForUpgrade) and its keeper starts the binary on disk.
func (d *Daemon) handleUpdate(w http.ResponseWriter, r *http.Request) {
	if err := d.checkUpgrade(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	d.logf("update requested: leaving for %s; every app keeps running", d.exe)
	writeJSON(w, http.StatusOK, api.UpdateResponse{PID: os.Getpid(), From: buildinfo.Version, Binary: d.exe})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	d.upgrading.Store(true)
	go d.shutdown()
}

// leaveForUpgrade ends Run for a hot upgrade: the hand-over state is written a last time, the
// keeper is told to start the new binary, and the daemon exits with every app running. Their
// channels and pipes stay open in the keeper; the next daemon reads them on.
func (d *Daemon) leaveForUpgrade() error {
	d.cron.Stop()
	d.saveHandover()
	if err := d.keeper.Upgrade(); err != nil {
		d.logf("cannot ask the keeper for the upgrade: %v", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = d.server.Shutdown(shutdownCtx)
	d.logf("corral daemon %s left for the upgrade", buildinfo.Version)
	d.logFile.Close()
	// Exit now: returning would run deferred clean-ups meant for a daemon that stops its
	// apps (and goroutines that still read the apps' channels would race the next daemon).
	os.Exit(0)
	return nil
}
