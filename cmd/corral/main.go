// Command corral is a process manager: PM2's commands and ecosystem files, with a cluster mode
// for Node.js and any other language. The same binary is the CLI and the daemon.
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/corral-pm/corral/internal/cli"
	"github.com/corral-pm/corral/internal/supervisor"
)

func main() {
	if len(os.Args) > 3 && os.Args[1] == supervisor.ExecShimCommand {
		execWithListenPID(os.Args[2], os.Args[3:])
	}
	os.Exit(cli.Main(os.Args[1:]))
}

// execWithListenPID completes systemd's socket activation for a run the daemon started with
// inherited sockets: LISTEN_PID must be the program's own pid, which the daemon cannot know
// before it forks. Here, in the forked process, it is ours, and exec keeps it. path is the
// program (already resolved by the daemon), argv its command line.
func execWithListenPID(path string, argv []string) {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	err := syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "corral: cannot start %s: %v\n", path, err)
	os.Exit(126)
}
