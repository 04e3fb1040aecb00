package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/render"
)

// routes is the control API. Every path is under api.Prefix; every answer carries the daemon's
// version so a client of another version can say so.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/version", d.handleVersion)
	mux.HandleFunc("GET "+p+"/processes", d.handleProcesses)
	mux.HandleFunc("POST "+p+"/apps", jsonHandler(func(_ *http.Request, req api.StartRequest) (api.ActionResponse, error) {
		return d.StartApps(req)
	}))
	mux.HandleFunc("POST "+p+"/actions/{action}", jsonHandler(func(r *http.Request, req api.ActionRequest) (api.ActionResponse, error) {
		return d.Act(r.PathValue("action"), req)
	}))
	mux.HandleFunc("POST "+p+"/message", jsonHandler(func(_ *http.Request, req api.MessageRequest) (api.ActionResponse, error) {
		return d.Message(req)
	}))
	mux.HandleFunc("POST "+p+"/scale", jsonHandler(func(_ *http.Request, req api.ScaleRequest) (api.ActionResponse, error) {
		return d.Scale(req)
	}))
	mux.HandleFunc("GET "+p+"/env/{target}", d.handleEnv)
	mux.HandleFunc("POST "+p+"/save", d.handleSave)
	mux.HandleFunc("POST "+p+"/resurrect", d.handleResurrect)
	mux.HandleFunc("POST "+p+"/kill", d.handleKill)
	mux.HandleFunc("POST "+p+"/logs/flush", d.handleFlush)
	mux.HandleFunc("POST "+p+"/logs/reopen", d.handleReopen)
	mux.HandleFunc("GET "+p+"/logs", d.handleLogs)
	mux.HandleFunc("GET "+p+"/events", d.handleEvents)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderVersion, buildinfo.Version)
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError maps errors to status codes and machine-readable codes.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	var nf notFoundError
	var cf conflictError
	var br badRequestError
	switch {
	case errors.As(err, &nf):
		status, code = http.StatusNotFound, "not_found"
	case errors.As(err, &cf):
		status, code = http.StatusConflict, "conflict"
	case errors.As(err, &br):
		status, code = http.StatusBadRequest, "bad_request"
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

// readJSON decodes a request body (at most 16 MB: app specs carry whole environments).
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<20))
	if err := dec.Decode(v); err != nil {
		return badRequestError{fmt.Sprintf("bad request body: %v", err)}
	}
	return nil
}

func (d *Daemon) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Version{Version: buildinfo.Version, PID: os.Getpid(), Home: d.paths.Home, Started: d.started})
}

// handleProcesses lists every process; format=pm2 answers in `pm2 jlist`'s shape, so the CLI
// prints the bytes as they come.
func (d *Daemon) handleProcesses(w http.ResponseWriter, r *http.Request) {
	procs := d.Processes(r.URL.Query().Get("reveal") == "1")
	if r.URL.Query().Get("format") != "pm2" {
		writeJSON(w, http.StatusOK, procs)
		return
	}
	out, err := render.JList(procs)
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
	resp, err := d.Resurrect()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleKill stops every app, answers, then ends the daemon.
func (d *Daemon) handleKill(w http.ResponseWriter, r *http.Request) {
	d.logf("kill requested: stopping every app")
	d.stopEverything()
	writeJSON(w, http.StatusOK, map[string]any{"killed": true, "pid": os.Getpid()})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go d.shutdown()
}

func (d *Daemon) handleFlush(w http.ResponseWriter, r *http.Request) {
	var req api.ActionRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	paths, err := d.Flush(req.Targets)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"flushed": paths})
}

func (d *Daemon) handleReopen(w http.ResponseWriter, r *http.Request) {
	if err := d.logs.ReopenAll(); err != nil {
		writeError(w, err)
		return
	}
	d.logf("log files reopened")
	writeJSON(w, http.StatusOK, map[string]any{"reopened": true})
}

// handleEvents streams process events as JSON lines until the client goes away.
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) {
	sub := d.events.subscribe()
	defer d.events.unsubscribe(sub)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
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
