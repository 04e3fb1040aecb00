package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// containerInitEnv carries a containerSpec to the test binary re-executed as a container's
// init (TestMain): it is the tiny part of a container runtime (runc's init) that must run
// inside the new namespaces before the entrypoint, which then replaces it as PID 1.
const containerInitEnv = "CORRAL_TEST_CONTAINER_INIT"

// containerSpec is what the init needs to turn itself into the container's entrypoint.
type containerSpec struct {
	Rootfs   string
	Hostname string
	Workdir  string
	UID, GID int
	Env      []string
	Argv     []string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(containerInitEnv); spec != "" {
		err := containerInit(spec)
		fmt.Fprintf(os.Stderr, "container init: %v\n", err)
		os.Exit(127)
	}
	os.Exit(m.Run())
}

// containerInit runs as PID 1 of new PID, mount, network, UTS and IPC namespaces (the test
// starts it with those clone flags). It sets the container up as Docker's runtime does for
// this image, then executes the entrypoint in its place; it returns only on failure.
//
//   - every mount is made private first, so that nothing mounted here reaches the host's
//     mount namespace (and the container's mounts go away with its last process);
//   - /proc of the new PID namespace, /dev as a tmpfs with the usual device nodes and
//     /dev/shm, /sys read-only, under the root filesystem;
//   - the loopback interface up (a new network namespace has it down), the hostname set;
//   - chroot to the root filesystem, the working directory, no supplementary groups, the
//     image's uid and gid (which drops every capability, as for any non-root USER), and
//     exec, with the image's environment.
//
// Not emulated: cgroups (CPU and memory limits), seccomp and AppArmor profiles, the
// capability bounding set (a non-root user has none anyway), a user namespace.
func containerInit(specJSON string) error {
	// One thread does the credentials change and the exec: x/sys's raw calls below change
	// only the calling thread, which is the one that execs.
	runtime.LockOSThread()
	var spec containerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mounts private: %w", err)
	}
	root := spec.Rootfs
	mounts := []struct {
		source, target, fstype string
		flags                  uintptr
		data                   string
	}{
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"tmpfs", "dev", "tmpfs", unix.MS_NOSUID | unix.MS_STRICTATIME, "mode=755,size=65536k"},
		{"shm", "dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=1777,size=65536k"},
		{"sysfs", "sys", "sysfs", unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	}
	for _, m := range mounts {
		target := filepath.Join(root, m.target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.source, target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, target, err)
		}
		if m.target == "dev" {
			if err := populateDev(target); err != nil {
				return err
			}
		}
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := unix.Chroot(root); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := unix.Chdir(spec.Workdir); err != nil {
		return fmt.Errorf("the working directory %s: %w", spec.Workdir, err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(spec.GID), uintptr(spec.GID), uintptr(spec.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", spec.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(spec.UID), uintptr(spec.UID), uintptr(spec.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", spec.UID, e)
	}
	// The credentials change cleared the parent-death signal the test asked for: set it
	// again, so that the container dies with a test binary that is killed.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_PDEATHSIG: %w", err)
	}
	path := spec.Argv[0]
	if !strings.Contains(path, "/") {
		var err error
		if path, err = lookPathIn(path, envValue(spec.Env, "PATH")); err != nil {
			return err
		}
	}
	return fmt.Errorf("exec %s: %w", path, unix.Exec(path, spec.Argv, spec.Env))
}

// populateDev creates the device nodes and links a container's /dev has.
func populateDev(dev string) error {
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			return err
		}
	}
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return os.Mkdir(filepath.Join(dev, "shm"), 0o1777)
}

// loopbackUp sets lo up, as a runtime does in a container's new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
