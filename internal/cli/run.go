package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/ecosystem"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runCommand is the foreground mode (PM2's pm2-runtime / --no-daemon), for containers and
// systemd: the daemon runs attached to the terminal, prints every app's output, stops every
// app on SIGINT/SIGTERM, and exits with code 2 when no app is left running. As a container's
// PID 1 it also reaps orphans, bounds its stop with --grace, and its exit code after a stop
// says whether apps errored or had to be killed (run_pid1.go, docs/containers.md §4).
func (c *cli) runCommand() *cobra.Command {
	f := &appFlags{}
	rf := &runFlags{}
	cmd := &cobra.Command{
		Use:     "run <ecosystem file | script> [-- args]",
		Short:   "run apps in the foreground (containers, systemd): logs to stdout, Ctrl-C stops all",
		GroupID: "daemon",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var scriptArgs []string
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				scriptArgs = args[dash:]
				args = args[:dash]
			}
			if len(args) != 1 {
				return fmt.Errorf("run takes one ecosystem file or script")
			}
			if err := rf.check(); err != nil {
				return err
			}
			return c.runForeground(cmd.Context(), cmd.Flags(), f, rf, args[0], scriptArgs)
		},
	}
	addAppFlags(cmd.Flags(), f)
	addRunFlags(cmd.Flags(), rf)
	return cmd
}

// exitNothingRunning is pm2-runtime's exit code when every app has stopped.
const exitNothingRunning = 2

// The foreground printer stops at this line, published once the daemon has returned.
const (
	runEndProcID  = -1000
	runEndMessage = "corral run: end of output"
)

func (c *cli) runForeground(ctx context.Context, fs *pflag.FlagSet, f *appFlags, rf *runFlags, target string, scriptArgs []string) error {
	paths, err := home.Resolve()
	if err != nil {
		return err
	}
	c.paths = paths
	opt, err := c.loaderOptions(f, overrides(fs))
	if err != nil {
		return err
	}
	var apps []spec.App
	if ecosystem.IsConfigFile(target) && isFile(target) {
		apps, err = c.loadFile(target, opt)
	} else {
		var a spec.App
		a, err = c.scriptApp(target, scriptArgs, opt)
		apps = []spec.App{a}
	}
	if err != nil {
		return err
	}
	d, err := c.newDaemon(paths, false)
	if err != nil {
		return err
	}
	fd, _ := d.(foregroundDaemon)
	if fd != nil {
		fd.SetForeground(api.ForegroundOptions{Grace: rf.grace, ForwardSignals: os.Getpid() == 1})
	}
	// Orphans are reaped from here on: the ecosystem file's loader, a child waited for by
	// os/exec outside the reaper's registry, has exited.
	stopReaper := c.startReaper()
	defer stopReaper()
	sub := d.Hub().Subscribe(func(logs.Line) bool { return true }, 8192)
	lp := &logPrinter{out: c.stdout, errOut: c.stderr, color: c.color(), nameWidth: 12}
	jp := &jsonLogPrinter{out: c.stdout, errOut: c.stderr, processes: func() []api.Process { return d.Processes(false) }}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for l := range sub.C {
			if l.ProcID == runEndProcID && l.Message == runEndMessage {
				return
			}
			if rf.logFormat == "json" {
				jp.print(l)
				continue
			}
			lp.print(api.LogLine{Time: l.Time, ProcID: l.ProcID, App: l.App, Stream: l.Stream, Message: l.Message})
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		sub.Close()
		<-printed
		return err
	}

	resp, err := d.StartApps(runCtx, api.StartRequest{Apps: apps, Mode: api.ModeCreate})
	if err != nil {
		cancel()
		<-done
		sub.Close()
		<-printed
		return err
	}
	if runCtx.Err() == nil {
		// (After a Ctrl-C during the start, its errors only say that it was interrupted.)
		for _, e := range resp.Errors {
			fmt.Fprintf(c.stderr, "[corral] error: %s\n", e)
		}
	}

	nothingRunning := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	idle := 0
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			if anyAlive(d.Processes(false)) {
				idle = 0
				continue
			}
			// A few seconds of nothing alive, so a restart in progress is not mistaken for the end.
			if idle++; idle >= 3 {
				nothingRunning = true
				cancel()
			}
		}
	}
	// Print what is still queued (Close would drop it) up to a marker published last. The
	// marker itself can be skipped if the queue is full: then give up after a while.
	d.Hub().Publish(logs.Line{ProcID: runEndProcID, Stream: logs.StreamCorral, Message: runEndMessage})
	select {
	case <-printed:
	case <-time.After(5 * time.Second):
	}
	sub.Close()
	<-printed
	if err != nil {
		return err
	}
	if nothingRunning {
		fmt.Fprintln(c.stderr, "[corral] no app is running any more: exiting")
		return silentExit(exitNothingRunning)
	}
	if fd != nil {
		if code, why := stopExitCode(fd.StopReport()); code != 0 {
			fmt.Fprintf(c.stderr, "[corral] %s: exiting with code %d\n", why, code)
			return silentExit(code)
		}
	}
	return nil
}

func anyAlive(procs []api.Process) bool {
	for _, p := range procs {
		switch p.Status {
		case "online", "launching", "waiting restart", "stopping":
			return true
		}
	}
	return false
}
