package cluster

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/corral-pm/corral/internal/nodeipc"
	"github.com/corral-pm/corral/internal/supervisor"
	"golang.org/x/sys/unix"
)

// worker is the primary's side of one cluster worker (one run of a process slot).
type worker struct {
	g      *Group
	procID int
	id     int // NODE_UNIQUE_ID
	ctl    supervisor.WorkerControl
	stats  *slotStats

	mu            sync.Mutex
	ch            *nodeipc.Channel
	pid           int
	seq           int64
	inflight      map[int64]*inflightConn // newconn seq → connection
	handles       map[*handle]bool        // keys the worker listens on
	listening     map[string]bool         // addresses from its 'listening' messages
	online        bool                    // it speaks the protocol (sent 'online')
	disconnecting bool                    // we asked it to disconnect, or it said exitedAfterDisconnect
	gone          bool                    // channel closed or process exited

	// attached is closed once the channel is attached (or the run ended): a message read
	// before Attach waits for it instead of finding no channel to answer on.
	attached     chan struct{}
	attachedOnce sync.Once
	// resume: an adopted worker's handles, back into rotation once attached (resume.go).
	resume []*handle
	// lastReport is the run's last accepted metrics report (metrics.go), nil before the first.
	lastReport *metricsReport
}

// inflightConn is a connection handed to the worker and not answered yet.
type inflightConn struct {
	h     *handle
	c     *pendingConn
	acked bool // the worker received the fd (NODE_HANDLE_ACK)
	// probe is set for the daemon's own connection to this worker (dial.go), and gets its
	// fate; c is nil then: the channel sent a copy of the fd, which is not the daemon's to keep.
	probe chan error
}

var _ supervisor.Worker = (*worker)(nil)

func (w *worker) Env() []string { return []string{"NODE_UNIQUE_ID=" + strconv.Itoa(w.id)} }

func (w *worker) Attach(ch *nodeipc.Channel, pid int) {
	w.mu.Lock()
	w.ch, w.pid = ch, pid
	resume := w.resume
	w.resume = nil
	back := ch != nil && w.online && !w.disconnecting && !w.gone
	w.mu.Unlock()
	w.attachedOnce.Do(func() { close(w.attached) })
	if back {
		for _, h := range resume {
			if h.reuse {
				h.resumeOwner(w)
			}
			h.add(w)
		}
	}
}

// listeningAddrs lists the addresses the worker said it listens on.
func (w *worker) listeningAddrs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.listening))
	for a := range w.listening {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// nextSeqLocked numbers the primary's messages to this worker.
func (w *worker) nextSeqLocked() int64 {
	w.seq++
	return w.seq
}

func (w *worker) send(fields reply) error {
	w.mu.Lock()
	ch := w.ch
	if ch == nil || w.gone {
		w.mu.Unlock()
		return nodeipc.ErrClosed
	}
	fields["seq"] = w.nextSeqLocked()
	w.mu.Unlock()
	return ch.Send(clusterReply(fields))
}

// HandleInternal dispatches the worker's cluster messages (docs/node-cluster-protocol.md §5.2).
func (w *worker) HandleInternal(m nodeipc.Message) {
	<-w.attached
	if m.Handle != nil {
		m.Handle.Close() // the primary takes no handle from a worker, in cluster messages or others
	}
	if m.Cmd == MetricsCmd {
		w.onMetrics(m.Raw)
		return
	}
	if m.Cmd != "NODE_CLUSTER" {
		return
	}
	var msg clusterMsg
	if err := json.Unmarshal(m.Raw, &msg); err != nil {
		w.g.logThrottled("%s worker %d: unreadable cluster message: %v", w.g.app, w.id, err)
		return
	}
	if msg.Ack != nil {
		if msg.Accepted != nil {
			w.onAccepted(*msg.Ack, *msg.Accepted)
		}
		return
	}
	switch msg.Act {
	case "online":
		w.mu.Lock()
		w.online = true
		w.mu.Unlock()
		w.ctl.StateChanged()
	case "queryServer":
		w.onQueryServer(&msg)
	case "listening":
		w.onListening(&msg)
	case "close":
		w.onClose(msg.Key)
	case "exitedAfterDisconnect":
		w.onExitedAfterDisconnect(&msg)
	}
}

// onQueryServer answers a listen() (docs/node-cluster-protocol.md §5.4): round-robin replies
// with the socket's name and puts the worker in rotation; shared hands over the socket itself.
func (w *worker) onQueryServer(m *clusterMsg) {
	if m.Seq == nil {
		return
	}
	w.mu.Lock()
	leaving := w.disconnecting || w.gone
	w.mu.Unlock()
	if leaving {
		return // Node's primary does not answer a worker on its way out either
	}
	key := m.key()
	h, err := w.g.handleFor(m)
	base := reply{"ack": *m.Seq, "key": key, "data": m.Data}
	if isNull(m.Data) {
		base["data"] = nil
	}
	if err != nil {
		reason := err.Error()
		if ls, lerr := m.listenSpec(); lerr == nil {
			reason = listenFailure(ls, err)
		}
		w.refuseListen(base, err, reason)
		return
	}
	// The first worker's data (TLS session ticket keys) is every worker's
	// (docs/node-cluster-protocol.md §5.4).
	h.mu.Lock()
	newData := isNull(h.data) && !isNull(m.Data)
	if newData {
		h.data = m.Data
	}
	if !isNull(h.data) {
		base["data"] = h.data
	}
	h.mu.Unlock()
	if newData {
		w.g.keepHandle(h) // the next daemon gives later workers the same data
	}
	w.mu.Lock()
	w.handles[h] = true
	w.mu.Unlock()
	if h.reuse {
		w.handOwnSocket(h, base)
		return
	}
	if h.shared {
		typ := "net.Native"
		if h.udp {
			typ = "dgram.Native"
		}
		w.handSocket(h, base, typ, h.sock.fd())
		return
	}
	base["errno"] = nil
	if h.name != nil {
		base["sockname"] = h.name
	}
	if err := w.send(base); err != nil {
		return
	}
	// The reply is queued before any newconn, so the worker knows the key when one arrives.
	h.add(w)
	w.ctl.StateChanged()
}

// refuseListen answers a queryServer with err's errno, after logging reason and telling the
// process (before the answer: it learns of the failure before the worker can exit of it).
func (w *worker) refuseListen(base reply, err error, reason string) {
	base["errno"] = errnoOf(err)
	w.g.logf("%s worker %d: %s", w.g.app, w.id, reason)
	w.ctl.ListenFailed(reason)
	_ = w.send(base)
}

// handOwnSocket answers a queryServer on a reuseport key (reuseport.go) with the worker's own
// listening socket: its slot's. It is also in the key's rotation, for the connections the
// daemon accepts on sockets no worker listens on.
func (w *worker) handOwnSocket(h *handle, base reply) {
	s, undo, err := h.takeSlotSock(w, w.g.liveSlots())
	if err != nil {
		w.refuseListen(base, err, fmt.Sprintf("listen on %s failed: %v", h.addr, err))
		return
	}
	if !w.handSocket(h, base, "net.Native", s.fd) {
		undo()
	}
}

// handSocket answers a queryServer on h with the socket fd itself (typ: its handle type), and
// puts w in h's rotation once it is sent. It reports whether it was.
func (w *worker) handSocket(h *handle, base reply, typ string, fd int) bool {
	base["errno"] = 0
	w.mu.Lock()
	ch := w.ch
	base["seq"] = w.nextSeqLocked()
	w.mu.Unlock()
	if ch == nil {
		return false
	}
	if err := ch.SendHandle(typ, clusterReply(base), fd, nil); err != nil {
		w.g.logf("%s worker %d: cannot hand over %s: %v", w.g.app, w.id, h.addr, err)
		return false
	}
	h.add(w)
	w.ctl.StateChanged()
	return true
}

func (w *worker) onListening(m *clusterMsg) {
	addr := jsString(m.Port)
	if jsString(m.AddrType) == "-1" {
		addr = jsString(m.Address)
	} else if !isNull(m.Address) {
		addr = jsString(m.Address) + ":" + addr
	}
	w.mu.Lock()
	w.listening[addr] = true
	w.mu.Unlock()
	w.stats.serving.Store(w)
	w.stats.workerID.Store(int64(w.id))
	w.ctl.StateChanged()
	w.ctl.Ready()
}

func (w *worker) onClose(key string) {
	w.g.mu.Lock()
	h := w.g.handles[key]
	w.g.mu.Unlock()
	if h == nil {
		return
	}
	h.remove(w)
	w.mu.Lock()
	delete(w.handles, h)
	w.mu.Unlock()
	w.ctl.StateChanged()
}

// onExitedAfterDisconnect: the worker is disconnecting on its own (cluster.worker.disconnect()
// or kill()); it waits for this ack before closing its channel
// (docs/node-cluster-protocol.md §7.5).
func (w *worker) onExitedAfterDisconnect(m *clusterMsg) {
	w.leaveRotation()
	w.mu.Lock()
	w.disconnecting = true
	w.mu.Unlock()
	w.ctl.StateChanged()
	if m.Seq != nil {
		_ = w.send(reply{"ack": *m.Seq})
	}
}

// liveLocked reports whether the worker can take connections: attached, not leaving, not
// gone. w.mu held.
func (w *worker) liveLocked() bool {
	return w.ch != nil && !w.gone && !w.disconnecting
}

// sendConn hands one connection to the worker: newconn with the fd
// (docs/node-cluster-protocol.md §5.5). Called with h.mu held; it only queues.
func (w *worker) sendConn(h *handle, c *pendingConn) error {
	w.mu.Lock()
	if !w.liveLocked() {
		w.mu.Unlock()
		return nodeipc.ErrClosed
	}
	seq := w.nextSeqLocked()
	w.inflight[seq] = &inflightConn{h: h, c: c}
	w.stats.inflight.Add(1)
	// Queued under w.mu (it does not block), so a concurrent Disconnect's message always
	// follows this newconn on the channel, never overtakes it.
	msg := clusterReply(reply{"act": "newconn", "key": h.key, "seq": seq})
	err := w.ch.SendHandleBorrowed("net.Native", msg, c.fd, func(acked bool) { w.onHandleResult(seq, acked) })
	if err != nil {
		delete(w.inflight, seq)
		w.stats.inflight.Add(-1)
	}
	w.mu.Unlock()
	return err
}

// onHandleResult: NODE_HANDLE_ACK means the worker holds the connection and will answer;
// NACK (or the channel closing first) means it never got it, so it goes to another worker.
// A worker that NACKs a handle that carried an fd has a wedged handle slot (every later handle
// is NACKed too, docs/node-cluster-protocol.md §4.2), so it leaves the rotation.
func (w *worker) onHandleResult(seq int64, acked bool) {
	w.mu.Lock()
	ic := w.inflight[seq]
	if ic == nil {
		w.mu.Unlock()
		return
	}
	if acked {
		ic.acked = true
		w.mu.Unlock()
		return
	}
	delete(w.inflight, seq)
	gone := w.gone
	w.mu.Unlock()
	if ic.probe == nil {
		w.stats.inflight.Add(-1)
	}
	if !gone {
		// Ask it to leave: it drains and exits, and the supervisor starts a healthy one.
		w.g.logThrottled("%s worker %d: refused a connection handle (NACK): its channel cannot take handles any more; replacing it", w.g.app, w.id)
		w.Disconnect()
	}
	w.leaveRotation()
	if ic.probe != nil {
		ic.settleProbe(ErrNotTaken)
		return
	}
	ic.h.requeue(ic.c)
}

// onAccepted is the worker's answer to a newconn.
func (w *worker) onAccepted(seq int64, accepted bool) {
	w.mu.Lock()
	ic := w.inflight[seq]
	delete(w.inflight, seq)
	w.mu.Unlock()
	if ic == nil {
		return
	}
	if ic.probe != nil {
		// Not a client's connection: it takes no place in the window and counts nowhere.
		if accepted {
			ic.settleProbe(nil)
		} else {
			ic.settleProbe(ErrRefused)
		}
		return
	}
	if accepted {
		closeConn(ic.c.fd) // the worker has its own copy now
		w.stats.conns.Add(1)
	} else {
		w.stats.refused.Add(1)
		ic.h.requeue(ic.c)
	}
	ic.h.release(w)
	w.stats.inflight.Add(-1) // last: InFlight 0 means the worker is back in rotation too
}

// leaveRotation stops handing the worker connections, on every key.
func (w *worker) leaveRotation() {
	w.mu.Lock()
	hs := make([]*handle, 0, len(w.handles))
	for h := range w.handles {
		hs = append(hs, h)
	}
	w.mu.Unlock()
	for _, h := range hs {
		h.remove(w)
	}
}

// Disconnect is Node's worker.disconnect() from the primary
// (docs/node-cluster-protocol.md §7.6): out of rotation first, then asked to close its servers,
// finish its connections and leave.
func (w *worker) Disconnect() bool {
	w.mu.Lock()
	if w.ch == nil || w.gone || !w.online {
		// A program that never said 'online' does not speak the protocol (a server using
		// inherited sockets, say): it gets its kill signal instead.
		w.mu.Unlock()
		return false
	}
	already := w.disconnecting
	w.disconnecting = true
	w.mu.Unlock()
	w.leaveRotation()
	if already {
		return true
	}
	if err := w.send(reply{"act": "disconnect"}); err != nil {
		return false
	}
	w.ctl.StateChanged()
	return true
}

// HandleChannelClose: the worker's channel closed (it disconnected or died).
func (w *worker) HandleChannelClose() {
	w.finish()
	w.ctl.Disconnected()
}

// Ended: the worker process exited.
func (w *worker) Ended() { w.finish() }

// finish takes the worker out of everything. Connections it acknowledged but never answered
// are closed (it may have started on them; they cannot be given to another worker safely).
func (w *worker) finish() {
	w.mu.Lock()
	if w.gone {
		w.mu.Unlock()
		return
	}
	w.gone = true
	lost := w.inflight
	w.inflight = map[int64]*inflightConn{}
	w.mu.Unlock()
	w.leaveRotation()
	for _, ic := range lost {
		if ic.probe != nil {
			ic.settleProbe(ErrWorkerGone)
			continue
		}
		w.stats.inflight.Add(-1)
		if ic.acked {
			unix.Close(ic.c.fd)
		} else {
			ic.h.requeue(ic.c)
		}
	}
	w.stats.serving.CompareAndSwap(w, nil)
	w.forgetGauges()
	w.attachedOnce.Do(func() { close(w.attached) })
}

// String names the worker in messages.
func (w *worker) String() string { return fmt.Sprintf("%s worker %d (pid %d)", w.g.app, w.id, w.pid) }
