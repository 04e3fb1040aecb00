// The demo app: a plain Node HTTP server that knows nothing about corral. Under corral's
// cluster mode, one copy runs per CPU core behind the one port, and each answer says which
// worker served it.
const http = require('http');
const port = Number(process.env.PORT || 5000);
http.createServer((req, res) => {
  res.end(`hello from worker ${process.env.NODE_APP_INSTANCE} (pid ${process.pid})\n`);
}).listen(port, () => console.log(`listening on ${port}`));
