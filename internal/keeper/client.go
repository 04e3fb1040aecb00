package keeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EnvFD names, in a kept daemon's environment, the inherited fd of its end of the channel.
const EnvFD = "CORRAL_KEEPER_FD"

// daemonFD is where the keeper puts the daemon's end of the channel.
const daemonFD = 3

// Entry is one thing the keeper holds for the daemon: a name, the daemon's JSON description,
// and fds (may be none).
type Entry struct {
	Name  string
	Meta  json.RawMessage
	Files []*os.File
}

// Exit is the end of a process the keeper reaped (an orphan re-parented to it, never the
// daemon).
type Exit struct {
	PID    int
	Status syscall.WaitStatus
	Time   time.Time
}

// Info is what the keeper tells a daemon about itself and the daemon's history.
type Info struct {
	KeeperPID     int       `json:"keeper_pid"`
	KeeperStarted time.Time `json:"keeper_started"`
	// DaemonStarts is 1 for the first daemon, and grows by one at every restart after a crash
	// or a kill (not after an upgrade).
	DaemonStarts int `json:"daemon_starts"`
	// Upgrades counts the hot upgrades done (corral update).
	Upgrades int `json:"upgrades"`
	// LastExit says, for humans, how the previous daemon ended ("killed by SIGKILL", "exited
	// with code 2"); "" for the first daemon.
	LastExit string `json:"last_exit"`
	// Version is the keeper's ProtocolVersion.
	Version int `json:"version"`
}

// Client is a daemon's end of the channel to its keeper. Its methods are safe for concurrent
// use; sends are ordered and do not wait for an answer.
type Client struct {
	conn   *net.UnixConn
	sendMu sync.Mutex

	loadMu   sync.Mutex
	loadSent bool
	loaded   chan loadResult // the reader's answer to Load

	exits chan Exit
	// queue holds the exits the reader received and the pump has not handed to exits yet:
	// the reader never waits for the daemon to take them.
	queueMu sync.Mutex
	queue   []Exit
	wake    chan struct{}

	closed    chan struct{} // the keeper's end is gone (or Close)
	done      chan struct{} // Close was called
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type loadResult struct {
	entries []Entry
	exits   []Exit
	info    Info
	err     error
}

// FromEnv returns the client of the keeper that started this daemon (EnvFD names an inherited
// fd), or nil, nil when the daemon runs without one (in-process tests, `corral run`). It
// unsets the variable so that the daemon's children never see it, and keeps the channel only
// in a close-on-exec fd.
func FromEnv() (*Client, error) {
	v, ok := os.LookupEnv(EnvFD)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not an inherited fd", EnvFD, v)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", EnvFD, fd, err)
	}
	f := os.NewFile(uintptr(fd), "keeper channel")
	conn, err := fileConn(f) // a close-on-exec duplicate
	f.Close()
	if err != nil {
		return nil, err
	}
	return newClient(conn), nil
}

// newClient starts reading conn.
func newClient(conn *net.UnixConn) *Client {
	c := &Client{
		conn:   conn,
		loaded: make(chan loadResult, 1),
		exits:  make(chan Exit, 64),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	c.wg.Add(2)
	go c.read()
	go c.pump()
	return c
}

// read receives what the keeper sends: the answer to Load, then exits.
func (c *Client) read() {
	defer c.wg.Done()
	defer close(c.closed)
	r := newReceiver(c.conn, MaxMetaBytes+partSize, func(string, ...any) {})
	var entries []Entry
	defer func() { closeEntries(entries) }()
	for {
		m, err := r.read()
		if err != nil {
			c.deliverLoad(loadResult{err: fmt.Errorf("the keeper's channel ended: %w", err)})
			return
		}
		switch m.Op {
		case opEntry:
			e := Entry{Name: m.Name, Meta: json.RawMessage(m.body)}
			for _, fd := range m.files {
				e.Files = append(e.Files, os.NewFile(uintptr(fd), "kept:"+m.Name))
			}
			entries = append(entries, e)
		case opLoaded:
			res := loadResult{entries: entries}
			entries = nil
			var body loadedBody
			if err := json.Unmarshal(m.body, &body); err != nil {
				res.err = fmt.Errorf("the keeper's answer to load: %w", err)
			}
			res.info = body.Info
			for _, w := range body.Exits {
				res.exits = append(res.exits, w.exit())
			}
			c.deliverLoad(res)
		case opExit:
			var w exitWire
			if err := json.Unmarshal(m.body, &w); err != nil {
				continue
			}
			c.queueMu.Lock()
			c.queue = append(c.queue, w.exit())
			c.queueMu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		default:
			closeAll(m.files)
		}
	}
}

// deliverLoad hands Load its answer, if none was handed yet; otherwise it closes the fds of
// this one.
func (c *Client) deliverLoad(res loadResult) {
	select {
	case c.loaded <- res:
	default:
		closeEntries(res.entries)
	}
}

// pump hands the queued exits to the Exits channel, in order.
func (c *Client) pump() {
	defer c.wg.Done()
	for {
		c.queueMu.Lock()
		q := c.queue
		c.queue = nil
		c.queueMu.Unlock()
		for _, e := range q {
			select {
			case c.exits <- e:
			case <-c.done:
				return
			}
		}
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
	}
}

func closeEntries(entries []Entry) {
	for _, e := range entries {
		for _, f := range e.Files {
			f.Close()
		}
	}
}

// Load returns everything the keeper holds, the exits it recorded and that were not
// acknowledged (ExitSeen), and its Info. Call it once, first. The fds received are
// close-on-exec and the caller's to close.
func (c *Client) Load() (entries []Entry, exits []Exit, info Info, err error) {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if c.loadSent {
		return nil, nil, Info{}, errors.New("keeper: Load was called already")
	}
	c.loadSent = true
	if err := c.send(header{Op: opLoad}, nil); err != nil {
		return nil, nil, Info{}, err
	}
	select {
	case res := <-c.loaded:
		return res.entries, res.exits, res.info, res.err
	case <-c.done:
		return nil, nil, Info{}, errors.New("keeper: the client was closed")
	}
}

// Put creates or replaces the entry name (replacing closes the keeper's copies of the old
// entry's fds). meta is marshalled to JSON (a json.RawMessage passes through). The caller
// keeps its own files open: the keeper gets duplicates.
func (c *Client) Put(name string, meta any, files ...*os.File) error {
	return c.put(name, meta, len(files), func(i int) (int, error) { return dupFile(files[i]) })
}

// PutFDs is Put for descriptors the caller holds as raw fds (a socket the daemon keeps out of
// its poller): each is duplicated for the keeper; the caller's stay open.
func (c *Client) PutFDs(name string, meta any, fds ...int) error {
	return c.put(name, meta, len(fds), func(i int) (int, error) {
		dup, err := unix.FcntlInt(uintptr(fds[i]), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("duplicate fd %d: %w", fds[i], err)
		}
		return dup, nil
	})
}

// put sends the entry name with the n fds dup makes for the keeper (closed once sent).
func (c *Client) put(name string, meta any, n int, dup func(i int) (int, error)) error {
	if err := checkName(name); err != nil {
		return err
	}
	if n > MaxFilesPerEntry {
		return fmt.Errorf("keeper: %s: %d fds, at most %d per entry", name, n, MaxFilesPerEntry)
	}
	body, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("keeper: %s: %w", name, err)
	}
	fds := make([]int, 0, n)
	defer func() { closeAll(fds) }()
	for i := range n {
		fd, err := dup(i)
		if err != nil {
			return fmt.Errorf("keeper: %s: %w", name, err)
		}
		fds = append(fds, fd)
	}
	return c.send(header{Op: opPut, Name: name}, body, fds...)
}

// dupFile duplicates f's fd (close-on-exec) without f.Fd, which would make a non-blocking fd
// blocking under the caller's feet.
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("%s: %w", f.Name(), err)
	}
	dup := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("duplicate %s: %w", f.Name(), dupErr)
	}
	return dup, nil
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("keeper: an entry's name must have 1 to %d bytes (%d)", MaxNameLen, len(name))
	}
	return nil
}

// SetMeta replaces only the meta of the entry name; its fds stay. The keeper logs, and
// otherwise ignores, a name it does not hold.
func (c *Client) SetMeta(name string, meta any) error {
	if err := checkName(name); err != nil {
		return err
	}
	body, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("keeper: %s: %w", name, err)
	}
	return c.send(header{Op: opMeta, Name: name}, body)
}

// Delete drops the entry name; the keeper closes its fds.
func (c *Client) Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	return c.send(header{Op: opDelete, Name: name}, nil)
}

// Exits delivers the exits the keeper reaps after Load, in order. It is buffered, and the
// client queues what the daemon has not taken yet: reading it late loses nothing.
func (c *Client) Exits() <-chan Exit { return c.exits }

// ExitSeen says the daemon handled the exit of pid: the keeper forgets it.
func (c *Client) ExitSeen(pid int) error {
	return c.send(header{Op: opSeen, PID: pid}, nil)
}

// Ready says the daemon serves: the keeper tells systemd READY=1 (once) if it runs under it.
func (c *Client) Ready() error { return c.send(header{Op: opReady}, nil) }

// Shutdown says the daemon is stopping for good (corral kill, SIGTERM): when it exits, the
// keeper exits too, with code 0, instead of starting it again.
func (c *Client) Shutdown() error { return c.send(header{Op: opShutdown}, nil) }

// Upgrade asks the keeper to re-execute the corral binary on disk when the daemon exits next,
// keeping its pid, its children and everything it holds, and then to start the new daemon.
// Check first that the binary on disk speaks this handover (`corral keeper
// --handover-version`).
func (c *Client) Upgrade() error { return c.UpgradeTo("") }

// UpgradeTo is Upgrade to the corral binary at path (absolute), which the keeper then runs
// from on, for itself and every daemon it starts: `corral update` run from a new binary
// switches to that binary, as `pm2 update` does. "" is the keeper's own binary.
func (c *Client) UpgradeTo(path string) error {
	return c.send(header{Op: opUpgrade, Name: path}, nil)
}

// Closed is closed when the keeper's end of the channel is gone (the keeper died): the daemon
// then carries on without anyone to keep its apps alive if it dies.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// Close closes the channel and waits for the client's goroutines. The keeper reads what was
// sent before.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.conn.Close()
		c.wg.Wait()
	})
	return err
}

// send sends one message, fds in its first datagram.
func (c *Client) send(h header, body []byte, fds ...int) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := send(c.conn, h, body, fds); err != nil {
		return fmt.Errorf("keeper: send %s: %w", h.Op, err)
	}
	return nil
}
