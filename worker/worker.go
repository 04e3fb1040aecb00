package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/sdnotify"
	"golang.org/x/sys/unix"
)

// std is the process's worker state, set up from the environment when the package initialises,
// before any code of the program runs (as Node sets up a cluster worker before the app's code).
var std = newFromEnv()

// Listen returns a listener. Under corral cluster mode it is the app's socket, owned by the
// daemon, which hands this worker its share of the connections; under systemd-style socket
// activation (LISTEN_FDS/LISTEN_PID, optionally LISTEN_FDNAMES) it is the inherited socket that
// matches address (or the first one); otherwise net.Listen.
//
// When the process has both (an app in cluster mode that declares corral `listen` sockets), an
// inherited socket that matches address comes first, then the daemon's.
//
// In cluster mode, networks "tcp", "tcp4", "tcp6" and "unix" go through the daemon; other
// networks are passed to net.Listen. The daemon binds the address as Node would: ":8080" and
// "[::]:8080" are dual-stack, "0.0.0.0:8080" is IPv4 only (net.Listen makes it dual-stack too),
// a host name is resolved to one address, IPv4 first. Listen(":0") gives every worker the same
// port, chosen by the daemon; Addr reports it. Listening twice on the same address in one worker fails with
// EADDRINUSE, as it would without corral. The first successful Listen makes the worker ready
// for corral, unless the app uses wait_ready (see Ready). A connection the daemon hands over
// waits in the listener until Accept takes it; meanwhile the daemon gives the next ones to the
// other workers. The listener has no SetDeadline.
//
// Under socket activation, an inherited socket matches when its name (LISTEN_FDNAMES, systemd's
// FileDescriptorName=) equals address, or when it is bound to address (port 0 and an empty
// host match any). Otherwise the first inherited socket of the same kind (TCP or unix) not
// returned yet is used, so the order of Listen calls matters when several sockets are
// inherited. Once every inherited socket has been returned, Listen is net.Listen.
func Listen(network, address string) (net.Listener, error) { return std.listen(network, address) }

// Ready tells the process manager the worker is ready: corral's wait_ready ('ready' message),
// or systemd's sd_notify READY=1 when NOTIFY_SOCKET is set. A no-op otherwise.
//
// Without wait_ready, corral considers a cluster worker ready as soon as it listens, and Ready
// is not needed. With wait_ready: true, a reload only moves on to the next worker (and stops
// the old one) once the new worker has called Ready.
func Ready() error { return std.ready() }

// Shutdown is closed when the worker should stop: corral's disconnect, the 'shutdown' message
// (shutdown_with_message), SIGINT or SIGTERM.
//
// The first call to Shutdown, Context or ServeHTTP makes the package catch SIGINT and SIGTERM
// (unless they were ignored when the program started). A second such signal ends the process
// the default way, so a second Ctrl-C stops a server whose drain takes too long; a repeat within
// a quarter of a second counts as the same signal, and once a cluster worker has finished
// leaving (its channel closed), corral's kill_signal is ignored: main is returning anyway.
func Shutdown() <-chan struct{} { return std.shutdownChan() }

// Context is cancelled when Shutdown closes. context.Cause says why.
func Context() context.Context { return std.context() }

// ServeHTTP serves srv on ln until Shutdown, then drains: no new connections, in-flight requests
// finish, each keep-alive connection's next response says "Connection: close", idle keep-alive
// connections are closed only after a grace period (so no client loses a request it sent on an
// idle connection at the wrong moment), then it returns. Use it instead of srv.Serve.
//
// The grace period is one second, or CORRAL_DRAIN_GRACE_MS milliseconds when that variable is
// set (it is the same setting as for Node workers), or what DrainGrace says. It ends early once
// every connection has closed. In-flight requests are waited for without a time limit unless
// DrainTimeout sets one (corral's kill_timeout bounds the whole stop anyway; nothing does for a
// server run standalone).
//
// ServeHTTP returns nil after such a drain, and otherwise what srv.Serve returned (for example
// http.ErrServerClosed if srv was shut down by other means). In cluster mode it returns only
// once corral knows the worker is done, so returning from main right after is safe. To drain,
// it wraps srv.Handler and srv.ConnState (once per server); set them before calling it. Several
// ServeHTTP calls may share one server (several listeners).
func ServeHTTP(srv *http.Server, ln net.Listener, opts ...ServeOption) error {
	return std.serveHTTP(srv, ln, opts...)
}

// InCluster reports whether the process runs as a corral cluster worker.
func InCluster() bool { return std.cluster }

// ---------------------------------------------------------------------------------------------

var (
	errShuttingDown  = errors.New("the worker is shutting down")
	errDisconnect    = errors.New("worker: corral asked the worker to disconnect")
	errShutdownMsg   = errors.New("worker: received the 'shutdown' message")
	errChannelClosed = errors.New("worker: the channel to corral closed")
	errNoChannel     = errors.New("worker: no channel to corral")
)

// process is the state of one worker process. The package has one (std); tests make others,
// each with its own channel.
type process struct {
	ch      *nodeipc.Channel // nil without a channel; set before any use, then constant
	opened  chan struct{}    // closed once ch is set: the channel's handler waits for it
	cluster bool             // a cluster worker: the channel plus a worker id
	id      int
	act     *activation // LISTEN_FDS sockets; nil without
	logf    func(format string, args ...any)

	mu         sync.Mutex
	seq        int64                      // the worker's cluster message counter: online is 0
	pending    map[int64]replyFunc        // queryServer requests awaiting their reply
	leaveSeq   int64                      // the exitedAfterDisconnect request, when leaveAcked is set
	leaveAcked chan struct{}              // closed by its reply
	listeners  map[string]clusterListener // by key
	indexes    map[string]*indexSet       // by address tuple
	stopping   bool                       // shut down: no more listens through the daemon
	chanClosed bool                       // the channel has ended

	shutdown     chan struct{}
	shutdownOnce sync.Once
	ctx          context.Context
	cancel       context.CancelCauseFunc
	leftDone     chan struct{} // closed once the channel is closed after a shutdown (cluster)

	// The signals to catch: SIGINT and SIGTERM, unless they were ignored when the program
	// started. Only std catches any (newFromEnv); the other process values, none.
	sigs    []os.Signal
	sigOnce sync.Once

	serves  gauge // ServeHTTP calls running
	serveMu sync.Mutex
	drains  map[*http.Server]*httpDrain

	metricsState // request metrics (metrics.go)
}

// replyFunc receives the daemon's reply to a request (m, and the fd it carried), or err when
// no reply will come.
type replyFunc func(m *inMsg, h *os.File, err error)

func newProcess() *process {
	rt := &process{
		opened:    make(chan struct{}),
		pending:   map[int64]replyFunc{},
		listeners: map[string]clusterListener{},
		indexes:   map[string]*indexSet{},
		shutdown:  make(chan struct{}),
		leftDone:  make(chan struct{}),
		drains:    map[*http.Server]*httpDrain{},
		logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "corral worker: "+format+"\n", args...)
		},
	}
	rt.ctx, rt.cancel = context.WithCancelCause(context.Background())
	return rt
}

// newFromEnv sets the process's worker up from its environment: the channel to corral, and
// the sockets of socket activation. It never fails: whatever is unusable is reported on stderr
// and the worker runs standalone.
func newFromEnv() *process {
	rt := newProcess()
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			rt.sigs = append(rt.sigs, s)
		}
	}
	rt.act = activationFromEnv(rt.logf)

	fdStr, hasFD := os.LookupEnv(nodeipc.ChannelFDEnv)
	idStr, hasID := os.LookupEnv(nodeipc.WorkerIDEnv)
	// Children of the worker must not take themselves for workers (Node deletes its
	// variables at boot for the same reason).
	os.Unsetenv(nodeipc.ChannelFDEnv)
	os.Unsetenv(nodeipc.WorkerIDEnv)
	if !hasFD {
		close(rt.opened)
		return rt
	}
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 3 {
		rt.logf("ignoring %s=%q: not a file descriptor", nodeipc.ChannelFDEnv, fdStr)
		close(rt.opened)
		return rt
	}
	unix.CloseOnExec(fd)
	id := 0
	if hasID {
		if id, err = strconv.Atoi(idStr); err != nil || id <= 0 {
			rt.logf("ignoring %s=%q: not a worker id", nodeipc.WorkerIDEnv, idStr)
			id = 0
		}
	}
	if err := rt.open(os.NewFile(uintptr(fd), "corral-channel"), id); err != nil {
		rt.logf("cannot use the channel to corral (%s=%d): %v", nodeipc.ChannelFDEnv, fd, err)
	}
	return rt
}

// open starts the channel on f (taking it over) and, for a cluster worker (id > 0), announces
// the worker: {"cmd":"NODE_CLUSTER","act":"online","seq":0}, before anything else.
func (rt *process) open(f *os.File, id int) error {
	defer close(rt.opened)
	ch, err := nodeipc.Open(f, (*chanHandler)(rt), nodeipc.Options{})
	if err != nil {
		return err
	}
	rt.ch = ch
	if id > 0 {
		rt.cluster, rt.id = true, id
		if _, err := rt.send(func(seq int64) any { return actMsg{Cmd: cmdCluster, Act: "online", Seq: seq} }); err != nil {
			return err
		}
	}
	return nil
}

// send numbers and queues a cluster message; build gets the message's seq.
func (rt *process) send(build func(seq int64) any) (int64, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sendLocked(build)
}

func (rt *process) sendLocked(build func(seq int64) any) (int64, error) {
	if rt.ch == nil {
		return 0, errNoChannel
	}
	if rt.chanClosed {
		return 0, errChannelClosed
	}
	seq := rt.seq
	rt.seq++
	if err := rt.ch.Send(build(seq)); err != nil {
		return 0, err
	}
	return seq, nil
}

// ready sends corral's 'ready' and systemd's READY=1, whichever applies.
func (rt *process) ready() error {
	var errs []error
	if rt.ch != nil {
		if err := rt.ch.Send("ready"); err != nil {
			errs = append(errs, fmt.Errorf("worker: ready: %w", err))
		}
	}
	if _, err := sdnotify.Notify("READY=1"); err != nil {
		errs = append(errs, fmt.Errorf("worker: ready: %w", err))
	}
	return errors.Join(errs...)
}

func (rt *process) shutdownChan() <-chan struct{} {
	rt.watchSignals()
	return rt.shutdown
}

func (rt *process) context() context.Context {
	rt.watchSignals()
	return rt.ctx
}

// isShutdown reports whether Shutdown has closed.
func (rt *process) isShutdown() bool { return isClosed(rt.shutdown) }

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// signalRepeat is how close a second signal may follow the first and still be the same one
// delivered twice (a process manager that signals both the process group and the process,
// as older corral daemons and others do; far quicker than any human's second Ctrl-C).
const signalRepeat = 250 * time.Millisecond

// hasLeft reports whether a cluster worker has closed its channel after a shutdown.
func (rt *process) hasLeft() bool { return isClosed(rt.leftDone) }

// watchSignals makes SIGINT and SIGTERM close Shutdown, once; a second one ends the process
// the default way. Only the package's own process value (std) catches signals.
func (rt *process) watchSignals() {
	if len(rt.sigs) == 0 {
		return
	}
	rt.sigOnce.Do(func() {
		c := make(chan os.Signal, 4)
		signal.Notify(c, rt.sigs...)
		go func() {
			var last time.Time
			n := 0
			for s := range c {
				now := time.Now()
				if n > 0 && now.Sub(last) < signalRepeat {
					continue // the same signal again: corral signals the process group and the process
				}
				last = now
				if n++; n == 1 {
					rt.trigger(fmt.Errorf("worker: received %v", s))
					continue
				}
				if rt.cluster && rt.hasLeft() {
					continue // corral's kill_signal after the worker left: main is returning
				}
				// Give the signal back to its default action (or to the program's own
				// handlers, if it has any) and deliver it again.
				signal.Stop(c)
				if sig, ok := s.(syscall.Signal); ok {
					_ = syscall.Kill(os.Getpid(), sig)
				}
				return
			}
		}()
	})
}

// trigger closes Shutdown with cause, once. In cluster mode the worker leaves: its listeners
// close (the daemon hands their connections to other workers), and once no ServeHTTP is
// draining any more the channel is closed.
func (rt *process) trigger(cause error) {
	rt.shutdownOnce.Do(func() {
		// From now on every response of ServeHTTP's servers says Connection: close.
		rt.serveMu.Lock()
		for _, d := range rt.drains {
			d.draining.Store(true)
		}
		rt.serveMu.Unlock()
		// Shutdown first: whoever sees a listener fail from now on also sees Shutdown closed.
		rt.cancel(cause)
		close(rt.shutdown)
		if rt.cluster {
			rt.stopListening(errShuttingDown)
			go rt.leave()
		} else {
			close(rt.leftDone)
		}
	})
}

// stopListening fails pending listens with err and closes every listener of the daemon's.
func (rt *process) stopListening(err error) {
	rt.mu.Lock()
	rt.stopping = true
	pend := rt.pending
	rt.pending = map[int64]replyFunc{}
	ls := make([]clusterListener, 0, len(rt.listeners))
	for _, l := range rt.listeners {
		ls = append(ls, l)
	}
	rt.mu.Unlock()
	for _, f := range pend {
		f(nil, nil, err)
	}
	for _, l := range ls {
		l.Close()
	}
}

// Bounds of the last steps of a cluster worker. Nothing in the protocol times out, but a
// worker must not hang forever on a daemon that does not answer.
const (
	leaveAckTimeout = 5 * time.Second
	flushTimeout    = 5 * time.Second
)

// leave ends a cluster worker's channel once every ServeHTTP has drained. First the worker
// tells the daemon it is leaving (exitedAfterDisconnect, Node's worker.disconnect()) and waits
// for the daemon's answer, which comes after every connection the daemon handed to this worker:
// each of them has then been answered (given back, since the listeners are closed), and no
// connection is lost in the channel. Node's worker skips this message when the daemon asked it
// to disconnect; this worker sends it in both cases (the daemon answers it either way), because
// the daemon may queue one last connection concurrently with its disconnect message, and the
// channel acknowledges a connection by itself as soon as it arrives: closing the channel between
// that acknowledgement and the worker's answer would make the daemon close the connection.
func (rt *process) leave() {
	defer close(rt.leftDone)
	rt.serves.wait()
	acked := make(chan struct{})
	rt.mu.Lock()
	if rt.chanClosed {
		rt.mu.Unlock()
		return
	}
	seq, err := rt.sendLocked(func(seq int64) any {
		return actMsg{Cmd: cmdCluster, Act: "exitedAfterDisconnect", Seq: seq}
	})
	if err == nil {
		rt.leaveSeq, rt.leaveAcked = seq, acked
	}
	rt.mu.Unlock()
	if err == nil {
		t := time.NewTimer(leaveAckTimeout)
		select {
		case <-acked:
		case <-rt.ch.Done():
		case <-t.C:
			rt.logf("corral did not acknowledge exitedAfterDisconnect within %v", leaveAckTimeout)
		}
		t.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	_ = rt.ch.Flush(ctx)
	_ = rt.ch.Close()
	<-rt.ch.Done()
}

// gauge counts calls in progress (ServeHTTP calls, Serve loops); wait returns once none is.
// Unlike a sync.WaitGroup, it may go up again from zero while someone waits.
type gauge struct {
	mu      sync.Mutex
	n       int
	dropped chan struct{} // closed and cleared whenever n drops; made by wait
}

func (g *gauge) add() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

func (g *gauge) done() {
	g.mu.Lock()
	g.n--
	if g.dropped != nil {
		close(g.dropped)
		g.dropped = nil
	}
	g.mu.Unlock()
}

func (g *gauge) wait() {
	for {
		g.mu.Lock()
		if g.n == 0 {
			g.mu.Unlock()
			return
		}
		if g.dropped == nil {
			g.dropped = make(chan struct{})
		}
		ch := g.dropped
		g.mu.Unlock()
		<-ch
	}
}

// ---------------------------------------------------------------------------------------------
// The channel's handler: everything the daemon sends, on the channel's reader goroutine.

type chanHandler process

func (h *chanHandler) HandleMessage(m nodeipc.Message) {
	rt := (*process)(h)
	<-rt.opened
	if !m.Internal {
		if m.Handle != nil {
			m.Handle.Close()
		}
		// PM2's shutdown_with_message: the string "shutdown".
		if string(m.Raw) == `"shutdown"` {
			rt.trigger(errShutdownMsg)
		}
		return
	}
	rt.handleInternal(m)
}

func (h *chanHandler) HandleBadLine(line []byte, err error) {
	if len(line) > 200 {
		line = append(line[:200:200], "..."...)
	}
	(*process)(h).logf("ignored a line from corral that is not JSON (%v): %q", err, line)
}

// HandleClose: the channel ended. Unless the worker closed it itself, the daemon is gone (or
// closed it), and a cluster worker shuts down: no connection can reach it any more.
func (h *chanHandler) HandleClose(err error) {
	rt := (*process)(h)
	<-rt.opened
	rt.mu.Lock()
	rt.chanClosed = true
	rt.mu.Unlock()
	if !rt.cluster {
		return
	}
	rt.stopListening(errChannelClosed)
	if !rt.isShutdown() {
		if err != nil && !errors.Is(err, nodeipc.ErrClosed) {
			rt.logf("the channel to corral failed: %v", err)
		}
		rt.trigger(errChannelClosed)
	}
}
