package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records failures instead of reporting them, and runs cleanups when told to.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// run calls fn on a goroutine of its own (Fatalf ends it) and then the cleanups, last first,
// and returns the failures.
func (f *fakeTB) run(fn func()) []string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.cleanups[i]()
		}()
		<-done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs
}

func TestEventually(t *testing.T) {
	n := 0
	if !Eventually(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Eventually with a condition true on the third call: n = %d", n)
	}
	begin := time.Now()
	if Eventually(20*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Error("Eventually with a condition never true returned true")
	}
	if d := time.Since(begin); d < 20*time.Millisecond {
		t.Errorf("Eventually gave up after %v, before its timeout", d)
	}
}

func TestWaitFor(t *testing.T) {
	f := &fakeTB{TB: t}
	n := 0
	errs := f.run(func() { WaitFor(f, "n to reach 5", time.Second, func() bool { n++; return n >= 5 }) })
	if len(errs) != 0 {
		t.Errorf("WaitFor on a condition that holds: %q", errs)
	}

	f = &fakeTB{TB: t}
	returned := false
	errs = f.run(func() {
		WaitFor(f, "the impossible", 10*time.Millisecond, func() bool { return false })
		returned = true
	})
	if returned || len(errs) != 1 || !strings.Contains(errs[0], "timed out") || !strings.Contains(errs[0], "the impossible") {
		t.Errorf("WaitFor on a condition that never holds: returned %v, failures %q", returned, errs)
	}
}

func TestOpenFDs(t *testing.T) {
	WarmNetpoller()
	before := OpenFDs(t)
	path := filepath.Join(t.TempDir(), "marker")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := OpenFDs(t); n != before+1 {
		t.Errorf("after opening a file: %d fds, want %d", n, before+1)
	}
	if names := strings.Join(FDNames(), " "); !strings.Contains(names, path) {
		t.Errorf("FDNames does not list the open file %s: %s", path, names)
	}
	file.Close()
	if n := OpenFDs(t); n != before {
		t.Errorf("after closing it: %d fds, want %d", n, before)
	}
}

func TestCheckFDsClean(t *testing.T) {
	dir := t.TempDir()
	old, err := os.Create(filepath.Join(dir, "old"))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	f := &fakeTB{TB: t}
	errs := f.run(func() {
		CheckFDs(f, time.Second)
		old.Close() // fewer fds than at the baseline is fine
		file, err := os.Create(filepath.Join(dir, "new"))
		if err != nil {
			t.Error(err)
			close(closed)
			return
		}
		// Closed a little after the test ends: the check waits for it.
		go func() {
			defer close(closed)
			time.Sleep(20 * time.Millisecond)
			file.Close()
		}()
	})
	<-closed // leave no goroutine behind for the next test's goroutine count
	if len(errs) != 0 {
		t.Errorf("CheckFDs with nothing leaked: %q", errs)
	}
}

func TestCheckFDsLeak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leaked")
	var file *os.File
	f := &fakeTB{TB: t}
	errs := f.run(func() {
		CheckFDs(f, 20*time.Millisecond)
		var err error
		if file, err = os.Create(path); err != nil {
			t.Error(err)
		}
	})
	if file != nil {
		file.Close()
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "leak") || !strings.Contains(errs[0], path) {
		t.Errorf("CheckFDs with a file left open: failures %q, want one naming %s", errs, path)
	}
}

func TestCheckFDsConditions(t *testing.T) {
	const leaked = 10
	release := make(chan struct{})
	var exited sync.WaitGroup
	exited.Add(leaked)
	f := &fakeTB{TB: t}
	errs := f.run(func() {
		CheckFDs(f, 20*time.Millisecond, Goroutines(), Condition{
			Holds: func() bool { return true },
			State: func() string { return "the other condition" },
		})
		// Several, so that goroutines of earlier tests still exiting cannot hide the leak.
		for range leaked {
			go func() {
				defer exited.Done()
				<-release
			}()
		}
	})
	close(release)
	exited.Wait()
	if len(errs) != 1 || !strings.Contains(errs[0], "goroutines") || !strings.Contains(errs[0], "the other condition") {
		t.Errorf("CheckFDs with a goroutine left running: failures %q, want one giving both conditions' states", errs)
	}

	f = &fakeTB{TB: t}
	errs = f.run(func() {
		CheckFDs(f, time.Second, Goroutines())
		go func() { time.Sleep(20 * time.Millisecond) }()
	})
	if len(errs) != 0 {
		t.Errorf("CheckFDs with a goroutine that exits soon after the test: %q", errs)
	}
}
