package safefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"
)

const secret = "0123456789abcdef" // what the tests' secrets hold: 16 bytes

// wantProblem fails t unless err is a *PrivateError with problem p.
func wantProblem(t *testing.T, err error, p Problem) *PrivateError {
	t.Helper()
	var pe *PrivateError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *PrivateError", err, err)
	}
	if pe.Problem != p {
		t.Fatalf("problem = %d (%v), want %d", pe.Problem, err, p)
	}
	return pe
}

func chown(t *testing.T, path string) {
	t.Helper()
	if err := os.Lchown(path, testutil.Nobody, testutil.Nobody); err != nil {
		t.Fatal(err)
	}
}

// TestCheckOwn: the file must be regular, the effective user's, and have none of deny's bits;
// deny is the caller's (a secret denies group and others everything, a state file writing).
func TestCheckOwn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		make   func(t *testing.T, path string)
		deny   fs.FileMode
		want   Problem
		asRoot bool // needs root, to give the file to nobody
	}{
		{"private", func(t *testing.T, p string) { write(t, p, secret) }, 0o077, 0, false},
		{"read-only", func(t *testing.T, p string) { write(t, p, secret); os.Chmod(p, 0o400) }, 0o077, 0, false},
		{"readable by others", func(t *testing.T, p string) { write(t, p, secret); os.Chmod(p, 0o644) }, 0o077, OpenToOthers, false},
		{"readable by others, writable by none", func(t *testing.T, p string) { write(t, p, secret); os.Chmod(p, 0o644) }, 0o022, 0, false},
		{"writable by group", func(t *testing.T, p string) { write(t, p, secret); os.Chmod(p, 0o620) }, 0o022, OpenToOthers, false},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, 0o077, NotRegular, false},
		{"fifo", func(t *testing.T, p string) { syscall.Mkfifo(p, 0o600) }, 0o077, NotRegular, false},
		{"someone else's", func(t *testing.T, p string) { write(t, p, secret); chown(t, p) }, 0o077, NotMine, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.asRoot {
				testutil.RequireRoot(t)
			}
			path := filepath.Join(t.TempDir(), "f")
			tc.make(t, path)
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := CheckOwn(fi, tc.deny); got != tc.want {
				t.Errorf("CheckOwn = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestReadPrivate: a secret is read only through its own name, only if CheckOwn passes with
// group and others denied everything, and only if it is exactly the size asked for, when
// checked and when read.
func TestReadPrivate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		make   func(t *testing.T, path string)
		want   Problem
		size   int64 // WrongSize: the size the error reports
		asRoot bool
	}{
		{"good", func(t *testing.T, p string) { write(t, p, secret) }, 0, 0, false},
		{"symbolic link to a good one", func(t *testing.T, p string) {
			write(t, p+".real", secret)
			plant(t, p+".real", p, false)
		}, 0, 0, false},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, NotRegular, 0, false},
		{"fifo, read without blocking", func(t *testing.T, p string) { syscall.Mkfifo(p, 0o600) }, NotRegular, 0, false},
		{"mode 0644", func(t *testing.T, p string) { write(t, p, secret); os.Chmod(p, 0o644) }, OpenToOthers, 0, false},
		{"mode 0640", func(t *testing.T, p string) { write(t, p, secret); os.Chmod(p, 0o640) }, OpenToOthers, 0, false},
		{"short", func(t *testing.T, p string) { write(t, p, secret[1:]) }, WrongSize, 15, false},
		{"long", func(t *testing.T, p string) { write(t, p, secret+"\n") }, WrongSize, 17, false},
		{"empty", func(t *testing.T, p string) { write(t, p, "") }, WrongSize, 0, false},
		{"someone else's", func(t *testing.T, p string) { write(t, p, secret); chown(t, p) }, NotMine, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.asRoot {
				testutil.RequireRoot(t)
			}
			path := filepath.Join(t.TempDir(), "key")
			tc.make(t, path)
			got, err := ReadPrivate(path, len(secret))
			switch {
			case tc.name == "symbolic link to a good one":
				testutil.WantError(t, err, ErrUnsafe, path, "symbolic link")
			case tc.want == 0:
				if err != nil || string(got) != secret {
					t.Fatalf("ReadPrivate = %q, %v; want %q", got, err, secret)
				}
			default:
				pe := wantProblem(t, err, tc.want)
				if pe.Path != path || pe.Info == nil || pe.Size != tc.size {
					t.Errorf("error = %+v, want path %s, the file's info and size %d", pe, path, tc.size)
				}
			}
		})
	}
}

// TestReadPrivateMissing: a missing secret is Open's error, as it is, for the caller to create.
func TestReadPrivateMissing(t *testing.T) {
	_, err := ReadPrivate(filepath.Join(t.TempDir(), "key"), len(secret))
	var pe *PrivateError
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want Open's fs.ErrNotExist", err, err)
	}
}

// TestReadPrivateGrew: a file that holds more than fstat said when it was checked is caught by
// the spare byte. /proc/self/environ is such a file without a race to win: this user's, mode
// 0400, size 0, and never empty.
func TestReadPrivateGrew(t *testing.T) {
	_, err := ReadPrivate("/proc/self/environ", 0)
	if pe := wantProblem(t, err, WrongSize); pe.Size != 1 {
		t.Errorf("size = %d, want 1 (the spare byte)", pe.Size)
	}
}

// TestCreatePrivate: the secret appears whole with mode 0600, no temporary
// file is left behind, and nothing already at the path is replaced or followed, which is
// how two processes that create the same secret at once agree on one.
func TestCreatePrivate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, path string)
		want  Problem
		isErr error // what the error matches, if any
	}{
		{"new", func(t *testing.T, p string) {}, 0, nil},
		{"made meanwhile", func(t *testing.T, p string) { write(t, p, "the winner's") }, LinkFailed, fs.ErrExist},
		{"dangling symbolic link", func(t *testing.T, p string) { plant(t, p+".victim", p, false) }, LinkFailed, fs.ErrExist},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, LinkFailed, fs.ErrExist},
		{"no directory", func(t *testing.T, p string) { os.Remove(filepath.Dir(p)) }, TempFailed, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key")
			tc.make(t, path)
			before, _ := os.ReadDir(dir)
			err := CreatePrivate(path, []byte(secret))
			if tc.want == 0 {
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Lstat(path)
				if err != nil || fi.Mode() != 0o600 || read(t, path) != secret {
					t.Fatalf("made %v (%v), %q; want a regular file, mode 0600, holding %q", fi.Mode(), err, read(t, path), secret)
				}
			} else {
				wantProblem(t, err, tc.want)
				if !errors.Is(err, tc.isErr) {
					t.Errorf("err = %v, want it to match %v", err, tc.isErr)
				}
			}
			want := len(before)
			if tc.want == 0 {
				want++ // the secret
			}
			if after, _ := os.ReadDir(dir); len(after) != want {
				t.Errorf("%d entries in the directory, want %d: a temporary file was left", len(after), want)
			}
			if tc.name == "made meanwhile" && read(t, path) != "the winner's" {
				t.Errorf("the file made meanwhile was replaced: %q", read(t, path))
			}
			if _, err := os.Lstat(path + ".victim"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the link's target was made: %v", err)
			}
		})
	}
}

// WriteTemp's file has exactly the asked mode whatever the umask, holds the data, and is named
// even when a later step fails, so that the caller can remove it; a directory that does not
// exist gives no name.
func TestWriteTemp(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tmp, err := WriteTemp(dir, ".state.tmp-*", 0o644, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(tmp) != dir || !strings.HasPrefix(filepath.Base(tmp), ".state.tmp-") {
		t.Errorf("temporary file %s, want .state.tmp-* in %s", tmp, dir)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %04o, want 0644 under umask 077", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(tmp); string(b) != "data" {
		t.Errorf("content %q", b)
	}
	if tmp, err := WriteTemp(filepath.Join(dir, "missing"), "x-*", 0o600, nil); err == nil || tmp != "" {
		t.Errorf("in a missing directory: %q, %v; want no name and an error", tmp, err)
	}
}
