package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// Dialing one chosen worker, for per-worker health checks (docs/containers.md §5). A client of
// the app's port reaches whichever worker the daemon (or, under the shared and reuseport
// policies, the kernel) hands it to, so a worker that is up but broken can hide behind a healthy
// one. The daemon reaches one worker on purpose instead: it makes a loopback TCP connection
// pair and hands the server side to that worker on the app's key with newconn, exactly as it
// hands a client's connection (docs/node-cluster-protocol.md §5.5). Node's net.Server and the
// worker package accept it as they accept any other; the daemon then speaks on the client
// side. This works under every policy: a worker on a shared or reuseport key takes a newconn
// on the real handle it holds, as it takes the connections of a socket no worker accepts on
// (docs/node-cluster-protocol.md §6.6).
//
// Such a connection is not a client's: it never enters the rotation, does not count in the
// worker's window or its connection counts, and is never given to another worker. Refused,
// NACKed or lost with its worker, it is closed and the caller learns why.

// Errors of DialWorker, for callers that tell them apart.
var (
	// ErrNoWorker: no run of the process slot is in rotation on the port (it does not
	// listen there, has not yet, or is leaving).
	ErrNoWorker = errors.New("the worker does not accept connections there (it does not listen there, or is leaving)")
	// ErrRefused: the worker answered accepted:false (its server for the key is closed, or at
	// server.maxConnections).
	ErrRefused = errors.New("the worker refused the connection (server closed, or at maxConnections)")
	// ErrNotTaken: the worker did not take the connection handle (NACK, or its channel closed).
	ErrNotTaken = errors.New("the worker did not take the connection")
	// ErrWorkerGone: the worker ended before it answered.
	ErrWorkerGone = errors.New("the worker ended before it answered")
)

// dialWorkerTimeout bounds DialWorker when its context has no deadline: a worker whose event
// loop is stuck never answers a newconn.
const dialWorkerTimeout = 5 * time.Second

// DialWorker connects to the current run of process slot procID through its server on TCP
// port (one of TCPPorts). The run must be in rotation there: a worker that
// is leaving (told to disconnect, or disconnecting on its own) or gone is not dialed; during a
// reload's overlap the newer run is. It returns once the worker has accepted the connection,
// or ctx ends (dialWorkerTimeout if it has no deadline). The caller closes the connection.
func (g *Group) DialWorker(ctx context.Context, procID, port int) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialWorkerTimeout)
		defer cancel()
	}
	h, w := g.workerOn(procID, port)
	if h == nil {
		return nil, fmt.Errorf("port %d: %w", port, ErrNoWorker)
	}
	client, server, err := loopbackPair(ctx)
	if err != nil {
		return nil, err
	}
	result, err := w.sendProbe(h, server)
	server.Close() // the channel holds its own copy until it is sent
	if err != nil {
		client.Close()
		return nil, err
	}
	select {
	case err := <-result:
		if err != nil {
			client.Close()
			return nil, err
		}
		return client, nil
	case <-ctx.Done():
		// The worker answers later, or ends: the probe is settled then, with nothing to close.
		client.Close()
		return nil, fmt.Errorf("the worker did not accept the connection: %w", ctx.Err())
	}
}

// TCPPorts lists the ports of the app's TCP keys, ascending: where DialWorker can reach a
// worker. Unix paths and datagram sockets are not among them.
func (g *Group) TCPPorts() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for _, h := range g.handles {
		if !h.udp && h.name != nil && !slices.Contains(out, h.name.Port) {
			out = append(out, h.name.Port)
		}
	}
	slices.Sort(out)
	return out
}

// workerOn finds the newest run of slot procID in rotation on the TCP key bound to port, and
// that key; nil if there is none.
func (g *Group) workerOn(procID, port int) (*handle, *worker) {
	g.mu.Lock()
	hs := make([]*handle, 0, len(g.handles))
	for _, h := range g.handles {
		hs = append(hs, h)
	}
	g.mu.Unlock()
	var (
		bestH *handle
		bestW *worker
	)
	for _, h := range hs {
		if h.udp || h.name == nil || h.name.Port != port {
			continue // a unix path, a datagram socket, another port
		}
		h.mu.Lock()
		for w := range h.workers {
			if w.procID != procID || !w.live() {
				continue
			}
			if bestW == nil || w.id > bestW.id {
				bestH, bestW = h, w
			}
		}
		h.mu.Unlock()
	}
	return bestH, bestW
}

// live reports whether the worker can take connections (liveLocked).
func (w *worker) live() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.liveLocked()
}

// sendProbe hands server (the worker's end of a loopback pair) to w on h's key with newconn.
// The returned channel gets the worker's answer: nil once it accepted the connection. The
// caller may close server on return: the channel sends a copy.
func (w *worker) sendProbe(h *handle, server *net.TCPConn) (<-chan error, error) {
	result := make(chan error, 1)
	raw, err := server.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("loopback connection: %w", err)
	}
	// h.mu, then w.mu, as dispatchLocked and sendConn take them: the worker cannot leave the
	// key (or close its channel for the daemon) between the check and the newconn.
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, in := h.workers[w]; !in || h.closed {
		return nil, fmt.Errorf("port %d: %w", h.name.Port, ErrNoWorker)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.liveLocked() {
		return nil, fmt.Errorf("port %d: %w", h.name.Port, ErrNoWorker)
	}
	seq := w.nextSeqLocked()
	w.inflight[seq] = &inflightConn{h: h, probe: result}
	msg := clusterReply(reply{"act": "newconn", "key": h.key, "seq": seq})
	var sendErr error
	if cerr := raw.Control(func(fd uintptr) {
		sendErr = w.ch.SendHandle("net.Native", msg, int(fd), func(acked bool) { w.onHandleResult(seq, acked) })
	}); cerr != nil {
		sendErr = cerr
	}
	if sendErr != nil {
		delete(w.inflight, seq)
		return nil, fmt.Errorf("hand the connection to the worker: %w", sendErr)
	}
	return result, nil
}

// settleProbe reports a probe connection's fate to DialWorker (which may have stopped
// waiting: the channel has room for the one answer). It is called once per probe, by whoever
// took it out of w.inflight.
func (ic *inflightConn) settleProbe(err error) {
	select {
	case ic.probe <- err:
	default:
	}
}

// loopbackPair makes a connected TCP pair on 127.0.0.1, by ctx's deadline (DialWorker gives
// it one). The listener lives only for the pair, so no port stays open for other local users
// to connect to; a stranger that connects in that instant is not taken for the daemon's own
// dial.
func loopbackPair(ctx context.Context) (client net.Conn, server *net.TCPConn, err error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("loopback listener: %w", err)
	}
	ln := l.(*net.TCPListener)
	defer ln.Close()
	var d net.Dialer
	client, err = d.DialContext(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("loopback dial: %w", err)
	}
	deadline, _ := ctx.Deadline()
	_ = ln.SetDeadline(deadline)
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			client.Close()
			return nil, nil, fmt.Errorf("loopback accept: %w", err)
		}
		if c.RemoteAddr().String() == client.LocalAddr().String() {
			return client, c, nil
		}
		c.Close()
	}
}
