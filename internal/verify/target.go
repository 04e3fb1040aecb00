package verify

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/loadgen"
)

// listenAddrs are the TCP addresses the app's workers listen on, as host:port, from what
// they told the daemon ("5000", ":::5000", "0.0.0.0:5000", "127.0.0.1:5000"; unix paths are
// left out).
func listenAddrs(procs []api.Process) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range procs {
		if p.Cluster == nil {
			continue
		}
		for _, l := range p.Cluster.Listening {
			a, ok := tcpAddr(l)
			if ok && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// tcpAddr reads one listening address as Node's cluster messages give it.
func tcpAddr(l string) (string, bool) {
	if strings.Contains(l, "/") {
		return "", false // a unix socket
	}
	i := strings.LastIndexByte(l, ':')
	host, port := "", l
	if i >= 0 {
		host, port = l[:i], l[i+1:]
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", false
	}
	host = strings.Trim(host, "[]")
	return net.JoinHostPort(host, port), true
}

// pickTarget returns the address to load: o.Target if it is allowed (loopback, or one of the
// app's own addresses), else loopback on the app's port.
func pickTarget(target string, addrs []string) (string, error) {
	if len(addrs) == 0 {
		return "", fmt.Errorf("the app's workers listen on no TCP port the daemon knows of: verify loads an HTTP app over TCP")
	}
	if target != "" {
		if err := loadgen.CheckTarget(target, addrs); err != nil {
			return "", err
		}
		return target, nil
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	switch host {
	case "", "::", "0.0.0.0", "*":
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	return addrs[0], nil
}
