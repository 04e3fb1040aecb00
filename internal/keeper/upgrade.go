package keeper

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/safefs"
	"golang.org/x/sys/unix"
)

// HandoverVersion is the version of the state a keeper hands the image it re-executes at a
// hot upgrade. `corral keeper --handover-version` prints it ({"keeper":1}), so that a daemon
// can check the binary on disk before it asks for an upgrade.
const HandoverVersion = 1

// handover is the state of a keeper, written into a memfd across its re-execution. Every fd
// in it is open in the new image (FD_CLOEXEC cleared before the exec).
type handover struct {
	Version       int             `json:"version"`
	Home          string          `json:"home"`
	Exe           string          `json:"exe"`
	DaemonArgs    []string        `json:"daemon_args"`
	LockFD        int             `json:"lock_fd"`
	Info          Info            `json:"info"`
	ReadyNotified bool            `json:"ready_notified"`
	Entries       []handoverEntry `json:"entries"`
	Exits         []exitWire      `json:"exits"`
}

type handoverEntry struct {
	Name string          `json:"name"`
	Meta json.RawMessage `json:"meta"`
	FDs  []int           `json:"fds"`
}

// Versions is what `corral keeper --handover-version` prints: what a binary reads of a running
// corral's state, so that a daemon can check the binary on disk before it asks for a hot
// upgrade. Keeper is the keeper's upgrade state (HandoverVersion), Protocol the channel
// (ProtocolVersion), Daemon the daemon's hand-over state (api.HandoverVersion, which the
// caller gives: this package does not know the daemon's layout).
type Versions struct {
	Keeper   int `json:"keeper"`
	Protocol int `json:"protocol"`
	Daemon   int `json:"daemon"`
}

// HandoverJSON is what `corral keeper --handover-version` prints, for a daemon whose hand-over
// state has version daemon.
func HandoverJSON(daemon int) string {
	return fmt.Sprintf(`{"keeper":%d,"protocol":%d,"daemon":%d}`, HandoverVersion, ProtocolVersion, daemon)
}

// upgrade re-executes the corral binary as a keeper with the whole state. It returns only if
// that failed, with everything as it was.
func (k *keeper) upgrade() error {
	st := handover{
		Version:       HandoverVersion,
		Home:          k.opts.Paths.Home,
		Exe:           k.exe,
		DaemonArgs:    k.opts.DaemonArgs,
		LockFD:        k.lockFD,
		Info:          k.info,
		ReadyNotified: k.readyNotified,
	}
	st.Info.Upgrades++
	inherit := []int{}
	if k.lockFD >= 0 {
		inherit = append(inherit, k.lockFD)
	}
	for name, e := range k.entries {
		meta := e.meta
		if !json.Valid(meta) {
			meta = []byte("null")
		}
		st.Entries = append(st.Entries, handoverEntry{Name: name, Meta: meta, FDs: e.fds})
		inherit = append(inherit, e.fds...)
	}
	for _, e := range k.exits {
		st.Exits = append(st.Exits, e.wire())
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the keeper's state: %w", err)
	}
	memfd, err := unix.MemfdCreate("corral-keeper-state", 0)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(memfd), "corral-keeper-state")
	defer f.Close() // reached only when the exec failed
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write the keeper's state: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("write the keeper's state: %w", err)
	}
	for _, fd := range inherit {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			k.setCloexec(inherit)
			return fmt.Errorf("pass fd %d on: %w", fd, err)
		}
	}
	argv := append([]string{k.exe, "keeper", "--resume-fd", strconv.Itoa(memfd), "--"}, k.opts.DaemonArgs...)
	err = syscall.Exec(k.exe, argv, os.Environ())
	k.setCloexec(inherit)
	return fmt.Errorf("exec %s: %w", k.exe, err)
}

func (k *keeper) setCloexec(fds []int) {
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			k.logf("mark fd %d close-on-exec: %v", fd, err)
		}
	}
}

// resume takes over the state the previous image handed over in memfd. Run has marked every
// fd close-on-exec already. A state of a version this keeper does not know is logged, its fds
// left open (the apps may need them; nothing here knows which they are), and the keeper goes
// on empty-handed: the daemon finds nothing to adopt.
func (k *keeper) resume(memfd int) error {
	f := os.NewFile(uintptr(memfd), "corral-keeper-state")
	b, err := io.ReadAll(f)
	f.Close()
	exe, exeErr := os.Executable()
	k.info = Info{KeeperPID: os.Getpid(), KeeperStarted: time.Now(), DaemonStarts: 1, Upgrades: 1, Version: ProtocolVersion}
	var st handover
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	switch {
	case err != nil:
		k.logf("cannot read the state the previous keeper handed over (%v): going on without it", err)
	case st.Version != HandoverVersion:
		k.logf("the previous keeper handed over a state of version %d, and this one knows version %d: going on without it (what it held stays open, unused)", st.Version, HandoverVersion)
	default:
		k.exe = st.Exe
		if k.opts.Paths.Home == "" && st.Home != "" {
			k.opts.Paths = home.At(st.Home)
		}
		k.opts.DaemonArgs = st.DaemonArgs
		k.lockFD = st.LockFD
		k.info = st.Info
		k.info.KeeperPID = os.Getpid()
		k.info.Version = ProtocolVersion
		k.readyNotified = st.ReadyNotified
		for _, e := range st.Entries {
			k.entries[e.Name] = &held{meta: e.Meta, fds: e.FDs}
			k.metaLen += len(e.Meta)
		}
		for _, w := range st.Exits {
			k.exits = append(k.exits, w.exit())
		}
		k.logf("corral keeper (pid %d) resumed after upgrade %d: holding %d entries and %d exits", os.Getpid(), k.info.Upgrades, len(k.entries), len(k.exits))
	}
	if k.exe == "" {
		if exeErr != nil {
			return fmt.Errorf("find the corral binary: %w", exeErr)
		}
		k.exe = exe
	}
	// The pid is the same; the file is written again in case it went missing.
	if err := safefs.WriteFile(k.opts.Paths.KeeperPidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		k.logf("write the keeper's pid file: %v", err)
	}
	return nil
}
