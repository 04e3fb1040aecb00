// Package home lays out CORRAL_HOME: the directory that holds the daemon's socket, pid file,
// log, the apps' logs and the saved process list. The CLI and the daemon agree on it through
// this package alone.
//
// # A home no one else controls
//
// The daemon often runs as root, and what is in its home decides what it runs (the Node
// cluster workers' preload, the saved process list) and where it writes (the apps' logs, which
// `flush` truncates). So a home is used only when no one but this user (or root) can have put
// anything in it or can change it (see Check):
//
//   - the home and each of its subdirectories (logs, pids, node, notify) is a real directory,
//     owned by this user, and writable by no one else (group and others);
//   - every directory above it is owned by this user or root, and writable by others only
//     with the sticky bit (as /tmp is): otherwise whoever can write there could rename the
//     home away and put their own in its place, after it was checked.
//
// With those, every path below the home can only be changed by this user or root, so files in
// it are opened by path (with O_NOFOLLOW, package safefs), without openat from a checked
// descriptor: nothing between the check and the open could have been swapped by someone else.
//
// A CORRAL_HOME that is a symbolic link, or has one in its path, is resolved once, by
// Resolve, and the real directory is used from then on. Each link on the way is followed only
// if this user or root made it and no one else can replace it (safefs.LinkProblem): a link
// planted by another user (say /tmp/corral -> /etc) would otherwise choose where the daemon
// creates its files, and which directory it restricts to 0700.
package home

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/corral-pm/corral/internal/safefs"
	"golang.org/x/sys/unix"
)

// Paths are the files of one CORRAL_HOME.
type Paths struct {
	Home    string
	Socket  string // the control API (0600)
	PidFile string // the daemon's pid
	Lock    string // held (flock) by the running daemon: one daemon per home
	// KeeperPidFile and KeeperLock are the keeper's (package keeper), the daemon's parent
	// that keeps the apps' descriptors while the daemon restarts: one keeper per home.
	KeeperPidFile string
	KeeperLock    string
	DaemonLog     string
	LogDir        string // apps' logs
	PidDir        string // apps' pid files
	NodeDir       string // the Node cluster workers' preload (0700)
	NotifyDir     string // the runs' NOTIFY_SOCKETs (0700)
	Dump          string // the saved process list
	Key           string // seals secrets in the saved list
	Settings      string // corral's own settings (`corral set`), read by the daemon at start
}

// maxSocketPath is the room in sockaddr_un.sun_path, less the terminating NUL.
const maxSocketPath = 107

// Resolve returns the paths for CORRAL_HOME (default ~/.corral), with symbolic links resolved
// (see the package documentation), without creating anything. A home that exists already is
// checked (Check): the CLI must not talk to a socket, nor read logs, in a home someone else
// controls.
func Resolve() (Paths, error) {
	dir := os.Getenv("CORRAL_HOME")
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil || h == "" {
			return Paths{}, errors.New("cannot find a home directory: set CORRAL_HOME")
		}
		dir = filepath.Join(h, ".corral")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Paths{}, fmt.Errorf("CORRAL_HOME %q: %w", dir, err)
	}
	resolved, err := resolveLinks(abs)
	if err != nil {
		return Paths{}, fmt.Errorf("CORRAL_HOME %s: %w", abs, err)
	}
	p := At(resolved)
	if len(p.Socket) > maxSocketPath {
		return Paths{}, fmt.Errorf("CORRAL_HOME %s is too long: its control socket path would be %d bytes and unix sockets allow %d; choose a shorter CORRAL_HOME",
			resolved, len(p.Socket), maxSocketPath)
	}
	if err := p.Check(); err != nil {
		return Paths{}, err
	}
	return p, nil
}

// At returns the paths for the home directory dir (absolute, without symbolic links).
func At(dir string) Paths {
	return Paths{
		Home:          dir,
		Socket:        filepath.Join(dir, "corral.sock"),
		PidFile:       filepath.Join(dir, "corral.pid"),
		Lock:          filepath.Join(dir, "daemon.lock"),
		KeeperPidFile: filepath.Join(dir, "keeper.pid"),
		KeeperLock:    filepath.Join(dir, "keeper.lock"),
		DaemonLog:     filepath.Join(dir, "corral.log"),
		LogDir:        filepath.Join(dir, "logs"),
		PidDir:        filepath.Join(dir, "pids"),
		NodeDir:       filepath.Join(dir, "node"),
		NotifyDir:     filepath.Join(dir, "notify"),
		Dump:          filepath.Join(dir, "dump.json"),
		Key:           filepath.Join(dir, "secret.key"),
		Settings:      filepath.Join(dir, "settings.json"),
	}
}

// subdir is a directory corral creates in the home, and the mode it creates it with.
type subdir struct {
	path string
	mode os.FileMode
	// tighten: an existing directory with more permission bits than mode loses them (older
	// versions made node/ 0755; the preload must sit where only its owner can even look).
	tighten bool
}

func (p Paths) subdirs() []subdir {
	return []subdir{
		{p.LogDir, 0o750, false},
		{p.PidDir, 0o750, false},
		{p.NodeDir, 0o700, true},
		{p.NotifyDir, 0o700, true},
	}
}

// Ensure creates the home directory (0700) and its subdirectories, and checks that no one else
// controls them (see the package documentation); the error says what is wrong and how to fix
// it. An existing home that others can read but not write is tightened to 0700: it holds the
// control socket and the apps' secrets.
func (p Paths) Ensure() error {
	return p.walk(true)
}

// Check is Ensure without creating or changing anything: a home, or a subdirectory, that does
// not exist yet passes.
func (p Paths) Check() error {
	return p.walk(false)
}

// walk opens every directory from / down to the home and its subdirectories, one component at
// a time from the descriptor of the one above (openat, O_NOFOLLOW), and checks each through
// its own descriptor: what is checked is what is there, even if a path changes meanwhile.
func (p Paths) walk(create bool) error {
	if !filepath.IsAbs(p.Home) {
		return fmt.Errorf("CORRAL_HOME %s is not an absolute path", p.Home)
	}
	home := filepath.Clean(p.Home)
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /: %w", err)
	}
	defer func() { unix.Close(fd) }()
	if err := checkAncestor(fd, "/", home); err != nil {
		return err
	}
	var comps []string
	if home != "/" {
		comps = strings.Split(home[1:], "/")
	}
	cur := "/"
	for i, c := range comps {
		last := i == len(comps)-1
		cur = filepath.Join(cur, c)
		flags := unix.O_PATH
		if last {
			flags = unix.O_RDONLY // fchmod needs a real descriptor
		}
		next, err := openDir(fd, c, cur, flags, create, 0o700)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !create {
				return nil // nothing there yet: nothing anyone could have planted either
			}
			return homeError(cur, home, err)
		}
		unix.Close(fd)
		fd = next
		if !last {
			if err := checkAncestor(fd, cur, home); err != nil {
				return err
			}
		}
	}
	if err := checkOwned(fd, "CORRAL_HOME "+home, home, 0o700, create, home); err != nil {
		return err
	}
	for _, d := range p.subdirs() {
		if filepath.Dir(d.path) != home {
			continue // a Paths made by hand; nothing of ours
		}
		sfd, err := openDir(fd, filepath.Base(d.path), d.path, unix.O_RDONLY, create, d.mode)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !create {
				continue
			}
			return homeError(d.path, home, err)
		}
		want := os.FileMode(0)
		if d.tighten && create {
			want = d.mode
		}
		err = checkOwned(sfd, "CORRAL_HOME subdirectory "+d.path, d.path, want, create, home)
		unix.Close(sfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// openDir opens the directory name in dirfd (path is its full name, for messages), creating it
// with mode when create is set and it is missing. A symbolic link is refused: Resolve has
// resolved those, so one here was put in place since.
func openDir(dirfd int, name, path string, flags int, create bool, mode os.FileMode) (int, error) {
	open := func() (int, error) {
		return unix.Openat(dirfd, name, flags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	fd, err := open()
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdirat(dirfd, name, uint32(mode.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create %s: %w", path, err)
		}
		fd, err = open()
	}
	if errors.Is(err, unix.ENOENT) {
		return -1, fs.ErrNotExist
	}
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, errSymlink
		}
		return -1, errNotDir
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

var (
	errSymlink = errors.New("is a symbolic link")
	errNotDir  = errors.New("is not a directory")
)

func homeError(path, home string, err error) error {
	switch {
	case errors.Is(err, errSymlink):
		return &safefs.Error{Path: path, Msg: fmt.Sprintf("%s (in CORRAL_HOME %s) is a symbolic link where corral expects a directory of its own, and it does not follow links there; remove it (corral makes the directory), or choose another CORRAL_HOME",
			path, home)}
	case errors.Is(err, errNotDir):
		return fmt.Errorf("%s (in CORRAL_HOME %s) is not a directory; move it away, or choose another CORRAL_HOME", path, home)
	}
	return fmt.Errorf("CORRAL_HOME %s: %w", home, err)
}

// checkAncestor checks a directory above the home: only this user or root can have changed
// which directory the home's path leads to.
func checkAncestor(fd int, path, home string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("CORRAL_HOME %s: check %s: %w", home, path, err)
	}
	if problem := safefs.DirProblem(st.Uid, st.Gid, fileMode(st.Mode)); problem != "" {
		fix := "choose a CORRAL_HOME whose parent directories belong to you or root"
		if safefs.TrustedOwner(st.Uid) {
			fix = fmt.Sprintf("fix it with: chmod go-w %s (or chmod +t %s, as /tmp has), or choose another CORRAL_HOME", path, path)
		}
		return &safefs.Error{Path: path, Msg: fmt.Sprintf("the directory %s, above CORRAL_HOME %s, %s: someone else could rename CORRAL_HOME and put their own in its place; %s",
			path, home, problem, fix)}
	}
	return nil
}

// checkOwned checks the home or one of its subdirectories: owned by this user and writable by
// no one else. With tighten set (and create), bits beyond want are removed.
func checkOwned(fd int, what, path string, want os.FileMode, create bool, home string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	me := os.Geteuid()
	if int(st.Uid) != me {
		return &safefs.Error{Path: path, Msg: fmt.Sprintf("%s is owned by %s, not by %s who runs corral: its owner could put files in it that corral would run or write through. Choose another CORRAL_HOME, or move %s away so that corral makes a new one (if it is yours after all: chown -R %s %s)",
			what, safefs.Who(st.Uid), safefs.Me(), home, safefs.UserName(uint32(me)), home)}
	}
	perm := fileMode(st.Mode).Perm()
	if perm&0o022 != 0 {
		return &safefs.Error{Path: path, Msg: fmt.Sprintf("%s has mode %04o: group or others can write to it, so they could have put files in it that corral would run or write through. Check what is in it, then fix it with: chmod go-w %s, or choose another CORRAL_HOME",
			what, perm, path)}
	}
	if create && want != 0 && perm&^want != 0 {
		if err := unix.Fchmod(fd, uint32(perm&want)); err != nil {
			return fmt.Errorf("restrict %s to its owner: %w", path, err)
		}
	}
	return nil
}

// fileMode converts a stat mode to an fs.FileMode's permission and sticky bits.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// resolveLinks resolves the symbolic links in path (absolute and clean), as the kernel would,
// following each only if safefs.LinkProblem finds nothing wrong with it. The part of the path
// that does not exist yet is kept as it is (Ensure creates it).
func resolveLinks(path string) (string, error) {
	done := "/"
	todo := strings.Split(strings.TrimPrefix(path, "/"), "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, c)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, todo...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if hops++; hops > 40 {
			return "", &os.PathError{Op: "resolve", Path: path, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if problem := safefs.LinkProblem(next, fi); problem != "" {
			return "", &safefs.Error{Path: next, Msg: fmt.Sprintf("refusing to follow the symbolic link %s (to %s): %s; remove it, or set CORRAL_HOME to a real directory",
				next, target, problem)}
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return done, nil
}
