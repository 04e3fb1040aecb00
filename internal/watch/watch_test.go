package watch

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatcherFiresOnChangeAndSkipsIgnored(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"src", "node_modules/pkg"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	changes := make(chan string, 10)
	w, err := New(Options{Paths: []string{root}, Ignore: []string{"node_modules", "*.log"}}, func(p string) { changes <- p })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Ignored writes produce nothing; a real change produces exactly one notification.
	mustWrite(t, filepath.Join(root, "node_modules/pkg/index.js"))
	mustWrite(t, filepath.Join(root, "app.log"))
	mustWrite(t, filepath.Join(root, "src/a.js"))
	select {
	case p := <-changes:
		if p != filepath.Join(root, "src/a.js") {
			t.Fatalf("change reported for %s", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported")
	}

	// A directory created after start is watched too.
	mustMkdir(t, filepath.Join(root, "lib"))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mustWrite(t, filepath.Join(root, "lib/b.js"))
		select {
		case p := <-changes:
			if filepath.Base(p) == "b.js" || filepath.Base(p) == "lib" {
				return
			}
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Fatal("no change reported in a new directory")
}

func mustWrite(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(time.Now().String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}
