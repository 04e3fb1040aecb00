package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/corral-pm/corral/internal/settings"
)

// The HTTP listener is corral's optional TCP side: the control API stays on the owner-only
// unix socket, and this listener serves only what is safe to read from another process or host
// (today /metrics; later a dashboard and health probes). It is off unless CORRAL_HTTP_LISTEN or
// the http.listen setting names an address, and is bound once, at daemon start.

// httpListener is the daemon's optional TCP listener and its routes.
type httpListener struct {
	server *http.Server
	ln     net.Listener
	done   chan struct{}
}

// httpRoutes are the listener's routes: one mux, so later endpoints (dashboard, health) join
// /metrics here.
func (d *Daemon) httpRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metricsHandler())
	d.webRoutes(mux)
	return mux
}

// startHTTP binds addr and serves the listener's routes. A non-loopback address is served (the
// user named it) with a warning in the daemon log: /metrics shows app names to anyone who can
// connect.
func (d *Daemon) startHTTP(addr, source string) (*httpListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP listener (%s) on %s: %w; choose a free address with `corral set %s HOST:PORT` or turn it off with `corral unset %s`",
			source, addr, err, settings.HTTPListen, settings.HTTPListen)
	}
	if !settings.IsLoopback(addr) {
		d.logf("warning: the HTTP listener (%s) is on %s, which is not a loopback address: anyone who can reach it can read /metrics", source, addr)
	}
	h := &httpListener{
		ln:   ln,
		done: make(chan struct{}),
		server: &http.Server{
			Handler:           d.httpRoutes(),
			ReadHeaderTimeout: apiReadHeaderTimeout,
			ReadTimeout:       apiReadTimeout,
			WriteTimeout:      apiReadTimeout,
			IdleTimeout:       apiIdleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          log.New(d.logWriter(), "HTTP listener: ", 0),
		},
	}
	go func() {
		defer close(h.done)
		if err := h.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logf("HTTP listener on %s failed: %v", ln.Addr(), err)
		}
	}()
	d.logf("HTTP listener (%s) serves /metrics on http://%s/metrics", source, ln.Addr())
	return h, nil
}

// close stops the listener and waits for its server to return.
func (h *httpListener) close() {
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.server.Shutdown(ctx)
	<-h.done
}

// HTTPAddr is the bound address of the HTTP listener ("" when it is off): tests ask for port 0
// and read the port here.
func (d *Daemon) HTTPAddr() string {
	if d.http == nil {
		return ""
	}
	return d.http.ln.Addr().String()
}
