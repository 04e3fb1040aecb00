package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func readString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func validJSON(data []byte) error {
	if !json.Valid(data) {
		return errors.New("not valid JSON")
	}
	return nil
}

// dirNames lists dir, to check that no temporary file is left behind.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomic(t *testing.T) {
	old := syscall.Umask(0o077) // the mode must not depend on the umask
	defer syscall.Umask(old)

	for _, mode := range []os.FileMode{0o600, 0o644, 0o640} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "dump.json")
			for _, content := range []string{`{"v":1}`, `{"v":2}`, ""} {
				if err := WriteFileAtomic(path, []byte(content), mode); err != nil {
					t.Fatal(err)
				}
				if got := readString(t, path); got != content {
					t.Errorf("content %q, want %q", got, content)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != mode {
					t.Errorf("mode %v, want %v", fi.Mode(), mode)
				}
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Errorf("directory holds %q, want only dump.json", names)
			}
		})
	}
}

func TestWriteFileAtomicTightensExistingMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestWriteFileAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	err := WriteFileAtomic(filepath.Join(dir, "missing", "dump.json"), []byte("x"), 0o600)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing/dump.json") {
		t.Errorf("write into a missing directory: %v", err)
	}
	// The target is a directory: the rename fails and the temporary file is removed.
	target := filepath.Join(dir, "adir")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(target, []byte("x"), 0o600); err == nil {
		t.Error("WriteFileAtomic over a non-empty directory succeeded")
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("temporary file left after a failed write: %q", names)
	}
}

func TestSaveWithBackupRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump.json")
	bak := path + BackupSuffix

	for i, tc := range []struct{ save, wantMain, wantBak string }{
		{`{"v":1}`, `{"v":1}`, ""}, // no backup yet
		{`{"v":2}`, `{"v":2}`, `{"v":1}`},
		{`{"v":3}`, `{"v":3}`, `{"v":2}`},
	} {
		if err := SaveWithBackup(path, []byte(tc.save), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, path); got != tc.wantMain {
			t.Errorf("save %d: main %q, want %q", i+1, got, tc.wantMain)
		}
		if tc.wantBak == "" {
			if _, err := os.Stat(bak); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("save %d: backup exists after the first save (%v)", i+1, err)
			}
			continue
		}
		if got := readString(t, bak); got != tc.wantBak {
			t.Errorf("save %d: backup %q, want %q", i+1, got, tc.wantBak)
		}
	}
	for _, p := range []string{path, bak} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("directory holds %q, want dump.json and its backup", names)
	}
}

// A backup left by an older, laxer writer (0644) is tightened when rotated.
func TestSaveWithBackupTightensBackupMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(path, []byte(`{"v":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveWithBackup(path, []byte(`{"v":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path + BackupSuffix); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
}

// PM2's "empty dump after reboot": an empty current file must not push out the good backup.
func TestSaveWithBackupSkipsEmptyCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(path+BackupSuffix, []byte(`{"good":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveWithBackup(path, []byte(`{"v":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path+BackupSuffix); got != `{"good":true}` {
		t.Errorf("backup %q, want the earlier good version", got)
	}
}

func TestSaveWithBackupRejectsNonRegular(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	err := SaveWithBackup(path, []byte("{}"), 0o600)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("SaveWithBackup over a directory: %v", err)
	}
}

func TestLoadWithFallback(t *testing.T) {
	const good, older = `{"v":2}`, `{"v":1}`
	const missing = "\x00missing"
	for _, tc := range []struct {
		name       string
		main, bak  string // missing: no such file
		want       string
		fromBackup bool
		errHas     []string // when both are unusable
		notExist   bool     // errors.Is(err, fs.ErrNotExist)
	}{
		{name: "main good", main: good, bak: older, want: good},
		{name: "main good no backup", main: good, bak: missing, want: good},
		{name: "main missing", main: missing, bak: older, want: older, fromBackup: true},
		{name: "main empty", main: "", bak: older, want: older, fromBackup: true},
		{name: "main corrupt", main: `{"v":2`, bak: older, want: older, fromBackup: true},
		{name: "both missing", main: missing, bak: missing,
			errHas: []string{"dump.json: no such file", "dump.json.bak: no such file"}, notExist: true},
		{name: "corrupt and missing", main: `{"v`, bak: missing,
			errHas: []string{"dump.json: invalid: not valid JSON", "dump.json.bak: no such file"}},
		{name: "missing and empty", main: missing, bak: "",
			errHas: []string{"dump.json: no such file", "dump.json.bak: file is empty"}},
		{name: "both corrupt", main: "x", bak: "y",
			errHas: []string{"dump.json: invalid", "dump.json.bak: invalid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "dump.json")
			for p, content := range map[string]string{path: tc.main, path + BackupSuffix: tc.bak} {
				if content != missing {
					if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			// A leftover temporary file holding valid JSON is never read.
			if err := os.WriteFile(filepath.Join(dir, ".dump.json.tmp-123"), []byte(`{"tmp":1}`), 0o600); err != nil {
				t.Fatal(err)
			}

			data, fromBackup, err := LoadWithFallback(path, validJSON)
			if tc.errHas == nil {
				if err != nil {
					t.Fatal(err)
				}
				if string(data) != tc.want || fromBackup != tc.fromBackup {
					t.Errorf("got %q, fromBackup=%v; want %q, %v", data, fromBackup, tc.want, tc.fromBackup)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadWithFallback succeeded: %q", data)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tc.notExist)
			}
			var le *LoadError
			if !errors.As(err, &le) || le.Path != path {
				t.Errorf("error is not a *LoadError for %s: %#v", path, err)
			}
		})
	}
}

func TestLoadWithFallbackNilValid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(path, []byte("anything"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, _, err := LoadWithFallback(path, nil); err != nil || string(data) != "anything" {
		t.Errorf("LoadWithFallback(nil valid) = %q, %v", data, err)
	}
}

// A crash between creating a temporary file and renaming it leaves the file behind: loads
// ignore it, a save does not disturb a recent one (it may be a concurrent writer's) and
// removes old ones.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump.json")
	if err := SaveWithBackup(path, []byte(`{"v":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-write leaves: a partial temp file, and a backup link never renamed.
	partial := filepath.Join(dir, ".dump.json.tmp-4242")
	if err := os.WriteFile(partial, []byte(`{"v":2, "trunc`), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, ".dump.json.tmp-deadbeef")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, ".other.json.tmp-1") // another file's temp is not ours to remove
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	data, fromBackup, err := LoadWithFallback(path, validJSON)
	if err != nil || string(data) != `{"v":1}` || fromBackup {
		t.Fatalf("load with leftovers: %q, %v, %v", data, fromBackup, err)
	}

	// Recent leftovers are kept by a save...
	if err := SaveWithBackup(path, []byte(`{"v":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{partial, link, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("recent temporary file removed: %v", err)
		}
	}
	// ...and removed once stale (the change time cannot be backdated, so move the cutoff).
	removeStaleTemps(path, time.Now().Add(time.Minute))
	for _, p := range []string{partial, link} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale %s not removed: %v", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file's temporary file removed: %v", err)
	}
	if got := readString(t, path); got != `{"v":2}` {
		t.Errorf("main %q after cleanup", got)
	}
	if got := readString(t, path+BackupSuffix); got != `{"v":1}` {
		t.Errorf("backup %q after cleanup", got)
	}
}

// A crash after the backup step but before the new version was written leaves the backup
// and the main file as two links to one file; rename(2) between them is a no-op, which must
// not leave the temporary link behind.
func TestSaveAfterInterruptedRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump.json")
	if err := os.WriteFile(path, []byte(`{"v":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, path+BackupSuffix); err != nil {
		t.Fatal(err)
	}
	if err := SaveWithBackup(path, []byte(`{"v":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path+BackupSuffix); got != `{"v":1}` {
		t.Errorf("backup %q", got)
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("directory holds %q, want dump.json and its backup", names)
	}
}

// Concurrent savers never leave a partial or invalid file, the main file never disappears
// once written, and the last writer's content is what remains.
func TestConcurrentSavers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump.json")
	if err := SaveWithBackup(path, []byte(`{"writer":-1,"seq":0}`), 0o600); err != nil {
		t.Fatal(err)
	}

	const writers, saves = 8, 25
	pad := strings.Repeat("x", 64<<10) // big enough that a torn write would show
	var stop atomic.Bool
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for !stop.Load() {
				for _, p := range []string{path, path + BackupSuffix} {
					data, err := os.ReadFile(p)
					if err != nil {
						if p == path || !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("read %s: %v", filepath.Base(p), err)
						}
						continue
					}
					if !json.Valid(data) {
						t.Errorf("%s is not valid JSON (%d bytes)", filepath.Base(p), len(data))
					}
				}
				if _, _, err := LoadWithFallback(path, validJSON); err != nil {
					t.Errorf("load: %v", err)
				}
			}
		})
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for s := range saves {
				content := fmt.Sprintf(`{"writer":%d,"seq":%d,"pad":%q}`, w, s, pad)
				if err := SaveWithBackup(path, []byte(content), 0o600); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()

	// Each writer saves in sequence, so the last rename of all is some writer's last save.
	var final struct{ Writer, Seq int }
	if err := json.Unmarshal([]byte(readString(t, path)), &final); err != nil || final.Seq != saves-1 {
		t.Errorf("main holds writer %d's save %d (%v), want some writer's last save", final.Writer, final.Seq, err)
	}

	// A save after all others is the unambiguous last writer.
	last := `{"final":true}`
	if err := SaveWithBackup(path, []byte(last), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path); got != last {
		t.Errorf("main holds %.40q, want the last save", got)
	}
	if data := readString(t, path+BackupSuffix); !json.Valid([]byte(data)) {
		t.Error("backup is not valid JSON")
	}
	for _, name := range dirNames(t, dir) {
		if name != "dump.json" && name != "dump.json.bak" {
			t.Errorf("leftover file %s", name)
		}
	}
}
