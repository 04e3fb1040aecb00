package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// checkUpgrade asks binary which keeper protocol and hand-over states it reads, and refuses
// an upgrade to one that could not take this daemon's apps over.
func (d *Daemon) checkUpgrade(ctx context.Context, binary string) error {
	if d.keeper == nil {
		return conflictError{"this daemon runs without a keeper (started with --no-keeper, or by `corral run`): a hot upgrade needs one; stop it and start corral again"}
	}
	if !filepath.IsAbs(binary) {
		return badRequestError{fmt.Sprintf("update to %q: the binary must be given by its absolute path", binary)}
	}
	if st, err := os.Stat(binary); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return badRequestError{fmt.Sprintf("update to %s: not an executable file (%v)", binary, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "keeper", "--handover-version").Output()
	if err != nil {
		return conflictError{fmt.Sprintf("%s cannot say which hand-over state it reads (%v): it is too old for a hot upgrade, or not corral; nothing changed", binary, err)}
	}
	var v keeper.Versions
	if err := json.Unmarshal(out, &v); err != nil {
		return conflictError{fmt.Sprintf("%s keeper --handover-version answered %q: nothing changed", binary, out)}
	}
	if want := (keeper.Versions{Keeper: keeper.HandoverVersion, Protocol: keeper.ProtocolVersion, Daemon: api.HandoverVersion}); v != want {
		return conflictError{fmt.Sprintf("%s reads keeper state %d, keeper protocol %d and daemon state %d; this corral has %d, %d and %d: it could not take the apps over, so nothing changed (to change anyway: `corral save`, `corral kill`, then `corral resurrect` with the new binary)",
			binary, v.Keeper, v.Protocol, v.Daemon, want.Keeper, want.Protocol, want.Daemon)}
	}
	return nil
}

// Upgrade is POST /v1/update: a hot upgrade to req.Binary (this daemon's binary when empty).
// It checks the binary, then answers; the daemon then leaves without stopping anything
// (leaveForUpgrade) and its keeper starts the new binary.
func (d *Daemon) Upgrade(ctx context.Context, req api.UpdateRequest) (api.UpdateResponse, error) {
	binary := req.Binary
	if binary == "" {
		binary = d.exe
	}
	if err := d.checkUpgrade(ctx, binary); err != nil {
		return api.UpdateResponse{}, err
	}
	if !d.upgrading.CompareAndSwap(false, true) {
		return api.UpdateResponse{}, conflictError{"an update is under way already"}
	}
	d.upgradeTo = binary
	d.logf("update requested: leaving for %s; every app keeps running", binary)
	// Run's loop ends; leaveForUpgrade's server shutdown waits for this answer to go out.
	go d.shutdown()
	return api.UpdateResponse{PID: os.Getpid(), From: buildinfo.Version, Binary: binary}, nil
}

// leaveForUpgrade ends Run for a hot upgrade: the hand-over state is written a last time, the
// keeper is told to start the new binary, and the daemon exits with every app running. Their
// channels and pipes stay open in the keeper; the next daemon reads them on.
func (d *Daemon) leaveForUpgrade() error {
	d.cron.Stop()
	d.saveHandover()
	d.saveHistory()
	// The next daemon binds the same HTTP address: free it first.
	d.closeHTTP()
	if err := d.keeper.UpgradeTo(d.upgradeTo); err != nil {
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
