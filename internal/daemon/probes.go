package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// Health probes for orchestrators (docs/containers.md §5), on the opt-in HTTP listener next to
// /metrics, and on the control socket for `corral ping --ready`:
//
//   - /healthz: the daemon is alive and serving (Kubernetes' livenessProbe). It checks nothing
//     else on purpose: an app that crash-loops is the daemon's job to restart, and a liveness
//     failure would restart the whole container, every healthy app with it.
//   - /readyz: every app has its processes online and ready (stopped ones aside: `corral stop`, or a
//     process whose policy let it end) and, where it declares health_url, that URL answers; and no stop has begun
//     (readiness drops the moment SIGTERM arrives, so traffic goes elsewhere while the apps
//     drain).

// healthTimeout bounds one health_url request; probes ask often and must answer fast.
const healthTimeout = 2 * time.Second

// healthClient asks the apps' health URLs: no proxy (an HTTP_PROXY in a container's
// environment must not catch requests to its own apps), no redirects followed (a 3xx is an
// answer), no connection kept (a probe every few seconds does not need one).
var healthClient = &http.Client{
	Timeout:   healthTimeout,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

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
		reasons = map[string]string{} // app -> reason
		wg      sync.WaitGroup
	)
	for _, a := range apps {
		v := a.snapshot()
		if v == nil || v.spec == nil {
			continue
		}
		name := v.spec.Name
		online, desired, notListening := 0, 0, 0
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
			reasons[name] = fmt.Sprintf("app %s: %d of %d processes ready%s%s", name, online, desired, statusCounts(others), waiting)
			continue
		}
		if v.spec.HealthURL == "" || desired == 0 {
			continue
		}
		target, err := healthTarget(v)
		if err != nil {
			reasons[name] = fmt.Sprintf("app %s: health_url %s: %v", name, v.spec.HealthURL, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := askHealth(ctx, target); err != nil {
				mu.Lock()
				reasons[name] = fmt.Sprintf("app %s: health_url %s: %v", name, target, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(reasons) == 0 {
		return api.Readiness{Ready: true}
	}
	out := make([]string, 0, len(reasons))
	for _, r := range reasons {
		out = append(out, r)
	}
	sort.Strings(out)
	return api.Readiness{Reasons: out}
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

// healthTarget resolves an app's health_url: an http:// URL as it is; a path on the app's
// port, found in its `listen` sockets, else the addresses its cluster workers listen on, else
// its PORT variable. The host is localhost: the daemon runs where the app does.
func healthTarget(v *appView) (string, error) {
	u := v.spec.HealthURL
	if !strings.HasPrefix(u, "/") {
		return u, nil
	}
	port := ""
	for _, s := range v.spec.Listen {
		if s.Network == "tcp" {
			if _, p, err := net.SplitHostPort(s.Address); err == nil {
				port = p
				break
			}
		}
	}
	if port == "" && v.group != nil {
		ids := make([]int, 0)
		stats := v.group.Stats()
		for id := range stats {
			ids = append(ids, id)
		}
		sort.Ints(ids)
	ports:
		for _, id := range ids {
			for _, addr := range stats[id].Listening {
				if p := portOf(addr); p != "" {
					port = p
					break ports
				}
			}
		}
	}
	if port == "" {
		port = portOf(envPort(v.spec))
	}
	if port == "" {
		return "", fmt.Errorf("no TCP port known for the app (give `listen`, or a full URL such as http://127.0.0.1:5000%s)", u)
	}
	return "http://localhost:" + port + u, nil
}

// envPort is the app's PORT variable as declared (or inherited).
func envPort(s *spec.App) string {
	if p, ok := s.Env["PORT"]; ok {
		return p
	}
	return s.BaseEnv["PORT"]
}

// portOf takes the port out of an address as Node's cluster reports it ("5000",
// "0.0.0.0:5000", ":::5000"), or "" when it names none (a unix socket path).
func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	p := addr[i+1:]
	if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
		return ""
	}
	return p
}

// askHealth GETs target: any 2xx or 3xx answer is healthy.
func askHealth(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "corral-readyz")
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
