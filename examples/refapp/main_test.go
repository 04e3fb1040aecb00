package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/corral-pm/corral/internal/pgtest"
)

// The test binary doubles as the app: with REFAPP_TEST_MAIN=1 it runs main, so the tests below
// run real worker processes (the deployment's model) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("REFAPP_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *logBuf
	done chan error
}

// logBuf collects a worker's stderr while the test reads it.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listeningRE = regexp.MustCompile(`msg=listening .*addr=(\S+)`)

// start runs one worker process and waits until it listens (or exits).
func start(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"REFAPP_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=127.0.0.1:0", "BCRYPT_COST=4"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &logBuf{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		p.done <- cmd.Wait()
		close(addr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	select {
	case a, ok := <-addr:
		if !ok {
			return p // exited before listening; the caller looks at p.wait
		}
		p.url = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("worker did not listen in time; logs:\n%s", p.logs)
	}
	return p
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not exit; logs:\n%s", p.logs)
		return nil
	}
}

func call(t *testing.T, method, url, cookie, body string) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	pair, _, _ := strings.Cut(res.Header.Get("Set-Cookie"), ";")
	return res.StatusCode, pair, m
}

// flow: login on worker 0, /api/me on worker 1, logout on worker 0, /api/me everywhere → 401,
// then SIGTERM: each worker shuts down gracefully and exits 0.
func flow(t *testing.T, ws []*proc) {
	status, cookie, body := call(t, "POST", ws[0].url+"/api/auth/login", "", `{"email":"a@x","password":"pw1"}`)
	if status != 200 || !strings.HasPrefix(cookie, "connect.sid=s%3A") {
		t.Fatalf("login: %d %q %v\n%s", status, cookie, body, ws[0].logs)
	}
	status, _, body = call(t, "GET", ws[1].url+"/api/me", cookie, "")
	if status != 200 || body["user"].(map[string]any)["email"] != "a@x" {
		t.Fatalf("me on the other worker: %d %v", status, body)
	}
	status, _, body = call(t, "GET", ws[1].url+"/api/health", "", "")
	if status != 200 || body["worker"] != "1" {
		t.Errorf("health: %d %v", status, body)
	}
	if status, _, _ := call(t, "POST", ws[0].url+"/api/auth/logout", cookie, ""); status != 200 {
		t.Fatalf("logout: %d", status)
	}
	for i, w := range ws {
		if status, _, _ := call(t, "GET", w.url+"/api/me", cookie, ""); status != 401 {
			t.Errorf("me on worker %d after logout: %d", i, status)
		}
	}
	for i, w := range ws {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		if err := w.wait(t); err != nil {
			t.Errorf("worker %d exit: %v\n%s", i, err, w.logs)
		}
		if !strings.Contains(w.logs.String(), "msg=stopped") {
			t.Errorf("worker %d did not log its graceful stop:\n%s", i, w.logs)
		}
	}
}

func TestProcessesSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.db")
	var ws []*proc
	for i := range 2 {
		ws = append(ws, start(t, map[string]string{"NODE_APP_INSTANCE": fmt.Sprint(i), "SQLITE_PATH": path, "SEED_USERS": "a@x:pw1"}))
	}
	if !strings.Contains(ws[0].logs.String(), "DATABASE_URL is not set: using the embedded SQLite demo database") {
		t.Errorf("the SQLite default is not announced:\n%s", ws[0].logs)
	}
	flow(t, ws)
}

func TestProcessesPostgres(t *testing.T) {
	dsn := pgtest.DSN(t, pgtest.NewDB(t))
	base := map[string]string{"DATABASE_URL": dsn, "SESSION_SECRET": "a-secret-of-at-least-32-bytes-long", "SEED_USERS": "a@x:pw1", "DEMO_EMAIL": "", "WORKERS": "2", "DB_POOL_TOTAL": "6"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	// Refusals first: no secret; a client-set TimeZone (the guard).
	p := start(t, with("SESSION_SECRET", ""))
	if err := p.wait(t); err == nil || !strings.Contains(p.logs.String(), "SESSION_SECRET (or SESSION_SECRETS) is required") {
		t.Errorf("no secret: exit %v\n%s", err, p.logs)
	}
	p = start(t, with("PGTZ", "America/New_York"))
	if err := p.wait(t); err == nil || !strings.Contains(p.logs.String(), "time zone guard") {
		t.Errorf("PGTZ: exit %v\n%s", err, p.logs)
	}

	var ws []*proc
	for i := range 2 {
		ws = append(ws, start(t, with("NODE_APP_INSTANCE", fmt.Sprint(i))))
	}
	if !strings.Contains(ws[1].logs.String(), "max_conns=3") || !strings.Contains(ws[1].logs.String(), "application_name=refapp-w1") {
		t.Errorf("pool sizing not logged as DB_POOL_TOTAL/WORKERS:\n%s", ws[1].logs)
	}
	// Each worker's connections carry its application_name.
	for i, w := range ws {
		if s, _, _ := call(t, "GET", w.url+"/api/health", "", ""); s != 200 {
			t.Fatalf("health %d: %d", i, s)
		}
	}
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var names []string
	rows, _ := admin.Query(context.Background(), `SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'refapp-w%' ORDER BY 1`)
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(names, ",") != "refapp-w0,refapp-w1" {
		t.Errorf("application names %v %v", names, err)
	}
	flow(t, ws)
}

// -migrate creates the tables and seeds the users, then exits 0 without listening: the one-off
// migration before the Node app (which creates nothing) uses a database. No secret needed.
func TestMigrateOnly(t *testing.T) {
	dsn := pgtest.DSN(t, pgtest.NewDB(t))
	p := start(t, map[string]string{"DATABASE_URL": dsn, "SEED_USERS": "a@x:pw1,b@x:pw2", "DEMO_EMAIL": ""}, "-migrate")
	if err := p.wait(t); err != nil || p.url != "" || !strings.Contains(p.logs.String(), `msg="migrated:`) {
		t.Fatalf("-migrate: exit %v, url %q\n%s", err, p.url, p.logs)
	}
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var users, sessions int
	if err := admin.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM "session")`).Scan(&users, &sessions); err != nil || users != 2 || sessions != 0 {
		t.Fatalf("after -migrate: %d users, %d sessions, %v", users, sessions, err)
	}
	// Again: nothing changes, no error.
	p = start(t, map[string]string{"DATABASE_URL": dsn, "SEED_USERS": "a@x:pw1", "DEMO_EMAIL": ""}, "-migrate")
	if err := p.wait(t); err != nil {
		t.Fatalf("second -migrate: %v\n%s", err, p.logs)
	}
}
