package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/buildinfo"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/logs"
	"golang.org/x/sys/unix"
)

// daemonStartTimeout bounds how long the CLI waits for a daemon it spawned to answer.
const daemonStartTimeout = 15 * time.Second

// errNoDaemon: no daemon answers and the command does not start one.
var errNoDaemon = errors.New("no corral daemon is running")

// connect finds the daemon for CORRAL_HOME, starting it in the background when spawn is set
// and none answers (PM2 starts its daemon on the first command too).
func (c *cli) connect(ctx context.Context, spawn bool) error {
	paths, err := home.Resolve()
	if err != nil {
		return err
	}
	c.paths = paths
	c.client = api.NewClient(paths.Socket)
	v, err := c.ping(ctx)
	if err == nil {
		c.checkVersion(v.Version)
		return nil
	}
	if !spawn {
		return errNoDaemon
	}
	if err := paths.Ensure(); err != nil {
		return err
	}
	if err := c.spawnDaemon(ctx); err != nil {
		return err
	}
	return nil
}

func (c *cli) ping(ctx context.Context) (api.Version, error) {
	var v api.Version
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.client.Do(pctx, "GET", "/version", nil, &v)
	return v, err
}

// checkVersion warns when the daemon was built from another version than this CLI.
func (c *cli) checkVersion(daemon string) {
	if daemon == "" || daemon == buildinfo.Version {
		return
	}
	c.warnf("this corral is version %s but the daemon running for %s is version %s; run `corral update` to restart the daemon with this version (your apps are saved and started again)",
		buildinfo.Version, c.paths.Home, daemon)
}

// spawnDaemon starts `corral daemon` detached (own session, stdio to the daemon log) and waits
// until it answers.
func (c *cli) spawnDaemon(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the corral binary to start the daemon: %w", err)
	}
	logf, err := os.OpenFile(c.paths.DaemonLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
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
		if v, err := c.ping(ctx); err == nil {
			c.checkVersion(v.Version)
			return nil
		}
		select {
		case err := <-exited:
			// Lost a race with another CLI starting a daemon for the same home? Then it answers.
			if v, perr := c.ping(ctx); perr == nil {
				c.checkVersion(v.Version)
				return nil
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
	for !c.lockFree() {
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon stopped answering but has not exited after %v (it still holds %s)", timeout, c.paths.Lock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// lockFree reports whether no daemon holds the home's lock (true as well when it cannot be
// told: the lock file is missing or cannot be opened).
func (c *cli) lockFree() bool {
	f, err := os.OpenFile(c.paths.Lock, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer f.Close() // releases the probe's lock at once
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}
