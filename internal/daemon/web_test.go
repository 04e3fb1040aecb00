package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/testutil"
	"github.com/corral-pm/corral/internal/web"
)

// webDaemon is a test daemon serving the dashboard on a free loopback port, with its token.
func webDaemon(t *testing.T) (*testDaemon, string) {
	t.Helper()
	td := metricsDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := td.cl.Web(ctx)
	if err != nil {
		t.Fatalf("GET /v1/web: %v", err)
	}
	if info.Listen != td.d.HTTPAddr() || info.Path != "/web/" || info.Token == "" || info.Error != "" {
		t.Fatalf("GET /v1/web = %+v, want the listener %s and a token", info, td.d.HTTPAddr())
	}
	return td, info.Token
}

// webDo sends a request to the dashboard over TCP; tok "" sends none.
func webDo(t *testing.T, td *testDaemon, method, path, tok string, body string, headers ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+td.d.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// TestWebAPINeedsTheToken: the page's files are served to anyone on loopback, every API route
// needs the token from CORRAL_HOME, and a foreign Origin is refused even with it.
func TestWebAPINeedsTheToken(t *testing.T) {
	td, tok := webDaemon(t)
	file, err := os.ReadFile(filepath.Join(td.home, web.TokenFile))
	if err != nil || string(file) != tok {
		t.Fatalf("token file: %q %v, want the token /v1/web gives", file, err)
	}
	if code, body := webDo(t, td, "GET", "/web/", "", ""); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("GET /web/: %d %.200s", code, body)
	}
	for _, route := range []string{"GET /web/api/state", "GET /web/api/stream", "GET /web/api/logs", "GET /web/api/alerts", "POST /web/api/actions/reload", "POST /web/api/scale"} {
		method, path, _ := strings.Cut(route, " ")
		if code, body := webDo(t, td, method, path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d %s, want 401", route, code, body)
		}
		if code, body := webDo(t, td, method, path, "x"+tok[1:], ""); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d %s, want 401", route, code, body)
		}
	}
	if code, body := webDo(t, td, "GET", "/web/api/state", tok, "", "Origin", "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("foreign Origin: %d %s, want 403", code, body)
	}
	if code, body := webDo(t, td, "GET", "/web/api/state", tok, "", "Origin", "http://"+td.d.HTTPAddr()); code != 200 {
		t.Errorf("own Origin: %d %s, want 200", code, body)
	}
	// A page elsewhere whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name.
	req, _ := http.NewRequest(http.MethodGet, "http://"+td.d.HTTPAddr()+"/web/", nil)
	req.Host = "rebound.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("Host rebound.example on a loopback listener: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, body := webDo(t, td, "GET", "/web/api/alerts", tok, ""); code != 200 || !strings.HasPrefix(body, `{"firing":[]`) {
		t.Errorf("alerts: %d %s, want the alerts engine's answer (nothing firing)", code, body)
	}
}

// TestWebStateMasksSecretsAndKeepsHistory: the page's processes are the masked views, and the
// sampler's figures build up per process so a fresh page has charts at once.
func TestWebStateMasksSecretsAndKeepsHistory(t *testing.T) {
	td, tok := webDaemon(t)
	app := td.sleeper("api")
	app.Instances = 2
	app.Env = map[string]string{"DB_PASSWORD": "hunter2-in-clear", "PLAIN": "visible"}
	td.mustStart(app)
	procs := td.waitStatus("api", 2, "online")

	var st WebState
	testutil.WaitFor(t, "three samples of each process in the history", 20*time.Second, func() bool {
		code, body := webDo(t, td, "GET", "/web/api/state", tok, "")
		if code != 200 {
			t.Fatalf("state: %d %s", code, body)
		}
		if strings.Contains(body, "hunter2-in-clear") {
			t.Fatalf("the dashboard revealed a secret: %s", body)
		}
		st = WebState{}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return len(st.History[procs[0].ID]) >= 3 && len(st.History[procs[1].ID]) >= 3
	})
	if len(st.Processes) != 2 || st.Processes[0].App.Env["DB_PASSWORD"] != "********" || st.Processes[0].App.Env["PLAIN"] != "visible" {
		t.Errorf("processes: %+v, want two with DB_PASSWORD masked", st.Processes)
	}
	events := openStream(t, td, tok)
	waitEvent(t, events, "a state with the masked secret", func(ev sseEvent) bool {
		if strings.Contains(ev.data, "hunter2-in-clear") {
			t.Fatalf("the stream revealed a secret: %s", ev.data)
		}
		return ev.name == "state" && strings.Contains(ev.data, `"DB_PASSWORD":"********"`)
	})
	if st.IntervalMS != 200 || st.WindowMS != web.Window.Milliseconds() {
		t.Errorf("interval %d ms, window %d ms", st.IntervalMS, st.WindowMS)
	}
	for _, pts := range st.History {
		if pts[len(pts)-1].Mem <= 0 {
			t.Errorf("history without memory figures: %+v", pts)
		}
	}
}

// sseEvent is one server-sent event of the dashboard's stream.
type sseEvent struct{ name, data string }

// openStream opens the dashboard's live stream; its events arrive on the channel, which is
// closed when the stream ends.
func openStream(t *testing.T, td *testDaemon, tok string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+td.d.HTTPAddr()+"/web/api/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 16<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			case line == "" && ev.name != "":
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
				ev = sseEvent{}
			}
		}
	}()
	return out
}

// waitEvent reads the stream until match accepts an event.
func waitEvent(t *testing.T, events <-chan sseEvent, what string, match func(sseEvent) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended while waiting for %s", what)
			}
			if match(ev) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s on the stream within 30s", what)
		}
	}
}

// TestWebStreamAndActions: the stream carries the processes at each sample and the events of
// the page's actions (reload, scale, stop) as they happen; the actions the page does not offer
// are refused; the stream ends when the daemon stops, despite the listener's write timeout.
func TestWebStreamAndActions(t *testing.T) {
	td, tok := webDaemon(t)
	app := td.sleeper("svc")
	app.Instances = 2
	td.mustStart(app)
	procs := td.waitStatus("svc", 2, "online")
	events := openStream(t, td, tok)
	waitEvent(t, events, "a state with both processes", func(ev sseEvent) bool {
		var ps []api.Process
		return ev.name == "state" && json.Unmarshal([]byte(ev.data), &ps) == nil && len(ps) == 2
	})

	if code, body := webDo(t, td, "POST", "/web/api/actions/restart", tok, `{"target":"svc"}`); code != 200 || strings.Contains(body, "error") {
		t.Fatalf("restart: %d %s", code, body)
	}
	waitEvent(t, events, "a start event after the restart", func(ev sseEvent) bool {
		var e api.Event
		return ev.name == "event" && json.Unmarshal([]byte(ev.data), &e) == nil && e.Kind == api.EventStart && e.PID != procs[0].PID && e.PID != procs[1].PID
	})
	if code, body := webDo(t, td, "POST", "/web/api/scale", tok, `{"app":"svc","count":"3"}`); code != 200 {
		t.Fatalf("scale: %d %s", code, body)
	}
	waitEvent(t, events, "a state with three processes", func(ev sseEvent) bool {
		var ps []api.Process
		return ev.name == "state" && json.Unmarshal([]byte(ev.data), &ps) == nil && len(ps) == 3
	})
	for _, tc := range []struct{ path, body, want string }{
		{"/web/api/actions/delete", `{"target":"svc"}`, "offers [reload restart stop start]"},
		{"/web/api/actions/stop", `{}`, "no target"},
		{"/web/api/actions/stop", `{"target":"nope"}`, "nope"},
		{"/web/api/scale", `{"app":"svc","count":"lots"}`, "lots"},
	} {
		if code, body := webDo(t, td, "POST", tc.path, tok, tc.body); code/100 != 4 || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s %s: %d %s, want a 4xx saying %q", tc.path, tc.body, code, body, tc.want)
		}
	}
	if code, body := webDo(t, td, "POST", "/web/api/actions/stop", tok, `{"target":"svc"}`); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	td.waitStatus("svc", 3, "stopped")

	td.stop()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the stream did not end when the daemon stopped")
		}
	}
}

// TestWebLogs: the page's log tail is the daemon's log hub: history then live lines, one app's.
func TestWebLogs(t *testing.T) {
	td, tok := webDaemon(t)
	td.mustStart(td.app("talker", td.script("talker.sh", `echo "hello from the talker"; exec sleep 100000`)))
	td.waitStatus("talker", 1, "online")
	testutil.WaitFor(t, "the talker's line in its log tail", 20*time.Second, func() bool {
		code, body := webDo(t, td, "GET", "/web/api/logs?target=talker&lines=20", tok, "")
		if code != 200 {
			t.Fatalf("logs: %d %s", code, body)
		}
		return strings.Contains(body, `"message":"hello from the talker"`)
	})
	if code, body := webDo(t, td, "GET", "/web/api/logs?lines=5000", tok, ""); code != 400 || !strings.Contains(body, "0 to 1000") {
		t.Errorf("lines=5000: %d %s, want 400", code, body)
	}
}

// TestWebStreamOutlivesTheWriteTimeout: the listener's server has a WriteTimeout (30 s); the
// stream and the log tail set a deadline per write instead, so they last. Here the routes are
// served with a WriteTimeout of 300 ms, and both still deliver after several times that.
func TestWebStreamOutlivesTheWriteTimeout(t *testing.T) {
	td, tok := webDaemon(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: td.d.httpRoutes(), WriteTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	get := func(path string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	stream := bufio.NewReader(get("/web/api/stream").Body)
	logs := bufio.NewReader(get("/web/api/logs?lines=0&follow=1").Body)
	start := time.Now()
	states := 0
	for time.Since(start) < 1500*time.Millisecond {
		line, err := stream.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended after %v (%d states): %v", time.Since(start), states, err)
		}
		if line == "event: state\n" {
			states++
		}
	}
	td.mustStart(td.app("late", td.script("late.sh", `echo "said late"; exec sleep 100000`)))
	for {
		line, err := logs.ReadString('\n')
		if err != nil {
			t.Fatalf("the log tail ended after %v: %v", time.Since(start), err)
		}
		if strings.Contains(line, "said late") {
			break
		}
	}
}

// TestWebRefusedTokenFile: a token file others can read is not used: the daemon still serves
// /metrics, the dashboard's API answers 503 without naming paths, and /v1/web (the owner's
// socket) says why.
func TestWebRefusedTokenFile(t *testing.T) {
	td := newTestDaemon(t, func(d *Daemon) {
		d.httpListen, d.httpSource = "127.0.0.1:0", "test"
		p := filepath.Join(d.paths.Home, web.TokenFile)
		if err := os.WriteFile(p, []byte(strings.Repeat("ab", 32)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	info, err := td.cl.Web(context.Background())
	if err != nil || info.Token != "" || !strings.Contains(info.Error, "group and others must have no access") {
		t.Errorf("GET /v1/web = %+v, %v; want no token and the reason", info, err)
	}
	code, body := webDo(t, td, "GET", "/web/api/state", strings.Repeat("ab", 32), "")
	if code != http.StatusServiceUnavailable || strings.Contains(body, td.home) {
		t.Errorf("state with a refused token file: %d %s; want 503 without paths", code, body)
	}
	scrape(t, td.d.HTTPAddr(), "")
}

// TestWebOnANonLoopbackAddress: a listener the user put on another address answers its own
// host name (they chose to), still only with the token, and the daemon log warns once.
func TestWebOnANonLoopbackAddress(t *testing.T) {
	var ip string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			ip = n.IP.String()
			break
		}
	}
	if ip == "" {
		t.Skip("this machine has no non-loopback IPv4 address")
	}
	td := newTestDaemon(t, func(d *Daemon) { d.httpListen, d.httpSource = ip+":0", "test" })
	info, err := td.cl.Web(context.Background())
	if err != nil || info.Token == "" {
		t.Fatalf("GET /v1/web: %+v %v", info, err)
	}
	if code, body := webDo(t, td, "GET", "/web/api/state", "", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s, want 401", code, body)
	}
	for range 2 {
		if code, body := webDo(t, td, "GET", "/web/api/state", info.Token, ""); code != 200 {
			t.Errorf("with the token on %s: %d %s, want 200", ip, code, body)
		}
	}
	log, err := os.ReadFile(td.d.paths.DaemonLog)
	if n := strings.Count(string(log), "warning: the web dashboard answers on"); err != nil || n != 1 {
		t.Errorf("the daemon log warns %d times (%v), want once", n, err)
	}
}

// TestWebStreamLetsGo: a page that goes away leaves nothing behind: its stream's subscription
// to the events ends with the connection. (The log tail is GET /v1/logs's handler, which ends
// the same way.)
func TestWebStreamLetsGo(t *testing.T) {
	td, tok := webDaemon(t)
	subs := func() int {
		td.d.events.mu.Lock()
		defer td.d.events.mu.Unlock()
		return len(td.d.events.subs)
	}
	e0 := subs()
	ctx, cancel := context.WithCancel(context.Background())
	for _, path := range []string{"/web/api/stream"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+td.d.HTTPAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		defer resp.Body.Close()
	}
	testutil.WaitFor(t, "the stream's subscription", 10*time.Second, func() bool { return subs() == e0+1 })
	cancel()
	testutil.WaitFor(t, "the subscription to end with the connection", 10*time.Second, func() bool { return subs() == e0 })
}

// TestWebStreamsEndWithTheirListener: a page's stream and log tail end when the listener that
// serves them closes (`corral unset http.listen` applies at once), instead of streaming on
// from a listener that is gone.
func TestWebStreamsEndWithTheirListener(t *testing.T) {
	td := newTestDaemon(t, func(d *Daemon) { d.httpListen, d.httpSource = "127.0.0.1:0", "setting http.listen" })
	info, err := td.cl.Web(context.Background())
	if err != nil || info.Token == "" {
		t.Fatalf("GET /v1/web: %+v %v", info, err)
	}
	var bodies []io.ReadCloser
	for _, path := range []string{"/web/api/stream", "/web/api/logs?follow=1&lines=0"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+info.Listen+path, nil)
		req.Header.Set("Authorization", "Bearer "+info.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		defer resp.Body.Close()
		bodies = append(bodies, resp.Body)
	}
	if _, err := td.d.ApplyHTTPListen(); err != nil { // the setting is unset: the listener closes
		t.Fatal(err)
	}
	if td.d.HTTPAddr() != "" {
		t.Fatalf("the listener is still on %s", td.d.HTTPAddr())
	}
	for i, b := range bodies {
		ended := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, b); ended <- err }()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Errorf("stream %d still open 10 s after its listener closed", i)
		}
	}
}
