package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/testutil"
)

// TestScaleIsBounded: a huge count (from the CLI, or sent straight to the API) is refused at
// once with the limit and how to raise it, and the daemon goes on answering. On the old daemon
// `scale web 1000000000` created processes until it ran out of memory, holding the table lock.
func TestScaleIsBounded(t *testing.T) {
	td := newTestDaemon(t, nil)
	td.mustStart(td.sleeper("web"))
	for _, count := range []string{"1000000000", "999999999999", "+1000000", "max1", "--1", "+-1", "1e9", "-0x10"} {
		_, err := td.scale("web", count)
		if statusCode(err) != http.StatusBadRequest {
			t.Errorf("scale web %s: %v, want 400", count, err)
		}
	}
	_, err := td.scale("web", "1000000000")
	if msg := fmt.Sprint(err); !strings.Contains(msg, "limit") || !strings.Contains(msg, maxInstancesEnv) {
		t.Errorf("the refusal does not say what the limit is and how to raise it: %s", msg)
	}
	if n := len(td.list()); n != 1 {
		t.Fatalf("%d processes after refused scales, want 1", n)
	}
	resp, err := td.scale("web", "+1")
	if err != nil || len(resp.Processes) != 2 {
		t.Fatalf("scale web +1: %v %d processes", err, len(resp.Processes))
	}
	resp, err = td.scale("web", "-1")
	if err != nil || len(resp.Processes) != 1 {
		t.Fatalf("scale web -1: %v %d processes", err, len(resp.Processes))
	}
	if _, err := td.scale("web", "-1"); statusCode(err) != http.StatusBadRequest {
		t.Fatalf("scaling to 0 processes: %v, want 400", err)
	}
	if _, err := td.scale("nope", "2"); statusCode(err) != http.StatusNotFound {
		t.Fatalf("scaling an unknown app: %v, want 404", err)
	}
}

// TestInstancesAreBounded: `instances: 10000` is refused before anything starts (the old
// daemon tried to start 10,000 processes).
func TestInstancesAreBounded(t *testing.T) {
	td := newTestDaemon(t, nil)
	big := td.sleeper("big")
	big.Instances = 10000
	ok := td.sleeper("fine")
	_, err := td.start(ok, big)
	if statusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `app "big": 10000 processes are over the limit of`) {
		t.Fatalf("start with instances 10000: %v, want 400 naming it", err)
	}
	if procs := td.list(); len(procs) != 0 {
		t.Fatalf("a refused request started %d processes (the good app of it too?)", len(procs))
	}
	t.Setenv(maxInstancesEnv, "20")
	if got, _ := instanceLimit(); got != 20 {
		t.Fatalf("%s=20: limit %d", maxInstancesEnv, got)
	}
	t.Setenv(maxInstancesEnv, "1000000")
	if got, _ := instanceLimit(); got != hardMaxInstances {
		t.Fatalf("%s=1000000: limit %d, want the hard ceiling %d", maxInstancesEnv, got, hardMaxInstances)
	}
}

// TestBadTargetsAre400: a regular expression that does not compile is the client's mistake
// (the old daemon answered 500); an unknown name is 404; no target at all is 400.
func TestBadTargetsAre400(t *testing.T) {
	td := newTestDaemon(t, nil)
	td.mustStart(td.sleeper("web"))
	cases := []struct {
		targets []string
		status  int
		says    string
	}{
		{[]string{"/[/"}, http.StatusBadRequest, "not a valid regular expression"},
		{[]string{"/(/"}, http.StatusBadRequest, "not a valid regular expression"},
		{[]string{"nope"}, http.StatusNotFound, `"nope" not found`},
		{[]string{"web", "nope"}, http.StatusNotFound, `"nope" not found`},
		{nil, http.StatusBadRequest, "no target"},
	}
	for _, c := range cases {
		for _, action := range []api.Action{api.ActionStop, api.ActionRestart, api.ActionDelete} {
			_, err := td.act(action, c.targets...)
			if statusCode(err) != c.status || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s %q: %v, want %d saying %q", action, c.targets, err, c.status, c.says)
			}
		}
	}
	if _, err := td.act("explode", "web"); statusCode(err) != http.StatusBadRequest {
		t.Errorf("an unknown action: %v, want 400", err)
	}
	if p := td.waitStatus("web", 1, "online"); len(p) != 1 {
		t.Fatal("the app was touched by refused requests")
	}
}

// TestMissingProgramRegistersNothing: an app whose interpreter does not exist is refused with
// the reason, and nothing of the request is registered (the old daemon left it `errored`).
func TestMissingProgramRegistersNothing(t *testing.T) {
	td := newTestDaemon(t, nil)
	bad := td.sleeper("bad")
	bad.Interpreter = "/nonexistent/node"
	bad.Script = td.script("app.js", "")
	_, err := td.start(td.sleeper("good"), bad)
	if statusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "/nonexistent/node") {
		t.Fatalf("start with a missing interpreter: %v, want 400 naming it", err)
	}
	if procs := td.list(); len(procs) != 0 {
		t.Fatalf("%d processes registered by a refused request", len(procs))
	}
	noCwd := td.sleeper("nocwd")
	noCwd.Cwd = "/nonexistent/dir"
	if _, err := td.start(noCwd); statusCode(err) != http.StatusBadRequest {
		t.Fatalf("start in a missing directory: %v, want 400", err)
	}
}

// TestBodyOverLimitIs413: an oversized request is refused with 413 and a message that says
// what to do, not "unexpected EOF".
func TestBodyOverLimitIs413(t *testing.T) {
	td := newTestDaemon(t, nil)
	s := td.sleeper("huge")
	s.Env = map[string]string{"BIG": strings.Repeat("x", maxRequestBody)}
	_, err := td.start(s)
	if statusCode(err) != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "limit of 16 MiB") {
		t.Fatalf("oversized start: %v, want 413 with the limit", err)
	}
	raw := rawRequest(t, td, "POST /v1/apps HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"apps\":[]} {\"apps\":[]}       ")
	if !strings.Contains(raw, "400 Bad Request") || !strings.Contains(raw, "more than one JSON value") {
		t.Fatalf("two JSON values in one body: %s", raw)
	}
}

// rawRequest sends a raw HTTP request on the daemon's socket and returns the raw answer.
func rawRequest(t *testing.T, td *testDaemon, req string) string {
	t.Helper()
	c, err := net.Dial("unix", td.d.paths.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Status + "\n" + string(body)
}

// TestSlowRequestsAreDropped: a client that sends its body slowly, or never, loses its
// connection after the read timeout, so 200 of them do not hold 200 of the daemon's fds for
// ever (the old daemon had no read timeout).
func TestSlowRequestsAreDropped(t *testing.T) {
	const timeout = 500 * time.Millisecond
	td := newTestDaemon(t, func(d *Daemon) { d.apiReadTimeout = timeout })
	td.list() // the server's own fds are open
	before := testutil.OpenFDs(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 200 {
		c, err := net.Dial("unix", td.d.paths.Socket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "POST /v1/apps HTTP/1.1\r\nHost: corral\r\nContent-Length: 1000\r\n\r\n{\"apps\":"); err != nil {
			t.Fatal(err)
		}
	}
	// Every slow connection is closed by the daemon: a read sees its end.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection %d was not closed by the daemon: %v", i, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testutil.WaitFor(t, "the daemon to release the slow connections' fds", 10*time.Second, func() bool {
		return testutil.OpenFDs(t) <= before
	})
	// The streaming endpoints are not cut by the read timeout.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan api.Event, 16)
	opened := make(chan struct{})
	go func() {
		_ = td.cl.Events(ctx, func() { close(opened) }, func(ev api.Event) error { got <- ev; return nil })
	}()
	<-opened
	time.Sleep(3 * timeout) // longer than the read timeout: the stream must outlive it
	td.mustStart(td.sleeper("late"))
	select {
	case ev := <-got:
		if ev.Name != "late" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the event stream ended with the read timeout")
	}
}

// TestAPIAnswersWhileAnOperationRuns: a listing does not wait for an app's operation (a
// rolling reload, a slow stop): it reads the app's published view. And the operation's own
// answer comes however long it takes: the read timeout guards the request, not the work.
func TestAPIAnswersWhileAnOperationRuns(t *testing.T) {
	td := newTestDaemon(t, func(d *Daemon) { d.apiReadTimeout = time.Second })
	// A process that ignores SIGINT: its stop takes kill_timeout.
	s := td.app("stubborn", td.script("stubborn.sh", "trap '' INT\nwhile :; do sleep 1; done"))
	s.KillTimeout = 5000
	td.mustStart(s)
	td.waitStatus("stubborn", 1, "online")
	stopped := make(chan error, 1)
	go func() {
		resp, err := td.act(api.ActionStop, "stubborn")
		if err == nil && len(resp.Errors) > 0 {
			err = errors.New(strings.Join(resp.Errors, "; "))
		}
		stopped <- err
	}()
	testutil.WaitFor(t, "the stop to begin", 10*time.Second, func() bool {
		for _, p := range td.list() {
			if p.Status == "stopping" {
				return true
			}
		}
		return false
	})
	select {
	case err := <-stopped:
		t.Fatalf("the stop ended before kill_timeout: %v", err)
	default:
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	var buf bytes.Buffer
	for _, p := range td.list() {
		fmt.Fprintf(&buf, "%s %s\n", p.Name, p.Status)
	}
	if buf.String() != "stubborn stopped\n" {
		t.Fatalf("after the stop:\n%s", buf.String())
	}
}

// TestInputsFromDiskAreBounded: files the daemon reads on a request (a saved list, an app's
// package.json) and the history it is asked for have sizes it checks before reading.
func TestInputsFromDiskAreBounded(t *testing.T) {
	td := newTestDaemon(t, nil)
	// A logs request for more history than the daemon holds in memory.
	err := td.cl.Logs(context.Background(), api.LogsQuery{Lines: maxHistoryLines + 1}, func(api.LogLine) error { return nil })
	if statusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "lines must be a number from 0 to") {
		t.Fatalf("logs --lines %d: %v, want 400", maxHistoryLines+1, err)
	}
	// An app whose package.json is huge has no version, and starts.
	if err := os.WriteFile(filepath.Join(td.dir, "package.json"), bytes.Repeat([]byte(" "), maxPackageJSON+1), 0o644); err != nil {
		t.Fatal(err)
	}
	// (One further up has a version: the nearest, oversized one must still win.)
	if err := os.WriteFile(filepath.Join(filepath.Dir(td.dir), "package.json"), []byte(`{"version":"9.9.9"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	resp := td.mustStart(td.sleeper("web"))
	if v := resp.Processes[0].Version; v != "N/A" {
		t.Fatalf("version with an oversized package.json: %q, want N/A", v)
	}
	// A saved list larger than any corral writes is refused, naming the file.
	f, err := os.OpenFile(td.d.paths.Dump, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(65 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = td.cl.Resurrect(context.Background())
	if err == nil || !strings.Contains(err.Error(), td.d.paths.Dump) || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("resurrect from a 65 MiB saved list: %v", err)
	}
}

// TestFlushGoesOnPastARefusedFile: a log file the daemon refuses to truncate (one with a second
// name, which could be someone else's file) is reported, and the other files are flushed.
func TestFlushGoesOnPastARefusedFile(t *testing.T) {
	td := newTestDaemon(t, nil)
	good := td.app("good", td.script("talk.sh", "echo hello\nexec sleep 100000"))
	good.MergeLogs = true
	good.OutFile = filepath.Join(td.dir, "good.log")
	td.mustStart(good)
	testutil.WaitFor(t, "good's line in its log", 20*time.Second, func() bool {
		b, _ := os.ReadFile(good.OutFile)
		return len(b) > 0
	})
	// A file with a second name, as if someone had linked their own file there.
	bad := filepath.Join(td.dir, "bad.log")
	if err := os.WriteFile(filepath.Join(td.dir, "theirs"), []byte("theirs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(td.dir, "theirs"), bad); err != nil {
		t.Fatal(err)
	}
	b := td.sleeper("bad")
	b.MergeLogs = true
	b.OutFile = bad
	td.mustStart(b)
	resp, err := td.cl.Flush(context.Background(), []string{"bad", "good"})
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
	if len(resp.Errors) != 1 || !strings.Contains(resp.Errors[0], bad) {
		t.Fatalf("flush errors %q, want one naming %s", resp.Errors, bad)
	}
	if !slices.Contains(resp.Flushed, good.OutFile) {
		t.Fatalf("flushed %q: the good file was not", resp.Flushed)
	}
	if got, _ := os.ReadFile(filepath.Join(td.dir, "theirs")); string(got) != "theirs\n" {
		t.Fatalf("the other name's file was changed: %q", got)
	}
}

// TestTargetGrammar: the processes a target selects, as GET /v1/processes?target= answers
// them (what `describe` shows and what the actions act on): "all"; /regex/ on app names;
// otherwise the app of that name, or if none, those of that namespace, or if none, the process
// with that id.
func TestTargetGrammar(t *testing.T) {
	td := newTestDaemon(t, nil)
	web := td.sleeper("web")
	web.Instances = 2
	api, worker, prod := td.sleeper("api"), td.sleeper("worker"), td.sleeper("prod")
	api.Namespace, worker.Namespace = "prod", "prod"
	td.mustStart(web, api, worker, prod) // ids 0,1 web; 2 api; 3 worker; 4 prod
	selected := func(targets ...string) ([]int, error) {
		procs, err := td.cl.Processes(context.Background(), false, targets...)
		var ids []int
		for _, p := range procs {
			ids = append(ids, p.ID)
		}
		return ids, err
	}
	for _, tc := range []struct {
		target string
		want   []int
	}{
		{"all", []int{0, 1, 2, 3, 4}},
		{"web", []int{0, 1}},
		{"default", []int{0, 1, 4}},
		{"prod", []int{4}}, // the app named prod, not the namespace
		{"2", []int{2}},
		{"/^w/", []int{0, 1, 3}},
		{"/o/", []int{3, 4}},
	} {
		if got, err := selected(tc.target); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("target %q selects %v (%v), want %v", tc.target, got, err, tc.want)
		}
	}
	if got, err := selected("web", "2", "web"); err != nil || !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("targets web 2 web select %v (%v), want each process once", got, err)
	}
	for _, tc := range []struct {
		target string
		status int
		err    string
	}{
		{"nosuch", http.StatusNotFound, `process or namespace "nosuch" not found`},
		{"9", http.StatusNotFound, `process or namespace "9" not found`},
		{"/^x/", http.StatusNotFound, `process or namespace "/^x/" not found`},
		{"/[/", http.StatusBadRequest, "target /[/ is not a valid regular expression"},
	} {
		if got, err := selected(tc.target); statusCode(err) != tc.status || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("target %q selects %v (%v), want %d with %q", tc.target, got, err, tc.status, tc.err)
		}
	}
}
