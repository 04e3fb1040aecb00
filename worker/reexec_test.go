package worker

// Tests that need a fresh process: the package sets itself up from the environment when it
// initialises. The test binary re-executes itself with WORKER_TEST_HELPER naming what to do; the
// helper prints its findings, one "key value" line each, and the parent checks them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/nodeipc"
	"golang.org/x/sys/unix"
)

const helperEnv = "WORKER_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

func runHelper(mode string) int {
	say := func(key string, v any) { fmt.Printf("%s %v\n", key, v) }
	switch mode {
	case "cluster-env":
		say("channel-env", os.Getenv(nodeipc.ChannelFDEnv)+os.Getenv(nodeipc.WorkerIDEnv) == "")
		say("in-cluster", InCluster())
		say("cloexec", inheritable(1))
		out, err := exec.Command("/bin/sh", "-c", "env").CombinedOutput()
		say("child-env-clean", err == nil && !strings.Contains(string(out), "CORRAL_CHANNEL_FD") && !strings.Contains(string(out), "CORRAL_WORKER_ID"))
		if err := Ready(); err != nil {
			say("ready-error", err)
		}
		// Stay until corral asks the worker to disconnect, as a worker would.
		select {
		case <-Shutdown():
			say("shutdown", context2string())
		case <-time.After(waitTimeout):
			say("shutdown", "timeout")
		}
		<-std.leftDone
		return 0

	case "listen-fds":
		say("listen-env", os.Getenv("LISTEN_FDS")+os.Getenv("LISTEN_PID")+os.Getenv("LISTEN_FDNAMES") == "")
		say("cloexec", inheritable(4))
		listen := func(key, network, address string) {
			ln, err := Listen(network, address)
			if err != nil {
				say(key, "error:"+err.Error())
				return
			}
			say(key, ln.Addr().String())
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					fmt.Fprintln(c, key)
					c.Close()
				}
			}()
		}
		listen("by-name", "tcp", "web")
		listen("by-addr", "tcp", os.Getenv("HELPER_ADDR_B"))
		listen("first", "tcp", os.Getenv("HELPER_FIRST"))
		listen("fallback", "tcp", "127.0.0.1:0")
		listen("unix", "unix", os.Getenv("HELPER_UNIX"))
		say("done", true)
		// Serve until the parent has checked every listener.
		io.Copy(io.Discard, os.Stdin)
		return 0

	case "signals-wait":
		sd := Shutdown()
		say("armed", true)
		<-sd
		say("shutdown", context2string())
		select {} // a drain that never ends: only a second signal stops it
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

func context2string() string {
	<-Context().Done()
	return context.Cause(Context()).Error()
}

// inheritable lists which of fds 3..3+n-1 (the ones corral or socket activation passed) a child
// would inherit ("none" if none). Other fds are not the package's business: the shell that ran
// the tests may have leaked some.
func inheritable(n int) string {
	var bad []string
	for fd := 3; fd < 3+n; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // closed
		}
		if flags&unix.FD_CLOEXEC == 0 {
			target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			bad = append(bad, strconv.Itoa(fd)+"->"+target)
		}
	}
	if len(bad) == 0 {
		return "none"
	}
	return strings.Join(bad, ",")
}

// helper is a running helper process and what it printed.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines map[string]string
	got   chan string // keys as they arrive
	exit  chan error
}

func startHelper(t *testing.T, mode string, extra []*os.File, env []string, viaShell bool) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if viaShell {
		// LISTEN_PID must be the helper's own pid, known only once it runs: a shell sets it
		// to its own pid and exec's the helper, which keeps that pid (systemd sets it between
		// fork and exec the same way).
		cmd = exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0"`, exe)
	} else {
		cmd = exec.Command(exe)
	}
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = extra
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, lines: map[string]string{}, got: make(chan string, 64), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), " ")
			h.mu.Lock()
			h.lines[k] = v
			h.mu.Unlock()
			h.got <- k
		}
		h.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		select {
		case <-h.exit:
		case <-time.After(waitTimeout):
		}
	})
	return h
}

// wait returns the value printed for key.
func (h *helper) wait(key string) string {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		h.mu.Lock()
		v, ok := h.lines[key]
		h.mu.Unlock()
		if ok {
			return v
		}
		select {
		case <-h.got:
		case err := <-h.exit:
			h.exit <- err
			h.mu.Lock()
			v, ok := h.lines[key]
			h.mu.Unlock()
			if ok {
				return v
			}
			h.t.Fatalf("helper exited (%v) without printing %q; printed %v", err, key, h.lines)
		case <-deadline:
			h.t.Fatalf("helper did not print %q; printed %v", key, h.lines)
		}
	}
}

func (h *helper) expect(key, want string) {
	h.t.Helper()
	if got := h.wait(key); got != want {
		h.t.Fatalf("helper: %s = %q, want %q", key, got, want)
	}
}

// exited waits for the helper's exit.
func (h *helper) exited() error {
	h.t.Helper()
	select {
	case err := <-h.exit:
		h.exit <- err
		return err
	case <-time.After(waitTimeout):
		h.t.Fatal("helper did not exit")
		return nil
	}
}

// collector is a fake primary that records what a helper process sends.
type collector struct {
	msgs   chan string
	closed chan struct{}
}

func (c *collector) HandleMessage(m nodeipc.Message) {
	if m.Handle != nil {
		m.Handle.Close()
	}
	c.msgs <- string(m.Raw)
}
func (c *collector) HandleBadLine(line []byte, err error) { c.msgs <- "BAD " + string(line) }
func (c *collector) HandleClose(error)                    { close(c.closed) }

func (c *collector) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("no message from the helper")
		return ""
	}
}

// TestInitFromEnv: the real start-up path. The package removes CORRAL_CHANNEL_FD and
// CORRAL_WORKER_ID from the environment, leaves no fd for children to inherit, announces the
// worker (online, seq 0) before anything else, and Ready sends 'ready'. A disconnect then ends
// it: Shutdown closes and the worker closes the channel.
func TestInitFromEnv(t *testing.T) {
	parent, child, err := nodeipc.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{msgs: make(chan string, 64), closed: make(chan struct{})}
	ch, err := nodeipc.Open(parent, col, nodeipc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	h := startHelper(t, "cluster-env", []*os.File{child}, []string{nodeipc.ChannelFDEnv + "=3", nodeipc.WorkerIDEnv + "=7"}, false)
	child.Close()
	if m := col.next(t); m != `{"cmd":"NODE_CLUSTER","act":"online","seq":0}` {
		t.Fatalf("first message %s", m)
	}
	h.expect("channel-env", "true")
	h.expect("in-cluster", "true")
	h.expect("cloexec", "none")
	h.expect("child-env-clean", "true")
	if m := col.next(t); m != `"ready"` {
		t.Fatalf("after online: %s", m)
	}
	if err := ch.Send(map[string]any{"cmd": "NODE_CLUSTER", "act": "disconnect", "seq": 1}); err != nil {
		t.Fatal(err)
	}
	h.expect("shutdown", errDisconnect.Error())
	m := col.next(t)
	if m != `{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":1}` {
		t.Fatalf("after the disconnect: %s", m)
	}
	if err := ch.Send(map[string]any{"cmd": "NODE_CLUSTER", "ack": 1, "seq": 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-col.closed:
	case <-time.After(waitTimeout):
		t.Fatal("the helper did not close the channel")
	}
	if err := h.exited(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestListenFDs: socket activation. Sockets are matched by name, then by address, then the
// first unused one; then Listen falls back to net.Listen. The variables are removed and the
// sockets are close-on-exec.
func TestListenFDs(t *testing.T) {
	var files []*os.File
	var addrs []string
	for range 3 {
		addr, f := listenerFile(t, "tcp", "127.0.0.1:0")
		files = append(files, f)
		addrs = append(addrs, addr)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	_, uf := listenerFile(t, "unix", sock)
	files = append(files, uf)

	h := startHelper(t, "listen-fds", files, []string{
		"LISTEN_FDS=4", "LISTEN_FDNAMES=a:b:web:sock",
		"HELPER_ADDR_B=" + addrs[1], "HELPER_UNIX=" + sock, "HELPER_FIRST=:8080",
	}, true)
	h.expect("listen-env", "true")
	h.expect("cloexec", "none")
	h.expect("by-name", addrs[2])
	h.expect("by-addr", addrs[1])
	h.expect("first", addrs[0])
	h.expect("unix", sock)
	fallback := h.wait("fallback")
	if slices.Contains(addrs, fallback) || !strings.HasPrefix(fallback, "127.0.0.1:") {
		t.Fatalf("fallback listener %q, want a new socket", fallback)
	}
	h.wait("done")
	// Each listener serves: the inherited sockets are the very sockets the parent made.
	for key, addr := range map[string]string{"first": addrs[0], "by-addr": addrs[1], "by-name": addrs[2], "fallback": fallback} {
		if got := dialRead(t, "tcp", addr); got != key {
			t.Fatalf("%s answered %q, want %q", addr, got, key)
		}
	}
	if got := dialRead(t, "unix", sock); got != "unix" {
		t.Fatalf("unix socket answered %q", got)
	}
}

// listenerFile listens on address and returns the socket's address and a copy of the socket, for
// a helper to inherit; both are closed when the test ends.
func listenerFile(t *testing.T, network, address string) (string, *os.File) {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.Addr().String(), f
}

func dialRead(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	b, _ := io.ReadAll(c)
	return strings.TrimSpace(string(b))
}

// TestListenFDsOtherPID: sockets for another process (LISTEN_PID not ours) are not used, and
// the variables are removed all the same.
func TestListenFDsOtherPID(t *testing.T) {
	addr, f := listenerFile(t, "tcp", "127.0.0.1:0")
	sock := filepath.Join(t.TempDir(), "s.sock")
	h := startHelper(t, "listen-fds", []*os.File{f}, []string{
		"LISTEN_FDS=1", "LISTEN_PID=1", "HELPER_ADDR_B=" + addr, "HELPER_UNIX=" + sock,
		"HELPER_FIRST=127.0.0.1:0",
	}, false)
	h.expect("listen-env", "true")
	if got := h.wait("by-addr"); !strings.HasPrefix(got, "error:") {
		t.Fatalf("listen on the parent's address gave %q, want an error (address in use)", got)
	}
	if got := h.wait("first"); !strings.HasPrefix(got, "127.0.0.1:") || got == addr {
		t.Fatalf("first: %q, want a new socket", got)
	}
}

// TestSignals: SIGTERM closes Shutdown (with the signal as the cause); the same signal sent
// twice at once (corral signals the process group and the process) is one signal; a second
// signal later ends the process the default way.
func TestSignals(t *testing.T) {
	h := startHelper(t, "signals-wait", nil, nil, false)
	h.wait("armed")
	h.cmd.Process.Signal(syscall.SIGTERM)
	h.cmd.Process.Signal(syscall.SIGTERM)
	h.expect("shutdown", "worker: received terminated")
	// The rule is about time: the second signal must come later than a repeat would.
	time.Sleep(signalRepeat + 100*time.Millisecond)
	select {
	case err := <-h.exit:
		t.Fatalf("the repeated SIGTERM ended the helper: %v", err)
	default:
	}
	h.cmd.Process.Signal(syscall.SIGINT)
	err := h.exited()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper exit: %v", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("helper exit status %v, want killed by SIGINT", ee)
	}
}
