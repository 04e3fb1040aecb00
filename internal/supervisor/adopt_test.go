package supervisor

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// The tests of adoption play the previous daemon themselves: they start the program as a
// daemon would have (its own session, stdout and stderr into pipes), keep the pipes' read ends
// as the keeper would, and hand the run to a slot restored from its state (Restore, Adopt).
// The test is the program's parent, so it reaps it and reports the status as the keeper does
// (Hooks.WaitAdopted).

// orphan is a program started "by the previous daemon".
type orphan struct {
	cmd    *exec.Cmd
	files  RunFiles
	rec    RunRecord
	exited chan syscall.WaitStatus // its status, once reaped
}

// startOrphan runs script under /bin/sh as process 3's current run would have run.
func startOrphan(t *testing.T, h *harness, script string) *orphan {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.Env = append(os.Environ(), "DIR="+h.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	o := &orphan{cmd: cmd, files: RunFiles{Out: outR, Err: errR}, exited: make(chan syscall.WaitStatus, 1)}
	// Before anything reaps it: until then even a program that has exited has its stat.
	st, statErr := procstat.ReadStat(cmd.Process.Pid)
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-o.exited
		o.files.Close() // Adopt took them over, unless the test failed first (then a no-op)
	})
	go func() {
		_ = cmd.Wait()
		o.exited <- cmd.ProcessState.Sys().(syscall.WaitStatus)
		close(o.exited)
	}()
	if statErr != nil {
		t.Fatal(statErr)
	}
	o.rec = RunRecord{ProcID: 3, PID: cmd.Process.Pid, StartTicks: st.StartTicks, Started: time.Now(), Current: true, Ready: true}
	return o
}

// adoptionHooks makes the harness's slot learn an adopted run's exit from the orphans' waits,
// as the daemon learns it from its keeper.
func adoptionHooks(orphans *sync.Map) func(*Hooks) {
	return func(hk *Hooks) {
		hk.WaitAdopted = func(pid int) <-chan syscall.WaitStatus {
			o, ok := orphans.Load(pid)
			if !ok {
				return nil
			}
			return o.(*orphan).exited
		}
	}
}

// restore replaces the harness's fresh slot with one restored from st (the previous daemon's
// counters), as the daemon does before adopting.
func (h *harness) restore(st SlotState) {
	h.t.Helper()
	ctx := h.ctx()
	if err := h.p.Delete(ctx); err != nil {
		h.t.Fatal(err)
	}
	h.p = Restore(3, 0, h.app, h.hooks, st)
}

// TestAdoptLiveRun: a run the previous daemon left is served on: same pid, counters kept, its
// output (written before and after the hand-over) in its log, and a stop reaches it.
func TestAdoptLiveRun(t *testing.T) {
	var orphans sync.Map
	h := newHarnessHooks(t, "exit 0", nil, adoptionHooks(&orphans))
	o := startOrphan(t, h, `echo "before"; trap 'echo "stopped by INT"; exit 0' INT; while :; do sleep 0.05; [ -f "$DIR/say" ] && { echo "after"; rm "$DIR/say"; }; done`)
	orphans.Store(o.rec.PID, o)
	h.restore(SlotState{Restarts: 2, Status: StatusOnline, CreatedAt: time.Now().Add(-time.Hour)})

	if notes := h.p.Adopt([]AdoptedRun{{Rec: o.rec, Files: o.files}}, SlotState{Status: StatusOnline}); len(notes) > 0 {
		t.Fatalf("notes: %q", notes)
	}
	info := h.p.Info()
	if info.PID != o.rec.PID || info.Status != StatusOnline || info.Restarts != 2 || !info.Ready {
		t.Fatalf("adopted: %+v", info)
	}
	h.waitEvent(0, "adopted")
	waitFileContains(t, h.p.Info().Files.Out, "before")
	h.touch("say")
	waitFileContains(t, h.p.Info().Files.Out, "after")

	h.stop()
	waitFileContains(t, h.p.Info().Files.Out, "stopped by INT")
	if info := h.p.Info(); info.Status != StatusStopped || info.PID != 0 || info.Restarts != 2 {
		t.Fatalf("after stop: %+v", info)
	}
}

// TestAdoptExitedRun: a run that exited while no daemon ran goes through the restart policy
// once its last output has reached the log: a new run starts, and the restart is counted.
func TestAdoptExitedRun(t *testing.T) {
	var orphans sync.Map
	h := newHarnessHooks(t, `echo "new run"; exec sleep 60`, nil, adoptionHooks(&orphans))
	o := startOrphan(t, h, `echo "last words"; exit 3`)
	ws := <-o.exited
	if ws.ExitStatus() != 3 {
		t.Fatalf("orphan exited with %v", ws)
	}
	h.restore(SlotState{Restarts: 1, Status: StatusOnline})
	h.p.Adopt([]AdoptedRun{{Rec: o.rec, Files: o.files, Exit: &ws}}, SlotState{Status: StatusOnline})

	ev, _ := h.waitEvent(0, "exit")
	if ev.ExitCode == nil || *ev.ExitCode != 3 || ev.PID != o.rec.PID {
		t.Fatalf("exit event %+v", ev)
	}
	h.waitEvent(0, "start")
	info := h.waitStatus(StatusOnline)
	if info.PID == o.rec.PID || info.PID == 0 || info.Restarts != 2 {
		t.Fatalf("after the exit: %+v", info)
	}
	log := waitFileContains(t, h.p.Info().Files.Out, "new run")
	if !strings.Contains(log, "last words") || strings.Index(log, "last words") > strings.Index(log, "new run") {
		t.Fatalf("log:\n%s", log)
	}
}

// TestAdoptLostRun: a run whose pid cannot be proven to be it any more is taken as exited and
// replaced, and the program that now has the pid is never signalled.
func TestAdoptLostRun(t *testing.T) {
	h := newHarness(t, `exec sleep 60`, nil)
	stranger := exec.Command("sleep", "60")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stranger.Process.Kill(); _ = stranger.Wait() })
	rec := RunRecord{ProcID: 3, PID: stranger.Process.Pid, StartTicks: 1, Started: time.Now().Add(-time.Minute), Current: true, Ready: true}
	h.restore(SlotState{Status: StatusOnline})
	notes := h.p.Adopt([]AdoptedRun{{Rec: rec, Lost: true}}, SlotState{Status: StatusOnline})
	if len(notes) != 1 || !strings.Contains(notes[0], "taken as an exit") {
		t.Fatalf("notes %q", notes)
	}
	h.waitEvent(0, "start")
	info := h.waitStatus(StatusOnline)
	if info.PID == rec.PID || info.PID == 0 || info.Restarts != 1 {
		t.Fatalf("after adoption: %+v", info)
	}
	h.stop()
	if err := stranger.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the program that has the lost run's pid was signalled: %v", err)
	}
	if st, err := procstat.ReadStat(stranger.Process.Pid); err != nil || st.Exited {
		t.Fatalf("stranger: %+v %v", st, err)
	}
}

// TestAdoptStoppedSlot: a slot the user had stopped stays stopped, with nothing to adopt.
func TestAdoptStoppedSlot(t *testing.T) {
	h := newHarness(t, `exec sleep 60`, nil)
	h.restore(SlotState{Status: StatusStopped, UserStopped: true, Restarts: 4})
	h.p.Adopt(nil, SlotState{Status: StatusStopped, UserStopped: true})
	h.sync()
	if info := h.p.Info(); info.Status != StatusStopped || info.PID != 0 || info.Restarts != 4 {
		t.Fatalf("%+v", info)
	}
	if n := h.events.count("start"); n != 0 {
		t.Fatalf("%d starts", n)
	}
}
