package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/supervisor"
)

// Health probes for orchestrators (docs/containers.md §5), on the opt-in HTTP listener next to
// /metrics, and on the control socket for `corral ping --ready`:
//
//   - /healthz: the daemon is alive and serving (Kubernetes' livenessProbe). It checks nothing
//     else on purpose: an app that crash-loops is the daemon's job to restart, and a liveness
//     failure would restart the whole container, every healthy app with it.
//   - /readyz: every app has its processes online and ready (stopped ones aside: `corral stop`,
//     or a process whose policy let it end) and, where it declares health_url, that URL answers,
//     of each worker where the daemon can reach one alone (health.go); and no stop has begun
//     (readiness drops the moment SIGTERM arrives, so traffic goes elsewhere while the apps
//     drain).

// probeRoutes adds /healthz and /readyz to the HTTP listener's mux.
func (d *Daemon) probeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := d.Readiness(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			if !rd.Ready {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(rd)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready:\n")
			for _, s := range rd.Reasons {
				_, _ = io.WriteString(w, "  "+s+"\n")
			}
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
}

// handleReady answers `corral ping --ready` on the control socket.
func (d *Daemon) handleReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d.Readiness(r.Context()))
}

// Readiness says whether the daemon's apps are ready for traffic, and if not, why.
func (d *Daemon) Readiness(ctx context.Context) api.Readiness {
	if d.Draining() {
		return api.Readiness{Reasons: []string{"the daemon is stopping: its apps are draining"}}
	}
	apps := d.tbl.appsSorted()
	if len(apps) == 0 {
		return api.Readiness{Reasons: []string{"no app is running"}}
	}
	var (
		mu      sync.Mutex
		reasons []string
		wg      sync.WaitGroup
	)
	for _, a := range apps {
		v := a.snapshot()
		if v == nil || v.spec == nil {
			continue
		}
		name := v.spec.Name
		online, desired, notListening := 0, 0, 0
		var ready []supervisor.Info
		others := map[supervisor.Status]int{}
		for _, p := range v.procs {
			info := p.Info()
			if info.Status == supervisor.StatusStopped {
				// Not wanted online: stopped by `corral stop`, or ended by itself where that
				// is its policy (autorestart off, an exit code of stop_exit_codes), as a
				// one-off job of the ecosystem file does.
				continue
			}
			desired++
			// Online and ready: a cluster worker is online as soon as it runs (as in PM2),
			// ready once it listens (or says ready, or listen_timeout passes).
			switch {
			case info.Status == supervisor.StatusOnline && info.Ready:
				online++
				ready = append(ready, info)
			case info.Status == supervisor.StatusOnline:
				notListening++
			default:
				others[info.Status]++
			}
		}
		if online < desired {
			waiting := ""
			if notListening > 0 {
				waiting = fmt.Sprintf(" (%d online, not ready yet)", notListening)
			}
			reasons = append(reasons, fmt.Sprintf("app %s: %d of %d processes ready%s%s", name, online, desired, statusCounts(others), waiting))
			continue
		}
		if v.spec.HealthURL == "" || desired == 0 {
			continue
		}
		// Each worker where there is a way to reach it alone (health.go), so that a broken
		// worker cannot hide behind a healthy one.
		checks, err := healthChecks(v, ready)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("app %s: health_url %s: %v", name, v.spec.HealthURL, err))
			continue
		}
		for _, c := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.ask(ctx); err != nil {
					mu.Lock()
					reasons = append(reasons, c.reason(name, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(reasons) == 0 {
		return api.Readiness{Ready: true}
	}
	sort.Strings(reasons)
	return api.Readiness{Reasons: reasons}
}

// statusCounts renders the statuses of the processes not online: " (1 errored, 1 launching)".
func statusCounts(m map[supervisor.Status]int) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for s, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}
