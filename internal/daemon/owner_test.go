package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

func testApp(t *testing.T) (*app, *[]string) {
	t.Helper()
	s := spec.Defaults()
	s.Name = "owned"
	var mu sync.Mutex
	var panics []string
	a := newApp(&s, func(err error, stack []byte) {
		mu.Lock()
		defer mu.Unlock()
		panics = append(panics, err.Error())
	})
	t.Cleanup(func() {
		// End the loop: an op that deletes the app.
		_ = a.submit(context.Background(), opDelete, func() error { a.st.gone = true; return nil })
	})
	return a, &panics
}

// TestOpsRunOneAtATimeInOrder: ops submitted from many goroutines never overlap, and ops
// submitted by one goroutine run in its order.
func TestOpsRunOneAtATimeInOrder(t *testing.T) {
	a, _ := testApp(t)
	var running, overlaps int // touched only by ops, which the loop serialises
	var wg sync.WaitGroup
	orders := make([][]int, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				err := a.submit(context.Background(), opKind(api.ActionReset), func() error {
					running++
					if running > 1 {
						overlaps++
					}
					orders[g] = append(orders[g], i)
					running--
					return nil
				})
				if err != nil {
					t.Errorf("submit: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	_ = a.submit(context.Background(), opKind(api.ActionReset), func() error {
		if overlaps != 0 {
			t.Errorf("%d ops overlapped", overlaps)
		}
		for g, o := range orders {
			for i, v := range o {
				if v != i {
					t.Fatalf("goroutine %d's ops ran out of order: %v", g, o)
				}
			}
		}
		return nil
	})
}

// TestOpsAfterDeleteAreNotRun: once an op deletes the app, the ops queued behind it and every
// later one answer errAppGone without running.
func TestOpsAfterDeleteAreNotRun(t *testing.T) {
	s := spec.Defaults()
	s.Name = "gone"
	a := newApp(&s, nil)
	release := make(chan struct{})
	first := a.enqueue(opDelete, func() error { <-release; a.st.gone = true; return nil })
	ran := false
	queued := a.enqueue(opScale, func() error { ran = true; return nil })
	close(release)
	if err := <-first.done; err != nil {
		t.Fatalf("delete op: %v", err)
	}
	if err := <-queued.done; !errors.Is(err, errAppGone) {
		t.Fatalf("op queued behind the delete: %v, want errAppGone", err)
	}
	if err := a.submit(context.Background(), opKind(api.ActionStop), func() error { ran = true; return nil }); !errors.Is(err, errAppGone) {
		t.Fatalf("op submitted after the delete: %v, want errAppGone", err)
	}
	if ran {
		t.Fatal("an op ran on a deleted app")
	}
}

// TestOpPanicIsContained: a panicking op fails with an error, is reported with its stack, and
// the loop goes on with the next op.
func TestOpPanicIsContained(t *testing.T) {
	a, panics := testApp(t)
	err := a.submit(context.Background(), opScale, func() error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "internal error in scale of owned: boom") {
		t.Fatalf("panicking op: %v", err)
	}
	if err := a.submit(context.Background(), opKind(api.ActionStop), func() error { return nil }); err != nil {
		t.Fatalf("the op after a panic: %v", err)
	}
	if len(*panics) != 1 {
		t.Fatalf("panics reported: %v", *panics)
	}
}

// TestCallerGivingUpDoesNotStopTheOp: a submitter whose context ends gets an error at once,
// the op still runs to its end, and the result it produces is never read by the submitter
// (the race detector would see it).
func TestCallerGivingUpDoesNotStopTheOp(t *testing.T) {
	a, _ := testApp(t)
	release := make(chan struct{})
	finished := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	v, err := callOp(ctx, a, opKind(api.ActionReload), func() ([]int, error) {
		cancel() // the caller gives up while the op runs
		<-release
		defer close(finished)
		return []int{1, 2, 3}, nil
	})
	if !errors.Is(err, context.Canceled) || v != nil {
		t.Fatalf("caller that gave up: %v %v", v, err)
	}
	close(release)
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("the op did not finish after its caller gave up")
	}
}

// TestViewIsPublishedAfterEveryOp: readers see what an op changed once it returns, even if it
// failed or panicked half-way.
func TestViewIsPublishedAfterEveryOp(t *testing.T) {
	a, _ := testApp(t)
	_ = a.submit(context.Background(), opUpdate, func() error {
		a.st.version = "1.0.0"
		panic("half-way")
	})
	if got := a.snapshot().version; got != "1.0.0" {
		t.Fatalf("view after a panicking op: version %q", got)
	}
}
