// Package cli is corral's command line: PM2's verbs, aliases and flags, as a thin client of the
// daemon's API. It resolves ecosystem files and its own environment into app specs; the daemon
// does the rest.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/render"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// Daemon is the daemon as the foreground commands (`corral daemon`, `corral run`) run it in
// this process. cmd/corral provides it: the CLI is a client of the daemon's API and does not
// import the daemon's package.
type Daemon interface {
	// Run serves until ctx ends or the daemon is killed, then stops every app.
	Run(ctx context.Context) error
	// Ready is closed once the API serves.
	Ready() <-chan struct{}
	// Hub is the live output of every app, for `corral run` to print.
	Hub() *logs.Hub
	StartApps(ctx context.Context, req api.StartRequest) (api.ActionResponse, error)
	Processes(reveal bool) []api.Process
}

// NewDaemon makes the daemon of a home; resurrect restores the saved list at start.
type NewDaemon func(paths home.Paths, resurrect bool) (Daemon, error)

// cli holds what every command shares.
type cli struct {
	stdout, stderr io.Writer
	noColor        bool
	silent         bool
	newDaemon      NewDaemon

	paths  home.Paths
	client *api.Client
	// spawn: the command may start the daemon; versionNoted: its version was checked.
	spawn, versionNoted bool
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// silentExit ends the command with a code and no further message (it was printed already).
type silentExit int

func (e silentExit) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// Main runs the command line and returns the exit code.
func Main(args []string, newDaemon NewDaemon) int {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, newDaemon: newDaemon}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.execute(ctx, args)
}

// execute runs one command line and returns its exit code: 0, the code of a silentExit or an
// exitError, or 1 for any other error (printed).
func (c *cli) execute(ctx context.Context, args []string) int {
	root := c.rootCommand()
	root.SetArgs(rewriteArgs(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var se silentExit
	if errors.As(err, &se) {
		return int(se)
	}
	fmt.Fprintf(c.stderr, "[corral] error: %s\n", err)
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "corral",
		Short: "corral runs your apps, one worker per CPU core behind one port, and keeps them running",
		Long: `corral is a process manager: PM2's commands and ecosystem files, with a cluster mode for
Node.js and any other language, rolling reloads that drop nothing, and secrets kept out of sight.`,
		Version:       buildinfo.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// `corral` alone prints the help and fails, as `pm2` does: a script that runs it
		// without its verb must not pass.
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(c.stderr)
			_ = cmd.Help()
			return silentExit(1)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	// Help, usage and --version print where the commands print.
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.PersistentFlags().BoolVar(&c.noColor, "no-color", false, "print without colours")
	root.PersistentFlags().BoolVarP(&c.silent, "silent", "s", false, "print nothing but errors and asked-for data")
	root.AddGroup(&cobra.Group{ID: "apps", Title: "Apps:"}, &cobra.Group{ID: "info", Title: "Inspection:"},
		&cobra.Group{ID: "logs", Title: "Logs:"}, &cobra.Group{ID: "daemon", Title: "Daemon and boot:"})
	root.AddCommand(
		c.startCommand(), c.stopCommand(), c.restartCommand(), c.reloadCommand(), c.deleteCommand(),
		c.resetCommand(), c.sendSignalCommand(), c.scaleCommand(),
		c.initCommand(),
		c.listCommand(), c.monitCommand(), c.jlistCommand(), c.prettylistCommand(), c.describeCommand(), c.envCommand(), c.pidCommand(), c.idCommand(),
		c.verifyCommand(),
		c.logsCommand(), c.flushCommand(), c.reloadLogsCommand(),
		c.saveCommand(), c.resurrectCommand(), c.startupCommand(), c.unstartupCommand(),
		c.killCommand(), c.pingCommand(), c.updateCommand(), c.runCommand(), c.daemonCommand(), c.keeperCommand(),
		c.setCommand(), c.getCommand(), c.unsetCommand(), c.alertsCommand(),
		c.webCommand(),
	)
	return root
}

// color reports whether to paint: a terminal, no NO_COLOR, no --no-color.
func (c *cli) color() bool {
	if c.noColor || os.Getenv("NO_COLOR") != "" {
		return false
	}
	return isTerminal(c.stdout)
}

// isTerminal reports whether stream (c.stdout, os.Stdin) is a terminal: a file, and a tty.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (c *cli) renderOptions() render.Options {
	return render.Options{Now: time.Now(), Color: c.color()}
}

// infof prints a progress line unless --silent.
func (c *cli) infof(format string, args ...any) {
	if c.silent {
		return
	}
	fmt.Fprintf(c.stdout, "[corral] "+format+"\n", args...)
}

func (c *cli) warnf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "[corral] warning: "+format+"\n", args...)
}

// printTable prints the process table, as PM2 does after most commands.
func (c *cli) printTable(ctx context.Context) error {
	if c.silent {
		return nil
	}
	procs, err := c.processes(ctx, false)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, render.Table(procs, c.renderOptions()))
	return nil
}

// reportErrors prints per-process failures of an action and turns them into exit code 1. The
// daemon joins the failures of one app's processes into one message, a line each: every line
// gets the prefix.
func (c *cli) reportErrors(errs []string) error {
	for _, e := range errs {
		for _, line := range strings.Split(e, "\n") {
			fmt.Fprintf(c.stderr, "[corral] error: %s\n", line)
		}
	}
	if len(errs) > 0 {
		return silentExit(1)
	}
	return nil
}

// plural says "1 app", "2 apps"; "process" takes "es".
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "s"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
