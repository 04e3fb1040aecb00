package loadgen

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// CheckTarget refuses to aim a load anywhere but this machine's loopback or one of the
// addresses the app itself listens on (allowed, host:port as the daemon reports them): a load
// generator in a process manager must not be a way to flood someone else's server.
func CheckTarget(addr string, allowed []string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("target %q is not host:port: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("target %q has no port", addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	for _, a := range allowed {
		ah, ap, err := net.SplitHostPort(a)
		if err != nil || ap != port {
			continue
		}
		if ah == host {
			return nil
		}
		// A wildcard listener ("0.0.0.0", "::") serves every local address, but which ones
		// are local is not worth guessing here: only loopback is taken for it.
	}
	return fmt.Errorf("target %s is neither a loopback address nor one the app listens on (%s): verify only loads this machine's own app; use 127.0.0.1:%s",
		addr, strings.Join(allowed, ", "), port)
}
