package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/safefs"
)

// NullPath is the log path that switches a file off: writes to it are discarded without
// touching the file system.
const NullPath = "/dev/null"

const (
	// DefaultMode is the permission of a new log file: logs often hold secrets an app printed,
	// so they are not world-readable (PM2's logrotate config uses the same).
	DefaultMode os.FileMode = 0o640
	// dirMode is the permission of log directories corral creates.
	dirMode os.FileMode = 0o750
	// defaultRotateRetry is how long a file waits after a failed rotation before trying again,
	// so that a rotation that cannot work (a directory in the way, a read-only directory) costs
	// a few syscalls and one error report every so often, not on every line.
	defaultRotateRetry = 10 * time.Second
)

// FileOptions says how a log file is kept.
type FileOptions struct {
	// MaxSize rotates the file before a write would take it past this many bytes; 0 never
	// rotates. A single line longer than MaxSize is still written whole.
	MaxSize int64
	// Retain is how many rotated files are kept: path.1 (newest) to path.<Retain> (oldest).
	// With Retain 0 a rotation renames the file away and deletes it, so the old content is
	// simply discarded; rotated files past Retain (left by an earlier, larger Retain) are
	// deleted at the next rotation.
	Retain int
	// Mode is the permission of a file that Open creates; 0 means DefaultMode.
	Mode os.FileMode
}

// File is one holder's handle on a log file shared through a Manager. Handles on the same path
// share one descriptor and one lock, so lines from several processes of an app writing a
// merged file never interleave, and rotation happens once for all of them.
type File struct {
	m      *Manager
	lf     *logFile // nil: the file discards everything (NullPath), or failed (err)
	path   string
	err    error // set by Unopened: every write fails with it
	closed atomic.Bool
}

// Unopened returns a handle for a log file that could not be opened (err says why, a refusal
// included): every write to it fails with err, so a Stream counts the lines meant for it as
// lost (Loss) instead of dropping them silently. Closing it does nothing.
func Unopened(path string, err error) *File {
	return &File{path: path, err: err}
}

// RotateError reports a rotation that failed. The line being written when it happened was
// still written, to the file that was open, so nothing was lost: the file only grows past
// MaxSize until a later rotation works (retried after a delay, not on every line).
type RotateError struct {
	Path string
	Err  error
}

func (e *RotateError) Error() string { return fmt.Sprintf("logs: rotate %s: %v", e.Path, e.Err) }
func (e *RotateError) Unwrap() error { return e.Err }

// Path returns the absolute path of the file, or NullPath.
func (f *File) Path() string { return f.path }

// WriteLine appends b, one complete line including its '\n' (one is added if missing), in a
// single write under the file's lock: a line is never split between two files nor interleaved
// with another writer's line. When the line would take the file past MaxSize the file is
// rotated first. The error is a *RotateError alone when only the rotation failed (the line was
// written); any other error means the line was not (fully) written.
func (f *File) WriteLine(b []byte) error {
	_, _, err := f.writeLines(b)
	return err
}

// WriteLines is WriteLine for several complete lines at once: as few writes as rotation
// allows, which is what keeps a chatty app from costing the daemon a syscall per line. Lines
// are still never split across files, and the group is not interleaved with other writers.
func (f *File) WriteLines(b []byte) error {
	_, _, err := f.writeLines(b)
	return err
}

// writeLines is WriteLines that also says how many lines, and bytes, were not written.
func (f *File) writeLines(b []byte) (lost, lostBytes int, err error) {
	if f.err != nil {
		return countLines(b), len(b), f.err
	}
	if f.lf == nil {
		return 0, 0, nil
	}
	if f.closed.Load() {
		return countLines(b), len(b), fmt.Errorf("logs: write %s: %w", f.path, os.ErrClosed)
	}
	return f.lf.writeLines(b)
}

// Close drops this handle's reference; the descriptor is closed with the last one. Closing a
// handle twice is harmless and does not drop another holder's reference.
func (f *File) Close() error {
	if f.lf == nil || !f.closed.CompareAndSwap(false, true) {
		return nil
	}
	return f.m.release(f.lf)
}

// logFile is the shared state behind every File handle on one path.
type logFile struct {
	path string
	refs int // guarded by Manager.mu

	mu      sync.Mutex
	opt     FileOptions
	fd      *os.File // nil once closed
	size    int64    // bytes in the file behind fd, as far as we know
	midLine bool     // a failed write left part of a line at the end of the file
	retryAt time.Time
	retry   time.Duration
}

// openLogFile opens path for appending, creating it and its directories. A symbolic link at
// path is followed only if this user or root made it and no one else can replace it
// (safefs.OpenNamed): log paths are named by users, and `out_file: '/dev/stdout'` is a link,
// but one planted by another user must not make the daemon append an app's output to a file
// of its choosing. A regular file with other names (hard links) is refused as well.
func openLogFile(path string, mode os.FileMode) (*os.File, int64, error) {
	if mode == 0 {
		mode = DefaultMode
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, 0, fmt.Errorf("logs: create directory for %s: %w", path, err)
	}
	fd, err := safefs.OpenNamed(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return nil, 0, fmt.Errorf("logs: open %s: %w", path, err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, 0, fmt.Errorf("logs: stat %s: %w", path, err)
	}
	return fd, st.Size(), nil
}

// countLines counts the lines in b, a last one without '\n' included.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

func (lf *logFile) writeLines(b []byte) (lost, lostBytes int, err error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b[:len(b):len(b)], '\n')
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.fd == nil {
		return countLines(b), len(b), fmt.Errorf("logs: write %s: %w", lf.path, os.ErrClosed)
	}
	if lf.midLine {
		// End the partial line a failed write left, so the next line starts on its own.
		n, err := lf.fd.Write([]byte{'\n'})
		lf.size += int64(n)
		if err != nil {
			return countLines(b), len(b), fmt.Errorf("logs: write %s: %w", lf.path, err)
		}
		lf.midLine = false
	}

	var rotErr error
	for len(b) > 0 {
		chunk := b
		if max := lf.opt.MaxSize; max > 0 && lf.size+int64(len(b)) > max {
			chunk = linesWithin(b, max-lf.size)
			if len(chunk) == 0 {
				rotated := false
				if lf.size > 0 {
					var err error
					if rotated, err = lf.rotate(); err != nil {
						rotErr = err
					}
				}
				if rotated {
					continue // measure again against the fresh file
				}
				if lf.size == 0 {
					chunk = b[:bytes.IndexByte(b, '\n')+1] // a line longer than MaxSize, whole
				} else {
					chunk = b // rotation is failing: keep every line, in the file that is open
				}
			}
		}
		n, err := lf.fd.Write(chunk)
		lf.size += int64(n)
		if err != nil {
			lf.midLine = n > 0 && chunk[n-1] != '\n'
			return countLines(b[n:]), len(b) - n, errors.Join(rotErr, fmt.Errorf("logs: write %s: %w", lf.path, err))
		}
		b = b[len(chunk):]
	}
	if rotErr != nil {
		return 0, 0, rotErr
	}
	return 0, 0, nil
}

// linesWithin returns the longest run of whole lines at the start of b that fits in room bytes.
func linesWithin(b []byte, room int64) []byte {
	if room <= 0 {
		return nil
	}
	if int64(len(b)) > room {
		b = b[:room]
	}
	return b[:bytes.LastIndexByte(b, '\n')+1]
}

// rotate moves the file aside and opens a fresh one at path, reporting whether it did. On
// failure the old descriptor stays in use, so the caller's lines still go somewhere, and
// rotation is not retried before retryAt. The caller holds mu.
func (lf *logFile) rotate() (bool, error) {
	now := time.Now()
	if now.Before(lf.retryAt) {
		return false, nil
	}
	if err := shiftRotated(lf.path, lf.opt.Retain); err != nil {
		lf.retryAt = now.Add(lf.retry)
		return false, &RotateError{Path: lf.path, Err: err}
	}
	fd, size, err := openLogFile(lf.path, lf.opt.Mode)
	if err != nil {
		// The old descriptor now points at path.1 (or a deleted file with Retain 0); keep
		// writing there until a retry can open path.
		lf.retryAt = now.Add(lf.retry)
		return false, &RotateError{Path: lf.path, Err: err}
	}
	// Writes are unbuffered, so closing the old descriptor cannot lose anything.
	lf.fd.Close()
	lf.fd, lf.size, lf.midLine, lf.retryAt = fd, size, false, time.Time{}
	// Pruning last: failing to delete old files must not keep us writing to a rotated one.
	if err := pruneRotated(lf.path, lf.opt.Retain+1); err != nil {
		return true, &RotateError{Path: lf.path, Err: err}
	}
	return true, nil
}

// rotatedName is the name of the i-th rotated file of path.
func rotatedName(path string, i int) string { return fmt.Sprintf("%s.%d", path, i) }

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// shiftRotated renames path to path.1 after shifting path.1… up by one, overwriting
// path.<retain> (path.1 with retain 0); pruneRotated deletes what is past retain afterwards.
//
// Only the files before the first gap are shifted. That is what a normal rotation needs, and it
// makes a retry after a half-done rotation harmless: if path.1 was already moved to path.2 when
// renaming path failed, the retry finds path.1 free and shifts nothing, instead of pushing the
// history up again and deleting the oldest file on every attempt.
func shiftRotated(path string, retain int) error {
	if !exists(path) {
		// Already renamed by an earlier attempt whose reopen failed, or moved by someone else:
		// there is nothing to move, only a file to open.
		return nil
	}
	keep := max(retain, 1)
	free := keep // with no gap, path.<keep> is overwritten: that is how the oldest goes
	for i := 1; i <= keep; i++ {
		if !exists(rotatedName(path, i)) {
			free = i
			break
		}
	}
	for i := free - 1; i >= 1; i-- {
		if err := os.Rename(rotatedName(path, i), rotatedName(path, i+1)); err != nil {
			return err
		}
	}
	return os.Rename(path, rotatedName(path, 1))
}

// pruneRotated deletes path.<from>, path.<from+1>… up to the first one missing. With Retain 0
// that includes path.1, just renamed: renaming first and deleting after means a reader that
// has the file open keeps consistent content, and our own writes never see a truncated file.
func pruneRotated(path string, from int) error {
	for i := from; ; i++ {
		err := os.Remove(rotatedName(path, i))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// reopen replaces the descriptor with a fresh open of path (after an external logrotate moved
// the file). On failure the old descriptor stays in use.
func (lf *logFile) reopen() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.fd == nil {
		return nil
	}
	fd, size, err := openLogFile(lf.path, lf.opt.Mode)
	if err != nil {
		return err
	}
	lf.fd.Close()
	lf.fd, lf.size, lf.midLine, lf.retryAt = fd, size, false, time.Time{}
	return nil
}

// truncate empties the file at path, whichever descriptor we hold. The descriptor is in append
// mode, so the next write lands at the new end; no reopen is needed (PM2 users saw apps stop
// logging after `pm2 flush`, #3681, because the app's own descriptor kept its offset).
func (lf *logFile) truncate() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	err := truncatePath(lf.path)
	if lf.fd != nil {
		if st, serr := lf.fd.Stat(); serr == nil {
			lf.size = st.Size()
		}
		lf.midLine = false
	}
	return err
}

// truncatePath empties the file at path through a descriptor opened as openLogFile opens
// (never os.Truncate, which follows any symbolic link): a link planted at path is refused, and
// its target left alone. Something other than a regular file (a terminal, a pipe) has nothing
// to empty.
func truncatePath(path string) error {
	f, err := safefs.OpenNamed(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logs: truncate %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("logs: truncate %s: %w", path, err)
	}
	return nil
}

func (lf *logFile) setOptions(opt FileOptions) {
	lf.mu.Lock()
	lf.opt = opt
	lf.mu.Unlock()
}

func (lf *logFile) close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.fd == nil {
		return nil
	}
	err := lf.fd.Close()
	lf.fd = nil
	if err != nil {
		return fmt.Errorf("logs: close %s: %w", lf.path, err)
	}
	return nil
}
