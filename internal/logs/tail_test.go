package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name    string
		content string
		n       int
		want    []string
	}{
		{"empty file", "", 5, nil},
		{"n zero", "a\nb\n", 0, nil},
		{"fewer lines than n", "a\nb\nc\n", 10, []string{"a", "b", "c"}},
		{"last n", "a\nb\nc\n", 2, []string{"b", "c"}},
		{"one", "a\nb\nc\n", 1, []string{"c"}},
		{"no trailing newline", "a\nb\nc", 2, []string{"b", "c"}},
		{"single line without newline", "only", 3, []string{"only"}},
		{"single empty line", "\n", 3, []string{""}},
		{"blank lines kept", "a\n\nb\n\n", 3, []string{"", "b", ""}},
		{"crlf", "a\r\nb\r\n", 2, []string{"a", "b"}},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.log", i))
			writeFile(t, path, tt.content)
			got, err := Tail(path, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Tail(%q, %d) = %q, want %q", tt.content, tt.n, got, tt.want)
			}
		})
	}
}

func TestTailMissing(t *testing.T) {
	got, err := Tail(filepath.Join(t.TempDir(), "missing.log"), 10)
	if got != nil || err != nil {
		t.Fatalf("got %q, %v; want nil, nil", got, err)
	}
}

func TestTailError(t *testing.T) {
	if _, err := Tail(t.TempDir(), 10); err == nil {
		t.Fatal("Tail of a directory succeeded")
	}
}

// TestTailBigFile: lines spanning block boundaries, from a multi-MB file.
func TestTailBigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.log")
	var b strings.Builder
	const total = 200_000
	for i := range total {
		fmt.Fprintf(&b, "line %06d %s\n", i, strings.Repeat("-", i%37))
	}
	writeFile(t, path, b.String())
	if b.Len() < 5<<20 {
		t.Fatalf("test file only %d bytes", b.Len())
	}
	for _, n := range []int{1, 100, 3000, 20_000} {
		got, err := Tail(path, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("Tail(%d) returned %d lines", n, len(got))
		}
		for j, l := range got {
			i := total - n + j
			if want := fmt.Sprintf("line %06d %s", i, strings.Repeat("-", i%37)); l != want {
				t.Fatalf("Tail(%d)[%d] = %q, want %q", n, j, l, want)
			}
		}
	}
}

// TestTailEndlessLine: a file that is one huge line is not read whole; the end of the line
// comes back.
func TestTailEndlessLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endless.log")
	content := strings.Repeat("0123456789", 300_000) // 3 MB, no newline
	writeFile(t, path, content+"\nlast\n")
	got, err := Tail(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != "last" {
		t.Fatalf("got %d lines, last %q", len(got), got[len(got)-1])
	}
	if len(got[0]) > 2*tailLineBudget || !strings.HasSuffix(content, got[0]) {
		t.Fatalf("first line: %d bytes, want at most %d from the end of the long line", len(got[0]), 2*tailLineBudget)
	}
}

// TestTailWhileWriting reads a file that is being appended to through the Manager.
func TestTailWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.log")
	f, err := NewManager().Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			f.WriteLine(fmt.Appendf(nil, "l%d\n", i))
		}
	}()
	for {
		select {
		case <-done:
			got, err := Tail(path, 1)
			if err != nil || !slices.Equal(got, []string{"l4999"}) {
				t.Fatalf("final Tail = %q, %v", got, err)
			}
			return
		default:
		}
		got, err := Tail(path, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range got {
			if !strings.HasPrefix(l, "l") {
				t.Fatalf("odd line %q", l)
			}
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatal(err)
		}
	}
}
