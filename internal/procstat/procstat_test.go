package procstat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
)

// start runs a command in its own process group and kills the whole group when the test ends,
// so no busy loop or sleep outlives the test.
func start(tb testing.TB, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	tb.Cleanup(func() { killGroup(cmd) })
	return cmd
}

// killGroup kills cmd's process group and reaps cmd. Safe to call twice.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// waitFor polls cond every 20 ms until it holds or timeout passes, then fails with the
// description cond returned last.
func waitFor(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	var desc string
	if !testutil.Eventually(timeout, 20*time.Millisecond, func() bool {
		var ok bool
		ok, desc = cond()
		return ok
	}) {
		tb.Fatalf("condition not met after %v: %s", timeout, desc)
	}
}

func TestTreeCountsDescendants(t *testing.T) {
	// sh → {sh → sleep, sleep}: four processes, one a grandchild.
	cmd := start(t, "sh", "-c", `sh -c 'sleep 300 & wait' & sleep 300 & wait`)
	root := cmd.Process.Pid
	s := NewSampler()
	waitFor(t, 10*time.Second, func() (bool, string) {
		u, ok := s.Sample([]int{root})[root]
		return ok && u.Procs == 4, fmt.Sprintf("usage %+v, present %v; want 4 processes", u, ok)
	})
	u := s.Sample([]int{root})[root]
	if u.RSS <= 0 {
		t.Errorf("RSS of a four-process tree = %d, want > 0", u.RSS)
	}
}

func TestBusyLoopCPU(t *testing.T) {
	// The loop runs in a child subshell: CPU must be summed over the tree, not read off the root.
	cmd := start(t, "sh", "-c", `(while :; do :; done) & wait`)
	root := cmd.Process.Pid
	s := NewSampler()
	waitFor(t, 10*time.Second, func() (bool, string) {
		u := s.Sample([]int{root})[root]
		return u.Procs == 2, fmt.Sprintf("usage %+v; want 2 processes", u)
	})

	first := NewSampler().Sample([]int{root})[root]
	if first.CPU != 0 {
		t.Errorf("first sample of a tree: CPU = %v, want 0", first.CPU)
	}

	// Measure over intervals of at least 500 ms. On a loaded two-CPU machine one interval can be
	// starved, so several are allowed before the deadline; every one must stay within bounds.
	maxCPU := 100*float64(runtime.NumCPU()) + 1
	deadline := time.Now().Add(20 * time.Second)
	for {
		begin := time.Now()
		s.Sample([]int{root})
		for time.Since(begin) < 600*time.Millisecond {
			time.Sleep(50 * time.Millisecond)
		}
		u := s.Sample([]int{root})[root]
		if u.CPU < 0 || u.CPU > maxCPU {
			t.Fatalf("busy loop CPU = %v, want within [0, %v]", u.CPU, maxCPU)
		}
		if u.CPU > 20 {
			t.Logf("busy loop tree: %+v", u)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy loop CPU = %v after %v, want > 20", u.CPU, time.Since(begin))
		}
	}
}

// TestExitingChildrenCPU runs a shell that keeps starting short CPU-bound children that exit
// within milliseconds: most of the work happens in processes no sample ever sees.
func TestExitingChildrenCPU(t *testing.T) {
	cmd := start(t, "sh", "-c", `while :; do sh -c 'i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done'; done`)
	root := cmd.Process.Pid
	s := NewSampler()
	s.Sample([]int{root})
	maxCPU := 100*float64(runtime.NumCPU()) + 1
	best := 0.0
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; n < 6 || (best <= 20 && time.Now().Before(deadline)); n++ {
		begin := time.Now()
		for time.Since(begin) < 500*time.Millisecond {
			time.Sleep(50 * time.Millisecond)
		}
		u, ok := s.Sample([]int{root})[root]
		if !ok {
			t.Fatal("root vanished")
		}
		if u.CPU < 0 || u.CPU > maxCPU {
			t.Fatalf("sample %d: CPU = %v, want within [0, %v]", n, u.CPU, maxCPU)
		}
		t.Logf("sample %d: %+v", n, u)
		best = max(best, u.CPU)
	}
	if best <= 20 {
		t.Errorf("tree of short-lived busy children: best CPU %v, want > 20", best)
	}
}

func TestMemoryOf50MBProcess(t *testing.T) {
	var cmd *exec.Cmd
	var stdout io.Reader
	if py, err := exec.LookPath("python3"); err == nil {
		cmd = exec.Command(py, "-c", `import sys, time
b = bytearray(b"\x01") * (50 << 20)  # filled, so every page is touched
sys.stdout.write("ready\n"); sys.stdout.flush()
time.sleep(300)`)
	} else if node, err := exec.LookPath("node"); err == nil {
		cmd = exec.Command(node, "-e", `const b = Buffer.alloc(50 << 20).fill(1); console.log("ready"); setInterval(() => b[0]++, 1e6)`)
	} else {
		t.Skip("neither python3 nor node installed")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout = pipe
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() { killGroup(cmd) })

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("waiting for the allocation: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("allocating process not ready after 30s")
	}

	root := cmd.Process.Pid
	s := NewSampler()
	waitFor(t, 10*time.Second, func() (bool, string) {
		u := s.Sample([]int{root})[root]
		return u.RSS >= 40<<20, fmt.Sprintf("usage %+v; want RSS ≥ 40 MiB", u)
	})
}

func TestDeadRootDisappears(t *testing.T) {
	reaped := start(t, "sleep", "300")
	zombie := start(t, "sleep", "300")
	live := start(t, "sleep", "300")
	roots := []int{reaped.Process.Pid, zombie.Process.Pid, live.Process.Pid}
	s := NewSampler()
	waitFor(t, 10*time.Second, func() (bool, string) {
		got := s.Sample(roots)
		return len(got) == 3, fmt.Sprintf("Sample = %v; want all 3 roots", got)
	})

	killGroup(reaped)
	// Killed but not yet reaped: a zombie has exited and must count as gone too.
	if err := syscall.Kill(zombie.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		got := s.Sample(roots)
		_, liveOK := got[live.Process.Pid]
		return len(got) == 1 && liveOK, fmt.Sprintf("Sample = %v; want only %d", got, live.Process.Pid)
	})
}

// TestReadStat reads a live process, a zombie and a reaped one.
func TestReadStat(t *testing.T) {
	if ClockTicks() == 0 {
		t.Fatal("ClockTicks() = 0")
	}
	st, err := ReadStat(os.Getpid())
	if err != nil || st.PPid != os.Getppid() || st.Exited {
		t.Fatalf("ReadStat(self) = %+v, %v", st, err)
	}
	cmd := start(t, "sleep", "300")
	pid := cmd.Process.Pid
	if st, err := ReadStat(pid); err != nil || st.PPid != os.Getpid() || st.Exited {
		t.Fatalf("ReadStat(child) = %+v, %v", st, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() (bool, string) {
		st, err := ReadStat(pid)
		return err == nil && st.Exited, fmt.Sprintf("ReadStat(killed child) = %+v, %v; want a zombie", st, err)
	})
	killGroup(cmd)
	if st, err := ReadStat(pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStat(reaped child) = %+v, %v; want fs.ErrNotExist", st, err)
	}
}

// TestSampleAllocations guards the steady state: a Sample must not allocate per process.
func TestSampleAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	roots := startSleepers(t, 10)
	s := NewSampler()
	s.Sample(roots)
	s.Sample(roots)
	allocs := testing.AllocsPerRun(20, func() { s.Sample(roots) })
	// The returned map is the only planned allocation; the process table of a busy machine may
	// still grow the scratch maps now and then.
	if allocs > 5 {
		t.Errorf("Sample allocates %v times per call, want ≤ 5", allocs)
	}
}

// startSleepers starts n trees of two processes each (sh and sleep) and waits until all are seen.
func startSleepers(tb testing.TB, n int) []int {
	tb.Helper()
	roots := make([]int, n)
	for i := range roots {
		roots[i] = start(tb, "sh", "-c", "sleep 300 & wait").Process.Pid
	}
	s := NewSampler()
	waitFor(tb, 10*time.Second, func() (bool, string) {
		got := s.Sample(roots)
		for _, r := range roots {
			if got[r].Procs != 2 {
				return false, fmt.Sprintf("Sample = %v; want 2 processes in each of %d trees", got, n)
			}
		}
		return true, ""
	})
	return roots
}

// BenchmarkSample10Roots is the daemon's steady state: ten apps sampled on a shared machine.
func BenchmarkSample10Roots(b *testing.B) {
	roots := startSleepers(b, 10)
	s := NewSampler()
	s.Sample(roots)
	b.ReportAllocs()
	for b.Loop() {
		if got := s.Sample(roots); len(got) != len(roots) {
			b.Fatalf("Sample = %v, want %d roots", got, len(roots))
		}
	}
}
