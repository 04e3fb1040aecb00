package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// opTimeout bounds each operation of the concurrency tests: none should come near it (stops are
// bounded by kill_timeout, reloads by listen_timeout), so reaching it means something hangs.
const opTimeout = waitTimeout

// chaosBody is a program for the concurrency test: with wait_ready it is ready at once
// (READY=1), so that reloads go through a replacement; SIGINT stops it, SIGUSR2 crashes it
// (exit 1), SIGWINCH it ignores (the default).
const chaosBody = `
trap 'exit 0' INT
trap 'exit 1' USR2
` + notifyCmd + `
while :; do sleep 0.05; done
`

// TestConcurrentOperations: many goroutines run every operation on one process at once.
// Whatever the interleaving, no call hangs or fails unexpectedly, and after a final Stop the
// process is stopped with no run left, and every program it ever started has exited. With
// -race, nothing the goroutines share is unsynchronised. With wait_ready a replacement is
// pending for a while during a reload; without, it takes over at once and the old run drains.
// A Delete amid the operations ends the slot with nothing left running; the calls after it
// say ErrDeleted.
func TestConcurrentOperations(t *testing.T) {
	for _, tc := range []struct {
		waitReady, delete bool
	}{{true, false}, {false, false}, {true, true}} {
		t.Run(fmt.Sprintf("wait_ready=%v,delete=%v", tc.waitReady, tc.delete), func(t *testing.T) {
			chaos(t, tc.delete, func(a *spec.App) { a.WaitReady = tc.waitReady })
		})
	}
}

// chaos runs random operations on one process from many goroutines (Delete once half of them
// are done, if del), then checks the end state.
func chaos(t *testing.T, del bool, mod func(*spec.App)) {
	h := newHarness(t, chaosBody, func(a *spec.App) {
		a.ListenTimeout = 20_000
		a.KillTimeout = 2000
		a.MaxRestarts = 1000 // crashes are part of the mix; errored would end it early
		a.RestartDelay = 30  // so that operations also meet a pending restart
		mod(a)
	})
	other := h.app.Clone()

	type op struct {
		name string
		do   func(ctx context.Context) error
	}
	reload := op{"Reload", func(ctx context.Context) error { _, err := h.p.Reload(ctx, nil); return err }}
	info := op{"Info", func(context.Context) error { _ = h.p.Info(); return nil }}
	ops := []op{
		{"Start", func(context.Context) error { return h.p.Start() }},
		{"Stop", h.p.Stop},
		{"Restart", func(ctx context.Context) error { return h.p.Restart(ctx, nil) }},
		{"Restart with a spec", func(ctx context.Context) error { return h.p.Restart(ctx, &other) }},
		reload, reload, reload,
		{"Signal", func(context.Context) error { return h.p.Signal(syscall.SIGWINCH) }},
		{"crash", func(context.Context) error { return h.p.Signal(syscall.SIGUSR2) }},
		{"Reset", func(context.Context) error { return h.p.Reset() }},
		{"Update", func(context.Context) error { return h.p.Update(h.app) }},
		info, info,
		{"Trigger", func(ctx context.Context) error { return h.p.Trigger(ctx, "test") }},
		{"Send", func(context.Context) error { _ = h.p.Send("x"); return nil }},
	}
	const goroutines, perGoroutine = 8, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	total := 0
	halfway := make(chan struct{})
	deleted := make(chan struct{})
	if del {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-halfway
			if err := h.p.Delete(h.ctx()); err != nil {
				t.Errorf("Delete: %v", err)
			}
			close(deleted)
		}()
	}
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range perGoroutine {
				// A pause of random length between operations varies the interleavings, so that
				// runs also get to be ready and replacements to be pending. (Nothing here
				// depends on its length.)
				time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
				op := ops[rng.IntN(len(ops))]
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				err := op.do(ctx)
				cancel()
				mu.Lock()
				counts[op.name]++
				if total++; total == goroutines*perGoroutine/2 {
					close(halfway)
				}
				mu.Unlock()
				if err == nil || expectedRace(err) || del && errors.Is(err, ErrDeleted) {
					continue
				}
				t.Errorf("%s: %v", op.name, err)
			}
		}()
	}
	wg.Wait()
	kinds := map[string]int{}
	for _, name := range h.events.names() {
		kinds[name]++
	}
	t.Logf("operations: %v; events: %v; runs: %d", counts, kinds, len(h.events.procs()))

	if del {
		<-deleted
		if err := h.p.Start(); !errors.Is(err, ErrDeleted) {
			t.Errorf("Start after Delete = %v", err)
		}
	} else {
		h.stop()
	}
	if info := h.p.Info(); info.Status != StatusStopped || info.PID != 0 || info.Ready {
		t.Fatalf("at the end: %+v", info)
	}
	if !del {
		h.onLoop(func() {
			if h.p.cur != nil || h.p.next != nil || len(h.p.old) != 0 || h.p.restartTimer != nil {
				t.Errorf("left after the final Stop: cur %v, next %v, old %v, restart pending %v", h.p.cur, h.p.next, h.p.old, h.p.restartTimer != nil)
			}
		})
	}
	for _, pr := range h.events.procs() {
		if pr.alive() {
			t.Errorf("pid %d still running at the end", pr.pid)
		}
	}
	// Every run the events announced (start, reload) exited, and said so.
	exited := map[int]bool{}
	for _, ev := range h.events.all() {
		if ev.Kind == "exit" {
			exited[ev.PID] = true
		}
	}
	for _, pr := range h.events.procs() {
		if !exited[pr.pid] {
			t.Errorf("no exit event for run %d", pr.pid)
		}
	}
	if err := h.p.Delete(h.ctx()); err != nil {
		t.Fatal(err)
	}
	if got := h.events.count("delete"); got != 1 {
		t.Errorf("%d delete events", got)
	}
}

// expectedRace reports whether err is one an operation may meet when others run at once: a
// reload whose replacement another operation stopped, a signal or message to a process
// another operation had just stopped.
func expectedRace(err error) bool {
	var re *ReloadError
	return errors.As(err, &re) || strings.Contains(err.Error(), "is not running")
}

// exitGateBody exits 0 on SIGINT once the file "exit" exists (the test's go-ahead), so that a
// stop can be held in progress.
const exitGateBody = `
trap 'echo INT > "$DIR/stopping.$$"; while [ ! -e "$DIR/exit" ]; do sleep 0.02; done; exit 0' INT
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`

// TestDeleteWhilePending: Delete while another operation is in progress (before or after it
// on the loop) ends with the slot deleted and no program of it running, the other operation
// returning; afterwards every call says ErrDeleted.
func TestDeleteWhilePending(t *testing.T) {
	for _, tc := range []struct {
		name string
		// deleteFirst: the stop of Delete is already in progress when op is called; else op
		// is in progress when Delete is called.
		deleteFirst bool
		op          func(h *harness) error
	}{
		{"Start after Delete began", true, func(h *harness) error { return h.p.Start() }},
		{"Restart after Delete began", true, func(h *harness) error { return h.p.Restart(h.ctx(), nil) }},
		{"Reload after Delete began", true, func(h *harness) error { _, err := h.p.Reload(h.ctx(), nil); return err }},
		{"Stop after Delete began", true, func(h *harness) error { return h.p.Stop(h.ctx()) }},
		{"Delete after Delete began", true, func(h *harness) error { return h.p.Delete(h.ctx()) }},
		{"Delete during Stop", false, func(h *harness) error { return h.p.Stop(h.ctx()) }},
		{"Delete during Restart", false, func(h *harness) error { return h.p.Restart(h.ctx(), nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, exitGateBody, nil)
			first := procOf(h.start().PID)
			h.armed(first.pid)

			deleted := make(chan error, 1)
			opDone := make(chan error, 1)
			if tc.deleteFirst {
				go func() { deleted <- h.p.Delete(h.ctx()) }()
				h.waitFile(gate("stopping", first.pid))
				go func() { opDone <- tc.op(h) }()
			} else {
				go func() { opDone <- tc.op(h) }()
				h.waitFile(gate("stopping", first.pid))
				go func() { deleted <- h.p.Delete(h.ctx()) }()
			}
			// Let both reach the loop before the program exits: a call still queued behind the
			// exit would see a deleted process, which proves nothing.
			waitOnExit(t, h.p, 2)
			h.touch("exit")

			if err := recvErr(t, deleted, "Delete"); err != nil {
				t.Fatalf("Delete = %v", err)
			}
			if err := recvErr(t, opDone, tc.name); err != nil && !errors.Is(err, ErrDeleted) {
				t.Fatalf("%s = %v", tc.name, err)
			}
			if info := h.p.Info(); info.Status != StatusStopped || info.PID != 0 {
				t.Fatalf("after Delete: %+v", info)
			}
			for _, pr := range h.events.procs() {
				if pr.alive() {
					t.Fatalf("pid %d (of %d runs) still running after Delete returned", pr.pid, len(h.events.procs()))
				}
			}
			if err := h.p.Start(); !errors.Is(err, ErrDeleted) {
				t.Fatalf("Start after Delete = %v", err)
			}
			if got := h.events.count("delete"); got != 1 {
				t.Fatalf("%d delete events: %q", got, h.events.names())
			}
		})
	}
}

// waitOnExit waits until n callbacks wait for the current run's exit: each operation of these
// tests, once the loop has run it, leaves one there (a stop's completion, a start or restart
// to follow the exit).
func waitOnExit(t *testing.T, p *Process, n int) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%d operations to wait for the run's exit", n), waitTimeout, func() bool {
		var callbacks int
		if err := p.call(func() {
			if p.cur != nil {
				callbacks = len(p.cur.onExit)
			}
		}); err != nil {
			t.Fatal(err)
		}
		return callbacks >= n
	})
}

// recvErr takes an operation's result.
func recvErr(t *testing.T, c <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return", what)
	}
	return fmt.Errorf("unreachable")
}

// postsBlocked counts the goroutines waiting to post to a process loop whose queue is full,
// and reports whether one of them is the notify socket's.
func postsBlocked() (n int, notify bool) {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "supervisor.(*Process).post(") {
			n++
			notify = notify || strings.Contains(g, "onNotify")
		}
	}
	return n, notify
}

// TestNotifyWhileLoopBusy: a READY=1 that arrives while the loop's queue is full, for a run
// whose exit is queued before it, must not deadlock the loop: handling the exit closes the
// run's notify socket, which waits for the socket's goroutine, which must not be the one
// waiting for room in the queue.
func TestNotifyWhileLoopBusy(t *testing.T) {
	// The run exits on the go-ahead "exit", leaving a child that sends READY=1 on "send".
	h := newHarness(t, `
trap 'exit 0' INT
echo $$ > "$DIR/armed.$$"
while [ ! -e "$DIR/exit" ]; do sleep 0.02; done
(while [ ! -e "$DIR/send" ]; do sleep 0.02; done; `+notifyCmd+`) >/dev/null 2>&1 &
exit 0
`, func(a *spec.App) {
		waitReady(a)
		a.Autorestart = false
	})
	h.armed(h.start().PID)

	// Keep the loop busy while the queue fills: first the run's exit, then other operations,
	// then more that wait for room, then the notify socket's.
	busy, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the harness's cleanup, if the test fails
	go h.p.post(func() { close(busy); <-release })
	<-busy
	h.touch("exit")
	testutil.WaitFor(t, "the exit to be queued", waitTimeout, func() bool { return len(h.p.ops) == 1 })
	var wg sync.WaitGroup
	reset := func(n int) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.p.Reset(); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	reset(cap(h.p.ops) - 1)
	testutil.WaitFor(t, "the queue to be full", waitTimeout, func() bool { return len(h.p.ops) == cap(h.p.ops) })
	reset(2)
	testutil.WaitFor(t, "two operations to wait for room", waitTimeout, func() bool { n, _ := postsBlocked(); return n == 2 })
	h.touch("send")
	testutil.WaitFor(t, "READY=1 to wait for room", waitTimeout, func() bool { n, notify := postsBlocked(); return n == 3 && notify })
	free()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the process loop is deadlocked")
	}
	h.waitStatus(StatusStopped)
}
