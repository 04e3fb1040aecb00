package nodeipc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// waitTimeout bounds every wait in these tests; the -race detector and a loaded machine make
// Node's start-up slow, but nothing here should take more than a few seconds.
const waitTimeout = 20 * time.Second

// checkLeaks records the fd count now and, when the test ends (after every later cleanup:
// cleanups run last-in first-out), checks that all channel goroutines have exited and the fd
// count is back to where it was. Call it first in a test. Tests are not parallel, so the
// process-wide counts are meaningful.
func checkLeaks(t *testing.T) {
	t.Helper()
	testutil.CheckFDs(t, waitTimeout, testutil.Condition{
		Holds: func() bool { return liveGoroutines.Load() == 0 },
		State: func() string { return fmt.Sprintf("%d channel goroutines alive", liveGoroutines.Load()) },
	})
}

type badLine struct {
	line []byte
	err  error
}

// recorder is a Handler that hands everything to the test through channels.
type recorder struct {
	t      *testing.T
	msgs   chan Message
	bad    chan badLine
	closed chan error
	nClose atomic.Int32
	hook   func(Message) // runs on the reader goroutine before the message is recorded
}

// newRecorder returns a recorder whose leftover handles are closed when the test ends.
func newRecorder(t *testing.T) *recorder {
	r := &recorder{
		t:      t,
		msgs:   make(chan Message, 1024),
		bad:    make(chan badLine, 1024),
		closed: make(chan error, 1),
	}
	t.Cleanup(func() {
		for {
			select {
			case m := <-r.msgs:
				if m.Handle != nil {
					m.Handle.Close()
				}
			default:
				return
			}
		}
	})
	return r
}

func (r *recorder) HandleMessage(m Message) {
	if r.hook != nil {
		r.hook(m)
	}
	r.msgs <- m
}

func (r *recorder) HandleBadLine(line []byte, err error) { r.bad <- badLine{line, err} }

func (r *recorder) HandleClose(err error) {
	if n := r.nClose.Add(1); n != 1 {
		r.t.Errorf("HandleClose called %d times", n)
		return
	}
	r.closed <- err
}

func (r *recorder) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a message")
		return Message{}
	}
}

// nextRaw returns the next message, which must carry no handle, as its raw JSON.
func (r *recorder) nextRaw(t *testing.T) string {
	t.Helper()
	m := r.next(t)
	if m.Handle != nil {
		m.Handle.Close()
		t.Fatalf("unexpected handle with %s", m.Raw)
	}
	return string(m.Raw)
}

func (r *recorder) nextBad(t *testing.T) badLine {
	t.Helper()
	select {
	case b := <-r.bad:
		return b
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a bad line")
		return badLine{}
	}
}

func (r *recorder) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.closed:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for HandleClose")
		return nil
	}
}

// openChannel opens f with h and closes the channel when the test ends.
func openChannel(t *testing.T, f *os.File, h Handler, opt Options) *Channel {
	t.Helper()
	c, err := Open(f, h, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(waitTimeout):
			t.Errorf("channel not done %v after Close", waitTimeout)
		}
	})
	return c
}

func waitDone(t *testing.T, c *Channel) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for Done")
	}
}

// rawPeer plays the child's side byte by byte, for tests that need to see or produce exact
// wire bytes.
type rawPeer struct {
	t    *testing.T
	conn *net.UnixConn
	buf  []byte
	fds  []int
}

func newRawPeer(t *testing.T, f *os.File) *rawPeer {
	t.Helper()
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatalf("FileConn: %v", err)
	}
	p := &rawPeer{t: t, conn: fc.(*net.UnixConn)}
	t.Cleanup(func() {
		p.conn.Close()
		closeFDs(p.fds)
	})
	return p
}

// readLine returns the next line (without '\n') and the fds received since the previous line.
func (p *rawPeer) readLine() (string, []int) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*maxRecvFDs))
	for {
		if i := bytes.IndexByte(p.buf, '\n'); i >= 0 {
			line := string(p.buf[:i])
			p.buf = p.buf[i+1:]
			fds := p.fds
			p.fds = nil
			return line, fds
		}
		n, oobn, _, _, err := p.conn.ReadMsgUnix(buf, oob)
		p.fds = append(p.fds, parseRights(oob[:oobn])...)
		p.buf = append(p.buf, buf[:n]...)
		if err != nil {
			p.t.Fatalf("raw peer read: %v (have %q)", err, p.buf)
		}
	}
}

func (p *rawPeer) expectLine(want string) {
	p.t.Helper()
	got, fds := p.readLine()
	closeFDs(fds)
	if got != want {
		p.t.Fatalf("peer read %q, want %q", got, want)
	}
	if len(fds) != 0 {
		p.t.Fatalf("peer got %d unexpected fds with %q", len(fds), got)
	}
}

func (p *rawPeer) write(s string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(s)); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

// writeFDs sends s in one sendmsg with fds attached.
func (p *rawPeer) writeFDs(s string, fds ...int) {
	p.t.Helper()
	n, _, err := p.conn.WriteMsgUnix([]byte(s), unix.UnixRights(fds...), nil)
	if err != nil || n != len(s) {
		p.t.Fatalf("raw peer sendmsg: n=%d err=%v", n, err)
	}
}

// socketPair returns two connected AF_UNIX stream sockets, closed when the test ends.
func socketPair(t *testing.T) (a, b *os.File) {
	t.Helper()
	a, b, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// lockedBuffer collects a child's output while os/exec copies into it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nodeChild is a running `node testdata/<script>` with the channel on fd 3.
type nodeChild struct {
	cmd      *exec.Cmd
	ch       *Channel
	out      lockedBuffer
	waitOnce sync.Once
	waitErr  error
	exited   chan struct{}
}

// startNode spawns node on a testdata script the way the daemon will: child end as
// ExtraFiles[0] (fd 3), Env(3), the daemon's copy of the child end closed right after Start.
// The child is killed and reaped when the test ends, whatever happens.
func startNode(t *testing.T, script string, h Handler, extraEnv ...string) *nodeChild {
	t.Helper()
	return startNodeWith(t, script, h, Options{}, extraEnv...)
}

// startNodeWith is startNode with the daemon side's channel options.
func startNodeWith(t *testing.T, script string, h Handler, opt Options, extraEnv ...string) *nodeChild {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	parent, child, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	nc := &nodeChild{exited: make(chan struct{})}
	nc.cmd = exec.Command(node, filepath.Join("testdata", script))
	nc.cmd.ExtraFiles = []*os.File{child}
	nc.cmd.Env = append(append(childEnv(), Env(3)...), extraEnv...)
	nc.cmd.Stdout = &nc.out
	nc.cmd.Stderr = &nc.out
	if err := nc.cmd.Start(); err != nil {
		parent.Close()
		child.Close()
		t.Fatalf("start node: %v", err)
	}
	child.Close() // else EOF is never seen when the child dies (docs/node-cluster-protocol.md §2.2)
	go func() {
		nc.waitOnce.Do(func() { nc.waitErr = nc.cmd.Wait() })
		close(nc.exited)
	}()
	t.Cleanup(func() {
		nc.cmd.Process.Kill()
		<-nc.exited
		if t.Failed() {
			t.Logf("node %s output:\n%s", script, nc.out.String())
		}
	})
	nc.ch = openChannel(t, parent, h, opt)
	return nc
}

// wait returns the child's exit error once it has exited.
func (nc *nodeChild) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-nc.exited:
		return nc.waitErr
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for node to exit")
		return nil
	}
}

// childEnv is this process's environment minus anything that would change how node sets up
// the channel or cluster.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "NODE_CHANNEL_"), strings.HasPrefix(kv, "NODE_UNIQUE_ID="),
			strings.HasPrefix(kv, "NODE_OPTIONS="):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// exitCode returns the exit code in err (0 for nil).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	return ee.ExitCode()
}

// listenTCP listens on a loopback port until the test ends.
func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptedTCP connects a client to ln and returns it (closed when the test ends) with the
// accepted end of the connection as a file of its own, for the test to close.
func acceptedTCP(t *testing.T, ln net.Listener) (net.Conn, *os.File) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := srv.(*net.TCPConn).File()
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	return client, f
}
