// Package persist writes corral's state files (the saved process list and the like) so that
// they are never half-written.
//
// PM2's best-known persistence failure is a dump.pm2 found empty or truncated after a reboot
// (PM2 issues #2653, #2827, #1035, #1849): a crash or power cut during a plain write leaves a
// partial file, and an empty list written at shutdown replaces a good one. Here every write
// goes to a temporary file that is synced and then renamed over the target, the previous
// version is kept as path+".bak" without ever being absent, and loading falls back to the
// backup when the main file is missing, empty or invalid. A state file is never read through
// a symbolic link, nor when someone else owns it or could have written it (see load).
//
// Writers of one path should be serialized by the caller (the daemon owns its state files):
// concurrent SaveWithBackup calls never corrupt a file and the last rename wins, but which
// earlier version ends up in the backup is then unspecified.
package persist

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/safefs"
)

// BackupSuffix is appended to a path to name its backup.
const BackupSuffix = ".bak"

// ErrEmpty reports a state file of zero bytes: what a crash during a non-atomic write, or a
// writer that saved nothing, leaves behind. It is never a valid version.
var ErrEmpty = errors.New("file is empty")

// staleTempAge is how old a leftover temporary file must be before SaveWithBackup removes
// it. A save takes milliseconds; the margin keeps a slow concurrent writer's file safe.
const staleTempAge = 10 * time.Minute

// tempPattern names the temporary files of path, hidden and recognisable: ".dump.json.tmp-*".
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// WriteFileAtomic writes data to a temporary file in path's directory, fsyncs it, renames it
// over path and fsyncs the directory, so that path holds either its old content or all of
// data, also after a crash. The file ends with exactly mode's permission bits, whatever the
// umask. If path is a symbolic link, the link itself is replaced by a regular file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := writeFileAtomic(path, data, mode); err != nil {
		return fmt.Errorf("persist: write %s: %w", path, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := safefs.WriteTemp(dir, tempPattern(path), mode.Perm(), data)
	defer func() {
		if err != nil && tmp != "" {
			os.Remove(tmp)
		}
	}()
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return safefs.SyncDir(dir)
}

// SaveWithBackup keeps the current file (if any) as path+".bak" and then writes data
// atomically. At every instant at least one of path and path.bak holds a complete version,
// earlier or new:
//
//  1. path is hard-linked to a temporary name and that name renamed over path.bak: path never
//     disappears and path.bak switches atomically from the older version to the current one;
//  2. data is written with WriteFileAtomic.
//
// A current file that is empty is not kept as the backup (the older backup stays): an empty
// file is never a good version, and rotating it would push out the last good one. On
// filesystems without hard links, step 1 renames path to path.bak instead; path is then
// briefly absent, but the backup is complete and LoadWithFallback reads it.
//
// Temporary files left by a crash more than ten minutes ago are removed on the way.
func SaveWithBackup(path string, data []byte, mode os.FileMode) error {
	removeStaleTemps(path, time.Now().Add(-staleTempAge))
	if err := rotate(path, mode); err != nil {
		return fmt.Errorf("persist: save %s: keep backup: %w", path, err)
	}
	return WriteFileAtomic(path, data, mode)
}

func rotate(path string, mode os.FileMode) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() == 0 {
		return nil
	}
	tmp, err := linkTemp(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed meanwhile: nothing to keep
	}
	if err != nil {
		if !linkUnsupported(err) {
			return err
		}
		return os.Rename(path, path+BackupSuffix)
	}
	// path and tmp share an inode, so this also tightens path, which is replaced next
	// anyway; it keeps a backup written by an older, laxer version from staying readable.
	// Through a descriptor opened without following a link: had path become a symbolic link
	// since the Lstat, tmp is that link, and its target is not ours to change.
	if fi.Mode().Perm() != mode.Perm() {
		if err := safefs.Chmod(tmp, mode.Perm()); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	err = os.Rename(tmp, path+BackupSuffix)
	// rename(2) does nothing, and succeeds, when both names are links to one file: the
	// backup is already the current version (a concurrent save, or a save that failed after
	// this step). tmp then still exists; otherwise this removal fails harmlessly.
	os.Remove(tmp)
	return err
}

// linkTemp hard-links path to a new unique temporary name in its directory.
func linkTemp(path string) (string, error) {
	prefix := filepath.Join(filepath.Dir(path), strings.TrimSuffix(tempPattern(path), "*"))
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		tmp := prefix + hex.EncodeToString(b[:])
		err := os.Link(path, tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return tmp, err
	}
	return "", fmt.Errorf("link %s: no free temporary name", path)
}

// linkUnsupported reports whether err says the filesystem cannot hard-link (vfat, some FUSE
// and network filesystems) rather than that this link failed.
func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EMLINK)
}

// removeStaleTemps removes path's temporary files last changed before cutoff: leftovers of a
// crash between creating and renaming one. Errors are ignored; the files are harmless,
// since nothing reads them.
func removeStaleTemps(path string, cutoff time.Time) {
	dir := filepath.Dir(path)
	prefix := strings.TrimSuffix(tempPattern(path), "*")
	entries, _ := os.ReadDir(dir) // not Glob: the file name may contain pattern characters
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && changeTime(fi).Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// MaxLoadSize bounds what LoadWithFallback reads: a saved process list of a thousand apps
// with large environments is a few MB, and a file much larger than that was not written by
// corral (reading it whole would take the daemon's memory with it).
const MaxLoadSize = 64 << 20

// LoadWithFallback reads path; if it is missing, empty or fails valid, it reads
// path+".bak". fromBackup reports which one was used. valid may be nil to accept any
// non-empty content. Temporary files are never read.
//
// If both are unusable the error is a *LoadError naming both files and why each failed. It
// matches os.ErrNotExist (errors.Is) only when neither file exists, so that a caller can
// tell "nothing saved yet" from "saved state is damaged": the first may start empty, the
// second should not silently save over the damage.
//
// LoadWithFallback does not repair path from the backup; the next save does.
func LoadWithFallback(path string, valid func([]byte) error) (data []byte, fromBackup bool, err error) {
	data, mainErr := load(path, valid)
	if mainErr == nil {
		return data, false, nil
	}
	bak := path + BackupSuffix
	data, bakErr := load(bak, valid)
	if bakErr == nil {
		return data, true, nil
	}
	return nil, false, &LoadError{Path: path, Main: mainErr, Backup: bakErr}
}

// load reads path without following a symbolic link, and only if it is a regular file that
// this user owns and no one else can write: the saved list says what the daemon runs, so a
// file someone else could have written (or a link to one) must never be taken for it.
func load(path string, valid func([]byte) error) ([]byte, error) {
	f, err := safefs.Open(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err // *fs.PathError or *safefs.Error, which name the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch safefs.CheckOwn(fi, 0o022) {
	case safefs.NotRegular:
		return nil, &safefs.Error{Path: path, Msg: fmt.Sprintf("%s is not a regular file (%s)", path, fi.Mode().Type())}
	case safefs.NotMine:
		return nil, &safefs.Error{Path: path, Msg: fmt.Sprintf("refusing to load %s: it is owned by %s, not by %s who runs corral, so someone else may have written it; move it away",
			path, safefs.Who(safefs.Owner(fi)), safefs.Me())}
	case safefs.OpenToOthers:
		return nil, &safefs.Error{Path: path, Msg: fmt.Sprintf("refusing to load %s: it has mode %04o, so others may have written it; check it, then: chmod 600 %s",
			path, fi.Mode().Perm(), path)}
	}
	if fi.Size() > MaxLoadSize {
		return nil, fmt.Errorf("%s is %d MiB, over the %d MiB a saved state may have: it is not one corral wrote; move it away", path, fi.Size()>>20, MaxLoadSize>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxLoadSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxLoadSize {
		return nil, fmt.Errorf("%s grew over %d MiB while it was read", path, MaxLoadSize>>20)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	if valid != nil {
		if err := valid(data); err != nil {
			return nil, fmt.Errorf("%s: invalid: %w", path, err)
		}
	}
	return data, nil
}

// LoadError is returned by LoadWithFallback when neither path nor its backup is usable.
type LoadError struct {
	Path   string // the main file; the backup is Path+".bak"
	Main   error  // why Path was not used
	Backup error  // why the backup was not used
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("persist: load %s: no usable version: %v; %v", e.Path, e.Main, e.Backup)
}

// Unwrap gives errors.Is and errors.As access to the reasons, leaving out a missing file
// beside a damaged one: "not exist" then would hide the damage.
func (e *LoadError) Unwrap() []error {
	mainMissing := errors.Is(e.Main, fs.ErrNotExist)
	bakMissing := errors.Is(e.Backup, fs.ErrNotExist)
	switch {
	case mainMissing && !bakMissing:
		return []error{e.Backup}
	case bakMissing && !mainMissing:
		return []error{e.Main}
	}
	return []error{e.Main, e.Backup}
}
