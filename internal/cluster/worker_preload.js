// corral's preload for Node cluster workers (loaded with --require; the app's code is not
// touched). It changes one thing: when the primary takes a worker out of rotation (a reload or
// a scale-down), Node's server.close() closes every idle keep-alive connection at once, and a
// client that sends its next request on one of them at that moment gets a reset. Here, a
// draining server instead answers each next request with "Connection: close" (the client then
// opens a new connection, to another worker) and closes the connections still idle after a
// grace period. Nothing else changes, and any failure leaves Node's behaviour as it is.
'use strict';
try {
  const cluster = require('cluster');
  if (cluster.isWorker) {
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
