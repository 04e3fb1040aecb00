package home

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Pinned is a file corral writes into its home for a program it starts to load: the Node
// cluster workers' preload, which runs inside every worker with the daemon's privileges. Its
// content is fixed (embedded in the binary), and Path checks, before each use, that the file
// is still exactly that, where only this user can change it: whatever happens to the home in
// between, a program corral starts never loads a file someone else could have written.
type Pinned struct {
	path    string
	content []byte
	logf    func(format string, args ...any) // the daemon log; may be nil

	mu sync.Mutex
}

// NewPinned returns the pinned file at path (in a directory of the home, which Write creates
// 0700) holding content. logf hears about every check that failed and what was done about it.
func NewPinned(path string, content []byte, logf func(format string, args ...any)) *Pinned {
	return &Pinned{path: path, content: content, logf: logf}
}

// Path checks the file and returns its path, for the use that follows at once. A file that
// fails the check (changed, replaced, a symbolic link, another owner, writable by others) is
// logged and written again; if that fails too, Path logs why and returns "": the caller must
// then do without it. A nil Pinned has no path.
func (f *Pinned) Path() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.verify()
	if err == nil {
		return f.path
	}
	f.log("%s failed its check (%v): writing it again", f.path, err)
	if err := f.write(); err != nil {
		f.log("%s cannot be used: %v", f.path, err)
		return ""
	}
	if err := f.verify(); err != nil {
		f.log("%s cannot be used: it fails its check even after being written again: %v", f.path, err)
		return ""
	}
	return f.path
}

// Write writes the file (again): a new file in the same directory, renamed over path. The
// directory is created (0700) if it is missing, and must belong to this user and be writable
// by no one else.
func (f *Pinned) Write() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.write()
}

func (f *Pinned) log(format string, args ...any) {
	if f.logf != nil {
		f.logf(format, args...)
	}
}

// openDir opens the file's directory, without following a symbolic link, and checks it: this
// user's, writable by no one else. With create, a missing directory is made and a looser one
// is tightened to 0700.
func (f *Pinned) openDir(create bool) (*os.File, error) {
	dir := filepath.Dir(f.path)
	open := func() (*os.File, error) {
		return os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	}
	d, err := open()
	if errors.Is(err, os.ErrNotExist) && create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		d, err = open()
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		d.Close()
		return nil, err
	}
	perm := st.Mode & 0o777
	switch {
	case int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("its directory %s is owned by uid %d, not by uid %d who runs corral", dir, st.Uid, os.Geteuid())
	case perm&0o022 != 0:
		err = fmt.Errorf("its directory %s has mode %04o: others can write to it", dir, perm)
	case create && perm&0o077 != 0:
		err = unix.Fchmod(int(d.Fd()), 0o700)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// verify checks the file through descriptors (the directory's, then the file's, opened with
// O_NOFOLLOW): a regular file with one name, owned by this user, writable by no one else,
// holding exactly the content.
func (f *Pinned) verify() error {
	d, err := f.openDir(false)
	if err != nil {
		return err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), filepath.Base(f.path), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return errors.New("it is a symbolic link")
	}
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(fd), f.path)
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	perm := st.Mode & 0o777
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("it is not a regular file (mode %#o)", st.Mode)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("it is owned by uid %d, not by uid %d who runs corral", st.Uid, os.Geteuid())
	case perm&0o022 != 0:
		return fmt.Errorf("it has mode %04o: others can write to it", perm)
	case st.Nlink != 1:
		return fmt.Errorf("it has %d hard links", st.Nlink)
	case st.Size != int64(len(f.content)):
		return fmt.Errorf("it is %d bytes, not the %d corral wrote", st.Size, len(f.content))
	}
	got := make([]byte, len(f.content)+1) // one spare byte: a file that grew meanwhile
	n, err := io.ReadFull(file, got)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if !bytes.Equal(got[:n], f.content) {
		return errors.New("its content is not what corral wrote")
	}
	return nil
}

// write creates a new file (O_EXCL, 0600) in the checked directory and renames it over the
// file, both relative to the directory's descriptor.
func (f *Pinned) write() (err error) {
	d, err := f.openDir(true)
	if err != nil {
		return err
	}
	defer d.Close()
	dirfd := int(d.Fd())
	var b [8]byte
	rand.Read(b[:])
	tmp := "." + filepath.Base(f.path) + ".tmp-" + hex.EncodeToString(b[:])
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(filepath.Dir(f.path), tmp), err)
	}
	file := os.NewFile(uintptr(fd), tmp)
	defer func() {
		if err != nil {
			unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	err = file.Chmod(0o600) // whatever the umask
	if err == nil {
		_, err = file.Write(f.content)
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, filepath.Base(f.path)); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}
