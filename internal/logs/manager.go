package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Manager owns the daemon's open log files, shared by absolute path: the processes of an app
// with merged logs (and an app's out and combined files, if they are one path) write through
// one descriptor and one lock, so their lines never interleave and rotation happens once.
type Manager struct {
	mu    sync.Mutex
	files map[string]*logFile
	// rotateRetry is the delay before retrying a failed rotation; tests shorten it.
	rotateRetry time.Duration
}

// NewManager returns a Manager with no open files.
func NewManager() *Manager {
	return &Manager{files: make(map[string]*logFile), rotateRetry: defaultRotateRetry}
}

// Open returns a handle on the log file at path, opening it (O_APPEND|O_CREATE, creating its
// directories with mode 0750) unless another handle has it open already. Each handle must be
// closed once. NullPath gives a handle that discards every line.
//
// The options of the latest Open apply to the shared file: a process restarted with a new
// log_max_size changes the file for its siblings too, which is what a user who changed the
// app's setting expects. Mode only matters when the file is created.
func (m *Manager) Open(path string, opt FileOptions) (*File, error) {
	if path == NullPath {
		return &File{path: NullPath}, nil
	}
	if path == "" {
		return nil, errors.New("logs: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("logs: open %s: %w", path, err)
	}
	opt.MaxSize, opt.Retain = max(opt.MaxSize, 0), max(opt.Retain, 0)
	m.mu.Lock()
	defer m.mu.Unlock()
	lf := m.files[abs]
	if lf == nil {
		fd, size, err := openLogFile(abs, opt.Mode)
		if err != nil {
			return nil, err
		}
		lf = &logFile{path: abs, opt: opt, fd: fd, size: size, retry: m.rotateRetry}
		m.files[abs] = lf
	} else {
		lf.setOptions(opt)
	}
	lf.refs++
	return &File{m: m, lf: lf, path: abs}, nil
}

// release drops one reference to lf and closes it with the last.
func (m *Manager) release(lf *logFile) error {
	m.mu.Lock()
	lf.refs--
	last := lf.refs == 0
	if last && m.files[lf.path] == lf {
		delete(m.files, lf.path)
	}
	m.mu.Unlock()
	if last {
		return lf.close()
	}
	return nil
}

// open returns the shared state of every open file.
func (m *Manager) open() []*logFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	lfs := make([]*logFile, 0, len(m.files))
	for _, lf := range m.files {
		lfs = append(lfs, lf)
	}
	return lfs
}

// ReopenAll reopens every open file at its path, for `reloadLogs` and SIGUSR2 after an
// external logrotate moved the files away. A file that cannot be reopened keeps its old
// descriptor (its lines still land in the moved file) and is named in the joined error.
func (m *Manager) ReopenAll() error {
	var errs []error
	for _, lf := range m.open() {
		if err := lf.reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Truncate empties the file at path, for `flush`, whether or not it is open; a missing file is
// fine. Writers keep writing to it without a reopen. Rotated files are left alone; see
// RemoveRotated.
func (m *Manager) Truncate(path string) error {
	if path == NullPath || path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("logs: truncate %s: %w", path, err)
	}
	m.mu.Lock()
	lf := m.files[abs]
	m.mu.Unlock()
	if lf != nil {
		return lf.truncate()
	}
	return truncatePath(abs)
}

// RemoveRotated deletes the rotated files of path (path.1, path.2, …), for a `flush` that
// should free the disk space too. It holds the file's lock when the file is open, so it cannot
// race with a rotation.
func (m *Manager) RemoveRotated(path string) error {
	if path == NullPath || path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("logs: remove rotated files of %s: %w", path, err)
	}
	m.mu.Lock()
	lf := m.files[abs]
	m.mu.Unlock()
	if lf != nil {
		lf.mu.Lock()
		defer lf.mu.Unlock()
	}
	names, err := Rotated(abs)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range names {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("logs: remove %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Rotated lists the rotated files of path (path.<n> for any n ≥ 1), newest (path.1) first. It
// lets `corral logs --lines` reach back past a rotation that just happened.
func Rotated(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs: list rotated files of %s: %w", path, err)
	}
	type rotated struct {
		n    int
		name string
	}
	var found []rotated
	for _, e := range ents {
		suffix, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 1 || strconv.Itoa(n) != suffix {
			continue
		}
		found = append(found, rotated{n, filepath.Join(dir, e.Name())})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	names := make([]string, len(found))
	for i, r := range found {
		names[i] = r.name
	}
	return names, nil
}
