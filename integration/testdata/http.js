// A plain Node HTTP server: answers with its pid, instance and a few environment variables.
const http = require('http');
const port = Number(process.env.PORT);
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    pid: process.pid,
    instance: process.env.NODE_APP_INSTANCE,
    env: {
      DATABASE_URL: process.env.DATABASE_URL,
      SESSION_SECRET: process.env.SESSION_SECRET,
      NODE_OPTIONS: process.env.NODE_OPTIONS,
      APP_MODE: process.env.APP_MODE,
    },
  }));
});
server.listen(port, () => console.log(`listening on ${port}`));
process.on('SIGINT', () => {
  console.log('got SIGINT, closing');
  server.close(() => process.exit(0));
});
