package closeexec

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A pipe opened without O_CLOEXEC reaches a child until FromThree, and not after; a descriptor
// passed on purpose (ExtraFiles) still does.
func TestFromThree(t *testing.T) {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil { // no O_CLOEXEC: as a careless parent leaves it
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	open := func(extra ...*os.File) []string {
		t.Helper()
		cmd := exec.Command("sh", "-c", "ls /proc/self/fd")
		cmd.ExtraFiles = extra
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(out))
	}
	has := func(fds []string, fd int) bool {
		for _, f := range fds {
			if f == strconv.Itoa(fd) {
				return true
			}
		}
		return false
	}
	if fds := open(); !has(fds, p[0]) || !has(fds, p[1]) {
		t.Fatalf("before: the child has %v, want the pipe %v among them (the test proves nothing)", fds, p)
	}
	if err := FromThree(); err != nil {
		t.Fatal(err)
	}
	if fds := open(); has(fds, p[0]) || has(fds, p[1]) {
		t.Fatalf("after: the child has %v, including the pipe %v", fds, p)
	}
	for _, fd := range p {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Fatalf("descriptor %d: flags %#x, %v; want open and close-on-exec", fd, flags, err)
		}
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fds := open(f); !has(fds, 3) {
		t.Fatalf("ExtraFiles: the child has %v, want 3", fds)
	}
}
