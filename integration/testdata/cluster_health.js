// An unmodified Node HTTP server with a health route, for /readyz's per-worker checks: the
// worker whose NODE_APP_INSTANCE is SICK_INSTANCE answers /healthz with 503 (up, listening,
// but broken) until the file HEALED_IF names exists; every other answer is 200.
const http = require('http');
const fs = require('fs');
const sick = () => process.env.NODE_APP_INSTANCE === process.env.SICK_INSTANCE &&
  !(process.env.HEALED_IF && fs.existsSync(process.env.HEALED_IF));
http.createServer((req, res) => {
  res.statusCode = req.url === '/healthz' && sick() ? 503 : 200;
  res.end(JSON.stringify({ pid: process.pid, instance: process.env.NODE_APP_INSTANCE }));
}).listen(Number(process.env.PORT), () => console.log(`listening on ${process.env.PORT}`));
