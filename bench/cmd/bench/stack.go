package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The http scenario's second app (-http-app stack): the deployment's own stack, Express 5 with
// express-session and connect-pg-simple, sessions in PostgreSQL. Every measured request carries
// a logged-in session cookie, so each one reads the session from PostgreSQL (and touches it), as
// the deployment's requests do: a saving that only shows on a bare server is not its users'.
// With -http-app stack-visitor the requests are an anonymous visitor's instead (GET /welcome, no
// cookie): the session middleware runs but, with saveUninitialized false, never calls the
// store; that is what `wrk` without a cookie measures on this stack.

// stackAppScript is the app, written into the scenario's directory as app.js.
const stackAppScript = `// Express + express-session + connect-pg-simple, as the deployment runs it.
const express = require('express');
const session = require('express-session');
const PgSession = require('connect-pg-simple')(session);
const { Pool } = require('pg');
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
pool.on('error', (err) => console.error('pool:', err.message));
const app = express();
app.get('/', (req, res) => res.send('ok')); // readiness probes: no session
app.use(session({
  store: new PgSession({ pool, tableName: 'bench_session' }),
  secret: process.env.SESSION_SECRET, resave: false, saveUninitialized: false,
  cookie: { maxAge: 3600 * 1000 },
}));
app.post('/login', (req, res) => { req.session.user = 'bench'; res.send('ok'); });
app.get('/welcome', (req, res) => res.send(req.session.user ? 'welcome back' : 'welcome, visitor'));
app.get('/me', (req, res) => {
  if (!req.session.user) return res.status(401).send('who?');
  res.json({ user: req.session.user, pid: process.pid });
});
app.listen(process.env.PORT);
`

// stackPackages are what npm installs for it.
var stackPackages = []string{"express@5", "express-session@1", "connect-pg-simple@10", "pg@8"}

// stackApp is the stack's set-up for one bench run.
type stackApp struct {
	env    []string // the app's environment: DATABASE_URL, SESSION_SECRET
	cookie string   // the logged-in session, once login ran
	// visitor: the load is anonymous visitors (GET /welcome, no cookie), not the logged-in
	// session.
	visitor bool
}

// setupStack installs the app's packages (into -cache when given, reused across runs), links
// them into dir, and makes sure the bench's database exists.
func setupStack(ctx context.Context, b *Bench, dir, cache, pgURL string) (*stackApp, error) {
	pkgDir := filepath.Join(b.Work, "stack-packages")
	if cache != "" {
		pkgDir = filepath.Join(cache, "stack-packages")
	}
	if err := installStackPackages(ctx, pkgDir, b.Log.Printf); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join(pkgDir, "node_modules"), filepath.Join(dir, "node_modules")); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	dbURL, err := ensureBenchDB(ctx, pgURL, "corral_bench")
	if err != nil {
		return nil, fmt.Errorf("the stack app's database (PostgreSQL at %s; -pg sets another): %w", pgURL, err)
	}
	return &stackApp{env: []string{"DATABASE_URL=" + dbURL, "SESSION_SECRET=corral-bench-secret"}}, nil
}

func installStackPackages(ctx context.Context, dir string, logf func(string, ...any)) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "connect-pg-simple", "package.json")); err == nil {
		logf("reusing the stack app's packages in %s", dir)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pkg := filepath.Join(dir, "package.json")
	if err := os.WriteFile(pkg, []byte(`{"private": true, "description": "the deployment's stack, for corral's benchmark"}`+"\n"), 0o644); err != nil {
		return err
	}
	logf("installing %s with npm into %s", strings.Join(stackPackages, " "), dir)
	cmd := exec.CommandContext(ctx, "npm", append([]string{"install", "--no-audit", "--no-fund", "--prefix", dir}, stackPackages...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install %s: %w\n%s", strings.Join(stackPackages, " "), err, out)
	}
	return nil
}

// ensureBenchDB creates database name on the server of adminURL if it is missing, and returns
// the URL of that database.
func ensureBenchDB(ctx context.Context, adminURL, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", err
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	if u.User == nil {
		// libpq and pgx default to the OS user; node-postgres wants it named.
		u.User = url.User(conn.Config().User)
	}
	// The session table, made here once: connect-pg-simple's createTableIfMissing in every
	// worker at once races itself (duplicate type name).
	db, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_session (
		sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)`); err != nil {
		return "", fmt.Errorf("create the session table: %w", err)
	}
	if _, err := db.Exec(ctx, `CREATE INDEX IF NOT EXISTS bench_session_expire ON bench_session (expire)`); err != nil {
		return "", fmt.Errorf("index the session table: %w", err)
	}
	return u.String(), nil
}

// login makes a session (POST /login) and keeps its cookie for the load. Sessions live in
// PostgreSQL, so one login serves every contender.
func (s *stackApp) login(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/login", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("log in to the stack app: %w", err)
	}
	// Read the answer to its end: express-session holds back the body's last byte until the
	// session is saved, so the headers alone do not mean the session exists yet.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "connect.sid" {
			s.cookie = c.Name + "=" + c.Value
		}
	}
	if s.cookie == "" {
		return fmt.Errorf("log in to the stack app: %s and no session cookie", resp.Status)
	}
	// The session must be in the database: the load's every request reads it.
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/me", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", s.cookie)
	if resp, err = (&http.Client{Timeout: 10 * time.Second}).Do(req); err != nil {
		return fmt.Errorf("check the stack app's session: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.cookie = ""
		return fmt.Errorf("the stack app does not know its session after login: GET /me: %s: %s", resp.Status, body)
	}
	return nil
}

// load completes a load's configuration: the session's page, with the cookie, or the visitors'
// page without one.
func (s *stackApp) load(cfg LoadConfig) LoadConfig {
	if s == nil {
		return cfg
	}
	if s.visitor {
		cfg.Path = "/welcome"
		return cfg
	}
	cfg.Path = "/me"
	if s.cookie != "" {
		cfg.Headers = []string{"Cookie: " + s.cookie}
	}
	return cfg
}
