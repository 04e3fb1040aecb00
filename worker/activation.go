package worker

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Socket activation (systemd's sd_listen_fds protocol): LISTEN_PID names the process the
// sockets are for, LISTEN_FDS how many there are, starting at fd 3, and LISTEN_FDNAMES their
// names, colon-separated.

const listenFDsStart = 3

// inherited is one socket passed by socket activation.
type inherited struct {
	fd     int
	name   string
	family int // AF_INET, AF_INET6, AF_UNIX
	addr   net.Addr
}

// activation holds the inherited sockets not returned by Listen yet.
type activation struct {
	mu    sync.Mutex
	socks []*inherited
}

// activationFromEnv takes the sockets of socket activation, if they are for this process. Like
// sd_listen_fds(1), it removes the variables from the environment (they describe this process
// only) and makes the sockets close-on-exec, so that no child process inherits them.
func activationFromEnv(logf func(string, ...any)) *activation {
	pidStr, nStr, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	if nStr == "" {
		return nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pid, err := strconv.Atoi(pidStr); err != nil || pid != os.Getpid() {
		return nil // for another process
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n <= 0 {
		if err != nil || n < 0 {
			logf("ignoring LISTEN_FDS=%q", nStr)
		}
		return nil
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	a := &activation{}
	for i := range n {
		fd := listenFDsStart + i
		unix.CloseOnExec(fd)
		s := &inherited{fd: fd}
		if i < len(nameList) {
			s.name = nameList[i]
		}
		if !describe(s) {
			continue // not a stream socket: not for Listen (and left alone)
		}
		a.socks = append(a.socks, s)
	}
	return a
}

// describe fills in a stream socket's family and address; false for anything else.
func describe(s *inherited) bool {
	typ, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return false
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return false
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		s.family = unix.AF_INET
		s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		s.family = unix.AF_INET6
		s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrUnix:
		s.family = unix.AF_UNIX
		s.addr = &net.UnixAddr{Name: a.Name, Net: "unix"}
	default:
		return false
	}
	return true
}

// take returns the inherited socket for Listen(network, address): the one named address, else
// the one bound to address, else (unless matchOnly) the first one of the right kind; ok is false
// when none is left.
func (a *activation) take(network, address string, matchOnly bool) (ln net.Listener, ok bool, err error) {
	var unixKind bool
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "unix":
		unixKind = true
	default:
		return nil, false, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var cands []*inherited
	for _, s := range a.socks {
		if (s.family == unix.AF_UNIX) == unixKind {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		return nil, false, nil
	}
	pick := func() *inherited {
		for _, s := range cands {
			if s.name != "" && s.name == address {
				return s
			}
		}
		for _, s := range cands {
			if boundTo(s, network, address) {
				return s
			}
		}
		if matchOnly {
			return nil
		}
		return cands[0]
	}
	s := pick()
	if s == nil {
		return nil, false, nil
	}
	a.socks = slices.DeleteFunc(a.socks, func(x *inherited) bool { return x == s })
	ln, err = listenerOf(s)
	return ln, true, err
}

// boundTo reports whether s is bound to address (port 0 and an empty or wildcard host match
// any; a wildcard socket matches any host).
func boundTo(s *inherited, network, address string) bool {
	if ua, ok := s.addr.(*net.UnixAddr); ok {
		path := address
		if path != "" && path[0] != '@' {
			path, _ = filepath.Abs(path)
		}
		return ua.Name == path
	}
	ta := s.addr.(*net.TCPAddr)
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if port, err := net.LookupPort(network, portStr); err != nil || (port != 0 && port != ta.Port) {
		return false
	}
	if host == "" || ta.IP.IsUnspecified() {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err == nil {
		return ip.Unmap() == addrOf(ta.IP)
	}
	ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.Unmap() == addrOf(ta.IP) {
			return true
		}
	}
	return false
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// listenerOf makes a net.Listener of an inherited socket, listening first if it is not yet (a
// socket unit with Accept=no passes listening sockets, other managers may not). The inherited
// fd itself is closed: the listener has its own.
func listenerOf(s *inherited) (net.Listener, error) {
	f := os.NewFile(uintptr(s.fd), "LISTEN_FD_"+strconv.Itoa(s.fd))
	defer f.Close()
	ln, err := listenFile(f)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: s.addr.Network(), Addr: s.addr, Err: err}
	}
	return ln, nil
}
