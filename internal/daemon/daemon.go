// Package daemon is corral's long-lived process (PM2's "God daemon"): it owns the apps, their
// processes and logs, and serves the control API on a unix socket in CORRAL_HOME. The CLI is a
// thin client of that API.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/closeexec"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/keeper"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/safefs"
	"github.com/corral-pm/corral/internal/sdnotify"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/corral-pm/corral/internal/supervisor"
	"github.com/corral-pm/corral/internal/web"
	"github.com/robfig/cron/v3"
	"golang.org/x/sys/unix"
)

// Options configure a daemon.
type Options struct {
	Paths home.Paths
	// Resurrect restores the saved process list at start (the systemd unit uses it).
	Resurrect bool
	// SampleInterval is how often CPU and memory are sampled (and max_memory_restart checked).
	SampleInterval time.Duration
	// HTTPListen, when set, is the HTTP listener's address (tests use "127.0.0.1:0"); when
	// empty the daemon uses CORRAL_HTTP_LISTEN or the http.listen setting (package settings).
	HTTPListen string
}

// DefaultSampleInterval: PM2 checks memory every 30 s, long enough for a leak to take a host down.
const DefaultSampleInterval = 2 * time.Second

// Daemon is a running corral daemon.
type Daemon struct {
	paths    home.Paths
	started  time.Time
	username string
	interval time.Duration
	memLimit memLimit // the container's memory limit, read at most once a second (memlimit.go)

	logs    *logs.Manager
	hub     *logs.Hub
	events  *eventBus
	logFile *logs.File
	cron    *cron.Cron

	tbl *table

	// nodePreload is the cluster workers' preload script, written into the home at start and
	// checked before each use.
	nodePreload *home.Pinned
	exe         string // this binary: the exec shim of runs with inherited sockets
	notifyDir   string // NOTIFY_SOCKETs of the runs

	// forkReq: request metrics of fork-mode Node processes (cluster workers' are the group's).
	forkReq forkRequests
	// builds are the apps' builds running now, to cancel on stop (build.go).
	builds builds

	usageMu sync.Mutex
	usage   map[int]procstat.Usage
	// cpuSeconds: CPU time of each process slot's trees, summed from the sampler's rates over
	// every run (corral_process_cpu_seconds_total); lastSample is when it last grew.
	cpuSeconds map[int]float64
	lastSample time.Time
	conns      connRates
	// memoryPending: processes with a max_memory_restart restart queued.
	memoryPending map[int]bool
	// alerting evaluates the alert rules and notifies (alerts.go).
	alerting *alerting

	// web is the dashboard's state once the HTTP listener serves it (web.go).
	web atomic.Pointer[webState]

	lock     *os.File
	listener net.Listener
	server   *http.Server
	// httpListen is the HTTP listener's address ("" = off) and where it came from; http is
	// the listener once bound (httplisten.go). httpMu guards the three and httpClosed once
	// Run starts: `corral set http.listen` rebinds the listener while the daemon runs.
	httpMu                 sync.Mutex
	httpListen, httpSource string
	http                   *httpListener
	httpClosed             bool
	// apiReadTimeout is how long a request may take to arrive (apiReadTimeout; tests shorten it).
	apiReadTimeout time.Duration

	// keeper is the parent process that keeps the apps' sockets, channels and pipes for the
	// next daemon (keep.go, adopt.go); nil when the daemon runs without one (`corral run`,
	// in-process tests), and then the apps end with the daemon.
	keeper     *keeper.Client
	keeperInfo keeper.Info
	exits      *exitRouter
	handoverMu sync.Mutex
	// handoverDirty (capacity 1) wakes the table's writeLoop: the table changed since its last
	// write.
	handoverDirty chan struct{}
	// historyDirty (capacity 1) wakes the history's writeLoop (history.go); samples counts the
	// sampler's samples (sampler only); historyMu serialises the writes.
	historyDirty   chan struct{}
	samples        int
	historyMu      sync.Mutex
	historyTrimmed sync.Once
	// keptRequests are the previous daemon's request counts by process id, for adoptApp
	// (written by takeHistory before any app is adopted, then only read).
	keptRequests map[int]cluster.KeptRequests
	// keptWeb is the previous daemon's dashboard history, until the dashboard takes it (webInit).
	keptWeb     atomic.Pointer[map[int][]web.Point]
	keeperOnce  sync.Once
	unadoptable string // why the previous daemon's apps could not be taken over, if so
	// upgrading: the daemon leaves for a new binary (Upgrade): Run returns without stopping
	// the apps.
	upgrading atomic.Bool
	// adopting: adopt is taking the previous daemon's apps over (saveHandover waits for it).
	adopting  atomic.Bool
	upgradeTo string // the binary the keeper starts next (set before upgrading)

	// fg is what `corral run` adds: signals forwarded, a stop within a grace (foreground.go).
	fg foreground

	shutdownOnce sync.Once
	quit         chan struct{} // closed when the daemon should stop
	ready        chan struct{} // closed once the API serves
	resurrect    bool
}

// New prepares a daemon for paths.Home: it takes the home's lock (one daemon per home) and
// opens the daemon log. Nothing listens until Run.
func New(opt Options) (*Daemon, error) {
	// Descriptors inherited from whoever started the daemon (`corral run` in a shell, a CI
	// runner) must not reach the apps. They stay open here: the foreground caller may rely on them.
	if err := closeexec.FromThree(); err != nil {
		return nil, err
	}
	// The daemon lives for months and its heap is small and steady: collect earlier than
	// Go's default so its footprint stays near the live heap.
	debug.SetGCPercent(50)
	// One P, like Node's single-threaded primary: the daemon's hot path is handing connections
	// from goroutine to goroutine, and with more Ps every hand-off becomes a wake-up of another
	// thread (measured: 212 µs of daemon CPU per connection with 2 Ps, 147 µs with 1, and 20%
	// more requests/s). CORRAL_DAEMON_PROCS sets another number.
	procs := 1
	if v, err := strconv.Atoi(os.Getenv("CORRAL_DAEMON_PROCS")); err == nil && v > 0 {
		procs = v
	}
	runtime.GOMAXPROCS(procs)
	p := opt.Paths
	if err := p.Ensure(); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(p.Lock, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open daemon lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another corral daemon is already running for %s (its pid is in %s): stop it with `corral kill`, or give this one a home of its own with CORRAL_HOME=<dir>", p.Home, p.PidFile)
	}
	d := &Daemon{
		paths:          p,
		started:        time.Now(),
		interval:       opt.SampleInterval,
		logs:           logs.NewManager(),
		hub:            logs.NewHub(),
		events:         newEventBus(),
		tbl:            newTable(),
		usage:          map[int]procstat.Usage{},
		cpuSeconds:     map[int]float64{},
		memoryPending:  map[int]bool{},
		apiReadTimeout: apiReadTimeout,
		lock:           lock,
		quit:           make(chan struct{}),
		handoverDirty:  make(chan struct{}, 1),
		historyDirty:   make(chan struct{}, 1),
		ready:          make(chan struct{}),
		resurrect:      opt.Resurrect,
		cron:           cron.New(cron.WithParser(cronParser)),
	}
	if d.interval <= 0 {
		d.interval = DefaultSampleInterval
	}
	d.httpListen, d.httpSource = opt.HTTPListen, "test option"
	if d.httpListen == "" {
		if d.httpListen, d.httpSource, err = settings.Listen(p.Settings); err != nil {
			lock.Close()
			return nil, err
		}
	}
	if u, err := user.Current(); err == nil {
		d.username = u.Username
	} else {
		d.username = strconv.Itoa(os.Getuid())
	}
	d.logFile, err = d.logs.Open(p.DaemonLog, logs.FileOptions{MaxSize: 10 << 20, Retain: 3, Mode: 0o600})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open daemon log: %w", err)
	}
	if exe, err := os.Executable(); err == nil {
		d.exe = exe
	}
	d.alerting = newAlerting(d)
	if d.keeper, err = keeper.FromEnv(); err != nil {
		d.logf("running without a keeper: %v", err)
	}
	if d.keeper != nil {
		d.exits = newExitRouter(d.keeper)
	}
	d.notifyDir = filepath.Join(p.Home, "notify")
	if err := os.MkdirAll(d.notifyDir, 0o700); err != nil {
		d.notifyDir = ""
	}
	// Written at every start, so it always matches this binary.
	d.nodePreload = home.NewPinned(filepath.Join(p.NodeDir, "cluster-worker-preload.js"), cluster.WorkerPreload, d.logf)
	if err := d.nodePreload.Write(); err != nil {
		d.logf("cannot write the cluster workers' preload (they run without it): %v", err)
	}
	return d, nil
}

// Ready is closed once Run serves the API.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Hub is the live log fan-out (the foreground mode prints from it).
func (d *Daemon) Hub() *logs.Hub { return d.hub }

// logf writes a line to the daemon log and the live log stream.
func (d *Daemon) logf(format string, args ...any) {
	d.logLine(-1, "corral", fmt.Sprintf(format, args...))
}

// logWriter is the daemon log as an io.Writer, for the API server's own error messages.
func (d *Daemon) logWriter() io.Writer { return daemonLog{d} }

type daemonLog struct{ d *Daemon }

func (l daemonLog) Write(b []byte) (int, error) {
	l.d.logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (d *Daemon) logLine(procID int, app, msg string) {
	now := time.Now()
	_ = d.logFile.WriteLine([]byte(now.Format("2006-01-02T15:04:05") + ": " + msg + "\n"))
	d.hub.Publish(logs.Line{Time: now, ProcID: procID, App: app, Stream: "corral", Message: msg})
}

// Run serves the API until the daemon is killed (API or signal) or ctx ends; then it stops
// every app gracefully and releases the home.
func (d *Daemon) Run(ctx context.Context) error {
	if d.keeper != nil {
		d.adopting.Store(true)
		d.adopt()
		d.adopting.Store(false)
		d.saveHandover()
		go d.writeLoop(d.handoverDirty, d.saveHandover)
		go d.writeLoop(d.historyDirty, d.saveHistory)
		go func() {
			<-d.keeper.Closed()
			if !d.upgrading.Load() {
				d.keeperFailed(errors.New("its channel closed"))
			}
		}()
	}
	_ = os.Remove(d.paths.Socket) // stale from a daemon that died; the lock says none runs
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", d.paths.Socket)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", d.paths.Socket, err)
	}
	if err := safefs.Chmod(d.paths.Socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("restrict control socket: %w", err)
	}
	d.listener = ln
	if err := safefs.WriteFile(d.paths.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("write pid file: %w", err)
	}
	if d.httpListen != "" {
		if d.http, err = d.startHTTP(d.httpListen, d.httpSource); err != nil {
			ln.Close()
			return err
		}
	}
	d.server = d.newServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.server.Serve(ln) }()
	d.logf("corral daemon %s started (pid %d, home %s)", buildinfo.Version, os.Getpid(), d.paths.Home)
	close(d.ready)

	d.cron.Start()
	d.seedAlerts()
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); d.sampleLoop() }()

	if d.resurrect {
		if res, err := d.Resurrect(ctx); err != nil {
			d.logf("resurrect: %v", err)
		} else {
			d.logf("resurrected %d apps from %s", len(res.Started), res.Path)
		}
	}
	if d.keeper != nil {
		if err := d.keeper.Ready(); err != nil {
			d.keeperFailed(err)
		}
	}
	if ok, err := sdnotify.Notify("READY=1\nSTATUS=serving"); err != nil {
		d.logf("%v", err)
	} else if ok {
		d.logf("told systemd the daemon is ready")
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR2, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stopSignal := ""
loop:
	for {
		select {
		case <-ctx.Done():
			// `corral run` cancels ctx on the same SIGTERM/SIGINT: name it if it is here.
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM || s == syscall.SIGINT {
					stopSignal = supervisor.SignalName(s.(syscall.Signal))
				}
			default:
			}
			break loop
		case <-d.quit:
			break loop
		case err := <-serveErr:
			if !errors.Is(err, http.ErrServerClosed) {
				d.logf("API server failed: %v", err)
			}
			break loop
		case s := <-sigs:
			switch s {
			case syscall.SIGUSR2:
				d.reopenLogs()
			case syscall.SIGHUP:
				// Ignored, as PM2 does: a closed terminal must not take the apps down (unless
				// `corral run` is PID 1 and forwards it).
				d.forwardSignal(syscall.SIGHUP)
			default:
				if s == syscall.SIGQUIT && d.forwardSignal(syscall.SIGQUIT) {
					continue
				}
				stopSignal = supervisor.SignalName(s.(syscall.Signal))
				d.logf("received %s: stopping every app", stopSignal)
				break loop
			}
		}
	}
	if d.upgrading.Load() {
		return d.leaveForUpgrade()
	}
	_, _ = sdnotify.Notify("STOPPING=1")
	d.beginDrain(stopSignal)
	if d.keeper != nil {
		// Stopping for good: the keeper exits after this daemon instead of restarting it.
		_ = d.keeper.Shutdown()
	}
	d.stopAllWithin()
	d.cron.Stop()
	d.shutdown()
	<-samplerDone
	d.alerting.notifier.Close()
	_ = os.Remove(d.alerting.statePath) // the apps are stopped: nothing fires for the next daemon
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = d.server.Shutdown(shutdownCtx)
	d.closeHTTP()
	_ = os.Remove(d.paths.Socket)
	_ = os.Remove(d.paths.PidFile)
	d.logf("corral daemon stopped")
	d.logFile.Close()
	d.lock.Close()
	return nil
}

// shutdown asks Run to return.
func (d *Daemon) shutdown() {
	d.shutdownOnce.Do(func() { close(d.quit) })
}

func (d *Daemon) reopenLogs() {
	if err := d.logs.ReopenAll(); err != nil {
		d.logf("reopen logs: %v", err)
		return
	}
	d.logf("log files reopened")
}

// onEvent turns a process event into a daemon log line and an event-stream message. It runs
// on the process's loop, so it must not wait for anything.
func (d *Daemon) onEvent(ev api.Event) {
	d.events.publish(ev)
	d.noteStopEvent(ev)
	d.logLine(ev.ID, ev.Name, describeEvent(ev))
	d.recordAlertEvent(ev)
	if eventChangesTable(ev.Kind) {
		d.handoverChanged()
	}
	if ev.Kind == api.EventErrored || ev.Kind == api.EventStop {
		// A cluster app whose last worker gave up closes its port (settle).
		if a := d.tbl.ownerOf(ev.ID); a != nil {
			d.requestSettle(a)
		}
	}
}

func describeEvent(ev api.Event) string {
	who := fmt.Sprintf("%s[%d]", ev.Name, ev.ID)
	switch ev.Kind {
	case api.EventStart:
		return fmt.Sprintf("%s started (pid %d)", who, ev.PID)
	case api.EventOnline:
		if ev.Message != "" {
			return fmt.Sprintf("%s online (%s)", who, ev.Message)
		}
		return who + " online"
	case api.EventExit:
		switch {
		case ev.Signal != "":
			return fmt.Sprintf("%s (pid %d) was killed by %s", who, ev.PID, ev.Signal)
		case ev.ExitCode != nil:
			return fmt.Sprintf("%s (pid %d) exited with code %d", who, ev.PID, *ev.ExitCode)
		}
		return fmt.Sprintf("%s (pid %d) exited", who, ev.PID)
	case api.EventAdopted:
		return fmt.Sprintf("%s (pid %d) taken over from the previous daemon", who, ev.PID)
	case api.EventWaitingRestart:
		return fmt.Sprintf("%s restarting in %dms", who, ev.DelayMS)
	}
	if ev.Message != "" {
		return fmt.Sprintf("%s %s: %s", who, ev.Kind, ev.Message)
	}
	return who + " " + string(ev.Kind)
}

// sampleLoop measures every process tree and enforces max_memory_restart.
func (d *Daemon) sampleLoop() {
	sampler := procstat.NewSampler()
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		d.sampleOnce(sampler)
		select {
		case <-d.quit:
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) sampleOnce(sampler *procstat.Sampler) {
	var roots []int
	byPID := map[int]listed{}
	ids := map[int]bool{}
	all := d.listing()
	for _, l := range all {
		ids[l.p.ID()] = true
		if info := l.p.Info(); info.PID > 0 {
			roots = append(roots, info.PID)
			byPID[info.PID] = l
		}
	}
	d.forkReq.retain(ids)
	usage := sampler.Sample(roots)
	byID := make(map[int]procstat.Usage, len(usage))
	for pid, u := range usage {
		l := byPID[pid]
		byID[l.p.ID()] = u
		if limit := d.memoryRestartLimit(l.p.Info().App); limit > 0 && u.RSS > limit {
			d.memoryExceeded(l.app, l.p.ID(), u.RSS)
		}
	}
	now := time.Now()
	d.usageMu.Lock()
	d.usage = byID
	d.accumulateCPU(ids, byPID, usage, now)
	d.usageMu.Unlock()
	stats := groupStats{} // each cluster group's statistics, read once for the whole sample
	d.sampleClusters(all, stats)
	d.evaluateAlerts(byID, stats, now)
	d.webSample(all, stats, now)
	d.historySampled()
}

// memoryExceeded queues a graceful restart of process id of a, over max_memory_restart with
// rss bytes, unless one is queued already (a reload can take longer than a sampling interval).
func (d *Daemon) memoryExceeded(a *app, id int, rss int64) {
	d.usageMu.Lock()
	if d.memoryPending[id] {
		d.usageMu.Unlock()
		return
	}
	d.memoryPending[id] = true
	d.usageMu.Unlock()
	d.trigger(a, []int{id}, func(ctx context.Context, p *supervisor.Process) error {
		defer func() {
			d.usageMu.Lock()
			delete(d.memoryPending, id)
			d.usageMu.Unlock()
		}()
		return p.MemoryExceeded(ctx, rss)
	})
}

func (d *Daemon) usageOf(id int) procstat.Usage {
	d.usageMu.Lock()
	defer d.usageMu.Unlock()
	return d.usage[id]
}

// accumulateCPU adds each tree's CPU time since the previous sample (its rate times the
// interval) to its slot's total; slots not in the sample's listing (ids) are forgotten.
// usageMu held.
func (d *Daemon) accumulateCPU(ids map[int]bool, byPID map[int]listed, usage map[int]procstat.Usage, now time.Time) {
	elapsed := 0.0
	if !d.lastSample.IsZero() {
		elapsed = now.Sub(d.lastSample).Seconds()
	}
	d.lastSample = now
	totals := make(map[int]float64, len(byPID))
	for _, l := range byPID {
		id := l.p.ID()
		totals[id] = d.cpuSeconds[id]
	}
	for id := range ids {
		if _, ok := totals[id]; !ok {
			if v, ok := d.cpuSeconds[id]; ok {
				totals[id] = v
			}
		}
	}
	for pid, u := range usage {
		if l, ok := byPID[pid]; ok {
			totals[l.p.ID()] += u.CPU / 100 * elapsed
		}
	}
	d.cpuSeconds = totals
}
