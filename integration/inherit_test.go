package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInheritedDescriptorsStayBehind: a caller that leaves a pipe open across exec (a shell's,
// an ssh session's, a CI runner's) gets it back to itself alone. Neither the daemon that the
// CLI starts nor the app it runs keeps it, so the caller reading the pipe to its end sees EOF
// once the CLI exits, instead of waiting for the daemon to die.
func TestInheritedDescriptorsStayBehind(t *testing.T) {
	e := newEnv(t)
	script := e.write("fds.sh", "#!/bin/sh\nfor f in /proc/$$/fd/*; do echo \"fd ${f##*/} $(readlink $f)\"; done\necho listed\nexec sleep 1000\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pipe, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", w.Fd()))
	if err != nil {
		t.Fatal(err)
	}

	// The CLI gets the write end as fd 3, not close-on-exec, and starts the daemon.
	cmd := exec.Command(e.bin, "start", script, "--name", "fds")
	cmd.Dir, cmd.Env, cmd.ExtraFiles = e.dir, e.environ(), []*os.File{w}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	w.Close()
	if err != nil {
		t.Fatalf("corral start: %v\n%s", err, out.String())
	}

	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(r); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no EOF on the caller's pipe after the CLI exited: something it started holds %s", pipe)
		}
		t.Fatal(err)
	}

	var listing string
	e.waitFor("the app to list its descriptors", 20*time.Second, func() bool {
		logs, _ := filepath.Glob(filepath.Join(e.home, "logs", "fds-out*.log"))
		for _, l := range logs {
			if b, err := os.ReadFile(l); err == nil && strings.Contains(string(b), "listed") {
				listing = string(b)
				return true
			}
		}
		return false
	})
	if strings.Contains(listing, pipe) {
		t.Errorf("the app inherited the caller's %s:\n%s", pipe, listing)
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", e.daemonPID())
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, _ := os.Readlink(filepath.Join(fdDir, fd.Name())); l == pipe {
			t.Errorf("the daemon holds the caller's %s as fd %s", pipe, fd.Name())
		}
	}
}

// TestEachRunLeadsItsSession: every process corral starts leads a session (and process group)
// of its own, apart from the daemon's: the kill signal reaches its whole group, a terminal's
// signals never reach it, and autogroup scheduling counts each worker as a peer.
func TestEachRunLeadsItsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.ok("start", "sleeper.sh", "--name", "s", "-i", "2")
	sessionOf := func(pid int) (sid, pgid int) {
		t.Helper()
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // state ppid pgrp session ...
		if _, err := fmt.Sscan(f[2]+" "+f[3], &pgid, &sid); err != nil {
			t.Fatal(err)
		}
		return sid, pgid
	}
	daemonSID, _ := sessionOf(e.daemonPID())
	for id := range 2 {
		p := e.waitStatus(id, "online", 20*time.Second)
		if sid, pgid := sessionOf(p.PID); sid != p.PID || pgid != p.PID || sid == daemonSID {
			t.Errorf("process %d (pid %d): session %d, group %d; want both its own pid (the daemon's session is %d)", id, p.PID, sid, pgid, daemonSID)
		}
	}
}
