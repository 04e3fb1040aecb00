// A Node HTTP server for the request-metrics test: it answers every request with the status
// its query asks for (/?status=500), 200 by default, and its pid in a JSON body. Unmodified
// app code: corral's preload does the counting. It logs every message it receives: corral's
// metrics reports must never reach it.
const http = require('http');
process.on('message', (m) => console.log('app got a message: ' + JSON.stringify(m)));
http.createServer((req, res) => {
  const status = Number(new URL(req.url, 'http://x').searchParams.get('status') || 200);
  res.statusCode = status >= 200 && status <= 599 ? status : 200;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid }));
}).listen(Number(process.env.PORT), () => console.log('serving'));
