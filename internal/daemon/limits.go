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

// maxInstances is how many processes one app may run.
func maxInstances() int {
	if v, err := strconv.Atoi(os.Getenv(maxInstancesEnv)); err == nil && v > 0 {
		return min(v, hardMaxInstances)
	}
	return max(instancesPerCPU*cpus.Usable(), minMaxInstances)
}

// maxInstancesHint says where the limit comes from and how to change it.
func maxInstancesHint() string {
	if v, err := strconv.Atoi(os.Getenv(maxInstancesEnv)); err == nil && v > 0 {
		if v > hardMaxInstances {
			return fmt.Sprintf("%s=%d, capped at %d", maxInstancesEnv, v, hardMaxInstances)
		}
		return fmt.Sprintf("set by %s=%d in the daemon's environment", maxInstancesEnv, v)
	}
	return fmt.Sprintf("%d per usable CPU, at least %d; start the daemon with %s=N to allow up to %d",
		instancesPerCPU, minMaxInstances, maxInstancesEnv, hardMaxInstances)
}
