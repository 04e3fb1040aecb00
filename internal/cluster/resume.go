package cluster

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/corral-pm/corral/internal/supervisor"
	"golang.org/x/sys/unix"
)

// This file lets a cluster outlive the daemon: the app's sockets are kept by the daemon's
// keeper (SocketKeeper) and each worker's place in the protocol is recorded (workerState), so
// that the next daemon restores the sockets (RestoreHandle, RestoreSockets) and resumes
// speaking Node's cluster protocol with every worker where the last one stood (AdoptWorker):
// its NODE_UNIQUE_ID, the keys it listens on and whether it was leaving. New hand-offs are
// numbered afresh: a worker echoes the primary's seq and never checks it against a counter,
// and answers to hand-offs of the old daemon find no entry and are ignored.

// SocketKeeper keeps an app's sockets for the next daemon (the daemon's keeper). name is
// unique within the app; meta describes the socket for RestoreHandle/RestoreSockets.
type SocketKeeper interface {
	// KeepSocket hands the keeper a copy of fd (the caller's stays open and its own).
	KeepSocket(name string, meta any, fd int)
	DropSocket(name string)
}

// handleMeta describes a kept handle.
type handleMeta struct {
	Key    string          `json:"key"`
	Shared bool            `json:"shared,omitempty"`
	UDP    bool            `json:"udp,omitempty"`
	Addr   string          `json:"addr"`
	Name   *sockname       `json:"sockname,omitempty"`
	Path   string          `json:"path,omitempty"` // unix socket path, removed when the handle closes
	Data   json.RawMessage `json:"data,omitempty"`
	// Reuseport sockets (reuseport.go): one entry per socket, Index its place, Slot the
	// process slot it is handed to (noSlot: none yet).
	Reuse bool `json:"reuseport,omitempty"`
	Index int  `json:"index,omitempty"`
	Slot  int  `json:"slot,omitempty"`
}

// handleKeptName is the keeper's name of a handle's socket.
func handleKeptName(key string) string { return "handle:" + key }

// slotSockKeptName is the keeper's name of a reuseport socket of key.
func slotSockKeptName(key string, index int) string {
	return fmt.Sprintf("%s#%d", handleKeptName(key), index)
}

// keptNames are the keeper's names of every socket of h.
func (h *handle) keptNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.reuse {
		return []string{handleKeptName(h.key)}
	}
	out := make([]string, 0, len(h.socks))
	for _, s := range h.socks {
		out = append(out, slotSockKeptName(h.key, s.index))
	}
	return out
}

// keepSlotSockLocked hands the keeper s (new, or given to another slot). h.mu held; the
// keeper is read without g.mu, which KeepWith sets before any worker runs.
func (g *Group) keepSlotSockLocked(h *handle, s *slotSock) {
	if g.keeper == nil {
		return
	}
	g.keeper.KeepSocket(slotSockKeptName(h.key, s.index), h.slotMetaLocked(s), s.fd)
}

// slotMetaLocked describes a reuseport socket for the keeper. h.mu held.
func (h *handle) slotMetaLocked(s *slotSock) handleMeta {
	return handleMeta{Key: h.key, Addr: h.addr, Name: h.name, Data: h.data, Reuse: true, Index: s.index, Slot: s.slot}
}

// KeepWith makes the group hand every socket it opens to k (and drop it when it closes it).
// Set before any worker runs.
func (g *Group) KeepWith(k SocketKeeper) {
	g.mu.Lock()
	g.keeper = k
	g.mu.Unlock()
}

// keepHandle hands h's socket (or its new description) to the keeper. h.mu must not be held.
func (g *Group) keepHandle(h *handle) {
	g.mu.Lock()
	k := g.keeper
	g.mu.Unlock()
	if k == nil {
		return
	}
	if h.reuse {
		h.mu.Lock()
		for _, s := range h.socks {
			g.keepSlotSockLocked(h, s)
		}
		h.mu.Unlock()
		return
	}
	k.KeepSocket(handleKeptName(h.key), h.keptMeta(), h.sock.fd())
}

// keptMeta describes h for the keeper (RestoreHandle reads it back).
func (h *handle) keptMeta() handleMeta {
	h.mu.Lock()
	defer h.mu.Unlock()
	return handleMeta{Key: h.key, Shared: h.shared, UDP: h.udp, Addr: h.addr, Name: h.name, Path: h.sock.path, Data: h.data}
}

// RestoreHandle reopens a handle an earlier daemon kept (meta as keepHandle wrote it, f its
// socket; the group takes f over). Accepting resumes once a worker is back in rotation.
func (g *Group) RestoreHandle(meta json.RawMessage, f *os.File) error {
	var m handleMeta
	if err := json.Unmarshal(meta, &m); err != nil || m.Key == "" {
		f.Close()
		return fmt.Errorf("kept socket of %s: unreadable description %q", g.app, meta)
	}
	// Non-blocking, as it was created: the daemon's accept and the workers' (shared policy)
	// rely on it.
	fd, err := keptFD(f, true)
	if err != nil {
		return fmt.Errorf("kept socket %s of %s: %w", m.Addr, g.app, err)
	}
	var sock *socketFile
	switch {
	case m.Reuse:
		return g.restoreSlotSock(m, fd)
	case m.Shared:
		sock = &socketFile{raw: fd, path: m.Path} // held: the workers accept on it
	default:
		if sock, err = newSocketFile(fd, m.Addr, m.Path); err != nil {
			return fmt.Errorf("kept socket %s of %s: %w", m.Addr, g.app, err)
		}
	}
	h := newHandle(g, m.Key, sock, m.Shared, m.UDP)
	h.name, h.addr, h.data = m.Name, m.Addr, m.Data
	g.mu.Lock()
	if old := g.handles[m.Key]; old != nil {
		g.mu.Unlock()
		sock.path = "" // not removed: the path belongs to the one kept already
		sock.close()
		return fmt.Errorf("kept socket %s of %s: key %s is open already", m.Addr, g.app, m.Key)
	}
	g.handles[m.Key] = h
	if !h.shared {
		g.wg.Add(1)
		go h.acceptLoop()
	}
	g.mu.Unlock()
	g.logf("%s: %s listener on %s taken over", g.app, g.policy, h.addr)
	return nil
}

// restoreSlotSock puts back one reuseport socket of a key (the first one back creates the
// handle) from fd, the raw fd keptFD made of it. Its accept loop serves it until the worker of
// its slot is adopted again.
func (g *Group) restoreSlotSock(m handleMeta, fd int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.handles[m.Key]
	if h == nil {
		h = newHandle(g, m.Key, nil, false, false)
		h.reuse = true
		h.name, h.addr, h.data = m.Name, m.Addr, m.Data
		g.handles[m.Key] = h
		g.logf("%s: %s listener on %s taken over", g.app, g.policy, h.addr)
	} else if !h.reuse {
		unix.Close(fd)
		return fmt.Errorf("kept socket %s of %s: key %s is open already", m.Addr, g.app, m.Key)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.socks {
		if s.index == m.Index {
			unix.Close(fd)
			return fmt.Errorf("kept socket %s of %s: socket %d of key %s is open already", m.Addr, g.app, m.Index, m.Key)
		}
	}
	s := h.addSlotSockLocked(fd, m.Slot)
	s.index = m.Index // as the keeper names it: later sockets of this key follow on
	return nil
}

// workerState is where a worker stands in the protocol (supervisor.Worker.State).
type workerState struct {
	ID            int      `json:"id"` // NODE_UNIQUE_ID
	Online        bool     `json:"online,omitempty"`
	Disconnecting bool     `json:"disconnecting,omitempty"`
	Keys          []string `json:"keys,omitempty"`      // the handles it is in rotation on
	Listening     []string `json:"listening,omitempty"` // from its 'listening' messages
}

// State implements supervisor.Worker.
func (w *worker) State() json.RawMessage {
	w.mu.Lock()
	st := workerState{ID: w.id, Online: w.online, Disconnecting: w.disconnecting}
	for h := range w.handles {
		st.Keys = append(st.Keys, h.key)
	}
	w.mu.Unlock()
	st.Listening = w.listeningAddrs()
	b, _ := json.Marshal(st)
	return b
}

// AdoptWorker implements supervisor.WorkerProtocol: the worker as State described it. It
// goes back into rotation on its keys once its channel is attached.
func (g *Group) AdoptWorker(procID int, raw json.RawMessage, ctl supervisor.WorkerControl) (supervisor.Worker, error) {
	var st workerState
	if err := json.Unmarshal(raw, &st); err != nil || st.ID <= 0 {
		return nil, fmt.Errorf("unreadable worker state %q", raw)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextWorkerID = max(g.nextWorkerID, st.ID)
	stats := g.slotLocked(procID)
	w := &worker{
		g: g, procID: procID, id: st.ID, ctl: ctl, stats: stats,
		inflight: map[int64]*inflightConn{}, handles: map[*handle]bool{}, listening: map[string]bool{},
		attached: make(chan struct{}), online: st.Online, disconnecting: st.Disconnecting,
	}
	for _, a := range st.Listening {
		w.listening[a] = true
	}
	for _, k := range st.Keys {
		if h := g.handles[k]; h != nil {
			w.handles[h] = true
			w.resume = append(w.resume, h)
		}
	}
	if len(w.listening) > 0 {
		stats.serving.Store(w)
		stats.workerID.Store(int64(w.id))
	}
	if rr := stats.resumeFrom; rr != nil && rr.run == st.ID {
		// Its next report adds what it counted since this one (RestoreRequests).
		w.lastReport, stats.resumeFrom = rr.report, nil
	}
	return w, nil
}

// RestoreStats gives process procID the connection counts an earlier daemon had counted for
// it, so that `describe`'s distribution goes on from there.
func (g *Group) RestoreStats(procID int, conns, refused uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.slotLocked(procID)
	st.conns.Store(conns)
	st.refused.Store(refused)
}
