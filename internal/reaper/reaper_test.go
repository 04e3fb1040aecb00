package reaper

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// TestMain makes the test binary a subreaper, as `corral run` is: the grandchildren the tests
// orphan come to it.
func TestMain(m *testing.M) {
	if err := SetSubreaper(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// TestReaperCollectsOrphansNotOwnChildren: children started through Start keep their exit
// statuses for their own Wait, however often the reaper scans meanwhile, while the
// grandchildren they leave behind are collected by the reaper.
func TestReaperCollectsOrphansNotOwnChildren(t *testing.T) {
	stop := make(chan struct{})
	var mu sync.Mutex
	reaped := map[int]int{} // exit code -> count
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		Loop(stop, func(r Reaped) {
			mu.Lock()
			reaped[r.Status.ExitStatus()]++
			mu.Unlock()
		})
	}()
	// A second scanner that never pauses, to make a stolen status likely if registration
	// could race a scan.
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := ReapOnce()
			if err != nil {
				t.Errorf("ReapOnce: %v", err)
				return
			}
			mu.Lock()
			for _, r := range got {
				reaped[r.Status.ExitStatus()]++
			}
			mu.Unlock()
		}
	}()
	defer func() {
		close(stop)
		<-loopDone
		<-scanDone
	}()

	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The child exits 7 at once; its background grandchild (exit 3) is orphaned.
			cmd := exec.Command("/bin/sh", "-c", "(exit 3) & exit 7")
			if err := Start(cmd); err != nil {
				t.Errorf("start: %v", err)
				return
			}
			// Let it become a zombie, and scan once more, before its own Wait: a reaper that
			// did not know it for the caller's would take its status now.
			pid := cmd.Process.Pid
			deadline := time.Now().Add(10 * time.Second)
			for !zombie(pid) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			got, err := ReapOnce()
			if err != nil {
				t.Errorf("ReapOnce: %v", err)
			}
			mu.Lock()
			for _, r := range got {
				reaped[r.Status.ExitStatus()]++
			}
			mu.Unlock()
			err = cmd.Wait()
			Release(pid)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Errorf("own child's status was taken: Wait = %v", err)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := reaped[3]
		others := len(reaped) - 1
		mu.Unlock()
		if got == n {
			if others > 0 {
				t.Errorf("the reaper collected statuses other than the orphans' exit 3: %v", reaped)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reaped %d of %d orphans (%v)", got, n, reaped)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombie children left: %v", z)
	}
}

// zombie reports whether pid is a zombie, or gone.
func zombie(pid int) bool {
	st, err := procstat.ReadStat(pid)
	return err != nil || st.Exited
}

// zombies lists this process's children that are zombies.
func zombies(t *testing.T) []int {
	t.Helper()
	kids, err := Children()
	if err != nil {
		t.Fatal(err)
	}
	var z []int
	for _, pid := range kids {
		if st, err := procstat.ReadStat(pid); err == nil && st.Exited {
			z = append(z, pid)
		}
	}
	return z
}

func TestParentOfSelf(t *testing.T) {
	if ppid, ok := parentOf(os.Getpid()); !ok || ppid != os.Getppid() {
		t.Fatalf("parentOf(self) = %d, %v; want %d", ppid, ok, os.Getppid())
	}
	kids, err := childrenByScan()
	if err != nil {
		t.Fatal(err)
	}
	_ = kids
}
