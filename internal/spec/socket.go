package spec

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Socket is a listening socket the daemon opens for an app (its `listen` attribute) and hands
// to every process of the app as an inherited fd, the way systemd's socket activation does
// (fds 3.., LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). The socket belongs to the app: it stays
// open while processes restart, so any server that can take an inherited socket (Python, Go
// with go-systemd, Rust with listenfd...) gets cluster mode and reloads without refusing a
// single connection.
type Socket struct {
	Name    string `json:"name"`    // its LISTEN_FDNAMES entry
	Network string `json:"network"` // "tcp" or "unix"
	Address string `json:"address"` // "host:port" (empty host: every address) or a socket path
}

// DefaultSocketName names sockets that have no name of their own.
const DefaultSocketName = "listen"

// ParseSocket reads one `listen` entry: "5000", ":5000", "127.0.0.1:5000", "[::1]:5000",
// "unix:/run/app.sock", each optionally prefixed by "name=" (e.g. "http=:8080").
func ParseSocket(s string) (Socket, error) {
	sock := Socket{Name: DefaultSocketName, Network: "tcp"}
	t := strings.TrimSpace(s)
	if name, rest, ok := strings.Cut(t, "="); ok {
		if name == "" || strings.ContainsAny(name, ": ") {
			return Socket{}, fmt.Errorf("%q: a socket name is a word before '=' (e.g. \"http=:8080\")", s)
		}
		sock.Name, t = name, rest
	}
	if path, ok := strings.CutPrefix(t, "unix:"); ok {
		if path == "" {
			return Socket{}, fmt.Errorf("%q: unix: needs a path", s)
		}
		sock.Network, sock.Address = "unix", path
		return sock, nil
	}
	if _, err := strconv.Atoi(t); err == nil {
		t = ":" + t
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil {
		return Socket{}, fmt.Errorf("%q is not an address: use a port (5000), host:port (127.0.0.1:5000) or unix:/path", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return Socket{}, fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return Socket{}, fmt.Errorf("%q: host %q is not an IP address", s, host)
	}
	sock.Address = net.JoinHostPort(host, port)
	return sock, nil
}

// String renders the socket as ParseSocket reads it.
func (s Socket) String() string {
	addr := s.Address
	if s.Network == "unix" {
		addr = "unix:" + addr
	}
	if s.Name != "" && s.Name != DefaultSocketName {
		return s.Name + "=" + addr
	}
	return addr
}
