package daemon

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/supervisor"
)

// /metrics (docs/metrics.md §3) is written here, in Prometheus' text format and in OpenMetrics,
// without client_golang. The daemon and the CLI are one binary, and client_golang's packages
// (its default registry with Go and process collectors built at init, procfs, protobuf) cost
// every command about 1.2 ms of init before main, `corral jlist` included. The exposition is a
// fixed set of counters, gauges and one histogram, so writing it is short; the tests parse it with
// Prometheus' own parser and lint it with promlint, so the format stays honest.
//
// Figures are read from the daemon's state at scrape time (no bookkeeping per event): the apps'
// published views, the processes' Info, the sampler's usage and the cluster groups' counters.
// Series are labelled by app, id and instance, never by pid, so a restart continues a series.

// statuses are every process status, in the order /metrics lists them: corral_process_status
// has one series per status, 1 for the current one.
var statuses = []supervisor.Status{
	supervisor.StatusLaunching, supervisor.StatusOnline, supervisor.StatusStopping,
	supervisor.StatusStopped, supervisor.StatusErrored, supervisor.StatusWaitingRestart,
}

// metricType is a family's type; only the two /metrics uses.
type metricType string

const (
	counter   metricType = "counter"
	gauge     metricType = "gauge"
	histogram metricType = "histogram"
)

// family is one metric family: its name (with _total for a counter), help, type and series
// (hists for a histogram).
type family struct {
	name, help string
	typ        metricType
	series     []series
	hists      []histSeries
}

// histSeries is one histogram: label pairs, the buckets' upper bounds (without +Inf), the
// count in each bucket (not cumulative; one more than bounds, the last for +Inf) and the sum.
type histSeries struct {
	labels []string
	bounds []float64
	counts []uint64
	sum    float64
}

// series is one sample: label pairs (name, value, name, value, …) and its value.
type series struct {
	labels []string
	value  float64
}

func (f *family) add(value float64, labels ...string) {
	f.series = append(f.series, series{labels: labels, value: value})
}

// processFamilies are the per-process families, in the order they are written.
type processFamilies struct {
	cpu, memory, restarts, status, uptime, conns, refused, inFlight family
	requests, duration, loopP99, heapUsed                           family
}

func newProcessFamilies() *processFamilies {
	return &processFamilies{
		cpu: family{name: "corral_process_cpu_seconds_total", typ: counter,
			help: "CPU time used by the process tree (user and system), as sampled by the daemon, over every run of this process slot."},
		memory: family{name: "corral_process_memory_bytes", typ: gauge,
			help: "Resident memory of the process tree at the last sample (0 when it does not run)."},
		restarts: family{name: "corral_process_restarts_total", typ: counter,
			help: "Restarts of the process slot (PM2's restart_time)."},
		status: family{name: "corral_process_status", typ: gauge,
			help: "Status of the process, with PM2's names: one series per status, 1 for the current one."},
		uptime: family{name: "corral_process_uptime_seconds", typ: gauge,
			help: "Seconds since the current run started (0 unless online)."},
		conns: family{name: "corral_process_connections_total", typ: counter,
			help: "Connections the cluster primary handed to the process and it accepted, over every run of the slot (cluster mode only)."},
		refused: family{name: "corral_process_connections_refused_total", typ: counter,
			help: "Connections handed to the process that it refused (cluster mode only)."},
		inFlight: family{name: "corral_process_connections_in_flight", typ: gauge,
			help: "Connections handed to the process and not yet answered (cluster mode only)."},
		requests: family{name: "corral_process_requests_total", typ: counter,
			help: "HTTP requests the process answered, by status class, over every run of the slot, as corral counts them in Node processes (its preload) and Go workers (package worker)."},
		duration: family{name: "corral_process_request_duration_seconds", typ: histogram,
			help: "Time the process took to answer HTTP requests (from the request to the response's end), over every run of the slot."},
		loopP99: family{name: "corral_process_event_loop_delay_p99_seconds", typ: gauge,
			help: "99th percentile of the Node event loop's delay over the worker's last report (about a second)."},
		heapUsed: family{name: "corral_process_heap_used_bytes", typ: gauge,
			help: "Heap in use in the process (V8's in Node, Go's in a Go worker), at its last report."},
	}
}

// latencyBoundsSeconds are the request-duration histogram's bounds, in seconds.
var latencyBoundsSeconds = func() []float64 {
	out := make([]float64, len(cluster.LatencyBucketsMS))
	for i, ms := range cluster.LatencyBucketsMS {
		out[i] = ms / 1000
	}
	return out
}()

// statusClasses name RequestStats.ByClass's entries, as the class label has them.
var statusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// usageTotals is what the sampler last knew of a process slot.
type usageTotals struct {
	cpu float64 // seconds, accumulated
	rss int64
}

// gather reads every figure /metrics shows.
func (d *Daemon) gather() []*family {
	now := time.Now()
	d.usageMu.Lock()
	usage := make(map[int]usageTotals, len(d.usage))
	for id, u := range d.usage {
		usage[id] = usageTotals{rss: u.RSS}
	}
	for id, s := range d.cpuSeconds {
		t := usage[id]
		t.cpu = s
		usage[id] = t
	}
	d.usageMu.Unlock()

	pf := newProcessFamilies()
	desired := &family{name: "corral_app_instances_desired", typ: gauge,
		help: "Process slots the app keeps (its instances, after scaling)."}
	online := &family{name: "corral_app_instances_online", typ: gauge,
		help: "Processes of the app that are online."}
	reloads := &family{name: "corral_app_reloads_total", typ: counter,
		help: "Rolling reloads of the app (reload, restart or start of an app that owns its port, a changed ecosystem file, watch, cron_restart, max_memory_restart), failed ones included."}
	reloadsFailed := &family{name: "corral_app_reloads_failed_total", typ: counter,
		help: "Rolling reloads of the app that stopped because a replacement did not become ready (the old workers kept serving)."}
	for _, a := range d.tbl.appsSorted() {
		v := a.snapshot()
		if v == nil || v.spec == nil {
			continue
		}
		name := v.spec.Name
		var stats map[int]cluster.Stats
		if v.group != nil {
			stats = v.group.Stats()
		}
		up := 0
		for _, p := range v.procs {
			info := p.Info()
			labels := []string{"app", name, "id", strconv.Itoa(info.ID), "instance", strconv.Itoa(info.Instance)}
			u := usage[info.ID]
			pf.cpu.add(u.cpu, labels...)
			rss := int64(0)
			if info.PID > 0 {
				rss = u.rss
			}
			pf.memory.add(float64(rss), labels...)
			pf.restarts.add(float64(info.Restarts), labels...)
			for _, s := range statuses {
				value := 0.0
				if info.Status == s {
					value = 1
				}
				pf.status.add(value, append(labels[:len(labels):len(labels)], "status", string(s))...)
			}
			uptime := 0.0
			if info.Status == supervisor.StatusOnline {
				up++
				if !info.StartedAt.IsZero() {
					uptime = max(0, now.Sub(info.StartedAt).Seconds())
				}
			}
			pf.uptime.add(uptime, labels...)
			var rs cluster.RequestStats
			if stats != nil {
				st := stats[info.ID]
				pf.conns.add(float64(st.Connections), labels...)
				pf.refused.add(float64(st.Refused), labels...)
				pf.inFlight.add(float64(st.InFlight), labels...)
				rs = st.Requests
			} else {
				rs, _ = d.forkReq.stats(info.ID, info.PID)
			}
			if rs.Requests > 0 || rs.Runtime.Known {
				for i, n := range rs.ByClass {
					pf.requests.add(float64(n), append(labels[:len(labels):len(labels)], "class", statusClasses[i])...)
				}
				pf.duration.hists = append(pf.duration.hists, histSeries{labels: labels, bounds: latencyBoundsSeconds,
					counts: rs.Latency[:], sum: rs.LatencySumMS / 1000})
			}
			if rt := rs.Runtime; rt.Known && info.PID > 0 {
				if rt.LoopKnown {
					pf.loopP99.add(rt.LoopP99MS/1000, labels...)
				}
				pf.heapUsed.add(float64(rt.HeapUsed), labels...)
			}
		}
		desired.add(float64(len(v.procs)), "app", name)
		online.add(float64(up), "app", name)
		reloads.add(float64(a.reloads.done.Load()), "app", name)
		reloadsFailed.add(float64(a.reloads.failed.Load()), "app", name)
	}
	out := []*family{&pf.cpu, &pf.memory, &pf.restarts, &pf.status, &pf.uptime, &pf.conns, &pf.refused, &pf.inFlight,
		&pf.requests, &pf.duration, &pf.loopP99, &pf.heapUsed, desired, online, reloads, reloadsFailed}
	out = append(out, d.alertFamilies()...)
	return append(out, d.selfFamilies()...)
}

// selfFamilies are the daemon's own process and Go runtime figures, with the names
// client_golang's process and Go collectors use, so dashboards made for those work.
func (d *Daemon) selfFamilies() []*family {
	var out []*family
	one := func(name string, typ metricType, help string, value float64, labels ...string) {
		f := &family{name: name, typ: typ, help: help}
		f.add(value, labels...)
		out = append(out, f)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		one("process_cpu_seconds_total", counter, "Total user and system CPU time spent in seconds.", cpu)
	}
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 2 {
			page := float64(os.Getpagesize())
			if vsz, err := strconv.ParseFloat(f[0], 64); err == nil {
				one("process_virtual_memory_bytes", gauge, "Virtual memory size in bytes.", vsz*page)
			}
			if rss, err := strconv.ParseFloat(f[1], 64); err == nil {
				one("process_resident_memory_bytes", gauge, "Resident memory size in bytes.", rss*page)
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		one("process_open_fds", gauge, "Number of open file descriptors.", float64(len(fds)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		one("process_max_fds", gauge, "Maximum number of open file descriptors.", float64(lim.Cur))
	}
	one("process_start_time_seconds", gauge, "Start time of the process since unix epoch in seconds.",
		float64(d.started.UnixNano())/1e9)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	one("go_goroutines", gauge, "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	one("go_info", gauge, "Information about the Go environment.", 1, "version", runtime.Version())
	one("go_memstats_alloc_bytes", gauge, "Number of bytes allocated in heap and currently in use.", float64(ms.HeapAlloc))
	one("go_memstats_heap_inuse_bytes", gauge, "Number of heap bytes that are in use.", float64(ms.HeapInuse))
	one("go_memstats_sys_bytes", gauge, "Number of bytes obtained from system.", float64(ms.Sys))
	one("go_memstats_next_gc_bytes", gauge, "Number of heap bytes when next garbage collection will take place.", float64(ms.NextGC))
	one("go_memstats_last_gc_time_seconds", gauge, "Number of seconds since 1970 of last garbage collection.", float64(ms.LastGC)/1e9)
	one("corral_build_info", gauge, "The daemon's version.", 1, "version", buildinfo.Version)
	return out
}

// Content types of the two formats.
const (
	contentTypeText        = "text/plain; version=0.0.4; charset=utf-8"
	contentTypeOpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
)

// metricsHandler serves /metrics: OpenMetrics when the scraper's Accept names it (Prometheus
// asks for it first when it can), the text format otherwise.
func (d *Daemon) metricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openMetrics := strings.Contains(r.Header.Get("Accept"), "application/openmetrics-text")
		var buf bytes.Buffer
		writeExposition(&buf, d.gather(), openMetrics)
		if openMetrics {
			w.Header().Set("Content-Type", contentTypeOpenMetrics)
		} else {
			w.Header().Set("Content-Type", contentTypeText)
		}
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		_, _ = w.Write(buf.Bytes())
	})
}

// writeExposition writes families in the text format, or in OpenMetrics (where a counter's
// family name has no _total, its sample does, and the exposition ends with # EOF). Families
// without series are left out.
func writeExposition(out io.Writer, fams []*family, openMetrics bool) {
	w := bufio.NewWriter(out)
	for _, f := range fams {
		if len(f.series) == 0 && len(f.hists) == 0 {
			continue
		}
		name := f.name
		if openMetrics && f.typ == counter {
			name = strings.TrimSuffix(name, "_total")
		}
		w.WriteString("# HELP " + name + " " + escapeHelp(f.help, openMetrics) + "\n")
		w.WriteString("# TYPE " + name + " " + string(f.typ) + "\n")
		for _, s := range f.series {
			writeSample(w, f.name, s.labels, s.value)
		}
		for _, h := range f.hists {
			writeHistogram(w, f.name, h)
		}
	}
	if openMetrics {
		w.WriteString("# EOF\n")
	}
	_ = w.Flush()
}

// writeHistogram writes one histogram's samples, the same in both formats: a cumulative
// name_bucket per bound and +Inf, then name_sum and name_count.
func writeHistogram(w *bufio.Writer, name string, h histSeries) {
	var cum uint64
	for i, c := range h.counts {
		cum += c
		le := "+Inf"
		if i < len(h.bounds) {
			le = formatValue(h.bounds[i])
		}
		writeSample(w, name+"_bucket", append(h.labels[:len(h.labels):len(h.labels)], "le", le), float64(cum))
	}
	writeSample(w, name+"_sum", h.labels, h.sum)
	writeSample(w, name+"_count", h.labels, float64(cum))
}

// writeSample writes one sample line: name{label="value",...} value.
func writeSample(w *bufio.Writer, name string, labels []string, value float64) {
	w.WriteString(name)
	if len(labels) > 0 {
		w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteString(" " + formatValue(value) + "\n")
}

var (
	helpEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	omHelpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	labelEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string, openMetrics bool) string {
	if openMetrics {
		return omHelpEscaper.Replace(s)
	}
	return helpEscaper.Replace(s)
}

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
