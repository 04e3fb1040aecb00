package nodeipc

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNewPair(t *testing.T) {
	checkLeaks(t)
	parent, child, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	defer child.Close()
	for _, f := range []*os.File{parent, child} {
		fd := int(f.Fd())
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: FD_CLOEXEC not set (%#x, %v)", f.Name(), flags, err)
		}
		typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil || typ != unix.SOCK_STREAM {
			t.Errorf("%s: SO_TYPE %d, %v", f.Name(), typ, err)
		}
		dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil || dom != unix.AF_UNIX {
			t.Errorf("%s: SO_DOMAIN %d, %v", f.Name(), dom, err)
		}
	}
}

func TestEnv(t *testing.T) {
	got := Env(3)
	if len(got) != 2 || got[0] != "NODE_CHANNEL_FD=3" || got[1] != "NODE_CHANNEL_SERIALIZATION_MODE=json" {
		t.Fatalf("Env(3) = %q", got)
	}
}

// Open refuses anything but a stream socket, and closes what it was given.
func TestOpenRejects(t *testing.T) {
	checkLeaks(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	if c, err := Open(pr, nopHandler{}, Options{}); err == nil {
		c.Close()
		t.Error("Open(pipe) succeeded")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	if c, err := Open(os.NewFile(uintptr(fds[0]), "dgram"), nopHandler{}, Options{}); err == nil {
		c.Close()
		t.Error("Open(SOCK_DGRAM) succeeded")
	}
	a, b, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if c, err := Open(a, nil, Options{}); err == nil {
		c.Close()
		t.Error("Open(nil handler) succeeded")
	}
}
