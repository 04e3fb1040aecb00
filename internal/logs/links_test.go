package logs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"

	"github.com/corral-pm/corral/internal/safefs"
)

// victim is a file the daemon (root) can write and must not: /etc/shadow in miniature.
func victim(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shadow")
	writeFile(t, path, "root:secret\n")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func untouched(t *testing.T, path string) {
	t.Helper()
	if got := readFile(t, path); got != "root:secret\n" {
		t.Errorf("the link's target was changed: %q", got)
	}
}

// TestPlantedLinkNotFollowed: a link another user planted at logs/<app>-out.log is not
// followed by Open (the app's output does not go to its target), Truncate (flush) nor Tail.
func TestPlantedLinkNotFollowed(t *testing.T) {
	testutil.RequireRoot(t)
	shadow := victim(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "web-out.log")
	testutil.PlantLink(t, shadow, path)
	m := NewManager()

	f, err := m.Open(path, FileOptions{})
	if err == nil {
		f.WriteLine([]byte("attacker-chosen line"))
		f.Close()
		t.Fatal("Open followed a link planted by nobody")
	}
	testutil.WantError(t, err, safefs.ErrUnsafe, path, shadow, "nobody (uid 65534)")
	untouched(t, shadow)

	if err := m.Truncate(path); err == nil {
		t.Error("Truncate through a planted link succeeded")
	}
	untouched(t, shadow)

	if _, err := Tail(path, 10); err == nil {
		t.Error("Tail read through a planted link")
	}
}

// TestPlantedLinkWhileOpen: the link appears while the file is open (it was moved away, as by
// logrotate, and a link put in its place). Flush, reopen (reloadLogs) and a rotation do not
// follow it.
func TestPlantedLinkWhileOpen(t *testing.T) {
	testutil.RequireRoot(t)
	shadow := victim(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "web-out.log")
	m := NewManager()
	f, err := m.Open(path, FileOptions{MaxSize: 40, Retain: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteLine([]byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	testutil.PlantLink(t, shadow, path)

	if err := m.Truncate(path); err == nil {
		t.Error("flush of an open file truncated through a planted link")
	}
	untouched(t, shadow)
	if err := m.ReopenAll(); err == nil {
		t.Error("reopen followed a planted link")
	}
	untouched(t, shadow)

	// Rotation renames the link away (rename never follows) and creates a real file.
	for range 5 {
		if err := f.WriteLine([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	untouched(t, shadow)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("after rotation %s is %v (%v), want a regular file", path, fi, err)
	}
}

// TestOwnLinkInOpenDirectory: without root too: this user's own link is not followed where
// others could have swapped it (a directory writable by all, no sticky bit).
func TestOwnLinkInOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	writeFile(t, target, "keep\n")
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(open, "a.log")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	m := NewManager()
	if _, err := m.Open(path, FileOptions{}); err == nil {
		t.Fatal("Open followed a link in a directory anyone can write to")
	}
	if err := m.Truncate(path); err == nil {
		t.Error("Truncate followed a link in a directory anyone can write to")
	}
	if got := readFile(t, target); got != "keep\n" {
		t.Errorf("target = %q", got)
	}
}

// TestOwnLinkFollowed: a link the user made, where only they can change it, is the user's
// naming of its target (out_file: '/dev/stdout' is one); truncating it empties the target.
func TestOwnLinkFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.log")
	path := filepath.Join(dir, "a.log")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	m := NewManager()
	f, err := m.Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteLine([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "hello\n" {
		t.Errorf("target = %q", got)
	}
	if err := m.Truncate(path); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "" {
		t.Errorf("target after truncate = %q", got)
	}
	if f, err := m.Open("/dev/stdout", FileOptions{}); err != nil {
		t.Errorf("/dev/stdout: %v", err)
	} else {
		f.Close()
	}
}
