package daemon

import (
	"fmt"
	"os"
	"strconv"

	"github.com/corral-pm/corral/internal/cpus"
)

// Process-count limits. One command (`scale web 1000000000`, `instances: 10000`) must not be
// able to fork-bomb the host or wedge the daemon: a cluster gains nothing past a few workers
// per core, so the default allows 4 per usable CPU (at least 16), and an operator who means
// it raises the limit with CORRAL_MAX_INSTANCES in the daemon's environment, up to a hard
// ceiling of hardMaxInstances.
const (
	// instancesPerCPU is the default number of processes per usable CPU an app may run.
	instancesPerCPU = 4
	// minMaxInstances is the default limit's floor, for small machines.
	minMaxInstances = 16
	// hardMaxInstances holds whatever CORRAL_MAX_INSTANCES says.
	hardMaxInstances = 1024
	// maxInstancesEnv raises (or lowers) the limit.
	maxInstancesEnv = "CORRAL_MAX_INSTANCES"
)

// instanceLimit is how many processes one app may run, and where that number comes from and
// how to change it, for messages.
func instanceLimit() (limit int, why string) {
	if v, err := strconv.Atoi(os.Getenv(maxInstancesEnv)); err == nil && v > 0 {
		if v > hardMaxInstances {
			return hardMaxInstances, fmt.Sprintf("%s=%d, capped at %d", maxInstancesEnv, v, hardMaxInstances)
		}
		return v, fmt.Sprintf("set by %s=%d in the daemon's environment", maxInstancesEnv, v)
	}
	return max(instancesPerCPU*cpus.Usable(), minMaxInstances), fmt.Sprintf("%d per usable CPU, at least %d; start the daemon with %s=N to allow up to %d",
		instancesPerCPU, minMaxInstances, maxInstancesEnv, hardMaxInstances)
}

// checkCount refuses n processes for app when that is over the limit, saying why.
func checkCount(app string, n int) error {
	if limit, why := instanceLimit(); n > limit {
		return badRequestError{fmt.Sprintf("app %q: %d processes are over the limit of %d per app (%s)", app, n, limit, why)}
	}
	return nil
}
