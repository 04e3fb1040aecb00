// Package reaper collects the zombies that are re-parented to a `corral run` that is PID 1 (a
// container's init) or a child subreaper, without taking the exit status of any process the
// daemon waits for itself (docs/containers.md §2).
//
// The daemon starts its apps with os/exec, which waits for each of them by pid. A reaper that
// called wait4(-1) would race those waits and steal their statuses (the supervisor would then
// see an exit of unknown status and the restart policy would misjudge it). So the reaper only
// waits for pids it knows are not the daemon's own: every child of this process found in
// /proc, minus the ones registered as owned. Registration cannot race a scan: a spawn holds
// the read side of a lock from before the fork until its pid is registered, and a scan holds
// the write side.
package reaper

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
	"golang.org/x/sys/unix"
)

var (
	spawnMu sync.RWMutex // read: a spawn in progress; write: a scan
	ownMu   sync.Mutex
	own     = map[int]int{} // pid -> how many registrations (a pid reused while still listed)
)

// Start starts cmd like cmd.Start, and registers its process as one the caller waits for
// itself: the reaper never waits for it. The caller must call Release(pid) once cmd.Wait
// has returned. Every os/exec start in a process that runs the reaper goes through here.
func Start(cmd *exec.Cmd) error {
	spawnMu.RLock()
	defer spawnMu.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	ownMu.Lock()
	own[cmd.Process.Pid]++
	ownMu.Unlock()
	return nil
}

// Release forgets pid, whose status its waiter has collected.
func Release(pid int) {
	ownMu.Lock()
	defer ownMu.Unlock()
	if own[pid]--; own[pid] <= 0 {
		delete(own, pid)
	}
}

func owned(pid int) bool {
	ownMu.Lock()
	defer ownMu.Unlock()
	return own[pid] > 0
}

// Reaped is one orphan the reaper collected.
type Reaped struct {
	PID    int
	Status syscall.WaitStatus
}

// ReapOnce waits (without blocking) for every child of this process that is not a registered
// one and has ended, and returns them. Children still running are left alone.
func ReapOnce() ([]Reaped, error) {
	spawnMu.Lock()
	defer spawnMu.Unlock()
	kids, err := Children()
	if err != nil {
		return nil, err
	}
	var out []Reaped
	for _, pid := range kids {
		if owned(pid) {
			continue
		}
		var ws syscall.WaitStatus
		for {
			got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err == nil && got == pid {
				out = append(out, Reaped{PID: pid, Status: ws})
			}
			break
		}
	}
	return out, nil
}

// Children lists this process's children: the children files of its threads (an orphan is
// re-parented to one of them), or, where the kernel has no such file, every process whose
// parent is this one.
func Children() ([]int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "children"))
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join("/proc/self/task", t.Name())); serr == nil {
				return childrenByScan()
			}
			continue // the thread ended
		}
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// childrenByScan reads every /proc/<pid>/stat for a parent that is this process.
func childrenByScan() ([]int, error) {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// parentOf reads the parent pid from /proc/<pid>/stat.
func parentOf(pid int) (int, bool) {
	st, err := procstat.ReadStat(pid)
	return st.PPid, err == nil
}

// SetSubreaper makes this process a child subreaper (PR_SET_CHILD_SUBREAPER): orphans of its
// descendants are re-parented to it instead of to PID 1. PID 1 is one already.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Loop reaps on every SIGCHLD (and, since signals of the same kind coalesce and one may come
// between a scan's listing and its end, on a slow tick too) until stop is closed. report, if
// not nil, is called for each orphan collected.
func Loop(stop <-chan struct{}, report func(Reaped)) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	tick := time.NewTicker(loopTick)
	defer tick.Stop()
	for {
		got, _ := ReapOnce()
		if report != nil {
			for _, r := range got {
				report(r)
			}
		}
		select {
		case <-stop:
			return
		case <-sigs:
		case <-tick.C:
		}
	}
}

// loopTick is the reaper's safety net; SIGCHLD does the work.
const loopTick = 5 * time.Second
