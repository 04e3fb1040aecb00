package keeper

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProtocolVersion is the version of the channel between a keeper and its daemon (Info.Version).
const ProtocolVersion = 1

// Bounds of what the keeper accepts from a daemon (see the package documentation). What
// exceeds them is logged and ignored, and the fds of a rejected message are closed.
const (
	// partSize is the most body one datagram carries: a longer one is split into parts.
	partSize = 32 << 10
	// maxHeader bounds the JSON header of one datagram.
	maxHeader = 4 << 10
	// MaxNameLen bounds an entry's name.
	MaxNameLen = 1024
	// MaxFilesPerEntry bounds the fds of one entry.
	MaxFilesPerEntry = 16
	// MaxEntries bounds how many entries the keeper holds.
	MaxEntries = 100_000
	// MaxMetaBytes bounds the meta of every entry together.
	MaxMetaBytes = 64 << 20
	// MaxExits bounds the exits the keeper remembers: beyond, the oldest is dropped.
	MaxExits = 100_000
	// oobFiles is room for more fds than any message may carry, so that one carrying too many
	// is seen (and its fds closed) rather than truncated by the kernel.
	oobFiles = 4 * MaxFilesPerEntry
)

// Operations of the wire format. The daemon sends put, meta, delete, load, seen, ready,
// shutdown and upgrade; the keeper sends entry, loaded and exit. more carries the next part of
// a body.
const (
	opPut      = "put"
	opMeta     = "meta"
	opDelete   = "delete"
	opLoad     = "load"
	opSeen     = "seen"
	opReady    = "ready"
	opShutdown = "shutdown"
	opUpgrade  = "upgrade"
	opEntry    = "entry"
	opLoaded   = "loaded"
	opExit     = "exit"
	opMore     = "more"
)

// header starts every datagram. Size is the whole body of the message; a body longer than
// partSize continues in Parts more datagrams of op "more", sent right after (one sender at a
// time on a channel, so nothing comes between).
type header struct {
	Op    string `json:"op"`
	Name  string `json:"name,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Size  int    `json:"size,omitempty"`
	Parts int    `json:"parts,omitempty"`
	FDs   int    `json:"fds,omitempty"`
}

// message is one reassembled message: its header, whole body and fds (close-on-exec).
type message struct {
	header
	body  []byte
	files []int
}

// exitWire is an Exit on the wire.
type exitWire struct {
	PID    int   `json:"pid"`
	Status int   `json:"status"`
	Time   int64 `json:"time"` // Unix nanoseconds
}

func (e Exit) wire() exitWire {
	return exitWire{PID: e.PID, Status: int(e.Status), Time: e.Time.UnixNano()}
}

func (w exitWire) exit() Exit {
	return Exit{PID: w.PID, Status: syscall.WaitStatus(w.Status), Time: time.Unix(0, w.Time)}
}

// loadedBody is the body of the keeper's answer to load, after the entries.
type loadedBody struct {
	Info  Info       `json:"info"`
	Exits []exitWire `json:"exits"`
}

// datagram lays out one datagram: the header's length (4 bytes, big endian), the header
// (JSON), then a part of the body.
func datagram(h header, part []byte) ([]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4, 4+len(hb)+len(part))
	binary.BigEndian.PutUint32(b, uint32(len(hb)))
	b = append(b, hb...)
	return append(b, part...), nil
}

// parseDatagram splits a datagram into its header and body part.
func parseDatagram(b []byte) (header, []byte, error) {
	var h header
	if len(b) < 4 {
		return h, nil, fmt.Errorf("a datagram of %d bytes", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if n > maxHeader || int(n) > len(b)-4 {
		return h, nil, fmt.Errorf("a header of %d bytes in a datagram of %d", n, len(b))
	}
	if err := json.Unmarshal(b[4:4+n], &h); err != nil {
		return h, nil, fmt.Errorf("header: %w", err)
	}
	return h, b[4+n:], nil
}

// send writes one message: its first datagram with the fds, then the rest of the body in parts.
// The caller makes sure no other message is sent on conn meanwhile.
func send(conn *net.UnixConn, h header, body []byte, fds []int) error {
	h.Size = len(body)
	h.FDs = len(fds)
	h.Parts = 0
	if len(body) > partSize {
		h.Parts = (len(body) - 1) / partSize // the datagrams after the first
	}
	first := body
	if len(first) > partSize {
		first = first[:partSize]
	}
	b, err := datagram(h, first)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(b, oob, nil); err != nil {
		return err
	}
	for rest := body[len(first):]; len(rest) > 0; {
		part := rest
		if len(part) > partSize {
			part = part[:partSize]
		}
		rest = rest[len(part):]
		b, err := datagram(header{Op: opMore}, part)
		if err != nil {
			return err
		}
		if _, _, err := conn.WriteMsgUnix(b, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// errEOF: the other end closed the channel (and everything it sent has been read).
var errEOF = errors.New("channel closed")

// receiver reads whole messages from a channel.
type receiver struct {
	conn    *net.UnixConn
	buf     []byte
	oob     []byte
	maxBody int
	logf    func(format string, args ...any)
}

func newReceiver(conn *net.UnixConn, maxBody int, logf func(string, ...any)) *receiver {
	return &receiver{
		conn:    conn,
		buf:     make([]byte, 4+maxHeader+partSize+1),
		oob:     make([]byte, unix.CmsgSpace(oobFiles*4)),
		maxBody: maxBody,
		logf:    logf,
	}
}

// read returns the next whole message. A message that breaks the format or a bound is logged,
// its fds closed, and skipped; errEOF (or a read error) ends the channel.
func (r *receiver) read() (message, error) {
	for {
		h, part, fds, err := r.datagram()
		if err != nil {
			return message{}, err
		}
		m, ok := r.assemble(h, part, fds)
		if ok {
			return m, nil
		}
	}
}

// assemble reads the parts that follow a first datagram. ok is false for a message to skip
// (its fds closed).
func (r *receiver) assemble(h header, part []byte, fds []int) (message, bool) {
	reject := func(format string, args ...any) (message, bool) {
		r.logf("ignoring a %q message: "+format, append([]any{h.Op}, args...)...)
		closeAll(fds)
		return message{}, false
	}
	if h.Op == opMore {
		return reject("a part without its first datagram")
	}
	if h.FDs != len(fds) {
		return reject("it announced %d fds and carried %d", h.FDs, len(fds))
	}
	if h.Size < len(part) || h.Size > r.maxBody || h.Parts != (max(h.Size, 1)-1)/partSize {
		// Still read its parts, so that they are not taken for messages of their own.
		for i := 0; i < h.Parts && i < r.maxBody/partSize+1; i++ {
			_, _, more, err := r.datagram()
			closeAll(more)
			if err != nil {
				break
			}
		}
		return reject("a body of %d bytes in %d parts (at most %d bytes)", h.Size, h.Parts, r.maxBody)
	}
	body := make([]byte, 0, h.Size)
	body = append(body, part...)
	for i := 0; i < h.Parts; i++ {
		mh, more, mfds, err := r.datagram()
		if err != nil {
			return reject("the channel ended after %d of its %d parts", i, h.Parts)
		}
		closeAll(mfds)
		if mh.Op != opMore {
			return reject("part %d is a %q message", i+1, mh.Op)
		}
		body = append(body, more...)
	}
	if len(body) != h.Size {
		return reject("a body of %d bytes where %d were announced", len(body), h.Size)
	}
	return message{header: h, body: body, files: fds}, true
}

// datagram reads one datagram and the fds it carried.
func (r *receiver) datagram() (header, []byte, []int, error) {
	for {
		n, oobn, flags, _, err := r.conn.ReadMsgUnix(r.buf, r.oob)
		if errors.Is(err, io.EOF) {
			return header{}, nil, nil, errEOF
		}
		if err != nil {
			return header{}, nil, nil, err
		}
		fds, perr := parseRights(r.oob[:oobn])
		if perr != nil {
			r.logf("reading the fds of a datagram: %v", perr)
		}
		if n == 0 && oobn == 0 {
			return header{}, nil, nil, errEOF // SOCK_SEQPACKET: no message is empty
		}
		if flags&unix.MSG_CTRUNC != 0 {
			r.logf("a datagram carried more fds than the %d it may: they were dropped", oobFiles)
		}
		if flags&unix.MSG_TRUNC != 0 {
			r.logf("ignoring a datagram longer than %d bytes", len(r.buf)-1)
			closeAll(fds)
			continue
		}
		h, part, err := parseDatagram(r.buf[:n])
		if err != nil {
			r.logf("ignoring a datagram: %v", err)
			closeAll(fds)
			continue
		}
		return h, part, fds, nil
	}
}

// parseRights returns the fds of SCM_RIGHTS control messages.
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// socketpair returns the two ends of a new channel, close-on-exec: the keeper's, as a
// connection, and the daemon's, as a file to pass to it.
func socketpair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "keeper channel")
	conn, err := fileConn(mine)
	mine.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return conn, os.NewFile(uintptr(fds[1]), "daemon channel"), nil
}

// fileConn makes a connection of a channel's fd (a close-on-exec duplicate: f stays the
// caller's to close).
func fileConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("keeper channel: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("keeper channel: %s is a %T, not a unix socket", f.Name(), c)
	}
	return uc, nil
}
