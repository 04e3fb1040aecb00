package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/reaper"
	"github.com/spf13/pflag"
)

// What `corral run` does as a container's init (docs/containers.md): it reaps orphans, stops
// within a grace period, writes logs a collector can parse, and tells the orchestrator with
// its exit code how the run ended.

// runFlags are `corral run`'s own flags.
type runFlags struct {
	logFormat string
	grace     time.Duration
}

func addRunFlags(fs *pflag.FlagSet, f *runFlags) {
	fs.StringVar(&f.logFormat, "log-format", "text", "how app output is printed: text (PM2's prefixed lines) or json (one object a line: time, app, id, instance, stream, message)")
	fs.DurationVar(&f.grace, "grace", 0, "on SIGTERM/SIGINT, kill what still runs after this long (e.g. 25s: under Kubernetes' terminationGracePeriodSeconds); 0: each app's kill_timeout decides")
}

func (f *runFlags) check() error {
	switch f.logFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: expected text or json", f.logFormat)
	}
	if f.grace < 0 {
		return fmt.Errorf("--grace %v: must not be negative", f.grace)
	}
	return nil
}

// Exit codes of `corral run` (docs/containers.md §4). 1 is every error before the apps start
// (an ecosystem file refused, a port taken); exitNothingRunning (2) is pm2-runtime's.
const (
	exitStoppedErrored = 3 // stopped on a signal while an app was errored
	exitStopKilled     = 4 // stopped on a signal, and processes had to be killed
)

// stopExitCode picks the exit code after a stop on a signal.
func stopExitCode(r api.StopReport) (int, string) {
	switch {
	case r.Killed > 0:
		return exitStopKilled, fmt.Sprintf("%d processes did not stop in time and were killed", r.Killed)
	case len(r.Errored) > 0:
		return exitStoppedErrored, fmt.Sprintf("stopped while apps were errored: %v", r.Errored)
	}
	return 0, ""
}

// foregroundDaemon is what `corral run` uses beyond Daemon when the daemon offers it (the real
// one does; test doubles need not).
type foregroundDaemon interface {
	SetForeground(api.ForegroundOptions)
	StopReport() api.StopReport
}

// startReaper makes this process the reaper of its descendants' orphans (a subreaper when it
// is not PID 1) and collects them until the returned function is called.
func (c *cli) startReaper() (stop func()) {
	if os.Getpid() != 1 {
		if err := reaper.SetSubreaper(); err != nil {
			fmt.Fprintf(c.stderr, "[corral] cannot become a child subreaper (orphans of the apps go to PID 1): %v\n", err)
		}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		reaper.Loop(quit, nil)
	}()
	return func() {
		close(quit)
		<-done
		_, _ = reaper.ReapOnce() // what the stop left behind
	}
}

// jsonLogPrinter writes each line as one JSON object, app output on stdout and errors and
// corral's own lines on stderr, one write a line (no buffering: a collector reading the
// container's output sees each line when it is written).
type jsonLogPrinter struct {
	out, errOut io.Writer
	processes   func() []api.Process
	mu          sync.Mutex
	instances   map[int]int // process id -> instance, refreshed when an id is not known
}

type jsonLogLine struct {
	Time     string `json:"time"`
	App      string `json:"app"`
	ID       *int   `json:"id,omitempty"`
	Instance *int   `json:"instance,omitempty"`
	Stream   string `json:"stream"`
	Message  string `json:"message"`
}

func (p *jsonLogPrinter) print(l logs.Line) {
	j := jsonLogLine{Time: l.Time.UTC().Format(time.RFC3339Nano), App: l.App, Message: l.Message}
	w := p.errOut
	switch l.Stream {
	case "out":
		j.Stream, w = "stdout", p.out
	case "err":
		j.Stream = "stderr"
	default:
		j.Stream = "corral"
	}
	if l.ProcID >= 0 {
		id := l.ProcID
		j.ID = &id
		if inst, ok := p.instance(id); ok {
			j.Instance = &inst
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

func (p *jsonLogPrinter) instance(id int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if inst, ok := p.instances[id]; ok {
		return inst, true
	}
	if p.processes == nil {
		return 0, false
	}
	p.instances = map[int]int{}
	for _, pr := range p.processes() {
		p.instances[pr.ID] = pr.Instance
	}
	inst, ok := p.instances[id]
	return inst, ok
}

// pingReady is `corral ping --ready`, for exec probes: it never starts a daemon (a probe that
// started one would hide the failure it is there to report).
func (c *cli) pingReady(ctx context.Context) error {
	if err := c.connect(ctx, false); err != nil {
		if errors.Is(err, errNoDaemon) {
			return fmt.Errorf("not ready: %w for %s", err, c.paths.Home)
		}
		return err
	}
	rd, err := c.client.Ready(ctx)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	if !rd.Ready {
		return fmt.Errorf("not ready: %s", strings.Join(rd.Reasons, "; "))
	}
	fmt.Fprintln(c.stdout, "ready")
	return nil
}
