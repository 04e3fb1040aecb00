// Writes garbage on its IPC channel (fd 3) before listening: the daemon must ignore it and go on.
const fs = require('fs');
fs.writeSync(Number(process.env.NODE_CHANNEL_FD || 3), '{this is not json}\n');
const http = require('http');
http.createServer((req, res) => res.end(`badjson ${process.pid}\n`)).listen(Number(process.env.PORT));
