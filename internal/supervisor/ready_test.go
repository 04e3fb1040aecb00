package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// waitReady makes an app wait for its ready signal, for 10 minutes: in these tests the signal
// comes, or listen_timeout is set shorter on purpose.
func waitReady(a *spec.App) {
	a.WaitReady = true
	a.ListenTimeout = 600_000
}

// TestWaitReadyNotify: with wait_ready a run is "launching" until it sends READY=1 to its
// NOTIFY_SOCKET (through our helper, or systemd's own systemd-notify), then "online". Each run
// has a socket of its own, in Hooks.NotifyDir, removed when the run ends.
func TestWaitReadyNotify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		notify string
	}{
		{"helper", notifyCmd},
		{"systemd-notify", "systemd-notify --ready --no-block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "systemd-notify" {
				if _, err := exec.LookPath("systemd-notify"); err != nil {
					t.Skip("systemd-notify is not installed")
				}
			}
			body := strings.Replace(readyGateBody, notifyCmd, tc.notify, 1)
			body = `echo "$NOTIFY_SOCKET" > "$DIR/socket.$$"` + "\n" + body
			h := newHarness(t, body, waitReady)
			pid := h.start().PID
			h.armed(pid)
			if info := h.p.Info(); info.Status != StatusLaunching || info.Ready {
				t.Fatalf("before READY=1: %+v", info)
			}
			h.wantEvents(0, "start")
			socket := h.waitFile(gate("socket", pid))
			if filepath.Dir(socket) != h.hooks.NotifyDir {
				t.Fatalf("NOTIFY_SOCKET %q is not in NotifyDir %s", socket, h.hooks.NotifyDir)
			}
			if st, err := os.Stat(socket); err != nil || st.Mode()&os.ModeSocket == 0 {
				t.Fatalf("NOTIFY_SOCKET %s: %v", socket, err)
			}

			h.touch(gate("ready", pid))
			info := h.waitStatus(StatusOnline)
			if !info.Ready || info.PID != pid {
				t.Fatalf("after READY=1: %+v", info)
			}
			h.wantEvents(0, "start", "online")
			if ev := h.events.all()[1]; ev.Message != "sd_notify READY=1" || ev.PID != pid {
				t.Fatalf("online event = %+v", ev)
			}

			// The next run gets a socket of its own; the old one is gone.
			if err := h.p.Restart(h.ctx(), nil); err != nil {
				t.Fatal(err)
			}
			next := h.p.Info().PID
			if other := h.waitFile(gate("socket", next)); other == socket {
				t.Fatalf("the second run got the same NOTIFY_SOCKET %s", socket)
			}
			if _, err := os.Stat(socket); !os.IsNotExist(err) {
				t.Fatalf("the first run's socket is still there: %v", err)
			}
			h.touch(gate("ready", next))
			h.waitStatus(StatusOnline)
		})
	}
}

// TestReadyNeedsReadyOne: other sd_notify assignments do not make a run ready, and READY=1
// without wait_ready changes nothing (it is online at once, as in PM2's fork mode).
func TestReadyNeedsReadyOne(t *testing.T) {
	body := `
trap 'exit 0' INT
echo $$ > "$DIR/armed.$$"
` + helperEnv + `=notify "$HELPER" STATUS=starting READY=0
echo sent > "$DIR/sent.$$"
while [ ! -e "$DIR/ready.$$" ]; do sleep 0.02; done
` + notifyCmd + `
while :; do sleep 0.05; done
`
	t.Run("wait_ready", func(t *testing.T) {
		h := newHarness(t, body, waitReady)
		pid := h.start().PID
		h.waitFile(gate("sent", pid))
		touched := time.Now()
		h.touch(gate("ready", pid))
		ev, _ := h.waitEvent(0, "online")
		if !ev.Time.After(touched) {
			t.Fatalf("online at %v, before READY=1 was sent (%v)", ev.Time, touched)
		}
	})
	t.Run("no wait_ready", func(t *testing.T) {
		h := newHarness(t, body, nil)
		info := h.start()
		if info.Status != StatusOnline || !info.Ready {
			t.Fatalf("Info = %+v", info)
		}
		h.touch(gate("ready", info.PID))
		h.wantEvents(0, "start", "online")
	})
}

// TestListenTimeoutWithoutReady: a run with wait_ready that never says it is ready is called
// online once listen_timeout has passed, as PM2 does.
func TestListenTimeoutWithoutReady(t *testing.T) {
	const listenTimeout = 300 * time.Millisecond
	h := newHarness(t, gracefulBody, func(a *spec.App) {
		a.WaitReady = true
		a.ListenTimeout = spec.Millis(listenTimeout.Milliseconds())
	})
	pid := h.start().PID
	info := h.waitStatus(StatusOnline)
	if !info.Ready || info.PID != pid {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "online")
	start, online := h.events.all()[0], h.events.all()[1]
	if online.Message != "listen_timeout passed without a ready signal" {
		t.Fatalf("online event = %+v", online)
	}
	if d := online.Time.Sub(start.Time); d < listenTimeout {
		t.Fatalf("online %v after the start, before listen_timeout %v", d, listenTimeout)
	}
}

// TestStopBeforeReady: a run stopped while it waits to be ready never becomes online, even if
// its signal comes during the stop.
func TestStopBeforeReady(t *testing.T) {
	// On SIGINT it sends READY=1, then exits.
	h := newHarness(t, `
trap '`+notifyCmd+`; exit 0' INT
echo $$ > "$DIR/armed.$$"
while :; do sleep 0.05; done
`, waitReady)
	pid := h.start().PID
	h.armed(pid)
	h.stop()
	info := h.p.Info()
	if info.Status != StatusStopped || info.Ready || info.ExitCode != 0 {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "exit", "stop")
}

// testSockets is an app's inherited socket: a TCP listener of the test's, passed to each run
// as fd 3. Its probe connects and expects the "ok" of the helper's server (a connection the
// kernel queued is not an answer).
type testSockets struct {
	ln *net.TCPListener
}

func (s *testSockets) Files() ([]*os.File, []string, error) {
	f, err := s.ln.File()
	if err != nil {
		return nil, nil, err
	}
	return []*os.File{f}, []string{"web"}, nil
}

func (s *testSockets) Probe(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ok\n" {
		return fmt.Errorf("probe: got %q", line)
	}
	return nil
}

// TestInheritedSocketProbe: a run that inherits the app's socket gets it as fd 3 with
// systemd's variables (LISTEN_PID its own pid, through the exec shim), and without wait_ready
// is ready once it has stayed up a second and the port answers. Its app owns its port, so a
// trigger replaces it with a reload.
func TestInheritedSocketProbe(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessHooks(t, "", func(a *spec.App) {
		a.Script = self
		a.Env[helperEnv] = "serve"
		a.ListenTimeout = 20_000
	}, func(hk *Hooks) {
		hk.ExecShim = self
		hk.Protocol = Protocol{Sockets: &testSockets{ln: ln}}
	})
	pid := h.start().PID
	if env := h.waitFile(gate("listen", pid)); env != strconv.Itoa(pid)+" 1 web" {
		t.Fatalf("LISTEN_PID LISTEN_FDS LISTEN_FDNAMES = %q (pid %d)", env, pid)
	}
	online, _ := h.waitEvent(0, "online")
	start := h.events.all()[0]
	if online.Message != "port answers" || online.PID != pid {
		t.Fatalf("online event = %+v", online)
	}
	if d := online.Time.Sub(start.Time); d < time.Second {
		t.Fatalf("ready %v after the start: it did not stay up a second first", d)
	}

	n := h.events.len()
	if err := h.p.Trigger(h.ctx(), "watch: app.js changed"); err != nil {
		t.Fatalf("Trigger: %v", err)
	}
	ev, _ := h.waitEvent(n, "exit")
	if ev.PID != pid {
		t.Fatalf("exit event %+v", ev)
	}
	h.wantEvents(n, "trigger", "reload", "online", "exit")
	if info := h.p.Info(); info.PID == pid || info.Status != StatusOnline || info.Restarts != 1 {
		t.Fatalf("Info = %+v", info)
	}
}
