// Package safefs opens, writes and changes corral's files without following a symbolic link
// or a hard link that someone else could have planted: the daemon often runs as root, and a
// link in the right place would otherwise make it append an app's output to /etc/shadow,
// truncate it on `flush`, or load someone else's code.
//
// Two rules, one per kind of path:
//
//   - Open, WriteFile and Chmod are for files corral names itself (its pid files, socket,
//     state files, key): a symbolic link at the final component is refused, whoever made it.
//   - OpenNamed is for log files, whose paths users name in ecosystem files: a symbolic link at
//     the final component is followed only if no one but this user or root can have made it
//     or can replace it (TrustedLink), so `out_file: '/dev/stdout'` keeps working while a link
//     planted by another user is refused.
//
// Either way, a regular file opened for writing must have a single name: a hard link to a
// file that matters, planted where corral writes, is refused too.
package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnsafe is matched (errors.Is) by every refusal of this package, and of package home.
var ErrUnsafe = errors.New("unsafe file")

// Error is a refusal: a file or directory corral will not use, because someone other than
// this user (or root) could have made or could change it.
type Error struct {
	Path string // what was refused
	Msg  string // the whole message: the path, what is wrong with it and what to do
}

func (e *Error) Error() string        { return e.Msg }
func (e *Error) Is(target error) bool { return target == ErrUnsafe }

// Who names a user for messages: "nobody (uid 65534)", or "uid 1234" without a login name.
func Who(uid uint32) string {
	if name := UserName(uid); name != strconv.FormatUint(uint64(uid), 10) {
		return fmt.Sprintf("%s (uid %d)", name, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// UserName is the login name of uid, or the number when it has none: what chown takes.
func UserName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// Me names the effective user of this process, who runs corral.
func Me() string { return Who(uint32(os.Geteuid())) }

// MeOrRoot names whom corral trusts, for messages: "root (uid 0), who runs corral", or
// "alice (uid 1000), who runs corral, or root".
func MeOrRoot() string {
	if os.Geteuid() == 0 {
		return Me() + ", who runs corral"
	}
	return Me() + ", who runs corral, or root"
}

// TrustedOwner reports whether uid is this process's effective user or root: the only owners
// of the files and directories corral relies on.
func TrustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// Owner returns the owner of a file, from its FileInfo.
func Owner(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}

// DirProblem says why others than this user and root could add, remove or rename entries in
// a directory with owner uid, group gid and mode, or returns "" if they cannot:
//   - it is owned by another user;
//   - it is writable by others, without the sticky bit (which would leave each entry to its
//     own owner, the directory's owner and root, as in /tmp);
//   - it is writable by a group other than this process's own group, without the sticky bit.
//     A directory writable by the user's own group is accepted: with the user private groups
//     most distributions use (umask 002), that group is the user alone.
func DirProblem(uid, gid uint32, mode fs.FileMode) string {
	perm := mode.Perm()
	sticky := mode&fs.ModeSticky != 0
	switch {
	case !TrustedOwner(uid):
		return fmt.Sprintf("is owned by %s, not by %s", Who(uid), MeOrRoot())
	case perm&0o002 != 0 && !sticky:
		return fmt.Sprintf("is writable by others (mode %04o) and has no sticky bit", perm)
	case perm&0o020 != 0 && !sticky && int(gid) != os.Getegid():
		return fmt.Sprintf("is writable by group %d (mode %04o) and has no sticky bit", gid, perm)
	}
	return ""
}

// StatDirProblem is DirProblem for a directory's FileInfo (which must come from Stat or
// Lstat on Linux).
func StatDirProblem(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "cannot be checked"
	}
	return DirProblem(st.Uid, st.Gid, fi.Mode())
}

// LinkProblem says why the symbolic link at path (fi, from Lstat) may have been planted, or
// could be replaced, by someone other than this user or root; "" means the link is theirs to
// follow. It is trusted when it is owned by this user or root, and its directory is one only
// they can change (or a sticky one they own, where only the link's owner can replace it).
func LinkProblem(path string, fi fs.FileInfo) string {
	if owner := Owner(fi); !TrustedOwner(owner) {
		return fmt.Sprintf("it is owned by %s, not by %s, so someone else may have planted it", Who(owner), MeOrRoot())
	}
	dir := filepath.Dir(path)
	dfi, err := os.Stat(dir)
	if err != nil {
		return fmt.Sprintf("its directory cannot be checked: %v", err)
	}
	if p := StatDirProblem(dfi); p != "" {
		return fmt.Sprintf("its directory %s %s, so someone else could replace it", dir, p)
	}
	return ""
}

// TrustedLink returns nil when path is a symbolic link its final component may be followed
// through (see LinkProblem), and an *Error saying why not otherwise. A path that is not a
// symbolic link is an error too.
func TrustedLink(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a symbolic link", path)
	}
	if p := LinkProblem(path, fi); p != "" {
		return &Error{Path: path, Msg: fmt.Sprintf("refusing to follow the symbolic link %s (to %s): %s; remove it, or name the file it points to instead",
			path, target(path), p)}
	}
	return nil
}

func target(path string) string {
	t, err := os.Readlink(path)
	if err != nil {
		return "?"
	}
	return t
}

// symlinkError is Open's refusal of a symbolic link, or nil when path is not one (the ELOOP
// came from elsewhere).
func symlinkError(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	return &Error{Path: path, Msg: fmt.Sprintf("refusing to open %s: it is a symbolic link (to %s), and corral does not follow symbolic links here; remove it",
		path, target(path))}
}

// Open is os.OpenFile with O_NOFOLLOW: a symbolic link at the final component is refused
// with an *Error. A regular file opened for writing must have a single name (see the package
// documentation).
func Open(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			if serr := symlinkError(path); serr != nil {
				return nil, serr
			}
		}
		return nil, err
	}
	if err := checkWritable(f, path, flag); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenNamed is Open for a path a user named (a log file): a symbolic link at the final
// component is followed when TrustedLink allows it, and refused with an *Error otherwise.
func OpenNamed(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if err != nil {
		if !errors.Is(err, syscall.ELOOP) || symlinkError(path) == nil {
			return nil, err
		}
		if err := TrustedLink(path); err != nil {
			return nil, err
		}
		if f, err = os.OpenFile(path, flag, perm); err != nil {
			return nil, err
		}
	}
	if err := checkWritable(f, path, flag); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkWritable refuses a regular file opened for writing that has other names: a hard link
// planted where corral writes could be another name of any file on the same filesystem.
func checkWritable(f *os.File, path string, flag int) error {
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && fi.Mode().IsRegular() && st.Nlink > 1 {
		return &Error{Path: path, Msg: fmt.Sprintf("refusing to write to %s: it has %d hard links, so it may be another name of a file that must not be written (a planted link); remove it",
			path, st.Nlink)}
	}
	return nil
}

// WriteFile replaces the content of the regular file at path with data, creating it with perm
// if needed, without following a symbolic link (Open). For small files a reader may see
// half-written (pid files); state files use package persist.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Open(path, os.O_WRONLY|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &Error{Path: path, Msg: fmt.Sprintf("refusing to write to %s: it is not a regular file (%s)", path, fi.Mode().Type())}
	}
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Chmod is os.Chmod that refuses a symbolic link instead of changing what it points to. The
// file is opened with O_PATH|O_NOFOLLOW (any kind of file, a socket too) and changed through
// that descriptor, so what is checked is what is changed.
func Chmod(path string, mode os.FileMode) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return &Error{Path: path, Msg: fmt.Sprintf("refusing to change the mode of %s: it is a symbolic link (to %s); remove it", path, target(path))}
	}
	// fchmod does not take an O_PATH descriptor; its /proc name does (what glibc does for
	// fchmodat with AT_SYMLINK_NOFOLLOW).
	if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), uint32(mode.Perm())); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}
