// Package listenexec is the exec shim that completes systemd's socket-activation protocol for
// the processes corral starts with inherited sockets (docs/socket-activation.md): LISTEN_PID
// must be the program's own pid, which the daemon cannot know before it forks. The daemon
// starts `corral __listen-exec <path> <argv...>` instead of the program; the shim, already in
// the forked process, sets LISTEN_PID to its own pid and execs the program in place, which
// keeps the pid.
package listenexec

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Command is the hidden corral command that runs the shim.
const Command = "__listen-exec"

// Argv is the command line that runs program (already resolved to path) through the shim
// binary corral.
func Argv(corral, path string, argv []string) []string {
	return append([]string{corral, Command, path}, argv...)
}

// MaybeRun runs the shim if args (os.Args) ask for it, and never returns then. It is called
// first thing in main, before anything else is initialised.
func MaybeRun(args []string) {
	if len(args) > 3 && args[1] == Command {
		run(args[2], args[3:])
	}
}

// run sets LISTEN_PID and execs path with argv; it only returns by exiting, with 126 (the
// shell's "cannot execute") when exec fails.
func run(path string, argv []string) {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	err := syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "corral: cannot start %s: %v\n", path, err)
	os.Exit(126)
}
