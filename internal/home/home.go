// Package home lays out CORRAL_HOME: the directory that holds the daemon's socket, pid file,
// log, the apps' logs and the saved process list. The CLI and the daemon agree on it through
// this package alone.
package home

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Paths are the files of one CORRAL_HOME.
type Paths struct {
	Home      string
	Socket    string // the control API (0600)
	PidFile   string // the daemon's pid
	Lock      string // held (flock) by the running daemon: one daemon per home
	DaemonLog string
	LogDir    string // apps' logs
	PidDir    string // apps' pid files
	Dump      string // the saved process list
	Key       string // seals secrets in the saved list
}

// maxSocketPath is the room in sockaddr_un.sun_path, less the terminating NUL.
const maxSocketPath = 107

// Resolve returns the paths for CORRAL_HOME (default ~/.corral), without creating anything.
func Resolve() (Paths, error) {
	dir := os.Getenv("CORRAL_HOME")
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil || h == "" {
			return Paths{}, errors.New("cannot find a home directory: set CORRAL_HOME")
		}
		dir = filepath.Join(h, ".corral")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Paths{}, fmt.Errorf("CORRAL_HOME %q: %w", dir, err)
	}
	p := At(abs)
	if len(p.Socket) > maxSocketPath {
		return Paths{}, fmt.Errorf("CORRAL_HOME %s is too long: its control socket path would be %d bytes and unix sockets allow %d; choose a shorter CORRAL_HOME",
			abs, len(p.Socket), maxSocketPath)
	}
	return p, nil
}

// At returns the paths for the home directory dir (absolute).
func At(dir string) Paths {
	return Paths{
		Home:      dir,
		Socket:    filepath.Join(dir, "corral.sock"),
		PidFile:   filepath.Join(dir, "corral.pid"),
		Lock:      filepath.Join(dir, "daemon.lock"),
		DaemonLog: filepath.Join(dir, "corral.log"),
		LogDir:    filepath.Join(dir, "logs"),
		PidDir:    filepath.Join(dir, "pids"),
		Dump:      filepath.Join(dir, "dump.json"),
		Key:       filepath.Join(dir, "secret.key"),
	}
}

// Ensure creates the home directory (0700) and its subdirectories. An existing home with
// looser permissions is tightened: it holds the control socket and the apps' secrets.
func (p Paths) Ensure() error {
	if err := os.MkdirAll(p.Home, 0o700); err != nil {
		return fmt.Errorf("create CORRAL_HOME: %w", err)
	}
	if err := os.Chmod(p.Home, 0o700); err != nil {
		return fmt.Errorf("restrict CORRAL_HOME to its owner: %w", err)
	}
	for _, d := range []string{p.LogDir, p.PidDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}
