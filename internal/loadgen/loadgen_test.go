package loadgen

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, raw  string
		closeAfter bool
		kind       string // "" for success
	}{
		{"content-length keep-alive", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", false, ""},
		{"content-length close", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: close\r\n\r\nok", true, ""},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n", false, ""},
		{"to the end", "HTTP/1.1 200 OK\r\n\r\nok", true, ""},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", true, ""},
		{"status", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", false, KindStatus},
		{"cut in the headers", "HTTP/1.1 200 OK\r\nContent-Le", false, KindEOF},
		{"cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false, KindEOF},
		{"nothing", "", false, KindEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.raw))
			closeAfter, err := ReadResponse(br)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if closeAfter != tc.closeAfter {
					t.Errorf("closeAfter = %v, want %v", closeAfter, tc.closeAfter)
				}
				if rest, _ := io.ReadAll(br); len(rest) != 0 {
					t.Errorf("left %q unread", rest)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if k := ErrKind(err); k != tc.kind {
				t.Errorf("kind of %v = %s, want %s", err, k, tc.kind)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, ka := range []bool{true, false} {
		r := Run(context.Background(), Config{Addr: addr, Conns: 4, KeepAlive: ka, Timeout: time.Second}, 300*time.Millisecond)
		if r.Requests == 0 || r.Failed() != 0 {
			t.Errorf("keep-alive %v: %d requests, failed: %s", ka, r.Requests, r.ErrorSummary())
		}
		// Keep-alive: one connection per client. New connections: one per request, plus
		// those cut by the end.
		if ka && r.Conns != 4 || !ka && (r.Conns < r.Requests || r.Conns > r.Requests+4) {
			t.Errorf("keep-alive %v: %d connections for %d requests", ka, r.Conns, r.Requests)
		}
	}
	// A port nobody listens on: refused, counted, without spinning.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	r := Run(context.Background(), Config{Addr: dead, Conns: 2, Timeout: time.Second}, 200*time.Millisecond)
	if r.Errors[KindRefused] == 0 || r.Errors[KindRefused] > 2*int64(200*time.Millisecond/FailPause)+2 {
		t.Errorf("dead port: %s", r.ErrorSummary())
	}
}

// A server that closes each keep-alive connection after its first response, without saying
// so: the client's next request on it fails before any byte of a response (stale).
func TestLoadStale(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				time.Sleep(20 * time.Millisecond) // the client's next request arrives
			}()
		}
	}()
	r := Run(context.Background(), Config{Addr: ln.Addr().String(), Conns: 2, KeepAlive: true, Timeout: time.Second}, 300*time.Millisecond)
	if r.Requests == 0 || r.Failed() == 0 || r.Stale != r.Failed() {
		t.Errorf("%d requests, %d stale, failed: %s", r.Requests, r.Stale, r.ErrorSummary())
	}
	t.Logf("%d requests, failed: %s", r.Requests, r.ErrorSummary())
}

// A paced load sends about rate × duration requests, and its series and percentiles add up.
func TestLoadRateAndSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r := Run(context.Background(), Config{Addr: addr, Path: "/health", Conns: 4, Rate: 200, Timeout: time.Second}, 1500*time.Millisecond)
	if r.Failed() != 0 {
		t.Fatalf("failed: %s", r.ErrorSummary())
	}
	// The pacing bounds the count from above whatever the machine's speed: 200/s for 1.5 s,
	// plus the slot at 0.
	if r.Requests == 0 || r.Requests > 301 {
		t.Errorf("%d requests at 200/s for 1.5 s", r.Requests)
	}
	if len(r.Series) != 2 {
		t.Fatalf("series of %d seconds for 1.5 s: %+v", len(r.Series), r.Series)
	}
	var sum int64
	for _, s := range r.Series {
		sum += s.Requests
	}
	if sum != r.Requests {
		t.Errorf("series sums to %d, total %d", sum, r.Requests)
	}
	if !(r.P50MS > 0 && r.P50MS <= r.P90MS && r.P90MS <= r.P99MS && r.P99MS <= r.MaxMS) {
		t.Errorf("percentiles out of order: p50 %v p90 %v p99 %v max %v", r.P50MS, r.P90MS, r.P99MS, r.MaxMS)
	}
	// Another path: every answer a 404, counted as status errors, second by second.
	r = Run(context.Background(), Config{Addr: addr, Path: "/nope", Conns: 1, Rate: 50, Timeout: time.Second}, 500*time.Millisecond)
	if r.Requests != 0 || r.Errors[KindStatus] == 0 || r.Series[0].Errors != r.Errors[KindStatus] {
		t.Errorf("404s: %d requests, %s, series %+v", r.Requests, r.ErrorSummary(), r.Series)
	}
}

// Slow counts the served requests that took longer than Config.Slow, every one of them, and
// only when asked.
func TestLoadSlow(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 { // every other request, the first included, waits
			time.Sleep(150 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	// One client: the server sees the requests in the order the client sends them, so of the
	// served ones, the odd-numbered (at least half, rounded up) took 150 ms or more.
	cfg := Config{Addr: addr, Conns: 1, Timeout: time.Second, Slow: 50 * time.Millisecond}
	r := Run(context.Background(), cfg, 700*time.Millisecond)
	if r.Failed() != 0 || r.Requests < 2 {
		t.Fatalf("%d requests, failed: %s", r.Requests, r.ErrorSummary())
	}
	if r.Slow < (r.Requests+1)/2 || r.Slow >= r.Requests {
		t.Errorf("%d slow of %d requests, half of them (rounded up) waited 150 ms", r.Slow, r.Requests)
	}
	if r.MaxMS < 150 {
		t.Errorf("max %.1f ms, some requests waited 150 ms", r.MaxMS)
	}
	// Merged results add their counts up.
	var sum Result
	sum.Add(r)
	sum.Add(r)
	if sum.Slow != 2*r.Slow {
		t.Errorf("merged: %d slow, want %d", sum.Slow, 2*r.Slow)
	}
	// Not asked, not counted.
	cfg.Slow = 0
	if r := Run(context.Background(), cfg, 400*time.Millisecond); r.Requests == 0 || r.Slow != 0 {
		t.Errorf("without Slow: %d slow of %d requests", r.Slow, r.Requests)
	}
}

func TestCheckTarget(t *testing.T) {
	listening := []string{"0.0.0.0:5000", "10.1.2.3:5001"}
	for _, ok := range []string{"127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.0.0.2:80", "10.1.2.3:5001"} {
		if err := CheckTarget(ok, listening); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.1.2.3:5000", "example.com:80", "8.8.8.8:5000", "5000", "10.1.2.4:5001"} {
		if err := CheckTarget(bad, listening); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
