// corral's reference web app (Go): one worker per usable CPU core behind port 5000.
//
//   go run ./cmd/corral run examples/refapp/ecosystem.config.js     (from the repository root)
//
// Each worker runs ./run.sh, which builds the app (one worker at a time, under a lock, so they
// do not all compile at once) and execs it. The first build on a cold Go cache compiles pgx and
// the pure-Go SQLite: a minute or more, hence the long listen_timeout. The app listens through
// corral's worker package (package github.com/corral-pm/corral/worker), so every worker serves
// port 5000, and stops gracefully on `corral reload/stop/scale` and Ctrl-C.
//
// Without DATABASE_URL the workers share the SQLite file ./refapp.db (the demo's default), and
// the demo user demo@example.com / demo-password is created. For PostgreSQL, shared with the
// Node app, add to env:
//   DATABASE_URL: 'postgres://user:pass@host/db', SESSION_SECRET: '<the Node app's secret>'
// and see README.md for the rest (SESSION_SECRETS, SESSION_MAX_AGE, DB_POOL_TOTAL, WORKERS...).
module.exports = {
  apps: [{
    name: 'refapp',
    cwd: __dirname,
    script: './run.sh',
    interpreter: 'none',
    instances: 'max',
    exec_mode: 'cluster',
    env: { PORT: 5000 },
    listen_timeout: 900000, // ms: room for the first build (the workers wait for each other)
    kill_timeout: 10000, // ms: the app drains in-flight requests for up to 8 s on SIGINT/SIGTERM
    // `corral verify refapp`: the production checklist, with the demo user's session.
    verify: {
      path: '/api/health',
      login: { path: '/api/auth/login', body: { email: 'demo@example.com', password: 'demo-password' } },
      check: { path: '/api/me', status: 200, logged_out_status: 401 },
      logout: { path: '/api/auth/logout' },
    },
  }],
};
