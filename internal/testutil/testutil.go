// Package testutil holds helpers for this module's tests: waiting for a condition with a
// deadline, and checking that a test leaves no file descriptors (or other resources) behind.
// It uses the standard library only.
//
// The leak checks count process-wide resources, so they are only meaningful in tests that do
// not run in parallel with others.
package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// pollInterval is how often WaitFor and CheckFDs re-evaluate their conditions.
const pollInterval = time.Millisecond

// Eventually calls cond until it returns true, sleeping interval between calls, and reports
// whether it did so before timeout passed. cond is called at least once, and a call that
// returns false once the deadline has passed ends the wait.
func Eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// WaitFor polls cond until it holds, failing t with t.Fatalf ("timed out waiting for what")
// if timeout passes first.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, pollInterval, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// OpenFDs returns the number of file descriptors this process has open, not counting the one
// used to list them. It fails t if /proc/self/fd cannot be read.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents) - 1 // ReadDir's own fd
}

// FDNames lists this process's open file descriptors as "fd->target", for failure messages.
func FDNames() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var names []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		names = append(names, e.Name()+"->"+l)
	}
	return names
}

var netpollerOnce sync.Once

// WarmNetpoller makes the runtime create its network poller, whose fds (on Linux an epoll fd
// and an eventfd) stay open for the rest of the process once created, so that a baseline taken
// afterwards does not count them as a leak. Only the first call does anything.
func WarmNetpoller() {
	netpollerOnce.Do(func() {
		if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
		}
	})
}

// Condition is something besides the fd count that CheckFDs waits for at the end of a test.
type Condition struct {
	// Holds reports whether the condition holds (the resource is back to its baseline).
	Holds func() bool
	// State describes the current state, for the failure message.
	State func() string
}

// Goroutines returns a Condition that holds once runtime.NumGoroutine is back at most at its
// value now. Its state gives both counts and the stacks of all goroutines. It warms the
// netpoller first, like CheckFDs.
func Goroutines() Condition {
	WarmNetpoller()
	before := runtime.NumGoroutine()
	return Condition{
		Holds: func() bool { return runtime.NumGoroutine() <= before },
		State: func() string {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Sprintf("goroutines %d -> %d:\n%s", before, runtime.NumGoroutine(), buf)
		},
	}
}

// CheckFDs records the number of open fds now and registers a cleanup that, when the test
// ends (after every cleanup registered later: cleanups run last-in first-out), waits up to
// timeout until, at once, the count is back at most where it was and every condition in also
// holds. If that does not happen it reports the leak with t.Errorf, listing the open fds and
// the state of every condition. Call it first in a test.
//
// The netpoller is warmed (see WarmNetpoller) before the baseline is taken.
func CheckFDs(t testing.TB, timeout time.Duration, also ...Condition) {
	t.Helper()
	WarmNetpoller()
	before := OpenFDs(t)
	t.Cleanup(func() {
		t.Helper() // report the leak at the test's call of CheckFDs, not here
		settled := func() bool {
			if OpenFDs(t) > before {
				return false
			}
			for _, c := range also {
				if !c.Holds() {
					return false
				}
			}
			return true
		}
		if Eventually(timeout, pollInterval, settled) {
			return
		}
		var msg strings.Builder
		fmt.Fprintf(&msg, "leak after %v: fds %d -> %d: %v", timeout, before, OpenFDs(t), FDNames())
		for _, c := range also {
			msg.WriteString("; ")
			msg.WriteString(c.State())
		}
		t.Errorf("%s", msg.String())
	})
}

// Nobody is the user (uid and gid 65534) tests make the owner of what "another local user"
// planted: a home, a link, a key.
const Nobody = 65534

// RequireRoot skips t unless it runs as root, which it needs to make files owned by Nobody.
// CI runs as root, so these tests run there.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to make files owned by another user (nobody, uid 65534); CI runs as root")
	}
}

// FreePort returns a TCP port that was free on every address a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// LogTail logs the last n lines of the file at path under a title, for a failed test to show
// what a daemon wrote (nothing if the file cannot be read).
func LogTail(t testing.TB, title, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("%s (last lines of %s):\n%s", title, path, strings.Join(lines, "\n"))
}

// Golden compares got with the golden file at path, or writes got there when update is set
// (each package's -update flag), as Caddy's tests do.
func Golden(t testing.TB, path, got string, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the package's tests with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// PlantLink makes link a symbolic link to target owned by Nobody: what another local user
// leaves where corral writes. It needs root (RequireRoot).
func PlantLink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, Nobody, Nobody); err != nil {
		t.Fatal(err)
	}
}

// WantError fails t unless err matches target (errors.Is) and its message says each of parts.
func WantError(t testing.TB, err, target error, parts ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%q does not say %q", err, p)
		}
	}
}
