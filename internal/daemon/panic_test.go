package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/render"
	"github.com/corral-pm/corral/internal/testutil"
)

// What a panic does to a daemon under its keeper (panics.go): it exits, the keeper starts the
// next, which takes every app over as after a kill.

// panicOpTrigger is a file in the home: the next restart op of a kept daemon removes it and
// panics. One-shot, so that the daemon the keeper starts next does not panic again.
const panicOpTrigger = "panic-op"

// armPanicTriggers sets, in a kept daemon of this test binary (keptMain), the two ways the
// panic test makes it panic: an op (the restart op, while panicOpTrigger exists) and a goroutine
// without recover (on SIGUSR1). Neither exists in any other binary.
func armPanicTriggers(paths home.Paths) {
	trigger := filepath.Join(paths.Home, panicOpTrigger)
	testHookOp = func(kind opKind, app string) {
		if kind == opKind(api.ActionRestart) && os.Remove(trigger) == nil {
			panic(fmt.Sprintf("test panic in the %s op of %s", kind, app))
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		<-sigs
		panic("test panic in a goroutine without recover")
	}()
}

// procState is what must not change about a process across a daemon's panic.
type procState struct {
	PID, Restarts int
	Status        string
}

func procStates(procs []api.Process) map[int]procState {
	out := map[int]procState{}
	for _, p := range procs {
		out[p.ID] = procState{PID: p.PID, Restarts: p.Restarts, Status: p.Status}
	}
	return out
}

// TestKeptDaemonPanics: a daemon that panics, in an op (recovered, exit 70) or in a goroutine
// without recover (Go's trace, exit 2), leaves the stack in corral.log and exits; the keeper
// starts another that takes every process over with its pid and restart count, restarting
// nothing; the daemon line of `ls` counts the restarts and says how the last one ended.
func TestKeptDaemonPanics(t *testing.T) {
	kd := startKept(t)
	idle := kd.sleeper("idle")
	idle.Instances = 2
	web := kd.nodeServer("web", freePort(t))
	web.Instances = 2
	kd.mustStart(idle, web)
	kd.waitStatus("idle", 2, "online")
	kd.waitStatus("web", 2, "online")
	// A restart count that is not 0, to see it carried over.
	if resp, err := kd.act(api.ActionRestart, "idle"); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("restart idle: %v %v", err, resp.Errors)
	}
	kd.waitStatus("idle", 2, "online")
	before := procStates(kd.list())
	for id, p := range before {
		if p.Status != "online" {
			t.Fatalf("process %d before the panics: %+v", id, p)
		}
	}
	corralLog := filepath.Join(kd.home, "corral.log")

	cases := []struct {
		name     string
		panic    func(pid int)
		inLog    []string // what corral.log must show of the panic
		lastExit string
	}{
		{
			name: "op",
			panic: func(int) {
				if err := os.WriteFile(filepath.Join(kd.home, panicOpTrigger), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				// The daemon exits in the middle of the request: no answer.
				if _, err := kd.act(api.ActionRestart, "idle"); err == nil {
					t.Fatal("restart with the panic trigger answered: the daemon did not exit")
				}
			},
			inLog:    []string{"internal error in restart of idle: test panic in the restart op of idle", "runOp", "exiting after an internal error"},
			lastExit: "exited with code 70",
		},
		{
			name: "goroutine without recover",
			panic: func(pid int) {
				if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
			},
			inLog:    []string{"panic: test panic in a goroutine without recover", "goroutine ", "armPanicTriggers"},
			lastExit: "exited with code 2",
		},
	}
	for i, c := range cases {
		v := kd.waitDaemon(0)
		c.panic(v.PID)
		next := kd.waitDaemon(v.PID)
		b, err := os.ReadFile(corralLog)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range c.inLog {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: corral.log does not show %q", c.name, want)
			}
		}
		if next.Keeper == nil || next.Keeper.Restarts != i+1 || next.Keeper.LastExit != c.lastExit {
			t.Fatalf("%s: the next daemon's keeper: %+v, want %d restarts, the last %q", c.name, next.Keeper, i+1, c.lastExit)
		}
		line := render.Daemon(next, time.Now())
		for _, want := range []string{"restarted " + []string{"once", "2 times"}[i], "(the previous one: " + c.lastExit + ")"} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: the daemon line %q does not say %q", c.name, line, want)
			}
		}
		if got := procStates(kd.list()); !maps.Equal(got, before) {
			t.Fatalf("%s: processes after the panic %v, before %v", c.name, got, before)
		}
	}

	// The last daemon serves: a restart is done, and counted.
	if resp, err := kd.act(api.ActionRestart, "idle"); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("restart idle after the panics: %v %v", err, resp.Errors)
	}
	testutil.WaitFor(t, "idle to be restarted", 30*time.Second, func() bool {
		for _, p := range kd.list() {
			if p.Name == "idle" && (p.Status != "online" || p.Restarts != before[p.ID].Restarts+1) {
				return false
			}
		}
		return true
	})
}

// TestRecoverHandler: a handler's panic is the daemon's (onPanic, with the stack) and aborts
// the answer; http.ErrAbortHandler is left to net/http; a handler that does not panic is
// untouched.
func TestRecoverHandler(t *testing.T) {
	cases := []struct {
		name      string
		handler   http.HandlerFunc
		wantPanic string // what onPanic must be told; "" for not called
		wantOK    bool   // the client gets the answer
	}{
		{"no panic", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }, "", true},
		{"panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") },
			"internal error in the API serving GET /boom: boom", false},
		{"abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var got error
			var stack []byte
			onPanic := func(err error, s []byte) {
				mu.Lock()
				got, stack = err, s
				mu.Unlock()
			}
			srv := httptest.NewUnstartedServer(recoverHandler("API", onPanic, c.handler))
			srv.Config.ErrorLog = nil
			srv.Start()
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/boom", nil)
			resp, err := srv.Client().Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			if ok := err == nil; ok != c.wantOK {
				t.Fatalf("answer: %v, want one: %v", err, c.wantOK)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case c.wantPanic == "" && got != nil:
				t.Fatalf("onPanic called with %v", got)
			case c.wantPanic != "" && (got == nil || got.Error() != c.wantPanic):
				t.Fatalf("onPanic told %v, want %q", got, c.wantPanic)
			case c.wantPanic != "" && !strings.Contains(string(stack), "TestRecoverHandler"):
				t.Fatalf("the stack does not show the handler:\n%s", stack)
			}
			if errors.Is(got, http.ErrAbortHandler) {
				t.Fatal("ErrAbortHandler reported as a panic")
			}
		})
	}
}
