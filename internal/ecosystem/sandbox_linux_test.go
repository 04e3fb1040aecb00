package ecosystem

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hostile ecosystem files, evaluated for real: each ends, within the time limit or at once,
// with an error that names the file and the limit; the evaluation's memory stays under the
// memory limit. Timings are not asserted, only that each ended (with a generous deadline).
func TestLoadHostileFiles(t *testing.T) {
	dir := t.TempDir()
	bigFile(t, filepath.Join(dir, "huge.json"), 64<<20)
	const tail = "\nmodule.exports = {apps: [{name: 'web', script: 'app.js'}]};\n"
	const (
		timeLimit     = "evaluation did not finish within 1s (the time limit for ecosystem files: an endless loop?); nothing was started"
		memoryLimit   = "evaluation needed more than 256 MiB of memory (the limit for ecosystem files); nothing was started"
		tooMuchOutput = "evaluation produced more than 8 MiB of configuration (the limit for ecosystem files); nothing was started"
	)
	for _, tc := range []struct {
		name, code string
		want       string // "" for a file that loads
	}{
		{"endless loop", "while (true) {}", timeLimit},
		{"huge string", "const s = 'x'.repeat(2 ** 29);", memoryLimit},
		{"huge array", "const a = new Array(1e8).fill(1);", memoryLimit},
		{"huge JSON.stringify", "const row = 'x'.repeat(1000); const b = new Array(1000).fill(new Array(1000).fill(row)); JSON.stringify(b);", memoryLimit},
		{"growing array", "const a = []; for (let i = 0; ; i++) a.push({i, s: 'item ' + i});", memoryLimit},
		{"deep recursion", "function f(n) { return f(n + 1) + 1; } f(0);", "RangeError: Maximum call stack size exceeded: calls nested more than 10000 deep (an endless recursion?); nothing was started"},
		// goja runs this one with Go's linear-time regexp engine: it is not catastrophic here.
		{"nested quantifier regexp", "/(a+)+$/.test('a'.repeat(40) + 'b');", ""},
		// A back-reference needs the backtracking engine, and one call runs for minutes: only
		// killing the evaluation ends it.
		{"catastrophic regexp", "/(a+)+\\1$/.test('a'.repeat(40) + 'b');", timeLimit},
		{"huge require", "require('./huge.json');", "huge.json is 64 MiB, more than the 1 MiB allowed for a file read by an ecosystem file"},
		{"huge result", "process.env.PAD = 'x'.repeat(10 << 20);", tooMuchOutput},
		// 1.5 MiB of text, 9 MiB as JSON: the evaluation process sends it, and the CLI stops
		// reading. (With the race detector, whose own memory counts, the memory limit may come
		// first.)
		{"huge escaped result", "process.env.PAD = '\\x01'.repeat(3 << 19);", tooMuchOutput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".config.js")
			writeFiles(t, dir, map[string]string{"app.js": "", filepath.Base(file): tc.code + tail})
			opt := testOptions(dir)
			opt.Timeout = time.Second
			if tc.want != timeLimit {
				opt.Timeout = 20 * time.Second // the memory limit must end these, even on a slow machine
			}
			type loaded struct {
				res *Result
				err error
			}
			done := make(chan loaded, 1)
			go func() {
				res, err := Load(file, opt)
				done <- loaded{res, err}
			}()
			var got loaded
			select {
			case got = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("Load did not end")
			}
			if tc.want == "" {
				if got.err != nil {
					t.Fatalf("Load: %v", got.err)
				}
				return
			}
			if got.res != nil {
				t.Errorf("a result with the error: %+v", got.res)
			}
			if raceEnabled && tc.want == tooMuchOutput && strings.Contains(fmt.Sprint(got.err), memoryLimit) {
				return
			}
			wantErrorLines(t, got.err, file, tc.want)
		})
	}

	// A JSON file is evaluated as a JavaScript expression, as PM2 does: it is bounded the same.
	t.Run("JSON file", func(t *testing.T) {
		writeFiles(t, dir, map[string]string{"ecosystem.json": `{"apps": [{"script": "app.js"}], "pad": "x".repeat(2 ** 29)}`})
		_, err := Load(filepath.Join(dir, "ecosystem.json"), testOptions(dir))
		wantErrorLines(t, err, filepath.Join(dir, "ecosystem.json")+": "+memoryLimit)
	})

	// YAML is not code, but its parser checks each key of a mapping against the others: a
	// 1 MiB file of 60,000 keys would take it some 17 s.
	t.Run("YAML with 60,000 keys", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("apps: [{name: web, script: app.js}]\nx:\n")
		for i := 0; b.Len() < MaxFileSize-32; i++ {
			fmt.Fprintf(&b, "  k%d: {a: [1, 2]}\n", i)
		}
		writeFiles(t, dir, map[string]string{"keys.yaml": b.String()})
		opt := testOptions(dir)
		opt.Timeout = time.Second
		_, err := Load(filepath.Join(dir, "keys.yaml"), opt)
		wantErrorLines(t, err, filepath.Join(dir, "keys.yaml")+": evaluation did not finish within 1s (the time limit for ecosystem files); nothing was started")
	})

	// Every evaluation process stayed under the memory limit (children's peak resident size).
	// Not with the race detector, whose shadow memory is resident without being counted.
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	peak := ru.Maxrss << 10
	t.Logf("peak resident size of an evaluation process: %s", formatSize(peak))
	if !raceEnabled && peak > MaxEvalMemory {
		t.Errorf("an evaluation process reached %s, more than the %s limit", formatSize(peak), formatSize(MaxEvalMemory))
	}
}

// An evaluation process whose CLI is gone ends itself; here, the parent is killed while the
// evaluation loops, and the evaluation process must not outlive it for long.
func TestEvaluationDiesWithTheCLI(t *testing.T) {
	if os.Getenv("CORRAL_TEST_EVAL_PARENT") != "" {
		// The parent: evaluate an endless loop with a long limit.
		opt := testOptions(os.Getenv("CORRAL_TEST_EVAL_PARENT"))
		opt.Timeout = time.Minute
		_, _ = Load(filepath.Join(opt.Cwd, "loop.config.js"), opt)
		return
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"loop.config.js": "for (;;) {}"})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent, err := os.StartProcess(exe, []string{exe, "-test.run=^TestEvaluationDiesWithTheCLI$"}, &os.ProcAttr{
		Env:   append(os.Environ(), "CORRAL_TEST_EVAL_PARENT="+dir),
		Files: []*os.File{nil, os.Stderr, os.Stderr},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for its evaluation process to run.
	var child int
	for deadline := time.Now().Add(time.Minute); child == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = parent.Kill()
			t.Fatal("no evaluation process appeared")
		}
		child = childOf(parent.Pid)
	}
	_ = parent.Kill()
	_, _ = parent.Wait()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(child, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); strings.Contains(string(stat), ") Z ") {
			return // ended, waiting for init to reap it
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatal("the evaluation process outlived its CLI")
		}
	}
}

// childOf returns a child process of pid, or 0.
func childOf(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		var child int
		if _, err := fmt.Sscan(string(b), &child); err == nil {
			return child
		}
	}
	return 0
}
