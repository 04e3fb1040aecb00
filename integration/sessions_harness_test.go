package integration

// The session tests' harness: a throwaway PostgreSQL database per test, the reference apps
// (examples/refapp in Go, examples/refapp-node in Express + express-session +
// connect-pg-simple) run by the real corral binary in cluster mode, requests aimed at workers
// through the daemon's round-robin, and the session table as the oracle.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/corral-pm/corral/internal/pgtest"
)

// sessionSecret is the secret both apps sign cookies with (express-session's `secret`).
const sessionSecret = "corral-session-tests-secret-0123456789abcdef"

// ---------------------------------------------------------------------------------------------
// PostgreSQL

// sessDB is one test's database.
type sessDB struct {
	t    *testing.T
	name string
	url  string // postgresql:// URL, for pgx and node-postgres alike
	conn *pgx.Conn
}

// newSessionDB creates an empty database, dropped when the test ends (after corral, whose
// cleanup was registered later, has killed the apps). It skips the test when PostgreSQL is
// unreachable, unless CORRAL_TEST_PG_REQUIRED is set (see internal/pgtest).
func newSessionDB(t *testing.T) *sessDB {
	t.Helper()
	d := &sessDB{t: t, name: pgtest.NewDB(t)}
	d.url = pgtest.URL(t, d.name)
	// Registered after NewDB's drop, so it runs before it.
	t.Cleanup(func() {
		if d.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = d.conn.Close(ctx)
		}
	})
	return d
}

func (d *sessDB) db() *pgx.Conn {
	d.t.Helper()
	if d.conn == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, d.url)
		if err != nil {
			d.t.Fatalf("connect to the test database: %v", err)
		}
		d.conn = c
	}
	return d.conn
}

// sessionRows is the number of rows in the session table.
func (d *sessDB) sessionRows() int {
	d.t.Helper()
	var n int
	if err := d.db().QueryRow(context.Background(), `SELECT count(*) FROM "session"`).Scan(&n); err != nil {
		d.t.Fatal(err)
	}
	return n
}

// session returns a row: its JSON text and passport.user (0 without one), found.
func (d *sessDB) session(sid string) (sess string, user int64, found bool) {
	d.t.Helper()
	var u *int64
	err := d.db().QueryRow(context.Background(),
		`SELECT sess::text, (sess::json->'passport'->>'user')::int8 FROM "session" WHERE sid = $1`, sid).Scan(&sess, &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false
	}
	if err != nil {
		d.t.Fatal(err)
	}
	if u != nil {
		user = *u
	}
	return sess, user, true
}

// sessionsOf counts the rows whose passport.user is one of ids.
func (d *sessDB) sessionsOf(ids []int64) int {
	d.t.Helper()
	var n int
	err := d.db().QueryRow(context.Background(),
		`SELECT count(*) FROM "session" WHERE (sess::json->'passport'->>'user')::int8 = ANY($1)`, ids).Scan(&n)
	if err != nil {
		d.t.Fatal(err)
	}
	return n
}

// ---------------------------------------------------------------------------------------------
// Users

type sessUser struct {
	ID              int64
	Email, Password string
}

// sessUsers are the users the tests seed (as many as the concurrent logins need).
func sessUsers() []sessUser {
	var us []sessUser
	for i := range 10 {
		us = append(us, sessUser{Email: fmt.Sprintf("user%d@example.com", i), Password: fmt.Sprintf("pw-%d-%s", i, "correct horse")})
	}
	return us
}

// migrateSessionDB runs the Go app's one-off migration on d (the session table exactly as
// connect-pg-simple's table.sql, created under an advisory lock, and the users table: the Node
// app creates nothing) and seeds the users, whose ids it fills in.
func migrateSessionDB(t *testing.T, d *sessDB) []sessUser {
	t.Helper()
	users := sessUsers()
	var seeds []string
	for _, u := range users {
		seeds = append(seeds, u.Email+":"+u.Password)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, refappBin.get(t), "-migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+d.url, "SEED_USERS="+strings.Join(seeds, ","), "DEMO_EMAIL=", "BCRYPT_COST=4")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("refapp -migrate: %v\n%s", err, out)
	}
	for i := range users {
		if err := d.db().QueryRow(ctx, `SELECT id FROM users WHERE email = $1`, users[i].Email).Scan(&users[i].ID); err != nil {
			t.Fatalf("seeded user %s: %v", users[i].Email, err)
		}
	}
	return users
}

// ---------------------------------------------------------------------------------------------
// The apps

// sessListenTimeout is the apps' listen_timeout (ms). PM2's default of 3 s is too short for a
// replacement Express worker to start during a reload on a busy 2-core machine, and these
// tests are about sessions, not start-up time: a slow start must not abort the reload.
const sessListenTimeout = 30000

// sessApp is one reference app run by corral in cluster mode.
type sessApp struct {
	e     *env
	name  string // corral's app name
	stack string // "go" or "node": what the app's answers say
	port  int
	url   string // http://127.0.0.1:port
	n     int    // workers it should have now
	entry map[string]any
}

// newGoApp is the Go reference app on d: n workers, the given port.
func newGoApp(t *testing.T, e *env, d *sessDB, name string, n int) *sessApp {
	t.Helper()
	port := freePort(t)
	return &sessApp{e: e, name: name, stack: "go", port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port), n: n,
		entry: map[string]any{
			"name": name, "script": refappBin.get(t), "interpreter": "none",
			"exec_mode": "cluster", "instances": n, "kill_timeout": 10000, "listen_timeout": sessListenTimeout,
			"env": map[string]string{
				"PORT": strconv.Itoa(port), "DATABASE_URL": d.url, "SESSION_SECRET": sessionSecret,
				"WORKERS": strconv.Itoa(n), "DB_POOL_TOTAL": strconv.Itoa(3 * n), "DEMO_EMAIL": "", "BCRYPT_COST": "4",
			},
		}}
}

// newStackApp is the reference app of stack ("go": newGoApp, otherwise newNodeApp) on d.
func newStackApp(t *testing.T, e *env, d *sessDB, stack, name string, n int) *sessApp {
	if stack == "go" {
		return newGoApp(t, e, d, name, n)
	}
	return newNodeApp(t, e, d, name, n)
}

// newNodeApp is examples/refapp-node, unmodified, on d: n workers, the given port. Its npm
// packages were installed by TestMain.
func newNodeApp(t *testing.T, e *env, d *sessDB, name string, n int) *sessApp {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples", "refapp-node"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	return &sessApp{e: e, name: name, stack: "node", port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port), n: n,
		entry: map[string]any{
			"name": name, "script": filepath.Join(dir, "server.js"), "cwd": dir,
			"exec_mode": "cluster", "instances": n, "listen_timeout": sessListenTimeout,
			"env": map[string]string{
				"PORT": strconv.Itoa(port), "DATABASE_URL": d.url, "SESSION_SECRET": sessionSecret,
				"WORKERS": strconv.Itoa(n), "DB_POOL_TOTAL": strconv.Itoa(3 * n),
			},
		}}
}

// startSessionApps writes the apps into one ecosystem file, starts it, and waits until every
// worker of every app answers. On failure, the apps' logs are printed.
func startSessionApps(t *testing.T, e *env, apps ...*sessApp) {
	t.Helper()
	var entries []map[string]any
	for _, a := range apps {
		entries = append(entries, a.entry)
	}
	js, err := json.MarshalIndent(map[string]any{"apps": entries}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	e.write("ecosystem.config.js", "module.exports = "+string(js)+";\n")
	t.Cleanup(func() {
		if t.Failed() {
			dumpAppLogs(t, e)
		}
	})
	e.ok("start", "ecosystem.config.js")
	for _, a := range apps {
		a.waitServing(t)
	}
}

// dumpAppLogs prints the end of every process's logs.
func dumpAppLogs(t *testing.T, e *env) {
	r := e.run("jlist")
	var procs []jproc
	if json.Unmarshal([]byte(r.stdout), &procs) != nil {
		return
	}
	for _, p := range procs {
		for _, path := range []string{p.Pm2Env.OutLog, p.Pm2Env.ErrLog} {
			lines := strings.Split(strings.TrimSpace(readFile(path)), "\n")
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			t.Logf("%s[%d] pid %d, %s:\n%s", p.Name, p.ID, p.PID, filepath.Base(path), strings.Join(lines, "\n"))
		}
	}
}

// procs returns the app's processes.
func (a *sessApp) procs(t *testing.T) []jproc {
	t.Helper()
	var out []jproc
	for _, p := range a.e.in(t).jlist() {
		if p.Name == a.name {
			out = append(out, p)
		}
	}
	return out
}

// pids returns the pids of the app's online workers.
func (a *sessApp) pids(t *testing.T) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for _, p := range a.procs(t) {
		if p.Pm2Env.Status == "online" {
			out[p.PID] = true
		}
	}
	return out
}

// waitServing waits until the app has exactly a.n workers, all online and listening, and each
// of them has answered /api/health through the port.
func (a *sessApp) waitServing(t *testing.T) map[int]bool {
	t.Helper()
	var pids map[int]bool
	a.e.in(t).waitFor(fmt.Sprintf("the %d workers of %s to serve", a.n, a.name), 2*time.Minute, func() bool {
		procs := a.procs(t)
		if len(procs) != a.n {
			return false
		}
		pids = map[int]bool{}
		for _, p := range procs {
			if p.Pm2Env.Status != "online" || p.Pm2Env.Corral.Cluster == nil || len(p.Pm2Env.Corral.Cluster.Listening) == 0 {
				return false
			}
			pids[p.PID] = true
		}
		seen := map[int]bool{}
		for range 3 * a.n {
			r, err := a.do("GET", "/api/health", "", "")
			if err != nil || r.status != 200 {
				return false
			}
			seen[r.pid] = true
			if len(seen) == len(pids) {
				break
			}
		}
		for pid := range pids {
			if !seen[pid] {
				return false
			}
		}
		return true
	})
	return pids
}

// sessWho is the user in an answer.
type sessWho struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// sessResp is an answer of either app: both say which worker gave it.
type sessResp struct {
	status    int
	pid       int
	worker    string
	stack     string
	user      *sessWho
	setCookie string // the connect.sid=... pair of a Set-Cookie, if any
	body      string
}

func (r sessResp) String() string {
	return fmt.Sprintf("%d from pid %d (worker %s, %s): %s", r.status, r.pid, r.worker, r.stack, strings.TrimSpace(r.body))
}

// sessClient opens a new connection for every request, so that consecutive requests go to the
// workers in turn (the daemon hands each connection to the next worker).
var sessClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext},
	Timeout:   30 * time.Second,
}

// do sends one request on a new connection. cookie is a "connect.sid=..." pair or "".
func (a *sessApp) do(method, path, cookie, body string) (sessResp, error) {
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		return sessResp{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := sessClient.Do(req)
	if err != nil {
		return sessResp{}, fmt.Errorf("%s %s on %s: %w", method, path, a.name, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return sessResp{}, fmt.Errorf("%s %s on %s: %w", method, path, a.name, err)
	}
	r := sessResp{status: res.StatusCode, body: string(raw)}
	var v struct {
		PID    int      `json:"pid"`
		Worker string   `json:"worker"`
		Stack  string   `json:"stack"`
		User   *sessWho `json:"user"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return r, fmt.Errorf("%s %s on %s: %d, not JSON: %q", method, path, a.name, res.StatusCode, raw)
	}
	r.pid, r.worker, r.stack, r.user = v.PID, v.Worker, v.Stack, v.User
	for _, c := range res.Header.Values("Set-Cookie") {
		if pair, _, _ := strings.Cut(c, ";"); strings.HasPrefix(pair, "connect.sid=") {
			r.setCookie = pair
		}
	}
	if r.pid == 0 || r.stack != a.stack {
		return r, fmt.Errorf("%s %s on %s: the answer does not say which %s worker gave it: %s", method, path, a.name, a.stack, r)
	}
	return r, nil
}

// must is do, failing the test on a transport error.
func (a *sessApp) must(t *testing.T, method, path, cookie, body string) sessResp {
	t.Helper()
	r, err := a.do(method, path, cookie, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func loginBody(u sessUser) string {
	b, _ := json.Marshal(map[string]string{"email": u.Email, "password": u.Password})
	return string(b)
}

// login logs u in (on whichever worker the next connection goes to) and returns the answer,
// whose setCookie is the session cookie.
func (a *sessApp) login(t *testing.T, u sessUser) sessResp {
	t.Helper()
	r := a.must(t, "POST", "/api/auth/login", "", loginBody(u))
	if r.status != 200 || r.user == nil || r.user.Email != u.Email || !strings.HasPrefix(r.setCookie, "connect.sid=s%3A") {
		t.Fatalf("login of %s on %s: %s (cookie %q)", u.Email, a.name, r, r.setCookie)
	}
	return r
}

// onEveryWorker sends the request until every online worker of the app has answered it
// (sequential new connections visit them in turn), checking each answer. It returns the
// answers by pid.
func (a *sessApp) onEveryWorker(t *testing.T, method, path, cookie string, check func(sessResp) error) map[int]sessResp {
	t.Helper()
	want := a.pids(t)
	got := map[int]sessResp{}
	for i := 0; len(got) < len(want); i++ {
		if i > 4*len(want)+4 {
			t.Fatalf("%s %s on %s: answers from %v, want every worker %v", method, path, a.name, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		r := a.must(t, method, path, cookie, "")
		if !want[r.pid] {
			t.Fatalf("%s %s on %s answered by pid %d, not one of its workers %v", method, path, a.name, r.pid, slices.Sorted(maps.Keys(want)))
		}
		if err := check(r); err != nil {
			t.Fatalf("%s %s on %s, worker pid %d: %v", method, path, a.name, r.pid, err)
		}
		got[r.pid] = r
	}
	return got
}

// aim makes the next new connection go to worker pid: /api/health (no session, no side
// effect) until pid answers, then once round the other workers. Turns are strict only while
// every hand-off has been answered, so each request waits for that (see checkRoundRobin).
func (a *sessApp) aim(t *testing.T, pid int) {
	t.Helper()
	var seq []int
	for {
		waitNoInFlight(t, a.e)
		r := a.must(t, "GET", "/api/health", "", "")
		seq = append(seq, r.pid)
		if r.pid == pid {
			break
		}
		if len(seq) > 3*a.n {
			t.Fatalf("%s: worker pid %d never answered: %v", a.name, pid, seq)
		}
	}
	for range a.n - 1 {
		waitNoInFlight(t, a.e)
		a.must(t, "GET", "/api/health", "", "")
	}
	waitNoInFlight(t, a.e)
}

// elsewhere sends a request to a worker other than avoid: it aims at one (see aim), and fails
// the test only if avoid answered all the same.
func (a *sessApp) elsewhere(t *testing.T, avoid int, method, path, cookie, body string) sessResp {
	t.Helper()
	target := 0
	for _, pid := range slices.Sorted(maps.Keys(a.pids(t))) {
		if pid != avoid {
			target = pid
			break
		}
	}
	if target == 0 {
		t.Fatalf("%s has no worker besides pid %d", a.name, avoid)
	}
	a.aim(t, target)
	r := a.must(t, method, path, cookie, body)
	if r.pid == avoid {
		t.Fatalf("%s %s on %s: aimed at worker pid %d through the round-robin, answered by pid %d, the one to avoid", method, path, a.name, target, r.pid)
	}
	return r
}

// isUser checks an answer of /api/me: 200 with u.
func isUser(u sessUser) func(sessResp) error {
	return func(r sessResp) error {
		if r.status != 200 || r.user == nil || r.user.ID != u.ID || r.user.Email != u.Email {
			return fmt.Errorf("want 200 with %s (id %d), got %s", u.Email, u.ID, r)
		}
		return nil
	}
}

// isAnonymous checks an answer of /api/me: 401 and no user (a 500 is a failure too).
func isAnonymous(r sessResp) error {
	if r.status != 401 || r.user != nil {
		return fmt.Errorf("want 401 without a user, got %s", r)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Cookies (express-session's format: connect.sid=encodeURIComponent("s:" + sid + "." + sig),
// sig = unpadded standard base64 of HMAC-SHA256(secret, sid))

// sidOf returns the session ID a signed cookie pair carries.
func sidOf(t *testing.T, pair string) string {
	t.Helper()
	v, err := url.PathUnescape(strings.TrimPrefix(pair, "connect.sid="))
	if err != nil || !strings.HasPrefix(v, "s:") || !strings.Contains(v, ".") {
		t.Fatalf("not a signed session cookie: %q", pair)
	}
	return v[2:strings.LastIndexByte(v, '.')]
}

// signedCookie signs sid with secret as express-session does.
func signedCookie(sid, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(sid))
	return "connect.sid=" + url.QueryEscape("s:"+sid+"."+base64.RawStdEncoding.EncodeToString(m.Sum(nil)))
}

// flipSignature changes one character of the cookie's signature.
func flipSignature(t *testing.T, pair string) string {
	t.Helper()
	v, err := url.PathUnescape(strings.TrimPrefix(pair, "connect.sid="))
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(v)
	i := len(b) - 5 // inside the 43-character signature
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return "connect.sid=" + url.QueryEscape(string(b))
}
