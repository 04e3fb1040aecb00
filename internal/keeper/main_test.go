package keeper

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/home"
	"golang.org/x/sys/unix"
)

// roleVar makes the test binary, re-executed by a test, play a part instead of running the
// tests: the keeper (which then starts this binary again as its daemon, and re-executes it at
// an upgrade), the fake daemon, or an orphan the fake daemon leaves behind.
const roleVar = "CORRAL_KEEPER_TEST_ROLE"

// dirVar is the test's directory: the home, the fake daemon's control socket and its files.
const dirVar = "CORRAL_KEEPER_TEST_DIR"

const (
	roleKeeper = "keeper"
	roleOrphan = "orphan"
	// argDaemon is the fake daemon's first argument (the keeper's DaemonArgs).
	argDaemon = "fake-daemon"
	// argFirst marks the first daemon (FirstArgs).
	argFirst = "--first"
)

// Exit codes of the keeper role.
const (
	keeperExitError   = 1
	keeperExitRunning = 4
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleVar) {
	case "":
		os.Exit(m.Run())
	case roleOrphan:
		// Runs until SIGUSR1, then exits 7: an exact status for the keeper to report. It says
		// on stdout when it listens for the signal.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGUSR1)
		fmt.Println("listening")
		<-sigs
		os.Exit(7)
	case roleKeeper:
		if len(os.Args) > 1 && os.Args[1] == argDaemon {
			os.Exit(fakeDaemon(os.Getenv(dirVar), os.Args[2:]))
		}
		os.Exit(runKeeper(os.Getenv(dirVar), os.Args[1:]))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", roleVar, os.Getenv(roleVar))
		os.Exit(2)
	}
}

// runKeeper is the keeper role: a fresh keeper, or (`keeper --resume-fd N -- args`) the image
// an upgrade re-executed.
func runKeeper(dir string, args []string) int {
	opts := Options{
		Paths:      home.At(filepath.Join(dir, "home")),
		DaemonArgs: []string{argDaemon},
		FirstArgs:  []string{argFirst},
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "keeper: "+format+"\n", args...)
		},
	}
	if len(args) >= 3 && args[0] == "keeper" && args[1] == "--resume-fd" {
		fd, err := strconv.Atoi(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return keeperExitError
		}
		opts.ResumeFD = fd
	}
	err := Run(opts)
	switch {
	case errors.Is(err, ErrRunning):
		fmt.Fprintln(os.Stderr, err)
		return keeperExitRunning
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return keeperExitError
	}
	return 0
}

// ctlRequest is a command of the test to the fake daemon, over its control socket (one
// datagram, fds in SCM_RIGHTS); ctlReply its answer.
type ctlRequest struct {
	Op    string          `json:"op"`
	Name  string          `json:"name,omitempty"`
	Meta  json.RawMessage `json:"meta,omitempty"`
	PID   int             `json:"pid,omitempty"`
	N     int             `json:"n,omitempty"`
	Size  int             `json:"size,omitempty"`
	Bytes int             `json:"bytes,omitempty"`
}

type ctlReply struct {
	PID     int         `json:"pid"`
	First   bool        `json:"first,omitempty"`
	Err     string      `json:"err,omitempty"`
	Entries []seenEntry `json:"entries,omitempty"`
	Exits   []seenExit  `json:"exits,omitempty"`
	Info    *Info       `json:"info,omitempty"`
	Data    string      `json:"data,omitempty"`
	Orphans []int       `json:"orphans,omitempty"`
}

// seenEntry is a loaded entry as the fake daemon reports it: its meta itself when short,
// else its length and SHA-256 (the control socket's datagrams are small).
type seenEntry struct {
	Name    string          `json:"name"`
	Meta    json.RawMessage `json:"meta,omitempty"`
	MetaLen int             `json:"meta_len"`
	MetaSum string          `json:"meta_sum"`
	Files   int             `json:"files"`
}

// shortMeta is the longest meta the fake daemon reports as it is.
const shortMeta = 1024

func reportEntry(e Entry) seenEntry {
	sum := sha256.Sum256(e.Meta)
	s := seenEntry{Name: e.Name, MetaLen: len(e.Meta), MetaSum: hex.EncodeToString(sum[:]), Files: len(e.Files)}
	if len(e.Meta) <= shortMeta {
		s.Meta = e.Meta
	}
	return s
}

type seenExit struct {
	PID    int `json:"pid"`
	Status int `json:"status"`
}

// crashFile, when it holds a number above 0, makes the fake daemon exit 1 at start after
// counting it down: a daemon that crash-loops.
const crashFile = "crashes"

// fakeDaemon is a daemon as the keeper sees it: a client of the keeper, driven by the test
// through a control socket in dir.
func fakeDaemon(dir string, args []string) int {
	if b, err := os.ReadFile(filepath.Join(dir, crashFile)); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n > 0 {
			os.WriteFile(filepath.Join(dir, crashFile), []byte(strconv.Itoa(n-1)), 0o600)
			fmt.Fprintln(os.Stderr, "fake daemon: crashing at start")
			return 1
		}
	}
	cl, err := FromEnv()
	if err != nil || cl == nil {
		fmt.Fprintf(os.Stderr, "fake daemon: no keeper: %v\n", err)
		return 2
	}
	if v, ok := os.LookupEnv(EnvFD); ok {
		fmt.Fprintf(os.Stderr, "fake daemon: %s=%s is still set\n", EnvFD, v)
		return 2
	}
	if v := os.Getenv("NOTIFY_SOCKET"); v != "" {
		fmt.Fprintf(os.Stderr, "fake daemon: NOTIFY_SOCKET=%s reached the daemon\n", v)
		return 2
	}
	sock := filepath.Join(dir, "ctl.sock")
	os.Remove(sock)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake daemon:", err)
		return 2
	}
	first := len(args) > 0 && args[0] == argFirst
	files := map[string][]*os.File{}
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake daemon:", err)
			return 2
		}
		buf := make([]byte, 1<<20)
		oob := make([]byte, unix.CmsgSpace(16*4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			conn.Close()
			continue
		}
		var req ctlRequest
		json.Unmarshal(buf[:n], &req)
		fds, _ := parseRights(oob[:oobn])
		reply := ctlReply{PID: os.Getpid(), First: first}
		exit := -1
		fail := func(err error) {
			if err != nil {
				reply.Err = err.Error()
			}
		}
		switch req.Op {
		case "hello":
		case "load":
			entries, exits, info, err := cl.Load()
			fail(err)
			reply.Info = &info
			for _, e := range entries {
				reply.Entries = append(reply.Entries, reportEntry(e))
				files[e.Name] = e.Files
			}
			for _, e := range exits {
				reply.Exits = append(reply.Exits, seenExit{e.PID, int(e.Status)})
			}
		case "put":
			var fs []*os.File
			for _, fd := range fds {
				fs = append(fs, os.NewFile(uintptr(fd), "from the test"))
			}
			fail(cl.Put(req.Name, req.Meta, fs...))
			for _, f := range fs {
				f.Close() // the keeper holds its own copies
			}
			fds = nil
		case "burst":
			// Puts 0..N-1, each with a meta of Size bytes, then deletes the even ones.
			meta := strings.Repeat("x", req.Size)
			for i := 0; i < req.N && reply.Err == ""; i++ {
				fail(cl.Put(fmt.Sprintf("%s%d", req.Name, i), meta))
			}
			for i := 0; i < req.N && reply.Err == ""; i += 2 {
				fail(cl.Delete(fmt.Sprintf("%s%d", req.Name, i)))
			}
		case "big":
			// Puts Name with a JSON string of Size "x" as its meta.
			fail(cl.Put(req.Name, strings.Repeat("x", req.Size)))
		case "meta":
			fail(cl.SetMeta(req.Name, req.Meta))
		case "delete":
			fail(cl.Delete(req.Name))
		case "read":
			// Reads Bytes bytes from the first fd of the loaded entry Name.
			fs := files[req.Name]
			if len(fs) == 0 {
				fail(fmt.Errorf("no file loaded for %q", req.Name))
				break
			}
			fs[0].SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, req.Bytes)
			_, err := io.ReadFull(fs[0], b)
			fail(err)
			reply.Data = string(b)
		case "orphans":
			// Starts N orphans-to-be: children this daemon never waits for.
			for i := 0; i < req.N; i++ {
				cmd := exec.Command(os.Args[0])
				cmd.Env = append(os.Environ(), roleVar+"="+roleOrphan)
				out, err := cmd.StdoutPipe()
				if err == nil {
					err = cmd.Start()
				}
				if err == nil {
					_, err = bufio.NewReader(out).ReadString('\n')
				}
				if err != nil {
					fail(err)
					break
				}
				reply.Orphans = append(reply.Orphans, cmd.Process.Pid)
			}
		case "next-exit":
			select {
			case e := <-cl.Exits():
				reply.Exits = []seenExit{{e.PID, int(e.Status)}}
			case <-time.After(30 * time.Second):
				fail(errors.New("no exit within 30s"))
			}
		case "seen":
			fail(cl.ExitSeen(req.PID))
		case "ready":
			fail(cl.Ready())
		case "shutdown":
			fail(cl.Shutdown())
			exit = 0
		case "upgrade":
			fail(cl.Upgrade())
			exit = 0
		case "close":
			fail(cl.Close())
		case "closed":
			select {
			case <-cl.Closed():
			case <-time.After(30 * time.Second):
				fail(errors.New("Closed did not close within 30s"))
			}
		case "exit":
			exit = req.N
		default:
			fail(fmt.Errorf("unknown op %q", req.Op))
		}
		closeAll(fds)
		b, _ := json.Marshal(reply)
		conn.Write(b)
		conn.Close()
		if exit >= 0 {
			ln.Close()
			return exit
		}
	}
}
