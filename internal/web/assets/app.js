// corral's dashboard (docs/web.md). Plain JavaScript, no library: one state fetch for the
// history, then one streamed fetch for everything live (an EventSource cannot send the token),
// one for the log tail, and one request per action.
'use strict';

const TOKEN_KEY = 'corral-token';
const LOG_KEEP = 1000; // lines kept in the log view
const EVENT_KEEP = 50;

const S = {
  token: '',
  procs: [],           // the processes at the last sample (api.Process)
  hist: new Map(),     // pm_id -> [{t, cpu, mem, req, conn}]
  windowMS: 15 * 60 * 1000,
  intervalMS: 2000,
  reloads: new Map(),  // app -> {done, error, steps: Map(pm_id -> {state, oldPid, newPid})}
  busy: new Set(),     // apps with an action under way
  logLines: [],
  logAbort: null,
  streamCtl: null,
  paused: false,
  pauseTimer: 0,
};

const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// The token comes once in the URL's fragment (never sent to a server), is kept for this tab
// only, and leaves the address bar at once so that it is not bookmarked or shared by accident.
function takeToken() {
  const m = /(?:^#|&)token=([0-9a-f]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function banner(msg) {
  const b = $('banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + S.token }, opts.headers || {});
  const res = await fetch(path, Object.assign({}, opts, { headers, cache: 'no-store' }));
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY); // a new token was made: this one will not do again
    banner('The token was refused: open the URL `corral web` prints.');
    throw new Error('unauthorized');
  }
  return res;
}

async function postJSON(path, body) {
  const res = await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const out = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(out.error || res.statusText);
  return out;
}

// ---- formatting

function fmtBytes(n) {
  if (!n) return '0 B';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + u[i];
}
function fmtUptime(p) {
  if (p.status !== 'online' || !p.started_at) return '0';
  let s = Math.max(0, (Date.now() - Date.parse(p.started_at)) / 1000);
  if (s < 60) return Math.floor(s) + 's';
  if ((s /= 60) < 60) return Math.floor(s) + 'm';
  if ((s /= 60) < 24) return Math.floor(s) + 'h';
  return Math.floor(s / 24) + 'D';
}
function fmtNum(v, digits = 1) { return v ? (+v).toFixed(digits) : '0'; }
function statusClass(s) { return 'st st-' + String(s).split(' ')[0]; }

// ---- history

function pointOf(p, t) {
  const c = p.cluster || {};
  return { t, cpu: p.cpu || 0, mem: p.memory || 0, req: c.req_per_sec || 0, conn: c.conn_per_sec || 0 };
}

function addSample(procs) {
  const t = Date.now();
  const cut = t - S.windowMS;
  const alive = new Set();
  for (const p of procs) {
    alive.add(p.pm_id);
    let pts = S.hist.get(p.pm_id);
    if (!pts) { pts = []; S.hist.set(p.pm_id, pts); }
    pts.push(pointOf(p, t));
    while (pts.length && pts[0].t < cut) pts.shift();
  }
  for (const id of S.hist.keys()) if (!alive.has(id)) S.hist.delete(id);
}

// ---- charts (hand-written SVG)

// chartSpan is the time the charts cover: the last 15 minutes, or less while the history is
// shorter (a daemon just started), but at least 30 samples, so a young history is not a sliver.
function chartSpan() {
  const now = Date.now();
  let oldest = now;
  for (const pts of S.hist.values()) if (pts.length) oldest = Math.min(oldest, pts[0].t);
  return Math.min(S.windowMS, Math.max(now - oldest, 30 * S.intervalMS));
}

function fmtSpan(ms) {
  const m = Math.round(ms / 60000);
  return m >= 1 ? `last ${m} min` : `last ${Math.max(1, Math.round(ms / 1000))} s`;
}

function sparkline(pts, key, cls, label, fmt, span) {
  const W = 180, H = 40, now = Date.now(), t0 = now - span;
  let max = 0;
  for (const p of pts) max = Math.max(max, p[key]);
  const top = max > 0 ? max * 1.15 : 1;
  let d = '';
  for (const p of pts) {
    if (p.t < t0) continue;
    const x = ((p.t - t0) / span) * W;
    const y = H - 1 - (p[key] / top) * (H - 2);
    d += (d ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
  }
  const last = pts.length ? pts[pts.length - 1][key] : 0;
  return `<div class="chart"><span>${esc(label)} <b>${esc(fmt(last))}</b> <span class="muted">max ${esc(fmt(max))}</span></span>` +
    `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}, ${fmtSpan(span)}" data-points="${pts.length}"><path class="${cls}" d="${d}"/></svg></div>`;
}

// distChart draws one bar per worker with the fair share (the total over the workers) marked:
// a bar far from the line is a worker doing more, or less, than its part.
function distChart(app, kind, label, workers, values) {
  const W = Math.max(160, workers.length * 44), H = 110, top = 10, bottom = 18;
  const total = values.reduce((a, b) => a + b, 0);
  const fair = workers.length ? total / workers.length : 0;
  const max = Math.max(fair, ...values, 1) * 1.1;
  const bw = W / Math.max(workers.length, 1);
  let bars = '';
  workers.forEach((w, i) => {
    const h = (values[i] / max) * (H - top - bottom);
    const x = i * bw + bw * 0.2;
    bars += `<rect x="${x.toFixed(1)}" y="${(H - bottom - h).toFixed(1)}" width="${(bw * 0.6).toFixed(1)}" height="${h.toFixed(1)}"><title>worker ${w.pm_id}: ${values[i]}</title></rect>` +
      `<text x="${(i * bw + bw / 2).toFixed(1)}" y="${H - 5}" text-anchor="middle">${w.pm_id}</text>` +
      `<text x="${(i * bw + bw / 2).toFixed(1)}" y="${(H - bottom - h - 2).toFixed(1)}" text-anchor="middle">${values[i]}</text>`;
  });
  const fy = H - bottom - (fair / max) * (H - top - bottom);
  const share = total ? values.map((v) => Math.round((v / total) * 100) + '%').join(' / ') : 'none yet';
  return `<div class="chart"><span>${esc(label)} <span class="muted">(${esc(share)}; dashed: fair share)</span></span>` +
    `<svg class="dist" data-app="${esc(app)}" data-kind="${kind}" data-values="${values.join(',')}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)} per worker">` +
    bars + `<line class="fair" x1="0" x2="${W}" y1="${fy.toFixed(1)}" y2="${fy.toFixed(1)}"/></svg></div>`;
}

// ---- rendering

function appsOf(procs) {
  const apps = new Map();
  for (const p of procs) {
    if (!apps.has(p.name)) apps.set(p.name, []);
    apps.get(p.name).push(p);
  }
  return apps;
}

// appEls keeps each app's element across renders: its heading and buttons stay the same nodes
// (a click that lands while a sample redraws the figures is not lost), and only its figures
// are redrawn.
const appEls = new Map();

function appElement(name) {
  let el = appEls.get(name);
  if (el) return el;
  el = document.createElement('div');
  el.className = 'app';
  el.dataset.app = name;
  el.innerHTML = `<div class="apphead"><h2>${esc(name)}</h2><span class="muted meta"></span><span class="buttons">` +
    ['reload', 'restart', 'scale', 'stop', 'start'].map((a) => `<button data-action="${a}" data-app="${esc(name)}">${a[0].toUpperCase() + a.slice(1)}</button>`).join('') +
    '</span></div><div class="body"></div>';
  appEls.set(name, el);
  return el;
}

function renderApps() {
  const box = $('apps');
  const apps = appsOf(S.procs);
  for (const [name, el] of appEls) {
    if (!apps.has(name)) { el.remove(); appEls.delete(name); }
  }
  let note = box.querySelector('.span');
  if (!apps.size) {
    box.innerHTML = '<p class="muted">No app is running. Start one with <code>corral start</code>.</p>';
    return;
  }
  if (!note) {
    box.innerHTML = '<p class="muted span"></p>';
    note = box.firstChild;
  }
  const span = chartSpan();
  note.textContent = `Charts: ${fmtSpan(span)} (up to 15).`;
  let prev = note;
  for (const [name, ws] of apps) {
    const el = appElement(name);
    if (prev.nextSibling !== el) prev.after(el);
    prev = el;
    const online = ws.filter((p) => p.status === 'online').length;
    const mode = ws[0].app && ws[0].app.exec_mode === 'cluster' ? 'cluster' : 'fork';
    el.querySelector('.meta').textContent = `${mode} · ${online}/${ws.length} online`;
    for (const b of el.querySelectorAll('button[data-action]')) {
      b.disabled = S.busy.has(name);
      if (b.dataset.action === 'start') b.hidden = online === ws.length;
    }
    let html = '<div class="tablewrap"><table><thead><tr><th>id</th><th>pid</th><th class="l">status</th><th>uptime</th><th>restarts</th><th>cpu</th><th>memory</th><th>req/s</th><th>p99</th><th>conns</th><th>in flight</th></tr></thead><tbody>';
    for (const p of ws) {
      const c = p.cluster;
      html += `<tr data-id="${p.pm_id}" data-pid="${p.pid}" data-status="${esc(p.status)}"><td>${p.pm_id}</td><td>${p.pid || '-'}</td>` +
        `<td class="l"><span class="${statusClass(p.status)}">${esc(p.status)}</span></td><td>${fmtUptime(p)}</td><td>${p.restart_time}</td>` +
        `<td>${fmtNum(p.cpu)}%</td><td>${fmtBytes(p.memory)}</td><td>${c ? fmtNum(c.req_per_sec) : '-'}</td>` +
        `<td>${c && c.latency_p99_ms ? fmtNum(c.latency_p99_ms) + ' ms' : '-'}</td><td>${c ? c.connections : '-'}</td><td>${c ? c.in_flight : '-'}</td></tr>` +
        `<tr class="charts-row"><td colspan="11"><div class="charts" data-charts="${p.pm_id}">` +
        sparkline(S.hist.get(p.pm_id) || [], 'cpu', 'cpu', 'CPU', (v) => fmtNum(v) + '%', span) +
        sparkline(S.hist.get(p.pm_id) || [], 'mem', 'mem', 'memory', fmtBytes, span) +
        sparkline(S.hist.get(p.pm_id) || [], 'req', 'req', 'req/s', (v) => fmtNum(v), span) +
        `</div></td></tr>`;
    }
    html += '</tbody></table></div>';
    const cl = ws.filter((p) => p.cluster);
    if (cl.length) {
      html += '<div class="dists">' +
        distChart(name, 'requests', 'requests per worker', cl, cl.map((p) => p.cluster.requests || 0)) +
        distChart(name, 'connections', 'connections per worker', cl, cl.map((p) => p.cluster.connections || 0)) + '</div>';
    }
    html += renderReload(name);
    el.querySelector('.body').innerHTML = html;
  }
}

function renderReload(app) {
  const r = S.reloads.get(app);
  if (!r) return '';
  let state = r.done ? (r.error ? 'failed: ' + r.error : 'done') : 'under way';
  let html = `<div class="progress" id="reload-${esc(app)}" data-done="${r.done ? 1 : 0}"><b>Reload</b> ${esc(state)}<ol>`;
  for (const [id, s] of r.steps) {
    const what = { waiting: 'waiting', starting: `starting pid ${s.newPid}`, replaced: `pid ${s.oldPid} replaced by ${s.newPid}`, failed: 'failed' + (s.msg ? ': ' + s.msg : '') }[s.state];
    html += `<li data-reload-id="${id}" data-state="${s.state}">worker ${id}: ${esc(what)}</li>`;
  }
  return html + '</ol></div>';
}

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderApps();
    renderLogApps();
  });
}

// ---- events (a reload's progress, worker by worker)

let alertsSoon = 0;

function onEvent(ev) {
  const li = document.createElement('li');
  const t = new Date(ev.time).toLocaleTimeString();
  li.textContent = `${t} ${ev.name || 'corral'}[${ev.pm_id}] ${ev.event}${ev.pid ? ' pid ' + ev.pid : ''}${ev.message ? ': ' + ev.message : ''}`;
  const list = $('events');
  list.prepend(li);
  while (list.children.length > EVENT_KEEP) list.lastChild.remove();

  // Alerts follow process events (crashes, errors): ask again shortly after one.
  if (!alertsSoon) alertsSoon = setTimeout(() => { alertsSoon = 0; loadAlerts(); }, 1000);

  let r = S.reloads.get(ev.name);
  if (ev.event === 'reload' && r && r.elsewhere && r.done && Date.now() - (r.at || 0) < 30000) {
    r.done = false; // the next worker of the same reload
  } else if (ev.event === 'reload' && (!r || r.done) && !S.busy.has(ev.name)) {
    // A reload started elsewhere (the CLI, another page, a watch or cron trigger): followed
    // from its events alone, worker by worker as they come.
    r = { done: false, elsewhere: true, steps: new Map(), at: Date.now() };
    S.reloads.set(ev.name, r);
  }
  if (!r || r.done) return;
  let step = r.steps.get(ev.pm_id);
  if (!step && r.elsewhere && ev.event === 'reload') {
    step = { state: 'waiting' };
    r.steps.set(ev.pm_id, step);
  }
  if (!step) return;
  if (ev.event === 'reload') Object.assign(step, { state: 'starting', newPid: ev.pid, oldPid: ev.old_pid });
  else if (ev.event === 'online' && ev.old_pid) Object.assign(step, { state: 'replaced', newPid: ev.pid, oldPid: ev.old_pid });
  else if (ev.event === 'reload failed') Object.assign(step, { state: 'failed', msg: ev.message });
  if (r.elsewhere) {
    // Done once every worker seen so far is replaced or failed; a next worker's reload
    // event reopens it.
    const open = [...r.steps.values()].some((s) => s.state === 'waiting' || s.state === 'starting');
    r.done = !open;
    const failed = [...r.steps.values()].filter((s) => s.state === 'failed');
    r.error = failed.length ? failed.map((s) => s.msg).join('; ') : '';
    r.at = Date.now();
  }
  render();
}

// ---- the live stream: server-sent events read with fetch()

async function stream() {
  const ctl = new AbortController();
  S.streamCtl = ctl;
  let delay = 1000;
  while (!ctl.signal.aborted) {
    try {
      const res = await api('/web/api/stream', { signal: ctl.signal });
      if (!res.ok) throw new Error(res.statusText);
      setLive(true);
      delay = 1000;
      await readParts(res, '\n\n', (block) => {
        let name = '', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) name = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (!name) return;
        const v = JSON.parse(data);
        if (name === 'state') { S.procs = v; addSample(v); render(); }
        else if (name === 'event') onEvent(v);
      });
    } catch (e) {
      if (e.message === 'unauthorized') { setLive(false); return; }
    }
    if (ctl.signal.aborted) return;
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
    if (ctl.signal.aborted) return;
    await loadState().catch(() => {});
  }
}

// A page left in a background tab lets its connections go after a while (browsers allow six
// per host, and every open page holds two), and takes them up again when it is looked at.
const PAUSE_AFTER = 30000;

function pause() {
  if (S.paused) return;
  S.paused = true;
  if (S.streamCtl) S.streamCtl.abort();
  if (S.logAbort) S.logAbort.abort();
  S.streamCtl = S.logAbort = null;
  setLive(false, 'paused');
}

function resume() {
  if (!S.paused) return;
  S.paused = false;
  loadState().then(() => { stream(); followLogs(); }, () => { stream(); followLogs(); });
  loadAlerts();
}

function setLive(on, why) {
  const l = $('live');
  l.className = 'live ' + (on ? 'on' : 'off');
  l.textContent = on ? 'live' : (why || 'reconnecting');
}

async function loadState() {
  const res = await api('/web/api/state');
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
  const st = await res.json();
  S.windowMS = st.window_ms;
  S.intervalMS = st.interval_ms;
  S.procs = st.processes || [];
  S.hist = new Map(Object.entries(st.history || {}).map(([id, pts]) => [Number(id), pts]));
  $('daemon').textContent = `daemon ${st.version} · pid ${st.pid}`;
  $('daemon').title = st.home;
  render();
}

// ---- actions, each behind a confirmation

// The dialog's close event comes in a task of its own, after the dialog has closed: a question
// asked again before it comes (Cancel, then at once another action's button) must not take that
// event, and its empty returnValue, as its own answer, nor may it lose the previous answer (an
// action confirmed, then another button clicked at once). So the answer is read from the closed
// dialog by whichever comes first, its close event or the next question, and a close event that
// finds the dialog open again is an earlier question's, already answered.
let confirmAnswer = null; // gives the asked question its answer (the dialog's returnValue)

function answerConfirm() {
  const d = $('confirm');
  if (!confirmAnswer || d.open) return;
  const answer = confirmAnswer;
  confirmAnswer = null;
  answer(d.returnValue);
}

function confirmDialog(text, count) {
  answerConfirm(); // the previous question, closed, its close event still to come
  const d = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-count-label').hidden = count === undefined;
  if (count !== undefined) $('confirm-count').value = count;
  d.returnValue = '';
  return new Promise((resolve) => {
    confirmAnswer = (rv) => resolve(rv === 'ok' ? (count === undefined ? true : $('confirm-count').value) : null);
    d.showModal();
  });
}

async function act(action, app) {
  const ws = S.procs.filter((p) => p.name === app);
  let answer;
  if (action === 'scale') {
    answer = await confirmDialog(`Scale ${app} to how many processes? (now ${ws.length}; scaling down drains workers)`, ws.length);
    if (answer === null) return;
  } else {
    const what = {
      reload: `Reload ${app}? Its ${ws.length} worker(s) are replaced one at a time; each new one must be ready before the old one leaves.`,
      restart: `Restart ${app}? Its ${ws.length} process(es) are stopped and started again.`,
      stop: `Stop ${app}? Its ${ws.length} process(es) stop and its port closes.`,
      start: `Start ${app}'s stopped processes?`,
    }[action];
    if (!(await confirmDialog(what))) return;
  }
  S.busy.add(app);
  if (action === 'reload') {
    S.reloads.set(app, { done: false, steps: new Map(ws.map((p) => [p.pm_id, { state: 'waiting', oldPid: p.pid }])) });
  }
  render();
  try {
    const out = action === 'scale'
      ? await postJSON('/web/api/scale', { app, count: String(answer) })
      : await postJSON('/web/api/actions/' + action, { target: app });
    const errs = (out.errors || []).join('; ');
    if (action === 'reload') {
      const r = S.reloads.get(app);
      for (const s of out.reloads || []) {
        const step = r.steps.get(s.pm_id) || {};
        Object.assign(step, s.error ? { state: 'failed', msg: s.error } : { state: 'replaced', oldPid: s.old_pid, newPid: s.new_pid });
        r.steps.set(s.pm_id, step);
      }
      r.done = true;
      r.error = errs;
    }
    banner(errs ? `${action} ${app}: ${errs}` : '');
  } catch (e) {
    const r = S.reloads.get(app);
    if (action === 'reload' && r) { r.done = true; r.error = e.message; }
    banner(`${action} ${app}: ${e.message}`);
  } finally {
    S.busy.delete(app);
    render();
  }
}

// ---- alerts: the alerts engine's firing and recent alerts

async function loadAlerts() {
  const box = $('alerts');
  try {
    const res = await api('/web/api/alerts');
    const v = await res.json();
    if (!res.ok) throw new Error(v.error || res.statusText);
    // GET /v1/alerts: {firing: [Alert], recent: [Alert] (transitions, newest first), sinks}.
    const item = (a, recent) => {
      const firing = a.state === 'firing';
      const who = (a.app || '') + (a.id !== undefined && a.id !== null ? `[${a.id}]` : '');
      const when = recent ? a.time : a.since;
      const what = a.text || `${who} ${a.rule || ''}${a.spec ? ' (' + a.spec + ')' : ''}`;
      return `<li class="${firing && !recent ? 'alert-firing' : ''}" data-app="${esc(a.app || '')}" data-rule="${esc(a.rule || '')}" data-state="${esc(a.state || '')}">` +
        `<b>${esc(a.rule || '')}</b> ${esc(a.state || '')}: ${esc(what)}` +
        `${when ? ' <span class="muted">' + (recent ? 'at ' : 'since ') + esc(new Date(when).toLocaleTimeString()) + '</span>' : ''}</li>`;
    };
    const firing = v.firing || [], recent = (v.recent || []).slice(0, 20);
    box.innerHTML = (firing.length ? `<ul class="alerts" id="alerts-firing">${firing.map((a) => item(a, false)).join('')}</ul>` : '<p class="muted" id="alerts-none">Nothing firing.</p>') +
      (recent.length ? `<h3>Recent</h3><ul class="alerts" id="alerts-recent">${recent.map((a) => item(a, true)).join('')}</ul>` : '');
  } catch (e) {
    box.innerHTML = `<p class="muted">Alerts unavailable: ${esc(e.message)}</p>`;
  }
}

// ---- logs: the daemon's log hub, one app or all, filtered here

function renderLogApps() {
  const sel = $('log-app');
  const names = [...appsOf(S.procs).keys()];
  const have = [...sel.options].slice(1).map((o) => o.value);
  if (names.join('\n') === have.join('\n')) return;
  const cur = sel.value;
  sel.innerHTML = '<option value="">all</option>' + names.map((n) => `<option>${esc(n)}</option>`).join('');
  sel.value = names.includes(cur) ? cur : '';
}

function renderLogs() {
  const f = $('log-filter').value.toLowerCase();
  const pre = $('logs');
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
  const shown = f ? S.logLines.filter((l) => l.text.toLowerCase().includes(f)) : S.logLines;
  pre.innerHTML = shown.map((l) => `<span class="${l.cls}">${esc(l.text)}</span>`).join('\n');
  $('log-count').textContent = f ? `${shown.length} of ${S.logLines.length} lines` : `${S.logLines.length} lines`;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

let logRender = 0;
function queueLogRender() {
  if (logRender) return;
  logRender = setTimeout(() => { logRender = 0; renderLogs(); }, 100);
}

async function followLogs() {
  if (S.logAbort) S.logAbort.abort();
  const ctl = new AbortController();
  S.logAbort = ctl;
  S.logLines = [];
  renderLogs();
  const app = $('log-app').value;
  const q = new URLSearchParams({ lines: '100', follow: '1' });
  if (app) q.set('target', app);
  try {
    const res = await api('/web/api/logs?' + q, { signal: ctl.signal });
    if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
    await readParts(res, '\n', (line) => {
      if (!line.trim()) return;
      const l = JSON.parse(line);
      const who = l.process_id >= 0 ? `${l.process_id}|${l.app_name}` : 'corral';
      S.logLines.push({ text: `${who} | ${l.message}`, cls: l.type });
      if (S.logLines.length > LOG_KEEP) S.logLines.splice(0, S.logLines.length - LOG_KEEP);
    }, queueLogRender);
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  if (S.logAbort === ctl) setTimeout(() => { if (S.logAbort === ctl) followLogs(); }, 3000);
}

// readParts reads a streamed response to its end, calling onPart with each part of the text
// between separators (sep: '\n\n' for server-sent events, '\n' for JSON lines), and then, if
// given, afterChunk once per chunk read (one render for however many parts came at once).
async function readParts(res, sep, onPart, afterChunk) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf(sep)) >= 0) {
      const part = buf.slice(0, i);
      buf = buf.slice(i + sep.length);
      onPart(part);
    }
    if (afterChunk) afterChunk();
  }
}

// ---- start

function main() {
  // A URL that differs only in its fragment does not load the page again: a token pasted into
  // an open page's address bar arrives here.
  window.addEventListener('hashchange', () => {
    // Load again once this navigation is over (a reload during it may be dropped).
    if (/token=/.test(location.hash)) { takeToken(); setTimeout(() => location.reload(), 0); }
  });
  S.token = takeToken();
  if (!S.token) {
    banner('No token: open the URL `corral web` prints (the token is in its #token= part).');
    $('apps').innerHTML = '';
    return;
  }
  document.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (b && !b.disabled) act(b.dataset.action, b.dataset.app);
  });
  $('confirm').addEventListener('close', answerConfirm);
  $('log-app').addEventListener('change', followLogs);
  $('log-filter').addEventListener('input', queueLogRender);
  loadState().then(() => {
    stream();
    followLogs();
  }, (e) => banner('The daemon did not answer: ' + e.message));
  loadAlerts();
  // Alerts are asked again after process events, and every 15 s for the rules over time
  // (memory growth, event-loop delay).
  setInterval(() => { if (!S.paused) loadAlerts(); }, 15000);
  // Uptimes move between samples.
  setInterval(() => { if (!S.paused) render(); }, 5000);
  document.addEventListener('visibilitychange', () => {
    clearTimeout(S.pauseTimer);
    if (document.hidden) S.pauseTimer = setTimeout(pause, PAUSE_AFTER);
    else resume();
  });
}

main();
