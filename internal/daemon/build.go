package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/reaper"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// An app's build (spec.App.Build, the ecosystem file's `build`) runs once, in the daemon,
// before the app's processes start on start, restart and reload: one compile instead of one
// per worker, visible as it happens (its output goes line by line into the app's logs, so
// `corral run` prints it and `corral logs` keeps it), and checked before anything changes (a
// build that fails starts nothing, and a reload keeps the old processes serving).

// buildTailLines is how many of a failed build's last output lines its error repeats: enough
// for a compiler's message, few enough for a terminal.
const buildTailLines = 12

// buildKillDelay is how long a cancelled build's process group has between SIGTERM and SIGKILL.
const buildKillDelay = 3 * time.Second

// buildError is a failed build: the app, the command, how it ended and its last lines.
type buildError struct {
	app, command, cwd string
	ended             string // "exit status 2", "timed out after 15m0s", "cancelled: ..."
	elapsed           time.Duration
	tail              []string
	afterwards        string // what the failure left running
}

func (e *buildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: build failed (%s, after %s): `%s` in %s", e.app, e.ended, e.elapsed.Round(100*time.Millisecond), e.command, e.cwd)
	if len(e.tail) == 0 {
		fmt.Fprintf(&b, " (it printed nothing); %s", e.afterwards)
		return b.String()
	}
	b.WriteString("; its last lines:\n")
	for _, l := range e.tail {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	fmt.Fprintf(&b, "  %s", e.afterwards)
	return b.String()
}

// builds tracks the running builds so that a stop, a delete or the daemon's own stop can
// cancel them instead of waiting for a compile to end.
type builds struct {
	mu       sync.Mutex
	stopping bool                   // the daemon is stopping: no build starts
	running  map[string]*buildEntry // by app name
}

// buildEntry is one running build; its own pointer, so that a build's end never forgets a
// later build of another app of the same name.
type buildEntry struct{ cancel context.CancelFunc }

// begin registers app's build and returns its context; it is cancelled by cancel(app) or
// cancelAll, and ends with the returned release.
func (b *builds) begin(app string, timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout, errBuildTimeout)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		cancel()
		return ctx, func() {}
	}
	if b.running == nil {
		b.running = map[string]*buildEntry{}
	}
	e := &buildEntry{cancel: cancel}
	b.running[app] = e
	return ctx, func() {
		b.mu.Lock()
		if b.running[app] == e {
			delete(b.running, app)
		}
		b.mu.Unlock()
		cancel()
	}
}

// cancel stops app's build, if one runs (`corral stop` or `delete` during a build).
func (b *builds) cancel(app string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.running[app]; e != nil {
		e.cancel()
	}
}

// cancelAll stops every build, and any later one before it starts: the daemon is stopping.
func (b *builds) cancelAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopping = true
	for _, e := range b.running {
		e.cancel()
	}
}

// errBuildTimeout is the cause of a build's context that build_timeout ended.
var errBuildTimeout = errors.New("build_timeout")

// build runs s.Build for app a, whose processes procs are about to start (or be replaced),
// and returns an error when it fails (a *buildError), or when the program it should have made
// is not there; the caller then changes nothing. Its output goes to the log files of the app's
// first process (the per-app files when merge_logs is on), under that process's id. Loop
// only: no other op of the app runs meanwhile.
func (d *Daemon) build(a *app, s *spec.App, procs []*supervisor.Process) error {
	if s.Build == "" || len(procs) == 0 {
		return nil
	}
	running := runningProcs(a)
	first := procs[0]
	for _, p := range a.st.procs {
		if p.ID() < first.ID() {
			first = p
		}
	}
	out := d.buildStream(s, first.ID(), "out")
	errOut := d.buildStream(s, first.ID(), "err")
	defer out.close()
	defer errOut.close()

	timeout := s.BuildTimeoutD()
	out.line(fmt.Sprintf("corral: building %s: %s (in %s; its processes start once it succeeds, at most %s from now)", s.Name, s.Build, s.Cwd, timeout))
	d.logFileLine(fmt.Sprintf("app %s: build started: %s", s.Name, s.Build))
	// On the event stream too, for the commands that wait on it (`corral reload <app>`).
	// Published directly, not through onEvent: the lines above already reach the hub.
	event := func(msg string) {
		d.events.publish(api.Event{Time: time.Now(), ID: first.ID(), Name: s.Name, Kind: api.EventBuild, Message: msg})
	}
	event(fmt.Sprintf("%s%s (its output: `corral logs %s`)", api.BuildStartedPrefix, s.Build, s.Name))

	ctx, release := d.builds.begin(s.Name, timeout)
	defer release()
	started := time.Now()
	tail := &lineTail{max: buildTailLines}
	stdout, stderr := out.writer(tail), errOut.writer(tail)
	err := runBuild(ctx, s, stdout, stderr)
	stdout.Close()
	stderr.Close()
	elapsed := time.Since(started)
	if err == nil {
		out.line(fmt.Sprintf("corral: %s built in %s", s.Name, elapsed.Round(100*time.Millisecond)))
		d.logFileLine(fmt.Sprintf("app %s: built in %s", s.Name, elapsed.Round(100*time.Millisecond)))
		event(fmt.Sprintf("built in %s", elapsed.Round(100*time.Millisecond)))
		// The program may be the build's output: it must be there now.
		if err := supervisor.Startable(s); err != nil {
			msg := fmt.Sprintf("%s: built, but it cannot start: %v: the build (`%s`) must make it; %s", s.Name, err, s.Build, afterFailedBuild(s.Name, running, false))
			errOut.line("corral: " + msg)
			return errors.New(msg)
		}
		return nil
	}
	ended, cancelled := err.Error(), false
	switch {
	case errors.Is(context.Cause(ctx), errBuildTimeout):
		ended = fmt.Sprintf("timed out: build_timeout is %s", timeout)
	case ctx.Err() != nil:
		ended, cancelled = "cancelled: the app was stopped or deleted, or the daemon is stopping", true
	}
	afterwards := afterFailedBuild(a.name, running, cancelled)
	be := &buildError{app: s.Name, command: s.Build, cwd: s.Cwd, ended: ended, elapsed: elapsed, tail: tail.lines(), afterwards: afterwards}
	errOut.line(fmt.Sprintf("corral: build of %s failed (%s, after %s): %s", s.Name, ended, elapsed.Round(100*time.Millisecond), afterwards))
	d.logFileLine(fmt.Sprintf("app %s: build failed (%s)", s.Name, ended))
	event(fmt.Sprintf("build failed (%s)", ended))
	return be
}

// runningProcs counts app a's processes that run now. Loop only.
func runningProcs(a *app) int {
	n := 0
	for _, p := range a.st.procs {
		switch p.Info().Status {
		case supervisor.StatusOnline, supervisor.StatusLaunching:
			n++
		}
	}
	return n
}

// afterFailedBuild says what a failed build leaves of app name, which had running processes,
// and what to do next, for its error.
func afterFailedBuild(name string, running int, cancelled bool) string {
	switch {
	case running > 0 && cancelled:
		return fmt.Sprintf("nothing was changed: its %d running process(es) keep the previous build", running)
	case running > 0:
		return fmt.Sprintf("nothing was changed: its %d running process(es) keep serving the previous build; fix the build, then run the command again", running)
	case cancelled:
		return "nothing was started"
	}
	return fmt.Sprintf("nothing was started: %s stays stopped; fix the build, then `corral restart %s`", name, name)
}

// runBuild runs the build command under `sh -c` in the app's cwd with its environment, in a
// process group of its own (a compiler's children go with it when it is cancelled), and
// returns once it has exited and its output is written.
func runBuild(ctx context.Context, s *spec.App, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Build)
	cmd.Dir = s.Cwd
	cmd.Env = spec.EnvList(s.Environ())
	cmd.Stdin = nil
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// A session of its own, as the app's runs: no terminal signal reaches it, and the whole
	// group can be signalled.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	exited := make(chan struct{}) // closed once the shell is reaped: its pid may be reused then
	cmd.Cancel = func() error {
		pid := cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		go func() {
			select {
			case <-exited: // the group was killed when the shell ended (below)
			case <-time.After(buildKillDelay):
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}()
		return nil
	}
	// A grandchild that keeps the output pipes open must not hold the start up.
	cmd.WaitDelay = buildKillDelay + time.Second
	// Through the reaper's registry: a `corral run` that is PID 1 reaps orphans, not this.
	if err := reaper.Start(cmd); err != nil {
		return fmt.Errorf("cannot run /bin/sh: %w", err)
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		// Cancelled: what is left of its group (a compiler that outlived the shell) goes now,
		// not buildKillDelay later, when the daemon may have exited already. (A group that
		// still has members keeps its id from being reused.)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	close(exited)
	reaper.Release(cmd.Process.Pid)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("killed by %s", supervisor.SignalName(ws.Signal()))
		}
		return fmt.Errorf("exit status %d", ee.ExitCode())
	}
	return err
}

// buildStream writes a build's output into the log files of process id of app s (as its
// stream "out" or "err") and on the hub, line by line as it comes.
type buildStream struct {
	d      *Daemon
	stream *logs.Stream
	mu     sync.Mutex // Pump is not concurrent: the build's pipe and corral's own lines share it
}

func (d *Daemon) buildStream(s *spec.App, id int, name string) *buildStream {
	files := supervisor.FilesFor(s, id)
	path := files.Out
	if name == "err" {
		path = files.Err
	}
	var opened []*logs.File
	for _, p := range []string{path, files.Combined} {
		if p == "" {
			continue
		}
		f, err := d.logs.Open(p, logs.FileOptions{MaxSize: s.LogMaxSize, Retain: s.LogRetain})
		if err != nil {
			d.logf("app %s: build output: %v", s.Name, err)
			continue
		}
		opened = append(opened, f)
	}
	var tf *logs.TimeFormat
	if s.LogDateFormat != "" {
		tf, _ = logs.NewTimeFormat(s.LogDateFormat) // validated when the app was loaded
	}
	return &buildStream{d: d, stream: &logs.Stream{ProcID: id, App: s.Name, Name: name, Files: opened, Time: tf, JSON: s.LogType == "json", Hub: d.hub,
		OnError: func(err error) { d.logf("app %s: build output: %v", s.Name, err) }}}
}

// line writes one line: corral's own, or one of the build's (writer).
func (b *buildStream) line(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.stream.Pump(strings.NewReader(msg + "\n"))
}

// writer returns what the build's output is written to: the stream, one complete line at a
// time, and tail.
func (b *buildStream) writer(tail *lineTail) *lineWriter {
	return &lineWriter{flush: func(line []byte) {
		tail.add(string(line))
		b.line(string(line))
	}}
}

func (b *buildStream) close() {
	for _, f := range b.stream.Files {
		f.Close()
	}
}

// lineWriter cuts what is written into lines (at most logs.MaxLineLen each) and hands each
// complete one to flush; Close hands over a last line without its '\n'.
type lineWriter struct {
	flush   func([]byte)
	pending []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.flush(w.pending[:i])
		w.pending = w.pending[i+1:]
	}
	for len(w.pending) > logs.MaxLineLen {
		w.flush(w.pending[:logs.MaxLineLen])
		w.pending = w.pending[logs.MaxLineLen:]
	}
	if len(w.pending) == 0 {
		w.pending = nil
	}
	return len(p), nil
}

// Close hands over the last line when the output did not end with '\n'.
func (w *lineWriter) Close() error {
	if len(w.pending) > 0 {
		w.flush(w.pending)
		w.pending = nil
	}
	return nil
}

// lineTail keeps the last max lines of a build's output, both streams in the order they came.
type lineTail struct {
	mu   sync.Mutex
	max  int
	kept []string
}

func (t *lineTail) add(line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.kept = append(t.kept, line)
	if len(t.kept) > t.max {
		t.kept = t.kept[len(t.kept)-t.max:]
	}
}

func (t *lineTail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.kept...)
}

// logFileLine writes msg to the daemon log file only: the build's own lines already reach the
// hub (and `corral run`'s terminal) as the app's, once is enough.
func (d *Daemon) logFileLine(msg string) {
	_ = d.logFile.WriteLine([]byte(time.Now().Format("2006-01-02T15:04:05") + ": " + msg + "\n"))
}
