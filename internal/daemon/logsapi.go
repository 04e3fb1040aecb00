package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/spec"
)

// historyFile is a log file whose last lines `corral logs` prints before following.
type historyFile struct {
	path   string
	procID int
	app    string
	stream string
}

// maxHistoryLines bounds the history one logs request reads per file: the daemon holds them in
// memory while it sends them.
const maxHistoryLines = 100_000

// handleLogs streams the last lines of the targets' log files, then (with follow=1) their live
// output, as JSON lines. Query: target (repeatable; default all), lines (default 15),
// stream (out|err), follow.
func (d *Daemon) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	targets := q["target"]
	all := len(targets) == 0 || slices.Contains(targets, "all")
	lines := 15
	if v := q.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxHistoryLines {
			writeError(w, badRequestError{fmt.Sprintf("lines must be a number from 0 to %d (older lines are in the log files themselves: `corral describe` names them)", maxHistoryLines)})
			return
		}
		lines = n
	}
	stream := q.Get("stream")
	if stream != "" && stream != "out" && stream != "err" {
		writeError(w, badRequestError{"stream must be out or err"})
		return
	}
	ids := map[int]bool{}
	var files []historyFile
	if all && stream == "" {
		files = append(files, historyFile{path: d.paths.DaemonLog, procID: -1, app: "corral", stream: "corral"})
	}
	if all {
		targets = []string{"all"}
	}
	sel, err := d.tbl.resolve(targets)
	if err != nil {
		writeError(w, err)
		return
	}
	seen := map[string]bool{}
	for _, p := range sel.procs() {
		info := p.Info()
		ids[info.ID] = true
		for _, f := range []historyFile{
			{path: info.Files.Out, stream: "out"},
			{path: info.Files.Err, stream: "err"},
		} {
			if f.path == "" || f.path == spec.NullPath || seen[f.path] || (stream != "" && stream != f.stream) {
				continue
			}
			seen[f.path] = true
			f.procID, f.app = info.ID, info.App.Name
			files = append(files, f)
		}
	}

	follow := q.Get("follow") == "1"
	var sub *logs.Subscription
	if follow {
		// Subscribe before reading history so nothing written in between is lost.
		sub = d.hub.Subscribe(func(l logs.Line) bool {
			if stream != "" && l.Stream != stream {
				return false
			}
			return all || ids[l.ProcID]
		}, 4096)
		defer sub.Close()
	}

	startStream(w, "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	if lines > 0 {
		for _, f := range files {
			tail, err := logs.Tail(f.path, lines)
			if err != nil {
				_ = enc.Encode(api.LogLine{ProcID: -1, App: "corral", Stream: "corral", Message: "cannot read " + f.path + ": " + err.Error(), History: true})
				continue
			}
			for _, line := range tail {
				_ = enc.Encode(api.LogLine{ProcID: f.procID, App: f.app, Stream: f.stream, Message: line, History: true, Path: f.path})
			}
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	if !follow {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.quit:
			return
		case l := <-sub.C:
			if err := enc.Encode(api.LogLine{Time: l.Time, ProcID: l.ProcID, App: l.App, Stream: l.Stream, Message: l.Message}); err != nil {
				return
			}
			if flusher != nil && len(sub.C) == 0 {
				flusher.Flush()
			}
		}
	}
}

// Flush truncates the targets' log files (every file and the daemon log for none or "all").
// A file that cannot be truncated (say, a link someone else planted) does not stop the others:
// it is reported in the answer's errors.
func (d *Daemon) Flush(targets []string) (api.FlushResponse, error) {
	var resp api.FlushResponse
	all := len(targets) == 0 || slices.Contains(targets, "all")
	var paths []string
	if all {
		paths = append(paths, d.paths.DaemonLog)
	}
	if all {
		targets = []string{"all"}
	}
	sel, err := d.tbl.resolve(targets)
	if err != nil {
		return resp, err
	}
	for _, p := range sel.procs() {
		f := p.Info().Files
		for _, path := range []string{f.Out, f.Err, f.Combined} {
			if path != "" && path != spec.NullPath && !slices.Contains(paths, path) {
				paths = append(paths, path)
			}
		}
	}
	for _, p := range paths {
		if err := d.logs.Truncate(p); err != nil {
			resp.Errors = append(resp.Errors, err.Error())
			continue
		}
		resp.Flushed = append(resp.Flushed, p)
	}
	return resp, nil
}
