package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

// fakeProtocol is a WorkerProtocol that records its workers. A run is ready when it sends the
// internal message {"cmd":"NODE_TEST_LISTENING"} on its channel (as a cluster worker's first
// 'listening'); on Disconnect a worker drains at once (the channel reports it), unless
// noDrain is set, when the protocol cannot disconnect it.
type fakeProtocol struct {
	noDrain bool
	newErr  error

	mu      sync.Mutex
	workers []*fakeWorker
}

func (fp *fakeProtocol) NewWorker(id int, ctl WorkerControl) (Worker, error) {
	if fp.newErr != nil {
		return nil, fp.newErr
	}
	w := &fakeWorker{fp: fp, id: id, ctl: ctl}
	fp.mu.Lock()
	fp.workers = append(fp.workers, w)
	fp.mu.Unlock()
	return w, nil
}

// AdoptWorker recreates a worker from the id its State recorded.
func (fp *fakeProtocol) AdoptWorker(id int, state json.RawMessage, ctl WorkerControl) (Worker, error) {
	w := &fakeWorker{fp: fp, id: id, ctl: ctl, adopted: string(state)}
	fp.mu.Lock()
	fp.workers = append(fp.workers, w)
	fp.mu.Unlock()
	return w, nil
}

func (fp *fakeProtocol) all() []*fakeWorker {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return append([]*fakeWorker(nil), fp.workers...)
}

// withWorker sets the hooks' protocol to fp.
func withWorker(fp *fakeProtocol) func(*Hooks) {
	return func(hk *Hooks) { hk.Protocol = Protocol{Worker: fp} }
}

// fakeWorker is the protocol side of one run.
type fakeWorker struct {
	fp  *fakeProtocol
	id  int
	ctl WorkerControl

	mu          sync.Mutex
	pid         int
	channel     bool
	internal    []string
	disconnects int
	closed      int
	ended       int
	adopted     string // the state it was adopted with
}

func (w *fakeWorker) State() json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"id":%d}`, w.id)) }

func (w *fakeWorker) Env() []string { return []string{"NODE_UNIQUE_ID=42"} }

func (w *fakeWorker) Attach(ch *nodeipc.Channel, pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.channel, w.pid = ch != nil, pid
}

func (w *fakeWorker) HandleInternal(m nodeipc.Message) {
	w.mu.Lock()
	w.internal = append(w.internal, m.Cmd)
	w.mu.Unlock()
	if m.Cmd == "NODE_TEST_LISTENING" {
		w.ctl.Ready()
	}
}

func (w *fakeWorker) HandleChannelClose() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed++
}

func (w *fakeWorker) Disconnect() bool {
	w.mu.Lock()
	w.disconnects++
	w.mu.Unlock()
	if w.fp.noDrain {
		return false
	}
	// The real protocol reports the end of the drain from the channel's reader goroutine.
	go w.ctl.Disconnected()
	return true
}

func (w *fakeWorker) Ended() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended++
}

// state returns a copy of what the worker recorded.
func (w *fakeWorker) state() (pid int, channel bool, internal []string, disconnects, closed, ended int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid, w.channel, append([]string(nil), w.internal...), w.disconnects, w.closed, w.ended
}

// workerBody is a cluster worker in shell: it records its channel variables, says it is
// listening (internal message on the channel, fd $CORRAL_CHANNEL_FD), sends a line that is not
// JSON and a user message, then echoes the first message it receives into "got.<pid>".
const workerBody = `
trap 'echo INT > "$DIR/stopped.$$"; exit 0' INT
echo "$CORRAL_CHANNEL_FD $CORRAL_WORKER_ID $NODE_CHANNEL_FD" > "$DIR/env.$$"
echo $$ > "$DIR/armed.$$"
echo '{"cmd":"NODE_TEST_LISTENING"}' >&3
echo 'not json' >&3
echo '{"hello":"world"}' >&3
read -r msg <&3
echo "$msg" > "$DIR/got.$$"
while :; do sleep 0.05; done
`

// TestWorkerProtocol: in cluster mode a run gets the channel and the worker's variables (under
// corral's names: it is not Node), is ready when its protocol says so, receives Send's
// messages and delivers user messages to Hooks.Message; a stop disconnects it first and sends
// the kill signal once it has drained.
func TestWorkerProtocol(t *testing.T) {
	fp := &fakeProtocol{}
	var mu sync.Mutex
	var messages []string
	h := newHarnessHooks(t, workerBody, func(a *spec.App) { a.ExecMode = spec.ModeCluster }, func(hk *Hooks) {
		hk.Protocol = Protocol{Worker: fp}
		hk.Message = func(id int, m nodeipc.Message) {
			mu.Lock()
			defer mu.Unlock()
			messages = append(messages, string(m.Raw))
		}
	})

	pid := h.start().PID
	h.armed(pid)
	if env := h.waitFile(gate("env", pid)); env != "3 42 " {
		t.Fatalf("CORRAL_CHANNEL_FD, CORRAL_WORKER_ID, NODE_CHANNEL_FD = %q, want \"3 42 \"", env)
	}
	// Online at once, as PM2 shows a cluster worker; ready once it listens.
	testutil.WaitFor(t, "the worker to be ready", waitTimeout, func() bool { return h.p.Info().Ready })
	if info := h.p.Info(); info.Status != StatusOnline {
		t.Fatalf("Info = %+v", info)
	}
	h.wantEvents(0, "start", "online")
	workers := fp.all()
	if len(workers) != 1 || workers[0].id != 3 {
		t.Fatalf("workers %+v", workers)
	}
	w := workers[0]
	if wpid, channel, internal, _, _, _ := w.state(); wpid != pid || !channel || len(internal) != 1 {
		t.Fatalf("worker: pid %d channel %v internal %v", wpid, channel, internal)
	}
	testutil.WaitFor(t, "the user message", waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(messages) == 1
	})
	if messages[0] != `{"hello":"world"}` {
		t.Fatalf("messages %q", messages)
	}
	waitFileContains(t, h.p.Info().Files.Err, "corral: ignored a line on the IPC channel that is not JSON")

	if err := h.p.Send(map[string]string{"to": "worker"}); err != nil {
		t.Fatal(err)
	}
	if got := h.waitFile(gate("got", pid)); got != `{"to":"worker"}` {
		t.Fatalf("the worker got %q", got)
	}

	h.stop()
	if got := h.waitFile(gate("stopped", pid)); got != "INT" {
		t.Fatalf("stopped by %s", got)
	}
	testutil.WaitFor(t, "the channel to close", waitTimeout, func() bool {
		_, _, _, _, closed, _ := w.state()
		return closed == 1
	})
	if _, _, _, disconnects, _, ended := w.state(); disconnects != 1 || ended != 1 {
		t.Fatalf("disconnects %d, ended %d; want 1 each", disconnects, ended)
	}
	h.wantEvents(0, "start", "online", "exit", "stop")
}

// TestWorkerCannotDisconnect: a worker the protocol cannot disconnect gets its kill signal at
// once.
func TestWorkerCannotDisconnect(t *testing.T) {
	fp := &fakeProtocol{noDrain: true}
	h := newHarnessHooks(t, workerBody, nil, withWorker(fp))
	pid := h.start().PID
	h.waitStatus(StatusOnline)
	if err := h.p.Send("x"); err != nil {
		t.Fatal(err)
	}
	h.waitFile(gate("got", pid))
	h.stop()
	if got := h.waitFile(gate("stopped", pid)); got != "INT" {
		t.Fatalf("stopped by %s", got)
	}
}

// TestWorkerWaitReady: with wait_ready only the app's own 'ready' message makes a worker ready,
// not its protocol.
func TestWorkerWaitReady(t *testing.T) {
	fp := &fakeProtocol{}
	h := newHarnessHooks(t, `
trap 'exit 0' INT
echo '{"cmd":"NODE_TEST_LISTENING"}' >&3
echo $$ > "$DIR/armed.$$"
while [ ! -e "$DIR/ready.$$" ]; do sleep 0.02; done
echo '"ready"' >&3
while :; do sleep 0.05; done
`, waitReady, withWorker(fp))
	pid := h.start().PID
	h.armed(pid)
	testutil.WaitFor(t, "the internal message", waitTimeout, func() bool {
		ws := fp.all()
		if len(ws) != 1 {
			return false
		}
		_, _, internal, _, _, _ := ws[0].state()
		return len(internal) == 1
	})
	if st := h.p.Info().Status; st != StatusLaunching {
		t.Fatalf("status %s after the protocol's ready, want launching (wait_ready)", st)
	}
	h.touch(gate("ready", pid))
	h.waitStatus(StatusOnline)
	h.wantEvents(0, "start", "online")
}

// TestWorkerReloadNeverListens: a cluster worker's replacement that never listens fails the
// reload, saying so.
func TestWorkerReloadNeverListens(t *testing.T) {
	fp := &fakeProtocol{}
	h := newHarnessHooks(t, countedBody(`2) trap 'exit 0' INT; while :; do sleep 0.05; done ;;`, workerBody), func(a *spec.App) {
		a.ListenTimeout = 500
	}, withWorker(fp))
	old := procOf(h.start().PID)
	testutil.WaitFor(t, "the first run to listen", waitTimeout, func() bool { return h.p.Info().Ready })
	_, err := h.p.Reload(h.ctx(), nil)
	var re *ReloadError
	if !errors.As(err, &re) || !strings.HasSuffix(re.Reason, "it never called listen()") {
		t.Fatalf("Reload = %v", err)
	}
	if info := h.p.Info(); info.PID != old.pid || info.Status != StatusOnline {
		t.Fatalf("Info = %+v", info)
	}
	if err := h.p.Send("x"); err != nil {
		t.Fatal(err)
	}
	h.waitFile(gate("got", old.pid))
}

// TestWorkerReplaceOnMemoryLimit: a ready cluster worker over its memory limit is replaced by a
// reload (its app keeps serving); a fork-mode process is restarted.
func TestWorkerReplaceOnMemoryLimit(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		fp := &fakeProtocol{}
		h := newHarnessHooks(t, `
trap 'exit 0' INT
echo '{"cmd":"NODE_TEST_LISTENING"}' >&3
while :; do sleep 0.05; done
`, func(a *spec.App) { a.MaxMemoryRestart = 100 << 20 }, withWorker(fp))
		old := procOf(h.start().PID)
		// A cluster worker is online at once (as in PM2); only a ready one (it listened) is
		// replaced by a reload.
		testutil.WaitFor(t, "the worker to listen", waitTimeout, func() bool { return h.p.Info().Ready })
		n := h.events.len()
		if err := h.p.MemoryExceeded(h.ctx(), 200<<20); err != nil {
			t.Fatalf("MemoryExceeded: %v", err)
		}
		h.waitEvent(n, "exit")
		h.wantEvents(n, "memory limit", "reload", "online", "exit")
		if ev := h.events.all()[n]; !strings.Contains(ev.Message, "over max_memory_restart") {
			t.Fatalf("memory limit event %+v", ev)
		}
		waitDead(t, old)
		if info := h.p.Info(); info.Restarts != 1 || info.PID == old.pid || info.Status != StatusOnline {
			t.Fatalf("Info = %+v", info)
		}
	})
	t.Run("fork", func(t *testing.T) {
		h := newHarness(t, gracefulBody, func(a *spec.App) { a.MaxMemoryRestart = 100 << 20 })
		old := procOf(h.start().PID)
		h.armed(old.pid)
		n := h.events.len()
		if err := h.p.MemoryExceeded(h.ctx(), 200<<20); err != nil {
			t.Fatalf("MemoryExceeded: %v", err)
		}
		h.waitEvent(n, "online")
		h.wantEvents(n, "memory limit", "exit", "stop", "restart", "start", "online")
		waitDead(t, old)
	})
}

// TestWorkerCannotBeCreated: a protocol that refuses a worker makes the start fail.
func TestWorkerCannotBeCreated(t *testing.T) {
	fp := &fakeProtocol{newErr: errors.New("no primary")}
	h := newHarnessHooks(t, gracefulBody, nil, withWorker(fp))
	if err := h.p.Start(); err == nil || !strings.Contains(err.Error(), "cluster worker: no primary") {
		t.Fatalf("Start = %v", err)
	}
	if info := h.p.Info(); info.Status != StatusErrored {
		t.Fatalf("Info = %+v", info)
	}
}

// TestSendWithoutChannel: a fork-mode program that is not Node has no channel to send to.
func TestSendWithoutChannel(t *testing.T) {
	h := newHarness(t, gracefulBody, nil)
	h.start()
	if err := h.p.Send("x"); err == nil || !strings.Contains(err.Error(), "has no IPC channel") {
		t.Fatalf("Send = %v", err)
	}
	h.stop()
	if err := h.p.Send("x"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Send = %v", err)
	}
}

// TestWorkerReloadAppNeverListens: a cluster app that never calls listen() at all (a worker
// with no server) is judged as in fork mode: online at once, ready after listen_timeout, and
// a reload replaces it once the replacement has stayed up min_uptime. PM2 reloads such apps.
func TestWorkerReloadAppNeverListens(t *testing.T) {
	fp := &fakeProtocol{}
	h := newHarnessHooks(t, `trap 'exit 0' INT; echo $$ > "$DIR/armed.$$"; while :; do sleep 0.05; done`, func(a *spec.App) {
		a.ListenTimeout = 300
		a.MinUptime = 200
	}, withWorker(fp))
	first := h.start().PID
	if info := h.p.Info(); info.Status != StatusOnline || info.Ready {
		t.Fatalf("right after start: %+v, want online and not ready", info)
	}
	testutil.WaitFor(t, "listen_timeout to judge it ready", waitTimeout, func() bool { return h.p.Info().Ready })
	res, err := h.p.Reload(h.ctx(), nil)
	if err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if info := h.p.Info(); res.OldPID != first || info.PID == first || info.PID != res.NewPID || info.Status != StatusOnline {
		t.Fatalf("Reload = %+v, Info = %+v", res, info)
	}
}
