// A Node HTTP server for the request-metrics test: it answers every request with the status
// its query asks for (/?status=500), 200 by default, and its pid in a JSON body. Unmodified
// app code: corral's preload does the counting.
const http = require('http');
http.createServer((req, res) => {
  const status = Number(new URL(req.url, 'http://x').searchParams.get('status') || 200);
  res.statusCode = status >= 200 && status <= 599 ? status : 200;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid }));
}).listen(Number(process.env.PORT));
