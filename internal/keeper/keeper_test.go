package keeper

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/sdnotify"
	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// testKeeper is a keeper (this test binary in its keeper role) in a process group of its own,
// with its fake daemons and their orphans: the cleanup kills the whole group.
type testKeeper struct {
	t    *testing.T
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// newDir returns a short directory for a keeper's files (the control socket's path must fit a
// sockaddr_un).
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startKeeper starts a keeper on dir, logging to dir/logName, with env added.
func startKeeper(t *testing.T, dir, logName string, env ...string) *testKeeper {
	t.Helper()
	return startKeeperWith(t, dir, logName, nil, nil, env...)
}

// startKeeperWith is startKeeper with arguments and extra fds (from 3) for the keeper.
func startKeeperWith(t *testing.T, dir, logName string, args []string, extra []*os.File, env ...string) *testKeeper {
	t.Helper()
	log := filepath.Join(dir, logName)
	logf, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], args...)
	cmd.ExtraFiles = extra
	cmd.Env = append(os.Environ(), roleVar+"="+roleKeeper, dirVar+"="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tk := &testKeeper{t: t, dir: dir, log: log, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(tk.done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-tk.done:
		case <-time.After(30 * time.Second):
			t.Errorf("the keeper (pid %d) did not end after SIGKILL", cmd.Process.Pid)
		}
		if t.Failed() {
			testutil.LogTail(t, "keeper log", log, 60)
		}
	})
	return tk
}

// wait waits for the keeper to exit and returns its exit code.
func (tk *testKeeper) wait(timeout time.Duration) int {
	tk.t.Helper()
	select {
	case <-tk.done:
		return tk.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		tk.t.Fatalf("the keeper did not exit within %v", timeout)
		return -1
	}
}

func (tk *testKeeper) logText() string {
	b, _ := os.ReadFile(tk.log)
	return string(b)
}

// ctl sends one command to the current fake daemon, with fds, and returns its answer.
func (tk *testKeeper) ctl(req ctlRequest, files ...*os.File) (ctlReply, error) {
	var reply ctlReply
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: filepath.Join(tk.dir, "ctl.sock"), Net: "unixpacket"})
	if err != nil {
		return reply, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	b, _ := json.Marshal(req)
	var oob []byte
	if len(files) > 0 {
		var fds []int
		for _, f := range files {
			fds = append(fds, int(f.Fd()))
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(b, oob, nil); err != nil {
		return reply, err
	}
	buf := make([]byte, 1<<20)
	n, err := conn.Read(buf)
	if err != nil {
		return reply, err
	}
	if err := json.Unmarshal(buf[:n], &reply); err != nil {
		return reply, err
	}
	return reply, nil
}

// must is ctl that fails the test on any error, the daemon's included.
func (tk *testKeeper) must(req ctlRequest, files ...*os.File) ctlReply {
	tk.t.Helper()
	reply, err := tk.ctl(req, files...)
	if err == nil && reply.Err != "" {
		err = fmt.Errorf("the fake daemon: %s", reply.Err)
	}
	if err != nil {
		tk.t.Fatalf("%s: %v", req.Op, err)
	}
	return reply
}

// daemon waits for a fake daemon other than the one of pid notPID to answer.
func (tk *testKeeper) daemon(notPID int) ctlReply {
	tk.t.Helper()
	var reply ctlReply
	testutil.WaitFor(tk.t, fmt.Sprintf("a daemon other than pid %d", notPID), 30*time.Second, func() bool {
		r, err := tk.ctl(ctlRequest{Op: "hello"})
		if err != nil || r.PID == notPID {
			return false
		}
		reply = r
		return true
	})
	return reply
}

// kill SIGKILLs the daemon of pid and waits until the keeper has reaped it.
func (tk *testKeeper) kill(pid int) {
	tk.t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		tk.t.Fatal(err)
	}
}

func (tk *testKeeper) load() ctlReply { tk.t.Helper(); return tk.must(ctlRequest{Op: "load"}) }

func entryNames(r ctlReply) []string {
	var names []string
	for _, e := range r.Entries {
		names = append(names, e.Name)
	}
	return names
}

func findEntry(r ctlReply, name string) (seenEntry, bool) {
	for _, e := range r.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return seenEntry{}, false
}

// pipe returns a pipe whose ends are closed at the end of the test.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func metaSum(meta string) string {
	sum := sha256.Sum256([]byte(meta))
	return hex.EncodeToString(sum[:])
}

// TestRoundTrip: what a daemon puts (metas, a big one, a pipe's read end) is what the next
// daemon loads after the first was SIGKILLed, with SetMeta and Delete applied; data written
// into the pipe after the restart is read from the fd the new daemon loaded.
func TestRoundTrip(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	d1 := tk.daemon(0)
	if !d1.First {
		t.Error("the first daemon did not get FirstArgs")
	}
	r := tk.load()
	if len(r.Entries) != 0 || len(r.Exits) != 0 {
		t.Errorf("a new keeper holds %v, %v", r.Entries, r.Exits)
	}
	if i := r.Info; i == nil || i.KeeperPID != tk.cmd.Process.Pid || i.DaemonStarts != 1 || i.Upgrades != 0 || i.LastExit != "" || i.Version != ProtocolVersion || i.KeeperStarted.IsZero() {
		t.Errorf("info of the first daemon: %+v", r.Info)
	}
	pr, pw := pipe(t)
	tk.must(ctlRequest{Op: "put", Name: "pipe", Meta: json.RawMessage(`{"app":"web","fd":"stdout"}`)}, pr)
	pr.Close() // the keeper holds the read end now, and only it
	tk.must(ctlRequest{Op: "put", Name: "plain", Meta: json.RawMessage(`"v1"`)})
	tk.must(ctlRequest{Op: "meta", Name: "plain", Meta: json.RawMessage(`{"v":2}`)})
	tk.must(ctlRequest{Op: "meta", Name: "nobody", Meta: json.RawMessage(`1`)})
	tk.must(ctlRequest{Op: "put", Name: "gone", Meta: json.RawMessage(`true`)})
	tk.must(ctlRequest{Op: "delete", Name: "gone"})
	const bigSize = 1 << 20
	tk.must(ctlRequest{Op: "big", Name: "table", Size: bigSize})

	tk.kill(d1.PID)
	d2 := tk.daemon(d1.PID)
	if d2.First {
		t.Error("a restarted daemon got FirstArgs")
	}
	if _, err := pw.Write([]byte("after the restart")); err != nil {
		t.Fatalf("write into the kept pipe: %v", err)
	}
	r = tk.load()
	if got, want := strings.Join(entryNames(r), ","), "pipe,plain,table"; got != want {
		t.Fatalf("entries %s, want %s", got, want)
	}
	if e, _ := findEntry(r, "pipe"); string(e.Meta) != `{"app":"web","fd":"stdout"}` || e.Files != 1 {
		t.Errorf("pipe entry: %+v", e)
	}
	if e, _ := findEntry(r, "plain"); string(e.Meta) != `{"v":2}` || e.Files != 0 {
		t.Errorf("plain entry (SetMeta): %+v", e)
	}
	bigMeta, _ := json.Marshal(strings.Repeat("x", bigSize))
	if e, _ := findEntry(r, "table"); e.MetaLen != len(bigMeta) || e.MetaSum != metaSum(string(bigMeta)) {
		t.Errorf("big entry: %d bytes, sum %s; want %d bytes", e.MetaLen, e.MetaSum, len(bigMeta))
	}
	if i := r.Info; i.DaemonStarts != 2 || i.LastExit != "killed by SIGKILL" || i.Upgrades != 0 {
		t.Errorf("info after a SIGKILL: %+v", i)
	}
	if got := tk.must(ctlRequest{Op: "read", Name: "pipe", Bytes: len("after the restart")}).Data; got != "after the restart" {
		t.Errorf("read %q from the kept pipe", got)
	}
	log := tk.logText()
	for _, want := range []string{
		`meta for "nobody", which the keeper does not hold: ignored`,
		fmt.Sprintf("corral daemon (pid %d) was killed by SIGKILL after", d1.PID),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the keeper's log lacks %q:\n%s", want, log)
		}
	}
}

// TestBurstThenKill: a daemon SIGKILLed right after a burst of Puts and Deletes loses none of
// them, in their order: the next daemon loads exactly the odd ones.
func TestBurstThenKill(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	d1 := tk.daemon(0)
	tk.load()
	const n = 600
	tk.must(ctlRequest{Op: "burst", Name: "e", N: n, Size: 2000})
	tk.kill(d1.PID)
	tk.daemon(d1.PID)
	r := tk.load()
	got := map[string]bool{}
	for _, e := range r.Entries {
		got[e.Name] = true
	}
	for i := 0; i < n; i++ {
		name := "e" + strconv.Itoa(i)
		if want := i%2 == 1; got[name] != want {
			t.Errorf("%s held: %v, want %v", name, got[name], want)
		}
	}
	if len(r.Entries) != n/2 {
		t.Errorf("%d entries, want %d", len(r.Entries), n/2)
	}
}

// parent returns the parent pid of pid (0 once it is gone).
func parent(pid int) int {
	st, err := procstat.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.PPid
}

// TestOrphans: children a daemon leaves behind when it is SIGKILLed are the keeper's; the
// exit of one, with its exact status, reaches the next daemon at Load, a later one on Exits,
// and ExitSeen makes the keeper forget one.
func TestOrphans(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	d1 := tk.daemon(0)
	tk.load()
	orphans := tk.must(ctlRequest{Op: "orphans", N: 2}).Orphans
	if len(orphans) != 2 {
		t.Fatalf("orphans %v", orphans)
	}
	a, b := orphans[0], orphans[1]
	t.Cleanup(func() { syscall.Kill(a, syscall.SIGKILL); syscall.Kill(b, syscall.SIGKILL) })
	tk.kill(d1.PID)
	keeperPID := tk.cmd.Process.Pid
	testutil.WaitFor(t, "the orphans to become the keeper's children", 30*time.Second, func() bool {
		return parent(a) == keeperPID && parent(b) == keeperPID
	})
	if err := syscall.Kill(a, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the keeper to reap the first orphan", 30*time.Second, func() bool {
		return parent(a) == 0
	})
	d2 := tk.daemon(d1.PID)
	r := tk.load()
	var wantA syscall.WaitStatus = 7 << 8 // exited with code 7
	if len(r.Exits) != 1 || r.Exits[0].PID != a || syscall.WaitStatus(r.Exits[0].Status) != wantA {
		t.Fatalf("exits at load %+v, want pid %d status %#x", r.Exits, a, int(wantA))
	}
	if err := syscall.Kill(b, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	r = tk.must(ctlRequest{Op: "next-exit"})
	if len(r.Exits) != 1 || r.Exits[0].PID != b || syscall.WaitStatus(r.Exits[0].Status).ExitStatus() != 7 {
		t.Fatalf("exit on Exits %+v, want pid %d, code 7", r.Exits, b)
	}
	tk.must(ctlRequest{Op: "seen", PID: a})
	tk.kill(d2.PID)
	tk.daemon(d2.PID)
	r = tk.load()
	if len(r.Exits) != 1 || r.Exits[0].PID != b {
		t.Errorf("exits after ExitSeen(%d): %+v, want only pid %d", a, r.Exits, b)
	}
}

// TestBackoff: a daemon that dies at start is started again after a wait that doubles each
// time; the one that finally serves counts every start.
func TestBackoff(t *testing.T) {
	dir := newDir(t)
	if err := os.WriteFile(filepath.Join(dir, crashFile), []byte("4"), 0o600); err != nil {
		t.Fatal(err)
	}
	tk := startKeeper(t, dir, "keeper.log")
	tk.daemon(0)
	r := tk.load()
	if i := r.Info; i.DaemonStarts != 5 || i.LastExit != "exited with code 1" {
		t.Errorf("info after 4 crashes: %+v", i)
	}
	log := tk.logText()
	at := 0
	for _, wait := range []string{"100ms", "200ms", "400ms", "800ms"} {
		i := strings.Index(log[at:], "exited with code 1 after")
		j := strings.Index(log[at:], "restarting it in "+wait+"\n")
		if i < 0 || j < 0 {
			t.Fatalf("the keeper's log lacks a restart in %s after %d bytes:\n%s", wait, at, log)
		}
		at += j + 1
	}
}

// TestShutdown: after Shutdown, the daemon's exit ends the keeper (code 0, pid file removed);
// systemd hears READY=1 once the daemon is ready, and STOPPING=1; the daemon never sees
// NOTIFY_SOCKET (the fake daemon refuses to run with it).
func TestShutdown(t *testing.T) {
	dir := newDir(t)
	states := make(chan map[string]string, 8)
	rcv, err := sdnotify.Listen(filepath.Join(dir, "notify.sock"), func(s map[string]string) { states <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	tk := startKeeper(t, dir, "keeper.log", "NOTIFY_SOCKET="+filepath.Join(dir, "notify.sock"))
	tk.daemon(0)
	pidFile := filepath.Join(dir, "home", "keeper.pid")
	if b, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(tk.cmd.Process.Pid) {
		t.Errorf("keeper.pid: %q, %v", b, err)
	}
	tk.must(ctlRequest{Op: "ready"})
	tk.must(ctlRequest{Op: "ready"}) // told once
	wantState(t, states, "READY")
	tk.must(ctlRequest{Op: "shutdown"})
	if code := tk.wait(30 * time.Second); code != 0 {
		t.Errorf("keeper exited %d after Shutdown", code)
	}
	wantState(t, states, "STOPPING")
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("keeper.pid outlived the keeper: %v", err)
	}
}

func wantState(t *testing.T, states <-chan map[string]string, key string) {
	t.Helper()
	select {
	case s := <-states:
		if s[key] != "1" {
			t.Errorf("systemd heard %v, want %s=1", s, key)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("systemd never heard %s=1", key)
	}
}

// TestStopSignal: SIGTERM to the keeper reaches the daemon, and the keeper exits with it
// instead of starting it again.
func TestStopSignal(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	d1 := tk.daemon(0)
	if err := tk.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tk.wait(30 * time.Second); code != 0 {
		t.Errorf("keeper exited %d after SIGTERM", code)
	}
	if log := tk.logText(); !strings.Contains(log, fmt.Sprintf("corral daemon (pid %d) was killed by SIGTERM", d1.PID)) || strings.Contains(log, "restarting") {
		t.Errorf("the keeper's log:\n%s", log)
	}
}

// TestSecondKeeper: a second keeper on the same home finds the lock taken and says so.
func TestSecondKeeper(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	tk.daemon(0)
	second := startKeeper(t, dir, "second.log")
	if code := second.wait(30 * time.Second); code != keeperExitRunning {
		t.Errorf("the second keeper exited %d, want %d:\n%s", code, keeperExitRunning, second.logText())
	}
}

// TestKeeperGone: a daemon whose keeper dies learns it from Closed; a daemon that closes its
// client goes on, and the keeper still starts the next one when it dies.
func TestKeeperGone(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	d1 := tk.daemon(0)
	tk.must(ctlRequest{Op: "close"})
	tk.must(ctlRequest{Op: "hello"})
	tk.kill(d1.PID)
	d2 := tk.daemon(d1.PID)
	tk.load()
	if err := tk.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	tk.must(ctlRequest{Op: "closed"})
	syscall.Kill(d2.PID, syscall.SIGKILL)
}

// keeperFDs counts the fds of the keeper.
func keeperFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestKeeperFDLeak: the keeper closes the fds of deleted and replaced entries.
func TestKeeperFDLeak(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	tk.daemon(0)
	tk.load()
	pid := tk.cmd.Process.Pid
	before := keeperFDs(t, pid)
	const n = 20
	for i := 0; i < n; i++ {
		r, w := pipe(t)
		tk.must(ctlRequest{Op: "put", Name: "p" + strconv.Itoa(i), Meta: json.RawMessage(`1`)}, r, w)
		r.Close()
		w.Close()
	}
	testutil.WaitFor(t, "the keeper to hold the entries' fds", 30*time.Second, func() bool {
		return keeperFDs(t, pid) >= before+2*n
	})
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			tk.must(ctlRequest{Op: "delete", Name: "p" + strconv.Itoa(i)})
		} else {
			tk.must(ctlRequest{Op: "put", Name: "p" + strconv.Itoa(i), Meta: json.RawMessage(`2`)}) // replaced: no fds
		}
	}
	testutil.WaitFor(t, fmt.Sprintf("the keeper's fds back at %d", before), 30*time.Second, func() bool {
		return keeperFDs(t, pid) == before
	})
}

// TestHandoverVersion: what `corral keeper --handover-version` prints.
func TestHandoverVersion(t *testing.T) {
	if got := HandoverJSON(7); got != `{"keeper":1,"protocol":1,"daemon":7}` {
		t.Errorf("HandoverJSON(7) = %s", got)
	}
	var v Versions
	if err := json.Unmarshal([]byte(HandoverJSON(7)), &v); err != nil || v != (Versions{HandoverVersion, ProtocolVersion, 7}) {
		t.Errorf("%s does not parse as %+v: %v", HandoverJSON(7), v, err)
	}
}

// TestUpgrade: after Upgrade and the daemon's exit, the keeper re-executes itself (same pid)
// and the new image holds everything the old one did: entries and their fds, unacknowledged
// exits, its lock, its counters (Upgrades 1, DaemonStarts unchanged); its new daemon loads
// them, and orphans of the old image are still reaped.
func TestUpgrade(t *testing.T) {
	dir := newDir(t)
	tk := startKeeper(t, dir, "keeper.log")
	keeperPID := tk.cmd.Process.Pid
	d1 := tk.daemon(0)
	tk.load()
	pr, pw := pipe(t)
	tk.must(ctlRequest{Op: "put", Name: "pipe", Meta: json.RawMessage(`{"app":"web"}`)}, pr)
	pr.Close()
	tk.must(ctlRequest{Op: "big", Name: "table", Size: 100 << 10})
	a := tk.must(ctlRequest{Op: "orphans", N: 1}).Orphans[0]
	t.Cleanup(func() { syscall.Kill(a, syscall.SIGKILL) })
	tk.kill(d1.PID)
	d2 := tk.daemon(d1.PID)
	testutil.WaitFor(t, "the orphan to become the keeper's child", 30*time.Second, func() bool { return parent(a) == keeperPID })
	syscall.Kill(a, syscall.SIGUSR1)
	testutil.WaitFor(t, "the keeper to reap the orphan", 30*time.Second, func() bool { return parent(a) == 0 })
	before := tk.load()
	if len(before.Exits) != 1 || before.Info.DaemonStarts != 2 {
		t.Fatalf("before the upgrade: exits %+v, info %+v", before.Exits, before.Info)
	}
	b := tk.must(ctlRequest{Op: "orphans", N: 1}).Orphans[0]
	t.Cleanup(func() { syscall.Kill(b, syscall.SIGKILL) })
	tk.must(ctlRequest{Op: "ready"})
	tk.must(ctlRequest{Op: "upgrade"})

	d3 := tk.daemon(d2.PID)
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", keeperPID))
	if !strings.Contains(string(cmdline), "--resume-fd") {
		t.Errorf("the keeper (pid %d) did not re-execute itself: %q", keeperPID, cmdline)
	}
	if d3.First {
		t.Error("the daemon after an upgrade got FirstArgs")
	}
	pw.Write([]byte("after the upgrade"))
	r := tk.load()
	if got := strings.Join(entryNames(r), ","); got != "pipe,table" {
		t.Errorf("entries after the upgrade: %s", got)
	}
	if e, _ := findEntry(r, "pipe"); string(e.Meta) != `{"app":"web"}` || e.Files != 1 {
		t.Errorf("pipe entry after the upgrade: %+v", e)
	}
	bigMeta, _ := json.Marshal(strings.Repeat("x", 100<<10))
	if e, _ := findEntry(r, "table"); e.MetaSum != metaSum(string(bigMeta)) {
		t.Errorf("big entry after the upgrade: %+v", e)
	}
	if len(r.Exits) != 1 || r.Exits[0].PID != a || syscall.WaitStatus(r.Exits[0].Status).ExitStatus() != 7 {
		t.Errorf("exits after the upgrade: %+v, want pid %d", r.Exits, a)
	}
	i := r.Info
	if i.Upgrades != 1 || i.DaemonStarts != 2 || i.KeeperPID != keeperPID || !i.KeeperStarted.Equal(before.Info.KeeperStarted) || i.LastExit != "exited with code 0" {
		t.Errorf("info after the upgrade: %+v (before: %+v)", i, before.Info)
	}
	if got := tk.must(ctlRequest{Op: "read", Name: "pipe", Bytes: len("after the upgrade")}).Data; got != "after the upgrade" {
		t.Errorf("read %q from the kept pipe", got)
	}
	testutil.WaitFor(t, "the old daemon's orphan to become the keeper's child", 30*time.Second, func() bool { return parent(b) == keeperPID })
	syscall.Kill(b, syscall.SIGUSR1)
	if r := tk.must(ctlRequest{Op: "next-exit"}); len(r.Exits) != 1 || r.Exits[0].PID != b {
		t.Errorf("exit after the upgrade: %+v, want pid %d", r.Exits, b)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "home", "keeper.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		t.Error("the keeper's lock is free after the upgrade")
	}
	tk.must(ctlRequest{Op: "shutdown"})
	if code := tk.wait(30 * time.Second); code != 0 {
		t.Errorf("the upgraded keeper exited %d after Shutdown", code)
	}
}

// TestResumeUnknownVersion: an image handed a state of a version it does not know logs it,
// leaves every fd it inherited open (and away from the daemon), and starts a daemon that finds
// nothing to adopt.
func TestResumeUnknownVersion(t *testing.T) {
	dir := newDir(t)
	memfd, err := unix.MemfdCreate("state", 0)
	if err != nil {
		t.Fatal(err)
	}
	state := os.NewFile(uintptr(memfd), "state")
	defer state.Close()
	state.WriteString(`{"version":99,"entries":[{"name":"x","fds":[4]}]}`)
	state.Seek(0, 0)
	_, pw := pipe(t)
	tk := startKeeperWith(t, dir, "keeper.log", []string{"keeper", "--resume-fd", "3", "--", argDaemon}, []*os.File{state, pw})
	d := tk.daemon(0)
	r := tk.load()
	if len(r.Entries) != 0 || r.Info.KeeperPID != tk.cmd.Process.Pid {
		t.Errorf("after an unknown state: entries %v, info %+v", r.Entries, r.Info)
	}
	if log := tk.logText(); !strings.Contains(log, "a state of version 99") {
		t.Errorf("the keeper's log does not name the version:\n%s", log)
	}
	want, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(pw.Fd())))
	if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/4", tk.cmd.Process.Pid)); got != want {
		t.Errorf("the keeper's fd 4 is %q, want the inherited %q", got, want)
	}
	if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/4", d.PID)); got == want {
		t.Errorf("the daemon inherited the keeper's fd 4 (%s)", got)
	}
}
