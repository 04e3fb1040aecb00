// Package sdnotify implements systemd's notification protocol (sd_notify): a datagram such as
// "READY=1" to the unix socket named by NOTIFY_SOCKET. corral's daemon sends with it under its
// systemd unit (Type=notify) to say when it is ready, and receives with it (Receiver) what the
// processes it runs send to the socket it gives them.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Notify sends state to $NOTIFY_SOCKET. Without NOTIFY_SOCKET it does nothing and returns
// false; an error means the socket was set but could not be written.
func Notify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}
