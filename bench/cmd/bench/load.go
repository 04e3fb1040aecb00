package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/procstat"
)

// The HTTP load generator: a few goroutines, each one client in a closed loop (send a request,
// read the answer, send the next). It speaks just enough HTTP/1.1 for a small app (status line,
// Content-Length or chunked body, `Connection: close`) over raw TCP with a request built once,
// so that it costs the machine little: it shares the CPUs with the servers it measures.

// Error kinds, as counted.
const (
	errReset   = "reset"   // ECONNRESET, or EPIPE when writing to a connection the peer reset
	errRefused = "refused" // ECONNREFUSED on connect
	errEOF     = "EOF"     // the connection closed before a whole response came
	errTimeout = "timeout" // no whole response within the request timeout
	errStatus  = "status"  // a response other than 200
	errOther   = "other"
)

var errKinds = []string{errReset, errRefused, errEOF, errTimeout, errStatus, errOther}

// failPause is how long a client waits after a failed request before its next one, so that a
// port that refuses at once cannot inflate the count by a client spinning on it.
const failPause = 10 * time.Millisecond

// LoadConfig describes a load.
type LoadConfig struct {
	Addr      string        // host:port
	Conns     int           // concurrent clients, each with one connection at a time
	KeepAlive bool          // reuse connections; else one new connection per request (`Connection: close`)
	Timeout   time.Duration // a request (connect included) that takes longer fails as a timeout
}

// LoadResult is what a load saw between its start and its end. Only requests that completed
// before the end count; a request cut by the end counts neither as served nor as failed.
type LoadResult struct {
	Requests int64 // 200 responses
	Conns    int64 // connections opened
	// Connect counts the failures while connecting (among Errors): nothing accepted the
	// connection, as when nothing listens on the port any more.
	Connect int64
	// Stale counts the failures on a reused keep-alive connection before any byte of the
	// response came (the request could not be written, or the connection closed or was
	// reset while waiting): the race HTTP clients retry idempotent requests for.
	Stale   int64
	Errors  map[string]int64 // failed requests by kind
	Samples map[string]string
	Elapsed time.Duration
}

// Failed is the number of failed requests.
func (r LoadResult) Failed() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// RPS is the served requests per second.
func (r LoadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// ErrorSummary is "reset 22, EOF 1" (kinds in a fixed order), or "none".
func (r LoadResult) ErrorSummary() string {
	var parts []string
	for _, k := range errKinds {
		if n := r.Errors[k]; n > 0 {
			s := fmt.Sprintf("%s %d", k, n)
			if k == errOther || k == errStatus {
				s += fmt.Sprintf(" (e.g. %s)", r.Samples[k])
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	s := strings.Join(parts, ", ")
	if r.Stale > 0 {
		s += fmt.Sprintf("; %d of them on a reused connection before any byte of the response", r.Stale)
	}
	return s
}

// add merges o into r (Elapsed adds up too).
func (r *LoadResult) add(o LoadResult) {
	r.Requests += o.Requests
	r.Conns += o.Conns
	r.Connect += o.Connect
	r.Stale += o.Stale
	r.Elapsed += o.Elapsed
	for k, v := range o.Errors {
		if r.Errors == nil {
			r.Errors = map[string]int64{}
		}
		r.Errors[k] += v
	}
	for k, v := range o.Samples {
		if r.Samples == nil {
			r.Samples = map[string]string{}
		}
		if _, ok := r.Samples[k]; !ok {
			r.Samples[k] = v
		}
	}
}

// Load is a running load.
type Load struct {
	cfg     LoadConfig
	ctx     context.Context
	req     []byte
	start   time.Time
	end     atomic.Int64 // unix ns of the end; 0 while open-ended
	wg      sync.WaitGroup
	clients []*client
}

type client struct {
	requests, conns, connect, stale int64
	errors                          map[string]int64
	samples                         map[string]string
}

// StartLoad starts cfg.Conns clients. The load runs until Stop, or until ctx ends.
func StartLoad(ctx context.Context, cfg LoadConfig) *Load {
	l := &Load{cfg: cfg, ctx: ctx, req: buildRequest(cfg.Addr, cfg.KeepAlive), start: time.Now()}
	for i := 0; i < cfg.Conns; i++ {
		c := &client{errors: map[string]int64{}, samples: map[string]string{}}
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.run(c)
		}()
	}
	return l
}

// RunLoad runs a load for d (less if ctx ends first) and returns what it saw.
func RunLoad(ctx context.Context, cfg LoadConfig, d time.Duration) LoadResult {
	l := StartLoad(ctx, cfg)
	l.end.Store(l.start.Add(d).UnixNano())
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return l.Stop()
}

// Stop ends the load now (or keeps the end already set, if earlier), waits for the clients
// (at most one request timeout) and returns what they saw.
func (l *Load) Stop() LoadResult {
	now := time.Now().UnixNano()
	if e := l.end.Load(); e == 0 || e > now {
		l.end.Store(now)
	}
	l.wg.Wait()
	end := time.Unix(0, l.end.Load())
	r := LoadResult{Errors: map[string]int64{}, Samples: map[string]string{}, Elapsed: end.Sub(l.start)}
	for _, c := range l.clients {
		r.add(LoadResult{Requests: c.requests, Conns: c.conns, Connect: c.connect, Stale: c.stale, Errors: c.errors, Samples: c.samples})
	}
	return r
}

// endTime is the load's end, or the zero time while it has none.
func (l *Load) endTime() time.Time {
	if e := l.end.Load(); e != 0 {
		return time.Unix(0, e)
	}
	return time.Time{}
}

func buildRequest(addr string, keepAlive bool) []byte {
	conn := "close"
	if keepAlive {
		conn = "keep-alive"
	}
	return []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: " + conn + "\r\n\r\n")
}

// run is one client's loop.
func (l *Load) run(c *client) {
	var conn net.Conn
	served := 0 // requests served on conn
	br := bufio.NewReaderSize(nil, 4096)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for l.ctx.Err() == nil {
		began := time.Now()
		end := l.endTime()
		if !end.IsZero() && !began.Before(end) {
			return
		}
		deadline := began.Add(l.cfg.Timeout)
		if !end.IsZero() && end.Before(deadline) {
			deadline = end
		}
		if conn == nil {
			d := net.Dialer{Deadline: deadline}
			nc, err := d.DialContext(l.ctx, "tcp", l.cfg.Addr)
			if err != nil {
				if l.fail(c, err, began) {
					c.connect++
				}
				continue
			}
			conn = nc
			served = 0
			c.conns++
			br.Reset(conn)
		}
		// The dialer's deadline covers the connect only.
		err := conn.SetDeadline(deadline)
		if err == nil {
			if _, err = conn.Write(l.req); err != nil {
				err = noResponse{err}
			}
		}
		closeAfter := false
		if err == nil {
			closeAfter, err = readResponse(br)
		}
		if err != nil {
			conn.Close()
			conn = nil
			var nr noResponse
			if l.fail(c, err, began) && served > 0 && errors.As(err, &nr) {
				c.stale++
			}
			continue
		}
		served++
		if end := l.endTime(); !end.IsZero() && time.Now().After(end) {
			return // completed after the end: not counted
		}
		c.requests++
		if closeAfter || !l.cfg.KeepAlive {
			conn.Close()
			conn = nil
		}
	}
}

// fail counts a failed request that began at began, unless the load's end cut it short, and
// reports whether it counted it.
func (l *Load) fail(c *client, err error, began time.Time) bool {
	now := time.Now()
	end := l.endTime()
	if l.ctx.Err() != nil {
		return false
	}
	k := errKind(err)
	if !end.IsZero() && !now.Before(end) {
		// At or after the end: a genuine timeout (in flight for the whole timeout) counts;
		// anything else happened outside the measured window or was cut by its end.
		if k != errTimeout || now.Sub(began) < l.cfg.Timeout {
			return false
		}
	}
	c.errors[k]++
	if _, ok := c.samples[k]; !ok {
		c.samples[k] = err.Error()
	}
	select {
	case <-l.ctx.Done():
	case <-time.After(failPause):
	}
	return true
}

// noResponse wraps an error that came before any byte of the response.
type noResponse struct{ err error }

func (e noResponse) Error() string { return e.err.Error() }
func (e noResponse) Unwrap() error { return e.err }

type statusError struct{ line string }

func (e statusError) Error() string { return "response " + e.line }

// errKind sorts an error into one of errKinds.
func errKind(err error) string {
	var se statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return errStatus
	case errors.Is(err, syscall.ECONNREFUSED):
		return errRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return errReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errEOF
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	}
	return errOther
}

// readResponse reads one HTTP/1.x response and discards its body. closeAfter is true when
// the server will close the connection after it (`Connection: close`, HTTP/1.0, or a body
// that runs to the end of the connection). A status other than 200 is an error.
func readResponse(br *bufio.Reader) (closeAfter bool, err error) {
	if _, err := br.Peek(1); err != nil {
		return false, noResponse{err}
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return false, eof(err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return false, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	http10 := line[7] == '0'
	status := line[9:12]
	ok := string(status) == "200"
	var statusLine string
	if !ok {
		statusLine = string(bytes.TrimSpace(line))
	}
	closeAfter = http10
	length, chunked := int64(-1), false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false, eof(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return false, fmt.Errorf("bad Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			v := bytes.ToLower(value)
			if bytes.Contains(v, []byte("close")) {
				closeAfter = true
			} else if bytes.Contains(v, []byte("keep-alive")) {
				closeAfter = false
			}
		}
	}
	switch {
	case chunked:
		if err := discardChunked(br); err != nil {
			return false, err
		}
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return false, eof(err)
		}
	default: // the body runs to the end of the connection
		if _, err := io.Copy(io.Discard, br); err != nil {
			return false, err
		}
		closeAfter = true
	}
	if !ok {
		return closeAfter, statusError{statusLine}
	}
	return closeAfter, nil
}

// discardChunked reads a chunked body and its trailers.
func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return eof(err)
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return eof(err)
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n) + 2); err != nil { // the chunk and its CRLF
			return eof(err)
		}
	}
}

// eof gives a read error a clearer message when a header line overflows the buffer.
func eof(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return errors.New("response header line too long")
	}
	return err
}

// probe sends one request on a new connection and reports whether a 200 came back.
func probe(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(buildRequest(addr, false)); err != nil {
		return err
	}
	_, err = readResponse(bufio.NewReader(conn))
	return err
}

// waitServing waits until n requests in a row get a 200.
func waitServing(ctx context.Context, addr string, n int, timeout time.Duration) error {
	return poll(ctx, timeout, 100*time.Millisecond, func() error {
		for ok := 0; ok < n; ok++ {
			if err := probe(ctx, addr, time.Second); err != nil {
				return fmt.Errorf("nothing serves %s after %s: %v", addr, timeout, err)
			}
		}
		return nil
	})
}

// portFree reports whether nothing listens on the port: connecting is refused and listening
// on it works.
func portFree(port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("something still accepts connections on %s", addr)
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d is not free: %v", port, err)
	}
	return ln.Close()
}

// waitPortFree waits until portFree holds.
func waitPortFree(ctx context.Context, port int, timeout time.Duration) error {
	return poll(ctx, timeout, 100*time.Millisecond, func() error { return portFree(port) })
}

// freePort asks the kernel for a port nobody uses.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// cpuSeconds is the CPU time (user + system) pid has used, from /proc/<pid>/stat. Its
// children's time is not included.
func cpuSeconds(pid int) (float64, error) {
	st, err := procstat.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return float64(st.CPU) / float64(procstat.ClockTicks()), nil
}
