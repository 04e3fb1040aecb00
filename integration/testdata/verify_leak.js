// A deliberately broken app for `corral verify`: it keeps 1.5 MB more every 100 ms (touched,
// so it is resident), forever: a leak of 15 MB/s per worker.
'use strict';
const http = require('http');
const kept = [];
setInterval(() => kept.push(Buffer.alloc(3 << 19, 1)), 100);
http.createServer((req, res) => res.end('ok\n')).listen(Number(process.env.PORT));
