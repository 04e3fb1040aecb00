package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/corral-pm/corral/examples/refapp/internal/session"
	"github.com/corral-pm/corral/examples/refapp/internal/store"
	"github.com/corral-pm/corral/internal/pgtest"
)

const secret = "a-test-secret-of-at-least-32-bytes!"

// clock is the app clock all instances share (connect-pg-simple only ever uses the app's).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type backend interface {
	Backend
	Migrate(ctx context.Context) error
	Seed(ctx context.Context, seeds []store.Seed, cost int) (store.SeedResult, error)
	Close()
}

// env is one shared database and the workers serving it.
type env struct {
	t     *testing.T
	kind  string
	clock *clock
	open  func() backend
	raw   func(sid string) (text string, expire int64, ok bool)
	count func() int
	users map[string]int64
}

type worker struct {
	url string
	sm  *session.Manager
	b   backend
}

func forEach(t *testing.T, test func(t *testing.T, e *env)) {
	t.Run("postgres", func(t *testing.T) { test(t, newPGEnv(t)) })
	t.Run("sqlite", func(t *testing.T) { test(t, newSQLiteEnv(t)) })
}

func newPGEnv(t *testing.T) *env {
	dsn := pgtest.DSN(t, pgtest.NewDB(t))
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	n := 0
	e := &env{t: t, kind: "postgres"}
	e.open = func() backend {
		s, err := store.OpenPG(store.PGOptions{URL: dsn, AppName: "refapp-w" + string(rune('0'+n)), MaxConns: 3})
		n++
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	e.raw = func(sid string) (string, int64, bool) {
		var text string
		var exp float64
		err := admin.QueryRow(context.Background(), `SELECT sess::text, extract(epoch FROM expire::timestamptz) FROM "session" WHERE sid = $1`, sid).Scan(&text, &exp)
		if err == pgx.ErrNoRows {
			return "", 0, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return text, int64(exp), true
	}
	e.count = func() int {
		var n int
		if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM "session"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return e.init()
}

func newSQLiteEnv(t *testing.T) *env {
	path := filepath.Join(t.TempDir(), "refapp.db")
	e := &env{t: t, kind: "sqlite"}
	e.open = func() backend {
		s, err := store.OpenSQLite(context.Background(), path, 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	admin := e.open().(*store.SQLite)
	e.raw = func(sid string) (string, int64, bool) {
		var text string
		var exp int64
		if err := admin.DB().QueryRow(`SELECT sess, expire FROM "session" WHERE sid = ?`, sid).Scan(&text, &exp); err != nil {
			return "", 0, false
		}
		return text, exp, true
	}
	e.count = func() int {
		var n int
		if err := admin.DB().QueryRow(`SELECT count(*) FROM "session"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return e.init()
}

// init migrates and seeds from two instances at once, as N workers starting together do.
func (e *env) init() *env {
	e.clock = &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 678_900_000, time.UTC)}
	seeds := []store.Seed{{Email: "demo@example.com", Password: "demo-password"}, {Email: "a@x", Password: "pw1"}, {Email: "b@x", Password: "pw2"}}
	var wg sync.WaitGroup
	for range 2 {
		b := e.open()
		wg.Go(func() {
			if err := b.Migrate(context.Background()); err != nil {
				e.t.Error(err)
				return
			}
			if _, err := b.Seed(context.Background(), seeds, 4); err != nil {
				e.t.Error(err)
			}
		})
	}
	wg.Wait()
	if e.t.Failed() {
		e.t.FailNow()
	}
	e.users = map[string]int64{}
	b := e.open()
	for _, s := range seeds {
		u, _, ok, err := b.UserByEmail(context.Background(), s.Email)
		if err != nil || !ok {
			e.t.Fatal(err)
		}
		e.users[s.Email] = u.ID
	}
	return e
}

// worker starts one app instance (own pool, own session manager) on the shared database.
func (e *env) worker(opts ...func(*session.Options)) *worker {
	b := e.open()
	o := session.Options{Secrets: []string{secret}, MaxAge: 24 * time.Hour, Now: e.clock.Now}
	for _, f := range opts {
		f(&o)
	}
	sm, err := session.NewManager(b, o)
	if err != nil {
		e.t.Fatal(err)
	}
	a := New(Config{Worker: "7", PID: 4242, BcryptCost: 4}, b, sm)
	srv := httptest.NewServer(a.Handler())
	e.t.Cleanup(srv.Close)
	return &worker{url: srv.URL, sm: sm, b: b}
}

type resp struct {
	status    int
	setCookie []string
	body      map[string]any
}

// cookie returns the connect.sid pair from the response's Set-Cookie ("" if none).
func (r resp) cookie() string {
	for _, sc := range r.setCookie {
		if strings.HasPrefix(sc, "connect.sid=") {
			pair, _, _ := strings.Cut(sc, ";")
			return pair
		}
	}
	return ""
}

func do(t *testing.T, method, u, cookie, contentType, body string) resp {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, setCookie: res.Header.Values("Set-Cookie")}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON", method, u, raw)
		}
	}
	return r
}

func (w *worker) login(t *testing.T, cookie, email, password string) resp {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return do(t, "POST", w.url+"/api/auth/login", cookie, "application/json", string(b))
}
func (w *worker) me(t *testing.T, cookie string) resp {
	t.Helper()
	return do(t, "GET", w.url+"/api/me", cookie, "", "")
}
func (w *worker) logout(t *testing.T, cookie string) resp {
	t.Helper()
	return do(t, "POST", w.url+"/api/auth/logout", cookie, "", "")
}

// sidOf is the session ID in a "connect.sid=<wire>" pair.
func sidOf(t *testing.T, pair string) string {
	t.Helper()
	v, ok := session.ParseCookie(pair, "connect.sid")
	if !ok || !strings.HasPrefix(v, "s:") {
		t.Fatalf("no signed connect.sid in %q", pair)
	}
	sid, ok := session.Unsign(v[2:], []string{secret})
	if !ok {
		t.Fatalf("cookie %q does not verify", pair)
	}
	return sid
}

func userOf(r resp) float64 {
	u, _ := r.body["user"].(map[string]any)
	id, _ := u["id"].(float64)
	return id
}

var setCookieRE = regexp.MustCompile(`^connect\.sid=s%3A[A-Za-z0-9_-]{32}\.[A-Za-z0-9%]{43,}; Path=/; Expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT; HttpOnly$`)

func TestLoginMeLogoutAcrossWorkers(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w1, w2, w3 := e.worker(), e.worker(), e.worker()
		r := w1.login(t, "", "demo@example.com", "demo-password")
		if r.status != 200 || userOf(r) != float64(e.users["demo@example.com"]) {
			t.Fatalf("login: %d %v", r.status, r.body)
		}
		if len(r.setCookie) != 1 || !setCookieRE.MatchString(r.setCookie[0]) {
			t.Fatalf("login Set-Cookie %q", r.setCookie)
		}
		if want := "Expires=Thu, 03 Jan 2030 03:04:05 GMT"; !strings.Contains(r.setCookie[0], want) {
			t.Errorf("Set-Cookie %q: want %s (now + maxAge)", r.setCookie[0], want)
		}
		cookie := r.cookie()
		sid := sidOf(t, cookie)

		// The row is exactly what express-session + connect-pg-simple + passport write.
		text, exp, ok := e.raw(sid)
		want := `{"cookie":{"originalMaxAge":86400000,"expires":"2030-01-03T03:04:05.678Z","httpOnly":true,"path":"/"},"passport":{"user":` +
			jsonInt(e.users["demo@example.com"]) + `}}`
		if !ok || text != want {
			t.Errorf("stored session\n got %s\nwant %s", text, want)
		}
		if wantExp := time.Date(2030, 1, 3, 3, 4, 6, 0, time.UTC).Unix(); exp != wantExp {
			t.Errorf("expire = %d, want ceil((now_ms + maxAge)/1000) = %d", exp, wantExp)
		}

		// Another worker serves the next request.
		r = w2.me(t, cookie)
		if r.status != 200 || userOf(r) != float64(e.users["demo@example.com"]) {
			t.Fatalf("me on worker 2: %d %v", r.status, r.body)
		}
		if len(r.setCookie) != 0 {
			t.Errorf("me set a cookie: %q", r.setCookie)
		}
		if r.body["user"].(map[string]any)["email"] != "demo@example.com" {
			t.Errorf("me body %v", r.body)
		}
		// Every answer says who gave it (the Node app's do too): a client behind corral's
		// round-robin sees which worker served it.
		for _, r := range []resp{r, w1.me(t, ""), w1.login(t, "", "demo@example.com", "wrong")} {
			if r.body["worker"] != "7" || r.body["pid"] != float64(4242) || r.body["stack"] != "go" {
				t.Errorf("%d answer without worker, pid and stack: %v", r.status, r.body)
			}
		}

		// Logout on a third.
		r = w3.logout(t, cookie)
		if r.status != 200 {
			t.Fatalf("logout: %d %v", r.status, r.body)
		}
		if len(r.setCookie) != 1 || r.setCookie[0] != "connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT" {
			t.Errorf("logout Set-Cookie %q", r.setCookie)
		}
		if _, _, ok := e.raw(sid); ok {
			t.Error("logout left the row")
		}
		for i, w := range []*worker{w1, w2, w3} {
			if r := w.me(t, cookie); r.status != 401 {
				t.Errorf("me on worker %d after logout: %d", i+1, r.status)
			}
		}
		if n := e.count(); n != 0 {
			t.Errorf("%d rows left", n)
		}
		// Logging out again (or anonymously) is fine.
		if r := w1.logout(t, cookie); r.status != 200 {
			t.Errorf("second logout: %d", r.status)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestLoginInputsAndBadCredentials(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w := e.worker()
		form := url.Values{"email": {"a@x"}, "password": {"pw1"}}.Encode()
		r := do(t, "POST", w.url+"/api/auth/login", "", "application/x-www-form-urlencoded", form)
		if r.status != 200 || userOf(r) != float64(e.users["a@x"]) || r.cookie() == "" {
			t.Errorf("form login: %d %v %q", r.status, r.body, r.setCookie)
		}
		before := e.count()
		bad := []struct {
			name, ct, body string
			status         int
		}{
			{"wrong password", "application/json", `{"email":"a@x","password":"nope"}`, 401},
			{"another user's password", "application/json", `{"email":"a@x","password":"pw2"}`, 401},
			{"unknown email", "application/json", `{"email":"zz@x","password":"pw1"}`, 401},
			{"missing password", "application/json", `{"email":"a@x"}`, 400},
			{"not JSON", "application/json", `{`, 400},
			{"no content type", "", `email=a@x&password=pw1`, 400},
		}
		for _, c := range bad {
			r := do(t, "POST", w.url+"/api/auth/login", "", c.ct, c.body)
			if r.status != c.status || len(r.setCookie) != 0 {
				t.Errorf("%s: %d %q; want %d and no cookie", c.name, r.status, r.setCookie, c.status)
			}
		}
		if n := e.count(); n != before {
			t.Errorf("failed logins created rows: %d → %d", before, n)
		}
		if r := do(t, "GET", w.url+"/api/auth/login", "", "", ""); r.status != 405 {
			t.Errorf("GET login: %d", r.status)
		}
	})
}

func TestLoginRegeneratesSession(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w1, w2 := e.worker(), e.worker()
		first := w1.login(t, "", "a@x", "pw1").cookie()
		// Logging in again (here as another user) with the old cookie: new sid, old row deleted.
		r := w2.login(t, first, "b@x", "pw2")
		second := r.cookie()
		if r.status != 200 || second == "" || sidOf(t, first) == sidOf(t, second) {
			t.Fatalf("re-login: %d %q", r.status, r.setCookie)
		}
		if _, _, ok := e.raw(sidOf(t, first)); ok {
			t.Error("the pre-login row is still there")
		}
		if r := w1.me(t, first); r.status != 401 {
			t.Errorf("old cookie after re-login: %d", r.status)
		}
		if r := w1.me(t, second); r.status != 200 || userOf(r) != float64(e.users["b@x"]) {
			t.Errorf("new cookie: %d %v", r.status, r.body)
		}
		// Two browsers, one user: two sessions; logging one out leaves the other.
		other := w2.login(t, "", "b@x", "pw2").cookie()
		if r := w1.logout(t, second); r.status != 200 {
			t.Fatal(r.status)
		}
		if r := w2.me(t, other); r.status != 200 {
			t.Errorf("the other browser's session after logout: %d", r.status)
		}
	})
}

func TestTamperedAndForeignCookiesAreAnonymous(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w := e.worker()
		good := w.login(t, "", "a@x", "pw1").cookie()
		sid := sidOf(t, good)
		rows := e.count()
		wire := strings.TrimPrefix(good, "connect.sid=")
		flip := func(s string, i int) string {
			c := s[i]
			if c == 'A' {
				c = 'B'
			} else {
				c = 'A'
			}
			return s[:i] + string(c) + s[i+1:]
		}
		cases := map[string]string{
			"flipped signature":   "connect.sid=" + flip(wire, len(wire)-3),
			"flipped sid":         "connect.sid=" + flip(wire, 5),
			"unsigned sid":        "connect.sid=" + sid,
			"s: without sig":      "connect.sid=s%3A" + sid,
			"unknown secret":      "connect.sid=" + session.EncodeURIComponent(session.SignedValue(sid, "another secret")),
			"garbage":             "connect.sid=%%%",
			"other cookie name":   "sid=" + wire,
			"very long":           "connect.sid=s%3A" + strings.Repeat("x", 3000) + ".sig",
			"forged sid, own sig": "connect.sid=" + session.EncodeURIComponent(session.SignedValue("forged", "guess")),
		}
		for name, c := range cases {
			if r := w.me(t, c); r.status != 401 || len(r.setCookie) != 0 {
				t.Errorf("%s: me %d %q; want 401, no cookie", name, r.status, r.setCookie)
			}
			if r := w.logout(t, c); r.status != 200 {
				t.Errorf("%s: logout %d", name, r.status)
			}
		}
		if _, _, ok := e.raw(sid); !ok || e.count() != rows {
			t.Error("a tampered cookie's logout deleted the real session, or rows were created")
		}
		if r := w.me(t, good); r.status != 200 {
			t.Errorf("the real cookie: %d", r.status)
		}
	})
}

func TestSecretRotation(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		const oldS, newS = "old-secret-old-secret-old-secret!", "new-secret-new-secret-new-secret!"
		before := e.worker(func(o *session.Options) { o.Secrets = []string{oldS} })
		rotated := e.worker(func(o *session.Options) { o.Secrets = []string{newS, oldS} })
		after := e.worker(func(o *session.Options) { o.Secrets = []string{newS} })

		oldCookie := before.login(t, "", "a@x", "pw1").cookie()
		if r := rotated.me(t, oldCookie); r.status != 200 {
			t.Fatalf("cookie signed with the old secret, rotated worker: %d", r.status)
		}
		if r := after.me(t, oldCookie); r.status != 401 {
			t.Errorf("old secret dropped: %d", r.status)
		}
		// A re-issued cookie is signed with the first secret.
		r := rotated.login(t, oldCookie, "a@x", "pw1")
		v, _ := session.ParseCookie(r.cookie(), "connect.sid")
		if _, ok := session.Unsign(strings.TrimPrefix(v, "s:"), []string{newS}); !ok {
			t.Errorf("re-issued cookie %q not signed with the first secret", v)
		}
		if r := after.me(t, r.cookie()); r.status != 200 {
			t.Errorf("new cookie on a new-secret worker: %d", r.status)
		}
	})
}

func TestReadOnlyRequestsOnlyTouch(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ws := []*worker{e.worker(), e.worker(), e.worker()}
		cookie := ws[0].login(t, "", "a@x", "pw1").cookie()
		sid := sidOf(t, cookie)
		text0, exp0, _ := e.raw(sid)
		e.clock.Advance(time.Hour)
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				if r := ws[i%3].me(t, cookie); r.status != 200 || len(r.setCookie) != 0 {
					t.Errorf("me: %d %q", r.status, r.setCookie)
				}
			})
		}
		wg.Wait()
		text, exp, ok := e.raw(sid)
		if !ok || text != text0 {
			t.Errorf("read-only requests rewrote the session:\n%s\n%s", text0, text)
		}
		// expire slid to ceil((now_ms + originalMaxAge)/1000), now one hour later.
		if want := session.ExpireSecs(&session.Cookie{OriginalMaxAge: ptr(86400000.0)}, e.clock.Now(), 0); exp != want || exp != exp0+3600 {
			t.Errorf("expire = %d, want %d (was %d)", exp, want, exp0)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestExpirySlidesAndEnds(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		short := func(o *session.Options) { o.MaxAge = 2 * time.Second }
		w1, w2 := e.worker(short), e.worker(short)
		cookie := w1.login(t, "", "a@x", "pw1").cookie()
		for i := range 4 { // every 1.5 s for 6 s: each touch keeps it alive
			e.clock.Advance(1500 * time.Millisecond)
			if r := []*worker{w1, w2}[i%2].me(t, cookie); r.status != 200 {
				t.Fatalf("me after %d × 1.5 s: %d", i+1, r.status)
			}
			_, exp, _ := e.raw(sidOf(t, cookie))
			if want := session.NowSecs(e.clock.Now().Add(2 * time.Second)); exp != want {
				t.Errorf("expire %d, want %d", exp, want)
			}
		}
		e.clock.Advance(3 * time.Second) // idle past maxAge
		for i, w := range []*worker{w1, w2} {
			if r := w.me(t, cookie); r.status != 401 {
				t.Errorf("worker %d after idle: %d", i+1, r.status)
			}
		}
		// The expired row is still there until a prune deletes it.
		if n, _, err := w2.sm.Prune(context.Background()); err != nil || n != 1 || e.count() != 0 {
			t.Errorf("prune: %d %v, %d rows left", n, err, e.count())
		}
	})
}

func TestSaveCannotResurrect(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w1, w2 := e.worker(), e.worker()
		cookie := w1.login(t, "", "a@x", "pw1").cookie()
		// A slow request on worker 1 has loaded the session and is about to save a change...
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", cookie)
		s, err := w1.sm.Load(context.Background(), req)
		if err != nil || s == nil {
			t.Fatal(s, err)
		}
		s.Data.Set("flash", json.RawMessage(`{"info":["saved"]}`))
		// ...when the user logs out on worker 2.
		if r := w2.logout(t, cookie); r.status != 200 {
			t.Fatal(r.status)
		}
		ok, err := w1.sm.Save(context.Background(), httptest.NewRecorder(), s)
		if err != nil || ok {
			t.Fatalf("Save after logout = %v, %v; want false", ok, err)
		}
		if e.count() != 0 {
			t.Fatal("the logged-out session was resurrected")
		}
		if r := w1.me(t, cookie); r.status != 401 {
			t.Errorf("old cookie: %d", r.status)
		}
		// Save on a live session works, keeps the other keys, and writes the touched cookie.
		cookie = w1.login(t, "", "a@x", "pw1").cookie()
		req.Header.Set("Cookie", cookie)
		s, _ = w1.sm.Load(context.Background(), req)
		e.clock.Advance(time.Minute)
		s.Data.Set("flash", json.RawMessage(`{"info":["saved"]}`))
		rec := httptest.NewRecorder()
		if ok, err := w1.sm.Save(context.Background(), rec, s); err != nil || !ok {
			t.Fatalf("Save: %v %v", ok, err)
		}
		text, _, _ := e.raw(sidOf(t, cookie))
		if !strings.Contains(text, `"expires":"2030-01-03T03:05:05.678Z"`) || !strings.HasSuffix(text, `"passport":{"user":`+jsonInt(e.users["a@x"])+`},"flash":{"info":["saved"]}}`) {
			t.Errorf("saved text %s", text)
		}
		if rec.Header().Get("Set-Cookie") == "" {
			t.Error("a modified session with an expiry gets its cookie re-sent")
		}
	})
}

func TestHealthHasNoSessionSideEffects(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w1, w2 := e.worker(), e.worker()
		cookie := w1.login(t, "", "a@x", "pw1").cookie()
		sid := sidOf(t, cookie)
		text0, exp0, _ := e.raw(sid)
		rows := e.count()
		e.clock.Advance(time.Hour)
		for i := range 100 {
			c := ""
			if i%2 == 0 {
				c = cookie
			}
			r := do(t, "GET", []*worker{w1, w2}[i%2].url+"/api/health", c, "", "")
			if r.status != 200 || len(r.setCookie) != 0 {
				t.Fatalf("health: %d %q", r.status, r.setCookie)
			}
			if i == 0 {
				if r.body["status"] != "ok" || r.body["worker"] != "7" || r.body["pid"] != float64(4242) || r.body["db"] != e.kind {
					t.Errorf("health body %v", r.body)
				}
				pool, _ := r.body["pool"].(map[string]any)
				if _, ok := pool["max"]; !ok {
					t.Errorf("health pool stats %v", r.body["pool"])
				}
			}
		}
		text, exp, _ := e.raw(sid)
		if e.count() != rows || text != text0 || exp != exp0 {
			t.Errorf("health changed the session table: rows %d→%d, expire %d→%d", rows, e.count(), exp0, exp)
		}
	})
}

func TestDatabaseDownIs503(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w := e.worker()
		cookie := w.login(t, "", "a@x", "pw1").cookie()
		w.b.Close()
		if r := do(t, "GET", w.url+"/api/health", "", "", ""); r.status != 503 || r.body["status"] != "unavailable" {
			t.Errorf("health with the database closed: %d %v", r.status, r.body)
		}
		if r := w.me(t, cookie); r.status != 503 {
			t.Errorf("me with the database closed: %d %v", r.status, r.body)
		}
		if r := w.login(t, "", "a@x", "pw1"); r.status != 503 || len(r.setCookie) != 0 {
			t.Errorf("login with the database closed: %d %q", r.status, r.setCookie)
		}
		// Logout must not clear the cookie when the row could not be deleted.
		if r := w.logout(t, cookie); r.status != 503 || len(r.setCookie) != 0 {
			t.Errorf("logout with the database closed: %d %q", r.status, r.setCookie)
		}
	})
}

// Rows as the Node app writes them: extra keys, string user IDs, logged-out sessions, and the
// odd broken row.
func TestNodeWrittenRows(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w := e.worker()
		ctx := context.Background()
		nowSecs := session.NowSecs(e.clock.Now())
		id := jsonInt(e.users["b@x"])
		insert := func(sid, text string) string {
			if ok, err := w.b.Insert(ctx, sid, text, nowSecs+60); err != nil || !ok {
				t.Fatal(ok, err)
			}
			return "connect.sid=" + session.EncodeURIComponent(session.SignedValue(sid, secret))
		}
		node := `{"cookie":{"originalMaxAge":86400000,"expires":"2030-01-03T03:04:00.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":` + id + `},"flash":{"error":["<x> & y"]},"csrfSecret":"s3"}`
		c := insert("node-sid-1", node)
		e.clock.Advance(time.Minute)
		if r := w.me(t, c); r.status != 200 || userOf(r) != float64(e.users["b@x"]) {
			t.Errorf("Node row: %d %v", r.status, r.body)
		}
		if text, exp, _ := e.raw("node-sid-1"); text != node || exp != session.NowSecs(e.clock.Now().Add(24*time.Hour)) {
			t.Errorf("Node row after me: %s %d", text, exp)
		}

		c = insert("node-sid-2", `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"passport":{"user":"`+id+`"}}`)
		if r := w.me(t, c); r.status != 200 {
			t.Errorf("string user id, no maxAge: %d", r.status)
		}
		if _, exp, _ := e.raw("node-sid-2"); exp != session.NowSecs(e.clock.Now())+86400 {
			t.Errorf("no maxAge: expire %d, want now + ttl", exp)
		}

		// passport's logOut leaves "passport":{}: a session, but not logged in. It is touched.
		c = insert("node-sid-3", `{"cookie":{"originalMaxAge":1000,"expires":"2030-01-01T00:00:00.000Z","httpOnly":true,"path":"/"},"passport":{}}`)
		if r := w.me(t, c); r.status != 401 {
			t.Errorf("logged-out Node session: %d", r.status)
		}
		if _, exp, _ := e.raw("node-sid-3"); exp != session.ExpireSecs(&session.Cookie{OriginalMaxAge: ptr(1000.0)}, e.clock.Now(), 0) {
			t.Errorf("logged-out Node session not touched: %d", exp)
		}

		// JSON that does not parse (only SQLite can hold it; PostgreSQL's json type refuses
		// it): connect-pg-simple destroys such a row; so do we.
		if e.kind == "sqlite" {
			c = insert("broken", `{"cookie":`)
			if r := w.me(t, c); r.status != 401 {
				t.Errorf("broken row: %d", r.status)
			}
			if _, _, ok := e.raw("broken"); ok {
				t.Error("broken row kept")
			}
		}
		// No cookie object (Node would answer 500 forever): anonymous, row left alone.
		c = insert("nocookie", `{"passport":{"user":`+id+`}}`)
		if r := w.me(t, c); r.status != 401 {
			t.Errorf("row without cookie: %d", r.status)
		}
		// A user that no longer exists.
		c = insert("ghost", `{"cookie":{"originalMaxAge":1000,"expires":null},"passport":{"user":99999}}`)
		if r := w.me(t, c); r.status != 401 {
			t.Errorf("deleted user: %d", r.status)
		}
	})
}

func TestRollingResendsCookie(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		w := e.worker(func(o *session.Options) { o.Rolling = true })
		cookie := w.login(t, "", "a@x", "pw1").cookie()
		e.clock.Advance(time.Hour)
		r := w.me(t, cookie)
		if r.status != 200 || len(r.setCookie) != 1 || !strings.Contains(r.setCookie[0], "Expires=Thu, 03 Jan 2030 04:04:05 GMT") {
			t.Errorf("rolling me: %d %q", r.status, r.setCookie)
		}
		if r.cookie() != cookie {
			t.Errorf("rolling changed the cookie value: %q → %q", cookie, r.cookie())
		}
	})
}
