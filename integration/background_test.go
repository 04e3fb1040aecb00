package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lineLog collects what a command writes, line by line, as it comes, so a test can wait for a
// line while the command still runs.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	got     []string
	changed chan struct{} // closed and replaced on every new line
}

func newLines() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.got = append(l.got, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// all returns the complete lines so far.
func (l *lineLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

func (l *lineLog) String() string { return strings.Join(l.all(), "\n") }

// count is the number of complete lines so far.
func (l *lineLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

// waitLine waits until a line satisfies match and returns it.
func (l *lineLog) waitLine(t *testing.T, what string, timeout time.Duration, match func(string) bool) string {
	t.Helper()
	return l.waitLineFrom(t, 0, what, timeout, match)
}

// waitLineFrom is waitLine looking only at lines from index from on (see count).
func (l *lineLog) waitLineFrom(t *testing.T, from int, what string, timeout time.Duration, match func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := from
	for {
		l.mu.Lock()
		got, changed := l.got, l.changed
		l.mu.Unlock()
		for ; seen < len(got); seen++ {
			if match(got[seen]) {
				return got[seen]
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s; output so far:\n%s", timeout, what, l)
		}
	}
}

// bgCmd is a corral command running in the background (logs following, run).
type bgCmd struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lineLog
	stderr *lineLog
	done   chan struct{}
	code   int
}

// background starts corral with args in the work dir; the test's cleanup kills it if it still
// runs (before the env's own cleanup, which was registered earlier).
func (e *env) background(args ...string) *bgCmd {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	b := &bgCmd{t: e.t, cmd: cmd, stdout: newLines(), stderr: newLines(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.stdout, b.stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start corral %v: %v", args, err)
	}
	go func() {
		defer close(b.done)
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			b.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				b.code = 128 + int(ws.Signal())
			}
		default:
			b.code = -1
		}
	}()
	e.t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

func (b *bgCmd) signal(sig os.Signal) {
	b.t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the command to exit and returns its exit code.
func (b *bgCmd) wait(timeout time.Duration) int {
	b.t.Helper()
	select {
	case <-b.done:
		return b.code
	case <-time.After(timeout):
		b.t.Fatalf("corral %v still runs after %v\nstdout:\n%s\nstderr:\n%s", b.cmd.Args[1:], timeout, b.stdout, b.stderr)
		return 0
	}
}

// daemonPID reads the daemon's pid file (0 if there is none).
func (e *env) daemonPID() int {
	var pid int
	_, _ = fmt.Sscan(readFile(filepath.Join(e.home, "corral.pid")), &pid)
	return pid
}

// permOf returns a file's permission bits, failing the test if it does not exist.
func permOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// pathExists reports whether path exists (a dangling symlink or a socket counts).
func pathExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
