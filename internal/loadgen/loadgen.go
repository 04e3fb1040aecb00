// Package loadgen is corral's HTTP load generator, shared by the benchmarks (bench/) and
// `corral verify`: a few goroutines, each one client in a closed loop (send a request, read the
// answer, send the next), optionally paced to a total rate. It speaks just enough HTTP/1.1 for
// a small app (status line, Content-Length or chunked body, `Connection: close`) over raw TCP
// with a request built once, so that it costs the machine little: it shares the CPUs with the
// servers it measures.
//
// Besides totals it keeps every latency (for percentiles) and a per-second series (requests,
// errors, latency), which is what verify's report plots.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Error kinds, as counted.
const (
	KindReset   = "reset"   // ECONNRESET, or EPIPE when writing to a connection the peer reset
	KindRefused = "refused" // ECONNREFUSED on connect
	KindEOF     = "EOF"     // the connection closed before a whole response came
	KindTimeout = "timeout" // no whole response within the request timeout
	KindStatus  = "status"  // a response other than 2xx
	KindOther   = "other"
)

// Kinds lists the error kinds in the order summaries show them.
var Kinds = []string{KindReset, KindRefused, KindEOF, KindTimeout, KindStatus, KindOther}

// FailPause is how long a client waits after a failed request before its next one, so that a
// port that refuses at once cannot inflate the count by a client spinning on it.
const FailPause = 10 * time.Millisecond

// Config describes a load.
type Config struct {
	Addr string // host:port
	Path string // request path; "" is "/"
	// Headers are more request header lines ("Cookie: sid=..."), sent with every request.
	Headers   []string
	Conns     int           // concurrent clients, each with one connection at a time
	KeepAlive bool          // reuse connections; else one new connection per request (`Connection: close`)
	Timeout   time.Duration // a request (connect included) that takes longer fails as a timeout
	// Rate caps the requests sent per second, over all clients (0: as fast as they answer).
	// Requests are paced evenly from the start; a client that falls behind catches up.
	Rate float64
	// Slow, when above 0, counts the served requests that took longer (Result.Slow): the
	// requests that waited, where a percentile would hide how many did.
	Slow time.Duration
}

// Second is one second of a load, counted by when requests completed.
type Second struct {
	Second   int     `json:"t"`        // seconds since the load started
	Length   float64 `json:"length_s"` // 1, less for the last second of a load
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// Result is what a load saw between its start and its end. Only requests that completed
// before the end count; a request cut by the end counts neither as served nor as failed.
type Result struct {
	Requests int64 // 2xx responses
	Conns    int64 // connections opened
	// Connect counts the failures while connecting (among Errors): nothing accepted the
	// connection, as when nothing listens on the port any more.
	Connect int64
	// Stale counts the failures on a reused keep-alive connection before any byte of the
	// response came (the request could not be written, or the connection closed or was
	// reset while waiting): the race HTTP clients retry idempotent requests for.
	Stale int64
	// Slow counts the served requests that took longer than Config.Slow (every one, however
	// many latencies are kept for the percentiles); 0 when Config.Slow is 0.
	Slow    int64
	Errors  map[string]int64 // failed requests by kind
	Samples map[string]string
	Elapsed time.Duration
	// Latency percentiles of the served requests, in ms (0 without any).
	P50MS, P90MS, P99MS, MaxMS float64
	// Series is the load second by second (empty for a merged result).
	Series []Second
}

// Failed is the number of failed requests.
func (r Result) Failed() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// RPS is the served requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// ErrorSummary is "reset 22, EOF 1" (kinds in a fixed order), or "none".
func (r Result) ErrorSummary() string {
	var parts []string
	for _, k := range Kinds {
		if n := r.Errors[k]; n > 0 {
			s := fmt.Sprintf("%s %d", k, n)
			if k == KindOther || k == KindStatus {
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

// Add merges o's counts into r (Elapsed adds up too; percentiles and series are not merged).
func (r *Result) Add(o Result) {
	r.Requests += o.Requests
	r.Conns += o.Conns
	r.Connect += o.Connect
	r.Stale += o.Stale
	r.Slow += o.Slow
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

// maxLatencies bounds the latencies one client keeps (4 bytes each) for the percentiles; past
// it, the client keeps every other one, then every fourth..., so a long fast load stays small.
const maxLatencies = 1 << 20

// Load is a running load.
type Load struct {
	cfg     Config
	ctx     context.Context
	req     []byte
	start   time.Time
	end     atomic.Int64 // unix ns of the end; 0 while open-ended
	ticket  atomic.Int64 // the next request slot, when paced
	wg      sync.WaitGroup
	clients []*client
}

type client struct {
	requests, conns, connect, stale, slow int64
	errors                                map[string]int64
	samples                               map[string]string
	// per second since the start: latencies (µs) of served requests, and failures
	lat    [][]uint32
	errsAt []int64
	kept   int // latencies kept
	every  int // keep one latency in every
	seen   int
}

// Start starts cfg.Conns clients. The load runs until Stop, or until ctx ends.
func Start(ctx context.Context, cfg Config) *Load {
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	l := &Load{cfg: cfg, ctx: ctx, req: BuildRequest(cfg.Addr, cfg.Path, cfg.KeepAlive, cfg.Headers...), start: time.Now()}
	for i := 0; i < cfg.Conns; i++ {
		c := &client{errors: map[string]int64{}, samples: map[string]string{}, every: 1}
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.run(c)
		}()
	}
	return l
}

// Run runs a load for d (less if ctx ends first) and returns what it saw.
func Run(ctx context.Context, cfg Config, d time.Duration) Result {
	l := Start(ctx, cfg)
	l.end.Store(l.start.Add(d).UnixNano())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return l.Stop()
}

// Began is when the load started: the origin of its series.
func (l *Load) Began() time.Time { return l.start }

// Stop ends the load now (or keeps the end already set, if earlier), waits for the clients
// (at most one request timeout) and returns what they saw.
func (l *Load) Stop() Result {
	now := time.Now().UnixNano()
	if e := l.end.Load(); e == 0 || e > now {
		l.end.Store(now)
	}
	l.wg.Wait()
	end := time.Unix(0, l.end.Load())
	r := Result{Errors: map[string]int64{}, Samples: map[string]string{}, Elapsed: end.Sub(l.start)}
	secs := int(math.Ceil(r.Elapsed.Seconds()))
	perSec := make([][]uint32, secs)
	errsAt := make([]int64, secs)
	var all []uint32
	for _, c := range l.clients {
		r.Add(Result{Requests: c.requests, Conns: c.conns, Connect: c.connect, Stale: c.stale, Slow: c.slow, Errors: c.errors, Samples: c.samples})
		for s, lat := range c.lat {
			if s < secs {
				perSec[s] = append(perSec[s], lat...)
			}
			all = append(all, lat...)
		}
		for s, n := range c.errsAt {
			if s < secs {
				errsAt[s] += n
			}
		}
	}
	r.P50MS, r.P90MS, r.P99MS, r.MaxMS = latencies(all, 50, 90, 99, 100)
	var counted int64
	for s := range secs {
		sec := Second{Second: s, Errors: errsAt[s], Length: min(1, r.Elapsed.Seconds()-float64(s))}
		sec.Requests = int64(len(perSec[s]))
		counted += sec.Requests
		sec.P50MS, sec.P99MS, sec.MaxMS, _ = latencies(perSec[s], 50, 99, 100, 100)
		r.Series = append(r.Series, sec)
	}
	// Past maxLatencies a client keeps a sample only: scale the seconds back to the counts.
	if counted > 0 && counted != r.Requests {
		f := float64(r.Requests) / float64(counted)
		for i := range r.Series {
			r.Series[i].Requests = int64(math.Round(float64(r.Series[i].Requests) * f))
		}
	}
	return r
}

// latencies returns four percentiles (nearest rank; 100 is the maximum) of µs samples, in ms.
func latencies(us []uint32, p1, p2, p3, p4 float64) (a, b, c, d float64) {
	if len(us) == 0 {
		return 0, 0, 0, 0
	}
	f := make([]float64, len(us))
	for i, v := range us {
		f[i] = float64(v) / 1000
	}
	sort.Float64s(f)
	return Percentile(f, p1), Percentile(f, p2), Percentile(f, p3), Percentile(f, p4)
}

// endTime is the load's end, or the zero time while it has none.
func (l *Load) endTime() time.Time {
	if e := l.end.Load(); e != 0 {
		return time.Unix(0, e)
	}
	return time.Time{}
}

// BuildRequest is the GET request a load sends, with headers (whole lines, no CRLF) added.
func BuildRequest(addr, path string, keepAlive bool, headers ...string) []byte {
	conn := "close"
	if keepAlive {
		conn = "keep-alive"
	}
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: " + conn + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// pace waits for the client's next request slot when the load has a rate; false when the load
// ended (or its end came) meanwhile.
func (l *Load) pace() bool {
	if l.cfg.Rate <= 0 {
		return true
	}
	n := l.ticket.Add(1) - 1
	at := l.start.Add(time.Duration(float64(n) / l.cfg.Rate * float64(time.Second)))
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	if end := l.endTime(); !end.IsZero() && at.After(end) {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// second is the index of the second of the load that t falls in.
func (l *Load) second(t time.Time) int {
	s := int(t.Sub(l.start) / time.Second)
	if s < 0 {
		return 0
	}
	return s
}

// served notes one served request's latency.
func (l *Load) served(c *client, began, done time.Time) {
	c.requests++
	if l.cfg.Slow > 0 && done.Sub(began) > l.cfg.Slow {
		c.slow++
	}
	c.seen++
	if c.seen%c.every != 0 {
		return
	}
	if c.kept >= maxLatencies {
		c.every *= 2
		// Thin what is kept to every other sample, so the whole run is sampled alike.
		for s := range c.lat {
			kept := c.lat[s][:0]
			for i, v := range c.lat[s] {
				if i%2 == 0 {
					kept = append(kept, v)
				}
			}
			c.lat[s] = kept
		}
		c.kept /= 2
	}
	s := l.second(done)
	for len(c.lat) <= s {
		c.lat = append(c.lat, nil)
	}
	us := done.Sub(began) / time.Microsecond
	if us > math.MaxUint32 {
		us = math.MaxUint32
	}
	c.lat[s] = append(c.lat[s], uint32(us))
	c.kept++
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
		if !l.pace() {
			return
		}
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
			closeAfter, err = ReadResponse(br)
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
		done := time.Now()
		if end := l.endTime(); !end.IsZero() && done.After(end) {
			return // completed after the end: not counted
		}
		l.served(c, began, done)
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
	k := ErrKind(err)
	if !end.IsZero() && !now.Before(end) {
		// At or after the end: a genuine timeout (in flight for the whole timeout) counts;
		// anything else happened outside the measured window or was cut by its end.
		if k != KindTimeout || now.Sub(began) < l.cfg.Timeout {
			return false
		}
	}
	c.errors[k]++
	if _, ok := c.samples[k]; !ok {
		c.samples[k] = err.Error()
	}
	s := l.second(now)
	for len(c.errsAt) <= s {
		c.errsAt = append(c.errsAt, 0)
	}
	c.errsAt[s]++
	t := time.NewTimer(FailPause)
	defer t.Stop()
	select {
	case <-l.ctx.Done():
	case <-t.C:
	}
	return true
}

// noResponse wraps an error that came before any byte of the response.
type noResponse struct{ err error }

func (e noResponse) Error() string { return e.err.Error() }
func (e noResponse) Unwrap() error { return e.err }

// StatusError is a response whose status is not 2xx.
type StatusError struct{ Line string }

func (e StatusError) Error() string { return "response " + e.Line }

// ErrKind sorts an error into one of Kinds.
func ErrKind(err error) string {
	var se StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return KindStatus
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return KindEOF
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	}
	return KindOther
}

// ReadResponse reads one HTTP/1.x response and discards its body. closeAfter is true when
// the server will close the connection after it (`Connection: close`, HTTP/1.0, or a body
// that runs to the end of the connection). A status other than 2xx is a StatusError.
func ReadResponse(br *bufio.Reader) (closeAfter bool, err error) {
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
	ok := line[9] == '2'
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
		return closeAfter, StatusError{statusLine}
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

// Percentile returns the p-th percentile (0 < p <= 100) of sorted values: for p = 50 the
// median (mean of the middle pair for an even count), otherwise the nearest rank
// (the smallest value with at least p % of the values at or below it).
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if p == 50 {
		if n%2 == 1 {
			return sorted[n/2]
		}
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}
