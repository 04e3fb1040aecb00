// corral's reference web app (Go): one worker per usable CPU core behind port 5000.
//
//   go run ./cmd/corral run examples/refapp/ecosystem.config.js     (from the repository root)
//   PORT=5050 go run ./cmd/corral run examples/refapp/ecosystem.config.js     (another port)
//
// corral runs `build` (./build.sh: go build -v) once, before any worker starts, its output on
// the terminal: the first build on a cold Go cache compiles pgx and the pure-Go SQLite (half a
// minute to a minute on two cores), later ones take seconds. Then each worker runs
// the built binary, bin/refapp. `build` is corral's own attribute (PM2 ignores it: under PM2, run
// ./build.sh first). The
// app listens through corral's worker package (package github.com/corral-pm/corral/worker), so
// every worker serves the one port, and stops gracefully on `corral reload/stop/scale` and Ctrl-C;
// `corral reload refapp` after an edit rebuilds first, and a build that fails leaves the running
// workers serving.
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
    script: './bin/refapp', // made by build (it need not exist before)
    build: './build.sh', // once per start, restart or reload, before any worker starts
    interpreter: 'none',
    instances: 'max',
    exec_mode: 'cluster',
    // process.env is the environment of the corral command that loads this file.
    env: { PORT: process.env.PORT || 5000 },
    listen_timeout: 30000, // ms: a worker opens its database (and, the first time, seeds it) first
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
