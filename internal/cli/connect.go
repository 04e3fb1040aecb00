package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/closeexec"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/logs"
	"golang.org/x/sys/unix"
)

// daemonStartTimeout bounds how long the CLI waits for a daemon it spawned to answer.
const daemonStartTimeout = 15 * time.Second

// errNoDaemon: no daemon answers and the command does not start one.
var errNoDaemon = errors.New("no corral daemon is running")

// connect prepares the client of the daemon for CORRAL_HOME. When its socket exists the daemon
// is taken to be running, and the command's first request proves it (no extra round trip:
// every millisecond of a CLI call counts); otherwise, with spawn, it is started in the
// background now (PM2 starts its daemon on the first command too).
func (c *cli) connect(ctx context.Context, spawn bool) error {
	paths, err := home.Resolve()
	if err != nil {
		return err
	}
	c.paths = paths
	c.client = api.NewClient(paths.Socket)
	c.spawn = spawn
	if _, err := os.Stat(paths.Socket); err == nil {
		return nil
	}
	if !spawn {
		return errNoDaemon
	}
	return c.startDaemon(ctx)
}

func (c *cli) startDaemon(ctx context.Context) error {
	if err := c.paths.Ensure(); err != nil {
		return err
	}
	return c.spawnDaemon(ctx)
}

// request runs one API call: what most commands do. A command that has not connected yet
// connects first, starting the daemon if needed.
func request[T any](ctx context.Context, c *cli, call func(cl *api.Client) (T, error)) (T, error) {
	var out T
	if c.client == nil {
		if err := c.connect(ctx, true); err != nil {
			return out, err
		}
	}
	err := c.retryDial(ctx, func() error {
		var err error
		out, err = call(c.client)
		return err
	})
	return out, err
}

// run is request for calls whose only answer is an error (and streams).
func (c *cli) run(ctx context.Context, call func(cl *api.Client) error) error {
	_, err := request(ctx, c, func(cl *api.Client) (struct{}, error) { return struct{}{}, call(cl) })
	return err
}

// retryDial runs one request. If nothing answers on the socket (a daemon that died and left
// its socket), it starts a daemon when the command may, and tries once more.
func (c *cli) retryDial(ctx context.Context, req func() error) error {
	err := req()
	if isDialError(err) {
		if !c.spawn {
			return errNoDaemon
		}
		if err := c.startDaemon(ctx); err != nil {
			return err
		}
		err = req()
	}
	c.noteVersion()
	return err
}

// isDialError reports whether err means nothing listens on the daemon's socket.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// noteVersion warns, once, when the daemon answering is of another version.
func (c *cli) noteVersion() {
	if c.versionNoted {
		return
	}
	if v := c.client.ServerVersion(); v != "" {
		c.versionNoted = true
		c.checkVersion(v)
	}
}

func (c *cli) ping(ctx context.Context) (api.Version, error) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.client.Version(pctx)
}

// checkVersion warns when the daemon was built from another version than this CLI.
func (c *cli) checkVersion(daemon string) {
	if daemon == "" || daemon == buildinfo.Version {
		return
	}
	c.warnf("this corral is version %s but the daemon running for %s is version %s; run `corral update` to switch the daemon to this version (the apps keep running)",
		buildinfo.Version, c.paths.Home, daemon)
}

// spawnDaemon starts `corral daemon` detached (own session, stdio to the daemon log) and waits
// until it answers. That process is the keeper, which lives on as the daemon's parent; it
// exits at once, with code 0, when another keeper runs for the home (whose daemon then
// answers), and with an error when the daemon cannot start.
func (c *cli) spawnDaemon(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the corral binary to start the daemon: %w", err)
	}
	logf, err := os.OpenFile(c.paths.DaemonLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
	// The daemon outlives this command: it must not hold our caller's descriptors open.
	if err := closeexec.FromThree(); err != nil {
		c.warnf("the daemon may keep descriptors this command inherited: %v", err)
	}
	cmd := exec.Command(exe, "daemon")
	cmd.Env = os.Environ()
	cmd.Dir = "/"
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(daemonStartTimeout)
	for {
		if _, err := c.ping(ctx); err == nil {
			c.noteVersion()
			return nil
		}
		select {
		case err := <-exited:
			// Lost a race with another CLI starting a daemon for the same home? Then it answers.
			if _, perr := c.ping(ctx); perr == nil {
				c.noteVersion()
				return nil
			}
			if err == nil {
				// Another keeper runs: its daemon answers soon.
				exited = nil
				continue
			}
			return fmt.Errorf("the daemon exited at start (%v); last lines of %s:\n%s", err, c.paths.DaemonLog, c.daemonLogTail(10))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon did not answer within %v; see %s", daemonStartTimeout, c.paths.DaemonLog)
		}
	}
}

func (c *cli) daemonLogTail(n int) string {
	lines, _ := logs.Tail(c.paths.DaemonLog, n)
	return "  " + strings.Join(lines, "\n  ")
}

// waitGone waits until no daemon answers on the socket and the daemon has finished exiting:
// it stops answering before it has removed its socket and pid file and released the home's
// lock, and a daemon started in between would find the lock taken.
func (c *cli) waitGone(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	answers := true
	for answers && time.Now().Before(deadline) {
		if _, err := c.ping(ctx); err != nil {
			answers = false
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if answers {
		return fmt.Errorf("the daemon still answers after %v", timeout)
	}
	// The daemon's lock, then its keeper's: the keeper exits right after a daemon that stopped
	// for good, and a command that follows (a start, a test's check) must not find it.
	for _, lock := range []string{c.paths.Lock, c.paths.KeeperLock} {
		for !lockFree(lock) {
			if time.Now().After(deadline) {
				return fmt.Errorf("the daemon stopped answering but has not exited after %v (%s is still held)", timeout, lock)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// lockFree reports whether no process holds the lock at path (true as well when it cannot be
// told: the lock file is missing or cannot be opened).
func lockFree(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return true
	}
	defer f.Close() // releases the probe's lock at once
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}
