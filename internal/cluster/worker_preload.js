// corral's preload for Node processes (loaded with --require; the app's code is not touched):
// cluster workers, and fork-mode processes unless their app has pmx: false. It does two things,
// and any failure leaves Node's behaviour as it is.
//
// Which process it acts in: a cluster worker of corral's, or the fork-mode process whose parent
// is the daemon (CORRAL_PRELOAD_PARENT holds the daemon's pid). Processes the app forks in turn
// inherit the --require (Node passes execArgv on) and that variable, and are left alone.
//
// Draining (cluster workers): when the primary takes a worker out of rotation (a reload or a
// scale-down), Node's server.close() closes every idle keep-alive connection at once, and a
// client that sends its next request on one of them at that moment gets a reset. Here, a
// draining server instead answers each next request with "Connection: close" (the client then
// opens a new connection, to another worker) and closes the connections still idle after a
// grace period.
//
// Request metrics: the daemon only sees connections, and one keep-alive connection carries many
// requests. Every request an http/https Server of the process answers is counted (by status
// class, with its latency), and the counters go to the daemon as an internal message
// (docs/node-cluster-protocol.md §10.1) at most once a second, only when they changed (the
// runtime gauges alone at most every 5 s). CORRAL_REQUEST_METRICS=0 turns the counting off.
'use strict';
const corralParent = process.env.CORRAL_PRELOAD_PARENT;

try {
  const cluster = require('cluster');
  if (cluster.isWorker && corralParent === undefined) {
    const grace = Number(process.env.CORRAL_DRAIN_GRACE_MS) || 1000;
    const patch = (proto) => {
      const closeIdle = proto && Object.prototype.hasOwnProperty.call(proto, 'closeIdleConnections') && proto.closeIdleConnections;
      if (typeof closeIdle !== 'function') return;
      proto.closeIdleConnections = function closeIdleConnections() {
        const w = cluster.worker;
        if (!w || !w.exitedAfterDisconnect || this.__corralDraining) {
          return closeIdle.apply(this, arguments);
        }
        this.__corralDraining = true;
        this.prependListener('request', (req, res) => { res.shouldKeepAlive = false; });
        const server = this;
        setTimeout(() => closeIdle.call(server), grace).unref();
      };
    };
    patch(require('http').Server.prototype);
    patch(require('https').Server.prototype);
  }
} catch (_) {
  // Leave Node's behaviour untouched.
}

try {
  const ours = corralParent === undefined ? require('cluster').isWorker : corralParent === String(process.ppid);
  if (ours && process.env.CORRAL_REQUEST_METRICS !== '0' && typeof process.send === 'function') {
    const { performance, monitorEventLoopDelay } = require('perf_hooks');
    // Upper bounds in ms; one more bucket for anything slower. The daemon has the same list
    // (internal/cluster/metrics.go LatencyBucketsMS).
    const bounds = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
    const m = { requests: 0, byClass: [0, 0, 0, 0, 0], latency: new Array(bounds.length + 1).fill(0), latencySum: 0 };

    // Node's http server publishes every request's start (just before its 'request' event)
    // and its response's finish (at the response's 'finish') on two diagnostics channels, for
    // http and https alike, and builds those messages only while a channel has a subscriber.
    // That replaces a patched Server.prototype.emit that added a once-listener to every
    // response (a wrapper, a bound function and a listener array per request, and an extra
    // call for every event of every server): here a request costs one clock read at each end
    // and one property on the response. A subscriber's exception would reach the app as an
    // uncaught exception (Node rethrows it on the next tick): the try blocks keep it here.
    const now = performance.now.bind(performance);
    const onStart = (msg) => {
      try {
        m.requests++;
        msg.response.__corralStart = now();
      } catch (_) { /* never into the app */ }
    };
    const onFinish = (msg) => {
      try {
        const res = msg.response;
        const start = res.__corralStart;
        if (start === undefined) return; // not started here: a NaN would void every report
        const ms = now() - start;
        const cls = (res.statusCode / 100) | 0;
        if (cls >= 1 && cls <= 5) m.byClass[cls - 1]++;
        let i = 0;
        while (i < 12 && ms > bounds[i]) i++;
        m.latency[i]++;
        m.latencySum += ms;
      } catch (_) { /* never into the app */ }
    };
    const dc = require('diagnostics_channel');
    dc.subscribe('http.server.request.start', onStart);
    dc.subscribe('http.server.response.finish', onFinish);

    // The histogram records each interval between its timer's ticks, resolution included:
    // the delay is what goes beyond the resolution.
    const resolution = 10;
    let loop = null;
    try {
      loop = monitorEventLoopDelay({ resolution });
      loop.enable();
    } catch (_) {
      loop = null;
    }
    const delayMS = (ns) => (Number.isFinite(ns) && ns >= 0 && ns < 1e15 ? Math.max(0, ns / 1e6 - resolution) : 0);
    let sentRequests = 0;
    let sentFinished = 0;
    let sentAt = 0;
    const report = () => {
      try {
        if (!process.connected) return;
        let done = 0;
        for (const n of m.latency) done += n;
        const now = Date.now();
        if (m.requests === sentRequests && done === sentFinished && now - sentAt < 5000) return;
        const mem = process.memoryUsage();
        const msg = {
          cmd: 'NODE_CORRAL_METRICS',
          requests: m.requests,
          byClass: m.byClass,
          latency: m.latency,
          latencySum: m.latencySum,
          heapUsed: mem.heapUsed,
          heapTotal: mem.heapTotal,
        };
        if (loop) {
          msg.loopDelay = [delayMS(loop.percentile(50)), delayMS(loop.percentile(99)), delayMS(loop.max)];
          loop.reset();
        }
        if (typeof process._getActiveHandles === 'function') {
          msg.handles = process._getActiveHandles().length;
        }
        // The callback takes any send error; nothing reaches the app.
        process.send(msg, () => {});
        sentRequests = m.requests;
        sentFinished = done;
        sentAt = now;
      } catch (_) {
        // A report is lost; the next one carries the same cumulative counters.
      }
    };
    setInterval(report, 1000).unref();
  }
} catch (_) {
  // Leave Node's behaviour untouched.
}
