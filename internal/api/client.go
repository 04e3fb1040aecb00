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
	"net/url"
	"strconv"
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

// do sends in (if not nil) as JSON and decodes the answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
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

// stream reads a newline-delimited JSON stream, calling fn with each line until the stream
// ends, fn returns an error, or ctx is done. opened (if not nil) is called once the daemon has
// answered, i.e. once the subscription is live.
func (c *Client) stream(ctx context.Context, path string, opened func(), fn func(line []byte) error) error {
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

// Version asks the daemon who it is (and so whether it answers at all).
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	err := c.do(ctx, http.MethodGet, "/version", nil, &v)
	return v, err
}

// Processes lists every process, or those targets select (ids, names, namespaces, "all",
// /regex/, as for actions), secrets masked unless reveal. A target that selects nothing is a
// not-found error.
func (c *Client) Processes(ctx context.Context, reveal bool, targets ...string) ([]Process, error) {
	v := url.Values{}
	for _, t := range targets {
		v.Add("target", t)
	}
	if reveal {
		v.Set("reveal", "1")
	}
	path := "/processes"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var procs []Process
	err := c.do(ctx, http.MethodGet, path, nil, &procs)
	return procs, err
}

// JList returns every process in `pm2 jlist`'s shape, as the daemon rendered it (the CLI
// prints the bytes as they come).
func (c *Client) JList(ctx context.Context, reveal bool) ([]byte, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/processes?format=pm2"+revealQuery("&", reveal), nil, &out)
	return out, err
}

// Start runs apps (POST /v1/apps).
func (c *Client) Start(ctx context.Context, req StartRequest) (ActionResponse, error) {
	var resp ActionResponse
	err := c.do(ctx, http.MethodPost, "/apps", req, &resp)
	return resp, err
}

// Act runs a lifecycle action on targets.
func (c *Client) Act(ctx context.Context, action Action, req ActionRequest) (ActionResponse, error) {
	var resp ActionResponse
	err := c.do(ctx, http.MethodPost, "/actions/"+url.PathEscape(string(action)), req, &resp)
	return resp, err
}

// Scale sets an app's number of processes.
func (c *Client) Scale(ctx context.Context, req ScaleRequest) (ActionResponse, error) {
	var resp ActionResponse
	err := c.do(ctx, http.MethodPost, "/scale", req, &resp)
	return resp, err
}

// Message sends data to the targets' process.on('message').
func (c *Client) Message(ctx context.Context, req MessageRequest) (ActionResponse, error) {
	var resp ActionResponse
	err := c.do(ctx, http.MethodPost, "/message", req, &resp)
	return resp, err
}

// Env returns the environment of target's processes, secrets masked unless reveal.
func (c *Client) Env(ctx context.Context, target string, reveal bool) ([]EnvResponse, error) {
	var envs []EnvResponse
	err := c.do(ctx, http.MethodGet, "/env/"+url.PathEscape(target)+revealQuery("?", reveal), nil, &envs)
	return envs, err
}

// Save writes the process list; force saves an empty one too.
func (c *Client) Save(ctx context.Context, force bool) (SaveResponse, error) {
	path := "/save"
	if force {
		path += "?force=1"
	}
	var resp SaveResponse
	err := c.do(ctx, http.MethodPost, path, nil, &resp)
	return resp, err
}

// Resurrect starts the saved apps that are not running.
func (c *Client) Resurrect(ctx context.Context) (ResurrectResponse, error) {
	var resp ResurrectResponse
	err := c.do(ctx, http.MethodPost, "/resurrect", nil, &resp)
	return resp, err
}

// Kill stops every app, then the daemon.
func (c *Client) Kill(ctx context.Context) (KillResponse, error) {
	var resp KillResponse
	err := c.do(ctx, http.MethodPost, "/kill", nil, &resp)
	return resp, err
}

// ApplyHTTPListen asks the daemon to read the http.listen setting again and move its HTTP
// listener (/metrics) to it now.
func (c *Client) ApplyHTTPListen(ctx context.Context) (HTTPListenResponse, error) {
	var resp HTTPListenResponse
	err := c.do(ctx, http.MethodPost, "/http/listen", nil, &resp)
	return resp, err
}

// Update asks the daemon for a hot upgrade: it leaves, and its keeper starts the corral binary
// req names, which takes every app over (nothing restarts).
func (c *Client) Update(ctx context.Context, req UpdateRequest) (UpdateResponse, error) {
	var resp UpdateResponse
	err := c.do(ctx, http.MethodPost, "/update", req, &resp)
	return resp, err
}

// Flush truncates the targets' log files (every one for none or "all").
func (c *Client) Flush(ctx context.Context, targets []string) (FlushResponse, error) {
	var resp FlushResponse
	err := c.do(ctx, http.MethodPost, "/logs/flush", ActionRequest{Targets: targets}, &resp)
	return resp, err
}

// ReopenLogs reopens every log file (after an outside rotation).
func (c *Client) ReopenLogs(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/logs/reopen", nil, nil)
}

// LogsQuery selects what GET /v1/logs streams.
type LogsQuery struct {
	Targets []string // none: all, and the daemon's own log
	Lines   int      // lines of history per file first
	Stream  string   // "out", "err", or "" for both
	Follow  bool     // then live lines until ctx ends
}

func (q LogsQuery) encode() string {
	v := url.Values{}
	for _, t := range q.Targets {
		v.Add("target", t)
	}
	v.Set("lines", strconv.Itoa(q.Lines))
	if q.Stream != "" {
		v.Set("stream", q.Stream)
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	return v.Encode()
}

// Logs streams log lines to fn until the history ends (or, following, until ctx ends).
func (c *Client) Logs(ctx context.Context, q LogsQuery, fn func(LogLine) error) error {
	return c.FollowLogs(ctx, q, nil, fn)
}

// FollowLogs is Logs with opened (if not nil) called once the daemon has subscribed to the live
// output, so a caller can act knowing it will see the lines that follow.
func (c *Client) FollowLogs(ctx context.Context, q LogsQuery, opened func(), fn func(LogLine) error) error {
	return c.stream(ctx, "/logs?"+q.encode(), opened, func(b []byte) error {
		var l LogLine
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("bad log line from the daemon: %w", err)
		}
		return fn(l)
	})
}

// Events streams process events to fn until ctx ends. opened (if not nil) is called once the
// subscription is live, so a caller can act knowing it will see the events that follow.
func (c *Client) Events(ctx context.Context, opened func(), fn func(Event) error) error {
	return c.stream(ctx, "/events", opened, func(b []byte) error {
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return fmt.Errorf("bad event from the daemon: %w", err)
		}
		return fn(ev)
	})
}

func revealQuery(sep string, reveal bool) string {
	if reveal {
		return sep + "reveal=1"
	}
	return ""
}

// Alerts lists the firing and recent alerts and the sinks' counters (GET /v1/alerts).
func (c *Client) Alerts(ctx context.Context) (AlertsResponse, error) {
	var resp AlertsResponse
	err := c.do(ctx, http.MethodGet, "/alerts", nil, &resp)
	return resp, err
}

// TestAlerts sends a test notification to every sink and says how each went
// (POST /v1/alerts/test; it waits up to 25 s for slow sinks).
func (c *Client) TestAlerts(ctx context.Context) (AlertTestResponse, error) {
	var resp AlertTestResponse
	err := c.do(ctx, http.MethodPost, "/alerts/test", nil, &resp)
	return resp, err
}
