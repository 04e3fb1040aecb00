package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Problem is what ReadPrivate, CreatePrivate or CheckOwn found wrong: a check the file failed,
// or the step that failed. It is a value and not a message because only the caller knows what
// the file guards and how to fix it (remove a token, but restore a key from a backup).
type Problem int

const (
	NotRegular   Problem = iota + 1 // not a regular file (a directory, a FIFO...)
	NotMine                         // owned by another user than the effective one (root too)
	OpenToOthers                    // group or others have a permission they must not have
	WrongSize                       // not the size the caller needs, when checked or when read
	StatFailed                      // fstat of the open file failed
	ReadFailed                      // reading it failed
	TempFailed                      // the temporary file could not be created
	WriteFailed                     // writing, syncing or closing the temporary file failed
	LinkFailed                      // linking it into place, or syncing the directory, failed
)

// PrivateError is a failure of ReadPrivate or CreatePrivate past opening the file. Its own
// text is the OS's error when there is one, so that a caller that wraps it reads as if it
// wrapped the OS's error.
type PrivateError struct {
	Path    string
	Problem Problem
	Info    fs.FileInfo // the open file's, for NotRegular, NotMine, OpenToOthers and WrongSize
	Size    int64       // WrongSize: the bytes the file had
	Err     error       // the OS's error, for the steps that failed
}

func (e *PrivateError) Error() string {
	switch {
	case e.Err != nil:
		return e.Err.Error()
	case e.Problem == NotRegular:
		return fmt.Sprintf("%s is not a regular file (%s)", e.Path, e.Info.Mode().Type())
	case e.Problem == NotMine:
		return fmt.Sprintf("%s is owned by %s, not by %s", e.Path, Who(Owner(e.Info)), Me())
	case e.Problem == OpenToOthers:
		return fmt.Sprintf("%s has mode %04o", e.Path, e.Info.Mode().Perm())
	}
	return fmt.Sprintf("%s is %d bytes", e.Path, e.Size)
}

func (e *PrivateError) Unwrap() error { return e.Err }

// CheckOwn says whether a file corral takes as its own (from fstat of the open file, so that
// what is checked is what is read) may be trusted: a regular file, owned by the effective
// user, with none of the permission bits in deny (0o077 for a secret, 0o022 for a file only
// its owner may write). It returns 0 when it may.
//
// Root's files are refused too: corral makes these files itself, so one owned by someone else
// was made by someone else.
func CheckOwn(fi fs.FileInfo, deny fs.FileMode) Problem {
	switch {
	case !fi.Mode().IsRegular():
		return NotRegular
	case int(Owner(fi)) != os.Geteuid():
		return NotMine
	case fi.Mode().Perm()&deny != 0:
		return OpenToOthers
	}
	return 0
}

// ReadPrivate reads a secret of this user's (a key, a token) that must be exactly size bytes:
// a secret someone else wrote or can read is no secret, and a link could make corral take any
// file for it. It is opened with Open (no symbolic link; O_NONBLOCK, so a FIFO planted there
// does not hang the daemon), must pass CheckOwn with group and others denied everything, and
// is read with a spare byte, so that a file that grew since it was checked is caught.
//
// An error from Open is returned as it is (a missing file matches fs.ErrNotExist); any other
// is a *PrivateError.
func ReadPrivate(path string, size int) ([]byte, error) {
	f, err := Open(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &PrivateError{Path: path, Problem: StatFailed, Err: err}
	}
	if p := CheckOwn(fi, 0o077); p != 0 {
		return nil, &PrivateError{Path: path, Problem: p, Info: fi}
	}
	if fi.Size() != int64(size) {
		return nil, &PrivateError{Path: path, Problem: WrongSize, Info: fi, Size: fi.Size()}
	}
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, &PrivateError{Path: path, Problem: ReadFailed, Err: err}
	}
	if n != size {
		return nil, &PrivateError{Path: path, Problem: WrongSize, Info: fi, Size: int64(n)}
	}
	return buf[:size], nil
}

// CreatePrivate makes the file path hold data, mode 0600, unless a file is there already. The
// data goes to a temporary file in the same directory, which is then linked to path: unlike
// rename, link(2) never replaces a file another process made meanwhile, so two processes that
// start at once agree on one secret (the loser's error matches fs.ErrExist, and it reads the
// winner's). The file appears whole or not at all, and both it and its directory entry are
// synced: a secret that came back empty after a crash would be refused as damaged.
//
// Errors are *PrivateError (TempFailed, WriteFailed, LinkFailed).
func CreatePrivate(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := WriteTemp(dir, "."+filepath.Base(path)+".tmp-*", 0o600, data)
	if tmp == "" {
		return &PrivateError{Path: path, Problem: TempFailed, Err: err}
	}
	defer os.Remove(tmp) // after the link, path keeps the file
	if err != nil {
		return &PrivateError{Path: path, Problem: WriteFailed, Err: err}
	}
	if err := os.Link(tmp, path); err != nil {
		return &PrivateError{Path: path, Problem: LinkFailed, Err: err}
	}
	if err := SyncDir(dir); err != nil {
		return &PrivateError{Path: path, Problem: LinkFailed, Err: err}
	}
	return nil
}

// WriteTemp writes data to a new temporary file in dir (os.CreateTemp's pattern), with exactly
// perm whatever the umask, synced and closed, for a caller to move into place whole. It returns
// the file's name, also on an error after the file was made ("" if it could not be made): the
// caller removes it.
func WriteTemp(dir, pattern string, perm fs.FileMode, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = f.Chmod(perm) // CreateTemp uses 0600; do not depend on that, nor on the umask
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

// SyncDir makes the directory entries created or replaced in dir durable. Filesystems that
// cannot sync a directory say so with EINVAL; there is nothing more to do on those.
func SyncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
