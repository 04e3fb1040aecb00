package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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
		{"status", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", false, errStatus},
		{"cut in the headers", "HTTP/1.1 200 OK\r\nContent-Le", false, errEOF},
		{"cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false, errEOF},
		{"nothing", "", false, errEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.raw))
			closeAfter, err := readResponse(br)
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
			if k := errKind(err); k != tc.kind {
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
		r := RunLoad(context.Background(), LoadConfig{Addr: addr, Conns: 4, KeepAlive: ka, Timeout: time.Second}, 300*time.Millisecond)
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
	r := RunLoad(context.Background(), LoadConfig{Addr: dead, Conns: 2, Timeout: time.Second}, 200*time.Millisecond)
	if r.Errors[errRefused] == 0 || r.Errors[errRefused] > 2*int64(200*time.Millisecond/failPause)+2 {
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
	r := RunLoad(context.Background(), LoadConfig{Addr: ln.Addr().String(), Conns: 2, KeepAlive: true, Timeout: time.Second}, 300*time.Millisecond)
	if r.Requests == 0 || r.Failed() == 0 || r.Stale != r.Failed() {
		t.Errorf("%d requests, %d stale, failed: %s", r.Requests, r.Stale, r.ErrorSummary())
	}
	t.Logf("%d requests, failed: %s", r.Requests, r.ErrorSummary())
}
