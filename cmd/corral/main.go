// Command corral is a process manager: PM2's commands and ecosystem files, with a cluster mode
// for Node.js and any other language. The same binary is the CLI and the daemon: this package
// wires them together, so that the CLI (a client of the daemon's API) never imports the daemon.
package main

import (
	"os"

	"github.com/corral-pm/corral/internal/cli"
	"github.com/corral-pm/corral/internal/daemon"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/listenexec"
)

func main() {
	listenexec.MaybeRun(os.Args)
	os.Exit(cli.Main(os.Args[1:], newDaemon))
}

// newDaemon is how `corral daemon` and `corral run` get the daemon they run in the foreground.
func newDaemon(paths home.Paths, resurrect bool) (cli.Daemon, error) {
	return daemon.New(daemon.Options{Paths: paths, Resurrect: resurrect})
}
