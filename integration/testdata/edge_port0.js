// listen(0) twice: every worker must get the same two random ports (Node's key semantics), and
// server.address() must report them.
const http = require('http');
const a = http.createServer((req, res) => res.end(`a ${process.pid}\n`));
const b = http.createServer((req, res) => res.end(`b ${process.pid}\n`));
a.listen(0, () => b.listen(0, () => {
  console.log(`ports ${a.address().port} ${b.address().port}`);
}));
