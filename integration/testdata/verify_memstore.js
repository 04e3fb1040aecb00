// A deliberately broken app for `corral verify`: Express with express-session's default
// MemoryStore, so a session lives in the memory of the worker that logged the user in, and the
// other workers do not know it. Everything else is sound.
'use strict';
const express = require('express');
const session = require('express-session');
const app = express();
app.use(express.json());
app.get('/api/health', (req, res) => res.json({ ok: true, pid: process.pid }));
app.use(session({ secret: 'verify-memstore', resave: false, saveUninitialized: false }));
app.post('/api/auth/login', (req, res) => {
  if (!req.body || req.body.password !== 'pw') return res.status(401).json({ error: 'bad credentials' });
  req.session.user = { email: req.body.email };
  res.json({ user: req.session.user, pid: process.pid });
});
app.get('/api/me', (req, res) => {
  if (!req.session.user) return res.status(401).json({ error: 'not logged in', pid: process.pid });
  res.json({ user: req.session.user, pid: process.pid });
});
app.post('/api/auth/logout', (req, res) => req.session.destroy(() => res.json({ ok: true })));
app.listen(Number(process.env.PORT));
