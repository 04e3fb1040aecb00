// Package worker lets a Go server run as a corral cluster worker, with the same code that runs
// it anywhere else.
//
// Under corral's cluster mode the daemon is the cluster primary: it owns the app's listening
// sockets, accepts every connection and hands it to the next worker, round-robin. A Go server
// only has to get its listener from this package and serve with it:
//
//	ln, err := worker.Listen("tcp", ":8080")
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv := &http.Server{Handler: mux}
//	if err := worker.ServeHTTP(srv, ln); err != nil {
//		log.Fatal(err)
//	}
//
// and its ecosystem file says so:
//
//	module.exports = { apps: [{
//	  name: 'api', script: './api', interpreter: 'none',
//	  exec_mode: 'cluster', instances: 'max',
//	}] }
//
// Each worker then gets its share of the connections on :8080, `corral reload api` replaces the
// workers one by one without failing a request, and `corral scale api 8` adds workers live.
//
// The same binary degrades gracefully everywhere else:
//
//   - under systemd-style socket activation (LISTEN_FDS), Listen returns the inherited socket
//     and Ready sends sd_notify READY=1;
//   - otherwise Listen is net.Listen, Ready does nothing, and Shutdown closes on SIGINT or
//     SIGTERM, so ServeHTTP still drains gracefully on Ctrl-C.
//
// # How it works
//
// corral starts a cluster worker with two variables, CORRAL_CHANNEL_FD (an inherited AF_UNIX
// socket) and CORRAL_WORKER_ID. On that channel the worker speaks the protocol of Node.js's
// cluster module (one JSON message per line; connections travel as file descriptors with
// SCM_RIGHTS), playing the part of Node's worker. When the package initialises, it removes
// both variables from the environment and makes the channel close-on-exec (so no child process
// of the server takes itself for a worker), and announces the worker as online.
//
// Listen asks the daemon for the socket (queryServer). The daemon either keeps the socket and
// hands this worker its connections (round-robin, the default), or hands over the listening
// socket itself (sched_policy 'shared'); the returned listener works the same either way.
// Readiness is the first successful Listen (corral marks the worker online when it listens),
// or, with wait_ready, a call to Ready.
//
// # Request metrics
//
// In cluster mode, ServeHTTP counts the requests it serves, by status class and with their
// latency, and reports them to corral about once a second, with the Go heap, as corral's Node
// preload does for Node workers: `corral describe`, `jlist` and /metrics show them
// (docs/node-cluster-protocol.md §10.1 in corral's repository). A request costs a few atomic
// additions and two clock reads; CORRAL_REQUEST_METRICS=0 in the app's environment turns the
// counting off. Outside corral nothing is counted.
//
// # Stopping
//
// When corral stops or replaces a worker (stop, reload, scale down), it takes the worker out of
// the rotation and asks it to disconnect. The worker then closes every listener Listen
// returned, closes Shutdown (and cancels Context), lets every ServeHTTP drain, tells corral it
// is leaving (Node's exitedAfterDisconnect, so that no connection is lost in the channel), and
// only then closes the channel, which tells corral it has finished; corral then sends the app's
// kill_signal (SIGINT by default), and SIGKILL after kill_timeout. The package never exits the
// process itself: a server using ServeHTTP simply returns from main.
//
// If no ServeHTTP is running, the channel is closed at once after the listeners: a program that
// serves some other way (gRPC, a custom loop) should watch Shutdown and finish its work within
// kill_timeout, because corral's kill_signal follows right away. The package catches SIGINT and
// SIGTERM only once Shutdown, Context or ServeHTTP has been called; a program that never calls
// them keeps Go's default signal behaviour.
//
// A worker stopped another way (SIGINT or SIGTERM sent to it directly, or the 'shutdown'
// message with shutdown_with_message) does the same: its listeners close at once, so corral
// hands its connections to the other workers. If the channel to the daemon closes unexpectedly
// (the daemon was killed), the worker shuts down the same way.
package worker
