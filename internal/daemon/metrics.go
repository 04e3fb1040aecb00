package daemon

import (
	"net/http"
	"strconv"
	"time"

	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are read from the daemon's state when Prometheus scrapes (no bookkeeping per event):
// the apps' published views, the processes' Info, the sampler's usage and the cluster groups'
// counters. Series are labelled by app, id and instance, never by pid, so a restart continues
// a series instead of starting a new one.

// statuses are every process status, in the order /metrics lists them: corral_process_status
// has one series per status, 1 for the current one.
var statuses = []supervisor.Status{
	supervisor.StatusLaunching, supervisor.StatusOnline, supervisor.StatusStopping,
	supervisor.StatusStopped, supervisor.StatusErrored, supervisor.StatusWaitingRestart,
}

var (
	processLabels = []string{"app", "id", "instance"}

	descCPU = prometheus.NewDesc("corral_process_cpu_seconds_total",
		"CPU time used by the process tree (user and system), as sampled by the daemon, over every run of this process slot.",
		processLabels, nil)
	descMemory = prometheus.NewDesc("corral_process_memory_bytes",
		"Resident memory of the process tree at the last sample (0 when it does not run).",
		processLabels, nil)
	descRestarts = prometheus.NewDesc("corral_process_restarts_total",
		"Restarts of the process slot (PM2's restart_time).",
		processLabels, nil)
	descStatus = prometheus.NewDesc("corral_process_status",
		"Status of the process, with PM2's names: one series per status, 1 for the current one.",
		append(processLabels, "status"), nil)
	descUptime = prometheus.NewDesc("corral_process_uptime_seconds",
		"Seconds since the current run started (0 unless online).",
		processLabels, nil)
	descConns = prometheus.NewDesc("corral_process_connections_total",
		"Connections the cluster primary handed to the process and it accepted, over every run of the slot (cluster mode only).",
		processLabels, nil)
	descRefused = prometheus.NewDesc("corral_process_connections_refused_total",
		"Connections handed to the process that it refused (cluster mode only).",
		processLabels, nil)
	descInFlight = prometheus.NewDesc("corral_process_connections_in_flight",
		"Connections handed to the process and not yet answered (cluster mode only).",
		processLabels, nil)
	descDesired = prometheus.NewDesc("corral_app_instances_desired",
		"Process slots the app keeps (its instances, after scaling).",
		[]string{"app"}, nil)
	descOnline = prometheus.NewDesc("corral_app_instances_online",
		"Processes of the app that are online.",
		[]string{"app"}, nil)
)

// collector is the daemon's prometheus.Collector.
type collector struct{ d *Daemon }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{descCPU, descMemory, descRestarts, descStatus, descUptime,
		descConns, descRefused, descInFlight, descDesired, descOnline} {
		ch <- desc
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
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
		online := 0
		for _, p := range v.procs {
			info := p.Info()
			labels := []string{name, strconv.Itoa(info.ID), strconv.Itoa(info.Instance)}
			u := usage[info.ID]
			gauge := func(desc *prometheus.Desc, value float64) {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, value, labels...)
			}
			counter := func(desc *prometheus.Desc, value float64) {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, value, labels...)
			}
			counter(descCPU, u.cpu)
			rss := int64(0)
			if info.PID > 0 {
				rss = u.rss
			}
			gauge(descMemory, float64(rss))
			counter(descRestarts, float64(info.Restarts))
			for _, s := range statuses {
				value := 0.0
				if info.Status == s {
					value = 1
				}
				ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, value, append(labels, string(s))...)
			}
			uptime := 0.0
			if info.Status == supervisor.StatusOnline {
				online++
				if !info.StartedAt.IsZero() {
					uptime = now.Sub(info.StartedAt).Seconds()
				}
			}
			gauge(descUptime, uptime)
			if stats != nil {
				st := stats[info.ID]
				counter(descConns, float64(st.Connections))
				counter(descRefused, float64(st.Refused))
				gauge(descInFlight, float64(st.InFlight))
			}
		}
		ch <- prometheus.MustNewConstMetric(descDesired, prometheus.GaugeValue, float64(len(v.procs)), name)
		ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(online), name)
	}
}

// usageTotals is what the sampler last knew of a process slot.
type usageTotals struct {
	cpu float64 // seconds, accumulated
	rss int64
}

// metricsHandler serves /metrics from a registry of the daemon's own: the default registry
// is left alone (nothing registers into it at init in this binary), and the daemon adds its
// process and Go runtime metrics explicitly.
func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(
		collector{d},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          promLogger{d},
		ErrorHandling:     promhttp.ContinueOnError,
	})
}

// promLogger sends promhttp's errors to the daemon log.
type promLogger struct{ d *Daemon }

func (l promLogger) Println(v ...any) { l.d.logf("/metrics: %v", v) }
