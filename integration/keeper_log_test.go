package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKeeperLogFollowsRotation: the daemon rotates corral.log by renaming it, and the keeper,
// which the CLI started with that file as its stderr, keeps writing to corral.log, not to the
// renamed copy: after a rotation and a kill -9 of the daemon, the keeper's lines about the
// restart are in the current log.
func TestKeeperLogFollowsRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("ls")
	old := e.daemonPID()
	if old == 0 {
		t.Fatal("no daemon pid after ls")
	}
	logPath := filepath.Join(e.home, "corral.log")
	// What the daemon's own rotation does: the file moves to corral.log.1.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a new daemon", 30*time.Second, func() bool {
		pid := e.daemonPID()
		return pid != 0 && pid != old
	})
	e.ok("ls")
	want := fmt.Sprintf("keeper: started the corral daemon (pid %d)", e.daemonPID())
	e.waitFor("the keeper's line in corral.log", 10*time.Second, func() bool {
		return strings.Contains(readFile(logPath), want)
	})
	if strings.Contains(readFile(logPath+".1"), want) {
		t.Fatalf("the keeper wrote to the rotated copy:\n%s", readFile(logPath+".1"))
	}
}
