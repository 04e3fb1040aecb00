package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/nodeipc"
	"golang.org/x/sys/unix"
)

// The worker side of Node's cluster protocol (docs/node-cluster-protocol.md §5 and §7), as
// Node's lib/internal/cluster/child.js speaks it.

const cmdCluster = "NODE_CLUSTER"

// actMsg is a worker message with no other field: online, exitedAfterDisconnect.
type actMsg struct {
	Cmd string `json:"cmd"`
	Act string `json:"act"`
	Seq int64  `json:"seq"`
}

// closeMsg: the worker closed its server for key.
type closeMsg struct {
	Cmd string `json:"cmd"`
	Act string `json:"act"`
	Key string `json:"key"`
	Seq int64  `json:"seq"`
}

// acceptedMsg answers a newconn.
type acceptedMsg struct {
	Cmd      string `json:"cmd"`
	Ack      int64  `json:"ack"`
	Accepted bool   `json:"accepted"`
	Seq      int64  `json:"seq"`
}

// serverMsg is queryServer and listening, with Node's fields in Node's order
// (docs/node-cluster-protocol.md §5.3):
// {"cmd","act","index","data","address","port","addressType","flags"?,"backlog","seq"}.
type serverMsg struct {
	Cmd         string          `json:"cmd"`
	Act         string          `json:"act"`
	Index       int             `json:"index"`
	Data        json.RawMessage `json:"data"`
	Address     *string         `json:"address"`
	Port        int             `json:"port"`
	AddressType int             `json:"addressType"`
	Flags       *int            `json:"flags,omitempty"`
	Backlog     int             `json:"backlog"`
	Seq         int64           `json:"seq"`
}

// inMsg is any NODE_CLUSTER message from the daemon.
type inMsg struct {
	Cmd      string          `json:"cmd"`
	Act      string          `json:"act"`
	Seq      *int64          `json:"seq"`
	Ack      *int64          `json:"ack"`
	Key      string          `json:"key"`
	Errno    json.RawMessage `json:"errno"`
	Sockname *sockname       `json:"sockname"`
}

// sockname is the daemon's socket address in a round-robin reply (Node's server.address()).
type sockname struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
}

var jsonNull = json.RawMessage("null")

// handleInternal dispatches an internal message: replies to pending requests by ack, then
// newconn and disconnect. Everything else is ignored, as Node ignores it.
func (rt *process) handleInternal(m nodeipc.Message) {
	closeHandle := func() {
		if m.Handle != nil {
			m.Handle.Close()
		}
	}
	if m.Cmd != cmdCluster {
		closeHandle()
		return
	}
	var msg inMsg
	if err := json.Unmarshal(m.Raw, &msg); err != nil {
		rt.logf("ignored a cluster message from corral that cannot be read (%v): %s", err, m.Raw)
		closeHandle()
		return
	}
	if msg.Ack != nil {
		rt.mu.Lock()
		f := rt.pending[*msg.Ack]
		delete(rt.pending, *msg.Ack)
		var left chan struct{}
		if rt.leaveAcked != nil && rt.leaveSeq == *msg.Ack {
			left, rt.leaveAcked = rt.leaveAcked, nil
		}
		rt.mu.Unlock()
		if f != nil {
			f(&msg, m.Handle, nil)
			return
		}
		if left != nil {
			closeHandle()
			close(left)
			return
		}
	}
	switch msg.Act {
	case "newconn":
		rt.onNewconn(&msg, m.Handle)
	case "disconnect":
		closeHandle()
		// Out of rotation already: close, drain, leave (docs/node-cluster-protocol.md §7.6).
		rt.trigger(errDisconnect)
	default:
		closeHandle()
	}
}

// onNewconn queues a connection for the listener of its key; without one (it closed), the
// connection goes back to the daemon, which gives it to another worker.
func (rt *process) onNewconn(m *inMsg, h *os.File) {
	if h == nil {
		return // the channel NACKs a handle message without an fd and drops it
	}
	if m.Seq == nil {
		h.Close() // cannot be answered; the daemon would wait for ever
		rt.logf("ignored a connection from corral without seq")
		return
	}
	rt.mu.Lock()
	l, _ := rt.listeners[m.Key].(pushListener)
	rt.mu.Unlock()
	if l == nil || !l.push(*m.Seq, h) {
		h.Close()
		rt.sendAccepted(*m.Seq, false)
	}
}

// replyFlushTimeout bounds how long Accept waits for its answer to be written: only a daemon
// that stopped reading makes it wait at all.
const replyFlushTimeout = time.Second

// flushReply waits until the channel has written everything queued, the accepted answer just
// queued (and the handle's ACK) included. The daemon puts a worker back in its rotation only
// once it has read that answer, and Node writes it synchronously, before it even reads the
// request. Without the wait, the channel's writer goroutine competes with the goroutine that
// serves the connection, a fast server answers its client first, and the daemon hands the
// client's next connection to another worker out of turn. It costs no throughput: the daemon
// sends this worker nothing more on the key until it has the answer.
func (rt *process) flushReply() {
	ctx, cancel := context.WithTimeout(context.Background(), replyFlushTimeout)
	_ = rt.ch.Flush(ctx)
	cancel()
}

func (rt *process) sendAccepted(seq int64, accepted bool) {
	_, _ = rt.send(func(s int64) any { return acceptedMsg{Cmd: cmdCluster, Ack: seq, Accepted: accepted, Seq: s} })
}

// ---------------------------------------------------------------------------------------------
// Listen.

// listen picks the socket: an inherited one that matches address (corral's `listen` sockets,
// systemd's), else the daemon's (cluster mode), else the first inherited one left, else a new
// one. An app that declares `listen` sockets in cluster mode gets both the sockets and the
// channel; asking the daemon for an address its inherited socket holds would fail.
func (rt *process) listen(network, address string) (net.Listener, error) {
	if rt.act != nil {
		if ln, ok, err := rt.act.take(network, address, true); ok {
			if err == nil && rt.cluster {
				rt.announceInherited(ln)
			}
			return ln, err
		}
	}
	if rt.cluster {
		switch network {
		case "tcp", "tcp4", "tcp6", "unix":
			return rt.listenCluster(network, address)
		}
	}
	if rt.act != nil {
		if ln, ok, err := rt.act.take(network, address, false); ok {
			return ln, err
		}
	}
	return net.Listen(network, address)
}

// announceInherited tells the daemon that a cluster worker listens on an inherited socket
// ('listening' without a queryServer before it): the daemon's signal that the worker is ready,
// as for a socket it owns.
func (rt *process) announceInherited(ln net.Listener) {
	var q query
	switch a := ln.Addr().(type) {
	case *net.TCPAddr:
		addr := a.IP.String()
		q = query{addr: &addr, port: a.Port, addrType: 4}
		if a.IP.To4() == nil {
			q.addrType = 6
		}
	case *net.UnixAddr:
		q = query{addr: &a.Name, port: -1, addrType: -1}
	default:
		return
	}
	_, _ = rt.send(func(seq int64) any { return q.msg("listening", 0, q.port, seq) })
}

// query is what a Listen asks the daemon for.
type query struct {
	network, address string // as given to Listen, for errors
	addr             *string
	port             int
	addrType         int
	flags            *int
}

// tuple is Node's indexesKey: address:port:addressType:fd (docs/node-cluster-protocol.md §5.6).
func (q *query) tuple() string {
	a := "null"
	if q.addr != nil {
		a = *q.addr
	}
	return fmt.Sprintf("%s:%d:%d:undefined", a, q.port, q.addrType)
}

func (q *query) msg(act string, index, port int, seq int64) serverMsg {
	return serverMsg{
		Cmd: cmdCluster, Act: act, Index: index, Data: jsonNull, Address: q.addr,
		Port: port, AddressType: q.addrType, Flags: q.flags, Backlog: 0, Seq: seq,
	}
}

func (q *query) opError(err error) error {
	return &net.OpError{Op: "listen", Net: q.network, Addr: strAddr{q.network, q.address}, Err: err}
}

// strAddr names an address as given, in errors.
type strAddr struct{ net, addr string }

func (a strAddr) Network() string { return a.net }
func (a strAddr) String() string  { return a.addr }

func intp(v int) *int { return &v }

// makeQuery turns Listen's arguments into Node's queryServer fields
// (docs/node-cluster-protocol.md §5.3):
// listen(port) → address null, addressType 4; a host → its IP address (resolved, as Node does
// with dns.lookup), addressType 4 or 6, flags 0 (1 = IPv6 only, for tcp6); a unix path → the
// absolute path, port -1, addressType -1.
func makeQuery(network, address string) (*query, error) {
	q := &query{network: network, address: address}
	if network == "unix" {
		path := address
		if path == "" {
			return nil, q.opError(errors.New("empty unix socket path"))
		}
		if path[0] != '@' { // Linux abstract sockets have no file
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, q.opError(err)
			}
			path = abs
		}
		q.addr, q.port, q.addrType = &path, -1, -1
		return q, nil
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, q.opError(err)
	}
	// A number (empty is 0) or a service name; out of range is an error.
	if q.port, err = net.LookupPort(network, portStr); err != nil {
		return nil, q.opError(err)
	}
	if host == "" {
		switch network {
		case "tcp":
			q.addrType = 4 // address null: the daemon binds [::] dual-stack (or 0.0.0.0)
		case "tcp4":
			a := "0.0.0.0"
			q.addr, q.addrType, q.flags = &a, 4, intp(0)
		case "tcp6":
			a := "::"
			q.addr, q.addrType, q.flags = &a, 6, intp(1)
		}
		return q, nil
	}
	ip, err := resolve(network, host)
	if err != nil {
		return nil, q.opError(err)
	}
	a := ip.String()
	q.addr, q.addrType, q.flags = &a, 4, intp(0)
	if ip.Is6() {
		q.addrType = 6
		if network == "tcp6" {
			q.flags = intp(1)
		}
	}
	return q, nil
}

// resolve picks the one address a host listens on, as net.Listen does: IPv4 first for "tcp".
func resolve(network, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if (network == "tcp4" && !ip.Is4()) || (network == "tcp6" && !ip.Is6()) {
			return netip.Addr{}, &net.AddrError{Err: "no suitable address", Addr: host}
		}
		return ip, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	var v4, v6 netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Is4() && !v4.IsValid() {
			v4 = ip
		}
		if ip.Is6() && !v6.IsValid() {
			v6 = ip
		}
	}
	switch {
	case network != "tcp6" && v4.IsValid():
		return v4, nil
	case network != "tcp4" && v6.IsValid():
		return v6, nil
	}
	return netip.Addr{}, &net.AddrError{Err: "no suitable address found", Addr: host}
}

// listenResult is what the reply to a queryServer gives Listen.
type listenResult struct {
	l   clusterListener
	err error
}

// listenCluster asks the daemon for the socket (queryServer), waits for its reply, and tells it
// the worker listens (listening), like Node's listen() in a cluster worker.
func (rt *process) listenCluster(network, address string) (net.Listener, error) {
	q, err := makeQuery(network, address)
	if err != nil {
		return nil, err
	}
	res := make(chan listenResult, 1)
	rt.mu.Lock()
	if rt.stopping {
		rt.mu.Unlock()
		return nil, q.opError(errShuttingDown)
	}
	tuple := q.tuple()
	index := rt.allocIndexLocked(tuple)
	seq, err := rt.sendLocked(func(seq int64) any { return q.msg("queryServer", index, q.port, seq) })
	if err != nil {
		rt.releaseIndexLocked(tuple, index)
		rt.mu.Unlock()
		return nil, q.opError(err)
	}
	rt.pending[seq] = func(m *inMsg, h *os.File, err error) {
		res <- rt.answerQuery(q, index, m, h, err)
	}
	rt.mu.Unlock()

	r := <-res // nothing times out in the protocol; a disconnect or the channel's end fails it
	if r.err != nil {
		return nil, r.err
	}
	port := r.l.port()
	rt.mu.Lock()
	if rt.stopping {
		rt.mu.Unlock()
		r.l.Close() // already closed by the shutdown; no 'listening' for it
		return nil, q.opError(errShuttingDown)
	}
	_, err = rt.sendLocked(func(seq int64) any { return q.msg("listening", index, port, seq) })
	rt.mu.Unlock()
	if err != nil {
		r.l.Close()
		return nil, q.opError(err)
	}
	return r.l, nil
}

// answerQuery builds the listener from the daemon's reply (on the channel's reader goroutine,
// so that the listener is registered before the daemon's first newconn is read).
func (rt *process) answerQuery(q *query, index int, m *inMsg, h *os.File, err error) listenResult {
	tuple := q.tuple()
	fail := func(err error) listenResult {
		if h != nil {
			h.Close()
		}
		rt.mu.Lock()
		rt.releaseIndexLocked(tuple, index)
		rt.mu.Unlock()
		return listenResult{err: q.opError(err)}
	}
	if err != nil {
		return fail(err)
	}
	if errno, err := errnoOf(m.Errno); err != nil {
		return fail(err)
	} else if errno != 0 {
		return fail(os.NewSyscallError("bind", errno))
	}
	base := clusterBase{rt: rt, key: m.Key, tuple: tuple, index: index}
	var l clusterListener
	if h != nil {
		// Shared policy: the daemon hands over the socket itself
		// (docs/node-cluster-protocol.md §5.4 and §6.3).
		sl, err := sharedListener(h, base)
		h.Close()
		if err != nil {
			return fail(err)
		}
		l = sl
	} else {
		l = newRRListener(base, q.addrFrom(m.Sockname))
	}
	// Node's rule: a port other than the one asked for is a failed bind.
	if q.port > 0 && l.port() != q.port {
		l.Close()
		return listenResult{err: q.opError(os.NewSyscallError("bind", syscall.EADDRINUSE))}
	}
	rt.mu.Lock()
	if rt.stopping {
		rt.mu.Unlock()
		l.Close()
		return listenResult{err: q.opError(errShuttingDown)}
	}
	if rt.listeners[base.key] != nil {
		// Node asserts that keys are unique per worker; a daemon that repeats one cannot
		// be served.
		rt.mu.Unlock()
		l.abandon()
		return fail(fmt.Errorf("corral gave the key %q of a listener this worker already has", base.key))
	}
	rt.listeners[base.key] = l
	rt.mu.Unlock()
	return listenResult{l: l}
}

// addrFrom is the listener's address: the daemon's sockname (so listen(":0") reports the real
// port), the path of a unix socket.
func (q *query) addrFrom(s *sockname) net.Addr {
	if q.addrType == -1 {
		return &net.UnixAddr{Name: *q.addr, Net: "unix"}
	}
	a := &net.TCPAddr{Port: q.port}
	if q.addr != nil {
		a.IP = net.ParseIP(*q.addr)
	}
	if s != nil {
		a.Port = s.Port
		if ip := net.ParseIP(s.Address); ip != nil {
			a.IP = ip
		}
	}
	return a
}

// errnoOf reads a reply's errno: null, absent or 0 is success, else a negative libuv code
// (-errno on Linux).
func errnoOf(raw json.RawMessage) (syscall.Errno, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return 0, nil
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, fmt.Errorf("corral answered with errno %s", raw)
	}
	if n < 0 {
		n = -n
	}
	return syscall.Errno(n), nil
}

// indexSet numbers concurrent listens on one address tuple (docs/node-cluster-protocol.md §5.6):
// numbers are not reused while any of them is open, and restart at 0 once all are closed.
type indexSet struct {
	next int
	used map[int]bool
}

func (rt *process) allocIndexLocked(tuple string) int {
	s := rt.indexes[tuple]
	if s == nil {
		s = &indexSet{used: map[int]bool{}}
		rt.indexes[tuple] = s
	}
	i := s.next
	s.next++
	s.used[i] = true
	return i
}

func (rt *process) releaseIndexLocked(tuple string, index int) {
	s := rt.indexes[tuple]
	if s == nil {
		return
	}
	delete(s.used, index)
	if len(s.used) == 0 {
		delete(rt.indexes, tuple)
	}
}

// ---------------------------------------------------------------------------------------------
// Listeners.

// clusterListener is a listener of the daemon's socket.
type clusterListener interface {
	net.Listener
	port() int // the bound port (-1 for unix sockets), for 'listening'
	abandon()  // close without telling the daemon (the key is not ours)
}

// clusterBase is what both kinds of listeners need to leave the daemon's key.
type clusterBase struct {
	rt    *process
	key   string
	tuple string
	index int
}

// leave unregisters the listener and tells the daemon (close, docs/node-cluster-protocol.md §5.2)
// that this worker no longer takes connections on its key.
func (b *clusterBase) leave(l clusterListener) {
	rt := b.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.listeners[b.key] == l {
		delete(rt.listeners, b.key)
	}
	rt.releaseIndexLocked(b.tuple, b.index)
	_, _ = rt.sendLocked(func(seq int64) any { return closeMsg{Cmd: cmdCluster, Act: "close", Key: b.key, Seq: seq} })
}

// rrListener is a round-robin listener: its connections come from the daemon, one newconn
// message at a time.
type rrListener struct {
	clusterBase
	addr net.Addr

	mu     sync.Mutex
	queue  []incoming
	closed bool
	ready  chan struct{} // cap 1: the queue may have a connection
	done   chan struct{} // closed by Close
}

// incoming is a connection handed over and not yet taken by Accept.
type incoming struct {
	seq int64 // the newconn's seq, to answer
	f   *os.File
}

func newRRListener(b clusterBase, addr net.Addr) *rrListener {
	return &rrListener{clusterBase: b, addr: addr, ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// push queues a connection; false if the listener is closed.
func (l *rrListener) push(seq int64, f *os.File) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, incoming{seq: seq, f: f})
	l.mu.Unlock()
	l.signal()
	return true
}

func (l *rrListener) signal() {
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

// Accept waits for the next connection the daemon hands over, and answers the daemon once the
// connection is the caller's (accepted:true).
func (l *rrListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, l.opError("accept", net.ErrClosed)
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			select {
			case <-l.ready:
			case <-l.done:
			}
			continue
		}
		in := l.queue[0]
		l.queue[0] = incoming{}
		l.queue = l.queue[1:]
		more := len(l.queue) > 0
		l.mu.Unlock()
		if more {
			l.signal() // another Accept may take the next one
		}
		c, err := net.FileConn(in.f)
		in.f.Close()
		if err != nil {
			l.rt.logf("a connection from corral on %s is unusable: %v", l.addr, err)
			l.rt.sendAccepted(in.seq, false)
			continue
		}
		l.rt.sendAccepted(in.seq, true)
		l.rt.flushReply()
		return c, nil
	}
}

// Close stops the listener: the daemon is told (close) before the connections still queued are
// given back (accepted:false), so that it hands them to other workers and not back here.
func (l *rrListener) Close() error {
	q, ok := l.shut()
	if !ok {
		return l.opError("close", net.ErrClosed)
	}
	l.leave(l)
	l.giveBack(q)
	return nil
}

// abandon closes without a close message, giving back what is queued.
func (l *rrListener) abandon() {
	q, _ := l.shut()
	l.giveBack(q)
}

// giveBack answers queued connections accepted:false: the daemon hands them to other workers.
func (l *rrListener) giveBack(q []incoming) { giveBack(l.rt, q) }

// giveBack answers connections handed over and never taken accepted:false.
func giveBack(rt *process, q []incoming) {
	for _, in := range q {
		in.f.Close()
		rt.sendAccepted(in.seq, false)
	}
}

func (l *rrListener) shut() ([]incoming, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	l.closed = true
	q := l.queue
	l.queue = nil
	close(l.done)
	return q, true
}

func (l *rrListener) Addr() net.Addr { return l.addr }

func (l *rrListener) port() int { return portOf(l.addr) }

// portOf is a TCP address's port, or -1.
func portOf(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return -1
}

func (l *rrListener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: l.addr.Network(), Addr: l.addr, Err: err}
}

// pushListener is a listener the daemon can hand connections to (newconn).
type pushListener interface {
	push(seq int64, f *os.File) bool
}

// shared is a listener on a socket the daemon handed over (shared and reuseport policies): the
// kernel spreads the connections among the workers that accept on it. Under reuseport the
// daemon also hands it connections (newconn) that it accepted on the socket of a worker that
// left; Accept returns those first, waking a blocked accept with a deadline.
type shared struct {
	net.Listener
	clusterBase
	once sync.Once

	mu     sync.Mutex
	queue  []incoming // handed over by the daemon, not yet taken by Accept
	closed bool
}

// deadliner is the part of *net.TCPListener (and *net.UnixListener) that wakes an Accept.
type deadliner interface{ SetDeadline(time.Time) error }

// push queues a connection the daemon handed over; false if the listener is closed.
func (l *shared) push(seq int64, f *os.File) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.queue = append(l.queue, incoming{seq: seq, f: f})
	// Under l.mu: an Accept that clears the deadline does so before it blocks, never after this.
	if d, ok := l.Listener.(deadliner); ok {
		_ = d.SetDeadline(time.Now())
	}
	return true
}

// Accept returns a connection the daemon handed over if there is one, else the next one from
// the socket.
func (l *shared) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 {
			in := l.queue[0]
			l.queue[0] = incoming{}
			l.queue = l.queue[1:]
			l.mu.Unlock()
			c, err := net.FileConn(in.f)
			in.f.Close()
			if err != nil {
				l.rt.logf("a connection from corral on %s is unusable: %v", l.Addr(), err)
				l.rt.sendAccepted(in.seq, false)
				continue
			}
			l.rt.sendAccepted(in.seq, true)
			return c, nil
		}
		d, canWake := l.Listener.(deadliner)
		if canWake {
			_ = d.SetDeadline(time.Time{})
		}
		l.mu.Unlock()
		c, err := l.Listener.Accept()
		var ne net.Error
		if err != nil && canWake && errors.As(err, &ne) && ne.Timeout() {
			continue // push woke it: take the handed-over connection
		}
		return c, err
	}
}

// sharedListener turns the handed-over socket into a listener. The daemon sends it bound but
// not listening (Node's workers call listen themselves, docs/node-cluster-protocol.md §5.4).
func sharedListener(h *os.File, b clusterBase) (*shared, error) {
	ln, err := listenFile(h)
	if err != nil {
		return nil, err
	}
	return &shared{Listener: ln, clusterBase: b}, nil
}

// listenFile makes a listener of a socket file, calling listen(2) first if the socket is only
// bound (corral's shared policy sends it so, as Node's primary does; a socket unit with
// Accept=no passes it listening; other managers may not). The file stays the caller's.
func listenFile(f *os.File) (net.Listener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		on, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			lerr = os.NewSyscallError("getsockopt", err)
			return
		}
		if on == 0 {
			if err := unix.Listen(int(fd), unix.SOMAXCONN); err != nil {
				lerr = os.NewSyscallError("listen", err)
			}
		}
	}); err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, lerr
	}
	return net.FileListener(f)
}

// Close stops the listener: the daemon is told (close) before the connections it handed over
// and Accept did not take are given back (accepted:false), so that it hands them to other
// workers and not back here.
func (l *shared) Close() error {
	err := l.Listener.Close()
	q := l.shut()
	l.once.Do(func() { l.leave(l) })
	l.giveBack(q)
	return err
}

func (l *shared) abandon() {
	l.once.Do(func() {})
	l.Listener.Close()
	l.giveBack(l.shut())
}

func (l *shared) shut() []incoming {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	q := l.queue
	l.queue = nil
	return q
}

func (l *shared) giveBack(q []incoming) { giveBack(l.rt, q) }

func (l *shared) port() int { return portOf(l.Addr()) }
