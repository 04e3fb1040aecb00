package keeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/closeexec"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/safefs"
	"github.com/corral-pm/corral/internal/sdnotify"
	"golang.org/x/sys/unix"
)

// ErrRunning: another keeper holds the home's keeper.lock.
var ErrRunning = errors.New("a corral keeper is already running for this home")

// ExitCannotStart is the exit code of a daemon that could not even start (its home is
// unusable, another daemon holds the home): a kept daemon that exits so before it ever said
// Ready is not restarted, since it would fail the same way again; the keeper exits with an
// error instead.
const ExitCannotStart = 78 // EX_CONFIG

// Restart pacing: a daemon that ran at least steadyRun, or that served (said Ready) for at
// least servedRun, is started again at once: the apps' clients wait in the backlog meanwhile.
// One that died sooner (it crashes at start, or right after adopting the apps) waits a backoff
// that doubles from minBackoff up to maxBackoff, so that a daemon that cannot run does not spin.
const (
	steadyRun  = 5 * time.Second
	servedRun  = time.Second
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// drainTimeout bounds the wait for the end of a dead daemon's channel: only a process
	// that inherited the daemon's end (it is close-on-exec) could hold it open.
	drainTimeout = 5 * time.Second
	// lockWait is how long a keeper waits for the lock of one that is exiting.
	lockWait = 2 * time.Second
)

// Options configure a keeper.
type Options struct {
	// Paths is the home: the keeper takes Paths.KeeperLock and writes Paths.KeeperPidFile.
	Paths home.Paths
	// DaemonArgs are the daemon's arguments after the binary, e.g. {"daemon", "--kept"};
	// FirstArgs are added for the first daemon only (e.g. "--resurrect").
	DaemonArgs []string
	FirstArgs  []string
	Logf       func(format string, args ...any)
	// Output, when set, opens the daemon's stdout and stderr afresh for each start (the
	// daemon log at its path, which rotation may have moved since the keeper started); nil
	// passes on the keeper's own. The keeper closes what it returns once the daemon has it.
	Output func() (*os.File, error)
	// ResumeFD, when above 0, is the memfd holding the state of the keeper image that
	// re-executed this one (a hot upgrade): Run resumes from it instead of starting afresh.
	ResumeFD int
}

// held is an entry as the keeper holds it: raw fds, close-on-exec.
type held struct {
	meta []byte
	fds  []int
}

// keeper is the state of a running keeper. One goroutine (Run's) owns it.
type keeper struct {
	opts   Options
	logf   func(format string, args ...any)
	exe    string
	lockFD int // -1 when unknown (resumed from a state of another version)
	// released: the pid file was removed and the lock freed.
	released bool
	entries  map[string]*held
	metaLen  int
	exits    []Exit
	info     Info
	// readyNotified: systemd was told READY=1 (once per keeper, across upgrades);
	// stopNotified: STOPPING=1.
	readyNotified, stopNotified bool
	// stopping: a signal asked the keeper to stop: the daemon is not started again.
	stopping bool
	backoff  time.Duration

	daemon   *daemonProc // the current daemon; nil between two
	restart  *time.Timer // pending start of the next daemon
	restartC <-chan time.Time
	msgs     chan daemonMsg
}

// daemonProc is one daemon the keeper started, and its channel.
type daemonProc struct {
	pid     int
	started time.Time
	conn    *net.UnixConn
	out     *sender
	stop    chan struct{} // tells its reader to stop handing messages over
	wg      sync.WaitGroup

	exited bool
	status syscall.WaitStatus
	eof    bool // its channel was read to its end
	drain  *time.Timer

	loaded, ready, shutdown, upgrade bool
	upgradeTo                        string // the binary to upgrade to ("": the keeper's own)
}

// daemonMsg is what a daemon's reader hands the keeper's loop: a message, or the channel's end.
type daemonMsg struct {
	from *daemonProc
	m    message
	err  error
}

// Run is the keeper: it starts the daemon, holds what the daemon gives it, reaps every child
// and orphan, and starts the daemon again when it dies, until the daemon stops for good
// (Shutdown, or a stop signal to the keeper). See the package documentation.
func Run(opts Options) error {
	k := &keeper{
		opts:    opts,
		logf:    opts.Logf,
		lockFD:  -1,
		entries: map[string]*held{},
		backoff: minBackoff,
		msgs:    make(chan daemonMsg),
	}
	if k.logf == nil {
		k.logf = func(string, ...any) {}
	}
	// Inherited descriptors must not reach the daemon and the apps (the CLI that spawned
	// us, systemd): the keeper keeps them, close-on-exec.
	if err := closeexec.FromThree(); err != nil {
		return err
	}
	first := true
	if opts.ResumeFD > 0 {
		if err := k.resume(opts.ResumeFD); err != nil {
			return err
		}
		first = false
	} else if err := k.begin(); err != nil {
		return err
	}
	raiseFileLimit(k.logf)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		k.releaseHome()
		return fmt.Errorf("become a child subreaper: %w", err)
	}

	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	k.reap() // children that ended before we listened (after an upgrade: while exec ran)

	k.startDaemon(first)
	for {
		var drainC <-chan time.Time
		if d := k.daemon; d != nil && d.drain != nil {
			drainC = d.drain.C
		}
		select {
		case <-sigchld:
			k.reap()
		case s := <-sigs:
			if done := k.onSignal(s.(syscall.Signal)); done {
				return k.finish()
			}
		case dm := <-k.msgs:
			k.onMessage(dm)
		case <-drainC:
			k.logf("the channel of the dead daemon (pid %d) did not end within %v: going on without the rest", k.daemon.pid, drainTimeout)
			k.daemon.eof = true
		case <-k.restartC:
			k.restartC = nil
			k.startDaemon(false)
		}
		if d := k.daemon; d != nil && d.exited && d.eof {
			done, err := k.daemonGone(d)
			if done {
				if err != nil {
					k.releaseHome()
					return err
				}
				return k.finish()
			}
		}
	}
}

// begin sets up a fresh keeper: its home, lock and pid file.
func (k *keeper) begin() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the corral binary: %w", err)
	}
	k.exe = exe
	p := k.opts.Paths
	if err := p.Ensure(); err != nil {
		return err
	}
	fd, err := lock(p.KeeperLock)
	if err != nil {
		return err
	}
	k.lockFD = fd
	if err := safefs.WriteFile(p.KeeperPidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		k.releaseHome()
		return fmt.Errorf("write the keeper's pid file: %w", err)
	}
	k.info = Info{KeeperPID: os.Getpid(), KeeperStarted: time.Now(), DaemonStarts: 1, Version: ProtocolVersion}
	return nil
}

// lock takes path's flock, waiting up to lockWait for a keeper that is exiting to free it.
func lock(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, fmt.Errorf("open the keeper's lock: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			unix.Close(fd)
			if errors.Is(err, unix.EWOULDBLOCK) {
				return -1, fmt.Errorf("%w (it holds %s)", ErrRunning, path)
			}
			return -1, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond) // a lock has nothing to wait on but time
	}
}

// raiseFileLimit raises the soft limit on open fds to the hard one: the keeper may hold
// thousands. Go raises it already at start (to one below the hard limit) and lowers it again
// for the programs it starts, so that the daemon and the apps keep the limit they would have
// had; it is only raised here when Go did not (syscall.Setrlimit would end that lowering).
func raiseFileLimit(logf func(string, ...any)) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur+1 >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		logf("raise the limit on open files to %d: %v", lim.Max, err)
	}
}

// finish ends the keeper after the daemon stopped for good.
func (k *keeper) finish() error {
	k.notify("STOPPING=1", &k.stopNotified)
	k.logf("corral keeper (pid %d) stopped", os.Getpid())
	k.releaseHome()
	return nil
}

// releaseHome removes the pid file and frees the lock (a lock fd the keeper does not know,
// after a handover it could not read, is freed when the process exits).
func (k *keeper) releaseHome() {
	if k.released {
		return
	}
	k.released = true
	_ = os.Remove(k.opts.Paths.KeeperPidFile)
	if k.lockFD >= 0 {
		unix.Close(k.lockFD)
		k.lockFD = -1
	}
}

// notify sends state to systemd once (done records it), when the keeper runs under it.
func (k *keeper) notify(state string, done *bool) {
	if *done {
		return
	}
	*done = true
	if ok, err := sdnotify.Notify(state); err != nil {
		k.logf("%v", err)
	} else if ok {
		k.logf("told systemd %s", state)
	}
}

// daemonEnv is the keeper's environment for the daemon: systemd's NOTIFY_SOCKET stays the
// keeper's (NotifyAccess=main: only the main pid may notify), and the channel is on fd 3.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, EnvFD+"=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, EnvFD+"="+strconv.Itoa(daemonFD))
}

// startDaemon starts a daemon on a fresh channel. A failure is logged and retried later.
func (k *keeper) startDaemon(first bool) {
	if err := k.spawn(first); err != nil {
		k.logf("cannot start the corral daemon: %v", err)
		k.scheduleRestart(k.nextBackoff())
	}
}

func (k *keeper) spawn(first bool) error {
	conn, theirs, err := socketpair()
	if err != nil {
		return err
	}
	defer theirs.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		conn.Close()
		return err
	}
	defer devnull.Close()
	out := []uintptr{1, 2}
	if k.opts.Output != nil {
		f, err := k.opts.Output()
		if err != nil {
			k.logf("the daemon's output goes to the keeper's: %v", err)
		} else {
			defer f.Close()
			out = []uintptr{f.Fd(), f.Fd()}
		}
	}
	args := append([]string{k.exe}, k.opts.DaemonArgs...)
	if first {
		args = append(args, k.opts.FirstArgs...)
	}
	// syscall.ForkExec rather than os/exec: Run's loop reaps every child with wait4(-1), the
	// daemon as well as orphans, and no second waiter may race it.
	pid, err := syscall.ForkExec(k.exe, args, &syscall.ProcAttr{
		Env:   daemonEnv(),
		Files: []uintptr{devnull.Fd(), out[0], out[1], theirs.Fd()},
	})
	if err != nil {
		conn.Close()
		return fmt.Errorf("start %s: %w", k.exe, err)
	}
	d := &daemonProc{pid: pid, started: time.Now(), conn: conn, stop: make(chan struct{})}
	d.out = newSender(conn, k.logf)
	d.wg.Add(1)
	go k.readDaemon(d)
	k.daemon = d
	k.logf("started the corral daemon (pid %d): %s", pid, strings.Join(args[1:], " "))
	return nil
}

// readDaemon hands the loop every message of d's channel, then its end.
func (k *keeper) readDaemon(d *daemonProc) {
	defer d.wg.Done()
	r := newReceiver(d.conn, MaxMetaBytes, k.logf)
	for {
		m, err := r.read()
		select {
		case k.msgs <- daemonMsg{from: d, m: m, err: err}:
		case <-d.stop:
			closeAll(m.files)
			return
		}
		if err != nil {
			return
		}
	}
}

// reap collects every child that ended: the daemon, or an orphan (recorded as an Exit).
func (k *keeper) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if d := k.daemon; d != nil && pid == d.pid && !d.exited {
			d.exited = true
			d.status = ws
			if !d.eof {
				d.drain = time.NewTimer(drainTimeout)
			}
			continue
		}
		k.recordExit(Exit{PID: pid, Status: ws, Time: time.Now()})
	}
}

// recordExit keeps an orphan's exit until the daemon acknowledges it, and tells the daemon
// if one listens.
func (k *keeper) recordExit(e Exit) {
	if len(k.exits) >= MaxExits {
		k.logf("more than %d exits not acknowledged by the daemon: forgetting the oldest (pid %d)", MaxExits, k.exits[0].PID)
		k.exits = k.exits[1:]
	}
	k.exits = append(k.exits, e)
	if d := k.daemon; d != nil && d.loaded && !d.exited {
		body, _ := json.Marshal(e.wire())
		d.out.queue(header{Op: opExit}, body, nil)
	}
}

// onSignal handles a signal to the keeper; done means the keeper should exit now.
func (k *keeper) onSignal(s syscall.Signal) (done bool) {
	switch s {
	case syscall.SIGHUP:
		return false // a closed terminal must not take the keeper down
	case syscall.SIGUSR2:
		k.forward(s)
		return false
	}
	k.logf("received %s: stopping the daemon, and not starting it again", unix.SignalName(s))
	k.stopping = true
	k.notify("STOPPING=1", &k.stopNotified)
	if k.daemon == nil || k.daemon.exited {
		if k.daemon != nil {
			k.closeDaemon(k.daemon)
		}
		return true
	}
	k.forward(s)
	return false
}

func (k *keeper) forward(s syscall.Signal) {
	if d := k.daemon; d != nil && !d.exited {
		if err := syscall.Kill(d.pid, s); err != nil {
			k.logf("forward %s to the daemon (pid %d): %v", unix.SignalName(s), d.pid, err)
		}
	}
}

// onMessage applies one message of a daemon.
func (k *keeper) onMessage(dm daemonMsg) {
	d := dm.from
	if d != k.daemon {
		closeAll(dm.m.files)
		return
	}
	if dm.err != nil {
		if !errors.Is(dm.err, errEOF) {
			k.logf("reading the daemon's channel: %v", dm.err)
		}
		d.eof = true
		if d.drain != nil {
			d.drain.Stop()
		}
		return
	}
	m := dm.m
	if m.Op != opPut {
		defer closeAll(m.files)
	}
	switch m.Op {
	case opPut:
		k.put(m)
	case opMeta:
		e, ok := k.entries[m.Name]
		if !ok {
			k.logf("meta for %q, which the keeper does not hold: ignored", m.Name)
			return
		}
		if k.metaLen-len(e.meta)+len(m.body) > MaxMetaBytes {
			k.logf("meta for %q: the metas would exceed %d bytes together: ignored", m.Name, MaxMetaBytes)
			return
		}
		k.metaLen += len(m.body) - len(e.meta)
		e.meta = m.body
	case opDelete:
		if e, ok := k.entries[m.Name]; ok {
			closeAll(e.fds)
			k.metaLen -= len(e.meta)
			delete(k.entries, m.Name)
		}
	case opLoad:
		k.load(d)
	case opSeen:
		for i, e := range k.exits {
			if e.PID == m.PID {
				k.exits = append(k.exits[:i], k.exits[i+1:]...)
				break
			}
		}
	case opReady:
		d.ready = true
		k.notify("READY=1", &k.readyNotified)
	case opShutdown:
		d.shutdown = true
	case opUpgrade:
		d.upgrade = true
		d.upgradeTo = m.Name
	default:
		k.logf("ignoring a message of unknown op %q", m.Op)
	}
}

// put creates or replaces an entry, within the keeper's bounds.
func (k *keeper) put(m message) {
	reject := func(why string) {
		k.logf("put %q: %s: ignored", m.Name, why)
		closeAll(m.files)
	}
	old, exists := k.entries[m.Name]
	oldLen := 0
	if exists {
		oldLen = len(old.meta)
	}
	switch {
	case m.Name == "" || len(m.Name) > MaxNameLen:
		reject(fmt.Sprintf("a name of %d bytes (1 to %d)", len(m.Name), MaxNameLen))
	case len(m.files) > MaxFilesPerEntry:
		reject(fmt.Sprintf("%d fds (at most %d)", len(m.files), MaxFilesPerEntry))
	case !exists && len(k.entries) >= MaxEntries:
		reject(fmt.Sprintf("the keeper holds %d entries already", MaxEntries))
	case k.metaLen-oldLen+len(m.body) > MaxMetaBytes:
		reject(fmt.Sprintf("the metas would exceed %d bytes together", MaxMetaBytes))
	default:
		if exists {
			closeAll(old.fds)
		}
		k.metaLen += len(m.body) - oldLen
		k.entries[m.Name] = &held{meta: m.body, fds: m.files}
	}
}

// load answers a daemon's Load: every entry (its fds duplicated for the sending), then the
// exits and Info.
func (k *keeper) load(d *daemonProc) {
	if d.loaded {
		k.logf("the daemon (pid %d) asked to load twice: ignored", d.pid)
		return
	}
	d.loaded = true
	names := make([]string, 0, len(k.entries))
	for name := range k.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		e := k.entries[name]
		dups := make([]int, 0, len(e.fds))
		for _, fd := range e.fds {
			dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				k.logf("duplicate fd %d of %q to send it: %v", fd, name, err)
				continue
			}
			dups = append(dups, dup)
		}
		d.out.queue(header{Op: opEntry, Name: name}, e.meta, dups)
	}
	body := loadedBody{Info: k.info, Exits: make([]exitWire, 0, len(k.exits))}
	for _, e := range k.exits {
		body.Exits = append(body.Exits, e.wire())
	}
	b, err := json.Marshal(body)
	if err != nil {
		k.logf("encode the answer to load: %v", err)
		return
	}
	d.out.queue(header{Op: opLoaded}, b, nil)
}

// daemonGone decides what follows the end of a daemon whose channel was read to its end.
func (k *keeper) daemonGone(d *daemonProc) (done bool, err error) {
	k.closeDaemon(d)
	k.daemon = nil
	ran := time.Since(d.started).Round(time.Millisecond)
	how := describeStatus(d.status)
	ended := how // in a sentence: "(pid 12) was killed by SIGKILL", "(pid 12) exited with code 2"
	if d.status.Signaled() {
		ended = "was " + how
	}
	switch {
	case d.shutdown || k.stopping:
		k.logf("corral daemon (pid %d) %s after %v: stopping the keeper", d.pid, ended, ran)
		return true, nil
	case d.upgrade:
		previous := k.exe
		if d.upgradeTo != "" {
			k.exe = d.upgradeTo
		}
		k.logf("corral daemon (pid %d) %s after %v for an upgrade: re-executing %s", d.pid, ended, ran, k.exe)
		k.info.LastExit = how
		if err := k.upgrade(); err != nil {
			k.exe = previous
			k.logf("upgrade: %v: starting the daemon again without it", err)
		}
		k.startDaemon(false)
		return false, nil
	case !d.ready && d.status.Exited() && d.status.ExitStatus() == ExitCannotStart:
		return true, fmt.Errorf("corral daemon (pid %d) could not start (%s): not starting it again", d.pid, how)
	}
	k.info.LastExit = how
	k.info.DaemonStarts++
	if ran >= steadyRun || d.ready && ran >= servedRun {
		k.backoff = minBackoff
		k.logf("corral daemon (pid %d) %s after %v: restarting it", d.pid, ended, ran)
		k.startDaemon(false)
		return false, nil
	}
	wait := k.nextBackoff()
	k.logf("corral daemon (pid %d) %s after %v: restarting it in %v", d.pid, ended, ran, wait)
	k.scheduleRestart(wait)
	return false, nil
}

// nextBackoff returns the wait before the next start, and doubles the one after.
func (k *keeper) nextBackoff() time.Duration {
	wait := k.backoff
	k.backoff = min(2*k.backoff, maxBackoff)
	return wait
}

func (k *keeper) scheduleRestart(wait time.Duration) {
	k.restart = time.NewTimer(wait)
	k.restartC = k.restart.C
}

// closeDaemon ends what the keeper had of d: its reader, sender and channel.
func (k *keeper) closeDaemon(d *daemonProc) {
	if d.drain != nil {
		d.drain.Stop()
	}
	close(d.stop)
	d.out.close()
	d.conn.Close()
	d.out.wait()
	d.wg.Wait()
}

// describeStatus says how a process ended, for humans.
func describeStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with code %d", ws.ExitStatus())
	case ws.Signaled():
		s := "killed by " + unix.SignalName(ws.Signal())
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("ended with wait status %#x", int(ws))
}
