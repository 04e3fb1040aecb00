// corral's reference web app (Go): one worker per usable CPU core behind port 5000.
//
//   corral run examples/refapp/ecosystem.config.js      (from the repository root)
//
// Each worker builds the app, then execs it: exec keeps the pid corral started and the
// descriptors it passed; bin/refapp-<instance> gives every worker its own output file, so two
// workers never write one binary. The first build compiles pgx and the pure-Go SQLite (a few
// minutes on a cold cache, several workers at once), hence the long listen_timeout.
//
// Without DATABASE_URL the workers share the SQLite file ./refapp.db (the demo's default). For
// PostgreSQL, shared with the Node app, add to env:
//   DATABASE_URL: 'postgres://user:pass@host/db', SESSION_SECRET: '<the Node app's secret>'
// and see README.md for the rest (SESSION_SECRETS, SESSION_MAX_AGE, DB_POOL_TOTAL, WORKERS...).
module.exports = {
  apps: [{
    name: 'refapp',
    cwd: __dirname,
    script: 'go build -o bin/refapp-${NODE_APP_INSTANCE:-0} . && exec ./bin/refapp-${NODE_APP_INSTANCE:-0}',
    interpreter: 'none',
    instances: 'max',
    exec_mode: 'cluster',
    env: { PORT: 5000 },
    listen_timeout: 600000, // ms: room for the first build
    kill_timeout: 10000, // ms: the app drains in-flight requests for up to 8 s on SIGINT/SIGTERM
  }],
};
