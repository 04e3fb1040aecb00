// The deployment's app in miniature, in its own stack: Express, express-session and
// connect-pg-simple, sessions in PostgreSQL. corral runs it unmodified, one worker per core
// behind one port; its Go twin (../refapp) serves the same routes and shares the same sessions
// (same table, same signed connect.sid cookie), so a user can move between the two.
'use strict';
const express = require('express');
const session = require('express-session');
const PgSession = require('connect-pg-simple')(session);
const { Pool } = require('pg');
const bcrypt = require('bcryptjs');

if (!process.env.DATABASE_URL) {
  console.error('DATABASE_URL is required (the Go twin has an SQLite default; this app is the PostgreSQL deployment)');
  process.exit(1);
}
if (!process.env.SESSION_SECRET) {
  console.error('SESSION_SECRET is required');
  process.exit(1);
}

const workers = Number(process.env.WORKERS) || 1;
const poolMax = Math.max(2, Math.floor((Number(process.env.DB_POOL_TOTAL) || 20) / workers));
const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: poolMax,
  connectionTimeoutMillis: 3000,
  application_name: `refapp-node-w${process.env.NODE_APP_INSTANCE || 0}`,
});
// Without this, a database restart crashes the worker (an idle client's 'error').
pool.on('error', (err) => console.error('database pool:', err.message));

// Read exactly as the Go twin reads them: SESSION_SECRETS is a comma list (the first signs),
// SESSION_SECRET one secret taken as it is; SESSION_MAX_AGE in milliseconds or with a unit.
const secrets = process.env.SESSION_SECRETS
  ? process.env.SESSION_SECRETS.split(',').filter((s) => s !== '')
  : [process.env.SESSION_SECRET];
const maxAge = parseDuration(process.env.SESSION_MAX_AGE) || 24 * 3600 * 1000;

function parseDuration(v) {
  if (!v) return 0;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  if (!m) throw new Error(`SESSION_MAX_AGE=${v}: use milliseconds or a value like 30m, 12h, 1d`);
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2] || 'ms'];
  return Math.round(Number(m[1]) * unit);
}

const app = express();
app.use(express.json());
app.use(express.urlencoded({ extended: false }));

// Every answer says which worker gave it.
const who = { worker: process.env.NODE_APP_INSTANCE, pid: process.pid, stack: 'node' };

// Health: outside the session middleware, so probes create no session rows.
app.get('/api/health', async (req, res) => {
  try {
    await pool.query('SELECT 1');
    res.json({ ok: true, ...who });
  } catch (err) {
    res.status(503).json({ ok: false, error: err.message, worker: process.env.NODE_APP_INSTANCE, pid: process.pid });
  }
});

app.use(session({
  store: new PgSession({ pool, tableName: 'session' }),
  secret: secrets,
  name: 'connect.sid',
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge, httpOnly: true, path: '/' },
}));

app.post('/api/auth/login', async (req, res, next) => {
  try {
    const { email, password } = req.body || {};
    const { rows } = await pool.query('SELECT id, email, password_hash FROM users WHERE email = $1', [email || '']);
    const user = rows[0];
    if (!user || !password || !(await bcrypt.compare(password, user.password_hash))) {
      return res.status(401).json({ error: 'invalid email or password', ...who });
    }
    // As passport does: a new session id on login (session fixation), then save before answering.
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.passport = { user: user.id };
      req.session.save((err2) => {
        if (err2) return next(err2);
        res.json({ user: { id: user.id, email: user.email }, ...who });
      });
    });
  } catch (err) {
    next(err);
  }
});

app.post('/api/auth/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie('connect.sid', { path: '/' });
    res.json({ ok: true, ...who });
  });
});

app.get('/api/me', async (req, res, next) => {
  try {
    const id = req.session.passport && req.session.passport.user;
    if (id === undefined || id === null) return res.status(401).json({ error: 'not logged in', ...who });
    const { rows } = await pool.query('SELECT id, email FROM users WHERE id = $1', [id]);
    if (!rows[0]) return res.status(401).json({ error: 'no such user', ...who });
    res.json({ user: rows[0], ...who });
  } catch (err) {
    next(err);
  }
});

app.use((err, req, res, next) => {
  console.error(err);
  res.status(500).json({ error: 'internal error', ...who });
});

app.listen(Number(process.env.PORT) || 5000, () => console.log(`refapp-node listening on ${process.env.PORT || 5000}`));
