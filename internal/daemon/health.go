package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// What /readyz asks of an app's health_url (docs/containers.md §5). A request to the app's
// shared port reaches whichever worker the daemon (or the kernel) hands it to, so one healthy
// worker would answer for a broken one. Where there is a way to reach each worker, each is
// asked on its own:
//
//   - cluster mode: the daemon hands its own connection to the chosen worker on the app's key
//     (cluster.Group.DialWorker), under every sched_policy, and asks over it;
//   - fork mode with a port per process (increment_var on PORT): each process's port;
//
// and where there is none, the app is asked once: a `listen` socket (one socket every process
// accepts on), a full URL that is not one of a cluster app's own ports, fork-mode processes
// that share a port.

// healthTimeout bounds one health_url request; probes ask often and must answer fast.
const healthTimeout = 2 * time.Second

// maxHealthResponse bounds what is read of an answer: headers and the start of the body.
const maxHealthResponse = 16<<10 + 64<<10

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

// healthCheck is one question /readyz asks about an app: of one worker, or of the app.
type healthCheck struct {
	worker string // "worker 1 (pid 4242)"; "" when the answer is the app's as a whole
	shown  string // the health_url as the reason shows it
	ask    func(ctx context.Context) error
}

// reason is the line of /readyz for a failed check.
func (c healthCheck) reason(app string, err error) string {
	if c.worker == "" {
		return fmt.Sprintf("app %s: health_url %s: %v", app, c.shown, err)
	}
	return fmt.Sprintf("app %s: %s: health_url %s: %v", app, c.worker, c.shown, err)
}

// workerName names a process in reasons: its id (PM2's pm_id), its instance where that
// differs, and the pid of its current run.
func workerName(info supervisor.Info) string {
	if info.Instance != info.ID {
		return fmt.Sprintf("worker %d (instance %d, pid %d)", info.ID, info.Instance, info.PID)
	}
	return fmt.Sprintf("worker %d (pid %d)", info.ID, info.PID)
}

// healthChecks plans the questions for an app that declares health_url, whose processes
// (ready, the ones online and ready) are all up.
func healthChecks(v *appView, ready []supervisor.Info) ([]healthCheck, error) {
	u := v.spec.HealthURL
	isPath := strings.HasPrefix(u, "/")
	if isPath && listenPort(v.spec) != "" {
		// One socket every process accepts on: no way to choose the process.
		return appCheck(v)
	}
	if v.group != nil {
		if checks := clusterChecks(v, ready); checks != nil {
			return checks, nil
		}
	} else if isPath {
		if checks := forkChecks(v, ready); checks != nil {
			return checks, nil
		}
	}
	return appCheck(v)
}

// appCheck asks the app's health URL once (healthTarget).
func appCheck(v *appView) ([]healthCheck, error) {
	target, err := healthTarget(v)
	if err != nil {
		return nil, err
	}
	return []healthCheck{{shown: target, ask: func(ctx context.Context) error { return askHealth(ctx, target) }}}, nil
}

// clusterChecks asks each worker of a cluster app through a connection handed to it alone,
// on the port of health_url: a path is asked on the port of the app's PORT variable if the
// app listens there, else on its lowest TCP port; a full URL on a local host, on its port if
// that is one of the app's. nil when there is no such port (the app is asked once then).
func clusterChecks(v *appView, ready []supervisor.Info) []healthCheck {
	ports := v.group.TCPPorts()
	if len(ports) == 0 {
		return nil
	}
	u := v.spec.HealthURL
	var (
		port      int
		host, uri string
	)
	if strings.HasPrefix(u, "/") {
		port = ports[0]
		if p, err := strconv.Atoi(portOf(envPort(v.spec))); err == nil && slices.Contains(ports, p) {
			port = p
		}
		host, uri = "localhost:"+strconv.Itoa(port), u
	} else {
		pu, err := url.Parse(u)
		if err != nil || !isLocalHost(pu.Hostname()) {
			return nil
		}
		p, err := strconv.Atoi(pu.Port())
		if err != nil || !slices.Contains(ports, p) {
			return nil
		}
		port, host, uri = p, pu.Host, pu.RequestURI()
	}
	g := v.group
	checks := make([]healthCheck, 0, len(ready))
	for _, info := range ready {
		id := info.ID
		checks = append(checks, healthCheck{worker: workerName(info), shown: u, ask: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, healthTimeout)
			defer cancel()
			conn, err := g.DialWorker(ctx, id, port)
			if err != nil {
				return err
			}
			return askOver(ctx, conn, host, uri)
		}})
	}
	return checks
}

// forkChecks asks each fork-mode process on its own port where it has one (increment_var
// gives PORT 3000, 3001...). Processes that share a port are asked once, as the app. nil
// when some process has no PORT.
func forkChecks(v *appView, ready []supervisor.Info) []healthCheck {
	byPort := map[string][]supervisor.Info{}
	for _, info := range ready {
		port := portOf(supervisor.RunEnv(info.App, info.ID, info.Instance)["PORT"])
		if port == "" {
			return nil
		}
		byPort[port] = append(byPort[port], info)
	}
	checks := make([]healthCheck, 0, len(byPort))
	for _, p := range slices.Sorted(maps.Keys(byPort)) {
		target := "http://localhost:" + p + v.spec.HealthURL
		c := healthCheck{shown: target, ask: func(ctx context.Context) error { return askHealth(ctx, target) }}
		if procs := byPort[p]; len(procs) == 1 {
			c.worker = workerName(procs[0])
		}
		checks = append(checks, c)
	}
	return checks
}

// isLocalHost reports whether a URL's host is this machine: where the daemon's workers are.
func isLocalHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// healthTarget resolves an app's health_url when it is asked once: an http:// URL as it is; a
// path on the app's port, found in its `listen` sockets, else the addresses its cluster
// workers listen on, else its PORT variable. The host is localhost: the daemon runs where the
// app does.
func healthTarget(v *appView) (string, error) {
	u := v.spec.HealthURL
	if !strings.HasPrefix(u, "/") {
		return u, nil
	}
	port := listenPort(v.spec)
	if port == "" && v.group != nil {
		if ports := v.group.TCPPorts(); len(ports) > 0 {
			port = strconv.Itoa(ports[0])
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

// listenPort is the port of the app's first TCP `listen` socket, or "".
func listenPort(s *spec.App) string {
	for _, l := range s.Listen {
		if l.Network == "tcp" {
			if _, p, err := net.SplitHostPort(l.Address); err == nil {
				return p
			}
		}
	}
	return ""
}

// envPort is the app's PORT variable as declared (or inherited).
func envPort(s *spec.App) string {
	if p, ok := s.Env["PORT"]; ok {
		return p
	}
	return s.BaseEnv["PORT"]
}

// portOf takes the port out of an address ("5000", "0.0.0.0:5000", ":::5000"), or "" when
// it names none (a unix socket path).
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
	req, err := newHealthRequest(ctx, target)
	if err != nil {
		return err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return healthOf(resp)
}

// askOver GETs uri from one worker over conn, a connection the worker accepted (DialWorker),
// and closes it. host is the Host header: the app's own address, as a client would give it.
func askOver(ctx context.Context, conn net.Conn, host, uri string) error {
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	// A cancelled ctx (the probe's client went away) wakes the read at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	req, err := newHealthRequest(ctx, "http://"+host+uri)
	if err != nil {
		return err
	}
	req.Close = true // one request: the worker closes after answering
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("send the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(conn, maxHealthResponse)), req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer within %s", healthTimeout)
		}
		return fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	return healthOf(resp)
}

// newHealthRequest is the GET of a health check.
func newHealthRequest(ctx context.Context, target string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "corral-readyz")
	return req, nil
}

// healthOf reads an answer: any 2xx or 3xx is healthy; the status is the reason otherwise.
func healthOf(resp *http.Response) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}
