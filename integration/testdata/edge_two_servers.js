// Two servers in one worker, on PORT and PORT2.
const http = require('http');
http.createServer((req, res) => res.end(`one ${process.pid}\n`)).listen(Number(process.env.PORT));
http.createServer((req, res) => res.end(`two ${process.pid}\n`)).listen(Number(process.env.PORT2));
