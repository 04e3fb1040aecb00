package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/keeper"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/persist"
	"github.com/corral-pm/corral/internal/startup"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func (c *cli) saveCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "save",
		Aliases: []string{"dump"},
		Short:   "save the process list, for resurrect and boot (secrets sealed)",
		GroupID: "daemon",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			resp, err := request(ctx, c, func(cl *api.Client) (api.SaveResponse, error) { return cl.Save(ctx, force) })
			if err != nil {
				return err
			}
			c.infof("Saved %s (%s) in %s", plural(resp.Apps, "app"), plural(resp.Procs, "process"), resp.Path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "save even an empty list")
	return cmd
}

func (c *cli) resurrectCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "resurrect",
		Short:   "start the saved apps that are not running (stopped ones stay stopped)",
		GroupID: "daemon",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			resp, err := request(ctx, c, func(cl *api.Client) (api.ResurrectResponse, error) { return cl.Resurrect(ctx) })
			if err != nil {
				return err
			}
			if resp.FromBackup {
				c.warnf("%s was unreadable: restored from its backup", resp.Path)
			}
			for _, n := range resp.Started {
				c.infof("Resurrected %s", n)
			}
			for _, n := range resp.Skipped {
				c.infof("%s already exists: left as it is", n)
			}
			return c.printTable(ctx)
		},
	}
}

func (c *cli) killCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "kill",
		Short:   "stop every app and the daemon (the saved list is not touched)",
		GroupID: "daemon",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, false); err != nil {
				if errors.Is(err, errNoDaemon) {
					c.infof("No daemon running")
					return nil
				}
				return err
			}
			if _, err := request(ctx, c, func(cl *api.Client) (api.KillResponse, error) { return cl.Kill(ctx) }); err != nil {
				if errors.Is(err, errNoDaemon) {
					c.infof("No daemon running")
					return nil
				}
				return err
			}
			if err := c.waitGone(ctx, 10*time.Second); err != nil {
				return err
			}
			c.infof("Every app stopped; daemon stopped")
			return nil
		},
	}
}

func (c *cli) pingCommand() *cobra.Command {
	var ready bool
	cmd := &cobra.Command{
		Use:     "ping",
		Short:   "make sure the daemon runs (starting it if needed); --ready: exit 1 unless every app is ready (exec probes)",
		GroupID: "daemon",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ready {
				return c.pingReady(ctx)
			}
			if _, err := request(ctx, c, func(cl *api.Client) (api.Version, error) { return cl.Version(ctx) }); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "{ msg: 'pong' }")
			return nil
		},
	}
	cmd.Flags().BoolVar(&ready, "ready", false, "ask whether every app is ready for traffic (as /readyz does), never starting a daemon: exit 1 with the reasons when not")
	return cmd
}

// updateCommand replaces the daemon with this binary. Under a keeper it is a hot upgrade: the
// daemon leaves, the keeper starts the binary on disk, which takes every app over (nothing
// restarts, no port closes). A daemon without a keeper is restarted the old way: save, kill,
// start, resurrect.
func (c *cli) updateCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "update",
		Aliases: []string{"updatePM2"},
		Short:   "switch the daemon to this version of corral (the apps keep running)",
		GroupID: "daemon",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			err := c.connect(ctx, false)
			var before api.Version
			if err == nil {
				before, err = request(ctx, c, func(cl *api.Client) (api.Version, error) { return cl.Version(ctx) })
			}
			switch {
			case err == nil && before.Keeper != nil:
				return c.hotUpdate(ctx, before)
			case err == nil:
				c.infof("The daemon runs without a keeper: restarting it (the apps are saved and started again)")
				if err := c.saveAndKill(ctx); err != nil {
					return err
				}
			case !errors.Is(err, errNoDaemon):
				return err
			}
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			if isFile(c.paths.Dump) {
				if _, err := request(ctx, c, func(cl *api.Client) (api.ResurrectResponse, error) { return cl.Resurrect(ctx) }); err != nil {
					return err
				}
			}
			c.infof("Daemon updated")
			return c.printTable(ctx)
		},
	}
}

// hotUpdateTimeout bounds the wait for the new daemon to answer after a hot upgrade.
const hotUpdateTimeout = 30 * time.Second

// hotUpdate asks the daemon to leave for the binary on disk and waits for the new daemon to
// answer (never starting one itself: the keeper does).
func (c *cli) hotUpdate(ctx context.Context, before api.Version) error {
	// This binary, as `pm2 update` does: a user who installed a new corral runs its update.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this corral binary: %w", err)
	}
	resp, err := request(ctx, c, func(cl *api.Client) (api.UpdateResponse, error) {
		return cl.Update(ctx, api.UpdateRequest{Binary: self})
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(hotUpdateTimeout)
	for {
		if v, err := c.ping(ctx); err == nil && v.PID != before.PID {
			c.infof("Daemon updated: %s (pid %d) -> %s (pid %d), every app kept running", resp.From, resp.PID, v.Version, v.PID)
			c.versionNoted = true // the warning, if any, was about the daemon that left
			return c.resurrectIfEmpty(ctx)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the new daemon did not answer within %v: see %s (the apps keep running, held by the keeper, pid %d)",
				hotUpdateTimeout, c.paths.DaemonLog, before.Keeper.PID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// resurrectIfEmpty ends an update: as PM2's update does, a daemon with no app gets the saved
// list back (an update with nothing running used to restore it, and scripts rely on it).
func (c *cli) resurrectIfEmpty(ctx context.Context) error {
	procs, err := c.processes(ctx, false)
	if err != nil {
		return err
	}
	if len(procs) == 0 && isFile(c.paths.Dump) {
		c.infof("No app is running: restoring the saved list (%s)", c.paths.Dump)
		if _, err := request(ctx, c, func(cl *api.Client) (api.ResurrectResponse, error) { return cl.Resurrect(ctx) }); err != nil {
			return err
		}
	}
	return c.printTable(ctx)
}

// saveAndKill saves the process list (unless it is empty: that would replace the saved one,
// and the next boot would restore nothing) and stops the daemon and every app.
func (c *cli) saveAndKill(ctx context.Context) error {
	procs, err := request(ctx, c, func(cl *api.Client) ([]api.Process, error) { return cl.Processes(ctx, false) })
	if err != nil {
		return err
	}
	if len(procs) > 0 {
		if _, err := request(ctx, c, func(cl *api.Client) (api.SaveResponse, error) { return cl.Save(ctx, false) }); err != nil {
			return fmt.Errorf("save before update: %w", err)
		}
	} else if isFile(c.paths.Dump) {
		c.infof("No app is running: the saved list (%s) is kept and restored", c.paths.Dump)
	}
	if _, err := request(ctx, c, func(cl *api.Client) (api.KillResponse, error) { return cl.Kill(ctx) }); err != nil {
		return err
	}
	return c.waitGone(ctx, 10*time.Second)
}

// daemonCommand is what the CLI starts in the background and systemd runs (`corral
// startup`): the keeper (package keeper), which runs the daemon as its child, `corral daemon
// --kept`, holds what the daemon hands it, and starts it again if it dies, so that the apps
// outlive the daemon. --no-keeper runs the daemon alone in the foreground, as before the
// keeper existed: for debugging (nothing restarts it, and the apps die with it).
func (c *cli) daemonCommand() *cobra.Command {
	var resurrect, kept, noKeeper bool
	cmd := &cobra.Command{
		Use:    "daemon",
		Short:  "run the daemon (under its keeper) in the foreground",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			paths, err := home.Resolve()
			if err != nil {
				return err
			}
			if kept || noKeeper {
				d, err := c.newDaemon(paths, resurrect)
				if err != nil {
					if kept {
						// Starting it again would fail the same way: the keeper gives up.
						return exitError{code: keeper.ExitCannotStart, err: err}
					}
					return err
				}
				return d.Run(context.Background())
			}
			opts := c.newKeeperLog(paths).options(keeper.Options{Paths: paths, DaemonArgs: keptDaemonArgs})
			if resurrect {
				opts.FirstArgs = []string{"--resurrect"}
			}
			err = keeper.Run(opts)
			if errors.Is(err, keeper.ErrRunning) {
				// The CLI that started us waits for the daemon of that keeper to answer.
				fmt.Fprintf(c.stderr, "[corral] %v: not starting another\n", err)
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&resurrect, "resurrect", false, "restore the saved process list at start")
	cmd.Flags().BoolVar(&noKeeper, "no-keeper", false, "run the daemon without its keeper (for debugging: the apps die with the daemon)")
	cmd.Flags().BoolVar(&kept, "kept", false, "run the daemon itself (the keeper starts it so)")
	_ = cmd.Flags().MarkHidden("kept")
	cmd.MarkFlagsMutuallyExclusive("kept", "no-keeper")
	return cmd
}

// keptDaemonArgs are the arguments the keeper starts the daemon with.
var keptDaemonArgs = []string{"daemon", "--kept"}

// keeperLog is where the keeper writes its lines and sends the daemon's output.
type keeperLog struct {
	c *cli
	// path is the daemon log, when the keeper's stderr is that file (the CLI started the
	// keeper with it, see connect.go): the daemon rotates it by renaming, so every line and
	// every daemon start opens the path again rather than writing to a file that was moved
	// away. Empty otherwise (the journal under systemd, a terminal): stderr is used as is.
	path string
}

// newKeeperLog decides once where the keeper's lines go (see keeperLog.path): to the daemon
// log's path when stderr is that file, or one of its rotated copies (a keeper that resumes
// after a hot upgrade still has the stderr of the keeper it replaced).
func (c *cli) newKeeperLog(paths home.Paths) *keeperLog {
	l := &keeperLog{c: c}
	f, ok := c.stderr.(*os.File)
	if !ok || paths.DaemonLog == "" {
		return l
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return l
	}
	candidates := []string{paths.DaemonLog}
	if rotated, err := logs.Rotated(paths.DaemonLog); err == nil {
		candidates = append(candidates, rotated...)
	}
	for _, p := range candidates {
		var pst unix.Stat_t
		if unix.Stat(p, &pst) == nil && pst.Dev == st.Dev && pst.Ino == st.Ino {
			l.path = paths.DaemonLog
			break
		}
	}
	if st.Nlink == 0 { // the rotated copy it wrote to was deleted already
		l.path = paths.DaemonLog
	}
	return l
}

// open opens the daemon log for appending (never through a symlink).
func (l *keeperLog) open() (*os.File, error) {
	return os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
}

// logf writes a line of the keeper in the daemon log's format. Lines are few (a daemon start,
// exit or upgrade), so opening the file for each costs nothing that matters.
func (l *keeperLog) logf(format string, args ...any) {
	line := fmt.Sprintf("%s: keeper: %s\n", time.Now().Format("2006-01-02T15:04:05"), fmt.Sprintf(format, args...))
	if l.path != "" {
		if f, err := l.open(); err == nil {
			_, err = f.WriteString(line)
			if f.Close() == nil && err == nil {
				return
			}
		}
	}
	fmt.Fprint(l.c.stderr, line)
}

// options completes o with where the keeper logs and where its daemons write.
func (l *keeperLog) options(o keeper.Options) keeper.Options {
	o.Logf = l.logf
	if l.path != "" {
		o.Output = l.open
	}
	return o
}

// keeperLogf writes a keeper line to stderr, before the keeper runs.
func (c *cli) keeperLogf(format string, args ...any) {
	(&keeperLog{c: c}).logf(format, args...)
}

// keeperCommand is the keeper's half of a hot upgrade: the keeper re-executes the corral
// binary on disk as `corral keeper --resume-fd N -- <daemon args>` and the new image takes
// over from the state in fd N. `corral keeper --handover-version` prints the versions of the
// states this binary reads (keeper.Versions): a daemon checks them before asking for an
// upgrade.
func (c *cli) keeperCommand() *cobra.Command {
	var resumeFD int
	var handoverVersion bool
	cmd := &cobra.Command{
		Use:    "keeper --resume-fd N [-- daemon args] | --handover-version",
		Short:  "the keeper's side of a hot upgrade",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if handoverVersion {
				fmt.Fprintln(c.stdout, keeper.HandoverJSON(api.HandoverVersion))
				return nil
			}
			if resumeFD <= 0 {
				return errors.New("keeper: --resume-fd or --handover-version is needed")
			}
			// The keeper must go on whatever happens here: its children and their fds
			// depend on it. A home that fails its check now is logged; the handed-over
			// state names the home.
			paths, err := home.Resolve()
			if err != nil {
				c.keeperLogf("resuming without the home's paths: %v", err)
				paths = home.Paths{}
			}
			if len(args) == 0 {
				args = keptDaemonArgs
			}
			return keeper.Run(c.newKeeperLog(paths).options(keeper.Options{Paths: paths, DaemonArgs: args, ResumeFD: resumeFD}))
		},
	}
	cmd.Flags().IntVar(&resumeFD, "resume-fd", 0, "resume from the state in this fd (a keeper re-executing itself)")
	cmd.Flags().BoolVar(&handoverVersion, "handover-version", false, `print the versions of the upgrade states this binary reads, as {"keeper":N,"protocol":N,"daemon":N}`)
	return cmd
}

func (c *cli) startupCommand() *cobra.Command {
	var o startup.Options
	var unitDir string
	var noEnable bool
	cmd := &cobra.Command{
		Use:     "startup [systemd]",
		Short:   "start corral and the saved apps at boot (writes a systemd unit)",
		GroupID: "daemon",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] != "systemd" {
				return fmt.Errorf("init system %q is not supported: corral writes systemd units (`corral startup systemd`)", args[0])
			}
			if err := c.fillStartupOptions(&o); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			defaultDir := unitDir == ""
			if defaultDir && os.Geteuid() != 0 {
				fmt.Fprintf(c.stdout, "[corral] To start corral at boot, run as root:\nsudo env PATH=%s %s startup systemd -u %s --hp %s\n",
					o.Path, o.Binary, o.User, o.Home)
				return nil
			}
			unit := o.UnitPath(unitDir)
			if err := persist.WriteFileAtomic(unit, []byte(startup.SystemdUnit(o)), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", unit, err)
			}
			c.infof("Wrote %s", unit)
			if defaultDir && !noEnable {
				for _, args := range [][]string{{"daemon-reload"}, {"enable", o.Name()}} {
					out, err := exec.Command("systemctl", args...).CombinedOutput()
					if err != nil {
						return fmt.Errorf("systemctl %v: %v: %s", args, err, out)
					}
				}
				c.infof("Enabled %s: corral starts at boot and resurrects the saved list", o.Name())
			}
			c.infof("Run `corral save` to choose which apps come back at boot")
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.User, "user", "u", "", "user the daemon runs as (default: you)")
	cmd.Flags().StringVar(&o.Home, "hp", "", "that user's home directory")
	cmd.Flags().StringVar(&o.ServiceName, "service-name", "", "unit name (default corral-<user>)")
	cmd.Flags().BoolVar(&o.WaitIP, "wait-ip", false, "start after the network is online")
	cmd.Flags().StringVar(&unitDir, "unit-dir", "", "write the unit here instead of "+startup.UnitDir+" (and do not enable it)")
	cmd.Flags().BoolVar(&noEnable, "no-enable", false, "write the unit without enabling it")
	return cmd
}

// fillStartupOptions completes startup options from the environment.
func (c *cli) fillStartupOptions(o *startup.Options) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the corral binary: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	o.Binary = exe
	if o.User == "" {
		u, err := user.Current()
		if err != nil {
			return fmt.Errorf("current user: %w", err)
		}
		o.User = u.Username
		if o.Home == "" {
			o.Home = u.HomeDir
		}
	} else if o.Home == "" {
		u, err := user.Lookup(o.User)
		if err != nil {
			return fmt.Errorf("user %q: %w", o.User, err)
		}
		o.Home = u.HomeDir
	}
	if h := os.Getenv("CORRAL_HOME"); h != "" {
		o.CorralHome, _ = filepath.Abs(h)
	} else {
		o.CorralHome = filepath.Join(o.Home, ".corral")
	}
	o.Path = os.Getenv("PATH")
	return nil
}

func (c *cli) unstartupCommand() *cobra.Command {
	var o startup.Options
	var unitDir string
	cmd := &cobra.Command{
		Use:     "unstartup [systemd]",
		Short:   "stop starting corral at boot (removes the systemd unit)",
		GroupID: "daemon",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.fillStartupOptions(&o); err != nil {
				return err
			}
			defaultDir := unitDir == ""
			unit := o.UnitPath(unitDir)
			if defaultDir {
				if out, err := exec.Command("systemctl", "disable", o.Name()).CombinedOutput(); err != nil {
					c.warnf("systemctl disable %s: %v: %s", o.Name(), err, out)
				}
			}
			if err := os.Remove(unit); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("remove %s: %w", unit, err)
			}
			c.infof("Removed %s", unit)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.User, "user", "u", "", "user the daemon runs as (default: you)")
	cmd.Flags().StringVar(&o.Home, "hp", "", "that user's home directory")
	cmd.Flags().StringVar(&o.ServiceName, "service-name", "", "unit name (default corral-<user>)")
	cmd.Flags().StringVar(&unitDir, "unit-dir", "", "the directory the unit was written to")
	return cmd
}
