package logs

import (
	"os"
	"strings"
	"testing"
	"time"
)

// waitTimeout bounds every wait on a condition; generous for a loaded -race run.
const waitTimeout = 10 * time.Second

// recv takes one line from s within waitTimeout.
func recv(t *testing.T, s *Subscription) Line {
	t.Helper()
	select {
	case l, ok := <-s.C:
		if !ok {
			t.Fatal("subscription closed while waiting for a line")
		}
		return l
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a line")
	}
	panic("unreachable")
}

// recvN takes n lines from s.
func recvN(t *testing.T, s *Subscription, n int) []Line {
	t.Helper()
	lines := make([]Line, 0, n)
	for range n {
		lines = append(lines, recv(t, s))
	}
	return lines
}

// messages returns the messages of lines.
func messages(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Message
	}
	return out
}

// waitClosed waits for s.C to be closed, discarding lines still in flight.
func waitClosed(t *testing.T, s *Subscription) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-s.C:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("timed out waiting for the subscription to close")
		}
	}
}

// readFile returns the content of path, failing the test on error.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeFile creates path with content.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileLines splits a file's content into lines (without the final empty one).
func fileLines(content string) []string {
	if content == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(content, "\n"), "\n")
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists (err %v), want it absent", path, err)
	}
}
