// Command corral is a process manager: PM2's commands and ecosystem files, with a cluster mode
// for Node.js and any other language. The same binary is the CLI and the daemon.
package main

import (
	"os"

	"github.com/corral-pm/corral/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
