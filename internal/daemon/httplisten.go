package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/settings"
)

// The HTTP listener is corral's optional TCP side: the control API stays on the owner-only
// unix socket, and this listener serves only what is safe to read from another process or host
// (today /metrics; later a dashboard and health probes). It is off unless CORRAL_HTTP_LISTEN or
// the http.listen setting names an address. It is bound at daemon start, and again when
// `corral set`/`unset http.listen` asks the daemon to apply the setting (ApplyHTTPListen).

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
	d.probeRoutes(mux)
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
			Handler:           recoverHandler("HTTP listener", d.onPanic, d.httpRoutes()),
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
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	return d.httpAddrLocked()
}

func (d *Daemon) httpAddrLocked() string {
	if d.http == nil {
		return ""
	}
	return d.http.ln.Addr().String()
}

// closeHTTP closes the listener for good (the daemon stops or leaves for an upgrade, whose
// next daemon binds the same address): a rebind asked for later is refused.
func (d *Daemon) closeHTTP() {
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	d.http.close()
	d.http, d.httpClosed = nil, true
}

// ApplyHTTPListen reads the http.listen setting again and moves the listener to it now
// (docs/metrics.md §1.2): the new address is bound before the old listener closes, so a
// failure (the port is taken, the host is not this machine's) changes nothing and the error
// says which address, why, and how to change it. An address that CORRAL_HTTP_LISTEN gave the
// daemon at start wins over the setting, as it does at start: it is kept, and the answer's
// Source says so. The unchanged setting changes nothing either (the listener keeps its port,
// even a port 0 picked).
func (d *Daemon) ApplyHTTPListen() (api.HTTPListenResponse, error) {
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	if d.httpClosed {
		return api.HTTPListenResponse{}, conflictError{"the daemon is stopping: the setting applies when the next one starts"}
	}
	if d.httpSource == settings.EnvHTTPListen {
		return api.HTTPListenResponse{Address: d.httpAddrLocked(), Source: settings.EnvHTTPListen, Configured: d.httpListen}, nil
	}
	values, err := settings.Load(d.paths.Settings)
	if err != nil {
		return api.HTTPListenResponse{}, badRequestError{err.Error()}
	}
	addr := values[settings.HTTPListen]
	if err := settings.Check(settings.HTTPListen, addr); err != nil {
		return api.HTTPListenResponse{}, badRequestError{fmt.Sprintf("%v (in %s; fix it with `corral set %s ADDRESS` or `corral unset %s`)",
			err, d.paths.Settings, settings.HTTPListen, settings.HTTPListen)}
	}
	source := "setting " + settings.HTTPListen
	if addr == d.httpListen {
		return api.HTTPListenResponse{Address: d.httpAddrLocked(), Source: source, Configured: addr}, nil
	}
	var next *httpListener
	if addr != "" {
		if next, err = d.startHTTP(addr, source); err != nil {
			kept := "the HTTP listener stays off"
			if old := d.httpAddrLocked(); old != "" {
				kept = "the daemon keeps serving /metrics on " + old
			}
			d.logf("%v; %s", err, kept)
			return api.HTTPListenResponse{}, conflictError{fmt.Sprintf("%v; %s", err, kept)}
		}
	}
	old := d.http
	if old != nil {
		d.logf("HTTP listener on %s closed: %s is now %q", old.ln.Addr(), settings.HTTPListen, addr)
	}
	d.http, d.httpListen, d.httpSource = next, addr, source
	old.close()
	return api.HTTPListenResponse{Address: d.httpAddrLocked(), Source: source, Configured: addr, Changed: true}, nil
}
