package home

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"
)

const preload = "// the real preload\nprocess.on('message', () => {})\n"

// logRecorder collects what a Pinned logs.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *logRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// newPinned writes a preload into a fresh home's node/ directory, as the daemon does at start.
func newPinned(t *testing.T) (*Pinned, Paths, *logRecorder) {
	t.Helper()
	p := At(filepath.Join(t.TempDir(), "home"))
	if err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	rec := &logRecorder{}
	f := NewPinned(filepath.Join(p.NodeDir, "cluster-worker-preload.js"), []byte(preload), rec.logf)
	if err := f.Write(); err != nil {
		t.Fatal(err)
	}
	return f, p, rec
}

func TestPinnedWritten(t *testing.T) {
	f, p, rec := newPinned(t)
	if got := f.Path(); got != filepath.Join(p.NodeDir, "cluster-worker-preload.js") {
		t.Fatalf("Path() = %q", got)
	}
	if got := readString(t, f.path); got != preload {
		t.Errorf("content %q", got)
	}
	if m := perm(t, f.path); m != 0o600 {
		t.Errorf("file mode %04o, want 0600", m)
	}
	if m := perm(t, p.NodeDir); m != 0o700 {
		t.Errorf("node/ mode %04o, want 0700", m)
	}
	if rec.all() != "" {
		t.Errorf("logged %q for a good file", rec.all())
	}
	var nilPinned *Pinned
	if nilPinned.Path() != "" {
		t.Error("a nil Pinned has a path")
	}
}

// TestPinnedTamperedIsReplaced: whatever was done to the file (new content, replaced by a
// symbolic link to someone else's script, another owner, writable by others, a hard link), Path
// logs it, writes the real content again, and only then returns the path: what is loaded is
// what corral wrote. A planted link's target is not touched.
func TestPinnedTamperedIsReplaced(t *testing.T) {
	evil := "require('fs').writeFileSync('/tmp/pwned', 'x')\n"
	cases := map[string]func(t *testing.T, path string){
		"content": func(t *testing.T, path string) {
			writeString(t, path, evil)
		},
		"same size": func(t *testing.T, path string) {
			writeString(t, path, strings.Repeat("x", len(preload)))
		},
		"symlink": func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "evil.js")
			writeString(t, target, evil)
			os.Remove(path)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if got := readString(t, target); got != evil {
					t.Errorf("the link's target was changed to %q", got)
				}
			})
		},
		"writable": func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
		},
		"hard link": func(t *testing.T, path string) {
			if err := os.Link(path, path+".other"); err != nil {
				t.Fatal(err)
			}
		},
		"owner": func(t *testing.T, path string) {
			testutil.RequireRoot(t)
			chown(t, path, testutil.Nobody)
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			f, _, rec := newPinned(t)
			tamper(t, f.path)
			if got := f.Path(); got != f.path {
				t.Fatalf("Path() = %q after rewriting; log:\n%s", got, rec.all())
			}
			fi, err := os.Lstat(f.path)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("%s is not a regular file after Path (%v, %v)", f.path, fi, err)
			}
			if got := readString(t, f.path); got != preload {
				t.Errorf("content after Path: %q", got)
			}
			if !strings.Contains(rec.all(), "failed its check") || !strings.Contains(rec.all(), f.path) {
				t.Errorf("log %q does not say the file failed its check", rec.all())
			}
		})
	}
}

// TestPinnedUnusable: when the file cannot be made trustworthy (its directory belongs to
// someone else, or others can write to it), Path says so in the log and returns "": the worker
// starts without it rather than with a file someone else could have changed.
func TestPinnedUnusable(t *testing.T) {
	t.Run("writable directory", func(t *testing.T) {
		f, p, rec := newPinned(t)
		if err := os.Chmod(p.NodeDir, 0o777); err != nil {
			t.Fatal(err)
		}
		if got := f.Path(); got != "" {
			t.Fatalf("Path() = %q in a directory others can write to", got)
		}
		if !strings.Contains(rec.all(), "cannot be used") || !strings.Contains(rec.all(), "others can write") {
			t.Errorf("log %q", rec.all())
		}
	})
	t.Run("foreign directory", func(t *testing.T) {
		testutil.RequireRoot(t)
		f, p, rec := newPinned(t)
		chown(t, p.NodeDir, testutil.Nobody)
		if got := f.Path(); got != "" {
			t.Fatalf("Path() = %q in a directory owned by nobody", got)
		}
		if !strings.Contains(rec.all(), "cannot be used") || !strings.Contains(rec.all(), "owned by uid 65534") {
			t.Errorf("log %q", rec.all())
		}
	})
	t.Run("directory replaced by a link", func(t *testing.T) {
		f, p, rec := newPinned(t)
		elsewhere := filepath.Join(t.TempDir(), "node")
		if err := os.Rename(p.NodeDir, elsewhere); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, p.NodeDir); err != nil {
			t.Fatal(err)
		}
		if got := f.Path(); got != "" {
			t.Fatalf("Path() = %q through a linked directory", got)
		}
		if !strings.Contains(rec.all(), "cannot be used") {
			t.Errorf("log %q", rec.all())
		}
	})
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeString(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
