package integration

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"
)

// terminal is corral running in a pseudo-terminal, as a person runs it, with a terminal
// emulator reading what it draws: the screen as text, keys typed into it, and the emulator's
// answers to the program's queries sent back as a real terminal's would be.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File

	mu     sync.Mutex
	screen *vt.Emulator
	raw    bytes.Buffer // every byte the program wrote, for failure reports

	done     chan struct{} // closed when the program has exited
	exitCode int
	read     chan struct{} // closed when readOutput has returned
	answered chan struct{} // closed when answerQueries has returned
}

// Terminal size of the tests: wide enough for monit's two panes.
const termCols, termRows = 120, 40

// terminalEnviron is the test's environment as a person's terminal has it: TERM set as a
// terminal emulator sets it, and no CI= (termenv never queries the terminal under CI=…, and a
// CI run must test what a person gets).
func (e *env) terminalEnviron() []string {
	var env []string
	for _, kv := range e.environ() {
		if !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, "TERM=") {
			env = append(env, kv)
		}
	}
	return append(env, "TERM=xterm-256color")
}

// runInTerminal starts corral with args in a new pseudo-terminal of termCols x termRows, with
// terminalEnviron. The program is killed and the terminal closed when the test ends, whatever
// happened.
func (e *env) runInTerminal(args ...string) *terminal {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.terminalEnviron()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: termRows, Cols: termCols})
	if err != nil {
		e.t.Fatalf("start corral %s in a pseudo-terminal: %v", strings.Join(args, " "), err)
	}
	term := &terminal{t: e.t, cmd: cmd, ptmx: ptmx, screen: vt.NewEmulator(termCols, termRows),
		done: make(chan struct{}), read: make(chan struct{}), answered: make(chan struct{})}
	go term.readOutput()
	go term.answerQueries()
	go func() {
		err := cmd.Wait()
		term.exitCode = cmd.ProcessState.ExitCode()
		if err != nil && term.exitCode < 0 {
			term.exitCode = -1
		}
		close(term.done)
	}()
	e.t.Cleanup(term.close)
	return term
}

// readOutput feeds what the program writes to the emulator until the terminal closes.
func (term *terminal) readOutput() {
	defer close(term.read)
	buf := make([]byte, 32<<10)
	for {
		n, err := term.ptmx.Read(buf)
		if n > 0 {
			term.mu.Lock()
			term.raw.Write(buf[:n])
			_, _ = term.screen.Write(buf[:n])
			term.mu.Unlock()
		}
		if err != nil {
			return // EIO once the program has exited and the terminal is closed
		}
	}
}

// answerQueries sends the emulator's answers (cursor position, colours) to the program. It
// reads them until the emulator's answer pipe is closed, even once the terminal is: the
// emulator writes an answer only as fast as it is read.
func (term *terminal) answerQueries() {
	defer close(term.answered)
	buf := make([]byte, 4<<10)
	for {
		n, err := term.screen.Read(buf)
		if n > 0 {
			_, _ = term.ptmx.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// close kills the program if it still runs and releases the terminal.
func (term *terminal) close() {
	select {
	case <-term.done:
	default:
		_ = term.cmd.Process.Kill()
		<-term.done
	}
	term.ptmx.Close()
	<-term.read
	// The answer pipe, closed from its writing end: Emulator.Close would race with its Read.
	if c, ok := term.screen.InputPipe().(io.Closer); ok {
		c.Close()
	}
	<-term.answered
}

// text is the screen as it is now, as text.
func (term *terminal) text() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.screen.String()
}

// altScreen reports whether the program has the alternate screen on.
func (term *terminal) altScreen() bool {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.screen.IsAltScreen()
}

// press types keys, as one write.
func (term *terminal) press(keys string) {
	term.t.Helper()
	if _, err := term.ptmx.Write([]byte(keys)); err != nil {
		term.t.Fatalf("type %q: %v", keys, err)
	}
}

// waitScreen waits until cond holds for the screen, or fails the test showing the screen.
func (term *terminal) waitScreen(what string, timeout time.Duration, cond func(screen string) bool) {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := term.text()
		if cond(s) {
			return
		}
		select {
		case <-term.done:
			term.t.Fatalf("the program exited (code %d) while waiting for %s; its screen:\n%s", term.exitCode, what, s)
		default:
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("timed out after %v waiting for %s; the screen:\n%s", timeout, what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait waits for the program to exit and returns its exit code, or fails the test.
func (term *terminal) wait(timeout time.Duration) int {
	term.t.Helper()
	select {
	case <-term.done:
		return term.exitCode
	case <-time.After(timeout):
		term.t.Fatalf("the program did not exit within %v; the screen:\n%s", timeout, term.text())
		return -1
	}
}

// quit types keys that should end the program (named how, for the messages) and checks it
// then exits 0 and gives the terminal back: the alternate screen off.
func (term *terminal) quit(keys, how string) {
	term.t.Helper()
	term.press(keys)
	if code := term.wait(30 * time.Second); code != 0 {
		term.t.Errorf("%s: exit code %d, want 0; the screen:\n%s", how, code, term.text())
	}
	if term.altScreen() {
		term.t.Errorf("%s: the terminal was left in the alternate screen", how)
	}
}

// output is every byte the program wrote so far.
func (term *terminal) output() []byte {
	term.mu.Lock()
	defer term.mu.Unlock()
	return bytes.Clone(term.raw.Bytes())
}
