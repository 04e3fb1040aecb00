// A server on a unix socket path.
const http = require('http');
http.createServer((req, res) => res.end(`unix ${process.pid}\n`)).listen(process.env.SOCK_PATH, () => console.log('listening on unix socket'));
