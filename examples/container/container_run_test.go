package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// container is an image running as a container runtime would run it: its entrypoint is PID 1
// of new PID, mount, network, UTS and IPC namespaces, chrooted into the image's root
// filesystem, as the image's user (containerInit does the inside).
type container struct {
	image    *builtStage
	uid, gid int
	env      []string // the container's environment: the image's, HOSTNAME and HOME
	cmd      *exec.Cmd
	pid      int    // PID 1, as the host sees it
	pidNS    string // its PID namespace, as /proc/<pid>/ns/pid reads
	netNS    *os.File
	stdout   *lineLog
	stderr   *lineLog

	done     chan struct{}
	exitCode int
}

// runtimeFiles are the files a runtime puts in every container (Docker bind-mounts its own
// copies over the image's): the names that resolve to the container itself.
func runtimeFiles(hostname string) map[string]string {
	return map[string]string{
		"etc/hostname":    hostname + "\n",
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n",
		"etc/resolv.conf": "",
	}
}

// containerCloneFlags are the namespaces a container gets (a cgroup namespace aside: cgroups
// are not emulated).
const containerCloneFlags = unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC

// namespacesWork runs true(1) in new namespaces of each kind a container gets: root in a
// container without CAP_SYS_ADMIN, or under a seccomp profile, cannot make them.
func namespacesWork() error {
	cmd := exec.Command("true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: containerCloneFlags}
	return cmd.Run()
}

// startContainer starts the image. Every process of the container is killed, and waited
// for, when the test ends, whatever its outcome.
func startContainer(t *testing.T, image *builtStage) *container {
	t.Helper()
	cfg := image.config
	const hostname = "corral-image-test"
	for name, text := range runtimeFiles(hostname) {
		if err := os.WriteFile(image.path(name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid, home, err := lookupUser(image.root, cfg.user)
	if err != nil {
		t.Fatal(err)
	}
	c := &container{image: image, uid: uid, gid: gid, stdout: &lineLog{}, stderr: &lineLog{}, done: make(chan struct{})}
	c.env = append([]string{"HOSTNAME=" + hostname}, cfg.env...)
	if envValue(cfg.env, "HOME") == "" {
		c.env = append(c.env, "HOME="+home)
	}
	if len(cfg.entrypoint) == 0 {
		t.Fatal("the image has no ENTRYPOINT")
	}
	spec, err := json.Marshal(containerSpec{Rootfs: image.root, Hostname: hostname, Workdir: orDefault(cfg.workdir, "/"),
		UID: uid, GID: gid, Env: c.env, Argv: cfg.entrypoint})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(self)
	c.cmd.Env = []string{containerInitEnv + "=" + string(spec)}
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: containerCloneFlags,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting the container's init in new namespaces: %v", err)
	}
	c.pid = c.cmd.Process.Pid
	go func() {
		_ = c.cmd.Wait()
		c.exitCode = c.cmd.ProcessState.ExitCode()
		close(c.done)
	}()
	t.Cleanup(func() {
		// Killing PID 1 kills every process of its PID namespace; its mounts go with the
		// namespace's last process.
		_ = c.cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			t.Errorf("the container's PID 1 (%d) did not end after SIGKILL", c.pid)
		}
		if c.netNS != nil {
			c.netNS.Close()
		}
	})
	if c.pidNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.pid)); err != nil {
		t.Fatalf("the container's PID namespace: %v", err)
	}
	if c.netNS, err = os.Open(fmt.Sprintf("/proc/%d/ns/net", c.pid)); err != nil {
		t.Fatalf("the container's network namespace: %v", err)
	}
	return c
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// exited reports whether PID 1 has ended.
func (c *container) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// dial opens a TCP connection inside the container's network namespace, as a probe of the
// kubelet (through the pod's network) or a published port would: on a thread of its own that
// joins the namespace for the socket's creation and leaves it afterwards. addr must be an IP
// and port (no name resolution, and no parallel dialing on other threads).
func (c *container) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer own.Close()
		if err := unix.Setns(int(c.netNS.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("joining the container's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		// A thread that cannot go back stays locked, and ends with this goroutine. (Threads
		// are otherwise kept: the container's parent-death signal follows the thread that
		// started it.)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// exec runs argv inside the running container as `docker exec` (and Docker's HEALTHCHECK)
// does: in all of its namespaces, its root directory, the image's working directory, user and
// environment. nsenter (util-linux) does the joining: a multi-threaded Go process cannot join
// a mount namespace.
func (c *container) exec(ctx context.Context, argv ...string) (stdout, stderr string, code int, err error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return "", "", 0, fmt.Errorf("nsenter (util-linux) runs commands in the container: %w", err)
	}
	root := fmt.Sprintf("/proc/%d/root", c.pid)
	args := []string{"--target", strconv.Itoa(c.pid), "--mount", "--uts", "--ipc", "--net", "--pid",
		"--root=" + root, "--wd=" + filepath.Join(root, orDefault(c.image.config.workdir, "/")),
		"--setgid", strconv.Itoa(c.gid), "--setuid", strconv.Itoa(c.uid), "--"}
	cmd := exec.CommandContext(ctx, nsenter, append(args, argv...)...)
	cmd.Env = c.env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	return out.String(), errOut.String(), 0, err
}

// processes lists the host pids of the processes in the container's PID namespace.
func (c *container) processes() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && ns == c.pidNS {
			out = append(out, pid)
		}
	}
	return out
}

// listenAddrs lists the local addresses of the TCP sockets listening on port in the
// container's network namespace (/proc/<pid>/net/tcp and tcp6, in the kernel's hex form:
// "00000000" is 0.0.0.0, 32 zeros are ::).
func (c *container) listenAddrs(port int) ([]string, error) {
	var out []string
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", c.pid, name))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
				continue
			}
			addr, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				out = append(out, addr)
			}
		}
	}
	return out, nil
}

// procStatus reads /proc/<pid>/status: each field's value split at blanks ("Uid": the real,
// effective, saved and filesystem uid; "NSpid": the pid in each PID namespace, outermost
// first).
func procStatus(pid int) (map[string][]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok {
			out[name] = strings.Fields(value)
		}
	}
	return out, nil
}

// lineLog collects what a process writes, line by line.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			return len(p), nil
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

func (l *lineLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.lines...)
	if len(l.partial) > 0 {
		out = append(out, string(l.partial))
	}
	return out
}

func (l *lineLog) String() string { return strings.Join(l.all(), "\n") }
