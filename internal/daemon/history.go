package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/web"
)

// The metrics history the next daemon carries on with (docs/daemon-survival.md §4.1): the
// alert engine's state (firing alerts and their notification clock, the transitions, each
// app's windows), the dashboard's charts, and each process's CPU seconds and request counts
// (cluster.KeptRequests: the runs' next reports add what they answered since). It is the keeper's
// "history" entry, apart from the app table ("state", keep.go): it is larger (a window of
// samples per process) and changes at every sample, and the table is written after every
// operation. So it is written every historyEvery samples, at once after an alert was sent (a
// daemon killed then must not send it again), and before an upgrade; a kill loses at most the
// samples since the last write.
//
// It is versioned on its own (historyVersion). The app table says the daemon that wrote it
// keeps this entry (handover.History): a daemon of an older corral leaves the entry as it is
// and writes tables without the mark, so an entry it left is known stale and dropped. A
// version this corral does not read, or an entry over its bound, is reported and dropped: the
// apps are adopted all the same and their history starts afresh.

// historyVersion versions the "history" entry's layout.
const historyVersion = 1

const historyName = "history"

// historyEvery: the entry is written every historyEvery samples (20 s at the default 2 s).
const historyEvery = 10

// maxHistoryBytes bounds the entry, written or read: the keeper holds every entry's metadata in
// memory, within keeper.MaxMetaBytes together.
const maxHistoryBytes = 8 << 20

// maxKeptWebPoints bounds the charts' points in the entry (about 45 bytes each): with many
// processes each keeps its newest maxKeptWebPoints/N.
const maxKeptWebPoints = 100_000

// keptHistory is the "history" entry.
type keptHistory struct {
	Version int           `json:"version"`
	Corral  string        `json:"corral"` // the version of the daemon that wrote it
	Written time.Time     `json:"written"`
	Alerts  *alerts.State `json:"alerts,omitempty"`
	// Web is the dashboard's charts by process id, each point [Unix ms, CPU %, memory bytes,
	// requests/s, connections/s], oldest first.
	Web map[int][][5]float64 `json:"web,omitempty"`
	// CPU is each process's CPU seconds (corral_process_cpu_seconds_total).
	CPU map[int]float64 `json:"cpu,omitempty"`
	// Requests are each process's request counts (corral_process_requests_total and the
	// latency histogram), cluster worker or fork mode, with the last report of its current run.
	Requests map[int]cluster.KeptRequests `json:"requests,omitempty"`
}

// maxKeptProcesses bounds the processes the entry describes (charts, CPU, requests), on
// reading: more than a daemon runs.
const maxKeptProcesses = 100_000

// historyChanged asks its writeLoop for a write soon (one for however many asks came
// meanwhile).
func (d *Daemon) historyChanged() { d.writeSoon(d.historyDirty) }

// historySampled counts the sampler's samples and asks for a write every historyEvery.
// Sampler only.
func (d *Daemon) historySampled() {
	d.samples++
	if d.samples%historyEvery == 0 {
		d.historyChanged()
	}
}

// saveHistory sends the history to the keeper now: from its writeLoop, and before an upgrade.
// Writes are serialised. An entry over maxHistoryBytes loses the charts, then the alert
// windows, and says so once: the firing alerts and their clocks are what must not be lost.
func (d *Daemon) saveHistory() {
	if d.keeper == nil || d.adopting.Load() {
		return
	}
	d.historyMu.Lock()
	defer d.historyMu.Unlock()
	body, dropped, err := encodeHistory(d.collectHistory(time.Now()), maxHistoryBytes)
	if dropped != "" {
		d.historyTrimmed.Do(func() {
			d.logf("the metrics history is over %d bytes: the next daemon gets it without %s", maxHistoryBytes, dropped)
		})
	}
	if err != nil {
		d.logf("cannot keep the metrics history for the next daemon: %v", err)
		return
	}
	if err := d.keeper.Put(historyName, json.RawMessage(body)); err != nil {
		d.keeperFailed(err)
	}
}

// encodeHistory is h in JSON within limit bytes: with the charts' older halves dropped, then
// the charts, then the alert windows too, if need be (dropped says what went). The firing
// alerts, their clocks and the transitions are what must not be lost; the engine bounds them.
func encodeHistory(h keptHistory, limit int) (body []byte, dropped string, err error) {
	body, err = json.Marshal(h)
	for err == nil && len(body) > limit && len(h.Web) > 0 {
		h.Web, dropped = halveCharts(h.Web), "the older part of the dashboard's charts"
		if h.Web == nil {
			dropped = "the dashboard's charts"
		}
		body, err = json.Marshal(h)
	}
	if err == nil && len(body) > limit && h.Alerts != nil {
		alertsOnly := *h.Alerts
		alertsOnly.Apps = nil
		h.Alerts, dropped = &alertsOnly, "the dashboard's charts and the alert windows"
		body, err = json.Marshal(h)
	}
	if err == nil && len(body) > limit {
		err = fmt.Errorf("%d bytes even without the charts and the alert windows, over the bound of %d", len(body), limit)
	}
	return body, dropped, err
}

// halveCharts keeps the newer half of each chart (nil once they are down to a point each).
func halveCharts(charts map[int][][5]float64) map[int][][5]float64 {
	out := make(map[int][][5]float64, len(charts))
	longest := 0
	for id, pts := range charts {
		out[id] = pts[len(pts)/2:]
		longest = max(longest, len(pts))
	}
	if longest <= 1 {
		return nil
	}
	return out
}

// collectHistory gathers the history from its owners (each copies under its own lock).
func (d *Daemon) collectHistory(now time.Time) keptHistory {
	st := d.alerting.engine.Export()
	h := keptHistory{Version: historyVersion, Corral: buildinfo.Version, Written: now.UTC(), Alerts: &st}
	d.usageMu.Lock()
	if len(d.cpuSeconds) > 0 {
		h.CPU = make(map[int]float64, len(d.cpuSeconds))
		for id, s := range d.cpuSeconds {
			h.CPU[id] = s
		}
	}
	d.usageMu.Unlock()
	if ws := d.web.Load(); ws != nil {
		h.Web = encodeWeb(ws.hist.Snapshot(now))
	}
	h.Requests = d.forkReq.kept()
	for _, a := range d.tbl.appsSorted() {
		if v := a.snapshot(); v != nil && v.group != nil {
			for id, k := range v.group.KeptRequests() {
				if h.Requests == nil {
					h.Requests = map[int]cluster.KeptRequests{}
				}
				h.Requests[id] = k
			}
		}
	}
	return h
}

// encodeWeb turns the charts into the entry's form, each process keeping its newest points
// within maxKeptWebPoints together.
func encodeWeb(series map[int][]web.Point) map[int][][5]float64 {
	if len(series) == 0 {
		return nil
	}
	each := maxKeptWebPoints / len(series)
	out := make(map[int][][5]float64, len(series))
	for id, pts := range series {
		pts = pts[max(len(pts)-each, 0):]
		enc := make([][5]float64, len(pts))
		for i, p := range pts {
			enc[i] = [5]float64{float64(p.T), p.CPU, float64(p.Mem), p.Req, p.Conn}
		}
		out[id] = enc
	}
	return out
}

// decodeWeb is encodeWeb's reverse, for web.History.Restore (which checks the order).
func decodeWeb(enc map[int][][5]float64) map[int][]web.Point {
	out := make(map[int][]web.Point, len(enc))
	for id, pts := range enc {
		dec := make([]web.Point, len(pts))
		for i, p := range pts {
			dec[i] = web.Point{T: int64(p[0]), CPU: p[1], Mem: int64(p[2]), Req: p[3], Conn: p[4]}
		}
		out[id] = dec
	}
	return out
}

// readHistory decodes a "history" entry, checking its size and version first.
func readHistory(meta []byte) (keptHistory, error) {
	var h keptHistory
	if len(meta) > maxHistoryBytes {
		return h, fmt.Errorf("of %d bytes, over the bound of %d", len(meta), maxHistoryBytes)
	}
	var v struct {
		Version int    `json:"version"`
		Corral  string `json:"corral"`
	}
	if err := json.Unmarshal(meta, &v); err != nil {
		return h, fmt.Errorf("unreadable (%w)", err)
	}
	if v.Version != historyVersion {
		return h, fmt.Errorf("of version %d, from corral %s; this corral reads version %d", v.Version, v.Corral, historyVersion)
	}
	if err := json.Unmarshal(meta, &h); err != nil {
		return h, fmt.Errorf("unreadable (%w)", err)
	}
	if max(len(h.Web), len(h.CPU), len(h.Requests)) > maxKeptProcesses {
		return h, fmt.Errorf("of %d charts, %d CPU counts and %d request counts, for more processes than a daemon keeps", len(h.Web), len(h.CPU), len(h.Requests))
	}
	return h, nil
}

// errStaleHistory: the keeper holds a history the table's daemon did not write.
var errStaleHistory = errors.New("not written by the previous daemon (a corral without it ran meanwhile)")

// historyToTake decides what a daemon takes of the keeper's "history" entry (found: the keeper
// holds one). marked is the app table's mark (handover.History): without it the entry is stale
// (a daemon of an older corral left it as it was after this one's) and is not read.
func historyToTake(entry []byte, found, marked bool) (keptHistory, bool, error) {
	switch {
	case !found:
		return keptHistory{}, false, nil
	case !marked:
		return keptHistory{}, false, errStaleHistory
	}
	h, err := readHistory(entry)
	return h, err == nil, err
}

// takeHistory takes over the previous daemon's history while adopting (historyToTake). An
// entry it does not take is reported and deleted: the next write replaces it anyway.
func (d *Daemon) takeHistory(entry []byte, found, marked bool) {
	h, ok, err := historyToTake(entry, found, marked)
	if err != nil {
		d.logf("the keeper's metrics history is %v: dropped; the dashboard's charts and the alert windows start afresh", err)
		_ = d.keeper.Delete(historyName)
	}
	if !ok {
		return
	}
	now := time.Now()
	firing := 0
	if h.Alerts != nil {
		firing = d.alerting.engine.Restore(*h.Alerts, now)
		d.alerting.restored = true
	}
	d.usageMu.Lock()
	for id, s := range h.CPU {
		if s >= 0 {
			d.cpuSeconds[id] = s
		}
	}
	d.usageMu.Unlock()
	points := 0
	if h.Web != nil {
		dec := decodeWeb(h.Web)
		for _, pts := range dec {
			points += len(pts)
		}
		d.keptWeb.Store(&dec)
	}
	// Given to each process as its app is adopted (adoptApp: a cluster app's group exists only then).
	d.keptRequests = h.Requests
	if firing > 0 {
		d.logf("alerts: %d firing alerts taken over from the previous daemon", firing) // as seedAlerts says it
	}
	d.logf("took over the metrics history of corral %s (written %s): %d chart points, the request counts of %d processes",
		h.Corral, h.Written.Format(time.RFC3339), points, len(h.Requests))
}
