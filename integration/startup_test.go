package integration

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestNoTerminalQueryAtStart: corral writes nothing to a terminal it was not asked to, and
// waits for no answer from it. Bubble Tea v1 (monit's UI) asks the terminal for its background
// colour when its package initialises, before any command runs, and waits up to five seconds
// for an answer (internal/monit/quietterm). Here the terminal never answers, as under expect
// or a test harness: corral must neither query it nor wait.
func TestNoTerminalQueryAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("ls") // the daemon started: jlist below is one request
	for _, args := range [][]string{{"--version"}, {"jlist"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(e.bin, args...)
			cmd.Dir = e.dir
			cmd.Env = e.terminalEnviron()
			ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
			if err != nil {
				t.Fatal(err)
			}
			defer ptmx.Close()
			out := make(chan []byte, 1)
			go func() {
				var b bytes.Buffer
				_, _ = b.ReadFrom(ptmx) // until EIO: the program exited
				out <- b.Bytes()
			}()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// A query would be seen below, in what corral wrote, and would cost five seconds
			// of waiting for the answer; the deadline only keeps a hang from lasting.
			start := time.Now()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("corral %s: %v", strings.Join(args, " "), err)
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("corral %s still runs after 60s", strings.Join(args, " "))
			}
			t.Logf("corral %s took %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
			got := <-out
			for _, query := range []string{"\x1b]11;?", "\x1b]10;?", "\x1b[6n"} {
				if bytes.Contains(got, []byte(query)) {
					t.Errorf("corral %s queried the terminal (%q):\n%q", strings.Join(args, " "), query, got)
				}
			}
		})
	}
}
