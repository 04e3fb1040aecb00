package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/listenexec"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/reaper"
	"github.com/corral-pm/corral/internal/safefs"
	"github.com/corral-pm/corral/internal/sdnotify"
	"github.com/corral-pm/corral/internal/spec"
)

// run is one execution of the program: one OS process and its pipes, channel and timers.
// Fields after the first block are owned by the process loop.
type run struct {
	app        *spec.App
	pid        int
	started    time.Time
	ipc        *nodeipc.Channel
	worker     Worker
	pidFile    string
	fileErr    error  // the log files it could not open (their lines are counted as lost)
	seq        int    // its number among the process's runs (its NOTIFY_SOCKET's name)
	notifyPath string // its NOTIFY_SOCKET, if it has one
	startTicks uint64 // procstat.Stat.StartTicks: its identity with the pid
	kept       bool   // the keeper holds its record and files (keep.go)
	adopted    bool   // started by an earlier daemon (adopt.go)
	current    bool   // adopted: its record said it was the slot's current run
	lost       bool   // adopted: its pid may be another program's now: never signal it
	drained    <-chan struct{}

	exited   bool
	stopping bool // a stop was requested: the exit is planned
	signaled bool // the kill signal went to the group already
	ready    bool
	// listened: a cluster worker's run said 'listening'. A ready run that never listened
	// (an app without a server) lets its replacement be judged by uptime instead (Reload).
	listened      bool
	readyTimedOut bool
	// listenFailed: why the run's listen() was refused, if it was (its exit is unstable).
	listenFailed string
	holdReady    bool // a reload decides what a missed ready means, not the timer
	killTimer    *time.Timer
	readyTimer   *time.Timer
	uptimeTimer  *time.Timer // a reload's replacement of an app that never listened (Reload)

	exitCode   int
	exitSignal string
	gone       chan struct{} // closed when the run has exited
	notify     *sdnotify.Receiver

	onExit         []func()
	onReady        []func()
	onReadyTimeout []func()
	onListenFailed []func(reason string)
	onListened     []func()
}

// startRun spawns app as a new run. Loop only.
func (p *Process) startRun(app *spec.App) (*run, error) {
	info := p.info
	env := processEnv(app, info.ID, info.Instance)
	argv := app.Argv()
	pr := p.protocol
	if preloads(pr, app) {
		// Checked at every spawn: the worker must never load a file someone else changed.
		if preload := pr.NodePreload.Path(); preload != "" {
			argv = append([]string{argv[0], "--require", preload}, argv[1:]...)
			if pr.Worker == nil {
				// The preload acts in the process whose parent this is, and not in the
				// processes the app forks in turn (they inherit execArgv, so the --require).
				env[PreloadParentEnv] = strconv.Itoa(os.Getpid())
			}
			if app.NoPMX {
				env["CORRAL_REQUEST_METRICS"] = "0"
			}
		}
	}
	path, err := startable(app, argv[0], env["PATH"])
	if err != nil {
		return nil, err
	}

	r := &run{app: app, gone: make(chan struct{})}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}

	var extra []*os.File
	var parentEnd *os.File
	// Inherited sockets come first, as fds 3.. (LISTEN_FDS).
	if pr.Sockets != nil {
		files, names, err := pr.Sockets.Files()
		if err != nil {
			return nil, fmt.Errorf("listening sockets: %w", err)
		}
		for _, f := range files {
			defer f.Close() // the child has its copy once started
		}
		extra = append(extra, files...)
		env["LISTEN_FDS"] = strconv.Itoa(len(files))
		env["LISTEN_FDNAMES"] = strings.Join(names, ":")
		if p.hooks.ExecShim != "" {
			// LISTEN_PID must be the program's own pid, known only after fork: the shim sets
			// it and execs the program in place (same pid).
			argv = listenexec.Argv(p.hooks.ExecShim, path, argv)
			path = p.hooks.ExecShim
		}
	}
	// Node apps get Node's IPC channel (process.send, 'message', and the cluster protocol in
	// cluster mode). Other programs in cluster mode get the same channel under corral's own
	// variable names, for corral's Go package: a Node grandchild that inherited NODE_* names
	// would take itself for a cluster worker.
	if app.IsNode() || pr.Worker != nil {
		parent, child, err := nodeipc.NewPair()
		if err != nil {
			return nil, fmt.Errorf("IPC channel: %w", err)
		}
		parentEnd = parent
		closers = append(closers, func() { parent.Close() })
		fd := 3 + len(extra)
		extra = append(extra, child)
		defer child.Close() // the child has its copy once started
		channelEnv := nodeipc.Env(fd)
		if !app.IsNode() {
			channelEnv = []string{nodeipc.ChannelFDEnv + "=" + strconv.Itoa(fd)}
		}
		for _, kv := range channelEnv {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	if pr.Worker != nil {
		w, err := pr.Worker.NewWorker(info.ID, runControl{p: p, r: r})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("cluster worker: %w", err)
		}
		r.worker = w
		for _, kv := range w.Env() {
			k, v, _ := strings.Cut(kv, "=")
			if k == "NODE_UNIQUE_ID" && !app.IsNode() {
				k = nodeipc.WorkerIDEnv
			}
			env[k] = v
		}
	}

	if p.hooks.NotifyDir != "" {
		p.nextRunSeq()
		r.seq = p.runSeq
		path := filepath.Join(p.hooks.NotifyDir, fmt.Sprintf("%d.%d.sock", info.ID, p.runSeq))
		if recv, err := sdnotify.Listen(path, func(state map[string]string) { p.onNotify(r, state) }); err == nil {
			r.notify = recv
			r.notifyPath = path
			closers = append(closers, func() { recv.Close() })
			env["NOTIFY_SOCKET"] = path
		}
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		closeAll()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	// Each run leads a session of its own (so also a process group, which stop signals as a
	// whole): a terminal's signals never reach it, even under `corral run`, and with Linux's
	// autogroup scheduling, which shares the CPU between sessions first, each worker competes
	// for a core as a peer of the host's other programs instead of all of an app's workers
	// sharing one session's share (PM2's workers share their daemon's).
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Dir:         app.Cwd,
		Env:         spec.EnvList(env),
		Stdout:      outW,
		Stderr:      errW,
		ExtraFiles:  extra,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	// Through the reaper's registry: a `corral run` that is PID 1 reaps orphans, never this run.
	startErr := reaper.Start(cmd)
	outW.Close()
	errW.Close()
	if startErr != nil {
		outR.Close()
		errR.Close()
		closeAll()
		if r.worker != nil {
			r.worker.Ended()
		}
		return nil, fmt.Errorf("spawn %s: %w", strings.Join(argv, " "), startErr)
	}
	r.pid = cmd.Process.Pid
	r.started = time.Now()
	p.keepRun(r, RunFiles{Out: outR, Err: errR, IPC: parentEnd})

	files := FilesFor(app, info.ID)
	drained, fileErr := p.startPumps(app, files, outR, errR)
	r.fileErr = fileErr
	if parentEnd != nil {
		ch, err := nodeipc.Open(parentEnd, &runIPC{p: p, r: r}, nodeipc.Options{HandleWindow: pr.HandleWindow})
		if err != nil {
			p.writeLine("err", "corral: IPC channel: "+err.Error())
		} else {
			r.ipc = ch
		}
	}
	if r.worker != nil {
		r.worker.Attach(r.ipc, r.pid)
	}
	r.drained = drained
	go func() {
		_ = cmd.Wait() // a non-zero exit is an error here; the state says what happened
		reaper.Release(cmd.Process.Pid)
		code, sig := -1, ""
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			code, sig = exitOf(ws)
		}
		p.exitAfterOutput(r, code, sig)
	}()
	return r, nil
}

// PreloadParentEnv tells a fork-mode Node process that corral's preload is meant for it: its
// value is the pid of its parent, the daemon.
const PreloadParentEnv = "CORRAL_PRELOAD_PARENT"

// preloads reports whether app's runs get the Node preload: Node cluster workers always (it
// drains them gracefully), fork-mode Node processes for its request metrics unless the app
// turned them off (pmx: false). Not bun, which has no --require, nor a shell command.
func preloads(pr Protocol, app *spec.App) bool {
	if pr.NodePreload == nil || !app.IsNode() || app.Shell {
		return false
	}
	if pr.Worker != nil {
		return true
	}
	base := filepath.Base(app.Interpreter)
	return !app.NoPMX && (base == "node" || base == "nodejs")
}

// nextRunSeq numbers a new run. Loop only.
func (p *Process) nextRunSeq() {
	p.runSeq++
	p.mu.Lock()
	p.seqSnapshot = p.runSeq
	p.mu.Unlock()
}

// release frees what the run held once it has exited. Loop only.
func (r *run) release() {
	if r.ipc != nil {
		r.ipc.Close()
	}
	if r.notify != nil {
		r.notify.Close()
	}
	if r.worker != nil {
		r.worker.Ended()
	}
	if r.pidFile != "" && readPidFile(r.pidFile) == r.pid {
		_ = os.Remove(r.pidFile) // still ours: no other run has taken over
	}
}

// claimFiles is what a run does when it becomes the one the process stands for (at spawn, or
// when a reload's replacement takes over): it writes its pid into the process's pid file, and
// records (Info.LogError) which of its log files or pid file could not be used, reporting it
// once, before the pumps' first report of lost output. Loop only.
func (p *Process) claimFiles(r *run) {
	err := r.fileErr
	if path := FilesFor(r.app, p.info.ID).Pid; path != "" && path != spec.NullPath {
		if perr := writePidFile(path, r.pid); perr != nil {
			p.writeLine("err", "corral: "+perr.Error())
			err = errors.Join(err, perr)
		} else {
			r.pidFile = path
		}
	}
	if msg := p.setLogError(err, true); msg != "" {
		p.emit(api.Event{Kind: api.EventLogError, Message: msg})
	}
}

// readPidFile returns the pid in a pid file, 0 if it cannot be read.
func readPidFile(path string) int {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 32))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// pumpDrainTimeout bounds how long an exit waits for the run's output to be written.
const pumpDrainTimeout = 2 * time.Second

// startPumps copies the child's stdout and stderr into its log files and the live hub. Each
// run holds its own references to the files, so a run replaced during a reload keeps logging
// until its last line. The returned channel closes when both pipes have reached EOF; the error
// says which log files could not be opened (their lines are counted as lost).
func (p *Process) startPumps(app *spec.App, files Files, outR, errR *os.File) (<-chan struct{}, error) {
	var wg sync.WaitGroup
	drained := make(chan struct{})
	var tf *logs.TimeFormat
	if app.LogDateFormat != "" {
		tf, _ = logs.NewTimeFormat(app.LogDateFormat) // validated when the app was loaded
	}
	var openErrs []error
	for _, s := range []struct {
		name string
		path string
		r    *os.File
	}{{"out", files.Out, outR}, {"err", files.Err, errR}} {
		opened, errs := p.openFiles(app, s.path, files.Combined)
		for _, err := range errs {
			// The combined file is opened for both streams: one report is enough.
			if !slices.ContainsFunc(openErrs, func(e error) bool { return e.Error() == err.Error() }) {
				openErrs = append(openErrs, err)
			}
		}
		stream := &logs.Stream{ProcID: p.info.ID, App: app.Name, Name: s.name, Files: opened, Time: tf, JSON: app.LogType == "json", Hub: p.hooks.Hub, Loss: p.loss}
		wg.Add(1)
		go func(r *os.File) {
			defer wg.Done()
			_ = stream.Pump(r)
			r.Close()
			for _, f := range opened {
				f.Close()
			}
		}(s.r)
	}
	go func() { wg.Wait(); close(drained) }()
	return drained, errors.Join(openErrs...)
}

// openFiles opens the given log paths (skipping empty ones). A file that cannot be opened (or
// is refused: a symbolic link someone else planted) stands in the result as logs.Unopened, so
// that the lines meant for it are counted as lost; the app still runs and its lines still
// stream. The errors say what went wrong.
func (p *Process) openFiles(app *spec.App, paths ...string) ([]*logs.File, []error) {
	var out []*logs.File
	var errs []error
	for _, path := range paths {
		if path == "" {
			continue
		}
		f, err := p.hooks.Logs.Open(path, logs.FileOptions{MaxSize: app.LogMaxSize, Retain: app.LogRetain})
		if err != nil {
			errs = append(errs, err)
			f = logs.Unopened(path, err)
		}
		out = append(out, f)
	}
	return out, errs
}

// setLogError records why log files could not be opened, or the pid file written
// (Info.LogError). It returns the message when it changed, for the caller to report (an
// EventLogError): once, not at every restart of a crashing app. With clear, no error clears it
// (a run whose files all worked).
func (p *Process) setLogError(err error, clear bool) (report string) {
	msg := ""
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	p.mu.Lock()
	changed := p.info.LogError != msg
	if msg != "" || clear {
		p.info.LogError = msg
	}
	p.mu.Unlock()
	if msg != "" && changed {
		return msg
	}
	return ""
}

// writeLine writes a line from corral itself into the process's log (stream "out" or "err"),
// so that `corral logs app` shows why a process is not running.
func (p *Process) writeLine(stream, msg string) {
	info := p.Info()
	path := info.Files.Out
	if stream == "err" {
		path = info.Files.Err
	}
	files, errs := p.openFiles(info.App, path, info.Files.Combined)
	if msg := p.setLogError(errors.Join(errs...), false); msg != "" {
		p.note(api.Event{Kind: api.EventLogError, Message: msg}) // writeLine may run off the loop
	}
	s := &logs.Stream{ProcID: info.ID, App: info.App.Name, Name: stream, Files: files, Hub: p.hooks.Hub, Loss: p.loss}
	_ = s.Pump(strings.NewReader(msg + "\n"))
	for _, f := range files {
		f.Close()
	}
}

// writePidFile writes pid to path, never through a symbolic link (nor into a file with other
// names): pid files are in the home or where the ecosystem file says, and a link planted there
// must not make the daemon overwrite a file of someone else's choosing.
func writePidFile(path string, pid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := safefs.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o640); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// Startable says why app cannot be spawned at all (its program is not found or not
// executable, its cwd is not a directory), so the daemon refuses it before registering
// anything; nil if it can be.
func Startable(app *spec.App) error {
	_, err := startable(app, app.Argv()[0], processEnv(app, 0, 0)["PATH"])
	return err
}

// startable resolves the program a run of app executes and checks its cwd.
func startable(app *spec.App, program, pathEnv string) (string, error) {
	path, err := lookPath(program, pathEnv)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(app.Cwd); err != nil || !st.IsDir() {
		return "", fmt.Errorf("cwd %s is not a directory", app.Cwd)
	}
	return path, nil
}

// lookPath finds an executable the way a shell with the app's PATH would, not the daemon's:
// the daemon may have been started by another CLI, under systemd, with another PATH.
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return name, nil
	}
	if pathEnv == "" {
		pathEnv = os.Getenv("PATH")
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, name)
		if executable(candidate) == nil {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("%q not found in the app's PATH; install it or give its full path as interpreter", name)
}

func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// runIPC receives a run's IPC traffic on the channel's reader goroutine.
type runIPC struct {
	p *Process
	r *run
}

func (h *runIPC) HandleMessage(m nodeipc.Message) {
	if m.Internal {
		if h.r.worker != nil {
			h.r.worker.HandleInternal(m)
			return
		}
		if m.Handle != nil {
			m.Handle.Close() // fork mode has no use for handles
			m.Handle = nil
		}
		if h.p.hooks.Internal != nil {
			h.p.hooks.Internal(h.p.info.ID, h.r.pid, m)
		}
		return
	}
	if m.Handle != nil {
		m.Handle.Close()
		m.Handle = nil
	}
	if h.r.app.WaitReady && bytes.Equal(bytes.TrimSpace(m.Raw), []byte(`"ready"`)) {
		r := h.r
		h.p.post(func() { h.p.markReady(r, "") })
	}
	if h.p.hooks.Message != nil {
		h.p.hooks.Message(h.p.info.ID, m)
	}
}

func (h *runIPC) HandleBadLine(line []byte, err error) {
	if len(line) > 200 {
		line = append(line[:200:200], "..."...)
	}
	h.p.writeLine("err", fmt.Sprintf("corral: ignored a line on the IPC channel that is not JSON (%v): %q", err, line))
}

func (h *runIPC) HandleClose(error) {
	if h.r.worker != nil {
		h.r.worker.HandleChannelClose()
	}
}

// onNotify handles what a run sends to its NOTIFY_SOCKET (sd_notify). As with the 'ready'
// message, READY=1 decides only with wait_ready: otherwise the app's readiness is its
// listening (cluster) or its port answering (inherited sockets). Called on the receiver's
// goroutine, which must never wait for the loop: the loop waits for it when it closes the
// receiver (run.release), so a post that waited for room in a full queue would deadlock.
func (p *Process) onNotify(r *run, state map[string]string) {
	if state["READY"] == "1" && r.app.WaitReady {
		go p.post(func() { p.markReady(r, "sd_notify READY=1") })
	}
}

// runControl is how a worker protocol reports on its run.
type runControl struct {
	p *Process
	r *run
}

func (c runControl) Ready() {
	r := c.r
	c.p.post(func() {
		first := !r.listened
		r.listened = true
		for _, f := range r.onListened {
			f()
		}
		r.onListened = nil
		if r.app.WaitReady {
			// With wait_ready only the app's own 'ready' counts, as in PM2.
			if first {
				c.p.recordChanged(r)
			}
			return
		}
		c.p.markReady(r, "")
	})
}

// ListenFailed records why the run's listen() was refused: its exit counts as unstable, and
// the reason is the process's last error and a line of its error log.
func (c runControl) ListenFailed(reason string) {
	r := c.r
	c.p.post(func() {
		if r.exited {
			return
		}
		r.listenFailed = reason
		c.p.writeLine("err", "corral: "+reason)
		if r == c.p.cur {
			c.p.update(func(i *Info) { i.LastError = reason })
		}
		for _, f := range r.onListenFailed {
			f(reason)
		}
		r.onListenFailed = nil
	})
}

// StateChanged may be called on the loop itself (Disconnect from beginStop): the post must not
// wait for it.
func (c runControl) StateChanged() {
	r := c.r
	go c.p.post(func() { c.p.recordChanged(r) })
}

func (c runControl) Disconnected() {
	r := c.r
	c.p.post(func() {
		if !r.stopping || r.exited || r.signaled || r.app.ShutdownWithMessage {
			return
		}
		// Drained: now the kill signal, so the app's own shutdown code runs (or, without a
		// handler, it exits at once with nothing left in flight).
		_ = signalTree(r.pid, killSignal(r.app))
		r.signaled = true
	})
}
