package integration

// Sessions across the workers of one app in corral's cluster mode: the Go reference app
// (examples/refapp, on the worker package) and the Node one (examples/refapp-node: Express,
// express-session, connect-pg-simple, unmodified), each with 4 workers behind one port and its
// sessions in PostgreSQL, "so any worker serves any request; no sticky sessions". The session
// table is the oracle alongside the HTTP answers.

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSessionsGoCluster(t *testing.T) {
	t.Parallel()
	sessionScenarios(t, "go")
}

func TestSessionsNodeCluster(t *testing.T) {
	t.Parallel()
	sessionScenarios(t, "node")
}

// sessionScenarios runs every scenario on one app with 4 workers, one after the other.
func sessionScenarios(t *testing.T, stack string) {
	d := newSessionDB(t)
	users := migrateSessionDB(t, d)
	e := newEnv(t)
	a := newStackApp(t, e, d, stack, "refapp", 4)
	startSessionApps(t, e, a)
	if !t.Run("AnyWorker", func(t *testing.T) { sessAnyWorker(t, a, d, users[0]) }) {
		return
	}
	t.Run("LoginAgain", func(t *testing.T) { sessLoginAgain(t, a, d, users[0], users[1]) })
	t.Run("Tampered", func(t *testing.T) { sessTampered(t, a, d, users[1]) })
	t.Run("ConcurrentLogins", func(t *testing.T) { sessConcurrent(t, a, d, users[2:]) })
	t.Run("WorkerKilled", func(t *testing.T) { sessWorkerKilled(t, a, d, users[0]) })
	t.Run("Reload", func(t *testing.T) { sessReload(t, a, d, users[1]) })
	t.Run("Scale", func(t *testing.T) { sessScale(t, a, d, users[2]) })
}

// sessAnyWorker: log in on one worker; /api/me on every other worker returns the same user;
// log out on a third; /api/me is 401 on all of them, with the cookie captured before.
func sessAnyWorker(t *testing.T, a *sessApp, d *sessDB, u sessUser) {
	before := d.sessionRows()
	in := a.login(t, u)
	sid := sidOf(t, in.setCookie)
	if _, owner, ok := d.session(sid); !ok || owner != u.ID {
		t.Fatalf("after login on pid %d: row for the cookie's sid found %v, passport.user %d (want %d)", in.pid, ok, owner, u.ID)
	}
	answers := a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isUser(u))
	if len(answers) != 4 {
		t.Fatalf("answers from %d workers", len(answers))
	}
	// Log out on a third worker: one that did not log the user in.
	out := a.elsewhere(t, in.pid, "POST", "/api/auth/logout", in.setCookie, "")
	if out.status != 200 {
		t.Fatalf("logout on pid %d: %s", out.pid, out)
	}
	if _, _, ok := d.session(sid); ok {
		t.Fatalf("the session row is still there after the logout on pid %d", out.pid)
	}
	a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isAnonymous)
	if n := d.sessionRows(); n != before {
		t.Fatalf("%d session rows after login and logout, %d before", n, before)
	}
}

// sessLoginAgain: a login that carries a session cookie (another user on the same browser) gets
// a new session ID on another worker; the old row is deleted and the old cookie is anonymous
// everywhere (passport's defence against session fixation).
func sessLoginAgain(t *testing.T, a *sessApp, d *sessDB, first, second sessUser) {
	in := a.login(t, first)
	old := sidOf(t, in.setCookie)
	again := a.elsewhere(t, in.pid, "POST", "/api/auth/login", in.setCookie, loginBody(second))
	if again.status != 200 || again.user == nil || again.user.ID != second.ID || again.setCookie == "" {
		t.Fatalf("second login with the first cookie: %s", again)
	}
	sid := sidOf(t, again.setCookie)
	if sid == old {
		t.Fatalf("the session ID did not change at login: %s", sid)
	}
	if _, _, ok := d.session(old); ok {
		t.Fatalf("the first session's row survived the second login")
	}
	if _, owner, ok := d.session(sid); !ok || owner != second.ID {
		t.Fatalf("the second session's row: found %v, user %d", ok, owner)
	}
	a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isAnonymous)
	a.onEveryWorker(t, "GET", "/api/me", again.setCookie, isUser(second))
	a.must(t, "POST", "/api/auth/logout", again.setCookie, "")
}

// sessTampered: a cookie whose signature was changed, an unsigned connect.sid=<sid>, one signed
// with a secret the app does not know, and a well-signed one for a sid that has no row are
// anonymous on every worker (401, never 500), create no row, and a logout with them does not
// end the real session.
func sessTampered(t *testing.T, a *sessApp, d *sessDB, u sessUser) {
	in := a.login(t, u)
	sid := sidOf(t, in.setCookie)
	sessBefore, _, _ := d.session(sid)
	rows := d.sessionRows()
	forged := map[string]string{
		"flipped signature": flipSignature(t, in.setCookie),
		"unsigned":          "connect.sid=" + sid,
		"unknown secret":    signedCookie(sid, "not-the-secret-of-these-apps-0123456789"),
		"no such session":   signedCookie("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", sessionSecret),
		"garbage":           "connect.sid=s%3A%ZZ." + sid,
	}
	for what, cookie := range forged {
		a.onEveryWorker(t, "GET", "/api/me", cookie, func(r sessResp) error {
			if err := isAnonymous(r); err != nil {
				return fmt.Errorf("%s cookie %q: %v", what, cookie, err)
			}
			return nil
		})
		if r := a.must(t, "POST", "/api/auth/logout", cookie, ""); r.status != 200 {
			t.Fatalf("logout with the %s cookie: %s", what, r)
		}
		if n := d.sessionRows(); n != rows {
			t.Fatalf("the %s cookie changed the number of session rows: %d, before %d", what, n, rows)
		}
	}
	// The real session is untouched (no rewrite, not deleted) and still works everywhere.
	if sess, _, ok := d.session(sid); !ok || sess != sessBefore {
		t.Fatalf("the real session changed: found %v\n%s\nbefore:\n%s", ok, sess, sessBefore)
	}
	a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isUser(u))
	if r := a.must(t, "POST", "/api/auth/logout", in.setCookie, ""); r.status != 200 {
		t.Fatalf("logout: %s", r)
	}
}

// sessConcurrent: 8 users log in, call /api/me and log out, 3 rounds each, all in parallel
// over the workers: every cookie's /api/me returns its own user, every login gets its own
// session, and nothing is left behind.
func sessConcurrent(t *testing.T, a *sessApp, d *sessDB, users []sessUser) {
	const rounds, calls = 3, 4
	users = users[:8]
	var (
		mu      sync.Mutex
		cookies = map[string]string{} // cookie -> user
		pids    = map[int]int{}
		fails   []string
		wg      sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		fails = append(fails, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for _, u := range users {
		wg.Go(func() {
			for round := range rounds {
				in, err := a.do("POST", "/api/auth/login", "", loginBody(u))
				if err != nil || in.status != 200 || in.user == nil || in.user.ID != u.ID || in.setCookie == "" {
					fail("%s round %d: login: %v %s", u.Email, round, err, in)
					return
				}
				mu.Lock()
				if prev, dup := cookies[in.setCookie]; dup {
					fails = append(fails, fmt.Sprintf("%s round %d got the cookie of %s", u.Email, round, prev))
				}
				cookies[in.setCookie] = u.Email
				pids[in.pid]++
				mu.Unlock()
				for i := range calls {
					r, err := a.do("GET", "/api/me", in.setCookie, "")
					if err == nil {
						err = isUser(u)(r)
					}
					if err != nil {
						fail("%s round %d call %d: %v", u.Email, round, i, err)
						return
					}
					mu.Lock()
					pids[r.pid]++
					mu.Unlock()
				}
				r, err := a.do("POST", "/api/auth/logout", in.setCookie, "")
				if err != nil || r.status != 200 {
					fail("%s round %d: logout: %v %s", u.Email, round, err, r)
					return
				}
				if r, err := a.do("GET", "/api/me", in.setCookie, ""); err != nil || isAnonymous(r) != nil {
					fail("%s round %d: /api/me after logout: %v %s", u.Email, round, err, r)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	if len(cookies) != len(users)*rounds {
		t.Errorf("%d distinct cookies for %d logins", len(cookies), len(users)*rounds)
	}
	if len(pids) < 2 {
		t.Errorf("the requests did not spread over the workers: %v", pids)
	}
	var ids []int64
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	if n := d.sessionsOf(ids); n != 0 {
		t.Errorf("%d session rows left for users who all logged out", n)
	}
}

// sessWorkerKilled: kill -9 of the worker that logged the user in; corral replaces it, and the
// session works on the replacement (and everywhere else).
func sessWorkerKilled(t *testing.T, a *sessApp, d *sessDB, u sessUser) {
	in := a.login(t, u)
	var victim jproc
	for _, p := range a.procs(t) {
		if p.PID == in.pid {
			victim = p
		}
	}
	if victim.PID == 0 {
		t.Fatalf("no process of %s has pid %d", a.name, in.pid)
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var replacement int
	a.e.in(t).waitFor("the killed worker to be replaced", time.Minute, func() bool {
		p := a.e.in(t).proc(victim.ID)
		replacement = p.PID
		return p.Pm2Env.Status == "online" && p.PID != victim.PID && p.PID > 0
	})
	pids := a.waitServing(t)
	if !pids[replacement] || pids[victim.PID] {
		t.Fatalf("workers %v: want the replacement %d and not the killed %d", slices.Sorted(maps.Keys(pids)), replacement, victim.PID)
	}
	got := a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isUser(u))
	if _, ok := got[replacement]; !ok {
		t.Fatalf("the replacement pid %d did not answer: %v", replacement, slices.Sorted(maps.Keys(got)))
	}
	if _, owner, ok := d.session(sidOf(t, in.setCookie)); !ok || owner != u.ID {
		t.Fatalf("session row after the crash: found %v, user %d", ok, owner)
	}
	a.must(t, "POST", "/api/auth/logout", in.setCookie, "")
}

// sessReload: `corral reload` replaces every worker while a client keeps calling /api/me with
// its cookie: every call answers 200 with the user, and the session works on every new worker.
func sessReload(t *testing.T, a *sessApp, d *sessDB, u sessUser) {
	in := a.login(t, u)
	before := a.pids(t)
	var (
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
		calls int
		fails []string
		seen  = map[int]bool{}
	)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := a.do("GET", "/api/me", in.setCookie, "")
				if err == nil {
					err = isUser(u)(r)
				}
				mu.Lock()
				calls++
				if err != nil {
					fails = append(fails, err.Error())
				} else {
					seen[r.pid] = true
				}
				mu.Unlock()
			}
		})
	}
	out := a.e.in(t).ok("reload", a.name)
	close(stop)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d of %d calls of /api/me failed during the reload, first: %s\nreload:\n%s", len(fails), calls, fails[0], out)
	}
	after := a.waitServing(t)
	for pid := range after {
		if before[pid] {
			t.Fatalf("worker pid %d was not replaced: before %v, after %v", pid, slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
		}
	}
	got := a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isUser(u))
	for pid := range got {
		if !after[pid] {
			t.Fatalf("answer from pid %d, not a new worker %v", pid, slices.Sorted(maps.Keys(after)))
		}
	}
	t.Logf("%d calls during the reload, answered by %d workers", calls, len(seen))
	if _, owner, ok := d.session(sidOf(t, in.setCookie)); !ok || owner != u.ID {
		t.Fatalf("session row after the reload: found %v, user %d", ok, owner)
	}
	a.must(t, "POST", "/api/auth/logout", in.setCookie, "")
}

// sessScale: `corral scale app 1`, then `scale app 4`: the session works on the one worker
// left, then on each of the four.
func sessScale(t *testing.T, a *sessApp, d *sessDB, u sessUser) {
	in := a.login(t, u)
	a.e.in(t).ok("scale", a.name, "1")
	a.n = 1
	one := a.waitServing(t)
	for range 3 {
		r := a.must(t, "GET", "/api/me", in.setCookie, "")
		if err := isUser(u)(r); err != nil || !one[r.pid] {
			t.Fatalf("with one worker %v: %v (pid %d)", slices.Sorted(maps.Keys(one)), err, r.pid)
		}
	}
	a.e.in(t).ok("scale", a.name, strconv.Itoa(4))
	a.n = 4
	four := a.waitServing(t)
	got := a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isUser(u))
	if len(got) != 4 || len(four) != 4 {
		t.Fatalf("after scale 4: workers %v, answers from %v", slices.Sorted(maps.Keys(four)), slices.Sorted(maps.Keys(got)))
	}
	if r := a.must(t, "POST", "/api/auth/logout", in.setCookie, ""); r.status != 200 {
		t.Fatalf("logout: %s", r)
	}
	a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isAnonymous)
	if n := d.sessionRows(); n != 0 {
		t.Errorf("%d session rows left after every scenario logged out", n)
	}
}
