package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// events records what a process reports to the daemon.
type events struct {
	mu  sync.Mutex
	evs []api.Event
}

func (e *events) add(ev api.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// of returns the messages of the events of a kind.
func (e *events) of(kind api.EventKind) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		if ev.Kind == kind {
			out = append(out, ev.Message)
		}
	}
	return out
}

// runOnce runs a shell command line once (no restart) as process 7 of app "files", with the
// log and pid paths set by edit, and waits until it has exited and its output is handled.
func runOnce(t *testing.T, script string, edit func(a *spec.App)) (*Process, *events, *logs.Subscription) {
	t.Helper()
	dir := t.TempDir()
	app := spec.Defaults()
	app.Name = "files"
	app.Script = script
	app.Shell = true
	app.Cwd = dir
	app.Autorestart = false
	app.OutFile = filepath.Join(dir, "out.log")
	app.ErrorFile = filepath.Join(dir, "err.log")
	app.MergeLogs = true
	edit(&app)
	evs := &events{}
	hub := logs.NewHub()
	sub := hub.Subscribe(nil, 1000)
	t.Cleanup(sub.Close)
	p := New(7, 0, &app, &Hooks{Logs: logs.NewManager(), Hub: hub, Event: evs.add})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = p.Delete(ctx)
	})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the process to exit", waitTimeout, func() bool {
		i := p.Info()
		return i.Exited && i.Status == StatusStopped
	})
	return p, evs, sub
}

// TestLostOutputCounted: an app whose out file is on a full disk (/dev/full: ENOSPC on every
// write) has its lost lines counted in Info, the daemon hears about it (an "output lost"
// event, its log line), and the live stream still gets every line.
func TestLostOutputCounted(t *testing.T) {
	p, evs, sub := runOnce(t, "echo one; echo two; echo three", func(a *spec.App) { a.OutFile = "/dev/full" })
	if i := p.Info(); i.LostLogLines != 3 || i.LostLogBytes != 14 {
		t.Errorf("Info counts %d lines, %d bytes lost; want 3, 14", i.LostLogLines, i.LostLogBytes)
	}
	testutil.WaitFor(t, "an output lost event", waitTimeout, func() bool { return len(evs.of(api.EventOutputLost)) > 0 })
	if msg := evs.of(api.EventOutputLost)[0]; !strings.Contains(msg, "of output") || !strings.Contains(msg, "no space left on device") {
		t.Errorf("output lost event %q", msg)
	}
	var got []string
	timeout := time.After(waitTimeout)
	for len(got) < 3 {
		select {
		case l := <-sub.C:
			if l.Stream == logs.StreamOut {
				got = append(got, l.Message)
			}
		case <-timeout:
			t.Fatalf("live stream got only %q", got)
		}
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Errorf("live stream got %q", got)
	}
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	if i := p.Info(); i.LostLogLines != 0 || i.LostLogBytes != 0 {
		t.Errorf("after reset: %d lines, %d bytes", i.LostLogLines, i.LostLogBytes)
	}
}

// TestUnopenableLogCounted: a log file that cannot be opened (a name too long for the file
// system) is reported (Info.LogError, a "log error" event, once) and the lines meant for it are
// counted as lost instead of vanishing.
func TestUnopenableLogCounted(t *testing.T) {
	long := filepath.Join(os.TempDir(), strings.Repeat("n", 300)+".log")
	p, evs, _ := runOnce(t, "echo one; echo two", func(a *spec.App) { a.OutFile = long })
	i := p.Info()
	if !strings.Contains(i.LogError, "file name too long") {
		t.Errorf("LogError = %q", i.LogError)
	}
	if i.LostLogLines != 2 {
		t.Errorf("LostLogLines = %d, want 2", i.LostLogLines)
	}
	testutil.WaitFor(t, "a log error event", waitTimeout, func() bool { return len(evs.of(api.EventLogError)) > 0 })
}

// TestPlantedLogLinkRefused: an out file at which another user planted a symbolic link (to a
// root-only file) is refused: the target is untouched, the refusal is reported (LogError, the
// event), and the app's lines are counted as lost.
func TestPlantedLogLinkRefused(t *testing.T) {
	testutil.RequireRoot(t)
	shadow := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(shadow, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	p, evs, _ := runOnce(t, "echo attacker-chosen", func(a *spec.App) {
		out = a.OutFile
		testutil.PlantLink(t, shadow, out)
	})
	if b, _ := os.ReadFile(shadow); string(b) != "root:secret\n" {
		t.Fatalf("the planted link's target was written: %q", b)
	}
	i := p.Info()
	if !strings.Contains(i.LogError, "refusing to follow the symbolic link "+out) || !strings.Contains(i.LogError, "nobody") {
		t.Errorf("LogError = %q", i.LogError)
	}
	if i.LostLogLines != 1 {
		t.Errorf("LostLogLines = %d, want 1", i.LostLogLines)
	}
	testutil.WaitFor(t, "a log error event", waitTimeout, func() bool { return len(evs.of(api.EventLogError)) == 1 })
}

// TestPidFileNotThroughLink: a pid file is never written through a symbolic link; the
// refusal is reported (LogError) and the link's target is untouched.
func TestPidFileNotThroughLink(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "app.pid")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := writePidFile(link, 1234); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("writePidFile through a link: %v", err)
	}
	dir := t.TempDir()
	if err := os.Symlink(victim, spec.ProcessFilePath(filepath.Join(dir, "app.pid"), 7, false)); err != nil {
		t.Fatal(err)
	}
	p, _, _ := runOnce(t, "true", func(a *spec.App) { a.PidFile = filepath.Join(dir, "app.pid") })
	if i := p.Info(); !strings.Contains(i.LogError, "pid file") || !strings.Contains(i.LogError, "symbolic link") {
		t.Errorf("LogError = %q", i.LogError)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("victim = %q", b)
	}

	path := filepath.Join(t.TempDir(), "pids", "ok.pid")
	if err := writePidFile(path, 42); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "42\n" {
		t.Errorf("pid file = %q", b)
	}
}
