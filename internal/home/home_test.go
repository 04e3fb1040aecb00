package home

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"

	"github.com/corral-pm/corral/internal/safefs"
)

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureCreatesPrivateHome(t *testing.T) {
	p := At(filepath.Join(t.TempDir(), "a", "home"))
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{p.Home: 0o700, p.LogDir: 0o750, p.PidDir: 0o750, p.NodeDir: 0o700, p.NotifyDir: 0o700} {
		if got := perm(t, path); got&^want != 0 || got&0o700 != 0o700 {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	if err := p.Ensure(); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if err := p.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestEnsureKeepsOlderHome: a home made by an earlier corral (subdirectories 0750, node/ 0755,
// the home itself perhaps readable by others) keeps working; what others could read is
// tightened.
func TestEnsureKeepsOlderHome(t *testing.T) {
	p := At(filepath.Join(t.TempDir(), "home"))
	mkdir(t, p.Home, 0o755)
	mkdir(t, p.LogDir, 0o750)
	mkdir(t, p.PidDir, 0o750)
	mkdir(t, p.NodeDir, 0o755)
	if err := os.WriteFile(filepath.Join(p.LogDir, "web-out.log"), []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, p.Home); got != 0o700 {
		t.Errorf("home mode %04o, want it tightened to 0700", got)
	}
	if got := perm(t, p.NodeDir); got != 0o700 {
		t.Errorf("node/ mode %04o, want it tightened to 0700", got)
	}
	if got := perm(t, p.LogDir); got != 0o750 {
		t.Errorf("logs/ mode %04o, want it kept at 0750", got)
	}
}

// TestRefusesHomeOwnedByAnother: a home someone else made first (say under /tmp) is refused by
// Ensure (daemon, CLI starting one), Check and Resolve (any CLI command), with a message that
// names the path, its owner and what to do; nothing is created in it.
func TestRefusesHomeOwnedByAnother(t *testing.T) {
	testutil.RequireRoot(t)
	p := At(filepath.Join(t.TempDir(), "home"))
	mkdir(t, p.Home, 0o755)
	chown(t, p.Home, testutil.Nobody)
	for _, check := range []func() error{p.Ensure, p.Check} {
		testutil.WantError(t, check(), safefs.ErrUnsafe, p.Home, "owned by nobody (uid 65534)", "root (uid 0)", "chown -R root "+p.Home, "another CORRAL_HOME")
	}
	t.Setenv("CORRAL_HOME", p.Home)
	_, err := Resolve()
	testutil.WantError(t, err, safefs.ErrUnsafe, p.Home, "nobody")
	if _, err := os.Lstat(p.LogDir); !os.IsNotExist(err) {
		t.Errorf("Ensure created %s in a home it refused (%v)", p.LogDir, err)
	}
	if got := perm(t, p.Home); got != 0o755 {
		t.Errorf("the refused home's mode was changed to %04o", got)
	}
}

// TestRefusesWritableHome: a home group or others can write to is refused, and left as it is
// (someone may already have put files in it: tightening it would not take them out).
func TestRefusesWritableHome(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702} {
		p := At(filepath.Join(t.TempDir(), "home"))
		mkdir(t, p.Home, mode)
		testutil.WantError(t, p.Ensure(), safefs.ErrUnsafe, p.Home, fmt.Sprintf("mode %04o", mode), "chmod go-w "+p.Home)
		if got := perm(t, p.Home); got != mode {
			t.Errorf("mode changed to %04o", got)
		}
	}
}

// TestRefusesBadSubdirectory: each subdirectory corral uses (logs, pids, node, notify) is
// refused when it is writable by group or others, owned by another user (as root), or a
// symbolic link.
func TestRefusesBadSubdirectory(t *testing.T) {
	base := At("/x")
	for _, sub := range []string{filepath.Base(base.LogDir), filepath.Base(base.PidDir), filepath.Base(base.NodeDir), filepath.Base(base.NotifyDir)} {
		t.Run(sub+"/writable", func(t *testing.T) {
			p := At(filepath.Join(t.TempDir(), "home"))
			mkdir(t, p.Home, 0o700)
			d := filepath.Join(p.Home, sub)
			mkdir(t, d, 0o777)
			testutil.WantError(t, p.Ensure(), safefs.ErrUnsafe, d, "mode 0777", "chmod go-w "+d)
			testutil.WantError(t, p.Check(), safefs.ErrUnsafe, d)
		})
		t.Run(sub+"/foreign", func(t *testing.T) {
			testutil.RequireRoot(t)
			p := At(filepath.Join(t.TempDir(), "home"))
			mkdir(t, p.Home, 0o700)
			d := filepath.Join(p.Home, sub)
			mkdir(t, d, 0o700)
			chown(t, d, testutil.Nobody)
			testutil.WantError(t, p.Ensure(), safefs.ErrUnsafe, d, "nobody (uid 65534)")
		})
		t.Run(sub+"/symlink", func(t *testing.T) {
			p := At(filepath.Join(t.TempDir(), "home"))
			mkdir(t, p.Home, 0o700)
			elsewhere := filepath.Join(t.TempDir(), "elsewhere")
			mkdir(t, elsewhere, 0o700)
			d := filepath.Join(p.Home, sub)
			if err := os.Symlink(elsewhere, d); err != nil {
				t.Fatal(err)
			}
			testutil.WantError(t, p.Ensure(), safefs.ErrUnsafe, d, "symbolic link")
		})
	}
}

// TestRefusesParentOthersCanWrite: whoever can write to the directory above the home could
// rename the home away and put their own in its place, unless the sticky bit (/tmp) stops
// them.
func TestRefusesParentOthersCanWrite(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "shared")
	mkdir(t, parent, 0o777)
	p := At(filepath.Join(parent, "home"))
	testutil.WantError(t, p.Ensure(), safefs.ErrUnsafe, parent, p.Home, "writable by others", "sticky", "chmod")
	if _, err := os.Lstat(p.Home); !os.IsNotExist(err) {
		t.Errorf("the home was created under a parent others can write to (%v)", err)
	}
	mkdir(t, parent, 0o777|os.ModeSticky)
	if err := p.Ensure(); err != nil {
		t.Fatalf("parent with the sticky bit, as /tmp: %v", err)
	}
}

// TestRefusesParentOwnedByAnother: the owner of a directory above the home can swap it.
func TestRefusesParentOwnedByAnother(t *testing.T) {
	testutil.RequireRoot(t)
	parent := filepath.Join(t.TempDir(), "theirs")
	mkdir(t, parent, 0o755)
	chown(t, parent, testutil.Nobody)
	p := At(filepath.Join(parent, "home"))
	testutil.WantError(t, p.Ensure(), safefs.ErrUnsafe, parent, "nobody (uid 65534)")
}

// TestResolveSymlinkedHome: CORRAL_HOME may be a link this user made; the real directory is
// used. A link someone else planted (say /tmp/corral -> /etc) is not followed, and the
// directory it points to is left alone (not restricted to 0700, nothing created in it).
func TestResolveSymlinkedHome(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	mkdir(t, real, 0o700)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CORRAL_HOME", link)
	p, err := Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if p.Home != real || p.Socket != filepath.Join(real, "corral.sock") {
		t.Errorf("Resolve gave %s, want the link's target %s", p.Home, real)
	}

	// A link below a link, resolved relative to where it is.
	if err := os.Symlink("real", filepath.Join(dir, "rel")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CORRAL_HOME", filepath.Join(dir, "rel", "sub"))
	if p, err := Resolve(); err != nil || p.Home != filepath.Join(real, "sub") {
		t.Errorf("Resolve = %v, %v; want %s", p.Home, err, filepath.Join(real, "sub"))
	}
}

func TestResolveRefusesPlantedLink(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "etc")
	mkdir(t, victim, 0o755)
	link := filepath.Join(dir, "corral")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	chown(t, link, testutil.Nobody)
	t.Setenv("CORRAL_HOME", link)
	_, err := Resolve()
	testutil.WantError(t, err, safefs.ErrUnsafe, link, victim, "nobody (uid 65534)")
	if got := perm(t, victim); got != 0o755 {
		t.Errorf("the link's target changed mode to %04o", got)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("files were created in the link's target: %v", ents)
	}
}
