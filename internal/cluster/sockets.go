package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/corral-pm/corral/internal/safefs"
	"golang.org/x/sys/unix"
)

// This file is the cluster's seam to the operating system: creating the sockets an app listens
// on and accepting connections as raw file descriptors. Raw fds, not net.Conn, because every
// accepted connection only passes through the daemon on its way to a worker: wrapping it in a
// net.Conn would register it with Go's poller for nothing.

// listenSpec says what socket a queryServer asks for
// (docs/node-cluster-protocol.md §5.3 and §6.1).
type listenSpec struct {
	network  string // "tcp", "unix", "udp"
	address  string // host ("" = wildcard) or unix path
	port     int
	ipv6Only bool
	ip6      bool // addressType 6 / udp6
	ip4      bool // addressType 4 with an explicit IPv4 address, udp4
	backlog  int
	// readableAll/writableAll: chmod of a unix socket.
	readableAll, writableAll bool
	// reuseAddr for UDP (flags & 4).
	reuseAddr bool
	// blocking: the socket is for other processes (socket activation), which expect a
	// blocking socket, as systemd passes them.
	blocking bool
	// reusePort: SO_REUSEPORT, one socket of a group bound to the same address (the
	// reuseport policy, reuseport.go).
	reusePort bool
}

// socketFile is a socket fd owned by the daemon. Held (f nil), as every socket is opened, it
// is a raw fd the daemon only keeps and hands out, never waits on: a shared policy's socket,
// which the workers accept on, a reuseport group's, a `listen` socket of the app's. Left in
// Go's poller, such a socket would wake the daemon (an epoll event) for every connection a
// worker accepts: about 10 µs of the daemon's CPU per connection, measured on a 2-core
// machine, taken from the workers. Polled (openPolledListener), it is wrapped in an os.File so
// that waiting for connections goes through Go's poller: a round-robin key's, which the
// daemon accepts on.
type socketFile struct {
	f    *os.File
	rc   syscall.RawConn
	raw  int    // the fd of a held socket (f nil)
	path string // unix socket path to unlink on close
}

func (s *socketFile) fd() int {
	if s.f == nil {
		return s.raw
	}
	return int(s.f.Fd())
}

// close releases the socket (and the unix path it was bound to).
func (s *socketFile) close() error {
	var err error
	if s.f == nil {
		err = unix.Close(s.raw)
	} else {
		err = s.f.Close()
	}
	if s.path != "" {
		_ = os.Remove(s.path)
	}
	return err
}

// dupCloexec duplicates the fd behind rc, close-on-exec; -1 on error. Through the RawConn, not
// f.Fd(), which would make the socket blocking for every holder.
func dupCloexec(rc syscall.RawConn) (int, error) {
	fd := -1
	var dupErr error
	err := rc.Control(func(raw uintptr) { fd, dupErr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) })
	if err = errors.Join(err, dupErr); err != nil {
		return -1, err
	}
	return fd, nil
}

// accept waits for one connection and returns its fd, close-on-exec and non-blocking, as
// Node's primary hands them over: the worker's event loop must never block on it. It returns
// os.ErrClosed once the socket is closed.
func (s *socketFile) accept() (int, error) {
	var nfd int
	var aerr error
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			nfd, aerr = rawAccept(int(fd))
			switch {
			case aerr == unix.EINTR:
				continue
			case aerr == unix.EAGAIN:
				return false // wait for the poller
			case aerr == unix.ECONNABORTED:
				continue // the client gave up before we accepted: take the next one
			}
			return true
		}
	})
	if err != nil {
		return -1, err
	}
	return nfd, aerr
}

// rawAccept is accept4 on a non-blocking socket without the runtime's syscall bookkeeping:
// it never blocks, and a regular syscall lets the runtime's monitor hand the goroutine's P to
// another thread whenever the call is slow (as every syscall is in some VMs), which costs
// more than the accept itself at thousands of connections a second.
func rawAccept(fd int) (int, error) {
	nfd, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}

// closeConn closes the daemon's copy of a connection a worker has taken, with a raw syscall
// for the reason given at rawAccept: the worker holds the connection, so this only drops a
// reference and never blocks.
func closeConn(fd int) {
	_, _, _ = unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func newSocketFile(fd int, name, path string) (*socketFile, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &socketFile{f: f, rc: rc, path: path}, nil
}

// keptFD takes over f, a socket the daemon's keeper kept for it (docs/daemon-survival.md): it
// returns the daemon's own copy as a raw fd, close-on-exec and outside the poller (f is closed:
// its finalizer would close the fd it wraps), duplicated through SyscallConn rather than f.Fd(),
// which would make the socket blocking for every holder. nonblock makes sure it is
// non-blocking, as the daemon's own listeners are created.
func keptFD(f *os.File, nonblock bool) (int, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, err := dupCloexec(rc)
	if err != nil {
		return -1, err
	}
	if nonblock {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// openListener creates a listening socket (TCP or unix), held.
func openListener(ls listenSpec) (*socketFile, error) {
	sf, err := openBound(ls)
	if err != nil {
		return nil, err
	}
	backlog := ls.backlog
	if backlog <= 0 {
		backlog = 511 // Node's default
	}
	if err := unix.Listen(sf.fd(), backlog); err != nil {
		sf.close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return sf, nil
}

// openPolledListener creates what a round-robin key needs: a listening socket that the daemon
// accepts on, in Go's poller.
func openPolledListener(ls listenSpec) (*socketFile, error) {
	sf, err := openListener(ls)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s:%s:%d", ls.network, ls.address, ls.port)
	if ls.network == "unix" {
		name = "unix:" + ls.address
	}
	return newSocketFile(sf.raw, name, sf.path)
}

// openReuseGroup opens the first socket of a reuseport group on ls. SO_REUSEPORT lets any
// socket of the same user join a group, so another program (or another app of this corral)
// already listening with it on the port would silently share the connections instead of the
// bind failing. So the port is first bound without SO_REUSEPORT, which fails with EADDRINUSE
// while anything listens there, as a round-robin key's bind would; then that probe closes and
// the group's socket takes the port.
func openReuseGroup(ls listenSpec) (*socketFile, error) {
	if ls.port != 0 {
		probe := ls
		probe.reusePort = false
		sf, err := openBound(probe)
		if err != nil {
			return nil, err
		}
		sf.close()
	}
	return openListener(ls)
}

// openBound creates a bound socket that is not listening yet, held: what the shared policy
// hands to every worker (each worker calls listen itself, docs/node-cluster-protocol.md §6.3),
// and the first step of openListener.
func openBound(ls listenSpec) (*socketFile, error) {
	switch ls.network {
	case "unix":
		return openUnix(ls)
	case "tcp", "udp":
		return openInet(ls)
	}
	return nil, fmt.Errorf("network %q: %w", ls.network, unix.EINVAL)
}

func openInet(ls listenSpec) (*socketFile, error) {
	typ := unix.SOCK_STREAM
	if ls.network == "udp" {
		typ = unix.SOCK_DGRAM
	}
	var addr netip.Addr
	if ls.address != "" {
		a, err := netip.ParseAddr(ls.address)
		if err != nil {
			return nil, fmt.Errorf("address %q is not an IP address: %w", ls.address, unix.EINVAL)
		}
		addr = a.Unmap()
	}
	family := unix.AF_INET6
	switch {
	case addr.IsValid() && addr.Is4():
		family = unix.AF_INET
	case !addr.IsValid() && ls.ip4:
		family = unix.AF_INET
	}
	sf, err := openInetFamily(ls, typ, family, addr)
	// No address: [::] dual-stack, or 0.0.0.0 where the host has no IPv6 (Node's fallback).
	if err != nil && !addr.IsValid() && family == unix.AF_INET6 && !ls.ip6 &&
		(errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL)) {
		return openInetFamily(ls, typ, unix.AF_INET, addr)
	}
	return sf, err
}

// socketFlags are the socket(2) type flags for ls.
func socketFlags(ls listenSpec) int {
	if ls.blocking {
		return unix.SOCK_CLOEXEC
	}
	return unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
}

func openInetFamily(ls listenSpec, typ, family int, addr netip.Addr) (*socketFile, error) {
	fd, err := unix.Socket(family, typ|socketFlags(ls), 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (*socketFile, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if typ == unix.SOCK_STREAM || ls.reuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("SO_REUSEADDR", err)
		}
	}
	if ls.reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET6 {
		v6only := 0
		if ls.ipv6Only {
			v6only = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
		s6 := &unix.SockaddrInet6{Port: ls.port}
		if addr.IsValid() {
			s6.Addr = addr.As16()
		}
		sa = s6
	} else {
		s4 := &unix.SockaddrInet4{Port: ls.port}
		if addr.IsValid() {
			s4.Addr = addr.As4()
		}
		sa = s4
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	return &socketFile{raw: fd}, nil
}

func openUnix(ls listenSpec) (*socketFile, error) {
	if len(ls.address) > 107 {
		return nil, fmt.Errorf("unix socket path %q is longer than 107 bytes: %w", ls.address, unix.EINVAL)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|socketFlags(ls), 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: ls.address})
	if errors.Is(err, unix.EADDRINUSE) && staleUnixSocket(ls.address) {
		// Left behind by a process that died: nobody answers on it, so it is safe to replace.
		_ = os.Remove(ls.address)
		err = unix.Bind(fd, &unix.SockaddrUnix{Name: ls.address})
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	mode := os.FileMode(0)
	if ls.readableAll {
		mode |= 0o444
	}
	if ls.writableAll {
		mode |= 0o222
	}
	if mode != 0 {
		// Not through a link: one planted between bind and chmod would open up its target.
		if err := safefs.Chmod(ls.address, 0o600|mode); err != nil {
			unix.Close(fd)
			_ = os.Remove(ls.address)
			return nil, fmt.Errorf("chmod: %w", err)
		}
	}
	return &socketFile{raw: fd, path: ls.address}, nil
}

// staleUnixSocket reports whether path is a unix socket nobody listens on.
func staleUnixSocket(path string) bool {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return false
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return errors.Is(unix.Connect(fd, &unix.SockaddrUnix{Name: path}), unix.ECONNREFUSED)
}

// sockname is what a round-robin reply tells the worker its server is bound to
// (server.address() in the worker), in Node's form.
type sockname struct {
	Address string `json:"address"`
	Family  string `json:"family"`
	Port    int    `json:"port"`
}

func socknameOf(sf *socketFile) (*sockname, error) { return socknameOfFD(sf.fd()) }

func socknameOfFD(fd int) (*sockname, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &sockname{Address: netip.AddrFrom4(a.Addr).String(), Family: "IPv4", Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &sockname{Address: netip.AddrFrom16(a.Addr).String(), Family: "IPv6", Port: a.Port}, nil
	}
	return nil, nil // unix sockets: Node sends no sockname
}

// errnoOf turns a socket error into Node's negative errno (libuv codes are -errno on Linux).
func errnoOf(err error) int {
	var en unix.Errno
	if errors.As(err, &en) {
		return -int(en)
	}
	return -int(unix.EINVAL)
}

// listenSpecOf reads back how a TCP listening socket was bound: its address, port, family and
// IPV6_V6ONLY (the reuseport policy opens more sockets like one an earlier daemon made).
func listenSpecOf(fd int) (listenSpec, error) {
	ls := listenSpec{network: "tcp"}
	name, err := socknameOfFD(fd)
	if err != nil {
		return ls, err
	}
	if name == nil {
		return ls, fmt.Errorf("fd %d is not an IP socket", fd)
	}
	ls.address, ls.port = name.Address, name.Port
	if name.Family == "IPv6" {
		ls.ip6 = true
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil {
			return ls, fmt.Errorf("getsockopt IPV6_V6ONLY: %w", err)
		}
		ls.ipv6Only = v6only == 1
	}
	return ls, nil
}
