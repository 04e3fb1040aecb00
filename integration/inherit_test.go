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
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", e.daemonPID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", e.daemonPID(), fd.Name())); l == pipe {
			t.Errorf("the daemon holds the caller's %s as fd %s", pipe, fd.Name())
		}
	}
}
