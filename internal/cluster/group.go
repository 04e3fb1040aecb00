// Package cluster makes the daemon the cluster primary of an app's Node.js workers, speaking
// Node's own cluster protocol over each worker's IPC channel (the primary's side of
// docs/node-cluster-protocol.md §5–§7): workers call listen() unmodified, the daemon owns the
// listening sockets and, with the default round-robin policy, accepts every connection and hands
// it to the next worker over SCM_RIGHTS (the one with the fewest unanswered hand-offs, in turn;
// see HandoffWindow). Workers then answer their clients directly; the daemon is not in the data
// path.
//
// Sockets belong to the app (a Group), not to a worker: they stay open while workers crash,
// restart, reload or scale, and close only when the app stops (CloseListeners).
package cluster

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// Group is the cluster primary of one app.
type Group struct {
	app        string
	policy     string
	logf       func(format string, args ...any)
	staleAfter time.Duration // staleHandoff, but for tests
	// rescueTick and rescueAfter pace the reuseport rescue (rescue.go); tests change them.
	rescueTick, rescueAfter time.Duration

	wg sync.WaitGroup // accept loops, and the reuseport queue watchers (rescue.go)

	mu           sync.Mutex
	handles      map[string]*handle
	nextWorkerID int
	slots        map[int]*slotStats // by process id
	keeper       SocketKeeper       // keeps the sockets for the next daemon (resume.go), or nil

	// logMu is its own lock: throttled logging happens while handle locks are held.
	logMu   sync.Mutex
	lastLog time.Time
}

// slotStats are one process slot's share of the app's connections, kept across its runs.
type slotStats struct {
	conns    atomic.Uint64
	refused  atomic.Uint64
	inflight atomic.Int64
	workerID atomic.Int64
	// serving is the slot's run that listened last: during a reload the old and the new run
	// overlap, and the slot shows the new one as soon as it listens.
	serving atomic.Pointer[worker]
	// req are the requests its runs answered, as their preload reports them (metrics.go).
	req slotRequests
	// resumeFrom is the last report of the run an earlier daemon had counted last (g.mu):
	// AdoptWorker gives it back to that run (keptrequests.go).
	resumeFrom *runReport
}

// NewGroup creates the primary for app. policy is spec.PolicyRoundRobin (or "") or
// spec.PolicyShared. logf reports problems to the daemon log.
func NewGroup(app, policy string, logf func(format string, args ...any)) *Group {
	if policy == "" {
		policy = spec.PolicyRoundRobin
	}
	return &Group{app: app, policy: policy, logf: logf, staleAfter: staleHandoff, rescueTick: rescueTick, rescueAfter: rescueAfter, handles: map[string]*handle{}, slots: map[int]*slotStats{}}
}

var _ supervisor.WorkerProtocol = (*Group)(nil)

// slotLocked returns slot procID's stats, created on first use. g.mu held.
func (g *Group) slotLocked(procID int) *slotStats {
	st := g.slots[procID]
	if st == nil {
		st = &slotStats{}
		g.slots[procID] = st
	}
	return st
}

// NewWorker prepares the cluster side of a run of process procID.
func (g *Group) NewWorker(procID int, ctl supervisor.WorkerControl) (supervisor.Worker, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextWorkerID++
	st := g.slotLocked(procID)
	if st.serving.Load() == nil {
		st.workerID.Store(int64(g.nextWorkerID))
	}
	return &worker{
		g:         g,
		procID:    procID,
		id:        g.nextWorkerID,
		ctl:       ctl,
		stats:     st,
		inflight:  map[int64]*inflightConn{},
		handles:   map[*handle]bool{},
		listening: map[string]bool{},
		attached:  make(chan struct{}),
	}, nil
}

// handleFor returns the handle for a queryServer's key, opening its socket on first use.
func (g *Group) handleFor(m *clusterMsg) (*handle, error) {
	key := m.key()
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.handles[key]
	if h == nil {
		ls, err := m.listenSpec()
		if err != nil {
			return nil, err
		}
		shared := g.policy == spec.PolicyShared || ls.network == "udp"
		// Reuseport is for TCP: unix sockets have no reuseport groups, so they go round-robin.
		reuse := g.policy == spec.PolicyReuseport && ls.network == "tcp"
		ls.reusePort = reuse
		var sock *socketFile
		switch {
		case shared:
			sock, err = openBound(ls)
		case reuse:
			sock, err = openReuseGroup(ls)
		default:
			sock, err = openPolledListener(ls)
		}
		if err != nil {
			return nil, err // Node forgets a key whose bind failed; the next query retries
		}
		h = newHandle(g, key, sock, shared, ls.network == "udp")
		h.name, _ = socknameOf(sock)
		h.addr = describeAddr(ls, h.name)
		g.handles[key] = h
		policy := g.policy
		switch {
		case reuse:
			// The first socket of the group, for the first slot that asks (reuseport.go).
			h.sock, h.reuse, h.ls = nil, true, ls
			h.mu.Lock()
			h.addSlotSockLocked(sock.fd(), noSlot)
			h.mu.Unlock()
		case !shared:
			if policy != spec.PolicyRoundRobin {
				policy = spec.PolicyRoundRobin + " (" + ls.network + ")"
			}
			g.wg.Add(1)
			go h.acceptLoop()
		}
		g.logf("%s: %s listener on %s", g.app, policy, h.addr)
		if g.keeper != nil {
			// Under g.mu: a CloseListeners cannot drop it from the keeper before it is kept.
			if reuse {
				h.mu.Lock()
				g.keepSlotSockLocked(h, h.socks[0])
				h.mu.Unlock()
			} else {
				g.keeper.KeepSocket(handleKeptName(key), h.keptMeta(), sock.fd())
			}
		}
	}
	return h, nil
}

func describeAddr(ls listenSpec, name *sockname) string {
	if ls.network == "unix" {
		return ls.address
	}
	proto := ""
	if ls.network == "udp" {
		proto = "udp "
	}
	if name != nil {
		if name.Family == "IPv6" {
			return fmt.Sprintf("%s[%s]:%d", proto, name.Address, name.Port)
		}
		return fmt.Sprintf("%s%s:%d", proto, name.Address, name.Port)
	}
	return fmt.Sprintf("%s%s:%d", proto, ls.address, ls.port)
}

// CloseListeners closes every socket of the app and the connections waiting on them: the
// app's ports close. A later listen() by a worker opens them again.
func (g *Group) CloseListeners() {
	g.mu.Lock()
	hs := g.handles
	g.handles = map[string]*handle{}
	g.mu.Unlock()
	for _, h := range hs {
		names := h.keptNames()
		h.close()
		if g.keeper != nil {
			for _, name := range names {
				g.keeper.DropSocket(name)
			}
		}
		g.logf("%s: closed %s", g.app, h.addr)
	}
	g.wg.Wait()
}

// Listeners lists the addresses the app's sockets are bound to.
func (g *Group) Listeners() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.handles))
	for _, h := range g.handles {
		out = append(out, h.addr)
	}
	sort.Strings(out)
	return out
}

// Stats is one process slot's share of the app's connections.
type Stats struct {
	WorkerID    int
	Listening   []string
	Connections uint64 // handed off and accepted
	Refused     uint64 // answered accepted:false
	InFlight    int    // handed off, not answered yet
	// Requests are what the slot's runs answered, reported by corral's preload; zero for a
	// worker that never reported (preload off, or not an HTTP server).
	Requests RequestStats
}

// Stats returns the distribution of connections, by process id.
func (g *Group) Stats() map[int]Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[int]Stats, len(g.slots))
	now := time.Now()
	for id, st := range g.slots {
		s := Stats{
			WorkerID:    int(st.workerID.Load()),
			Connections: st.conns.Load(),
			Refused:     st.refused.Load(),
			InFlight:    int(st.inflight.Load()),
			Requests:    st.req.snapshot(now),
		}
		if w := st.serving.Load(); w != nil {
			s.Listening = w.listeningAddrs()
		}
		out[id] = s
	}
	return out
}

// Forget drops a deleted process slot's statistics.
func (g *Group) Forget(procID int) {
	g.mu.Lock()
	delete(g.slots, procID)
	g.mu.Unlock()
}

// logThrottled logs at most one message a second, for things that can repeat per connection.
func (g *Group) logThrottled(format string, args ...any) {
	g.logMu.Lock()
	now := time.Now()
	if now.Sub(g.lastLog) < time.Second {
		g.logMu.Unlock()
		return
	}
	g.lastLog = now
	g.logMu.Unlock()
	g.logf(format, args...)
}
