package integration

// One user, two stacks: the Go reference app and the Node one (Express, express-session,
// connect-pg-simple), both run by corral in cluster mode at once, on two ports, against one
// database with the same secret. A cookie from either works on the other, and a logout on
// either ends the session on both.

import (
	"testing"
)

func TestSessionsCrossStack(t *testing.T) {
	t.Parallel()
	d := newSessionDB(t)
	users := migrateSessionDB(t, d)
	e := newEnv(t)
	goApp := newGoApp(t, e, d, "refapp-go", 2)
	nodeApp := newNodeApp(t, e, d, "refapp-node", 2)
	startSessionApps(t, e, goApp, nodeApp)
	both := []*sessApp{goApp, nodeApp}

	for _, c := range []struct {
		name           string
		issuer, logout *sessApp
		u              sessUser
	}{
		{"NodeCookieOnGo", nodeApp, goApp, users[0]},
		{"GoCookieOnNode", goApp, nodeApp, users[1]},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.issuer.login(t, c.u)
			sid := sidOf(t, in.setCookie)
			sess, owner, ok := d.session(sid)
			if !ok || owner != c.u.ID {
				t.Fatalf("the %s login wrote no row for user %d: found %v, user %d", c.issuer.stack, c.u.ID, ok, owner)
			}
			// Every worker of both apps knows the user. Neither rewrites the session JSON
			// (resave: false; only expire moves).
			for _, a := range both {
				a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isUser(c.u))
			}
			if now, _, ok := d.session(sid); !ok || now != sess {
				t.Fatalf("reading the session rewrote it:\n%s\nwas written by %s as:\n%s", now, c.issuer.stack, sess)
			}
			// Logout on the other stack ends it on both.
			if r := c.logout.must(t, "POST", "/api/auth/logout", in.setCookie, ""); r.status != 200 {
				t.Fatalf("logout on %s: %s", c.logout.stack, r)
			}
			if _, _, ok := d.session(sid); ok {
				t.Fatalf("the row is still there after the logout on %s", c.logout.stack)
			}
			for _, a := range both {
				a.onEveryWorker(t, "GET", "/api/me", in.setCookie, isAnonymous)
			}
		})
	}

	// Both at once: a user logged in on each stack, then each session used on the other one.
	t.Run("Interleaved", func(t *testing.T) {
		fromNode := nodeApp.login(t, users[2])
		fromGo := goApp.login(t, users[3])
		for _, a := range both {
			a.onEveryWorker(t, "GET", "/api/me", fromNode.setCookie, isUser(users[2]))
			a.onEveryWorker(t, "GET", "/api/me", fromGo.setCookie, isUser(users[3]))
		}
		nodeApp.must(t, "POST", "/api/auth/logout", fromNode.setCookie, "")
		for _, a := range both {
			a.onEveryWorker(t, "GET", "/api/me", fromNode.setCookie, isAnonymous)
			a.onEveryWorker(t, "GET", "/api/me", fromGo.setCookie, isUser(users[3]))
		}
		goApp.must(t, "POST", "/api/auth/logout", fromGo.setCookie, "")
		for _, a := range both {
			a.onEveryWorker(t, "GET", "/api/me", fromGo.setCookie, isAnonymous)
		}
		if n := d.sessionRows(); n != 0 {
			t.Fatalf("%d session rows left", n)
		}
	})
}
