package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/corral-pm/corral/internal/web"
)

// The dashboard's daemon side (docs/web.md): its routes on the HTTP listener, the history the
// sampler fills, and the live stream. Every /web/api/ route needs the token; processes are the
// API's masked views (Processes(false)): the dashboard never reveals a secret.

// webPath is where the page lives on the listener.
const webPath = "/web/"

// webState is the dashboard's part of the daemon, made when the listener's routes are.
type webState struct {
	guard *web.Guard
	token string
	err   error // why the token could not be read: the API then answers 503
	hist  *web.History
	// exposedWarned: the daemon log has said that the dashboard answers on a non-loopback
	// address (said once, at the first such request).
	exposedWarned atomic.Bool

	mu     sync.Mutex
	latest []api.Process // the processes at the last sample
	// latestEvent is latest as a "state" event, encoded once for every stream (the daemon
	// runs on one P: N open pages must not mean N encodings a sample); nil until asked for.
	latestEvent []byte
	tick        chan struct{} // closed (and replaced) at every sample

	// closing maps each listener's *http.Server to a channel closed when it shuts down (the
	// listener moved or was turned off: `corral set http.listen`), so that the streams it
	// serves end with it; http.Server.Shutdown does not wait for them, nor end them.
	closing sync.Map
}

// streamContext is r's context, also cancelled when the server that took r shuts down.
func (ws *webState) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return ctx, cancel
	}
	ch, loaded := ws.closing.LoadOrStore(srv, make(chan struct{}))
	if !loaded {
		srv.RegisterOnShutdown(func() {
			ws.closing.Delete(srv)
			close(ch.(chan struct{}))
		})
	}
	go func() {
		select {
		case <-ch.(chan struct{}):
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// webLogLines bounds the history one log tail asks for.
const webLogLines = 1000

// webActions are the lifecycle actions the page offers (each behind a confirmation).
var webActions = []api.Action{api.ActionReload, api.ActionRestart, api.ActionStop, api.ActionStart}

// webRoutes adds the dashboard to the listener's mux (called from httpRoutes).
func (d *Daemon) webRoutes(mux *http.ServeMux) {
	ws := d.webInit()
	mux.Handle("GET /web", http.RedirectHandler(webPath, http.StatusFound))
	mux.Handle("GET "+webPath, http.StripPrefix("/web", web.Assets(ws.guard)))
	guarded := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !web.OnLoopback(r) && ws.exposedWarned.CompareAndSwap(false, true) {
				d.logf("warning: the web dashboard answers on %s, which is not a loopback address: anyone who can reach it can try tokens, and the token crosses the network in clear (docs/web.md)", r.Context().Value(http.LocalAddrContextKey))
			}
			if !ws.guard.SameSite(w, r) {
				return
			}
			if ws.err != nil {
				// The reason names paths in the home: it goes to the daemon log and to
				// `corral web`, not to whoever asks here.
				writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: "the dashboard's token could not be read: run `corral web` to see why", Code: api.CodeInternal})
				return
			}
			if !ws.guard.Authorized(w, r) {
				return
			}
			w.Header().Set(api.HeaderVersion, buildinfo.Version)
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			h(w, r)
		})
	}
	guarded("GET /web/api/state", d.webState)
	guarded("GET /web/api/stream", d.webStream)
	guarded("GET /web/api/logs", d.webLogs)
	guarded("GET /web/api/alerts", d.handleAlerts) // firing and recent alerts, the sinks' counters (masked)
	guarded("POST /web/api/actions/{action}", d.webAct)
	guarded("POST /web/api/scale", d.webScale)
}

// webInit makes the dashboard's state once, however many times the routes are built.
func (d *Daemon) webInit() *webState {
	if ws := d.web.Load(); ws != nil {
		return ws
	}
	tok, err := web.LoadToken(d.paths.Home)
	if err != nil {
		d.logf("the web dashboard is not served: %v", err)
		tok = "" // the guard refuses every request when there is no token
	}
	ws := &webState{
		token: tok,
		err:   err,
		guard: web.NewGuard(tok),
		hist:  web.NewHistory(d.interval),
		tick:  make(chan struct{}),
	}
	if kept := d.keptWeb.Swap(nil); kept != nil {
		ws.hist.Restore(*kept) // the previous daemon's charts (history.go)
	}
	if !d.web.CompareAndSwap(nil, ws) {
		return d.web.Load()
	}
	return ws
}

// webSample records the sampler's figures in the dashboard's history and wakes its streams.
// Called by sampleOnce, with the sample's listing and cluster statistics; nothing when the
// dashboard is not served.
func (d *Daemon) webSample(all []listed, stats groupStats, now time.Time) {
	ws := d.web.Load()
	if ws == nil {
		return
	}
	procs := d.describeAll(all, false, stats)
	points := make(map[int]web.Point, len(procs))
	for _, p := range procs {
		pt := web.Point{T: now.UnixMilli(), CPU: p.CPU, Mem: p.Memory}
		if c := p.Cluster; c != nil {
			pt.Req, pt.Conn = c.ReqPerSec, c.ConnPerSec
		}
		points[p.ID] = pt
	}
	ws.hist.Record(points)
	ws.mu.Lock()
	ws.latest, ws.latestEvent = procs, nil
	close(ws.tick)
	ws.tick = make(chan struct{})
	ws.mu.Unlock()
}

// current is the last sample's "state" event and the channel closed at the next sample.
func (ws *webState) current() ([]byte, <-chan struct{}) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.latestEvent == nil {
		ws.latestEvent = encodeEvent("state", ws.latest)
	}
	return ws.latestEvent, ws.tick
}

// next is the channel closed at the next sample.
func (ws *webState) next() <-chan struct{} {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.tick
}

// encodeEvent is one server-sent event: its name, and v in JSON as its data (on one line: JSON
// has no raw newlines).
func encodeEvent(name string, v any) []byte {
	var buf bytes.Buffer
	buf.WriteString("event: " + name + "\ndata: ")
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Process views and events always encode; an event that could not would be skipped.
		return nil
	}
	buf.WriteString("\n")
	return buf.Bytes()
}

// WebState is the page's first load: the processes now and the charts' history.
type WebState struct {
	Version    string              `json:"version"`
	PID        int                 `json:"pid"`
	Home       string              `json:"home"`
	IntervalMS int64               `json:"interval_ms"`
	WindowMS   int64               `json:"window_ms"`
	Processes  []api.Process       `json:"processes"`
	History    map[int][]web.Point `json:"history"`
}

func (d *Daemon) webState(w http.ResponseWriter, r *http.Request) {
	ws := d.web.Load()
	writeJSON(w, http.StatusOK, WebState{
		Version:    buildinfo.Version,
		PID:        d.version().PID,
		Home:       d.paths.Home,
		IntervalMS: d.interval.Milliseconds(),
		WindowMS:   web.Window.Milliseconds(),
		Processes:  d.Processes(false),
		History:    ws.hist.Snapshot(time.Now()),
	})
}

// webHeartbeat keeps idle streams visibly alive (and lets the server notice a client gone).
const webHeartbeat = 15 * time.Second

// webWriteTimeout bounds each write of a stream: the listener's WriteTimeout would cut a
// stream meant to last, so each write gets its own deadline instead, and a client that stops
// reading is dropped rather than holding a goroutine and a connection for ever.
const webWriteTimeout = 30 * time.Second

// streamWriter is a ResponseWriter whose every write and flush has webWriteTimeout.
type streamWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func newStreamWriter(w http.ResponseWriter) *streamWriter {
	return &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
}

func (s *streamWriter) Write(b []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(webWriteTimeout))
	return s.ResponseWriter.Write(b)
}

func (s *streamWriter) Flush() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(webWriteTimeout))
	_ = s.rc.Flush()
}

func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// webStream is the page's live feed, in server-sent events format read with fetch() (an
// EventSource cannot send the token): "state" with every process at each sample, "event" with
// each process event as it happens (a reload's progress, worker by worker). It ends when the
// client goes or the daemon stops.
func (d *Daemon) webStream(w http.ResponseWriter, r *http.Request) {
	ws := d.web.Load()
	ctx, cancel := ws.streamContext(r)
	defer cancel()
	w = newStreamWriter(w)
	sub := d.events.subscribe()
	defer d.events.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	send := func(ev []byte) bool {
		if _, err := w.Write(ev); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	tick := ws.next()
	if !send(encodeEvent("state", d.Processes(false))) {
		return
	}
	beat := time.NewTicker(webHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.quit:
			return
		case <-tick:
			var state []byte
			state, tick = ws.current()
			if !send(state) {
				return
			}
		case ev := <-sub.c:
			if !send(encodeEvent("event", ev)) {
				return
			}
		case <-beat.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// webLogs is GET /v1/logs for the page: one app's (or every) log tail, then its live lines
// (follow=1), as JSON lines. At most webLogLines of history.
func (d *Daemon) webLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if v := q.Get("lines"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > webLogLines {
			writeError(w, badRequestError{fmt.Sprintf("lines must be a number from 0 to %d", webLogLines)})
			return
		}
	}
	ctx, cancel := d.web.Load().streamContext(r)
	defer cancel()
	d.handleLogs(newStreamWriter(w), r.WithContext(ctx))
}

// WebActionRequest is the body of the page's actions.
type WebActionRequest struct {
	Target string `json:"target"`
}

// WebActionResponse is what the page shows after an action: no process views (the stream
// carries them), only what went wrong and a reload's steps.
type WebActionResponse struct {
	Errors   []string            `json:"errors,omitempty"`
	Warnings []string            `json:"warnings,omitempty"`
	Reloads  []api.ReloadSummary `json:"reloads,omitempty"`
}

func webAnswer(resp api.ActionResponse) WebActionResponse {
	return WebActionResponse{Errors: resp.Errors, Warnings: resp.Warnings, Reloads: resp.Reloads}
}

// webAct runs reload, restart, stop or start on one target, as the CLI would. The answer comes
// when the action is done (a rolling reload can outlast the listener's write timeout).
func (d *Daemon) webAct(w http.ResponseWriter, r *http.Request) {
	action := api.Action(r.PathValue("action"))
	if !slices.Contains(webActions, action) {
		writeError(w, badRequestError{fmt.Sprintf("the dashboard offers %v, not %q", webActions, action)})
		return
	}
	var req WebActionRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Target == "" {
		writeError(w, badRequestError{`no target: send {"target": "APP"}`})
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	resp, err := d.Act(r.Context(), action, api.ActionRequest{Targets: []string{req.Target}})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, webAnswer(resp))
}

// webScale is `corral scale APP N` for the page.
func (d *Daemon) webScale(w http.ResponseWriter, r *http.Request) {
	var req api.ScaleRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	resp, err := d.Scale(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, webAnswer(resp))
}

// handleWebInfo answers GET /v1/web on the control socket: the dashboard's address and token,
// for `corral web`.
func (d *Daemon) handleWebInfo(w http.ResponseWriter, r *http.Request) {
	// Where the address comes from, by the rule the daemon applies (the variable, when set,
	// wins): read from the environment, which does not change, rather than from the
	// listener's fields, which a rebind may be changing.
	info := api.WebInfo{Listen: d.HTTPAddr(), Source: "setting " + settings.HTTPListen}
	if _, ok := os.LookupEnv(settings.EnvHTTPListen); ok {
		info.Source = settings.EnvHTTPListen
	}
	if info.Listen != "" {
		info.Path = webPath
		if ws := d.web.Load(); ws != nil {
			info.Token = ws.token
			if ws.err != nil {
				info.Error = ws.err.Error()
			}
		}
	}
	writeJSON(w, http.StatusOK, info)
}
