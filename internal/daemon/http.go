package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
)

// API server limits. The API socket is the owner's alone (0600 in a 0700 home), but a stuck
// or buggy client must still not be able to hold the daemon's descriptors or memory: a request
// must arrive whole within apiReadTimeout, bodies are capped at maxRequestBody (a start
// request carries whole environments; real ones are a few KB), and idle keep-alive
// connections are closed after apiIdleTimeout. Answers to lifecycle operations may take as
// long as the operation (a rolling reload), so there is no write timeout; net/http lifts the
// read deadline once a request's body has been read, so neither they nor the streaming
// endpoints are cut by it (TestAPIAnswersWhileAnOperationRuns, TestSlowRequestsAreDropped).
const (
	apiReadHeaderTimeout = 10 * time.Second
	apiReadTimeout       = 30 * time.Second
	apiIdleTimeout       = 60 * time.Second
	maxRequestBody       = 16 << 20
	maxHeaderBytes       = 64 << 10
)

// newServer is the API's HTTP server, with its limits.
func (d *Daemon) newServer() *http.Server {
	return &http.Server{
		Handler:           d.routes(),
		ReadHeaderTimeout: min(apiReadHeaderTimeout, d.apiReadTimeout),
		ReadTimeout:       d.apiReadTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(d.logWriter(), "API server: ", 0),
	}
}

// routes is the control API. Every path is under api.Prefix; every answer carries the daemon's
// version so a client of another version can say so.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/version", d.handleVersion)
	mux.HandleFunc("GET "+p+"/ready", d.handleReady)
	mux.HandleFunc("GET "+p+"/web", d.handleWebInfo)
	mux.HandleFunc("GET "+p+"/processes", d.handleProcesses)
	mux.HandleFunc("POST "+p+"/apps", jsonHandler(func(r *http.Request, req api.StartRequest) (api.ActionResponse, error) {
		return d.StartApps(r.Context(), req)
	}))
	mux.HandleFunc("POST "+p+"/actions/{action}", jsonHandler(func(r *http.Request, req api.ActionRequest) (api.ActionResponse, error) {
		return d.Act(r.Context(), api.Action(r.PathValue("action")), req)
	}))
	mux.HandleFunc("POST "+p+"/message", jsonHandler(func(r *http.Request, req api.MessageRequest) (api.ActionResponse, error) {
		return d.Message(r.Context(), req)
	}))
	mux.HandleFunc("POST "+p+"/scale", jsonHandler(func(r *http.Request, req api.ScaleRequest) (api.ActionResponse, error) {
		return d.Scale(r.Context(), req)
	}))
	mux.HandleFunc("GET "+p+"/env/{target}", d.handleEnv)
	mux.HandleFunc("POST "+p+"/save", d.handleSave)
	mux.HandleFunc("POST "+p+"/resurrect", d.handleResurrect)
	mux.HandleFunc("POST "+p+"/kill", d.handleKill)
	mux.HandleFunc("POST "+p+"/update", jsonHandler(func(r *http.Request, req api.UpdateRequest) (api.UpdateResponse, error) {
		return d.Upgrade(r.Context(), req)
	}))
	mux.HandleFunc("POST "+p+"/http/listen", func(w http.ResponseWriter, r *http.Request) {
		resp, err := d.ApplyHTTPListen()
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+p+"/logs/flush", jsonHandler(func(r *http.Request, req api.ActionRequest) (api.FlushResponse, error) {
		return d.Flush(req.Targets)
	}))
	mux.HandleFunc("POST "+p+"/logs/reopen", d.handleReopen)
	mux.HandleFunc("GET "+p+"/logs", d.handleLogs)
	mux.HandleFunc("GET "+p+"/events", d.handleEvents)
	mux.HandleFunc("GET "+p+"/alerts", d.handleAlerts)
	mux.HandleFunc("POST "+p+"/alerts/test", d.handleAlertsTest)
	return recoverHandler("API", d.onPanic, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderVersion, buildinfo.Version)
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		mux.ServeHTTP(w, r)
	}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// tooLargeError: the request body is over maxRequestBody.
type tooLargeError struct{ msg string }

func (e tooLargeError) Error() string { return e.msg }

// writeError maps errors to status codes and machine-readable codes.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, api.CodeInternal
	switch {
	case errors.As(err, new(notFoundError)):
		status, code = http.StatusNotFound, api.CodeNotFound
	case errors.As(err, new(conflictError)):
		status, code = http.StatusConflict, api.CodeConflict
	case errors.As(err, new(badRequestError)):
		status, code = http.StatusBadRequest, api.CodeBadRequest
	case errors.As(err, new(tooLargeError)):
		status, code = http.StatusRequestEntityTooLarge, api.CodeTooLarge
	}
	writeJSON(w, status, api.Error{Error: err.Error(), Code: code})
}

// jsonHandler serves a POST whose body is a Req and whose answer is a Resp.
func jsonHandler[Req, Resp any](f func(r *http.Request, req Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := readJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
		resp, err := f(r, req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// readJSON decodes a request body (capped by routes at maxRequestBody). A body of one JSON
// value only: trailing data is a malformed request, not something to ignore.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLargeError{fmt.Sprintf("request body is over the daemon's limit of %d MiB: start fewer apps per request, or move large values out of their env", tooBig.Limit>>20)}
	case err != nil:
		return badRequestError{fmt.Sprintf("bad request body: %v", err)}
	}
	return nil
}

// startStream begins a long-lived streaming answer.
func startStream(w http.ResponseWriter, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
}

func (d *Daemon) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.version())
}

// handleProcesses lists every process, or those the target parameters select (the grammar of
// the actions: what `describe x` shows is what `stop x` stops); format=pm2 answers in
// `pm2 jlist`'s shape, so the CLI prints the bytes as they come.
func (d *Daemon) handleProcesses(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	reveal := q.Get("reveal") == "1"
	procs := d.Processes(reveal)
	if targets := q["target"]; len(targets) > 0 {
		sel, err := d.tbl.resolve(targets)
		if err != nil {
			writeError(w, err)
			return
		}
		procs = d.processesByID(procIDsList(sel.procs()), reveal)
	}
	if q.Get("format") != "pm2" {
		writeJSON(w, http.StatusOK, procs)
		return
	}
	out, err := api.JList(procs)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(out, '\n'))
}

func (d *Daemon) handleEnv(w http.ResponseWriter, r *http.Request) {
	out, err := d.Env(r.PathValue("target"), r.URL.Query().Get("reveal") == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleSave(w http.ResponseWriter, r *http.Request) {
	resp, err := d.Save(r.URL.Query().Get("force") == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (d *Daemon) handleResurrect(w http.ResponseWriter, r *http.Request) {
	resp, err := d.Resurrect(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleKill stops every app, answers, then ends the daemon.
func (d *Daemon) handleKill(w http.ResponseWriter, r *http.Request) {
	d.logf("kill requested: stopping every app")
	d.beginDrain("")
	d.stopAllWithin()
	writeJSON(w, http.StatusOK, api.KillResponse{Killed: true, PID: os.Getpid()})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go d.shutdown()
}

func (d *Daemon) handleReopen(w http.ResponseWriter, r *http.Request) {
	if err := d.logs.ReopenAll(); err != nil {
		writeError(w, err)
		return
	}
	d.logf("log files reopened")
	writeJSON(w, http.StatusOK, api.ReopenResponse{Reopened: true})
}

// handleEvents streams process events as JSON lines until the client goes away.
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) {
	sub := d.events.subscribe()
	defer d.events.unsubscribe(sub)
	startStream(w, "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.quit:
			return
		case ev := <-sub.c:
			if enc.Encode(ev) != nil {
				return
			}
			if flusher != nil && len(sub.c) == 0 {
				flusher.Flush()
			}
		}
	}
}
