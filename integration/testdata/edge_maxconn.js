// Refuses connections beyond one at a time (server.maxConnections), so the primary gets
// accepted:false and must hand the connection to another worker or, when every worker
// refuses, close it after a bounded number of tries.
const http = require('http');
const server = http.createServer((req, res) => {
  const hold = Number(new URL(req.url, 'http://x').searchParams.get('hold') || 0);
  setTimeout(() => res.end(`ok ${process.pid}\n`), hold);
});
server.maxConnections = 1;
server.listen(Number(process.env.PORT));
