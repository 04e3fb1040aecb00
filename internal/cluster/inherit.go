package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/corral-pm/corral/internal/spec"
	"golang.org/x/sys/unix"
)

// Sockets are the listening sockets an app declares with `listen`, which the daemon owns and
// every process of the app inherits (systemd's socket activation protocol). Like a cluster's
// handles they belong to the app: opened on first use, kept while processes come and go,
// closed when the app stops.
type Sockets struct {
	specs []spec.Socket

	mu     sync.Mutex
	files  []*socketFile
	keeper SocketKeeper // keeps the sockets for the next daemon (resume.go), or nil
}

// NewSockets prepares (without opening) the sockets of specs.
func NewSockets(specs []spec.Socket) *Sockets {
	return &Sockets{specs: append([]spec.Socket(nil), specs...)}
}

// Specs are the sockets, as declared.
func (s *Sockets) Specs() []spec.Socket { return s.specs }

// open binds and listens on every socket, once. Locked.
func (s *Sockets) openLocked() error {
	if s.files != nil {
		return nil
	}
	var files []*socketFile
	for _, sp := range s.specs {
		ls, err := socketListenSpec(sp)
		if err != nil {
			closeSocketFiles(files)
			return err
		}
		sf, err := openListener(ls)
		if err != nil {
			closeSocketFiles(files)
			return fmt.Errorf("listen on %s: %w", sp, err)
		}
		files = append(files, sf)
	}
	s.files = files
	if s.keeper != nil {
		for i, sf := range files {
			s.keeper.KeepSocket(listenKeptName(i), listenMeta{Index: i, Spec: s.specs[i].String()}, sf.fd())
		}
	}
	return nil
}

// closeSocketFiles closes files, skipping the nil slots of a set only partly taken over
// (Restore refusing a kept set midway).
func closeSocketFiles(files []*socketFile) {
	for _, f := range files {
		if f != nil {
			f.close()
		}
	}
}

func socketListenSpec(sp spec.Socket) (listenSpec, error) {
	ls := listenSpec{network: sp.Network, blocking: true}
	if sp.Network == "unix" {
		ls.address = sp.Address
		return ls, nil
	}
	host, port, err := net.SplitHostPort(sp.Address)
	if err != nil {
		return ls, err
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ls.address = host
	ls.port, err = strconv.Atoi(port)
	return ls, err
}

// Files opens the sockets if needed and returns copies for one child process, in declaration
// order (they become fds 3, 4, ...), with their names. The caller closes the copies once the
// child has started.
func (s *Sockets) Files() ([]*os.File, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openLocked(); err != nil {
		return nil, nil, err
	}
	files := make([]*os.File, 0, len(s.files))
	names := make([]string, 0, len(s.files))
	for i, sf := range s.files {
		fd, err := unix.FcntlInt(uintptr(sf.fd()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("dup listening socket: %w", err)
		}
		files = append(files, os.NewFile(uintptr(fd), s.specs[i].String()))
		names = append(names, s.specs[i].Name)
	}
	return files, names, nil
}

// Close closes the sockets (the ports close). A later Files opens them again.
func (s *Sockets) Close() {
	s.mu.Lock()
	files := s.files
	s.files = nil
	k := s.keeper
	s.mu.Unlock()
	closeSocketFiles(files)
	if k != nil {
		for i := range files {
			k.DropSocket(listenKeptName(i))
		}
	}
}

// listenMeta describes a kept inherited socket.
type listenMeta struct {
	Index int    `json:"index"`
	Spec  string `json:"spec"`
}

func listenKeptName(i int) string { return "listen:" + strconv.Itoa(i) }

// KeepWith makes the sockets kept by k while they are open (resume.go). Set before use.
func (s *Sockets) KeepWith(k SocketKeeper) {
	s.mu.Lock()
	s.keeper = k
	s.mu.Unlock()
}

// Restore takes over the sockets an earlier daemon kept, by their keeper names and metas
// (as KeepWith gave them). They must be exactly the declared ones, in order; otherwise
// nothing is taken (the files are closed) and the sockets open anew on use.
func (s *Sockets) Restore(kept map[string]json.RawMessage, files map[string]*os.File) error {
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if len(kept) != len(s.specs) {
		closeAll()
		return fmt.Errorf("%d kept sockets for %d declared", len(kept), len(s.specs))
	}
	out := make([]*socketFile, len(s.specs))
	for name, raw := range kept {
		var m listenMeta
		if err := json.Unmarshal(raw, &m); err != nil || m.Index < 0 || m.Index >= len(s.specs) ||
			m.Spec != s.specs[m.Index].String() || name != listenKeptName(m.Index) || files[name] == nil {
			closeSocketFiles(out)
			closeAll()
			return fmt.Errorf("kept socket %s (%s) is not one declared", name, raw)
		}
		f := files[name]
		delete(files, name)
		path := ""
		if sp := s.specs[m.Index]; sp.Network == "unix" {
			path = sp.Address
		}
		fd, err := keptFD(f, false) // blocking, as programs expect them
		if err != nil {
			closeSocketFiles(out)
			closeAll()
			return fmt.Errorf("kept socket %s: %w", m.Spec, err)
		}
		out[m.Index] = &socketFile{raw: fd, path: path} // held, as openListener opens it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files != nil {
		closeSocketFiles(out)
		return fmt.Errorf("sockets are open already")
	}
	s.files = out
	return nil
}

// Probe checks that the app's first socket answers: a connection to it is established. The
// socket is shared by the app's processes, so this cannot single out the process being
// started; the supervisor pairs it with that process staying up for a while. A process that
// can say when it is ready should (sd_notify READY=1, with wait_ready).
func (s *Sockets) Probe(ctx context.Context) error {
	s.mu.Lock()
	if len(s.files) == 0 {
		s.mu.Unlock()
		return fmt.Errorf("no socket open")
	}
	sf, sp := s.files[0], s.specs[0]
	s.mu.Unlock()

	network, addr := "unix", sp.Address
	if sp.Network == "tcp" {
		name, err := socknameOf(sf)
		if err != nil || name == nil {
			return fmt.Errorf("probe %s: %v", sp, err)
		}
		host := name.Address
		switch host {
		case "::", "0.0.0.0":
			// A wildcard socket is dual-stack (Node's default, and ours): IPv4 loopback
			// reaches it, and is there on hosts without IPv6.
			host = "127.0.0.1"
		}
		network, addr = "tcp", net.JoinHostPort(host, strconv.Itoa(name.Port))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("probe %s: %w", sp, err)
	}
	return conn.Close()
}
