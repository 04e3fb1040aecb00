package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Receiver is the daemon's end of the protocol: a notification socket for one process. The
// process finds it in NOTIFY_SOCKET and sends datagrams of newline-separated assignments
// ("READY=1\nSTATUS=serving"), as it would to systemd.
type Receiver struct {
	conn *net.UnixConn
	path string
	done chan struct{}
}

// Listen creates the socket at path and calls fn, on its own goroutine, with the assignments of
// every datagram received, until Close.
func Listen(path string, fn func(state map[string]string)) (*Receiver, error) {
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	r := &Receiver{conn: conn, path: path, done: make(chan struct{})}
	go r.loop(fn)
	return r, nil
}

func (r *Receiver) loop(fn func(map[string]string)) {
	defer close(r.done)
	buf := make([]byte, 4096)
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if state := Parse(string(buf[:n])); len(state) > 0 {
			fn(state)
		}
	}
}

// Parse reads a notification: one KEY=value per line.
func Parse(msg string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(msg, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

// Close stops receiving and removes the socket.
func (r *Receiver) Close() error {
	err := r.conn.Close()
	<-r.done
	_ = os.Remove(r.path)
	return err
}
