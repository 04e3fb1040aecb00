package persist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"

	"github.com/corral-pm/corral/internal/safefs"
)

// TestLoadRefusesLink: the saved list says what the daemon runs: a symbolic link at dump.json
// (or its backup) is not followed, whoever made it, so a list someone else wrote is never
// loaded through one.
func TestLoadRefusesLink(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(t.TempDir(), "evil.json")
	if err := os.WriteFile(evil, []byte(`{"apps":"someone else's"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dump.json")
	if err := os.Symlink(evil, path); err != nil {
		t.Fatal(err)
	}
	data, _, err := LoadWithFallback(path, validJSON)
	if err == nil {
		t.Fatalf("loaded %q through a symbolic link", data)
	}
	if !errors.Is(err, safefs.ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("err = %v, want a refusal of the link", err)
	}

	// The good backup is used instead; a linked backup is refused as well.
	if err := os.WriteFile(path+BackupSuffix, []byte(`{"good":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	data, fromBackup, err := LoadWithFallback(path, validJSON)
	if err != nil || !fromBackup || string(data) != `{"good":true}` {
		t.Errorf("LoadWithFallback = %q, %v, %v; want the backup", data, fromBackup, err)
	}
	os.Remove(path + BackupSuffix)
	if err := os.Symlink(evil, path+BackupSuffix); err != nil {
		t.Fatal(err)
	}
	if data, _, err := LoadWithFallback(path, validJSON); err == nil {
		t.Errorf("loaded %q through a linked backup", data)
	}
}

// TestLoadRefusesFileOthersCouldWrite: a saved list others can write to, or (as root) one
// owned by another user, is not loaded.
func TestLoadRefusesFileOthersCouldWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.json")
	if err := os.WriteFile(path, []byte(`{"v":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadWithFallback(path, validJSON)
	if !errors.Is(err, safefs.ErrUnsafe) || !strings.Contains(err.Error(), "mode 0666") || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("err = %v, want a refusal naming the mode and the fix", err)
	}

	testutil.RequireRoot(t)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, testutil.Nobody, testutil.Nobody); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadWithFallback(path, validJSON)
	if !errors.Is(err, safefs.ErrUnsafe) || !strings.Contains(err.Error(), "nobody (uid 65534)") {
		t.Errorf("err = %v, want a refusal naming the owner", err)
	}
}

// TestSaveDoesNotWriteThroughLink: saving over a linked dump.json never writes to, nor changes
// the mode of, what the link points to.
func TestSaveDoesNotWriteThroughLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dump.json")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	_ = SaveWithBackup(path, []byte(`{"v":2}`), 0o600)
	if err := WriteFileAtomic(path, []byte(`{"v":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, victim); got != "precious" {
		t.Errorf("victim = %q", got)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Errorf("victim's mode changed to %v", fi.Mode())
	}
	if fi, _ := os.Lstat(path); !fi.Mode().IsRegular() {
		t.Errorf("%s is %v, want the link replaced by a regular file", path, fi.Mode())
	}
}
