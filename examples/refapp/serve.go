package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"
)

// shutdownTimeout bounds the graceful shutdown (keep it under the ecosystem's kill_timeout).
const shutdownTimeout = 8 * time.Second

// serve serves srv on ln until SIGINT or SIGTERM, then shuts down gracefully: stop accepting,
// let the requests in flight finish (up to shutdownTimeout), close idle keep-alive
// connections. It is the one place that serves, so that corral's worker package
// (worker.ServeHTTP) can take its place in one edit.
func serve(srv *http.Server, ln net.Listener) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills as usual
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
