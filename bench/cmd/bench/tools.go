package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// Tool is a process manager under test, driven through its CLI the way a user drives it.
type Tool struct {
	Name    string // "corral", "pm2"
	Bin     string // the command users type
	HomeVar string // the variable that points it at its home: CORRAL_HOME, PM2_HOME
	PidFile string // the daemon's pid file, inside the home
	Socket  string // the unix socket the daemon takes commands on, inside the home
	Version string
}

// homeVars are stripped from every child's environment so that no tool sees another's home
// (or the user's own one).
var homeVars = []string{"CORRAL_HOME", "PM2_HOME"}

// Instance is a tool with a home of its own, so a daemon of its own. Every instance is
// registered with the Bench, which shuts it down at the end whatever happened.
type Instance struct {
	*Tool
	Home string
	Dir  string   // working directory of its commands (where the apps' scripts are)
	Env  []string // extra KEY=value for its commands (and so for the apps they start)
}

// environ is the environment of every command of the instance: the bench's own, less any
// home variable, plus the instance's extra variables and its home.
func (in *Instance) environ() []string {
	return append(append(baseEnviron(), in.Env...), in.HomeVar+"="+in.Home)
}

// baseEnviron is the bench's environment less any tool's home variable.
func baseEnviron() []string {
	out := make([]string, 0, 64)
next:
	for _, kv := range os.Environ() {
		for _, v := range homeVars {
			if strings.HasPrefix(kv, v+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// command prepares `<tool> args...` in the instance's directory and home. Stdout is left to
// the caller (nil means /dev/null); stderr goes to the returned buffer.
func (in *Instance) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, in.Bin, args...)
	cmd.Dir = in.Dir
	cmd.Env = in.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// A daemon that kept our stderr pipe open would otherwise hold Wait forever.
	cmd.WaitDelay = 5 * time.Second
	return cmd, &stderr
}

// Time runs `<tool> args... > /dev/null` and returns its wall-clock time, from fork to exit.
func (in *Instance) Time(ctx context.Context, args ...string) (time.Duration, error) {
	cmd, stderr := in.command(ctx, args...)
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, in.cmdError(args, err, stderr)
	}
	return d, nil
}

// Output runs `<tool> args...` and returns its standard output.
func (in *Instance) Output(ctx context.Context, args ...string) ([]byte, error) {
	cmd, stderr := in.command(ctx, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), in.cmdError(args, err, stderr)
	}
	return stdout.Bytes(), nil
}

func (in *Instance) cmdError(args []string, err error, stderr *bytes.Buffer) error {
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > 800 {
		msg = "…" + msg[len(msg)-800:]
	}
	if msg != "" {
		return fmt.Errorf("%s %s: %w: %s", in.Name, strings.Join(args, " "), err, msg)
	}
	return fmt.Errorf("%s %s: %w", in.Name, strings.Join(args, " "), err)
}

// DaemonPID reads the daemon's pid file.
func (in *Instance) DaemonPID() (int, error) {
	raw, err := os.ReadFile(filepath.Join(in.Home, in.PidFile))
	if err != nil {
		return 0, fmt.Errorf("%s daemon pid: %w", in.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s daemon pid file holds %q", in.Name, raw)
	}
	return pid, nil
}

// DaemonRunning reports whether the pid file names a live process.
func (in *Instance) DaemonRunning() bool {
	pid, err := in.DaemonPID()
	return err == nil && alive(pid)
}

// DaemonAnswers reports whether something accepts connections on the daemon's socket: a
// daemon that has written its pid file may not listen yet.
func (in *Instance) DaemonAnswers() bool {
	c, err := net.DialTimeout("unix", filepath.Join(in.Home, in.Socket), 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Proc is what the benchmark reads of one `jlist` entry (the shape is PM2's, which corral keeps).
type Proc struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	PMID  int    `json:"pm_id"`
	PMEnv struct {
		Status      string `json:"status"`
		RestartTime int    `json:"restart_time"`
		// Corral is corral's own part of jlist: a cluster worker's counts (nil under PM2).
		Corral *struct {
			Cluster *struct {
				Requests    uint64 `json:"requests"`
				Connections uint64 `json:"connections"`
			} `json:"cluster"`
		} `json:"corral,omitempty"`
	} `json:"pm2_env"`
}

// JList runs `jlist` and decodes it.
func (in *Instance) JList(ctx context.Context) ([]Proc, error) {
	out, err := in.Output(ctx, "jlist")
	if err != nil {
		return nil, err
	}
	var procs []Proc
	if err := json.Unmarshal(bytes.TrimSpace(out), &procs); err != nil {
		return nil, fmt.Errorf("%s jlist: not a JSON list of processes: %w", in.Name, err)
	}
	return procs, nil
}

// WaitOnline waits until jlist shows n processes, all online with a pid.
func (in *Instance) WaitOnline(ctx context.Context, n int, timeout time.Duration) ([]Proc, error) {
	var procs []Proc
	err := poll(ctx, timeout, 200*time.Millisecond, func() error {
		var err error
		if procs, err = in.JList(ctx); err == nil {
			online := 0
			for _, p := range procs {
				if p.PMEnv.Status == "online" && p.PID > 0 {
					online++
				}
			}
			if len(procs) == n && online == n {
				return nil
			}
			err = fmt.Errorf("%d processes, %d online", len(procs), online)
		}
		return fmt.Errorf("%s: %d processes not online after %s (last: %v)", in.Name, n, timeout, err)
	})
	if err != nil {
		return nil, err
	}
	return procs, nil
}

// Shutdown stops the instance's daemon with the tool's own `kill`, then kills whatever is
// left of it: the daemon by its pid file and every process whose environment names this home
// (the apps inherit it), so nothing the benchmark started outlives it.
func (in *Instance) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	// Only when its daemon runs: `pm2 kill` with none would start one first.
	if pid, err := in.DaemonPID(); err == nil && alive(pid) {
		if _, err := in.Time(ctx, "kill"); err != nil {
			errs = append(errs, err)
		}
		// `kill` may return while the daemon is still on its way out (PM2 removes its pid
		// file first): give it a moment before calling it a survivor.
		if waitGone(ctx, pid, 10*time.Second) != nil && alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			errs = append(errs, fmt.Errorf("%s: the daemon (pid %d) still ran 10 s after `%s kill` and was killed", in.Name, pid, in.Name))
		}
	}
	if pid, err := in.DaemonPID(); err == nil && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if killed := killByHome(in.HomeVar, in.Home); len(killed) > 0 {
		errs = append(errs, fmt.Errorf("%s: %d processes outlived `%s kill` and were killed: %s", in.Name, len(killed), in.Name, strings.Join(killed, ", ")))
	}
	return errors.Join(errs...)
}

// killByHome SIGKILLs every process (but this one) whose environment holds name=home, a few
// times over so that children forked meanwhile go too. It returns those it killed, as
// "pid (command line)".
func killByHome(name, home string) []string {
	var killed []string
	seen := map[int]bool{}
	for round := 0; round < 5; round++ {
		found := 0
		for _, pid := range procstat.PIDsWithEnv(name, home) {
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if syscall.Kill(pid, syscall.SIGKILL) != nil {
				continue
			}
			found++
			if seen[pid] {
				continue // killed in an earlier round, not gone yet
			}
			seen[pid] = true
			cmd := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
			if len(cmd) > 120 {
				cmd = cmd[:120] + "…"
			}
			killed = append(killed, fmt.Sprintf("%d (%s)", pid, cmd))
		}
		if found == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return killed
}

// alive reports whether pid names a live process (not a zombie).
func alive(pid int) bool {
	st, err := procstat.ReadStat(pid)
	return err == nil && !st.Exited
}

// waitGone waits until pid is no longer alive.
func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	return poll(ctx, timeout, 20*time.Millisecond, func() error {
		if alive(pid) {
			return fmt.Errorf("process %d still alive after %s", pid, timeout)
		}
		return nil
	})
}

// poll calls try, then again every `every`, until it returns nil. Once timeout has passed it
// returns try's last error; when ctx ends first, ctx's.
func poll(ctx context.Context, timeout, every time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// rssKB reads VmRSS of pid, in kB.
func rssKB(pid int) (int, error) {
	st, err := procStatus(pid, "VmRSS")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(st["VmRSS"])
	if len(f) == 0 {
		return 0, fmt.Errorf("no VmRSS for process %d", pid)
	}
	return strconv.Atoi(f[0])
}

// procStatus reads /proc/<pid>/status once and returns the fields of it named in names that
// it has, each value trimmed ("1234 kB", "56").
func procStatus(pid int, names ...string) (map[string]string, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && slices.Contains(names, k) {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}
