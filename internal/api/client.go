package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Client talks to the daemon over its unix socket.
type Client struct {
	Socket string
	hc     *http.Client

	mu            sync.Mutex
	serverVersion string
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 5 * time.Second,
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: tr}}
}

// StatusError is a non-2xx answer from the daemon.
type StatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// ServerVersion is the daemon's version as seen on the last response ("" before any).
func (c *Client) ServerVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serverVersion
}

func (c *Client) request(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://corral"+Prefix+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.serverVersion = resp.Header.Get(HeaderVersion)
	c.mu.Unlock()
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e Error
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e = Error{Error: fmt.Sprintf("daemon answered %s: %s", resp.Status, bytes.TrimSpace(raw)), Code: "internal"}
		}
		return nil, &StatusError{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	return resp, nil
}

// Do sends in (if not nil) as JSON and decodes the answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.request(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode daemon answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Stream reads a newline-delimited JSON stream, calling fn with each line until the stream
// ends, fn returns an error, or ctx is done. opened (if not nil) is called once the daemon has
// answered, i.e. once the subscription is live.
func (c *Client) Stream(ctx context.Context, path string, opened func(), fn func(line []byte) error) error {
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if opened != nil {
		opened()
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}
