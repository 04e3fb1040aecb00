package cluster

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// listenAny makes f listen(0) under its group's policy, as a Node worker does: queryServer,
// then listening once the reply came. Every worker's listen(0) is the same key, so they share
// one port; it returns the key and that port.
func listenAny(t *testing.T, f *fakeWorker) (string, int) {
	t.Helper()
	q := tcpQuery(0)
	port := 0
	r := f.query(q)
	if r.Handle != nil {
		t.Cleanup(func() { r.Handle.Close() })
		si := inspectSocket(t, r.Handle)
		port = si.port
	} else if r.Sockname != nil {
		port = r.Sockname.Port
	} else {
		t.Fatalf("%s: listen(0): %s", f.name, r.Raw)
	}
	f.waitInRotation(r.Key)
	f.listening(q, port)
	return r.Key, port
}

// dialName dials slot procID through DialWorker and returns what the fake wrote on the
// connection (modeAccept: its name).
func dialName(t *testing.T, g *Group, procID, port int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := g.DialWorker(ctx, procID, port)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// TestDialWorker: under every policy the daemon reaches the worker it chooses, every time,
// whatever the rotation; the connection is not a client's (no counts, no place in the window);
// during a reload's overlap the newer run is dialed; a leaving worker is not.
func TestDialWorker(t *testing.T) {
	for _, policy := range []string{spec.PolicyRoundRobin, spec.PolicyShared, spec.PolicyReuseport} {
		t.Run(policy, func(t *testing.T) {
			checkLeaks(t)
			g := newTestGroup(t, policy)
			a := newFake(t, g, 1, "a", fakeOpts{})
			b := newFake(t, g, 2, "b", fakeOpts{})
			a.online()
			b.online()
			_, port := listenAny(t, a)
			listenAny(t, b)

			for i := range 6 {
				for _, tc := range []struct {
					procID int
					want   string
				}{{1, "a"}, {2, "b"}} {
					got, err := dialName(t, g, tc.procID, port)
					if err != nil || got != tc.want {
						t.Fatalf("dial %d of slot %d: %q, %v; want %q", i, tc.procID, got, err, tc.want)
					}
				}
			}
			waitIdle(t, a, b)
			for _, f := range []*fakeWorker{a, b} {
				if s := f.stats(); s.Connections != 0 || s.InFlight != 0 || s.Refused != 0 {
					t.Errorf("%s: the daemon's own connections were counted: %+v", f.name, s)
				}
			}

			// No slot 3; no key on another port.
			if _, err := dialName(t, g, 3, port); !errors.Is(err, ErrNoWorker) {
				t.Errorf("dial of a slot with no worker: %v, want ErrNoWorker", err)
			}
			if _, err := dialName(t, g, 1, port+1); !errors.Is(err, ErrNoWorker) {
				t.Errorf("dial on a port the app does not listen on: %v, want ErrNoWorker", err)
			}

			// A refusing worker (at maxConnections) is reported as such.
			b.setMode(modeRefuse)
			if _, err := dialName(t, g, 2, port); !errors.Is(err, ErrRefused) {
				t.Errorf("dial of a refusing worker: %v, want ErrRefused", err)
			}
			b.setMode(modeAccept)

			// A reload of slot 1: while both runs are in rotation, the new one is dialed.
			a2 := newFake(t, g, 1, "a2", fakeOpts{})
			a2.online()
			listenAny(t, a2)
			if got, err := dialName(t, g, 1, port); err != nil || got != "a2" {
				t.Fatalf("dial of slot 1 during the overlap: %q, %v; want a2", got, err)
			}
			// The new run leaves (told to disconnect): the old one is still in rotation.
			a2.w.Disconnect()
			if got, err := dialName(t, g, 1, port); err != nil || got != "a" {
				t.Fatalf("dial of slot 1 with its newer run leaving: %q, %v; want a", got, err)
			}
			a.w.Disconnect()
			if _, err := dialName(t, g, 1, port); !errors.Is(err, ErrNoWorker) {
				t.Errorf("dial of slot 1 with every run leaving: %v, want ErrNoWorker", err)
			}
		})
	}
}

// TestDialWorkerUnanswered: a worker that takes the connection and never answers makes
// DialWorker give up when its context ends; the worker's exit settles the connection, and
// nothing leaks.
func TestDialWorkerUnanswered(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, spec.PolicyRoundRobin)
	a := newFake(t, g, 1, "a", fakeOpts{mode: modeStuck})
	a.online()
	port := a.listen(0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if c, err := g.DialWorker(ctx, 1, port); !errors.Is(err, context.DeadlineExceeded) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial of a stuck worker: %v, want the context's deadline", err)
	}
	if a.nextConn().seq < 0 {
		t.Fatal("the stuck worker got no newconn")
	}
	a.die()
	if s := a.stats(); s.InFlight != 0 {
		t.Errorf("in flight after the worker died: %+v", s)
	}
}

// TestDialWorkerNack: a worker that NACKs the handle did not take the connection, and is
// asked to leave as for a client's (its handle slot is wedged).
func TestDialWorkerNack(t *testing.T) {
	checkLeaks(t)
	g := newTestGroup(t, spec.PolicyRoundRobin)
	a := newFake(t, g, 1, "a", fakeOpts{raw: true, mode: modeNack})
	a.online()
	port := a.listen(0)
	if _, err := dialName(t, g, 1, port); !errors.Is(err, ErrNotTaken) {
		t.Fatalf("dial of a NACKing worker: %v, want ErrNotTaken", err)
	}
	if _, err := dialName(t, g, 1, port); !errors.Is(err, ErrNoWorker) {
		t.Errorf("dial after the NACK: %v, want ErrNoWorker (the worker is leaving)", err)
	}
}
