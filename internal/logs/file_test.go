package logs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// tenByteLine is line i as exactly 10 bytes, so sizes are easy to reason about.
func tenByteLine(i int) string { return fmt.Sprintf("line %04d\n", i) }

func writeLines(t *testing.T, f *File, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := f.WriteLine([]byte(tenByteLine(i))); err != nil {
			t.Fatalf("write line %d: %v", i, err)
		}
	}
}

func linesRange(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(tenByteLine(i))
	}
	return b.String()
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name    string
		opt     FileOptions
		lines   int
		want    map[string]string // suffix ("" for the live file) -> content
		missing []string          // suffixes that must not exist
	}{
		{
			name:    "no rotation",
			opt:     FileOptions{},
			lines:   35,
			want:    map[string]string{"": linesRange(0, 35)},
			missing: []string{".1"},
		},
		{
			name:    "below max size",
			opt:     FileOptions{MaxSize: 100, Retain: 2},
			lines:   10, // exactly 100 bytes: full, not over
			want:    map[string]string{"": linesRange(0, 10)},
			missing: []string{".1"},
		},
		{
			name:  "retain 2",
			opt:   FileOptions{MaxSize: 100, Retain: 2},
			lines: 35,
			want: map[string]string{
				"":   linesRange(30, 35),
				".1": linesRange(20, 30),
				".2": linesRange(10, 20),
			},
			missing: []string{".3"},
		},
		{
			name:  "max size not a multiple of the line",
			opt:   FileOptions{MaxSize: 25, Retain: 3},
			lines: 7, // two lines (20 bytes) per file
			want: map[string]string{
				"":   linesRange(6, 7),
				".1": linesRange(4, 6),
				".2": linesRange(2, 4),
				".3": linesRange(0, 2),
			},
			missing: []string{".4"},
		},
		{
			name:    "retain 0 discards",
			opt:     FileOptions{MaxSize: 100, Retain: 0},
			lines:   35,
			want:    map[string]string{"": linesRange(30, 35)},
			missing: []string{".1", ".2"},
		},
	}
	for _, tt := range tests {
		for _, batch := range []bool{false, true} {
			name := tt.name + map[bool]string{false: " line by line", true: " in one batch"}[batch]
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "app-out.log")
				m := NewManager()
				f, err := m.Open(path, tt.opt)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if batch {
					if err := f.WriteLines([]byte(linesRange(0, tt.lines))); err != nil {
						t.Fatal(err)
					}
				} else {
					writeLines(t, f, 0, tt.lines)
				}
				for suffix, want := range tt.want {
					if got := readFile(t, path+suffix); got != want {
						t.Errorf("%s: got %q, want %q", suffix, got, want)
					}
				}
				for _, suffix := range tt.missing {
					mustNotExist(t, path+suffix)
				}
			})
		}
	}
}

// TestRotationOversizedLine: a line longer than MaxSize is written whole, never split.
func TestRotationOversizedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := NewManager()
	f, err := m.Open(path, FileOptions{MaxSize: 10, Retain: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	big := strings.Repeat("x", 50) + "\n"
	if err := f.WriteLine([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteLines([]byte(big + "b\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path+".2"); got != "a\n" {
		t.Errorf(".2 = %q", got)
	}
	if got := readFile(t, path+".1"); got != big {
		t.Errorf(".1 = %q, want the whole long line", got)
	}
	if got := readFile(t, path); got != "b\n" {
		t.Errorf("live = %q", got)
	}
}

// TestRotationExistingFile: a file already past MaxSize when opened rotates at the first write,
// and a smaller Retain than before prunes the extra rotated files.
func TestRotationExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	writeFile(t, path, strings.Repeat("old\n", 100))
	for i := 1; i <= 5; i++ {
		writeFile(t, fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("rotated %d\n", i))
	}
	m := NewManager()
	f, err := m.Open(path, FileOptions{MaxSize: 100, Retain: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteLine([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "new\n" {
		t.Errorf("live = %q", got)
	}
	if got := readFile(t, path+".1"); got != strings.Repeat("old\n", 100) {
		t.Errorf(".1 = %q", got)
	}
	if got := readFile(t, path+".2"); got != "rotated 1\n" {
		t.Errorf(".2 = %q", got)
	}
	for _, s := range []string{".3", ".4", ".5"} {
		mustNotExist(t, path+s)
	}
}

// TestRotationFailure: a rotation that cannot happen still writes every line to the open file
// and reports a *RotateError; once the obstacle is gone the next attempt rotates.
func TestRotationFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	// A non-empty directory where path.1 should go: renaming a file onto it fails, even as root.
	if err := os.MkdirAll(filepath.Join(path+".1", "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := NewManager()
	m.rotateRetry = 0
	f, err := m.Open(path, FileOptions{MaxSize: 20, Retain: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeLines(t, f, 0, 2) // 20 bytes: no rotation yet
	err = f.WriteLine([]byte(tenByteLine(2)))
	var re *RotateError
	if !errors.As(err, &re) || !isRotateOnly(err) {
		t.Fatalf("got %v, want only a *RotateError", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if got := readFile(t, path); got != linesRange(0, 3) {
		t.Fatalf("live = %q, want all three lines", got)
	}

	if err := os.RemoveAll(path + ".1"); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteLine([]byte(tenByteLine(3))); err != nil {
		t.Fatalf("rotation after the fix: %v", err)
	}
	if got := readFile(t, path+".1"); got != linesRange(0, 3) {
		t.Errorf(".1 = %q", got)
	}
	if got := readFile(t, path); got != linesRange(3, 4) {
		t.Errorf("live = %q", got)
	}
}

// TestRotationRetryDelay: after a failed rotation, the next writes do not retry (and report
// nothing) until the delay has passed.
func TestRotationRetryDelay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	if err := os.MkdirAll(filepath.Join(path+".1", "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := NewManager() // default delay: far longer than this test
	f, err := m.Open(path, FileOptions{MaxSize: 10, Retain: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeLines(t, f, 0, 1)
	if err := f.WriteLine([]byte(tenByteLine(1))); !isRotateOnly(err) {
		t.Fatalf("got %v, want a *RotateError", err)
	}
	os.RemoveAll(path + ".1")
	writeLines(t, f, 2, 5) // within the delay: no retry, no error
	mustNotExist(t, path+".1")
	if got := readFile(t, path); got != linesRange(0, 5) {
		t.Errorf("live = %q", got)
	}
}

// TestRetryAfterHalfDoneRotation: when rotation got as far as renaming the file but could not
// open a new one, lines keep going to the renamed file, and the retry opens the path without
// shifting the rotated files again.
func TestRetryAfterHalfDoneRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := NewManager()
	m.rotateRetry = 0
	f, err := m.Open(path, FileOptions{MaxSize: 10, Retain: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeLines(t, f, 0, 1)
	// Simulate the half-done rotation: path already moved to path.1.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 2) // rotation: nothing to move, opens path
	if got := readFile(t, path+".1"); got != linesRange(0, 1) {
		t.Errorf(".1 = %q", got)
	}
	if got := readFile(t, path); got != linesRange(1, 2) {
		t.Errorf("live = %q", got)
	}
	mustNotExist(t, path+".2")
}

// TestConcurrentWriters: several holders of one path, each from its own goroutine, with
// rotation on: every line lands exactly once, whole, in the live or a rotated file.
func TestConcurrentWriters(t *testing.T) {
	for _, opt := range []FileOptions{{}, {MaxSize: 4096, Retain: 1000}} {
		t.Run(fmt.Sprintf("max%d", opt.MaxSize), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "merged.log")
			m := NewManager()
			const writers, perWriter = 8, 2000
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					f, err := m.Open(path, opt)
					if err != nil {
						errs <- err
						return
					}
					defer f.Close()
					// Odd writers write groups of 5 lines at once, as Stream.Pump does.
					group := 1 + 4*(w%2)
					var buf []byte
					for i := range perWriter {
						// Lines of different lengths, so interleaving would show.
						buf = fmt.Appendf(buf, "w%d %05d %s\n", w, i, strings.Repeat("x", i%50))
						if (i+1)%group != 0 && i != perWriter-1 {
							continue
						}
						if err := f.WriteLines(buf); err != nil {
							errs <- err
							return
						}
						buf = buf[:0]
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}

			rotated, err := Rotated(path)
			if err != nil {
				t.Fatal(err)
			}
			if opt.MaxSize > 0 && len(rotated) == 0 {
				t.Fatal("expected rotations")
			}
			seen := make(map[string]bool)
			for _, p := range append(rotated, path) {
				content := readFile(t, p)
				if opt.MaxSize > 0 && int64(len(content)) > opt.MaxSize {
					t.Errorf("%s has %d bytes, over MaxSize", p, len(content))
				}
				for _, l := range fileLines(content) {
					var w, i int
					fmt.Sscanf(l, "w%d %5d", &w, &i)
					if l != fmt.Sprintf("w%d %05d %s", w, i, strings.Repeat("x", i%50)) {
						t.Fatalf("mangled line %q in %s", l, p)
					}
					if seen[l] {
						t.Fatalf("line %q written twice", l)
					}
					seen[l] = true
				}
			}
			if len(seen) != writers*perWriter {
				t.Fatalf("found %d lines, want %d", len(seen), writers*perWriter)
			}
		})
	}
}

func TestSharedAndRefcount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	m := NewManager()
	a, err := m.Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(mustGetwd(t), path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Open(rel, FileOptions{}) // same file by another spelling
	if err != nil {
		t.Fatal(err)
	}
	if a.lf != b.lf {
		t.Fatal("two opens of one path do not share the file")
	}
	if a.Path() != path || b.Path() != path {
		t.Errorf("paths %q %q, want %q", a.Path(), b.Path(), path)
	}
	a.Close()
	a.Close() // a second close must not drop b's reference
	if err := b.WriteLine([]byte("still open\n")); err != nil {
		t.Fatalf("write after the other holder closed: %v", err)
	}
	if err := a.WriteLine([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write through a closed handle: %v, want os.ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(m.files) != 0 {
		t.Fatalf("manager still holds %d files", len(m.files))
	}
	if err := b.WriteLine([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after the last close: %v, want os.ErrClosed", err)
	}
	// A fresh open after the last close reopens.
	c, err := m.Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.lf == a.lf {
		t.Fatal("reused a closed file")
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestOpenCreatesDirsAndMode(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		mode os.FileMode
		want os.FileMode
	}{
		{"default", 0, DefaultMode},
		{"explicit", 0o600, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name, "deep", "a.log")
			f, err := NewManager().Open(path, FileOptions{Mode: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// The umask may take bits away, never add them.
			if st.Mode().Perm()&^tt.want != 0 || st.Mode().Perm()&0o600 != 0o600 {
				t.Errorf("file mode %v, want %v", st.Mode().Perm(), tt.want)
			}
			dst, err := os.Stat(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if dst.Mode().Perm()&^dirMode != 0 || dst.Mode().Perm()&0o700 != 0o700 {
				t.Errorf("dir mode %v, want %v", dst.Mode().Perm(), dirMode)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	writeFile(t, blocker, "")
	m := NewManager()
	for _, path := range []string{"", filepath.Join(blocker, "a.log"), dir} {
		if f, err := m.Open(path, FileOptions{}); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

func TestWriteLineAddsMissingNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	f, err := NewManager().Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1, 10)
	buf[0] = 'a'
	if err := f.WriteLine(buf); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteLine(nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "a\n\n" {
		t.Fatalf("got %q", got)
	}
	if buf[:2][1] == '\n' {
		t.Error("WriteLine wrote into the caller's spare capacity")
	}
}

func TestDevNull(t *testing.T) {
	m := NewManager()
	f, err := m.Open(NullPath, FileOptions{MaxSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != NullPath {
		t.Errorf("path %q", f.Path())
	}
	for range 3 {
		if err := f.WriteLine([]byte("gone\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Truncate(NullPath); err != nil {
		t.Fatal(err)
	}
	if err := m.ReopenAll(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(m.files) != 0 {
		t.Fatal("a discarding file was registered")
	}
}

// TestReopenAll: after an external logrotate renames the files, lines keep going to the moved
// file until ReopenAll, and to a new file at the path after.
func TestReopenAll(t *testing.T) {
	dir := t.TempDir()
	m := NewManager()
	var files []*File
	for _, name := range []string{"a.log", "b.log"} {
		f, err := m.Open(filepath.Join(dir, name), FileOptions{MaxSize: 1000, Retain: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
		if err := f.WriteLine([]byte("before\n")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.Path(), f.Path()+"-20260101"); err != nil {
			t.Fatal(err)
		}
		if err := f.WriteLine([]byte("moved\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.ReopenAll(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := f.WriteLine([]byte("after\n")); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, f.Path()+"-20260101"); got != "before\nmoved\n" {
			t.Errorf("moved file = %q", got)
		}
		if got := readFile(t, f.Path()); got != "after\n" {
			t.Errorf("reopened file = %q", got)
		}
		if f.lf.size != int64(len("after\n")) {
			t.Errorf("size after reopen = %d", f.lf.size)
		}
	}
}

func TestReopenAllError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	m := NewManager()
	f, err := m.Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Rename(path, path+".old")
	if err := os.Mkdir(path, 0o755); err != nil { // a directory now sits at the path
		t.Fatal(err)
	}
	if err := m.ReopenAll(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
	if err := f.WriteLine([]byte("kept\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path+".old"); got != "kept\n" {
		t.Errorf("old descriptor got %q", got)
	}
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	m := NewManager()

	t.Run("open", func(t *testing.T) {
		path := filepath.Join(dir, "open.log")
		f, err := m.Open(path, FileOptions{MaxSize: 100, Retain: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		writeLines(t, f, 0, 9) // 90 bytes
		if err := m.Truncate(path); err != nil {
			t.Fatal(err)
		}
		writeLines(t, f, 9, 14) // 50 bytes: no rotation, the size was reset
		if got := readFile(t, path); got != linesRange(9, 14) {
			t.Errorf("got %q", got)
		}
		mustNotExist(t, path+".1")
	})
	t.Run("closed", func(t *testing.T) {
		path := filepath.Join(dir, "closed.log")
		writeFile(t, path, "old\n")
		if err := m.Truncate(path); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != "" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if err := m.Truncate(filepath.Join(dir, "nope", "missing.log")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("error", func(t *testing.T) {
		if err := m.Truncate(dir); err == nil {
			t.Fatal("truncating a directory succeeded")
		}
	})
}

func TestRotatedAndRemoveRotated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	for _, name := range []string{"a.log", "a.log.1", "a.log.2", "a.log.10", "a.log.01", "a.log.x", "a.log.0", "b.log.1"} {
		writeFile(t, filepath.Join(dir, name), name)
	}
	got, err := Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".1", path + ".2", path + ".10"}
	if !slices.Equal(got, want) {
		t.Fatalf("Rotated = %q, want %q", got, want)
	}
	m := NewManager()
	f, err := m.Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.RemoveRotated(path); err != nil {
		t.Fatal(err)
	}
	for _, name := range want {
		mustNotExist(t, name)
	}
	for _, name := range []string{"a.log", "a.log.01", "a.log.x", "a.log.0", "b.log.1"} {
		readFile(t, filepath.Join(dir, name))
	}
	if got, err := Rotated(filepath.Join(dir, "missing", "a.log")); err != nil || got != nil {
		t.Fatalf("Rotated in a missing dir = %q, %v", got, err)
	}
}
