// An unmodified Node HTTP server, as users write it: app.listen(PORT). Under corral cluster
// mode each worker answers with who it is. A file named by NOT_READY_IF present makes it
// never listen (a replacement that never becomes ready).
const http = require('http');
const fs = require('fs');
const port = Number(process.env.PORT);
if (process.env.NOT_READY_IF && fs.existsSync(process.env.NOT_READY_IF)) {
  console.log('not listening on purpose');
  setInterval(() => {}, 1000);
} else {
  http.createServer((req, res) => {
    const delay = Number(new URL(req.url, 'http://x').searchParams.get('delay') || 0);
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ pid: process.pid, instance: process.env.NODE_APP_INSTANCE }));
    }, delay);
  }).listen(port, () => console.log(`listening on ${port}`));
}
