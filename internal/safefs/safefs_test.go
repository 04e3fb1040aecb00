package safefs

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// plant makes link point at target, owned by nobody when owner is set (as root).
func plant(t *testing.T, target, link string, byNobody bool) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if byNobody {
		if err := os.Lchown(link, testutil.Nobody, testutil.Nobody); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRefusesSymlink: Open never follows a symbolic link, whoever made it, and the file it
// points to is left alone; a dangling one does not create its target either.
func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	write(t, victim, "precious\n")
	link := filepath.Join(dir, "corral.pid")
	plant(t, victim, link, false)
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_CREATE | os.O_TRUNC} {
		f, err := Open(link, flag, 0o600)
		if err == nil {
			f.Close()
			t.Fatalf("Open(flag %#x) followed the link", flag)
		}
		testutil.WantError(t, err, ErrUnsafe, link, "symbolic link", victim)
	}
	if got := read(t, victim); got != "precious\n" {
		t.Errorf("victim = %q", got)
	}

	dangling := filepath.Join(dir, "dangling")
	plant(t, filepath.Join(dir, "created-through-link"), dangling, false)
	if _, err := Open(dangling, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		t.Fatal("Open created a file through a dangling link")
	}
	if _, err := os.Lstat(filepath.Join(dir, "created-through-link")); !os.IsNotExist(err) {
		t.Errorf("the link's target was created (%v)", err)
	}
}

// TestOpenRefusesHardLink: a regular file with another name is not written to (it could be a
// hard link to any file on the filesystem); reading it is fine.
func TestOpenRefusesHardLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	write(t, victim, "precious\n")
	path := filepath.Join(dir, "app-out.log")
	if err := os.Link(victim, path); err != nil {
		t.Fatal(err)
	}
	for _, open := range []func(string, int, os.FileMode) (*os.File, error){Open, OpenNamed} {
		if _, err := open(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			t.Fatal("opened a hard-linked file for writing")
		} else {
			testutil.WantError(t, err, ErrUnsafe, path, "2 hard links")
		}
		f, err := open(path, os.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("reading a hard-linked file: %v", err)
		}
		f.Close()
	}
	if err := WriteFile(path, []byte("123\n"), 0o600); err == nil {
		t.Fatal("WriteFile wrote through a hard link")
	}
	if got := read(t, victim); got != "precious\n" {
		t.Errorf("victim = %q", got)
	}
}

// TestOpenNamedFollowsOwnLink: a link this user made, in a directory only they can change, is
// theirs to follow (out_file: '/dev/stdout' is such a link, root's).
func TestOpenNamedFollowsOwnLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.log")
	link := filepath.Join(dir, "out.log")
	plant(t, target, link, false)
	f, err := OpenNamed(link, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("line\n")
	f.Close()
	if got := read(t, target); got != "line\n" {
		t.Errorf("target = %q", got)
	}
	if f, err := OpenNamed("/dev/stdout", os.O_WRONLY|os.O_APPEND, 0); err != nil {
		t.Errorf("/dev/stdout: %v", err)
	} else {
		f.Close()
	}
}

// TestOpenNamedRefusesPlantedLink: a link owned by another user is not followed, and what it
// points to is untouched.
func TestOpenNamedRefusesPlantedLink(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "shadow")
	write(t, victim, "root:secret\n")
	link := filepath.Join(dir, "app-out.log")
	testutil.PlantLink(t, victim, link)
	f, err := OpenNamed(link, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err == nil {
		f.Close()
		t.Fatal("OpenNamed followed a link planted by nobody")
	}
	testutil.WantError(t, err, ErrUnsafe, link, victim, "nobody (uid 65534)", "remove it")
	if err := TrustedLink(link); err == nil {
		t.Error("TrustedLink trusts a link owned by nobody")
	}
	if got := read(t, victim); got != "root:secret\n" {
		t.Errorf("victim = %q", got)
	}
}

// TestOpenNamedRefusesLinkOthersCanReplace: even this user's own link is not followed in a
// directory others can write to without the sticky bit (they could swap it); with the sticky
// bit (as /tmp) only its owner can, so it is followed.
func TestOpenNamedRefusesLinkOthersCanReplace(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	write(t, victim, "precious\n")
	link := filepath.Join(open, "out.log")
	plant(t, victim, link, false)
	_, err := OpenNamed(link, os.O_WRONLY|os.O_APPEND, 0)
	testutil.WantError(t, err, ErrUnsafe, link, "writable by others", "sticky")
	if got := read(t, victim); got != "precious\n" {
		t.Errorf("victim = %q", got)
	}

	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	f, err := OpenNamed(link, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("own link in a sticky directory: %v", err)
	}
	f.Close()
}

// TestWriteFile: creates, replaces the content, never through a symbolic link.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.pid")
	if err := WriteFile(path, []byte("123456\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("7\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "7\n" {
		t.Errorf("content %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm()&^0o640 != 0 {
		t.Errorf("mode %v", fi.Mode())
	}

	victim := filepath.Join(dir, "victim")
	write(t, victim, "precious\n")
	link := filepath.Join(dir, "b.pid")
	plant(t, victim, link, false)
	testutil.WantError(t, WriteFile(link, []byte("1\n"), 0o640), ErrUnsafe, link, "symbolic link")
	if got := read(t, victim); got != "precious\n" {
		t.Errorf("victim = %q", got)
	}
}

// TestChmod: changes a socket's mode, refuses a symbolic link and leaves its target alone.
func TestChmod(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(sock); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", fi.Mode())
	}

	victim := filepath.Join(dir, "victim")
	write(t, victim, "x")
	if err := os.Chmod(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "corral.sock")
	plant(t, victim, link, false)
	testutil.WantError(t, Chmod(link, 0o600), ErrUnsafe, link, "symbolic link")
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Errorf("victim's mode changed to %v", fi.Mode())
	}
}

// TestDirProblem covers the rule for directories: owner, others' and group's write, sticky.
func TestDirProblem(t *testing.T) {
	me, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	cases := []struct {
		uid, gid uint32
		mode     os.FileMode
		want     string // "" for no problem
	}{
		{me, gid, 0o755, ""},
		{0, 0, 0o755, ""},
		{me, gid, 0o775, ""}, // the user's own group
		{0, 0, 0o777 | os.ModeSticky, ""},
		{me, gid + 1, 0o775, "writable by group"},
		{me, gid, 0o757, "writable by others"},
		{me, gid, 0o777, "writable by others"},
	}
	if me != 0 {
		cases = append(cases, struct {
			uid, gid uint32
			mode     os.FileMode
			want     string
		}{me + 1, gid, 0o755, "is owned by"})
	} else {
		cases = append(cases, struct {
			uid, gid uint32
			mode     os.FileMode
			want     string
		}{testutil.Nobody, gid, 0o755, "is owned by nobody (uid 65534)"})
	}
	for _, c := range cases {
		got := DirProblem(c.uid, c.gid, c.mode)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("DirProblem(%d, %d, %v) = %q, want %q", c.uid, c.gid, c.mode, got, c.want)
		}
	}
}
