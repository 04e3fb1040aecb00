// A deliberately broken app for `corral verify`: its first worker answers at once, every other
// one after 50 ms. Under keep-alive each client stays on the worker its connection went to, so
// the first worker serves most of the requests: the work is pinned to one worker.
'use strict';
const http = require('http');
const slow = process.env.NODE_APP_INSTANCE !== '0';
http.createServer((req, res) => {
  if (slow) setTimeout(() => res.end('ok\n'), 50);
  else res.end('ok\n');
}).listen(Number(process.env.PORT));
