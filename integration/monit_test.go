package integration

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMonit: the live view shows the table, the connection distribution of a cluster app and
// its log lines, refreshing until interrupted.
func TestMonit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "cluster_http.js")
	startCluster(t, e, "cluster_http.js", 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "monit", "--interval", "200ms")
	cmd.Dir, cmd.Env = e.dir, e.environ()
	out := &lockedBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("monit to draw twice", 30*time.Second, func() bool {
		return strings.Count(out.String(), "corral monit") >= 2
	})
	cancel()
	_ = cmd.Wait()
	s := out.String()
	for _, want := range []string{"cluster_http", "Connection distribution", "Latest log lines"} {
		if !strings.Contains(s, want) {
			t.Fatalf("monit output lacks %q:\n%s", want, s)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a command writes into it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
