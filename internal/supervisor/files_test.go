package supervisor

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/spec"
)

// TestFilesFor: per-process log and pid paths get "-<id>" unless logs are merged (pid files
// always do); "/dev/null" and "" stay as they are.
func TestFilesFor(t *testing.T) {
	app := spec.Defaults()
	app.OutFile, app.ErrorFile, app.LogFile, app.PidFile = "/l/web-out.log", "/l/web-error.log", "", "/p/web.pid"
	if got, want := FilesFor(&app, 4), (Files{Out: "/l/web-out-4.log", Err: "/l/web-error-4.log", Pid: "/p/web-4.pid"}); got != want {
		t.Errorf("FilesFor = %+v, want %+v", got, want)
	}
	app.MergeLogs = true
	app.LogFile = "/l/web.log"
	app.ErrorFile = spec.NullPath
	if got, want := FilesFor(&app, 4), (Files{Out: "/l/web-out.log", Err: spec.NullPath, Combined: "/l/web.log", Pid: "/p/web-4.pid"}); got != want {
		t.Errorf("merged: FilesFor = %+v, want %+v", got, want)
	}
}

// readPid reads a pid file: its pid, or 0 when there is no file.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("pid file %s = %q, not a line", path, b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s = %q", path, b)
	}
	return pid
}

// TestPidFile: the pid file names the running program (its directory is created) and is
// removed when the program exits.
func TestPidFile(t *testing.T) {
	h := newHarness(t, gracefulBody, nil)
	path := h.p.Info().Files.Pid
	if readPid(t, path) != 0 {
		t.Fatal("pid file before Start")
	}
	pid := h.start().PID
	if got := readPid(t, path); got != pid {
		t.Fatalf("pid file = %d, want %d", got, pid)
	}
	if err := h.p.Restart(h.ctx(), nil); err != nil {
		t.Fatal(err)
	}
	pid = h.p.Info().PID
	if got := readPid(t, path); got != pid {
		t.Fatalf("after Restart: pid file = %d, want %d", got, pid)
	}
	h.stop()
	if got := readPid(t, path); got != 0 {
		t.Fatalf("pid file = %d after Stop", got)
	}
}

// TestNoPidFile: pid_file "/dev/null" (or none) writes nothing.
func TestNoPidFile(t *testing.T) {
	for _, path := range []string{spec.NullPath, ""} {
		t.Run(strconv.Quote(path), func(t *testing.T) {
			h := newHarness(t, gracefulBody, func(a *spec.App) { a.PidFile = path })
			h.start()
			if _, err := os.Stat(h.path("pids")); !os.IsNotExist(err) {
				t.Fatalf("pids directory: %v", err)
			}
			h.stop()
		})
	}
}

// TestOutput: what the program prints reaches its out and error files, the combined file and
// the hub; its last lines, printed while it stops, are in the files when Stop returns.
func TestOutput(t *testing.T) {
	h := newHarness(t, `
echo "out line 1"
echo "err line 1" >&2
trap 'echo "out at exit"; echo "err at exit" >&2; exit 0' INT
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`, func(a *spec.App) { a.LogFile = filepath.Join(filepath.Dir(a.OutFile), "app.log") })
	sub := h.hub.Subscribe(func(l logs.Line) bool { return l.ProcID == 3 }, 0)
	defer sub.Close()
	files := h.p.Info().Files
	if files.Combined != h.path("logs/app-3.log") {
		t.Fatalf("Files = %+v", files)
	}

	h.armed(h.start().PID)
	waitFileContains(t, files.Out, "out line 1\n")
	waitFileContains(t, files.Err, "err line 1\n")
	waitFileContains(t, files.Combined, "out line 1\n")
	waitFileContains(t, files.Combined, "err line 1\n")
	got := map[string]string{}
	for len(got) < 2 {
		select {
		case l := <-sub.C:
			if l.App != "app" || l.Time.IsZero() {
				t.Fatalf("hub line %+v", l)
			}
			got[l.Stream] = l.Message
		case <-time.After(waitTimeout):
			t.Fatalf("hub lines so far: %v", got)
		}
	}
	if got[logs.StreamOut] != "out line 1" || got[logs.StreamErr] != "err line 1" {
		t.Fatalf("hub lines %v", got)
	}

	h.stop()
	for path, want := range map[string]string{
		files.Out:      "out line 1\nout at exit\n",
		files.Err:      "err line 1\nerr at exit\n",
		files.Combined: "at exit\n",
	} {
		if content := readFile(t, path); !strings.Contains(content, want) {
			t.Errorf("%s when Stop returned = %q, want it to hold %q", path, content, want)
		}
	}
}

// TestLogDateFormat: with log_date_format each file line is prefixed with its time.
func TestLogDateFormat(t *testing.T) {
	h := newHarness(t, "echo hello\nexit 0\n", func(a *spec.App) {
		a.LogDateFormat = "YYYY"
		a.Autorestart = false
	})
	h.start()
	h.waitStatus(StatusStopped)
	content := waitFileContains(t, h.p.Info().Files.Out, "hello\n")
	if !regexp.MustCompile(`^[0-9]{4}: hello\n$`).MatchString(content) {
		t.Fatalf("out file = %q, want a line like \"2026: hello\"", content)
	}
}
