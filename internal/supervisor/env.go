package supervisor

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/spec"
)

// protocolVars are set by corral for the run that needs them and must never be inherited from
// the environment the app was started with (a CLI run from inside a Node child, a systemd
// unit, ...): a stray NODE_UNIQUE_ID would route a fork-mode app's listen() to a primary.
var protocolVars = []string{
	"NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE", "NODE_UNIQUE_ID",
	nodeipc.ChannelFDEnv, nodeipc.WorkerIDEnv,
	"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", PreloadParentEnv,
}

// processEnv is the environment of one run: the app's environment, the instance variable, and
// the PM2 variables apps use to know they are managed (process.env.pm_id).
func processEnv(app *spec.App, id, instance int) map[string]string {
	env := app.Environ()
	for _, k := range protocolVars {
		delete(env, k)
	}
	instanceVar := app.InstanceVar
	if instanceVar == "" {
		instanceVar = spec.DefaultInstanceVar
	}
	env[instanceVar] = strconv.Itoa(instance)
	if v := app.IncrementVar; v != "" {
		// PM2's increment_var: the declared value plus the instance number. A value that is
		// not a number is left as it is (the loader warns about it).
		if n, err := strconv.Atoi(strings.TrimSpace(env[v])); err == nil {
			env[v] = strconv.Itoa(n + instance)
		}
	}
	setDefault(env, "pm_id", strconv.Itoa(id))
	setDefault(env, "name", app.Name)
	setDefault(env, "namespace", app.Namespace)
	if strings.HasPrefix(filepath.Base(app.Interpreter), "python") {
		// Without it Python block-buffers stdout into a pipe and logs arrive late (PM2 sets it too).
		setDefault(env, "PYTHONUNBUFFERED", "1")
	}
	return env
}

func setDefault(env map[string]string, k, v string) {
	if _, ok := env[k]; !ok {
		env[k] = v
	}
}

// RunEnv is the environment a run of process id gets (without the protocol variables, which
// belong to one run only).
func RunEnv(app *spec.App, id, instance int) map[string]string {
	return processEnv(app, id, instance)
}
