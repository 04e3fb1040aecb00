package main

import (
	"net"
	"net/http"
	"time"

	"github.com/corral-pm/corral/worker"
)

// shutdownTimeout bounds the graceful shutdown (keep it under the ecosystem's kill_timeout):
// past it, the requests still in flight are cut.
const shutdownTimeout = 8 * time.Second

// serve serves srv on ln with corral's worker package until the worker is asked to stop
// (corral's disconnect on stop, reload or scale down; SIGINT or SIGTERM, also standalone),
// then drains: no new connections, the requests in flight finish, keep-alive clients are
// answered with "Connection: close", idle connections are closed. It returns nil after a
// drain, so main returns and the process exits 0.
func serve(srv *http.Server, ln net.Listener) error {
	// Ready after the listen: the worker has migrated, seeded and listens. Under corral this
	// is what wait_ready waits for (without wait_ready the listen itself counts); under
	// systemd it is sd_notify READY=1; standalone a no-op. A failure is only logged: the worker
	// serves anyway.
	if err := worker.Ready(); err != nil && srv.ErrorLog != nil {
		srv.ErrorLog.Printf("telling the process manager the worker is ready: %v", err)
	}
	// The drain has no time limit of its own (corral's kill_timeout bounds it); standalone
	// nothing would, so what is still in flight is cut after shutdownTimeout.
	return worker.ServeHTTP(srv, ln, worker.DrainTimeout(shutdownTimeout))
}
