package main

import (
	"net"

	"github.com/corral-pm/corral/worker"
)

// listen opens the app's listening socket through corral's worker package: under corral's
// cluster mode it is the app's port, owned by the daemon, which hands this worker its share of
// the connections (every worker listens on the same PORT); under systemd-style socket
// activation it is the inherited socket; otherwise it is net.Listen, so the app runs
// standalone unchanged.
func listen(addr string) (net.Listener, error) {
	return worker.Listen("tcp", addr)
}
